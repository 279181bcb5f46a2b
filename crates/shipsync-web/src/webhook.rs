//! `POST /webhooks/deposco/{webhook_key}` — the contract's answer table, in
//! its order: 404, 413, 401, 400, 503, repeat 202, needs_attention 202,
//! accepted 202 (only after the raw delivery is committed) — behind a limit
//! on the webhook requests in flight ([`limit_in_flight`]).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use shipsync_deposco::signature;
use shipsync_engine::{Delivery, IngestError, Outcome, Stored};
use tokio::sync::Semaphore;

use crate::AppState;
use crate::error::ApiError;

/// At most this many webhook requests are handled at once (per server);
/// beyond it the answer is an immediate 503 + `Retry-After`, before the key
/// lookup and without reading the body.
///
/// Why a limit: the ingest queue is bounded (4,096 deliveries), but nothing
/// bounded the requests before it: each holds its connection buffers, its
/// body and the copy in the `Delivery` while it waits (up to 10 s) for the
/// group commit, so under overload memory grew with the number of open
/// connections (12,000 in the `ingest` bench: RSS 367 → 753 MB).
///
/// Why 1,024: the group-commit writer stores ~1,350 deliveries/s on the
/// 2-core reference machine, so 1,024 in flight is already most of a second
/// of work: a delivery past it would wait longer than a sender should rather
/// than get stored sooner, and the sender's retry costs less than the wait.
/// Below the queue's 4,096, so the requests in flight always fit in the
/// queue: saturation is answered here, at once, instead of after a wait.
/// Memory it bounds: ~1,024 × (connection buffers + 2 × body), some 30 MB
/// with 4 KiB bodies; the worst case is 2 × `SHIPSYNC_WEBHOOK_MAX_BYTES` per
/// request (2 GiB at the 1 MiB default), only for a sender of maximum-size
/// bodies at full concurrency.
pub const WEBHOOK_MAX_IN_FLIGHT: usize = 1024;

/// The webhook route's in-flight limit (one per router).
#[derive(Clone)]
pub struct InFlight(Arc<Semaphore>, usize);

impl InFlight {
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Semaphore::new(limit)), limit)
    }

    /// Webhook requests being handled now.
    pub fn current(&self) -> usize {
        self.1.saturating_sub(self.0.available_permits())
    }
}

/// Middleware on the webhook route: takes a slot for the whole handling of
/// the request (key lookup, body, ingest) or answers at once the same 503 +
/// `Retry-After` as a full ingest queue — not recorded as an event, the
/// sender retries. The contract's 404/413/401/400 need the key lookup or the
/// body, so while saturated they wait for the retry: a saturated server
/// cannot look anything up, as when the database is unavailable.
pub async fn limit_in_flight(State(limit): State<InFlight>, req: Request, next: Next) -> Response {
    let Ok(_slot) = limit.0.try_acquire() else {
        return saturated();
    };
    next.run(req).await
}

/// The 503 of a saturated server (ingest queue full, or too many webhook
/// requests in flight).
fn saturated() -> Response {
    let mut e = ApiError::unavailable("shipsync is saturated; retry shortly");
    e.retry_after = Some(1);
    e.into_response()
}

/// Headers never stored with an event.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

fn headers_json(headers: &HeaderMap) -> (String, Vec<(String, String)>) {
    let list: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    (
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
        list,
    )
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub async fn receive(
    State(s): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let engine = &s.engine;
    // 1. The key: unknown and disabled answer the same 404.
    let hash = shipsync_engine::secrets::hash_token(&key);
    let merchant = match engine.db().merchant_by_key_hash(&hash).await {
        Ok(Some(m)) if m.webhooks_enabled == 1 => m,
        Ok(_) => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "unknown webhook URL")
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (headers_text, header_list) = headers_json(&headers);
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let refused = |outcome: Outcome, size: i64, detail: String| Delivery {
        merchant_id: merchant.id.clone(),
        headers_json: headers_text.clone(),
        body: None,
        body_size: size,
        webhook_id: None,
        verified: false,
        outcome,
        detail: Some(detail),
    };

    // 2. Size, before reading the body whole: the declared length first,
    //    then `Limited` stops reading (and buffering) past the limit, which
    //    also covers chunked bodies without a length.
    let max = s.config.webhook_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |size: i64| {
        engine.ingest().record(refused(
            Outcome::TooLarge,
            size,
            format!("body over the {max}-byte limit"),
        ));
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {max} bytes (SHIPSYNC_WEBHOOK_MAX_BYTES)"),
        )
        .into_response()
    };
    if let Some(n) = declared
        && n > max as u64
    {
        return too_large(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let bytes = match Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large(i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1));
            }
            return ApiError::bad_request(format!("could not read the body: {e}")).into_response();
        }
    };
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);

    // 3. Signature, when the merchant has a shared secret.
    let mut verified = false;
    if let Some(sealed) = &merchant.shared_secret {
        let secret = match engine.secrets().open_string(sealed) {
            Ok(x) => x,
            Err(e) => {
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                    .into_response();
            }
        };
        if !secret.is_empty() {
            if let Err(e) = signature::verify(&secret, &header_list, &bytes, now_unix()) {
                engine
                    .ingest()
                    .record(refused(Outcome::InvalidSignature, size, e.to_string()));
                return ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
                    .into_response();
            }
            verified = true;
        }
    }

    // 4. Parse: not JSON/XML → 400 (recorded with the body); well-formed but
    //    not understood → stored as needs_attention.
    let (outcome, detail) = match shipsync_deposco::parse_webhook(&bytes) {
        Ok(_) => (Outcome::Accepted, None),
        Err(shipsync_deposco::ParseError::NotJsonOrXml(m)) => {
            let mut d = refused(Outcome::Rejected, size, m.clone());
            d.body = Some(bytes.to_vec());
            d.verified = verified;
            engine.ingest().record(d);
            return ApiError::bad_request(format!("the body is neither JSON nor XML: {m}"))
                .into_response();
        }
        Err(e @ shipsync_deposco::ParseError::Unmapped(_)) => {
            (Outcome::NeedsAttention, Some(e.to_string()))
        }
    };

    // 5–8. Store durably (503 when the database or the queue cannot take it).
    //     The body moves into the delivery (no copy when it is the only
    //     reference to its buffer).
    let delivery = Delivery {
        merchant_id: merchant.id.clone(),
        headers_json: headers_text.clone(),
        body: Some(Vec::from(bytes)),
        body_size: size,
        webhook_id,
        verified,
        outcome,
        detail,
    };
    match engine.ingest().submit(delivery).await {
        Ok(Stored::Repeat { event_id }) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"status": "duplicate", "event_id": event_id})),
        )
            .into_response(),
        Ok(Stored::New { event_id }) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"status": outcome.as_str(), "event_id": event_id})),
        )
            .into_response(),
        Err(IngestError::Full) => saturated(),
        Err(IngestError::Unavailable(m)) => ApiError::unavailable(format!(
            "cannot store the delivery now ({m}); retry shortly"
        ))
        .into_response(),
    }
}
