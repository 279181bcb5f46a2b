//! `/api/v1`: bearer-token JSON API, and its OpenAPI 3.1 document.
//!
//! Every route is registered with `utoipa_axum::routes!`, which takes its
//! method and path from the handler's `#[utoipa::path]`: the router and the
//! document are made from the same list and cannot drift apart.

pub(crate) mod account;
pub(crate) mod alert_policies;
pub(crate) mod alerts;
mod alerts_schema;
pub(crate) mod connections;
pub(crate) mod event_subscriptions;
pub(crate) mod events;
pub(crate) mod mappings;
pub(crate) mod merchants;
pub(crate) mod notification_channels;
pub(crate) mod orders;
mod schema;
pub(crate) mod shipments;
pub(crate) mod users;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// Where the API is mounted (`crate::router` nests it here).
pub const PREFIX: &str = "/api/v1";

/// Every `/api/v1` route with its handler: the one list that both
/// [`router`] and [`document`] are made from.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(merchants::routes())
        .merge(mappings::routes())
        .merge(connections::routes())
        .merge(shipments::routes())
        .merge(orders::routes())
        .merge(events::routes())
        .merge(event_subscriptions::routes())
        .merge(users::routes())
        .merge(account::routes())
        .merge(notification_channels::routes())
        .merge(alert_policies::routes())
        .merge(alerts::routes())
}

pub fn router(state: AppState) -> Router<AppState> {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take this HTTP method (see docs/contract.md)",
            )
        })
        .layer(middleware::from_fn_with_state(state, authenticate))
}

/// What the document says beyond the handlers: title, the bearer scheme
/// every operation needs (but the document itself), and the tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "shipsync API",
        version = "1",
        description = "Deposco warehouse shipments to Shopify stores. Errors are \
            `{\"error\": {\"code\", \"message\"}}`; PATCH takes a JSON merge patch \
            (RFC 7396); lists answer `{\"items\", \"next_cursor\"}`. See docs/contract.md."
    ),
    paths(openapi_json),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "merchants", description = "The warehouse side and its shipment webhooks"),
        (name = "mappings", description = "A merchant's shipping methods, SKU aliases, kit recipes and carriers"),
        (name = "connections", description = "Stores of a merchant, their channels and runs"),
        (name = "shipments", description = "What the warehouse shipped, and what the store knows"),
        (name = "orders", description = "Store orders sent to the warehouse"),
        (name = "events", description = "Inbound webhook deliveries, raw, with replay"),
        (name = "events_out", description = "Outbound events for a merchant's own systems: subscriptions, deliveries (signed per Standard Webhooks), replay"),
        (name = "users", description = "Web-UI users (Administrators only)"),
        (name = "account", description = "The caller's own API tokens"),
        (name = "alerts", description = "Notification channels, alert policies and the alerts they raise"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// `Authorization: Bearer <token>`.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components.get_or_insert_default().add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "SHIPSYNC_ADMIN_TOKEN, or a user's token (`shipsync users token EMAIL`, \
                         POST /api/v1/account/tokens)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Answers the authentication layer (and the database) may give on every
/// operation that needs a token.
const COMMON_ERRORS: [(&str, &str); 4] = [
    ("401", "missing or invalid bearer token (`unauthorized`)"),
    (
        "429",
        "too many failed bearer tokens from this address (`too_many_attempts`, with `Retry-After`)",
    ),
    ("500", "internal error (`internal`); see the server log"),
    (
        "503",
        "the database is unavailable (`unavailable`, with `Retry-After`); retry shortly",
    ),
];

/// The OpenAPI 3.1 document of `/api/v1` (served at
/// `GET /api/v1/openapi.json`), made once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut api = OpenApiRouter::<AppState>::new()
            .nest(PREFIX, routes())
            .into_openapi();
        let error = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build()
        };
        for item in api.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                for (status, why) in COMMON_ERRORS {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(why)
                                .content("application/json", error())
                                .build()
                                .into()
                        });
                }
            }
        }
        let mut doc = ApiDoc::openapi();
        doc.merge(api);
        doc
    })
}

