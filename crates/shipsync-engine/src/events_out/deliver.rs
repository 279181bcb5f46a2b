//! Job `deliver_event`: one attempt of one delivery, signed per Standard
//! Webhooks, recorded, and retried on the delivery's own schedule
//! ([`shipsync_core::outbound_events::retry_delay`]). Deliveries of one
//! subject to one subscription go in order: one waits while an earlier one
//! is pending, and the one that settles lets the next go.

use std::time::{Duration, Instant};

use rand::RngExt;
use shipsync_core::outbound_events::{retry_delay, signature_header};
use shipsync_core::states::DeliveryState;
use shipsync_db::event_deliveries::{self, AttemptRow, DeliveryRow};
use shipsync_db::jobs::{self, Job};
use shipsync_db::retries_exhausted::{self, ExhaustedRow};
use shipsync_db::{Tx, event_subscriptions, new_id, now_micros, outbound_events};

use crate::Engine;
use crate::error::EngineError;

/// The kind of a failing subscription in `retries_exhausted`.
const EXHAUSTED_KIND: &str = "event_subscription";

/// A failing subscription as the subject of a `retries.exhausted` alert:
/// `mer_…/evs_…` (its page is under its merchant's).
pub(crate) fn exhausted_subject(merchant_id: &str, subscription_id: &str) -> String {
    format!("{merchant_id}/{subscription_id}")
}

/// Answers read at most (a larger one is not kept, and not needed).
const ANSWER_CAP: usize = 64 * 1024;
/// The excerpt of an answer kept with its attempt.
const EXCERPT_BYTES: usize = 1024;
/// How long a delivery waiting for an earlier one looks again at the
/// latest, in case the earlier one's settling was missed.
const WAIT_LOOK_AGAIN: Duration = Duration::from_secs(5);

/// What one attempt got.
struct Outcome {
    status: Option<u16>,
    latency_ms: i64,
    excerpt: Option<String>,
    error: Option<String>,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// At most [`EXCERPT_BYTES`] of `body`, cut at a character boundary.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

/// Queues the next pending delivery of the same subject to the same
/// subscription after `d` (settled): it no longer waits.
async fn release_next(tx: &mut Tx<'_>, d: &DeliveryRow, now: i64) -> Result<bool, EngineError> {
    let Some(next) = event_deliveries::next_pending(&mut **tx, d).await? else {
        return Ok(false);
    };
    let at = next.next_attempt_at.unwrap_or(now).max(now);
    jobs::enqueue(
        &mut **tx,
        &Job::DeliverEvent {
            delivery_id: next.id,
        },
        at,
    )
    .await?;
    Ok(true)
}

impl Engine {
    /// Job `deliver_event`.
    #[tracing::instrument(name = "deliver_event", skip_all, fields(delivery = %delivery_id))]
    pub(crate) async fn deliver_event(&self, delivery_id: &str) -> Result<(), EngineError> {
        let db = self.db();
        let Some(d) = event_deliveries::get(db.pool(), delivery_id).await? else {
            return Ok(());
        };
        if d.state != DeliveryState::Pending {
            return Ok(());
        }
        let now = now_micros();
        if let Some(at) = d.next_attempt_at
            && at > now + 1_000
        {
            return Err(EngineError::Scheduled {
                message: "the delivery's next attempt is not due yet".into(),
                at,
            });
        }
        if let Some(earlier) = event_deliveries::earlier_pending(db.pool(), &d).await? {
            // It lets this one go when it settles; look again at its next
            // attempt anyway.
            let look = now + micros(WAIT_LOOK_AGAIN);
            let at = earlier.next_attempt_at.map_or(look, |t| t.max(look));
            return Err(EngineError::Scheduled {
                message: format!("waiting for the earlier delivery {}", earlier.id),
                at,
            });
        }
        let Some(sub) = event_subscriptions::get(db.pool(), &d.subscription_id).await? else {
            return Ok(());
        };
        if !sub.enabled {
            // Stays pending: switching the subscription on queues it again.
            return Ok(());
        }
        let Some(event) = outbound_events::get(db.pool(), &d.event_id).await? else {
            return Err(EngineError::Permanent(format!(
                "outbound event {} is gone",
                d.event_id
            )));
        };
        let secrets = self.secrets();
        let mut keys = vec![
            secrets
                .open(&sub.secret)
                .map_err(|e| EngineError::Permanent(e.to_string()))?,
        ];
        if let (Some(previous), Some(until)) = (&sub.previous_secret, sub.previous_until)
            && until > now
        {
            keys.push(
                secrets
                    .open(previous)
                    .map_err(|e| EngineError::Permanent(e.to_string()))?,
            );
        }
        let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let timestamp = now / 1_000_000;
        let signature = signature_header(&key_refs, &event.id, timestamp, event.body.as_bytes());
        let outcome = self
            .send_event(&sub.url, &event.id, timestamp, &signature, &event.body)
            .await;
        tracing::info!(
            event = %event.id,
            kind = %event.kind,
            subscription = %sub.id,
            status = outcome.status,
            ms = outcome.latency_ms,
            delivered = outcome.delivered(),
            "outbound event attempt"
        );
        self.record_attempt(delivery_id, now, outcome).await
    }

