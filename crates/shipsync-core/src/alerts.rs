//! Alerts (issue 16), without I/O: which findings a policy covers, how its
//! alerts follow them (open, grow, close), when a policy's next message to a
//! channel is due, and what the message says.
//!
//! The engine finds what is in each condition now (a [`Finding`] per
//! record: a shipment in error, a channel whose last run failed…);
//! [`conditions`] keeps what a policy covers and groups it by scope;
//! [`reconcile`] compares that with the policy's alerts that are not closed.
//! Conditions are level-triggered: an alert stays while any of its subjects
//! is still in the condition and closes when none is; a later occurrence
//! opens a new alert.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::states::{AlertEvent, NotificationKind, SmtpTls, WebhookFormat};

/// The policy document, as stored and as the API shows it (ids apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDoc {
    pub name: String,
    pub events: Vec<AlertEvent>,
    /// Empty: every merchant.
    #[serde(default)]
    pub merchant_ids: Vec<String>,
    /// Empty: every connection.
    #[serde(default)]
    pub connection_ids: Vec<String>,
    pub channel_ids: Vec<String>,
    /// At most one message per channel per this many minutes.
    #[serde(default = "default_group_minutes")]
    pub group_minutes: u32,
    /// Whether closed alerts are announced.
    #[serde(default = "yes")]
    pub notify_resolved: bool,
    /// A disabled policy keeps its alerts but evaluates and sends nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `webhooks.stopped`: hours without an accepted webhook.
    #[serde(default = "default_webhooks_stopped_hours")]
    pub webhooks_stopped_hours: u32,
    /// `latency.high`: the p99 threshold (seconds).
    #[serde(default = "default_latency_p99_seconds")]
    pub latency_p99_seconds: u32,
    /// `latency.high`: the window of completed shipments (minutes).
    #[serde(default = "default_latency_window_minutes")]
    pub latency_window_minutes: u32,
}

fn default_group_minutes() -> u32 {
    15
}
fn yes() -> bool {
    true
}
fn default_webhooks_stopped_hours() -> u32 {
    6
}
fn default_latency_p99_seconds() -> u32 {
    60
}
fn default_latency_window_minutes() -> u32 {
    15
}

/// A notification channel's settings, secrets apart (the SMTP password is
/// sealed in its own column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelSettings {
    Email { smtp: SmtpSettings, to: Vec<String> },
    Webhook { url: String, format: WebhookFormat },
}

impl ChannelSettings {
    pub fn kind(&self) -> NotificationKind {
        match self {
            ChannelSettings::Email { .. } => NotificationKind::Email,
            ChannelSettings::Webhook { .. } => NotificationKind::Webhook,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub from: String,
}

/// The fewest shipments completed in the window for `latency.high` to be
/// judged: below that a p99 is one slow shipment, not a trend.
pub const LATENCY_MIN_SAMPLE: usize = 20;

/// A field of a document that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl PolicyDoc {
    /// The checks that need nothing but the document (the engine checks
    /// that the ids exist).
    pub fn check(&self) -> Result<(), FieldError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(FieldError::new(
                "name",
                "give a name of 1 to 200 characters",
            ));
        }
        if self.events.is_empty() {
            return Err(FieldError::new(
                "events",
                format!(
                    "choose at least one event of {}",
                    crate::states::listed(AlertEvent::ALL)
                ),
            ));
        }
        if self.channel_ids.is_empty() {
            return Err(FieldError::new(
                "channel_ids",
                "choose at least one notification channel",
            ));
        }
        let ranges = [
            ("group_minutes", self.group_minutes, 0, 1440),
            (
                "webhooks_stopped_hours",
                self.webhooks_stopped_hours,
                1,
                720,
            ),
            ("latency_p99_seconds", self.latency_p99_seconds, 1, 86_400),
            (
                "latency_window_minutes",
                self.latency_window_minutes,
                1,
                1440,
            ),
        ];
        for (field, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(FieldError::new(
                    field,
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        Ok(())
    }

    /// Whether the policy watches this finding: its event is chosen, and
    /// its merchant and connection are in the lists (empty lists: all). A
    /// finding without a merchant (installation-wide) or without a
    /// connection (merchant-wide) is not limited by that list.
    pub fn covers(&self, f: &Finding) -> bool {
        self.events.contains(&f.event)
            && (self.merchant_ids.is_empty()
                || f.merchant_id
                    .as_ref()
                    .is_none_or(|m| self.merchant_ids.contains(m)))
            && (self.connection_ids.is_empty()
                || f.connection_id
                    .as_ref()
                    .is_none_or(|c| self.connection_ids.contains(c)))
    }
}

/// What an alert is about: the whole installation, a merchant, or one
/// connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Installation,
    Merchant(String),
    Connection(String),
}

impl Scope {
    /// The stored key: `installation`, `merchant:<id>`, `connection:<id>`.
    pub fn key(&self) -> String {
        match self {
            Scope::Installation => "installation".into(),
            Scope::Merchant(id) => format!("merchant:{id}"),
            Scope::Connection(id) => format!("connection:{id}"),
        }
    }
}

/// One record in a condition now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub event: AlertEvent,
    pub scope: Scope,
    /// The merchant and connection the record belongs to (for the
    /// policy's lists), when it has them.
    pub merchant_id: Option<String>,
    pub connection_id: Option<String>,
    pub subject: Subject,
}

