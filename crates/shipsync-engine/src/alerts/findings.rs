//! The condition sources: for each event, the records in its condition
//! now. One `match` arm per event; `retries.exhausted` reads a table any
//! flow can add its kind of subject to (see `shipsync_db::retries_exhausted`).

use std::collections::{BTreeMap, HashMap};

use shipsync_core::alerts::{Finding, LATENCY_MIN_SAMPLE, PolicyDoc, Scope, Subject, quantile};
use shipsync_core::schedule;
use shipsync_core::states::{AlertEvent, OrderStatus, ShipmentStatus, StoreStatus};
use shipsync_db::connections::ConnectionRow;
use shipsync_db::{
    channels, conditions, meta, orders, retries_exhausted, shipments, warehouse_refusals,
};

use crate::Engine;
use crate::error::EngineError;

/// The `meta` key holding when the ingest last answered 503 (µs).
pub(crate) const INGEST_SATURATED_AT: &str = "ingest_saturated_at";
/// How long after the last 503 `ingest.saturated` stays active.
const SATURATED_FOR: i64 = 5 * 60 * 1_000_000;
/// `webhooks.stopped` looks at merchants with webhook-first shipments this
/// recent.
const WEBHOOK_SENDERS_WITHIN: i64 = 7 * 24 * 3600 * 1_000_000;
/// A scheduled slot counts as missed this many policy minutes after it
/// passed without a run.
pub(crate) const MISSED_GRACE_MINUTES: u32 = 10;

/// What the sources need besides the database: names for labels.
pub(crate) struct Names {
    pub merchants: HashMap<String, String>,
    pub connections: HashMap<String, ConnectionRow>,
}

