//! HTTP layer: the GraphQL endpoint (auth, validation, faults, cost,
//! execution) and the JSON control endpoints of the standalone sandbox. The
//! OAuth endpoints are in `oauth.rs`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::executable::OperationType;
use apollo_compiler::resolvers::Execution;
use apollo_compiler::validation::Valid;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cost::{CostModel, MAX_SINGLE_QUERY_COST};
use crate::oauth;
use crate::resolve::{Ctx, Obj, json_map};
use crate::webhooks::AppKey;
use crate::{
    API_VERSION, FaultKind, Faults, LineEdit, OrderSpec, RecordedRequest, SandboxError,
    ShopifySandbox, WebhookFaults, lock,
};

pub(crate) fn router(sandbox: ShopifySandbox) -> Router {
    Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql))
        .route("/_sandbox/orders", post(create_order))
        .route("/_sandbox/orders/{name}", get(get_order))
        .route("/_sandbox/faults", post(set_faults))
        .route(
            "/_sandbox/fulfillment_orders/status",
            post(set_fulfillment_order_status),
        )
        .route("/admin/oauth/authorize", get(oauth::authorize))
        .route("/admin/oauth/access_token", post(oauth::access_token))
        .route("/_sandbox/app", post(oauth::set_app))
        .route("/_sandbox/revoke", post(oauth::revoke))
        .route("/_sandbox/expire", post(oauth::expire))
        .route("/_sandbox/token-requests", get(oauth::token_requests))
        .route("/_sandbox/orders/{name}/cancel", post(cancel_order))
        .route("/_sandbox/orders/{name}/edit", post(edit_order))
        .route("/_sandbox/orders/{name}/tags", post(set_tags))
        .route(
            "/_sandbox/orders/{name}/financial_status",
            post(set_financial_status),
        )
        .route("/_sandbox/fulfillment_orders/hold", post(hold_fo))
        .route("/_sandbox/fulfillment_orders/release", post(release_fo))
        .route("/_sandbox/webhook-deliveries", get(webhook_deliveries))
        .route(
            "/_sandbox/webhook-subscriptions",
            get(webhook_subscriptions),
        )
        .route("/_sandbox/webhook-faults", post(set_webhook_faults))
        .route(
            "/_sandbox/webhook-faults/release",
            post(release_held_webhooks),
        )
        .with_state(sandbox)
}

/// How many requests [`ShopifySandbox::requests`] remembers.
const MAX_RECORDED_REQUESTS: usize = 10_000;

/// The outcome of parsing and validating one document against the schema:
/// the document, or the diagnostics that reject it.
type Validated = Arc<Result<Valid<ExecutableDocument>, String>>;

/// How many distinct documents [`validated`] remembers; past it the cache
/// starts over (a client sends a handful of distinct documents, a fuzzer
/// many).
const MAX_CACHED_DOCUMENTS: usize = 1024;

