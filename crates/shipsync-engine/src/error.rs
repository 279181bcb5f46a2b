//! The engine's error: what the caller (a worker, the API) must do next —
//! retry later, wait without counting an attempt, or ask a person.

use std::time::Duration;

use shipsync_db::DbError;
use shipsync_deposco::api::DeposcoError;
use shipsync_shopify::ShopifyError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Worth retrying later (store or database unavailable, throttled…).
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// The other side asked us to slow down (rate limit): run again later
    /// without counting a failed attempt.
    #[error("{message}")]
    Deferred { message: String, after: Duration },
    /// Run again at `at` (µs), exactly, without counting a failed attempt:
    /// the job keeps its own schedule (an event delivery's retries).
    #[error("{message}")]
    Scheduled { message: String, at: i64 },
    /// A person must act; retrying will not help.
    #[error("{0}")]
    Permanent(String),
    #[error("not found")]
    NotFound,
    /// Input a person can correct: `field` names what to fix.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The channel or its connection is switched off.
    #[error("the channel or its connection is disabled")]
    ChannelDisabled,
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub(crate) fn retry(message: impl Into<String>) -> EngineError {
    EngineError::Retry {
        message: message.into(),
        after: None,
    }
}

impl From<shipsync_db::SqlxError> for EngineError {
    fn from(e: shipsync_db::SqlxError) -> Self {
        EngineError::Db(DbError::from(e))
    }
}

impl From<ShopifyError> for EngineError {
    fn from(e: ShopifyError) -> Self {
        if let ShopifyError::Throttled { retry_after } = &e {
            EngineError::Deferred {
                message: e.to_string(),
                after: *retry_after,
            }
        } else if e.is_retryable() {
            EngineError::Retry {
                after: e.retry_after(),
                message: e.to_string(),
            }
        } else {
            EngineError::Permanent(e.to_string())
        }
    }
}

impl From<DeposcoError> for EngineError {
    fn from(e: DeposcoError) -> Self {
        if e.is_retryable() {
            EngineError::Retry {
                message: e.to_string(),
                after: None,
            }
        } else {
            EngineError::Permanent(e.to_string())
        }
    }
}
