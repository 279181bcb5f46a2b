//! Delivering a webhook: the request (body, signing, headers) and its outcome.

use std::time::Duration;

use crate::error::Error;
use crate::signing::{Signing, sign_body_hmac, sign_standard};

/// A delivery to make. Build it with [`crate::DeposcoSandbox::webhook_request`]
/// (a rendered shipment) or [`WebhookRequest::raw`] (any bytes), adjust it,
/// and send it with [`crate::DeposcoSandbox::send_webhook`].
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub body: Vec<u8>,
    pub content_type: String,
    pub signing: Signing,
    /// Sent as `webhook-id` (Standard signing, or whenever set). `None`: a fresh `msg_…`.
    pub webhook_id: Option<String>,
    /// Unix seconds for `webhook-timestamp`. `None`: now. Set it to test the ±5 min window.
    pub timestamp: Option<i64>,
    /// Added after the computed headers (a same-named computed header is replaced).
    pub extra_headers: Vec<(String, String)>,
}

impl WebhookRequest {
    /// Arbitrary bytes, unsigned.
    pub fn raw(body: impl Into<Vec<u8>>, content_type: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            content_type: content_type.into(),
            signing: Signing::None,
            webhook_id: None,
            timestamp: None,
            extra_headers: Vec::new(),
        }
    }

    pub fn signed(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// A fixed `webhook-id` (re-deliveries reuse the id).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.webhook_id = Some(id.into());
        self
    }

    pub fn with_timestamp(mut self, unix_seconds: i64) -> Self {
        self.timestamp = Some(unix_seconds);
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }

    /// Fixes the id and timestamp and computes the headers: exactly what goes on the wire.
    pub fn prepare(&self) -> SentWebhook {
        let standard = matches!(self.signing, Signing::Standard { .. });
        let webhook_id = match (&self.webhook_id, standard) {
            (Some(id), _) => Some(id.clone()),
            (None, true) => Some(new_message_id()),
            (None, false) => None,
        };
        let timestamp = self
            .timestamp
            .unwrap_or_else(|| jiff::Timestamp::now().as_second());
        let mut headers = vec![("content-type".to_owned(), self.content_type.clone())];
        if let Some(id) = &webhook_id {
            headers.push(("webhook-id".to_owned(), id.clone()));
        }
        match &self.signing {
            Signing::None => {}
            Signing::Standard { secret } => {
                let id = webhook_id.as_deref().unwrap_or_default();
                headers.push(("webhook-timestamp".to_owned(), timestamp.to_string()));
                headers.push((
                    "webhook-signature".to_owned(),
                    sign_standard(secret, id, timestamp, &self.body),
                ));
            }
            Signing::BodyHmac { secret } => {
                headers.push((
                    "x-deposco-signature".to_owned(),
                    sign_body_hmac(secret, &self.body),
                ));
            }
        }
        for (name, value) in &self.extra_headers {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), value.clone()));
        }
        SentWebhook {
            webhook_id,
            headers,
            body: self.body.clone(),
        }
    }
}

fn new_message_id() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("msg_{}", hex::encode(bytes))
}

/// The exact request (headers and body) that was, or would have been, sent.
/// Re-send it with [`crate::DeposcoSandbox::resend_webhook`] for a byte-identical repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentWebhook {
    pub webhook_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SentWebhook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What happened to a delivery.
#[derive(Debug, Clone)]
pub enum WebhookResponse {
    /// The receiver answered (any status).
    Delivered {
        status: u16,
        body: Vec<u8>,
        sent: SentWebhook,
    },
    /// A `drop_webhook_rate` fault: nothing was sent.
    Dropped { sent: SentWebhook },
}

impl WebhookResponse {
    /// The receiver's status, `None` when dropped.
    pub fn status(&self) -> Option<u16> {
        match self {
            WebhookResponse::Delivered { status, .. } => Some(*status),
            WebhookResponse::Dropped { .. } => None,
        }
    }

    pub fn is_dropped(&self) -> bool {
        matches!(self, WebhookResponse::Dropped { .. })
    }

    /// The receiver's body (empty when dropped).
    pub fn body(&self) -> &[u8] {
        match self {
            WebhookResponse::Delivered { body, .. } => body,
            WebhookResponse::Dropped { .. } => &[],
        }
    }

    /// The receiver's body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.body()).ok()
    }

    pub fn sent(&self) -> &SentWebhook {
        match self {
            WebhookResponse::Delivered { sent, .. } | WebhookResponse::Dropped { sent } => sent,
        }
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    // reqwest is built without a bundled TLS provider; pick ring for https targets.
    // Another crate may have installed one already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(crate) async fn deliver(
    client: &reqwest::Client,
    url: &str,
    sent: SentWebhook,
) -> Result<WebhookResponse, Error> {
    let mut request = client.post(url).body(sent.body.clone());
    for (name, value) in &sent.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.map_err(|source| Error::Delivery {
        url: url.to_owned(),
        source,
    })?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|source| Error::Delivery {
            url: url.to_owned(),
            source,
        })?
        .to_vec();
    Ok(WebhookResponse::Delivered { status, body, sent })
}
