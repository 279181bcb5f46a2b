//! `CheckAlerts`: evaluates every enabled policy's conditions and brings its
//! alerts in line (open, grow, close), then queues the policy's messages.
//! One run at a time across nodes (the job's dedupe key); queued every
//! `SHIPSYNC_ALERT_CHECK_SECS` by the scheduler (a compare-and-set in
//! `meta` picks one node), and at once when a shipment or an order goes to
//! error.

use std::collections::HashMap;

use shipsync_core::alerts::{self as rules, AlertSubject, Change, OpenAlert};
use shipsync_core::states::AlertStatus;
use shipsync_db::alerts::{self, AlertRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::{alert_policies, connections, merchants, meta, new_id, now_micros};

use super::findings::Names;
use crate::Engine;
use crate::error::EngineError;

/// The periodic task's name in `meta`.
const TASK: &str = "check_alerts";

impl Engine {
    /// Queues `CheckAlerts` when its interval has passed (one node wins)
    /// and some policy is enabled (an installation without alerts runs no
    /// job for them).
    pub(crate) async fn alerts_tick(&self) -> Result<(), EngineError> {
        let every =
            i64::try_from(self.config().alerts.check_every.as_micros()).unwrap_or(30_000_000);
        if meta::claim_periodic(self.db(), TASK, now_micros(), every, 0).await?
            && alert_policies::list(self.db().pool())
                .await?
                .iter()
                .any(|p| p.doc.enabled)
        {
            self.queue_alert_check().await?;
        }
        Ok(())
    }

    /// Queues `CheckAlerts` now (after a change that may open an alert).
    pub(crate) async fn queue_alert_check(&self) -> Result<(), EngineError> {
        jobs::enqueue(self.db().pool(), &Job::CheckAlerts, now_micros()).await?;
        self.wake();
        Ok(())
    }

    /// One pass over every enabled policy.
    pub(crate) async fn check_alerts(&self) -> Result<(), EngineError> {
        let pool = self.db().pool();
        let policies: Vec<_> = alert_policies::list(pool)
            .await?
            .into_iter()
            .filter(|p| p.doc.enabled)
            .collect();
        if policies.is_empty() {
            return Ok(());
        }
        let names = Names {
            merchants: merchants::list(pool, None, i64::MAX)
                .await?
                .into_iter()
                .map(|m| (m.id, m.name))
                .collect(),
            connections: connections::list(pool, None, None, i64::MAX)
                .await?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect(),
        };
        let now = now_micros();
        for policy in policies {
            let mut findings = Vec::new();
            for event in &policy.doc.events {
                findings.extend(self.findings(*event, &policy.doc, &names, now).await?);
            }
            let conditions = rules::conditions(&policy.doc, &findings);
            let stored = alerts::not_closed(pool, &policy.id).await?;
            let open: Vec<OpenAlert> = stored
                .iter()
                .map(|a| OpenAlert {
                    id: a.id.clone(),
                    event: a.event,
                    scope_key: a.scope_key.clone(),
                    subjects: a.subjects.clone(),
                })
                .collect();
            let by_id: HashMap<&str, &AlertRow> =
                stored.iter().map(|a| (a.id.as_str(), a)).collect();
            let changes = rules::reconcile(&conditions, &open);
            let mut announced = false;
            let mut tx = self.db().begin().await?;
            for change in changes {
                match change {
                    Change::Open(c) => {
                        announced = true;
                        let scope_name =
                            names.scope(c.merchant_id.as_deref(), c.connection_id.as_deref());
                        let a = AlertRow {
                            id: new_id("alr"),
                            policy_id: policy.id.clone(),
                            event: c.event,
                            scope_key: c.scope.key(),
                            merchant_id: c.merchant_id.clone(),
                            connection_id: c.connection_id.clone(),
                            summary: rules::summary(c.event, &scope_name, c.subjects.len()),
                            subjects: c
                                .subjects
                                .into_iter()
                                .map(|s| AlertSubject {
                                    id: s.id,
                                    label: s.label,
                                    added_at: now,
                                })
                                .collect(),
                            status: AlertStatus::Open,
                            opened_at: now,
                            grown_at: None,
                            acknowledged_at: None,
                            acknowledged_by: None,
                            closed_at: None,
                            last_seen_at: now,
                        };
                        tracing::info!(alert = %a.id, policy = %policy.id, event = %a.event, "alert opened: {}", a.summary);
                        alerts::insert(&mut *tx, &a).await?;
                    }
                    Change::Grow { alert_id, added } => {
                        let Some(a) = by_id.get(alert_id.as_str()) else {
                            continue;
                        };
                        announced = true;
                        let mut a = (*a).clone();
                        a.subjects.extend(added.into_iter().map(|s| AlertSubject {
                            id: s.id,
                            label: s.label,
                            added_at: now,
                        }));
                        let scope_name =
                            names.scope(a.merchant_id.as_deref(), a.connection_id.as_deref());
                        a.summary = rules::summary(a.event, &scope_name, a.subjects.len());
                        a.grown_at = Some(now);
                        a.last_seen_at = now;
                        alerts::seen(&mut *tx, &a).await?;
                    }
                    Change::Seen { alert_id } => {
                        if let Some(a) = by_id.get(alert_id.as_str()) {
                            let mut a = (*a).clone();
                            a.last_seen_at = now;
                            alerts::seen(&mut *tx, &a).await?;
                        }
                    }
                    Change::Close { alert_id } => {
                        announced |= policy.doc.notify_resolved;
                        tracing::info!(alert = %alert_id, policy = %policy.id, "alert closed");
                        alerts::close(&mut *tx, &alert_id, now).await?;
                    }
                }
            }
            if announced {
                jobs::enqueue(
                    &mut *tx,
                    &Job::NotifyAlerts {
                        policy_id: policy.id.clone(),
                    },
                    now,
                )
                .await?;
            }
            tx.commit().await.map_err(shipsync_db::DbError::from)?;
            if announced {
                self.wake();
            }
        }
        Ok(())
    }
}