/// `GET /api/v1/openapi.json`: served without a token, like `/healthz`: it
/// describes the API's shape, holds no data and no secret, and client
/// generators fetch it without credentials.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi_document",
    tag = "meta",
    summary = "This document",
    description = "The OpenAPI 3.1 description of /api/v1; needs no token.",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    axum::Json(document()).into_response()
}

async fn authenticate(
    State(s): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token: send Authorization: Bearer <token>",
        )
    };
    if token.is_empty() {
        return Err(unauthorized());
    }
    let client = crate::client::of(req.extensions(), req.headers(), &s);
    s.throttle
        .bearer_check(client)
        .map_err(ApiError::too_many_attempts)?;
    let admin_ok = s.config.admin_token.as_deref().is_some_and(|a| {
        a.len() == token.len() && bool::from(a.as_bytes().ct_eq(token.as_bytes()))
    });
    let principal = if admin_ok {
        Principal::admin_token()
    } else {
        match s.engine.token_user(token).await? {
            None => {
                s.throttle.bearer_failed(client);
                return Err(unauthorized());
            }
            Some(None) => Principal::admin_token(),
            Some(Some(user)) => Principal::from_user(user),
        }
    };
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// `axum::extract::Query` whose rejection is a JSON 400 in the API's error
/// shape (axum's own answers in plain text).
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the query string cannot be read: {}",
                    e.body_text()
                ))
            })
    }
}

/// `cursor` and `limit` of list endpoints.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page: 1 to 500 (else 422), default 50. Read as text, so
    /// that a wrong one gets the API's 422 rather than axum's 400.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

impl Page {
    pub fn limit(&self) -> ApiResult<i64> {
        match self.limit.as_deref() {
            None | Some("") => Ok(50),
            Some(l) => match l.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => Ok(n),
                Ok(_) => Err(ApiError::invalid("limit", "must be between 1 and 500")),
                Err(_) => Err(ApiError::invalid("limit", "must be a whole number")),
            },
        }
    }
}

/// `{"items": […], "next_cursor": …}` from rows fetched with `limit + 1`.
pub fn list<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> String,
    render: impl Fn(&T) -> serde_json::Value,
) -> schema::List<serde_json::Value> {
    let limit = usize::try_from(limit).unwrap_or(50);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more { rows.last().map(&id) } else { None };
    schema::List {
        items: rows.iter().map(render).collect(),
        next_cursor,
    }
}

/// A JSON body, with a 400 that says what is wrong.
pub fn body_json(bytes: &[u8]) -> ApiResult<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// OpenAPI 3.1, bearer auth on every operation but the document's own,
    /// each answering the authentication layer's errors, and operation ids
    /// unique (client generators name their methods after them).
    #[test]
    fn document_is_openapi_3_1_with_bearer_auth() {
        let doc = serde_json::to_value(super::document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with("/api/v1/"), "{path}");
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "operationId {id} twice");
                if path == "/api/v1/openapi.json" {
                    assert_eq!(op["security"], serde_json::json!([{}]));
                    continue;
                }
                assert_eq!(op.get("security"), None, "{method} {path}");
                for status in ["401", "429", "500", "503"] {
                    let schema = &op["responses"][status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
                let answers = op["responses"].as_object().unwrap();
                assert!(
                    answers.keys().any(|s| s.starts_with('2')),
                    "{method} {path}: no success answer"
                );
            }
        }
        assert!(ids.len() >= 30, "{ids:?}");
        // A list's query parameters: its filters and the page's, from the
        // handler's own query type.
        let params = doc["paths"]["/api/v1/shipments"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "cursor",
                "limit",
                "merchant_id",
                "connection_id",
                "status",
                "order_name",
                "source"
            ]
        );
        assert_eq!(params[1]["schema"]["type"], "integer");
        assert_eq!(params[1]["schema"]["maximum"], 500);
        assert!(matches!(
            doc.pointer("/components/schemas/Error/properties/error"),
            Some(Value::Object(_))
        ));
    }
}