impl Names {
    pub fn merchant(&self, id: &str) -> String {
        self.merchants
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// How an alert's scope is named in its summary.
    pub fn scope(&self, merchant_id: Option<&str>, connection_id: Option<&str>) -> String {
        match (connection_id, merchant_id) {
            (Some(c), _) => self.connection(c),
            (None, Some(m)) => self.merchant(m),
            (None, None) => "shipsync".into(),
        }
    }

    pub fn connection(&self, id: &str) -> String {
        self.connections
            .get(id)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

fn merchant_finding(
    event: AlertEvent,
    (id, merchant_id, connection_id, label): conditions::Record,
) -> Finding {
    Finding {
        event,
        scope: Scope::Merchant(merchant_id.clone()),
        merchant_id: Some(merchant_id),
        connection_id,
        subject: Subject { id, label },
    }
}

impl Engine {
    /// The records in `event`'s condition now, with `policy`'s thresholds.
    pub(crate) async fn findings(
        &self,
        event: AlertEvent,
        policy: &PolicyDoc,
        names: &Names,
        now: i64,
    ) -> Result<Vec<Finding>, EngineError> {
        let pool = self.db().pool();
        let times = self.config().alerts;
        Ok(match event {
            AlertEvent::ShipmentError => conditions::shipments_in(pool, ShipmentStatus::Error)
                .await?
                .into_iter()
                .map(|r| merchant_finding(event, r))
                .collect(),
            AlertEvent::OrderError | AlertEvent::OrderNeedsAttention => {
                let status = if event == AlertEvent::OrderError {
                    OrderStatus::Error
                } else {
                    OrderStatus::NeedsAttention
                };
                conditions::orders_in(pool, status)
                    .await?
                    .into_iter()
                    .map(|r| merchant_finding(event, r))
                    .collect()
            }
            AlertEvent::RunFailed => conditions::failed_channels(pool)
                .await?
                .into_iter()
                .map(
                    |(connection_id, merchant_id, name, channel, error)| Finding {
                        event,
                        scope: Scope::Connection(connection_id.clone()),
                        merchant_id: Some(merchant_id),
                        subject: Subject {
                            id: format!("{connection_id}/{channel}"),
                            label: format!(
                                "{name}: the last {channel} run failed ({})",
                                error.unwrap_or_default()
                            ),
                        },
                        connection_id: Some(connection_id),
                    },
                )
                .collect(),
            AlertEvent::RunMissed => {
                self.missed_runs(names, now, times.minutes(MISSED_GRACE_MINUTES))
                    .await?
            }
            AlertEvent::CredentialsRefused => {
                let mut out: Vec<Finding> = names
                    .connections
                    .values()
                    .filter(|c| c.enabled && c.store_status == StoreStatus::ReconnectNeeded)
                    .map(|c| Finding {
                        event,
                        scope: Scope::Connection(c.id.clone()),
                        merchant_id: Some(c.merchant_id.clone()),
                        connection_id: Some(c.id.clone()),
                        subject: Subject {
                            id: c.id.clone(),
                            label: format!(
                                "{}: the store refused the credentials ({})",
                                c.name,
                                c.store_error.clone().unwrap_or_default()
                            ),
                        },
                    })
                    .collect();
                for (merchant_id, _, error) in warehouse_refusals::all(pool).await? {
                    out.push(Finding {
                        event,
                        scope: Scope::Merchant(merchant_id.clone()),
                        merchant_id: Some(merchant_id.clone()),
                        connection_id: None,
                        subject: Subject {
                            label: format!(
                                "{}: the warehouse refused the credentials ({error})",
                                names.merchant(&merchant_id)
                            ),
                            id: merchant_id,
                        },
                    });
                }
                out.sort_by(|a, b| a.subject.id.cmp(&b.subject.id));
                out
            }
            AlertEvent::WebhooksStopped => {
                let quiet = times.minutes(policy.webhooks_stopped_hours.saturating_mul(60));
                let mut out = Vec::new();
                for (merchant_id, _) in
                    conditions::webhook_merchants(pool, now - WEBHOOK_SENDERS_WITHIN).await?
                {
                    let last = conditions::last_webhook_at(self.db(), &merchant_id).await?;
                    if last.is_some_and(|l| l >= now - quiet) {
                        continue;
                    }
                    // Found by the pull in those hours, after the last webhook.
                    let since = last.unwrap_or(0).max(now - quiet);
                    for r in conditions::polled_since(pool, &merchant_id, since).await? {
                        out.push(merchant_finding(event, r));
                    }
                }
                out
            }
            AlertEvent::LatencyHigh => {
                let window = times.minutes(policy.latency_window_minutes);
                let mut by_merchant: BTreeMap<String, Vec<i64>> = BTreeMap::new();
                for (m, received, completed) in conditions::completions(pool, now - window).await? {
                    by_merchant.entry(m).or_default().push(completed - received);
                }
                let threshold = i64::from(policy.latency_p99_seconds) * 1_000_000;
                by_merchant
                    .into_iter()
                    .filter(|(_, v)| v.len() >= LATENCY_MIN_SAMPLE)
                    .filter_map(|(m, mut v)| {
                        let n = v.len();
                        let p99 = quantile(&mut v, 0.99)?;
                        (p99 > threshold).then(|| Finding {
                            event,
                            scope: Scope::Merchant(m.clone()),
                            merchant_id: Some(m.clone()),
                            connection_id: None,
                            subject: Subject {
                                label: format!(
                                    "{}: p99 ship-to-store time {} s over {n} shipments (threshold {} s)",
                                    names.merchant(&m),
                                    p99 / 1_000_000,
                                    policy.latency_p99_seconds
                                ),
                                id: m,
                            },
                        })
                    })
                    .collect()
            }
            AlertEvent::RetriesExhausted => self.exhausted().await?,
            AlertEvent::IngestSaturated => {
                let at = meta::get(pool, INGEST_SATURATED_AT)
                    .await?
                    .and_then(|v| v.parse::<i64>().ok());
                match at {
                    Some(at) if now - at < SATURATED_FOR => vec![Finding {
                        event,
                        scope: Scope::Installation,
                        merchant_id: None,
                        connection_id: None,
                        subject: Subject {
                            id: "ingest".into(),
                            label: "The webhook ingest answered 503 (queue full)".into(),
                        },
                    }],
                    _ => Vec::new(),
                }
            }
        })
    }

    /// Enabled channels whose latest schedule slot passed more than
    /// `grace` ago without a run created since (a run still queued or
    /// running counts as having run).
    async fn missed_runs(
        &self,
        names: &Names,
        now: i64,
        grace: i64,
    ) -> Result<Vec<Finding>, EngineError> {
        let pool = self.db().pool();
        let Ok(cutoff) = jiff::Timestamp::from_microsecond(now - grace) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for ch in channels::enabled(pool).await? {
            let Some(conn) = names.connections.get(&ch.connection_id) else {
                continue;
            };
            let Ok(rules) = schedule::parse_schedules(&ch.schedules) else {
                continue;
            };
            let Some(slot) = rules.iter().filter_map(|r| r.previous_fire(cutoff)).max() else {
                continue;
            };
            let slot = slot.as_microsecond();
            if slot < conn.created_at.max(conn.updated_at) {
                continue;
            }
            if conditions::ran_since(pool, &ch.connection_id, ch.channel.as_str(), slot).await? {
                continue;
            }
            out.push(Finding {
                event: AlertEvent::RunMissed,
                scope: Scope::Connection(conn.id.clone()),
                merchant_id: Some(conn.merchant_id.clone()),
                connection_id: Some(conn.id.clone()),
                subject: Subject {
                    id: format!("{}/{}", conn.id, ch.channel),
                    label: format!(
                        "{}: the {} channel did not run when due",
                        conn.name, ch.channel
                    ),
                },
            });
        }
        Ok(out)
    }

    /// Subjects that ran out of retries and are still in error; rows of
    /// shipments and orders that left error are cleared.
    async fn exhausted(&self) -> Result<Vec<Finding>, EngineError> {
        let pool = self.db().pool();
        let mut out = Vec::new();
        for r in retries_exhausted::all(pool).await? {
            let label = match r.kind.as_str() {
                retries_exhausted::SHIPMENT => match shipments::get(pool, &r.subject_id).await? {
                    Some(s) if s.status == ShipmentStatus::Error => {
                        Some(format!("Shipment {} (order {})", s.number, s.order_name))
                    }
                    _ => None,
                },
                retries_exhausted::ORDER => match orders::get(pool, &r.subject_id).await? {
                    Some(o) if o.status == OrderStatus::Error => Some(format!("Order {}", o.name)),
                    _ => None,
                },
                other => Some(format!("{other} {}", r.subject_id)),
            };
            let Some(label) = label else {
                retries_exhausted::clear(pool, &r.subject_id).await?;
                continue;
            };
            out.push(Finding {
                event: AlertEvent::RetriesExhausted,
                scope: match &r.merchant_id {
                    Some(m) => Scope::Merchant(m.clone()),
                    None => Scope::Installation,
                },
                merchant_id: r.merchant_id.clone(),
                connection_id: r.connection_id.clone(),
                subject: Subject {
                    id: r.subject_id.clone(),
                    label: format!("{label}: {}", r.error),
                },
            });
        }
        Ok(out)
    }
}
