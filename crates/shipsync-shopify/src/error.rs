use std::time::Duration;

/// What went wrong talking to Shopify, classified by what the caller should
/// do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopifyError {
    /// The store's cost bucket is empty (THROTTLED, HTTP 200 or 429). Nothing
    /// was executed; retry after `retry_after`.
    #[error("Shopify throttled the request; retry in {retry_after:?}")]
    Throttled { retry_after: Duration },
    /// The request did not take effect (5xx before execution, connection
    /// refused, unreadable answer to a query). Retry with backoff.
    #[error("Shopify is temporarily unavailable ({reason}); retry later")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A mutation was sent but its answer was lost (timeout, reset, gateway
    /// error): it may have been applied. Re-read the order before retrying.
    #[error(
        "the outcome of a Shopify write is unknown ({reason}); re-read the order before retrying"
    )]
    UnknownOutcome { reason: String },
    /// Shopify refused the mutation's input (`userErrors`). A person must act.
    #[error("Shopify rejected the request: {}", .0.join("; "))]
    UserErrors(Vec<String>),
    /// 401/403 or ACCESS_DENIED: the access token is wrong, revoked, or lacks
    /// a scope.
    #[error("Shopify refused the credentials ({0}); check the access token and its scopes")]
    Unauthorized(String),
    /// 404: wrong shop URL or API version.
    #[error("Shopify answered 404 ({0}); check the shop URL and API version")]
    NotFound(String),
    /// Anything retrying will not fix (GraphQL validation errors, bad input,
    /// a frozen shop).
    #[error("Shopify request failed permanently: {0}")]
    Permanent(String),
}

impl ShopifyError {
    /// Whether retrying the same call later may succeed without a person
    /// acting. `UnknownOutcome` is retryable only after re-reading the order.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Transient { .. } | Self::UnknownOutcome { .. }
        )
    }

    /// How long Shopify asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => Some(*retry_after),
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
