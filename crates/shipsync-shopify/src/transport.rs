//! One GraphQL call: budget wait, POST with timeout, and the classification
//! of every way it can fail into a [`ShopifyError`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::auth::AccessTokens;
use crate::error::ShopifyError;
use crate::throttle::{Budget, QueryCost};

/// Larger answers are refused rather than buffered (a 250-line order is a
/// few hundred KiB).
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Used when Shopify throttles without saying for how long.
const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(1);
/// Longest server text quoted in an error.
const MAX_QUOTED: usize = 300;

/// How many times a call asks for another token after a 401.
const MAX_TOKEN_REFUSALS: u32 = 2;

/// Queries can be repeated blindly; mutations cannot.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Query,
    Mutation,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    data: Option<Value>,
    /// An array of GraphQL errors at 200; a plain string on some 4xx.
    errors: Option<Value>,
    extensions: Option<Extensions>,
}

#[derive(Debug, Deserialize)]
struct Extensions {
    cost: Option<QueryCost>,
}

/// Pauses before repeating a query that failed on the way (5xx, timeout,
/// connection): a blip is absorbed here instead of failing the whole job.
/// Mutations are never repeated here (their outcome is unknown: the caller
/// re-reads the order); THROTTLED and 429 are not either (the job waits for
/// the bucket instead of holding a worker).
const QUERY_RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(600)];
/// A `Retry-After` longer than this is left to the job's backoff.
const MAX_INLINE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs just before a mutation is sent, after any wait for the store's
/// budget: what the caller must record first (its intent, with the send
/// time). An error stops the call with nothing sent.
pub type BeforeSend<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Time limits for every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Whole call: connect, send, answer (default 15 s).
    pub total: Duration,
    /// TCP + TLS connect; applied by [`crate::ShopifyClient::http_client`] (default 5 s).
    pub connect: Duration,
    /// Longest the client sleeps for the cost budget before sending; beyond
    /// it the call returns `Throttled` at once so a worker is not held
    /// (default 10 s).
    pub max_budget_wait: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            total: Duration::from_secs(15),
            connect: Duration::from_secs(5),
            max_budget_wait: Duration::from_secs(10),
        }
    }
}

/// The token a client sends: fixed (a legacy admin-created app's), or kept
/// and refreshed by the caller.
#[derive(Clone)]
pub(crate) enum Tokens {
    Fixed(SecretString),
    Kept(Arc<dyn AccessTokens>),
}

impl Tokens {
    pub(crate) async fn current(&self) -> Result<SecretString, ShopifyError> {
        match self {
            Self::Fixed(t) => Ok(t.clone()),
            Self::Kept(k) => k.token().await,
        }
    }

    /// After a 401 to `refused`: another token to try once, if there can be one.
    pub(crate) async fn after_refusal(
        &self,
        refused: &SecretString,
    ) -> Option<Result<SecretString, ShopifyError>> {
        match self {
            Self::Fixed(_) => None,
            Self::Kept(k) if k.refreshable() => Some(k.refused(refused).await),
            Self::Kept(_) => None,
        }
    }

    /// After a 401 to the token [`Tokens::after_refusal`] gave.
    pub(crate) async fn failed(&self, reason: &str) {
        if let Self::Kept(k) = self {
            k.failed(reason).await;
        }
    }
}

/// How one store is called: where, with which token, within which time
/// limits and cost budget. [`crate::ShopifyClient`] builds the documents;
/// this sends them.
#[derive(Clone)]
pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: Url,
    pub(crate) token: Tokens,
    pub(crate) timeouts: Timeouts,
    pub(crate) budget: Arc<Budget>,
    /// The caller's name for this store (its connection id), shown in the
    /// span of each call.
    pub(crate) connection: Option<Arc<str>>,
}

