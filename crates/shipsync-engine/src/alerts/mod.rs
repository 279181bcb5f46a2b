//! Alerts (issue 16, part A): notification channels (email, webhook),
//! alert policies, and the alerts they raise. The conditions are checked by
//! the periodic `CheckAlerts` job (`check.rs`, sources in `findings.rs`);
//! messages go out grouped per policy and channel from the `NotifyAlerts`
//! job (`notify.rs`, sending in `send.rs`). The pure rules are in
//! `shipsync_core::alerts`.
//!
//! This file: the resources as the API edits them (checks, sealing the SMTP
//! password, merge patch) and reading and acknowledging alerts.

mod check;
mod findings;
mod hooks;
mod notify;
pub mod send;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use shipsync_core::alerts::{ChannelSettings, PolicyDoc, SmtpSettings};
use shipsync_core::states::{AlertStatus, NotificationKind, SmtpTls, WebhookFormat};
use shipsync_db::alert_cursors::AlertCursorRow;
use shipsync_db::alert_policies::AlertPolicyRow;
use shipsync_db::alerts::{AlertFilter, AlertRow};
use shipsync_db::notification_channels::NotificationChannelRow;
use shipsync_db::{
    alert_cursors, alert_policies, alerts, connections, merchants, new_id, notification_channels,
    now_micros,
};

use crate::Engine;
use crate::edit::{Caller, EditError, EditResult, check_url, merge_patch};

pub use send::SendError;

/// The timing of alerts (see [`crate::EngineConfig::alerts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertTimes {
    /// How often `CheckAlerts` runs (30 s).
    pub check_every: Duration,
    /// How long the first change after a quiet period waits for more (30 s).
    pub gather: Duration,
    /// A policy's minute (60 s; shorter in tests).
    pub minute: Duration,
}

impl Default for AlertTimes {
    fn default() -> Self {
        Self {
            check_every: Duration::from_secs(30),
            gather: Duration::from_secs(30),
            minute: Duration::from_secs(60),
        }
    }
}

impl AlertTimes {
    /// `n` of a policy's minutes, in microseconds.
    pub fn minutes(&self, n: u32) -> i64 {
        i64::try_from(self.minute.as_micros())
            .unwrap_or(60_000_000)
            .saturating_mul(i64::from(n))
    }
}

/// A channel as answers show it: settings, and whether a password is held.
#[derive(Debug, Clone)]
pub struct ChannelView {
    pub row: NotificationChannelRow,
    pub password_set: bool,
}

impl From<NotificationChannelRow> for ChannelView {
    fn from(row: NotificationChannelRow) -> Self {
        Self {
            password_set: row.smtp_password.is_some(),
            row,
        }
    }
}

/// A policy as answers show it, with how sending to each channel went.
#[derive(Debug, Clone)]
pub struct PolicyView {
    pub row: AlertPolicyRow,
    pub cursors: Vec<AlertCursorRow>,
}

/// Reads `doc[key]` as `T`, or 422 naming the key.
fn field<T: DeserializeOwned>(doc: &Map<String, Value>, key: &str) -> EditResult<Option<T>> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| EditError::invalid(key, e)),
    }
}

fn required<T: DeserializeOwned>(doc: &Map<String, Value>, key: &str, what: &str) -> EditResult<T> {
    field(doc, key)?.ok_or_else(|| EditError::invalid(key, format!("is required: {what}")))
}

fn object(doc: &Value) -> EditResult<&Map<String, Value>> {
    doc.as_object()
        .ok_or_else(|| EditError::Malformed("the body must be a JSON object".into()))
}

fn check_name(name: &str) -> EditResult<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(EditError::invalid(
            "name",
            "give a name of 1 to 200 characters",
        ));
    }
    Ok(())
}

/// What a document says of the SMTP password.
enum Password {
    Keep,
    Clear,
    Set(String),
}

