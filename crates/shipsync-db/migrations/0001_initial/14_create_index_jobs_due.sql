CREATE INDEX jobs_due ON jobs (run_at);