impl Transport {
    /// Sends mutation `document` once, running `before_send` just before.
    pub(crate) async fn execute_mutation<T: DeserializeOwned>(
        &self,
        op: &'static str,
        document: &'static str,
        variables: Value,
        before_send: Option<BeforeSend<'_>>,
    ) -> Result<T, ShopifyError> {
        self.execute_once(op, document, variables, Kind::Mutation, before_send)
            .await
    }

    /// Sends `document` as operation `op` and decodes its `data` as `T`;
    /// a query that failed transiently is sent again, twice at most.
    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        op: &'static str,
        document: &'static str,
        variables: Value,
        kind: Kind,
    ) -> Result<T, ShopifyError> {
        let mut pauses = QUERY_RETRY_PAUSES.iter();
        loop {
            match self
                .execute_once(op, document, variables.clone(), kind, None)
                .await
            {
                Err(e @ ShopifyError::Transient { retry_after, .. })
                    if kind == Kind::Query
                        && retry_after.is_none_or(|d| d <= MAX_INLINE_RETRY_AFTER) =>
                {
                    let Some(pause) = pauses.next() else {
                        return Err(e);
                    };
                    tracing::debug!(operation = op, error = %e, "repeating a query that failed on the way");
                    tokio::time::sleep((*pause).max(retry_after.unwrap_or_default())).await;
                }
                other => return other,
            }
        }
    }

    /// One call, in a `store_call` span (operation, connection, shop).
    #[tracing::instrument(
        name = "store_call",
        skip_all,
        fields(
            operation = op,
            connection = self.connection.as_deref(),
            shop = self.endpoint.host_str(),
        )
    )]
    async fn execute_once<T: DeserializeOwned>(
        &self,
        op: &'static str,
        document: &'static str,
        variables: Value,
        kind: Kind,
        before_send: Option<BeforeSend<'_>>,
    ) -> Result<T, ShopifyError> {
        let (wait, reserved) = self
            .budget
            .reserve(op, self.timeouts.max_budget_wait)
            .await
            .map_err(|retry_after| {
                tracing::info!(
                    operation = op,
                    ?retry_after,
                    "Shopify cost budget exhausted"
                );
                ShopifyError::Throttled { retry_after }
            })?;
        // Holds the reservation until this call returns, whatever the path.
        let mut reservation = Reservation {
            budget: &self.budget,
            reserved,
            sent: false,
        };
        if !wait.is_zero() {
            // Nothing sent: the reservation is given back as this returns.
            self.budget.may_wait(op, wait).map_err(|retry_after| {
                tracing::debug!(
                    operation = op,
                    ?wait,
                    ?retry_after,
                    "store budget busy: turning the job away"
                );
                ShopifyError::Throttled { retry_after }
            })?;
            tracing::debug!(operation = op, ?wait, "waiting for Shopify cost budget");
            self.budget.wait_turn(&reserved, wait).await;
        }

        let body = serde_json::json!({
            "query": document,
            "operationName": op,
            "variables": variables,
        });
        let mut token = self.token.current().await?;

        if let Some(record) = before_send {
            record.await.map_err(|e| ShopifyError::Transient {
                reason: format!("nothing sent: could not record the attempt first: {e}"),
                retry_after: None,
            })?;
        }
        // From here the store may count the request: the points are spent
        // (the answer says how many) rather than unused.
        reservation.sent = true;
        self.budget.sending(&reserved);
        let mut refusals = 0;
        let (status, retry_after, bytes) = loop {
            let response = self
                .http
                .post(self.endpoint.clone())
                .timeout(self.timeouts.total)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .header("X-Shopify-Access-Token", token_header(&token)?)
                .json(&body)
                .send()
                .await
                .map_err(|e| send_error(&e, kind))?;
            let status = response.status();
            // A 401 executed nothing: with an expiring token, ask its keeper
            // for another and send again. Twice at most: the first may be
            // one another worker obtained meanwhile that the store refuses
            // too (it expired early), the second is then a new one.
            if status == StatusCode::UNAUTHORIZED
                && refusals < MAX_TOKEN_REFUSALS
                && let Some(next) = self.token.after_refusal(&token).await
            {
                token = next?;
                refusals += 1;
                tracing::info!(
                    operation = op,
                    "Shopify refused the token: sending again with a refreshed one"
                );
                continue;
            }
            let retry_after = retry_after(response.headers());
            let bytes = shipsync_outbound::read_capped(response, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| lost_answer(&e.to_string(), kind))?;
            if status == StatusCode::UNAUTHORIZED {
                // Final: the credentials themselves are refused. (The
                // remote text stays in the error, not in this reason,
                // which every user of the connection sees.)
                self.token
                    .failed(if refusals > 0 {
                        "Shopify refused a newly obtained token too (HTTP 401)"
                    } else {
                        "Shopify refused the access token (HTTP 401)"
                    })
                    .await;
            }

            break (status, retry_after, bytes);
        };
        let envelope = serde_json::from_slice::<Envelope>(&bytes).ok();
        let cost = envelope
            .as_ref()
            .and_then(|e| e.extensions.as_ref())
            .and_then(|x| x.cost)
            .unwrap_or_default();
        self.budget.observe(op, reserved, &cost).await;
        tracing::debug!(
            operation = op,
            status = status.as_u16(),
            requested_cost = cost.requested_query_cost,
            actual_cost = cost.actual_query_cost,
            available = cost.throttle_status.map(|s| s.currently_available),
            "Shopify call"
        );

        if !status.is_success() {
            let detail = envelope
                .as_ref()
                .and_then(|e| e.errors.as_ref())
                .map(error_text)
                .unwrap_or_else(|| quote(&String::from_utf8_lossy(&bytes)));
            return Err(self.status_error(op, status, retry_after, &cost, detail, kind));
        }

        let Some(envelope) = envelope else {
            return Err(lost_answer("the answer is not GraphQL JSON", kind));
        };
        if let Some(errors) = envelope.errors.as_ref().filter(|e| has_errors(e)) {
            return Err(self.graphql_error(op, errors, &cost, kind));
        }
        let data = envelope
            .data
            .ok_or_else(|| lost_answer("the answer has no data", kind))?;
        serde_json::from_value(data)
            .map_err(|e| lost_answer(&format!("unexpected answer for {op}: {e}"), kind))
    }

    fn status_error(
        &self,
        op: &'static str,
        status: StatusCode,
        retry_after: Option<Duration>,
        cost: &QueryCost,
        detail: String,
        kind: Kind,
    ) -> ShopifyError {
        let reason = format!("HTTP {status}: {detail}");
        match status.as_u16() {
            429 => ShopifyError::Throttled {
                retry_after: retry_after
                    .or_else(|| self.refill_wait(op, cost))
                    .unwrap_or(DEFAULT_THROTTLE_WAIT),
            },
            401 | 403 => ShopifyError::Unauthorized(reason),
            404 => ShopifyError::NotFound(reason),
            402 => ShopifyError::Permanent(format!("{reason} (the shop is frozen: unpaid bill)")),
            423 => ShopifyError::Permanent(format!("{reason} (the shop is locked)")),
            // The gateway gave up waiting or failed mid-way: a mutation may
            // have run behind it.
            500 | 502 | 504 if kind == Kind::Mutation => ShopifyError::UnknownOutcome { reason },
            500..=599 => ShopifyError::Transient {
                reason,
                retry_after,
            },
            _ => ShopifyError::Permanent(reason),
        }
    }

    fn graphql_error(
        &self,
        op: &'static str,
        errors: &Value,
        cost: &QueryCost,
        kind: Kind,
    ) -> ShopifyError {
        let codes: Vec<&str> = errors
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.pointer("/extensions/code").and_then(Value::as_str))
            .collect();
        let reason = error_text(errors);
        if codes.contains(&"THROTTLED") {
            ShopifyError::Throttled {
                retry_after: self.refill_wait(op, cost).unwrap_or(DEFAULT_THROTTLE_WAIT),
            }
        } else if codes.contains(&"ACCESS_DENIED") {
            ShopifyError::Unauthorized(reason)
        } else if codes.contains(&"INTERNAL_SERVER_ERROR") {
            lost_answer(&reason, kind)
        } else {
            ShopifyError::Permanent(reason)
        }
    }

    /// (cost needed − available) / restoreRate, using the cost Shopify
    /// reported or, failing that, the one it reported last time for `op`.
    fn refill_wait(&self, op: &'static str, cost: &QueryCost) -> Option<Duration> {
        let cost = QueryCost {
            requested_query_cost: cost
                .requested_query_cost
                .or_else(|| self.budget.last_cost(op)),
            ..*cost
        };
        cost.refill_wait()
    }
}