/// The password given at `smtp.password` (taken out of the document).
fn take_password(doc: &mut Value) -> EditResult<Password> {
    let Some(smtp) = doc.get_mut("smtp").and_then(Value::as_object_mut) else {
        return Ok(Password::Keep);
    };
    match smtp.remove("password") {
        None => Ok(Password::Keep),
        Some(Value::Null) => Ok(Password::Clear),
        Some(Value::String(p)) if p.is_empty() => Ok(Password::Clear),
        Some(Value::String(p)) => Ok(Password::Set(p)),
        Some(_) => Err(EditError::invalid("smtp.password", "must be a string")),
    }
}

fn check_address(field_name: &str, a: &str) -> EditResult<()> {
    a.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| EditError::invalid(field_name, format!("{a:?} is not an email address ({e})")))
}

/// The channel a document describes (without its password).
fn parse_channel(doc: &Value) -> EditResult<(String, ChannelSettings)> {
    let d = object(doc)?;
    let name: String = required(d, "name", "how the channel is called")?;
    check_name(&name)?;
    let kind: NotificationKind = required(d, "kind", "email or webhook")?;
    let settings = match kind {
        NotificationKind::Email => {
            let smtp = d.get("smtp").and_then(Value::as_object).ok_or_else(|| {
                EditError::invalid(
                    "smtp",
                    "is required for an email channel: {\"host\", \"port\", \"tls\", \"from\"}",
                )
            })?;
            let sub = |k: &str| format!("smtp.{k}");
            let host: String = field(smtp, "host")
                .map_err(|_| EditError::invalid(&sub("host"), "must be a host name"))?
                .ok_or_else(|| EditError::invalid(&sub("host"), "is required"))?;
            if host.is_empty()
                || host.len() > 253
                || host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':')
            {
                return Err(EditError::invalid(
                    &sub("host"),
                    "must be a host name such as smtp.example.com",
                ));
            }
            let port = match smtp.get("port") {
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0),
                _ => None,
            }
            .ok_or_else(|| {
                EditError::invalid(
                    &sub("port"),
                    "must be a port number from 1 to 65535 (587 for STARTTLS, 465 for TLS)",
                )
            })?;
            let tls: SmtpTls = match smtp.get("tls") {
                None => SmtpTls::Starttls,
                Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                    EditError::invalid(&sub("tls"), "must be none, starttls or tls")
                })?,
            };
            let username: Option<String> = field(smtp, "username")
                .map_err(|_| EditError::invalid(&sub("username"), "must be a string"))?;
            let from: String = field(smtp, "from")
                .map_err(|_| EditError::invalid(&sub("from"), "must be an email address"))?
                .ok_or_else(|| {
                    EditError::invalid(&sub("from"), "is required: the sender's address")
                })?;
            check_address(&sub("from"), &from)?;
            let to: Vec<String> = field(d, "to")?.unwrap_or_default();
            if to.is_empty() || to.len() > 50 {
                return Err(EditError::invalid("to", "give 1 to 50 recipient addresses"));
            }
            for a in &to {
                check_address("to", a)?;
            }
            ChannelSettings::Email {
                smtp: SmtpSettings {
                    host,
                    port,
                    tls,
                    username: username.filter(|u| !u.is_empty()),
                    from,
                },
                to,
            }
        }
        NotificationKind::Webhook => {
            let url: String = required(d, "url", "where messages are posted")?;
            check_url(&url, "url")?;
            let format: WebhookFormat = field(d, "format")?.unwrap_or(WebhookFormat::Slack);
            ChannelSettings::Webhook { url, format }
        }
    };
    Ok((name, settings))
}

/// A channel as a document (for merge patches): what answers show, less
/// `password_set`.
fn channel_doc(row: &NotificationChannelRow) -> Value {
    let mut doc = serde_json::to_value(&row.settings).unwrap_or_default();
    if let Some(o) = doc.as_object_mut() {
        o.insert("name".into(), row.name.clone().into());
    }
    doc
}

impl Engine {
    /// Sends `message` to a channel: email with the outbound-address
    /// policy, webhooks with the engine's webhook client; the store call
    /// timeout bounds each step.
    pub(crate) async fn send_to_channel(
        &self,
        target: &send::Target<'_>,
        message: &shipsync_core::alerts::Message<'_>,
    ) -> Result<(), SendError> {
        send::send(
            target,
            message,
            &self.inner.webhooks_http,
            self.config().target_policy(),
            self.config().http_timeout,
        )
        .await
    }

