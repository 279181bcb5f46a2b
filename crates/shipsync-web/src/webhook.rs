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
use shipsync_engine::spans::list_field;
use shipsync_engine::{Delivery, IngestError, Outcome, Stored};
use tokio::sync::Semaphore;
use tracing::field::Empty;

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
pub struct InFlight(Arc<Semaphore>, usize, shipsync_engine::Engine);

impl InFlight {
    /// The limit; its 503s are recorded for `ingest.saturated` through
    /// `engine`.
    pub fn new(limit: usize, engine: shipsync_engine::Engine) -> Self {
        Self(Arc::new(Semaphore::new(limit)), limit, engine)
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
        limit.2.ingest_saturated();
        return saturated();
    };
    next.run(req).await
}

/// The 503 of a saturated server (ingest queue full, or too many webhook
/// requests in flight).
pub(crate) fn saturated() -> Response {
    let mut e = ApiError::unavailable("shipsync is saturated; retry shortly");
    e.retry_after = Some(1);
    e.into_response()
}

/// The only headers stored with an event (lower case): enough to trace a
/// delivery back to its sender, nothing that authenticates (signatures,
/// cookies, tokens) or that a sender could fill with whatever it likes.
const STORED_HEADERS: [&str; 15] = [
    "content-type",
    // The declared size: what a 413 was about.
    "content-length",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "x-request-id",
    "x-correlation-id",
    "request-id",
    "traceparent",
    // Shopify's order deliveries (never its HMAC).
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-api-version",
    "x-shopify-webhook-id",
    "x-shopify-event-id",
    "x-shopify-triggered-at",
];

/// Stored headers take at most this many bytes (their JSON text).
pub const STORED_HEADERS_MAX_BYTES: usize = 8 * 1024;

/// Every header of the request, for the signature check.
pub(crate) fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The headers kept with an event: those of [`STORED_HEADERS`], in request
/// order, each value cut (at a character boundary) so that their JSON text
/// stays within [`STORED_HEADERS_MAX_BYTES`]; headers that no longer fit are
/// left out.
pub(crate) fn stored_headers(list: &[(String, String)]) -> Vec<(String, String)> {
    let wanted = list
        .iter()
        .filter(|(k, _)| STORED_HEADERS.contains(&k.as_str()));
    // Usually they all fit whole. Escaping makes a byte at most 6 (`\u001f`),
    // and a pair adds 8 (`["`, `","`, `"]`, a comma): under the cap by that
    // bound they need no measuring; else one measure of the lot, no search.
    let all: Vec<(String, String)> = wanted.clone().cloned().collect();
    let bound = 2 + all
        .iter()
        .map(|(k, v)| 6 * (k.len() + v.len()) + 8)
        .sum::<usize>();
    if bound <= STORED_HEADERS_MAX_BYTES
        || serde_json::to_string(&all).is_ok_and(|t| t.len() <= STORED_HEADERS_MAX_BYTES)
    {
        return all;
    }
    let entry_len =
        |k: &str, v: &str| serde_json::to_string(&(k, v)).map_or(usize::MAX / 2, |t| t.len());
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut used = "[]".len();
    for (k, v) in wanted {
        let comma = usize::from(!kept.is_empty());
        // The longest prefix (at a character boundary) that fits, searched
        // for: escaping makes the JSON longer than the value.
        let cuts: Vec<usize> = v
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(v.len()))
            .collect();
        let fitting = cuts.partition_point(|&cut| {
            used + comma + entry_len(k, &v[..cut]) <= STORED_HEADERS_MAX_BYTES
        });
        let Some(&lo) = fitting.checked_sub(1).and_then(|i| cuts.get(i)) else {
            break;
        };
        used += comma + entry_len(k, &v[..lo]);
        kept.push((k.clone(), v[..lo].to_string()));
    }
    kept
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Why a webhook body was not read.
pub(crate) enum BodyError {
    /// Over the limit: the declared size, or one past the limit.
    TooLarge(i64),
    Unreadable(String),
}

/// Reads a webhook body of at most `max` bytes: the declared length is
/// checked first, then `Limited` stops reading (and buffering) past the
/// limit, which also covers chunked bodies without a length.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<axum::body::Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > max as u64
    {
        return Err(BodyError::TooLarge(i64::try_from(n).unwrap_or(i64::MAX)));
    }
    match Limited::new(body, max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(BodyError::TooLarge(
                    i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1),
                ));
            }
            Err(BodyError::Unreadable(format!(
                "could not read the body: {e}"
            )))
        }
    }
}

/// The 413 of a body over `max` bytes.
pub(crate) fn too_large(max: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is larger than {max} bytes (SHIPSYNC_WEBHOOK_MAX_BYTES)"),
    )
    .into_response()
}

/// The 202 of a stored delivery: new (`status` is its outcome) or a repeat
/// (`duplicate`, with the original event's id).
pub(crate) fn stored_answer(stored: &Stored, outcome: Outcome) -> Response {
    /// The answer's body, without building a JSON tree for it (its fields
    /// in the order `json!` wrote them).
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        event_id: &'a str,
        status: &'a str,
    }
    let (status, event_id) = match stored {
        Stored::Repeat { event_id } => ("duplicate", event_id),
        Stored::New { event_id } => (outcome.as_str(), event_id),
    };
    (StatusCode::ACCEPTED, Json(Answer { event_id, status })).into_response()
}

/// The answer when the delivery could not be stored.
pub(crate) fn not_stored(engine: &shipsync_engine::Engine, e: IngestError) -> Response {
    match e {
        IngestError::Full => {
            engine.ingest_saturated();
            saturated()
        }
        IngestError::Unavailable(m) => ApiError::unavailable(format!(
            "cannot store the delivery now ({m}); retry shortly"
        ))
        .into_response(),
    }
}