/// Parsed and validated documents, keyed by their exact text. Validation
/// depends only on the text and on the schema, which is fixed for the life
/// of the process ([`shipsync_shopify_schema::schema`]), so a cached answer
/// is the answer validation would give again — acceptances and rejections
/// alike. Everything that depends on the request (the operation name, the
/// variables, cost, execution) is still done per request.
static DOCUMENTS: LazyLock<Mutex<HashMap<String, Validated>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// [`shipsync_shopify_schema::validate`], once per distinct document text.
fn validated(query: &str) -> Validated {
    if let Some(hit) = lock(&DOCUMENTS).get(query) {
        return hit.clone();
    }
    // Validated outside the lock: two requests with the same new document
    // may both validate it, and both get the same answer.
    let fresh: Validated = Arc::new(shipsync_shopify_schema::validate(query));
    let mut cache = lock(&DOCUMENTS);
    if cache.len() >= MAX_CACHED_DOCUMENTS {
        cache.clear();
    }
    cache.insert(query.to_owned(), fresh.clone());
    fresh
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphqlRequest {
    query: String,
    #[serde(default)]
    variables: Value,
    operation_name: Option<String>,
}

/// What the handler answered, plus what to record about it.
struct Outcome {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
    fault: Option<FaultKind>,
    operation_name: Option<String>,
    operation_type: Option<String>,
    /// The access token was missing, unknown, expired or revoked.
    token_refused: bool,
}

impl Outcome {
    fn new(status: StatusCode, body: Value) -> Self {
        Outcome {
            status,
            body,
            retry_after: None,
            fault: None,
            operation_name: None,
            operation_type: None,
            token_refused: false,
        }
    }
}

/// A GraphQL error in Shopify's shape, HTTP 200.
fn graphql_error(message: impl Into<String>, code: &str, cost: Option<Value>) -> Outcome {
    let mut body = json!({
        "errors": [{ "message": message.into(), "extensions": { "code": code } }]
    });
    if let Some(cost) = cost {
        body["extensions"] = json!({ "cost": cost });
    }
    Outcome::new(StatusCode::OK, body)
}

async fn graphql(
    State(sandbox): State<ShopifySandbox>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Result<GraphqlRequest, _> = serde_json::from_slice(&body);
    let outcome = serve_graphql(&sandbox, &version, &headers, parsed.as_ref().ok()).await;

    let error_codes = outcome.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let (query, variables) = match &parsed {
        Ok(r) => (r.query.clone(), r.variables.clone()),
        Err(_) => (String::from_utf8_lossy(&body).into_owned(), Value::Null),
    };
    let mut requests = lock(&sandbox.inner.requests);
    // A long-running standalone sandbox (`shipsync demo`) must not grow
    // without bound; tests look at far fewer requests than this.
    if requests.len() >= MAX_RECORDED_REQUESTS {
        requests.drain(..MAX_RECORDED_REQUESTS / 10);
    }
    requests.push(RecordedRequest {
        operation_name: outcome.operation_name.clone(),
        operation_type: outcome.operation_type.clone(),
        query,
        variables,
        status: outcome.status.as_u16(),
        fault: outcome.fault,
        error_codes,
        token_refused: outcome.token_refused,
    });
    drop(requests);

    let mut response = (outcome.status, Json(outcome.body)).into_response();
    response.headers_mut().insert(
        "x-shopify-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    if let Some(secs) = outcome.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

async fn serve_graphql(
    sandbox: &ShopifySandbox,
    version: &str,
    headers: &HeaderMap,
    request: Option<&GraphqlRequest>,
) -> Outcome {
    // The sandbox serves exactly the schema version it validates against.
    if version != API_VERSION {
        return Outcome::new(StatusCode::NOT_FOUND, json!({ "errors": "Not Found" }));
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok());
    // The legacy token of the config, or one the OAuth endpoints issued
    // that has neither expired nor been revoked.
    let app = match token {
        Some(t) if t == sandbox.inner.access_token => {
            Some((sandbox.inner.access_token_scopes.clone(), AppKey::Legacy))
        }
        Some(t) => lock(&sandbox.inner.auth)
            .token_app(t)
            .map(|(scopes, client_id)| (scopes, AppKey::Dev(client_id))),
        None => None,
    };
    let Some((scopes, app)) = app else {
        let mut o = Outcome::new(
            StatusCode::UNAUTHORIZED,
            json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" }),
        );
        o.token_refused = true;
        return o;
    };
    let Some(request) = request else {
        return Outcome::new(
            StatusCode::BAD_REQUEST,
            json!({ "errors": { "query": "Required parameter missing or invalid" } }),
        );
    };

    let schema = shipsync_shopify_schema::schema();
    let validated = validated(&request.query);
    let document = match &*validated {
        Ok(d) => d,
        Err(diagnostics) => {
            return graphql_error(diagnostics.clone(), "GRAPHQL_VALIDATION_FAILED", None);
        }
    };
    let operation = match document.operations.get(request.operation_name.as_deref()) {
        Ok(op) => op,
        Err(e) => return graphql_error(e.message().to_string(), "OPERATION_NOT_FOUND", None),
    };
    let is_mutation = operation.operation_type == OperationType::Mutation;
    let meta = |mut o: Outcome| {
        o.operation_name = operation.name.as_ref().map(|n| n.to_string());
        o.operation_type = Some(if is_mutation { "mutation" } else { "query" }.into());
        o
    };
    if operation.operation_type == OperationType::Subscription {
        return meta(graphql_error(
            "Subscriptions are not supported",
            "BAD_REQUEST",
            None,
        ));
    }
    let variables = match json_map(&request.variables) {
        Ok(v) => v,
        Err(e) => return meta(graphql_error(e, "INVALID_VARIABLE", None)),
    };
    let variables =
        match apollo_compiler::request::coerce_variable_values(schema, operation, &variables) {
            Ok(v) => v,
            Err(e) => {
                return meta(graphql_error(
                    format!("Variable value invalid: {}", e.message()),
                    "INVALID_VARIABLE",
                    None,
                ));
            }
        };

    let fault = pick_fault(sandbox, is_mutation);
    match &fault {
        Some((FaultKind::Http500, _)) => {
            return meta(fault_outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                FaultKind::Http500,
            ));
        }
        Some((FaultKind::Http502, _)) => {
            return meta(fault_outcome(StatusCode::BAD_GATEWAY, FaultKind::Http502));
        }
        Some((FaultKind::Throttled, _)) => {
            let status = lock(&sandbox.inner.bucket).status();
            let mut o = graphql_error(
                "Throttled",
                "THROTTLED",
                Some(cost_json(None, None, status)),
            );
            o.fault = Some(FaultKind::Throttled);
            return meta(o);
        }
        Some((FaultKind::TooManyRequests, faults)) => {
            let mut o = Outcome::new(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service." }),
            );
            o.retry_after = Some(faults.retry_after_secs);
            o.fault = Some(FaultKind::TooManyRequests);
            return meta(o);
        }
        Some((FaultKind::Timeout, faults)) => {
            tokio::time::sleep(Duration::from_millis(faults.timeout_ms)).await;
        }
        Some((FaultKind::ApplyThenDrop, _)) | None => {}
    }

    let model = CostModel {
        schema,
        document,
        variables: &variables,
    };
    let requested = if is_mutation {
        model.mutation(&operation.selection_set)
    } else {
        model.selection(&operation.selection_set, None, None)
    };
    if requested > MAX_SINGLE_QUERY_COST {
        let status = lock(&sandbox.inner.bucket).status();
        return meta(graphql_error(
            format!(
                "Query cost is {requested}, which exceeds the single query max cost limit ({MAX_SINGLE_QUERY_COST}). Reduce page sizes (first/last) or split the query."
            ),
            "MAX_COST_EXCEEDED",
            Some(cost_json(Some(requested), None, status)),
        ));
    }
    {
        let mut bucket = lock(&sandbox.inner.bucket);
        if !bucket.try_take(requested) {
            let status = bucket.status();
            return meta(graphql_error(
                "Throttled",
                "THROTTLED",
                Some(cost_json(Some(requested), None, status)),
            ));
        }
    }

    let visible_after = Duration::from_millis(
        lock(&sandbox.inner.faults)
            .faults
            .fulfillments_visible_after_ms,
    );
    let (response, denied, events) = {
        let mut guard = lock(&sandbox.inner.state);
        guard.visible_after = visible_after;
        // Execution borrows the state through a RefCell (mutations change it
        // while the executor holds shared handles); it goes back afterwards.
        let ctx = Ctx::new(
            std::mem::take(&mut *guard),
            scopes,
            app,
            sandbox.inner.allow_http_webhooks,
        );
        let root = if is_mutation {
            Obj::mutation(&ctx)
        } else {
            Obj::query(&ctx)
        };
        let result = Execution::new(schema, document)
            .operation(operation)
            .coerced_variable_values(&variables)
            .execute_sync(&root);
        drop(root);
        *guard = ctx.st.into_inner();
        let events = guard.take_events();
        (result, ctx.denied.into_inner(), events)
    };
    // Webhooks of what the mutation changed (sent even when an injected
    // fault then hides the answer: the change happened).
    sandbox.send_events(events);
    let mut body = match response.map(|r| serde_json::to_value(&r)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return meta(graphql_error(
                format!("response encoding: {e}"),
                "INTERNAL_SERVER_ERROR",
                None,
            ));
        }
        Err(e) => return meta(graphql_error(e.message().to_string(), "BAD_REQUEST", None)),
    };
    mark_access_denied(&mut body, &denied);
    let actual = if is_mutation {
        requested
    } else {
        model.selection(&operation.selection_set, body.get("data"), None)
    };
    let status = {
        let mut bucket = lock(&sandbox.inner.bucket);
        bucket.refund(requested - actual);
        bucket.status()
    };
    body["extensions"] = json!({ "cost": cost_json(Some(requested), Some(actual), status) });

    if matches!(fault, Some((FaultKind::ApplyThenDrop, _))) {
        return meta(fault_outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            FaultKind::ApplyThenDrop,
        ));
    }
    meta(Outcome::new(StatusCode::OK, body))
}