    /// 422 `private_target` when the channel would send where the
    /// outbound-address policy forbids.
    async fn check_channel_target(&self, settings: &ChannelSettings) -> EditResult<()> {
        match settings {
            ChannelSettings::Webhook { url, .. } => self.check_public("url", url).await,
            ChannelSettings::Email { smtp, .. } => {
                let url = format!("smtp://{}:{}", smtp.host, smtp.port);
                let Ok(parsed) = url::Url::parse(&url) else {
                    return Err(EditError::invalid("smtp.host", "must be a host name"));
                };
                shipsync_outbound::check_target(self.config().target_policy(), &parsed)
                    .await
                    .map_err(|e| EditError::PrivateTarget(format!("smtp.host: {e}")))
            }
        }
    }

    pub async fn notification_channels(&self) -> EditResult<Vec<ChannelView>> {
        Ok(notification_channels::list(self.db().pool())
            .await?
            .into_iter()
            .map(ChannelView::from)
            .collect())
    }

    pub async fn notification_channel(&self, id: &str) -> EditResult<ChannelView> {
        notification_channels::get(self.db().pool(), id)
            .await?
            .map(ChannelView::from)
            .ok_or(EditError::NotFound("notification channel"))
    }

    /// Creates a channel from its document; the password is sealed.
    pub async fn create_notification_channel(&self, mut doc: Value) -> EditResult<ChannelView> {
        let password = take_password(&mut doc)?;
        let (name, settings) = parse_channel(&doc)?;
        self.check_channel_target(&settings).await?;
        let now = now_micros();
        let row = NotificationChannelRow {
            id: new_id("nch"),
            name,
            smtp_password: self.sealed_password(&settings, password, None),
            settings,
            created_at: now,
            updated_at: now,
        };
        notification_channels::save(self.db().pool(), &row).await?;
        tracing::info!(channel = %row.id, kind = %row.settings.kind(), "notification channel created");
        Ok(row.into())
    }

    fn sealed_password(
        &self,
        settings: &ChannelSettings,
        password: Password,
        kept: Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if !matches!(settings, ChannelSettings::Email { .. }) {
            return None;
        }
        match password {
            Password::Keep => kept,
            Password::Clear => None,
            Password::Set(p) => Some(self.secrets().seal_str(&p)),
        }
    }

    /// Merge-patches a channel (RFC 7396). The password is kept unless the
    /// patch gives one (or `null` to remove it); a channel that stops being
    /// an email channel loses it.
    pub async fn patch_notification_channel(
        &self,
        id: &str,
        mut patch: Value,
    ) -> EditResult<ChannelView> {
        object(&patch)?;
        let current = notification_channels::get(self.db().pool(), id)
            .await?
            .ok_or(EditError::NotFound("notification channel"))?;
        let password = take_password(&mut patch)?;
        let mut doc = channel_doc(&current);
        merge_patch(&mut doc, &patch);
        let (name, settings) = parse_channel(&doc)?;
        self.check_channel_target(&settings).await?;
        let row = NotificationChannelRow {
            id: current.id.clone(),
            name,
            smtp_password: self.sealed_password(&settings, password, current.smtp_password.clone()),
            settings,
            created_at: current.created_at,
            updated_at: now_micros(),
        };
        notification_channels::save(self.db().pool(), &row).await?;
        Ok(row.into())
    }

    /// Deletes a channel no policy uses (409 `in_use` naming them).
    pub async fn delete_notification_channel(&self, id: &str) -> EditResult<()> {
        let users: Vec<String> = alert_policies::list(self.db().pool())
            .await?
            .into_iter()
            .filter(|p| p.doc.channel_ids.iter().any(|c| c == id))
            .map(|p| p.doc.name)
            .collect();
        if !users.is_empty() {
            return Err(EditError::Conflict {
                code: "in_use",
                message: format!(
                    "alert policies use this channel ({}): remove it from them first",
                    users.join(", ")
                ),
            });
        }
        if !notification_channels::delete(self.db().pool(), id).await? {
            return Err(EditError::NotFound("notification channel"));
        }
        alert_cursors::forget(self.db().pool(), true, id).await?;
        Ok(())
    }

