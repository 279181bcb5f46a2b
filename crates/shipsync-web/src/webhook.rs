//! `POST /webhooks/deposco/{webhook_key}` — the contract's answer table, in
//! its order: 404, 413, 401, 400, 503, repeat 202, needs_attention 202,
//! accepted 202 (only after the raw delivery is committed).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use shipsync_deposco::signature;
use shipsync_engine::{Delivery, IngestError, Outcome, Stored};

use crate::AppState;
use crate::error::ApiError;

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

    // 2. Size, before reading the body whole.
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
    let delivery = Delivery {
        merchant_id: merchant.id.clone(),
        headers_json: headers_text.clone(),
        body: Some(bytes.to_vec()),
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
        Err(IngestError::Full) => {
            let mut e = ApiError::unavailable("shipsync is saturated; retry shortly");
            e.retry_after = Some(1);
            e.into_response()
        }
        Err(IngestError::Unavailable(m)) => ApiError::unavailable(format!(
            "cannot store the delivery now ({m}); retry shortly"
        ))
        .into_response(),
    }
}