/// A record in an alert: its id (a shipment, an order, a connection's
/// channel `con_…/shipments`, a merchant…) and how messages name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subject {
    pub id: String,
    pub label: String,
}

/// A subject of a stored alert, with when it joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSubject {
    pub id: String,
    pub label: String,
    pub added_at: i64,
}

/// One condition of one policy for one scope, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub event: AlertEvent,
    pub scope: Scope,
    pub merchant_id: Option<String>,
    pub connection_id: Option<String>,
    /// Sorted by id, each once.
    pub subjects: Vec<Subject>,
}

/// The findings `policy` covers, grouped by (event, scope).
pub fn conditions(policy: &PolicyDoc, findings: &[Finding]) -> Vec<Condition> {
    let mut by_key: BTreeMap<(AlertEvent, Scope), Condition> = BTreeMap::new();
    for f in findings.iter().filter(|f| policy.covers(f)) {
        let c = by_key
            .entry((f.event, f.scope.clone()))
            .or_insert_with(|| Condition {
                event: f.event,
                scope: f.scope.clone(),
                merchant_id: match &f.scope {
                    Scope::Installation => None,
                    _ => f.merchant_id.clone(),
                },
                connection_id: match &f.scope {
                    Scope::Connection(id) => Some(id.clone()),
                    _ => None,
                },
                subjects: Vec::new(),
            });
        c.subjects.push(f.subject.clone());
    }
    by_key
        .into_values()
        .map(|mut c| {
            c.subjects.sort();
            c.subjects.dedup_by(|a, b| a.id == b.id);
            c
        })
        .collect()
}

/// An alert of the policy that is not closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub id: String,
    pub event: AlertEvent,
    pub scope_key: String,
    pub subjects: Vec<AlertSubject>,
}

/// What to do with the policy's alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A condition without an alert: open one.
    Open(Condition),
    /// Still in the condition, with subjects it did not have: add them.
    Grow {
        alert_id: String,
        added: Vec<Subject>,
    },
    /// Still in the condition, nothing new.
    Seen { alert_id: String },
    /// None of its subjects is in the condition any more.
    Close { alert_id: String },
}

/// The changes that bring the policy's alerts in line with `conditions`.
/// An alert whose subjects have all left the condition closes, even when
/// other records of its scope are in it now: those open a new alert.
pub fn reconcile(conditions: &[Condition], open: &[OpenAlert]) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut taken: BTreeSet<(AlertEvent, String)> = BTreeSet::new();
    for alert in open {
        let key = (alert.event, alert.scope_key.clone());
        let current = conditions
            .iter()
            .find(|c| c.event == alert.event && c.scope.key() == alert.scope_key);
        let still = current.filter(|c| {
            c.subjects
                .iter()
                .any(|s| alert.subjects.iter().any(|a| a.id == s.id))
        });
        // A second open alert of the same key (should not happen) closes.
        match still {
            Some(c) if !taken.contains(&key) => {
                taken.insert(key);
                let added: Vec<Subject> = c
                    .subjects
                    .iter()
                    .filter(|s| !alert.subjects.iter().any(|a| a.id == s.id))
                    .cloned()
                    .collect();
                changes.push(if added.is_empty() {
                    Change::Seen {
                        alert_id: alert.id.clone(),
                    }
                } else {
                    Change::Grow {
                        alert_id: alert.id.clone(),
                        added,
                    }
                });
            }
            _ => changes.push(Change::Close {
                alert_id: alert.id.clone(),
            }),
        }
    }
    for c in conditions {
        if !taken.contains(&(c.event, c.scope.key())) {
            changes.push(Change::Open(c.clone()));
        }
    }
    changes
}

/// What a policy's message to one channel has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Changes up to this time (µs) were sent.
    pub sent_through: i64,
    pub last_sent_at: Option<i64>,
    /// After a failure: not before this time.
    pub retry_at: Option<i64>,
}