    /// Sends a test message through a channel now: Ok once its server
    /// accepted it; the server's refusal otherwise.
    pub async fn test_notification_channel(&self, id: &str) -> EditResult<Result<(), SendError>> {
        let row = notification_channels::get(self.db().pool(), id)
            .await?
            .ok_or(EditError::NotFound("notification channel"))?;
        let digest = shipsync_core::alerts::Digest::default();
        let base = self.public_url();
        let name = format!("test of channel \"{}\"", row.name);
        let message = shipsync_core::alerts::Message {
            policy_id: "test",
            policy_name: &name,
            digest: &digest,
            base_url: base.as_deref(),
        };
        let target = self.send_target(&row)?;
        let r = self.send_to_channel(&target, &message).await;
        match &r {
            Ok(()) => tracing::info!(channel = %row.id, "test message accepted"),
            Err(e) => tracing::info!(channel = %row.id, error = %e, "test message refused"),
        }
        Ok(r)
    }

    /// The channel with its password opened.
    fn send_target<'a>(&self, row: &'a NotificationChannelRow) -> EditResult<send::Target<'a>> {
        let smtp_password = match &row.smtp_password {
            Some(sealed) => Some(
                self.secrets()
                    .open_string(sealed)
                    .map_err(|e| {
                        EditError::Internal(format!(
                            "the channel's SMTP password cannot be opened: {e}"
                        ))
                    })?
                    .into(),
            ),
            None => None,
        };
        Ok(send::Target {
            settings: &row.settings,
            smtp_password,
        })
    }

    /// The policy a document describes, checked (ids must exist).
    async fn parse_policy(&self, doc: &Value) -> EditResult<PolicyDoc> {
        let d = object(doc)?;
        let defaults: PolicyDoc = serde_json::from_value(serde_json::json!({
            "name": "", "events": [], "channel_ids": []
        }))
        .map_err(|e| EditError::Internal(e.to_string()))?;
        let p = PolicyDoc {
            name: required(d, "name", "how the policy is called")?,
            events: required(d, "events", "the events that alert")?,
            merchant_ids: field(d, "merchant_ids")?.unwrap_or_default(),
            connection_ids: field(d, "connection_ids")?.unwrap_or_default(),
            channel_ids: required(d, "channel_ids", "the notification channels")?,
            group_minutes: field(d, "group_minutes")?.unwrap_or(defaults.group_minutes),
            notify_resolved: field(d, "notify_resolved")?.unwrap_or(defaults.notify_resolved),
            enabled: field(d, "enabled")?.unwrap_or(defaults.enabled),
            webhooks_stopped_hours: field(d, "webhooks_stopped_hours")?
                .unwrap_or(defaults.webhooks_stopped_hours),
            latency_p99_seconds: field(d, "latency_p99_seconds")?
                .unwrap_or(defaults.latency_p99_seconds),
            latency_window_minutes: field(d, "latency_window_minutes")?
                .unwrap_or(defaults.latency_window_minutes),
        };
        p.check()
            .map_err(|e| EditError::invalid(&e.field, e.message))?;
        let pool = self.db().pool();
        for m in &p.merchant_ids {
            if merchants::get(pool, m).await?.is_none() {
                return Err(EditError::invalid(
                    "merchant_ids",
                    format!("no merchant {m:?}"),
                ));
            }
        }
        for c in &p.connection_ids {
            if connections::get(pool, c).await?.is_none() {
                return Err(EditError::invalid(
                    "connection_ids",
                    format!("no connection {c:?}"),
                ));
            }
        }
        for c in &p.channel_ids {
            if notification_channels::get(pool, c).await?.is_none() {
                return Err(EditError::invalid(
                    "channel_ids",
                    format!("no notification channel {c:?}"),
                ));
            }
        }
        Ok(p)
    }

    async fn policy_view(&self, row: AlertPolicyRow) -> EditResult<PolicyView> {
        let cursors = alert_cursors::of_policy(self.db().pool(), &row.id)
            .await?
            .into_iter()
            .filter(|c| row.doc.channel_ids.contains(&c.channel_id))
            .collect();
        Ok(PolicyView { row, cursors })
    }

    pub async fn alert_policies(&self) -> EditResult<Vec<PolicyView>> {
        let mut out = Vec::new();
        for row in alert_policies::list(self.db().pool()).await? {
            out.push(self.policy_view(row).await?);
        }
        Ok(out)
    }

    pub async fn alert_policy(&self, id: &str) -> EditResult<PolicyView> {
        let row = alert_policies::get(self.db().pool(), id)
            .await?
            .ok_or(EditError::NotFound("alert policy"))?;
        self.policy_view(row).await
    }

    pub async fn create_alert_policy(&self, doc: Value) -> EditResult<PolicyView> {
        let doc = self.parse_policy(&doc).await?;
        let now = now_micros();
        let row = AlertPolicyRow {
            id: new_id("pol"),
            doc,
            created_at: now,
            updated_at: now,
        };
        alert_policies::save(self.db().pool(), &row).await?;
        self.queue_alert_check().await?;
        self.policy_view(row).await
    }

    pub async fn patch_alert_policy(&self, id: &str, patch: Value) -> EditResult<PolicyView> {
        object(&patch)?;
        let current = alert_policies::get(self.db().pool(), id)
            .await?
            .ok_or(EditError::NotFound("alert policy"))?;
        let mut doc =
            serde_json::to_value(&current.doc).map_err(|e| EditError::Internal(e.to_string()))?;
        merge_patch(&mut doc, &patch);
        let doc = self.parse_policy(&doc).await?;
        let row = AlertPolicyRow {
            doc,
            updated_at: now_micros(),
            ..current
        };
        alert_policies::save(self.db().pool(), &row).await?;
        self.queue_alert_check().await?;
        self.policy_view(row).await
    }

    /// Deletes a policy with its alerts and cursors.
    pub async fn delete_alert_policy(&self, id: &str) -> EditResult<()> {
        let mut tx = self.db().begin().await?;
        if !alert_policies::delete(&mut *tx, id).await? {
            return Err(EditError::NotFound("alert policy"));
        }
        alerts::delete_of_policy(&mut *tx, id).await?;
        alert_cursors::forget(&mut *tx, false, id).await?;
        tx.commit().await.map_err(shipsync_db::DbError::from)?;
        Ok(())
    }

    /// Alerts the caller sees (its merchants' and the installation-wide
    /// ones), newest first.
    pub async fn alerts(
        &self,
        caller: Caller<'_>,
        status: Option<AlertStatus>,
        before: Option<String>,
        limit: i64,
    ) -> EditResult<Vec<AlertRow>> {
        Ok(alerts::list(
            self.db().pool(),
            &AlertFilter {
                status,
                merchant_ids: caller.scope.map(<[String]>::to_vec),
                before,
                limit,
            },
        )
        .await?)
    }

    pub async fn alert(&self, caller: Caller<'_>, id: &str) -> EditResult<AlertRow> {
        alerts::get(self.db().pool(), id)
            .await?
            .filter(|a| a.merchant_id.as_deref().is_none_or(|m| caller.sees(m)))
            .ok_or(EditError::NotFound("alert"))
    }

    /// Marks an alert as seen by `by`; 409 `alert_closed` once closed.
    pub async fn acknowledge_alert(
        &self,
        caller: Caller<'_>,
        id: &str,
        by: &str,
    ) -> EditResult<AlertRow> {
        let a = self.alert(caller, id).await?;
        if a.status == AlertStatus::Open {
            alerts::acknowledge(self.db().pool(), id, now_micros(), by).await?;
        }
        let a = self.alert(caller, id).await?;
        if a.status == AlertStatus::Closed {
            return Err(EditError::Conflict {
                code: "alert_closed",
                message: "this alert is closed: nothing to acknowledge".into(),
            });
        }
        Ok(a)
    }
}
