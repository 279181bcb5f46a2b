//! `POST /webhooks/shopify/{connection_id}` — Shopify's order deliveries,
//! with the Deposco webhook's answer table: 404 (unknown or disabled
//! connection), 413, 401 (bad or missing `X-Shopify-Hmac-Sha256`), 400 (not
//! JSON), 503, 202 `duplicate` for a repeat of `X-Shopify-Event-Id`, 202
//! `accepted` only after the raw delivery is committed. Processing reads the
//! order again from the store (the body only says which order changed).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use shipsync_engine::{Delivery, Outcome, Stored, order_webhook};
use tracing::field::Empty;

use crate::AppState;
use crate::error::ApiError;
use crate::webhook::{
    BodyError, header_list, not_stored, read_body, stored_answer, stored_headers, too_large,
};

#[tracing::instrument(
    name = "shopify_webhook",
    skip_all,
    fields(connection = Empty, event = Empty, topic = Empty)
)]
pub async fn receive(
    State(s): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = handle(&s, &key, &headers, body).await;
    tracing::debug!(
        status = response.status().as_u16(),
        "shopify webhook answered"
    );
    response
}

async fn handle(s: &AppState, key: &str, headers: &HeaderMap, body: Body) -> Response {
    let engine = &s.engine;
    let span = tracing::Span::current();
    // 1. The connection: unknown and disabled answer the same 404.
    let (connection, secret) = match engine.order_webhook_target(key).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "unknown webhook URL")
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    span.record("connection", connection.id.as_str());
    let list = header_list(headers);
    let stored = stored_headers(&list);
    let refused = |outcome: Outcome, size: i64, detail: String| {
        Delivery::refused(
            &connection.merchant_id,
            Some(&connection.id),
            stored.clone(),
            outcome,
            size,
            detail,
        )
    };

    // 2. Size.
    let max = s.config.webhook_max_bytes;
    let bytes = match read_body(headers, body, max).await {
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

    // 3. Signature: always required (the app's secret signs every delivery).
    let hmac = headers
        .get("x-shopify-hmac-sha256")
        .and_then(|v| v.to_str().ok());
    let verdict = match &secret {
        Ok(secret) if order_webhook::verify(&[secret.as_bytes()], &bytes, hmac) => Ok(()),
        Ok(_) if hmac.is_none() => Err("X-Shopify-Hmac-Sha256 is missing".to_string()),
        Ok(_) => Err(
            "X-Shopify-Hmac-Sha256 does not match the body signed with the app's secret"
                .to_string(),
        ),
        Err(missing) => Err(missing.clone()),
    };
    if let Err(why) = verdict {
        engine
            .ingest()
            .record_refused(refused(Outcome::InvalidSignature, size, why.clone()));
        return ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", why).into_response();
    }

    // 4. Parse: not JSON → 400 (recorded with the body); JSON that names no
    //    order → stored as needs_attention.
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        let mut d = refused(Outcome::Rejected, size, e.to_string());
        d.body = Some(bytes);
        d.verified = true;
        engine.ingest().record(d);
        return ApiError::bad_request(format!("the body is not JSON: {e}")).into_response();
    }
    let (outcome, detail, event_id) = match order_webhook::parse(&list, &bytes) {
        Ok(d) => {
            span.record("topic", d.topic.as_str());
            (Outcome::Accepted, None, d.event_id)
        }
        Err(why) => (Outcome::NeedsAttention, Some(why), None),
    };

    // 5. Store durably; a repeat of the same Shopify event is answered as
    //    such. The event id is a header the signature does not cover: a
    //    forged one can only make a genuine body count as a repeat or not,
    //    and processing a delivery only re-reads the order, so neither
    //    loses or invents anything.
    let delivery = Delivery {
        connection_id: Some(connection.id.clone()),
        merchant_id: connection.merchant_id.clone(),
        headers: stored,
        body: Some(bytes),
        body_size: size,
        webhook_id: event_id.map(|e| format!("shopify-event:{e}")),
        verified: true,
        outcome,
        detail,
    };
    match engine.ingest().submit(delivery).await {
        Ok(stored) => {
            let (Stored::Repeat { event_id } | Stored::New { event_id }) = &stored;
            span.record("event", event_id.as_str());
            stored_answer(&stored, outcome)
        }
        Err(e) => not_stored(engine, e),
    }
}