    /// POSTs the body; never fails (what went wrong is in the outcome).
    async fn send_event(
        &self,
        url: &str,
        id: &str,
        timestamp: i64,
        signature: &str,
        body: &str,
    ) -> Outcome {
        let started = Instant::now();
        let sent = self
            .inner
            .webhooks_http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string())
            .send()
            .await;
        let (status, excerpt, error) = match sent {
            Err(e) => {
                let why = match shipsync_outbound::refusal(&e) {
                    Some(r) => r.to_string(),
                    None if e.is_timeout() => "no answer within the timeout".to_string(),
                    None if e.is_connect() => "could not connect".to_string(),
                    None => "the request failed".to_string(),
                };
                (None, None, Some(why))
            }
            Ok(answer) => {
                let status = answer.status().as_u16();
                let (excerpt, read_error) =
                    match shipsync_outbound::read_capped(answer, ANSWER_CAP).await {
                        Ok(b) => (Some(excerpt(&b)), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                let error = if (200..300).contains(&status) {
                    None
                } else {
                    Some(read_error.unwrap_or_else(|| format!("answered HTTP {status}")))
                };
                (Some(status), excerpt, error)
            }
        };
        Outcome {
            status,
            latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            excerpt,
            error,
        }
    }

    /// Records an attempt and what follows: delivered (the subscription
    /// active again), another attempt later, or failed for good (the
    /// subscription failing). A settled delivery lets the next one go.
    async fn record_attempt(
        &self,
        delivery_id: &str,
        at: i64,
        outcome: Outcome,
    ) -> Result<(), EngineError> {
        let mut tx = self.db().begin().await?;
        let Some(mut d) = event_deliveries::get_for_update(&mut tx, delivery_id).await? else {
            return Ok(());
        };
        let now = now_micros();
        let attempt = AttemptRow {
            id: new_id("att"),
            delivery_id: d.id.clone(),
            at,
            status_code: outcome.status.map(i64::from),
            latency_ms: outcome.latency_ms,
            excerpt: outcome.excerpt.clone(),
            error: outcome.error.clone(),
        };
        event_deliveries::add_attempt(&mut *tx, &attempt).await?;
        d.updated_at = now;
        d.last_error = outcome.error.clone();
        let mut next_at = None;
        // The subscription went failing or recovered: the alerts look again.
        let mut alerts_changed = false;
        if outcome.delivered() {
            d.state = DeliveryState::Delivered;
            d.next_attempt_at = None;
            if event_subscriptions::mark_active(&mut *tx, &d.subscription_id).await? {
                tracing::info!(subscription = %d.subscription_id, "event subscription active again");
                if let Some(sub) = event_subscriptions::get(&mut *tx, &d.subscription_id).await? {
                    retries_exhausted::clear(
                        &mut *tx,
                        &exhausted_subject(&sub.merchant_id, &sub.id),
                    )
                    .await?;
                }
                alerts_changed = true;
            }
        } else {
            d.tries += 1;
            let jitter = rand::rng().random_range(-1.0..=1.0);
            let failed = usize::try_from(d.tries).unwrap_or(usize::MAX);
            match retry_delay(&self.config().event_retry_delays, failed, jitter) {
                Some(delay) => {
                    let t = now + micros(delay);
                    d.next_attempt_at = Some(t);
                    next_at = Some(t);
                }
                None => {
                    d.state = DeliveryState::Failed;
                    d.next_attempt_at = None;
                    event_subscriptions::mark_failing(&mut *tx, &d.subscription_id, now).await?;
                    tracing::warn!(subscription = %d.subscription_id, attempts = d.tries, "event delivery failed after every retry: subscription failing");
                    // The `retries.exhausted` alert's subject, until a
                    // delivery succeeds again.
                    if let Some(sub) =
                        event_subscriptions::get(&mut *tx, &d.subscription_id).await?
                    {
                        let error = format!(
                            "event deliveries to {} failed after {} attempt(s): {}",
                            sub.url,
                            d.tries,
                            outcome.error.as_deref().unwrap_or("not delivered")
                        );
                        let row = ExhaustedRow {
                            subject_id: exhausted_subject(&sub.merchant_id, &sub.id),
                            kind: EXHAUSTED_KIND.into(),
                            merchant_id: Some(sub.merchant_id.clone()),
                            connection_id: None,
                            error,
                            at: now,
                        };
                        retries_exhausted::record(&mut *tx, &row).await?;
                    }
                    alerts_changed = true;
                }
            }
        }
        event_deliveries::update(&mut *tx, &d).await?;
        let released = d.state != DeliveryState::Pending && release_next(&mut tx, &d, now).await?;
        tx.commit().await?;
        if released {
            self.wake();
        }
        if alerts_changed {
            self.queue_alert_check().await?;
        }
        match next_at {
            Some(at) => Err(EngineError::Scheduled {
                message: format!(
                    "attempt {} failed: {}",
                    d.tries,
                    outcome.error.as_deref().unwrap_or("not delivered")
                ),
                at,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_utf8() {
        assert_eq!(excerpt(b"ok"), "ok");
        let long = "é".repeat(1000);
        let e = excerpt(long.as_bytes());
        assert!(e.len() <= EXCERPT_BYTES && e.len() >= EXCERPT_BYTES - 1);
        assert!(e.chars().all(|c| c == 'é'));
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