/// When the next message is due (µs), given the earliest change not sent
/// yet: the first change after a quiet period waits `gather` (so that a
/// burst goes in one message), and messages are at least `group` apart.
/// `None`: nothing to send.
pub fn due_at(cursor: &Cursor, first_pending: Option<i64>, gather: i64, group: i64) -> Option<i64> {
    let first = first_pending?;
    let mut due = first.saturating_add(gather);
    if let Some(last) = cursor.last_sent_at {
        due = due.max(last.saturating_add(group));
    }
    if let Some(retry) = cursor.retry_at {
        due = due.max(retry);
    }
    Some(due)
}

/// An alert as messages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub id: String,
    pub event: AlertEvent,
    pub summary: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub subjects: Vec<AlertSubject>,
}

impl AlertView {
    /// The times of its changes a message announces.
    pub fn changes(&self, notify_resolved: bool) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.opened_at)
            .chain(self.subjects.iter().map(|s| s.added_at))
            .chain(self.closed_at.filter(|_| notify_resolved))
    }
}

/// The earliest change after `since` a message would announce.
pub fn first_pending(alerts: &[AlertView], since: i64, notify_resolved: bool) -> Option<i64> {
    alerts
        .iter()
        .flat_map(|a| a.changes(notify_resolved))
        .filter(|&t| t > since)
        .min()
}

/// One message: what opened, what grew (only the subjects added) and what
/// closed in `(since, through]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Digest {
    pub opened: Vec<AlertView>,
    pub updated: Vec<AlertView>,
    pub resolved: Vec<AlertView>,
}

impl Digest {
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.updated.is_empty() && self.resolved.is_empty()
    }
}

/// The message of the changes in `(since, through]`.
pub fn digest(alerts: &[AlertView], since: i64, through: i64, notify_resolved: bool) -> Digest {
    let within = |t: i64| t > since && t <= through;
    let mut d = Digest::default();
    for a in alerts {
        let closed_now = a.closed_at.is_some_and(within);
        if within(a.opened_at) {
            let mut opened = a.clone();
            opened.subjects.retain(|s| s.added_at <= through);
            d.opened.push(opened);
        } else if a.opened_at <= since && !closed_now {
            let added: Vec<AlertSubject> = a
                .subjects
                .iter()
                .filter(|s| within(s.added_at))
                .cloned()
                .collect();
            if !added.is_empty() {
                d.updated.push(AlertView {
                    subjects: added,
                    ..a.clone()
                });
            }
        }
        if notify_resolved && closed_now && a.opened_at <= through {
            d.resolved.push(a.clone());
        }
    }
    d
}

/// Where the UI shows a subject, from its id's prefix; `None` for a
/// subject without a page of its own.
pub fn subject_path(id: &str) -> Option<String> {
    // A failing event subscription is `mer_…/evs_…`.
    if let Some((merchant, sub)) = id.split_once('/')
        && merchant.starts_with("mer_")
        && sub.starts_with("evs_")
    {
        return Some(format!("/merchants/{merchant}/event-subscriptions/{sub}"));
    }
    let (prefix, _) = id.split_once('_')?;
    let page = match prefix {
        "shp" => "shipments",
        "ord" => "orders",
        "mer" => "merchants",
        "con" => "connections",
        _ => return None,
    };
    // A channel is `con_…/shipments`: its connection's page.
    let id = id.split('/').next().unwrap_or(id);
    Some(format!("/{page}/{id}"))
}

/// How many subjects a message lists per alert; the rest are counted.
pub const LISTED_SUBJECTS: usize = 50;

/// A policy's message for one channel, rendered.
pub struct Message<'a> {
    pub policy_id: &'a str,
    pub policy_name: &'a str,
    pub digest: &'a Digest,
    /// The UI's base URL (links), when known.
    pub base_url: Option<&'a str>,
}

