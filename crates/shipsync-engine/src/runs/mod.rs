//! Channel runs: a run's record (started, finished, failed; its API view)
//! and the Deposco client the runs use. [`schedule`] fires runs from
//! schedule slots and on demand; [`pull`] is the shipment pull (the
//! fallback that guarantees completeness).

mod pull;
mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use shipsync_core::states::RunStatus;
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::runs::{self, RunRow};
use shipsync_db::{channels, now_micros};

use shipsync_deposco::api::{Auth, DeposcoClient, DeposcoConfig};

use crate::Engine;
use crate::error::EngineError;

pub use pull::{FIRST_PULL_WINDOW, PULL_OVERLAP};

/// Counts of a pull, as the API shows them (a run not started yet has
/// none: all zero).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RunCounts {
    pub fetched: u64,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub pages: u64,
}

impl RunCounts {
    /// The counts a run holds so far.
    pub(crate) fn of(run: &RunRow) -> Result<Self, EngineError> {
        serde_json::from_value(run.counts.clone())
            .map_err(|e| EngineError::Internal(format!("counts of run {}: {e}", run.id)))
    }

    /// Saves them in the run (its next save stores them).
    pub(crate) fn put(&self, run: &mut RunRow) -> Result<(), EngineError> {
        run.counts =
            serde_json::to_value(self).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(())
    }
}

/// Progress of a pull, for the CLI's progress bar.
pub type Progress = Arc<dyn Fn(&RunCounts) + Send + Sync>;

/// A run as its pull job finds it.
pub(crate) enum Opened {
    /// Over already (a job run again after the run ended): its counts.
    Over(RunCounts),
    /// To be done: the run, its counts so far, and its connection.
    Open(Box<(RunRow, RunCounts, ConnectionRow)>),
}

impl Engine {
    /// Reads a run and its connection for the pull that executes it, and
    /// names them in the current span.
    pub(crate) async fn open_run(&self, run_id: &str) -> Result<Opened, EngineError> {
        let db = self.db();
        let run = runs::get(db.pool(), run_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let span = tracing::Span::current();
        span.record("connection", run.connection_id.as_str());
        span.record("channel", run.channel.as_str());
        let counts = RunCounts::of(&run)?;
        if matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
            return Ok(Opened::Over(counts));
        }
        let connection = connections::get(db.pool(), &run.connection_id)
            .await?
            .ok_or_else(|| {
                EngineError::Permanent("the connection of this run was deleted".into())
            })?;
        Ok(Opened::Open(Box::new((run, counts, connection))))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn ts(micros: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(micros).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl Engine {
    /// A Deposco client for a merchant's warehouse settings.
    pub fn deposco_client(
        &self,
        merchant: &shipsync_db::merchants::MerchantRow,
    ) -> Result<DeposcoClient, EngineError> {
        let w: serde_json::Value =
            serde_json::from_str(&merchant.warehouse_json).unwrap_or_default();
        let secrets: BTreeMap<String, String> = match &merchant.warehouse_secrets {
            Some(sealed) => serde_json::from_str(
                &self
                    .secrets()
                    .open_string(sealed)
                    .map_err(|e| EngineError::Permanent(e.to_string()))?,
            )
            .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let s = |k: &str| {
            w.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let auth_field = |k: &str| {
            w.pointer(&format!("/auth/{k}"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        // A secret cleared when the endpoint changed is never sent empty.
        let secret = |k: &str| {
            secrets
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| SecretString::from(v.clone()))
                .ok_or_else(|| {
                    EngineError::Permanent(format!(
                        "merchant {} has no Deposco {}: give warehouse.auth.{k} again (it is \
                         cleared when the API URL, business unit or token URL changes)",
                        merchant.name,
                        k.replace('_', " ")
                    ))
                })
        };
        let auth = match auth_field("type").as_str() {
            "basic" => Auth::Basic {
                username: auth_field("username"),
                password: secret("password")?,
            },
            "oauth" => Auth::OAuth {
                token_url: auth_field("token_url"),
                client_id: auth_field("client_id"),
                client_secret: secret("client_secret")?,
                refresh_token: secret("refresh_token")?,
            },
            _ => {
                return Err(EngineError::Permanent(format!(
                    "merchant {} has no Deposco credentials: set warehouse.auth",
                    merchant.name
                )));
            }
        };
        let mut config = DeposcoConfig::new(s("api_url"), s("business_unit"), auth);
        config.timeout = self.config().http_timeout.max(Duration::from_secs(10));
        let limiter = self.inner.stores.budgets().deposco(&config.limiter_key());
        Ok(DeposcoClient::new(
            self.inner.stores.http(),
            config,
            limiter,
        )?)
    }

    /// A queued run starts: `running`, with the lower bound of its pull fixed
    /// (the channel's cursor minus the overlap, or the first-pull window). A
    /// run already running (resumed after a crash) keeps its bound.
    pub(crate) async fn start_run(
        &self,
        run: &mut RunRow,
        since_override: Option<i64>,
    ) -> Result<(), EngineError> {
        if run.status != RunStatus::Queued {
            return Ok(());
        }
        let now = now_micros();
        let cursor = channels::cursor(self.db().pool(), &run.connection_id, run.channel).await?;
        run.status = RunStatus::Running;
        run.started_at = Some(now);
        run.since_at = Some(since_override.unwrap_or_else(|| match cursor {
            Some(c) => c - micros(PULL_OVERLAP),
            None => now - micros(FIRST_PULL_WINDOW),
        }));
        runs::save(self.db().pool(), run).await?;
        Ok(())
    }

    /// A run succeeded: the channel's next pull starts where this one
    /// started (minus the overlap).
    pub(crate) async fn finish_run(&self, run: &mut RunRow) -> Result<(), EngineError> {
        let now = now_micros();
        run.status = RunStatus::Succeeded;
        run.finished_at = Some(now);
        runs::save(self.db().pool(), run).await?;
        channels::complete_run(
            self.db().pool(),
            &run.connection_id,
            run.channel,
            run.started_at.unwrap_or(now),
            now,
        )
        .await?;
        Ok(())
    }

    /// Marks a run failed (the job gave up), and checks the alerts now
    /// (`run.failed` opens without waiting for the periodic check).
    pub(crate) async fn fail_run(&self, run_id: &str, message: &str) -> Result<(), EngineError> {
        if let Some(mut run) = runs::get(self.db().pool(), run_id).await? {
            run.status = RunStatus::Failed;
            run.error = Some(message.to_string());
            run.finished_at = Some(now_micros());
            runs::save(self.db().pool(), &run).await?;
            self.queue_alert_check().await?;
        }
        Ok(())
    }
}

/// The API view of a run.
pub fn run_json(r: &RunRow) -> serde_json::Value {
    let t = |m: Option<i64>| {
        m.and_then(|m| jiff::Timestamp::from_microsecond(m).ok())
            .map(|t| t.to_string())
    };
    serde_json::json!({
        "id": r.id,
        "status": r.status,
        "trigger": r.trigger_kind,
        "started_at": t(r.started_at),
        "finished_at": t(r.finished_at),
        "counts": r.counts,

        "error": r.error,
    })
}
