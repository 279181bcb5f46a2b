//! The one place where errors become HTTP answers:
//! `{"error":{"code":"snake_case","message":"…"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shipsync_engine::EngineError;
use shipsync_engine::edit::EditError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
    pub extra: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            extra: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {why}"),
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} with this id"),
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(5);
        e
    }
    /// 429 `too_many_attempts`: failed sign-ins or bearer tokens
    /// ([`crate::throttle`]).
    pub fn too_many_attempts(refused: crate::throttle::TooMany) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many failed attempts from this address or for this account; retry in {} s",
                refused.seconds()
            ),
        );
        e.retry_after = Some(refused.seconds());
        e
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if let (Some(extra), Some(obj)) = (self.extra, error.as_object_mut())
            && let Some(e) = extra.as_object()
        {
            obj.extend(e.clone());
        }
        let mut resp = (self.status, Json(serde_json::json!({ "error": error }))).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<shipsync_db::DbError> for ApiError {
    fn from(e: shipsync_db::DbError) -> Self {
        if e.is_unavailable() {
            ApiError::unavailable(format!("the database is unavailable ({e}); retry shortly"))
        } else {
            tracing::error!(error = %e, "database error");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal database error; see the server log",
            )
        }
    }
}

impl ApiError {
    /// An engine error about one `what` (e.g. "shipment"): its NotFound
    /// names the resource.
    pub fn from_engine(e: EngineError, what: &str) -> Self {
        match e {
            EngineError::NotFound => ApiError::not_found(what),
            other => other.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => ApiError::not_found("resource"),
            EngineError::ChannelDisabled => ApiError::conflict(
                "channel_disabled",
                "this channel or its connection is disabled: enable both first",
            ),
            EngineError::Invalid { field, message } => ApiError::invalid(field, message),
            EngineError::Db(d) => d.into(),
            EngineError::Permanent(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            EngineError::Retry { message, .. }
            | EngineError::Deferred { message, .. }
            | EngineError::Scheduled { message, .. } => ApiError::unavailable(message),
            EngineError::Internal(m) => {
                tracing::error!("internal error: {m}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        match e {
            EditError::Malformed(m) => ApiError::bad_request(m),
            EditError::Invalid { field, message } => ApiError::invalid(&field, message),
            EditError::InvalidMapping { rule, message } => {
                let mut e = ApiError::new(
                    unprocessable,
                    "invalid_mapping",
                    format!("{rule}: {message}"),
                );
                e.extra = Some(serde_json::json!({ "rule": rule }));
                e
            }
            EditError::PrivateTarget(m) => ApiError::new(unprocessable, "private_target", m),
            EditError::CredentialsMissing(m) => {
                ApiError::new(unprocessable, "credentials_missing", m)
            }
            EditError::Forbidden(m) => crate::auth::forbidden(m),
            EditError::NotFound(what) => ApiError::not_found(what),
            EditError::Conflict { code, message } => ApiError::conflict(code, message),
            EditError::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
            }
            EditError::Engine(e) => e.into(),
            EditError::Db(d) => d.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