/// The token as a header value, marked sensitive (kept out of logs).
fn token_header(token: &SecretString) -> Result<HeaderValue, ShopifyError> {
    let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
        ShopifyError::Unauthorized("the access token is not a valid header value".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// An answer we could not read: harmless for a query, but a mutation may have
/// been applied.
fn lost_answer(reason: &str, kind: Kind) -> ShopifyError {
    match kind {
        Kind::Query => ShopifyError::Transient {
            reason: reason.to_owned(),
            retry_after: None,
        },
        Kind::Mutation => ShopifyError::UnknownOutcome {
            reason: reason.to_owned(),
        },
    }
}

fn send_error(e: &reqwest::Error, kind: Kind) -> ShopifyError {
    if e.is_builder() {
        return ShopifyError::Permanent(format!("could not build the request: {e}"));
    }
    // Nothing was sent, and retrying will not help: the operator's policy
    // refused the address (the message says how to allow it).
    if let Some(refused) = shipsync_outbound::refusal(e) {
        return ShopifyError::Permanent(refused.to_string());
    }
    // Not connected means nothing was sent, whatever the operation.
    if e.is_connect() {
        return ShopifyError::Transient {
            reason: format!("could not connect to Shopify: {e}"),
            retry_after: None,
        };
    }
    let what = if e.is_timeout() {
        "no answer within the timeout"
    } else {
        "the connection failed after sending"
    };
    lost_answer(&format!("{what}: {e}"), kind)
}

/// `Retry-After` in seconds (Shopify sends e.g. `2.0`); HTTP dates are not
/// used by Shopify and are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = value.parse().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        Duration::try_from_secs_f64(secs.min(3600.0)).ok()
    } else {
        None
    }
}

fn has_errors(errors: &Value) -> bool {
    match errors {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

/// The messages of a GraphQL `errors` value (array of objects, or a string).
fn error_text(errors: &Value) -> String {
    let text = match errors {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| e.to_string(), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    quote(&text)
}

fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Points reserved in the store's cost budget, given back when dropped:
/// released once sent, returned whole when nothing was sent.
struct Reservation<'a> {
    budget: &'a crate::throttle::Budget,
    reserved: crate::throttle::Reserved,
    sent: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.sent {
            self.budget.release(self.reserved);
        } else {
            self.budget.unused(self.reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2.0"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_text_reads_arrays_and_strings() {
        let v = serde_json::json!([{"message": "a"}, {"message": "b", "extensions": {}}]);
        assert_eq!(error_text(&v), "a; b");
        assert_eq!(
            error_text(&Value::from("Invalid API key")),
            "Invalid API key"
        );
        assert!(!has_errors(&serde_json::json!([])));
        assert!(has_errors(&v));
    }

    #[test]
    fn quote_cuts_long_text_on_a_char_boundary() {
        let long = "é".repeat(MAX_QUOTED + 10);
        let q = quote(&long);
        assert_eq!(q.chars().count(), MAX_QUOTED + 1);
    }
}