/// Gives the errors of fields refused for a missing scope Shopify's shape:
/// the bare message and `extensions` with `ACCESS_DENIED`, the documentation
/// link and `requiredAccess` (see `access.rs`).
fn mark_access_denied(body: &mut Value, denied: &[(String, String)]) {
    if denied.is_empty() {
        return;
    }
    let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) else {
        return;
    };
    for error in errors {
        let message = error["message"].as_str().unwrap_or_default();
        // apollo-compiler prefixes resolver errors; Shopify's have none.
        let bare = message.strip_prefix("resolver error: ").unwrap_or(message);
        if let Some((m, required)) = denied.iter().find(|(m, _)| m == bare) {
            error["message"] = json!(m);
            error["extensions"] = json!({
                "code": "ACCESS_DENIED",
                "documentation": "https://shopify.dev/api/usage/access-scopes",
                "requiredAccess": required,
            });
        }
    }
}

fn cost_json(requested: Option<f64>, actual: Option<f64>, throttle_status: Value) -> Value {
    json!({
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": throttle_status,
    })
}

fn fault_outcome(status: StatusCode, kind: FaultKind) -> Outcome {
    let mut o = Outcome::new(
        status,
        json!({ "errors": "Internal Server Error (injected by the Shopify sandbox)" }),
    );
    o.fault = Some(kind);
    o
}