impl Message<'_> {
    fn url(&self, path: &str) -> Option<String> {
        self.base_url
            .map(|b| format!("{}{path}", b.trim_end_matches('/')))
    }

    fn sections(&self) -> [(&'static str, &[AlertView]); 3] {
        [
            ("Opened", &self.digest.opened),
            ("More records", &self.digest.updated),
            ("Resolved", &self.digest.resolved),
        ]
    }

    /// The email subject line.
    pub fn subject(&self) -> String {
        let d = self.digest;
        let mut parts = Vec::new();
        if !d.opened.is_empty() {
            parts.push(format!("{} opened", d.opened.len()));
        }
        if !d.updated.is_empty() {
            parts.push(format!("{} updated", d.updated.len()));
        }
        if !d.resolved.is_empty() {
            parts.push(format!("{} resolved", d.resolved.len()));
        }
        format!(
            "[shipsync] {}: {}",
            self.policy_name,
            if parts.is_empty() {
                "test message".to_string()
            } else {
                parts.join(", ")
            }
        )
    }

    /// Plain text (the email body).
    pub fn text(&self) -> String {
        let mut out = format!("Alert policy \"{}\"\n", self.policy_name);
        if self.digest.is_empty() {
            out.push_str("\nA test message from shipsync: this channel works.\n");
        }
        for (title, alerts) in self.sections() {
            if alerts.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{title}:\n"));
            for a in alerts {
                out.push_str(&format!("- [{}] {}", a.event, a.summary));
                if let Some(u) = self.url(&format!("/alerts/{}", a.id)) {
                    out.push_str(&format!(" <{u}>"));
                }
                out.push('\n');
                for s in a.subjects.iter().take(LISTED_SUBJECTS) {
                    out.push_str(&format!("    {}", s.label));
                    if let Some(u) = subject_path(&s.id).and_then(|p| self.url(&p)) {
                        out.push_str(&format!(" <{u}>"));
                    }
                    out.push('\n');
                }
                if a.subjects.len() > LISTED_SUBJECTS {
                    out.push_str(&format!(
                        "    … and {} more\n",
                        a.subjects.len() - LISTED_SUBJECTS
                    ));
                }
            }
        }
        out
    }

    /// Slack's incoming webhook text (mrkdwn, links `<url|label>`).
    pub fn slack_text(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let link = |path: Option<String>, label: &str| match path.and_then(|p| self.url(&p)) {
            Some(u) => format!("<{u}|{}>", esc(label)),
            None => esc(label),
        };
        let mut out = format!("*shipsync alerts: {}*", esc(self.policy_name));
        if self.digest.is_empty() {
            out.push_str("\nA test message from shipsync: this channel works.");
        }
        for (title, alerts) in self.sections() {
            if alerts.is_empty() {
                continue;
            }
            out.push_str(&format!("\n*{title}*"));
            for a in alerts {
                out.push_str(&format!(
                    "\n• `{}` {}",
                    a.event,
                    link(Some(format!("/alerts/{}", a.id)), &a.summary)
                ));
                let listed: Vec<String> = a
                    .subjects
                    .iter()
                    .take(LISTED_SUBJECTS)
                    .map(|s| link(subject_path(&s.id), &s.label))
                    .collect();
                if !listed.is_empty() {
                    out.push_str(&format!("\n    {}", listed.join(", ")));
                }
                if a.subjects.len() > LISTED_SUBJECTS {
                    out.push_str(&format!(
                        " … and {} more",
                        a.subjects.len() - LISTED_SUBJECTS
                    ));
                }
            }
        }
        out
    }

    /// The generic JSON body.
    pub fn json(&self) -> serde_json::Value {
        let alerts = |list: &[AlertView]| -> Vec<serde_json::Value> {
            list.iter()
                .map(|a| {
                    serde_json::json!({
                        "id": a.id,
                        "event": a.event,
                        "summary": a.summary,
                        "url": self.url(&format!("/alerts/{}", a.id)),
                        "subjects": a.subjects.iter().map(|s| serde_json::json!({
                            "id": s.id,
                            "label": s.label,
                            "url": subject_path(&s.id).and_then(|p| self.url(&p)),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect()
        };
        serde_json::json!({
            "type": "alerts",
            "policy": {"id": self.policy_id, "name": self.policy_name},
            "opened": alerts(&self.digest.opened),
            "updated": alerts(&self.digest.updated),
            "resolved": alerts(&self.digest.resolved),
        })
    }
}

/// The summary of an alert: what is wrong, where, how many.
pub fn summary(event: AlertEvent, scope_name: &str, count: usize) -> String {
    let what = match event {
        AlertEvent::ShipmentError => format!("{count} shipment(s) in error"),
        AlertEvent::OrderError => format!("{count} order(s) in error"),
        AlertEvent::OrderNeedsAttention => format!("{count} order(s) need attention"),
        AlertEvent::RunFailed => format!("{count} channel(s) whose last run failed"),
        AlertEvent::RunMissed => format!("{count} channel(s) missed a scheduled run"),
        AlertEvent::CredentialsRefused => "credentials refused".into(),
        AlertEvent::WebhooksStopped => {
            format!("webhooks stopped; the pull found {count} shipment(s) meanwhile")
        }
        AlertEvent::LatencyHigh => "ship-to-store time (p99) above the threshold".into(),
        AlertEvent::RetriesExhausted => format!("{count} record(s) gave up after the last retry"),
        AlertEvent::IngestSaturated => "the webhook ingest queue is full (503 given)".into(),
    };
    format!("{scope_name}: {what}")
}

/// The `q`-quantile (0..=1) of `values` by nearest rank; `None` when empty.
pub fn quantile(values: &mut [i64], q: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
    values.get(rank.min(values.len()) - 1).copied()
}

#[cfg(test)]
mod tests;
