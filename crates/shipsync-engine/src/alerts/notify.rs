//! `NotifyAlerts{policy_id}`: sends a policy's grouped messages. Per
//! channel a cursor says which changes were sent; a message is due when
//! `shipsync_core::alerts::due_at` says (gather time after the first change,
//! at most one per `group_minutes`). A channel that fails is retried later
//! with backoff, on its own: the others are sent and their cursors move;
//! the cursor of a channel moves only when its server accepted the message.
//! The job then waits (deferred, no attempt counted) until the next due
//! time, if any.

use std::time::Duration;

use shipsync_core::alerts::{self as rules, AlertView, Cursor, Message};
use shipsync_db::alert_cursors::{self, AlertCursorRow};
use shipsync_db::{alert_policies, alerts, notification_channels, now_micros};

use crate::Engine;
use crate::error::EngineError;

/// Changes stamped this close to now are left for the next message: a
/// check committing them may still be under way.
const SETTLE: i64 = 1_000_000;
/// The longest wait between tries of a failing channel.
const RETRY_MAX: Duration = Duration::from_secs(30 * 60);

impl Engine {
    pub(crate) async fn notify_alerts(&self, policy_id: &str) -> Result<(), EngineError> {
        let pool = self.db().pool();
        let Some(policy) = alert_policies::get(pool, policy_id).await? else {
            return Ok(());
        };
        if !policy.doc.enabled {
            return Ok(());
        }
        let times = self.config().alerts;
        let gather = i64::try_from(times.gather.as_micros()).unwrap_or(30_000_000);
        let group = times.minutes(policy.doc.group_minutes);
        let notify_resolved = policy.doc.notify_resolved;
        let cursors = alert_cursors::of_policy(pool, policy_id).await?;
        let base = self.public_url();
        let mut next_due: Option<i64> = None;
        for channel_id in &policy.doc.channel_ids {
            let Some(channel) = notification_channels::get(pool, channel_id).await? else {
                continue;
            };
            let mut cursor = cursors
                .iter()
                .find(|c| &c.channel_id == channel_id)
                .cloned()
                // A new policy's channels start with what changed since it
                // was created; a channel added later, since that edit.
                .unwrap_or(AlertCursorRow {
                    policy_id: policy_id.to_string(),
                    channel_id: channel_id.clone(),
                    sent_through: policy.updated_at,
                    last_sent_at: None,
                    last_error: None,
                    failures: 0,
                    retry_at: None,
                });
            let now = now_micros();
            let through = now - SETTLE;
            let alerts: Vec<AlertView> =
                alerts::changed_since(pool, policy_id, cursor.sent_through)
                    .await?
                    .into_iter()
                    .map(|a| AlertView {
                        id: a.id,
                        event: a.event,
                        summary: a.summary,
                        opened_at: a.opened_at,
                        closed_at: a.closed_at,
                        subjects: a.subjects,
                    })
                    .collect();
            let plan = Cursor {
                sent_through: cursor.sent_through,
                last_sent_at: cursor.last_sent_at,
                retry_at: cursor.retry_at,
            };
            let first = rules::first_pending(&alerts, cursor.sent_through, notify_resolved);
            let Some(due) = rules::due_at(&plan, first, gather, group) else {
                continue;
            };
            if due > now || first.is_some_and(|f| f > through) {
                let at = due.max(first.unwrap_or(0) + SETTLE);
                next_due = Some(next_due.map_or(at, |n: i64| n.min(at)));
                continue;
            }
            let digest = rules::digest(&alerts, cursor.sent_through, through, notify_resolved);
            if digest.is_empty() {
                cursor.sent_through = through;
                alert_cursors::save(pool, &cursor).await?;
                continue;
            }
            let message = Message {
                policy_id,
                policy_name: &policy.doc.name,
                digest: &digest,
                base_url: base.as_deref(),
            };
            let result = match self.send_target(&channel) {
                Ok(target) => self
                    .send_to_channel(&target, &message)
                    .await
                    .map_err(|e| e.0),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => {
                    tracing::info!(policy = %policy_id, channel = %channel_id,
                        opened = digest.opened.len(), updated = digest.updated.len(),
                        resolved = digest.resolved.len(), "alert message sent");
                    cursor.sent_through = through;
                    cursor.last_sent_at = Some(now);
                    cursor.last_error = None;
                    cursor.failures = 0;
                    cursor.retry_at = None;
                    // What changed while this one was built waits for the window.
                    if let Some(f) = rules::first_pending(&alerts, through, notify_resolved) {
                        let at = f.max(now + group);
                        next_due = Some(next_due.map_or(at, |n: i64| n.min(at)));
                    }
                }
                Err(error) => {
                    tracing::warn!(policy = %policy_id, channel = %channel_id, "alert message not accepted: {error}");
                    let delay =
                        crate::worker::backoff(self.config(), cursor.failures, None).min(RETRY_MAX);
                    let at = now + i64::try_from(delay.as_micros()).unwrap_or(1_000_000);
                    cursor.last_error = Some(error);
                    cursor.failures += 1;
                    cursor.retry_at = Some(at);
                    next_due = Some(next_due.map_or(at, |n: i64| n.min(at)));
                }
            }
            alert_cursors::save(pool, &cursor).await?;
        }
        match next_due {
            None => Ok(()),
            Some(at) => Err(EngineError::Deferred {
                message: "the next alert message is not due yet".into(),
                after: Duration::from_micros(
                    u64::try_from((at - now_micros()).max(1_000)).unwrap_or(1_000),
                ),
            }),
        }
    }
}