/// Decides whether this request fails, and how.
fn pick_fault(sandbox: &ShopifySandbox, is_mutation: bool) -> Option<(FaultKind, Faults)> {
    let mut fs = lock(&sandbox.inner.faults);
    if fs.faults.mutations_only && !is_mutation {
        return None;
    }
    let kinds = &fs.faults.kinds;
    let kind = if fs.faults.fail_next > 0 {
        let kind = kinds.get(fs.turn % kinds.len().max(1)).copied();
        fs.faults.fail_next -= 1;
        fs.turn += 1;
        kind.unwrap_or(FaultKind::Http500)
    } else if fs.faults.fail_rate > 0.0 && rand::random::<f64>() < fs.faults.fail_rate {
        if kinds.is_empty() {
            FaultKind::Http500
        } else {
            kinds[rand::random_range(0..kinds.len())]
        }
    } else {
        return None;
    };
    Some((kind, fs.faults.clone()))
}

fn error_response(e: SandboxError) -> Response {
    let status = match e {
        SandboxError::InvalidSpec(_) => StatusCode::UNPROCESSABLE_ENTITY,
        SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
        SandboxError::Refused(_) => StatusCode::CONFLICT,
    };
    (status, Json(json!({ "error": e.to_string() }))).into_response()
}

async fn create_order(
    State(sandbox): State<ShopifySandbox>,
    Json(spec): Json<OrderSpec>,
) -> Response {
    match sandbox.try_create_order(spec) {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(e) => error_response(e),
    }
}

async fn get_order(State(sandbox): State<ShopifySandbox>, Path(name): Path<String>) -> Response {
    match sandbox.order(&name) {
        Some(view) => Json(view).into_response(),
        None => error_response(SandboxError::NotFound(format!("order {name}"))),
    }
}

