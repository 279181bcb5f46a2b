//! Sending one message to one notification channel: email over SMTP
//! (lettre) or an HTTP POST (Slack's incoming webhook JSON, or shipsync's
//! own). Both obey the outbound-address policy: the SMTP host is resolved
//! here, every address checked, and the connection made to the checked
//! address with TLS naming the host (no second lookup to rebind); HTTP goes
//! through `shipsync_outbound::client_builder`. Every step has a timeout.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use shipsync_core::alerts::{ChannelSettings, Message, SmtpSettings};
use shipsync_core::states::{SmtpTls, WebhookFormat};
use shipsync_outbound::TargetPolicy;

/// How much of a refusing server's answer is kept.
const EXCERPT: usize = 300;

/// Why a message was not accepted, as the channel's `last_error` and the
/// test's 502 show it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// The user agent of alert webhook messages.
const USER_AGENT: &str = concat!("shipsync-alerts/", env!("CARGO_PKG_VERSION"));

/// A channel ready to send: its settings and its opened password.
pub struct Target<'a> {
    pub settings: &'a ChannelSettings,
    pub smtp_password: Option<SecretString>,
}

/// Sends `message` to the channel; Ok once the server accepted it (SMTP
/// 250, HTTP 2xx).
pub async fn send(
    target: &Target<'_>,
    message: &Message<'_>,
    http: &reqwest::Client,
    policy: TargetPolicy,
    timeout: Duration,
) -> Result<(), SendError> {
    match target.settings {
        ChannelSettings::Email { smtp, to } => {
            email(
                smtp,
                target.smtp_password.as_ref(),
                to,
                message,
                policy,
                timeout,
            )
            .await
        }
        ChannelSettings::Webhook { url, format } => {
            let body = match format {
                WebhookFormat::Slack => serde_json::json!({ "text": message.slack_text() }),
                WebhookFormat::Json => message.json(),
            };
            webhook(http, url, &body, timeout).await
        }
    }
}

/// The one address of `host` to connect to: every address it resolves to
/// must be allowed (one private answer refuses the host, as for HTTP).
async fn resolve(
    host: &str,
    port: u16,
    policy: TargetPolicy,
    timeout: Duration,
) -> Result<IpAddr, SendError> {
    let found: Vec<IpAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
            Ok(Err(e)) => return Err(SendError(format!("cannot resolve {host}: {e}"))),
            Err(_) => return Err(SendError(format!("resolving {host} timed out"))),
        };
    for ip in &found {
        policy
            .check_ip(host, *ip)
            .map_err(|e| SendError(e.to_string()))?;
    }
    found
        .into_iter()
        .next()
        .ok_or_else(|| SendError(format!("{host} has no address")))
}

async fn email(
    smtp: &SmtpSettings,
    password: Option<&SecretString>,
    to: &[String],
    message: &Message<'_>,
    policy: TargetPolicy,
    timeout: Duration,
) -> Result<(), SendError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SendError(format!("{what}: {e}"));
    let from: Mailbox = smtp.from.parse().map_err(|e| bad("smtp.from", &e))?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .subject(message.subject())
        .header(ContentType::TEXT_PLAIN);
    for r in to {
        builder = builder.to(r.parse().map_err(|e| bad("to", &e))?);
    }
    let email = builder
        .body(message.text())
        .map_err(|e| bad("the message", &e))?;

    let ip = resolve(&smtp.host, smtp.port, policy, timeout).await?;
    // rustls with ring, as for HTTP (another part may have installed it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls_for_host = || TlsParameters::new(smtp.host.clone()).map_err(|e| bad("TLS", &e));
    let tls = match smtp.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_for_host()?),
        SmtpTls::Tls => Tls::Wrapper(tls_for_host()?),
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
        .port(smtp.port)
        .tls(tls)
        .hello_name(ClientId::Domain("shipsync".into()))
        .timeout(Some(timeout));
    if let Some(user) = smtp.username.as_ref().filter(|u| !u.is_empty()) {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password
                .map(|p| p.expose_secret().to_string())
                .unwrap_or_default(),
        ));
    }
    let transport = transport.build();
    // The whole exchange, not only each read, is bounded.
    match tokio::time::timeout(timeout * 3, transport.send(email)).await {
        Ok(Ok(answer)) if answer.is_positive() => Ok(()),
        Ok(Ok(answer)) => Err(SendError(format!(
            "the SMTP server answered {}: {}",
            answer.code(),
            excerpt(&answer.message().collect::<Vec<_>>().join(" "))
        ))),
        Ok(Err(e)) => Err(SendError(format!(
            "the SMTP server {}:{} did not accept the message: {}",
            smtp.host,
            smtp.port,
            excerpt(&e.to_string())
        ))),
        Err(_) => Err(SendError(format!(
            "the SMTP server {}:{} did not answer in time",
            smtp.host, smtp.port
        ))),
    }
}

/// Posts `body` with the engine's webhook client (built with the
/// outbound-address policy), within `timeout`.
async fn webhook(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<(), SendError> {
    // The URL may carry a secret (Slack's do): errors name its host only.
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let answer = http
        .post(url)
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .timeout(timeout)
        .json(body)
        .send()
        .await
        .map_err(|e| {
            let why = match shipsync_outbound::refusal(&e) {
                Some(r) => r.to_string(),
                None if e.is_timeout() => "timed out".to_string(),
                None => "could not connect".to_string(),
            };
            SendError(format!("the webhook at {host}: {why}"))
        })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let text = shipsync_outbound::read_capped(answer, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Err(SendError(format!(
        "the webhook at {host} answered {}: {}",
        status.as_u16(),
        excerpt(&text)
    )))
}

fn excerpt(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
