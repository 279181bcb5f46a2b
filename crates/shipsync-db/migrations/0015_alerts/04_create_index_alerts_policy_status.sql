CREATE INDEX alerts_policy_status ON alerts (policy_id, status);
