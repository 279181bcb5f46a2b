//! Workers: claim due jobs, run them, retry with backoff and jitter.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use shipsync_db::now_micros;
use tokio::sync::Notify;

use crate::Engine;
use crate::pipeline::EngineError;

pub async fn run(engine: Engine, index: usize, shutdown: Arc<Notify>) {
    let owner = format!("{}-{index}", engine.inner.owner);
    let lease = i64::try_from(engine.config().lease.as_micros()).unwrap_or(i64::MAX);
    loop {
        let jobs = match engine.db().claim_jobs(&owner, 1, lease).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "claiming jobs failed; retrying");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            let wait = match engine.db().next_job_at().await {
                Ok(Some(at)) => Duration::from_micros(
                    u64::try_from((at - now_micros()).max(1_000)).unwrap_or(1_000),
                ),
                _ => Duration::from_millis(500),
            }
            .min(Duration::from_millis(500));
            tokio::select! {
                _ = shutdown.notified() => return,
                _ = engine.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        for job in jobs {
            let result = engine.run_job(&job.kind, &job.payload).await;
            let db = engine.db();
            match result {
                Ok(()) => {
                    engine.metrics().job(&job.kind, "ok");
                    if let Err(e) = db.complete_job(&job.id, &owner).await {
                        tracing::warn!(error = %e, job = %job.id, "could not complete job");
                    }
                }
                Err(EngineError::Deferred { message, after }) => {
                    engine.metrics().job(&job.kind, "deferred");
                    tracing::debug!(job = %job.id, "deferred: {message}");
                    let at = now_micros() + i64::try_from(after.as_micros()).unwrap_or(1_000_000);
                    if let Err(e) = db.defer_job(&job.id, &owner, at).await {
                        tracing::warn!(error = %e, job = %job.id, "could not defer job");
                    }
                }
                Err(e) => {
                    let (message, after, permanent) = match &e {
                        EngineError::Retry { message, after } => (message.clone(), *after, false),
                        EngineError::Db(d) if d.is_unavailable() => (e.to_string(), None, false),
                        EngineError::Permanent(m) => (m.clone(), None, true),
                        other => (other.to_string(), None, false),
                    };
                    let give_up = permanent || job.attempts + 1 >= engine.config().max_attempts;
                    engine
                        .metrics()
                        .job(&job.kind, if give_up { "failed" } else { "retry" });
                    tracing::info!(job = %job.id, kind = %job.kind, attempts = job.attempts + 1, give_up, "job failed: {message}");
                    let _ = engine
                        .job_failed(&job.kind, &job.payload, &message, give_up, job.attempts + 1)
                        .await;
                    let r = if give_up {
                        // Done with this job, unless it was enqueued again
                        // while it ran (a newer version of its shipment):
                        // then it runs again at once, on what is new.
                        db.complete_job(&job.id, &owner).await
                    } else {
                        let delay = backoff(engine.config(), job.attempts, after);
                        let at =
                            now_micros() + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2);
                        db.retry_job(&job.id, &owner, at, &message).await
                    };
                    if let Err(e) = r {
                        tracing::warn!(error = %e, job = %job.id, "could not record job failure");
                    }
                }
            }
        }
    }
}

/// Exponential backoff with ±20 % jitter, never shorter than what the other
/// side asked for.
pub fn backoff(config: &crate::EngineConfig, attempts: i64, asked: Option<Duration>) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let base = config
        .backoff_base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(config.backoff_max);
    let jitter = rand::rng().random_range(0.8..1.2);
    let d = base.mul_f64(jitter);
    match asked {
        Some(a) if a > d => a,
        _ => d,
    }
}

impl Engine {
    async fn run_job(&self, kind: &str, payload: &str) -> Result<(), EngineError> {
        let p: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| EngineError::Permanent(format!("bad job payload: {e}")))?;
        let field = |k: &str| {
            p.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        match kind {
            "process_event" => self.process_event(&field("event_id")).await,
            "sync_shipment" => self.sync_shipment(&field("shipment_id")).await,
            "pull_shipments" => self
                .pull_shipments(&field("run_id"), None, None)
                .await
                .map(|_| ()),
            "pull_orders" => self.pull_orders(&field("run_id"), None).await.map(|_| ()),
            "push_order" => self.push_order(&field("order_id")).await,
            other => Err(EngineError::Permanent(format!("unknown job kind {other}"))),
        }
    }

    /// Shows the failure on the shipment: its reason while it waits to
    /// retry, or `error` when shipsync gives up.
    async fn job_failed(
        &self,
        kind: &str,
        payload: &str,
        message: &str,
        give_up: bool,
        attempts: i64,
    ) -> Result<(), EngineError> {
        let p: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        if kind == "pull_shipments" || kind == "pull_orders" {
            if give_up && let Some(run_id) = p.get("run_id").and_then(|v| v.as_str()) {
                self.fail_run(run_id, message).await?;
            }
            return Ok(());
        }
        if kind == "push_order" {
            if let Some(id) = p.get("order_id").and_then(|v| v.as_str()) {
                self.push_failed(id, message, give_up, attempts).await?;
            }
            return Ok(());
        }
        if kind != "sync_shipment" {
            return Ok(());
        }
        let Some(id) = p.get("shipment_id").and_then(|v| v.as_str()) else {
            return Ok(());
        };
        let db = self.db();
        let Some(mut s) = db.get_shipment(id).await? else {
            return Ok(());
        };
        if s.status == "archived" {
            return Ok(());
        }
        s.updated_at = now_micros();
        if give_up {
            s.status = "error".into();
            s.error = Some(message.to_string());
            self.save_run(&s).await?;
            db.activity(
                id,
                "failed",
                &format!("Failed after {attempts} attempt(s): {message}"),
            )
            .await?;
        } else {
            s.status = "open".into();
            s.error = Some(message.to_string());
            self.save_run(&s).await?;
            db.activity(
                id,
                "retry",
                &format!("Attempt {attempts} failed, will retry: {message}"),
            )
            .await?;
        }
        Ok(())
    }
}