/// The webhook endpoint. Its span names the merchant, the event stored and
/// the shipments the body holds (never the key, headers or body).
#[tracing::instrument(
    name = "webhook",
    skip_all,
    fields(merchant = Empty, event = Empty, shipment_number = Empty)
)]
pub async fn receive(
    state: State<AppState>,
    key: Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = handle(state, key, headers, body).await;
    tracing::debug!(status = response.status().as_u16(), "webhook answered");
    response
}

async fn handle(
    State(s): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let engine = &s.engine;
    let span = tracing::Span::current();
    // The span's last fields (the shipments, the event) can only show on
    // the debug line that answers: recorded only when it is written, as
    // each record after the first re-serialises the span's JSON fields.
    let answered_line = tracing::enabled!(tracing::Level::DEBUG);
    // 1. The key: unknown and disabled answer the same 404.
    let merchant = match engine.merchant_by_webhook_key(&key).await {
        Ok(Some(m)) if m.webhooks_enabled => {
            span.record("merchant", m.id.as_str());
            m
        }
        Ok(_) => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "unknown webhook URL")
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let header_list = header_list(&headers);
    let stored = stored_headers(&header_list);
    let refused = |outcome: Outcome, size: i64, detail: String| {
        Delivery::refused(&merchant.id, None, stored.clone(), outcome, size, detail)
    };

    // 2. Size, before reading the body whole.
    let max = s.config.webhook_max_bytes;
    let bytes = match read_body(&headers, body, max).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(size)) => {
            engine.ingest().record_refused(refused(
                Outcome::TooLarge,
                size,
                format!("body over the {max}-byte limit"),
            ));
            return too_large(max);
        }
        Err(BodyError::Unreadable(m)) => return ApiError::bad_request(m).into_response(),
    };
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);

    // 3. Signature, when the merchant has a shared secret. Only a Standard
    //    Webhooks signature covers `webhook-id`: repeats are recognised by
    //    it only then (else anyone could make a later delivery a "repeat" by
    //    reusing its id); other deliveries repeat by body alone.
    let mut verified = false;
    let mut webhook_id = None;
    if let Some(sealed) = &merchant.shared_secret {
        let secret = match engine.secrets().open_string(sealed) {
            Ok(x) => x,
            Err(e) => {
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                    .into_response();
            }
        };
        if !secret.is_empty() {
            match signature::verify(&secret, &header_list, &bytes, now_unix()) {
                Ok(scheme) => {
                    verified = true;
                    if scheme == signature::Scheme::StandardWebhooks {
                        webhook_id =
                            signature::HeaderLookup::header(header_list.as_slice(), "webhook-id")
                                .map(|w| w.trim().to_string());
                    }
                }
                Err(e) => {
                    engine.ingest().record_refused(refused(
                        Outcome::InvalidSignature,
                        size,
                        e.to_string(),
                    ));
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid_signature",
                        e.to_string(),
                    )
                    .into_response();
                }
            }
        }
    }

    // 4. Parse: not JSON/XML → 400 (recorded with the body); well-formed but
    //    not understood → stored as needs_attention.
    let (outcome, detail) = match shipsync_deposco::parse_webhook(&bytes) {
        Ok(versions) => {
            if answered_line {
                span.record(
                    "shipment_number",
                    list_field(versions.iter().map(|v| v.number.as_str())),
                );
            }
            (Outcome::Accepted, None)
        }
        Err(shipsync_deposco::ParseError::NotJsonOrXml(m)) => {
            let mut d = refused(Outcome::Rejected, size, m.clone());
            d.body = Some(bytes);
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
    //     The body's buffer moves into the delivery, uncopied.
    let delivery = Delivery {
        connection_id: None,
        merchant_id: merchant.id.clone(),
        headers: stored,
        body: Some(bytes),
        body_size: size,
        webhook_id,
        verified,
        outcome,
        detail,
    };
    match engine.ingest().submit(delivery).await {
        Ok(stored) => {
            if answered_line {
                let (Stored::Repeat { event_id } | Stored::New { event_id }) = &stored;
                span.record("event", event_id.as_str());
            }
            stored_answer(&stored, outcome)
        }
        Err(e) => not_stored(engine, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_allowlisted_headers_are_stored() {
        let stored = stored_headers(&pairs(&[
            ("content-type", "application/json"),
            ("authorization", "Bearer x"),
            ("cookie", "a=b"),
            ("webhook-signature", "v1,abc"),
            ("x-deposco-signature", "abc"),
            ("x-custom", "whatever"),
            ("webhook-id", "msg_1"),
            ("user-agent", "Deposco"),
        ]));
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            r#"[["content-type","application/json"],["webhook-id","msg_1"],["user-agent","Deposco"]]"#
        );
    }

    #[test]
    fn stored_headers_stay_within_the_cap() {
        let big = "é\"x".repeat(5_000);
        for list in [
            pairs(&[("user-agent", &big)]),
            pairs(&[
                ("content-type", "a"),
                ("user-agent", &big),
                ("x-request-id", &big),
            ]),
            pairs(&[("user-agent", &"a".repeat(STORED_HEADERS_MAX_BYTES))]),
        ] {
            let stored = serde_json::to_string(&stored_headers(&list)).unwrap();
            assert!(stored.len() <= STORED_HEADERS_MAX_BYTES, "{}", stored.len());
            assert!(
                stored.len() > STORED_HEADERS_MAX_BYTES - 16,
                "{}",
                stored.len()
            );
            let back: Vec<(String, String)> = serde_json::from_str(&stored).unwrap();
            assert!(back.iter().map(|(_, v)| v.len()).sum::<usize>() > 1000);
        }
    }
}
