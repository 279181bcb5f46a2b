//! HTTP side of Shopify's app authentication (the rules are in `auth.rs`):
//! `GET /admin/oauth/authorize`, `POST /admin/oauth/access_token`, and the
//! `/_sandbox/…` controls for the app and its tokens.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::{AuthorizeRequest, OAuthError};
use crate::{SandboxApp, ShopifySandbox, lock};

/// Shopify shows a plain error page on the store's domain (the browser is
/// not sent back to the app).
fn error_page(message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>Oauth error</title></head><body><h1>Oauth error</h1><p>{escaped}</p></body></html>\n"
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

/// `GET /admin/oauth/authorize`: approved at once, no merchant is asked
/// (the sandbox has no human step); the browser is redirected to
/// `redirect_uri` with the code.
pub(crate) async fn authorize(
    State(sandbox): State<ShopifySandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut req = AuthorizeRequest::default();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let v = v.into_owned();
        match &*k {
            "client_id" => req.client_id = Some(v),
            "scope" => req.scope = Some(v),
            "redirect_uri" => req.redirect_uri = Some(v),
            "state" => req.state = Some(v),
            "grant_options[]" if !v.is_empty() => req.grant_options.push(v),
            _ => {}
        }
    }
    // The shop is the store's own authority, as the browser addressed it.
    let Some(shop) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
    else {
        return error_page("Oauth error invalid_request: the request has no Host header");
    };
    let outcome = lock(&sandbox.inner.auth).authorize(&req, shop);
    match outcome {
        Ok(location) => match header::HeaderValue::from_str(&location) {
            Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
            Err(_) => error_page("Oauth error invalid_request: the redirect_uri cannot be sent"),
        },
        Err(message) => error_page(&message),
    }
}

fn token_error(e: OAuthError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": e.error, "error_description": e.description })),
    )
        .into_response()
}

/// The parameters of a token request: a JSON object or a form, as Shopify
/// accepts both. JSON numbers and booleans (`"expiring": 1`) count as their
/// text.
fn token_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !is_json {
        return Ok(url::form_urlencoded::parse(body).into_owned().collect());
    }
    let object: Map<String, Value> = serde_json::from_slice(body).map_err(|e| OAuthError {
        error: "invalid_request",
        description: format!("The request body is not a JSON object: {e}"),
    })?;
    Ok(object
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect())
}

/// `POST /admin/oauth/access_token`: the client credentials, authorization
/// code and refresh token grants.
pub(crate) async fn access_token(
    State(sandbox): State<ShopifySandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut auth = lock(&sandbox.inner.auth);
    let params = match token_params(&headers, &body) {
        Ok(p) => p,
        Err(e) => {
            auth.record(String::new(), 400);
            return token_error(e);
        }
    };
    match auth.token_request(&params) {
        Ok(issued) => {
            let mut answer = json!({
                "access_token": issued.access_token,
                "scope": issued.scopes.join(","),
            });
            if let Some(secs) = issued.expires_in {
                answer["expires_in"] = json!(secs);
            }
            if let Some((refresh, secs)) = issued.refresh {
                answer["refresh_token"] = json!(refresh);
                answer["refresh_token_expires_in"] = json!(secs);
            }
            Json(answer).into_response()
        }
        Err(e) => token_error(e),
    }
}

pub(crate) async fn set_app(
    State(sandbox): State<ShopifySandbox>,
    Json(app): Json<SandboxApp>,
) -> StatusCode {
    sandbox.set_app(app);
    StatusCode::NO_CONTENT
}

pub(crate) async fn revoke(State(sandbox): State<ShopifySandbox>) -> StatusCode {
    sandbox.revoke_tokens();
    StatusCode::NO_CONTENT
}

pub(crate) async fn expire(State(sandbox): State<ShopifySandbox>) -> StatusCode {
    sandbox.expire_tokens();
    StatusCode::NO_CONTENT
}

pub(crate) async fn token_requests(State(sandbox): State<ShopifySandbox>) -> Response {
    Json(sandbox.token_requests()).into_response()
}