async fn set_faults(
    State(sandbox): State<ShopifySandbox>,
    Json(faults): Json<Faults>,
) -> StatusCode {
    sandbox.set_faults(faults);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct FoStatus {
    fulfillment_order_id: String,
    status: String,
}

async fn set_fulfillment_order_status(
    State(sandbox): State<ShopifySandbox>,
    Json(body): Json<FoStatus>,
) -> Response {
    match sandbox.try_set_fulfillment_order_status(&body.fulfillment_order_id, &body.status) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

/// `204 No Content`, or the error.
fn done(result: Result<(), SandboxError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct CancelBody {
    reason: String,
}

async fn cancel_order(
    State(sandbox): State<ShopifySandbox>,
    Path(name): Path<String>,
    Json(body): Json<CancelBody>,
) -> Response {
    done(sandbox.cancel_order(&name, &body.reason))
}

#[derive(Deserialize)]
struct EditBody {
    changes: Vec<LineEdit>,
}

async fn edit_order(
    State(sandbox): State<ShopifySandbox>,
    Path(name): Path<String>,
    Json(body): Json<EditBody>,
) -> Response {
    match sandbox.edit_order(&name, &body.changes) {
        Ok(edited) => Json(edited).into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct TagsBody {
    tags: Vec<String>,
}

async fn set_tags(
    State(sandbox): State<ShopifySandbox>,
    Path(name): Path<String>,
    Json(body): Json<TagsBody>,
) -> Response {
    let tags: Vec<&str> = body.tags.iter().map(String::as_str).collect();
    done(sandbox.set_order_tags(&name, &tags))
}

#[derive(Deserialize)]
struct FinancialBody {
    status: String,
}

async fn set_financial_status(
    State(sandbox): State<ShopifySandbox>,
    Path(name): Path<String>,
    Json(body): Json<FinancialBody>,
) -> Response {
    done(sandbox.set_financial_status(&name, &body.status))
}

#[derive(Deserialize)]
struct HoldBody {
    fulfillment_order_id: String,
    reason: String,
    #[serde(default)]
    reason_notes: Option<String>,
}

async fn hold_fo(State(sandbox): State<ShopifySandbox>, Json(body): Json<HoldBody>) -> Response {
    match sandbox.hold_fulfillment_order(
        &body.fulfillment_order_id,
        &body.reason,
        body.reason_notes.as_deref(),
    ) {
        Ok(hold_id) => Json(json!({ "hold_id": hold_id })).into_response(),
        Err(e) => error_response(e),
    }
}

#[derive(Deserialize)]
struct FoBody {
    fulfillment_order_id: String,
}

async fn release_fo(State(sandbox): State<ShopifySandbox>, Json(body): Json<FoBody>) -> Response {
    done(sandbox.release_fulfillment_order(&body.fulfillment_order_id))
}

async fn webhook_deliveries(State(sandbox): State<ShopifySandbox>) -> Response {
    Json(sandbox.webhook_deliveries()).into_response()
}

async fn webhook_subscriptions(State(sandbox): State<ShopifySandbox>) -> Response {
    Json(sandbox.webhook_subscriptions()).into_response()
}

async fn set_webhook_faults(
    State(sandbox): State<ShopifySandbox>,
    Json(faults): Json<WebhookFaults>,
) -> StatusCode {
    sandbox.set_webhook_faults(faults);
    StatusCode::NO_CONTENT
}

async fn release_held_webhooks(State(sandbox): State<ShopifySandbox>) -> Response {
    Json(json!({ "released": sandbox.release_held_webhooks() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_cached_by_exact_text_and_rejections_stay_rejections() {
        let ok = "query Shop { shop { name } }";
        let first = validated(ok);
        assert!(first.is_ok());
        assert!(Arc::ptr_eq(&first, &validated(ok)), "same text, same entry");
        // Another text is validated on its own, even if it differs only in
        // spacing.
        let spaced = "query Shop { shop { name  } }";
        assert!(!Arc::ptr_eq(&first, &validated(spaced)));
        // A field the schema does not have is rejected every time.
        let bad = "query Shop { shop { nameThatDoesNotExist } }";
        let rejected = validated(bad);
        assert!(rejected.is_err());
        assert_eq!(
            rejected.as_ref().as_ref().err(),
            validated(bad).as_ref().as_ref().err()
        );
    }
}
