//! The OpenAPI schemas of notification channels, alert policies and alerts
//! (issue 16): what their answers hold, checked against real answers by the
//! OpenAPI test.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An event that can alert (see docs/contract.md and the README's catalogue).
#[derive(Serialize, Deserialize, ToSchema)]
pub enum AlertEventName {
    #[serde(rename = "shipment.error")]
    ShipmentError,
    #[serde(rename = "order.error")]
    OrderError,
    #[serde(rename = "order.needs_attention")]
    OrderNeedsAttention,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.missed")]
    RunMissed,
    #[serde(rename = "credentials.refused")]
    CredentialsRefused,
    #[serde(rename = "webhooks.stopped")]
    WebhooksStopped,
    #[serde(rename = "latency.high")]
    LatencyHigh,
    #[serde(rename = "retries.exhausted")]
    RetriesExhausted,
    #[serde(rename = "ingest.saturated")]
    IngestSaturated,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatusName {
    Open,
    Acknowledged,
    Closed,
}

/// SMTP settings as answers show them: the password never, only whether
/// one is held.
#[derive(Serialize, ToSchema)]
pub struct SmtpOut {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: String,
    pub username: Option<String>,
    pub from: String,
    pub password_set: bool,
}

/// A notification channel: `kind` `email` (with `smtp` and `to`) or
/// `webhook` (with `url` and `format`: `slack` or `json`).
#[derive(Serialize, ToSchema)]
pub struct NotificationChannel {
    /// `nch_…`
    pub id: String,
    pub name: String,
    /// `email` or `webhook`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `slack` or `json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// `POST /notification-channels` (and PATCH, as a merge patch).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct NotificationChannelInput {
    pub name: String,
    /// `email` or `webhook`.
    pub kind: String,
    /// Email: `{"host", "port", "tls": "none"|"starttls"|"tls", "username"?,
    /// "password"? (write-only), "from"}`.
    pub smtp: Option<serde_json::Value>,
    /// Email: the recipients (1 to 50).
    pub to: Option<Vec<String>>,
    /// Webhook: where messages are posted.
    pub url: Option<String>,
    /// Webhook: `slack` (default) or `json`.
    pub format: Option<String>,
}

/// The answer of a successful "Send test".
#[derive(Serialize, ToSchema)]
pub struct TestSent {
    pub sent: bool,
}

/// How a policy's messages to one of its channels went.
#[derive(Serialize, ToSchema)]
pub struct PolicyChannelState {
    pub channel_id: String,
    #[schema(format = DateTime)]
    pub last_sent_at: Option<String>,
    /// Why the last try failed (it is retried with backoff).
    pub last_error: Option<String>,
}

/// An alert policy.
#[derive(Serialize, ToSchema)]
pub struct AlertPolicy {
    /// `pol_…`
    pub id: String,
    pub name: String,
    pub events: Vec<AlertEventName>,
    /// Empty: every merchant.
    pub merchant_ids: Vec<String>,
    /// Empty: every connection.
    pub connection_ids: Vec<String>,
    pub channel_ids: Vec<String>,
    /// At most one message per channel per this many minutes (0–1440).
    pub group_minutes: u32,
    pub notify_resolved: bool,
    pub enabled: bool,
    /// `webhooks.stopped`: hours without an accepted webhook (1–720).
    pub webhooks_stopped_hours: u32,
    /// `latency.high`: p99 ship-to-store threshold, seconds.
    pub latency_p99_seconds: u32,
    /// `latency.high`: window of completed shipments, minutes.
    pub latency_window_minutes: u32,
    pub channels: Vec<PolicyChannelState>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// `POST /alert-policies` (and PATCH, as a merge patch).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct AlertPolicyInput {
    pub name: String,
    pub events: Vec<AlertEventName>,
    pub merchant_ids: Option<Vec<String>>,
    pub connection_ids: Option<Vec<String>>,
    pub channel_ids: Vec<String>,
    pub group_minutes: Option<u32>,
    pub notify_resolved: Option<bool>,
    pub enabled: Option<bool>,
    pub webhooks_stopped_hours: Option<u32>,
    pub latency_p99_seconds: Option<u32>,
    pub latency_window_minutes: Option<u32>,
}

/// A record in an alert.
#[derive(Serialize, ToSchema)]
pub struct AlertSubjectOut {
    /// `shp_…`, `ord_…`, `con_…/shipments`, `mer_…`, `ingest`
    pub id: String,
    pub label: String,
    #[schema(format = DateTime)]
    pub added_at: String,
    /// Its page in the UI, when it has one.
    pub path: Option<String>,
}

/// One condition of one policy for one scope.
#[derive(Serialize, ToSchema)]
pub struct Alert {
    /// `alr_…`
    pub id: String,
    pub policy_id: String,
    pub event: AlertEventName,
    /// Null for installation-wide alerts (`ingest.saturated`).
    pub merchant_id: Option<String>,
    /// Set for connection-scoped alerts.
    pub connection_id: Option<String>,
    /// Every record seen in the condition during the alert.
    pub subject_ids: Vec<String>,
    pub subjects: Vec<AlertSubjectOut>,
    pub count: usize,
    pub status: AlertStatusName,
    pub summary: String,
    #[schema(format = DateTime)]
    pub opened_at: String,
    #[schema(format = DateTime)]
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_seen_at: String,
}
