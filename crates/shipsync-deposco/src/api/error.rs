use std::time::Duration;

/// Why a Deposco call failed, after the client's own retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeposcoError {
    /// 429 kept coming after every retry; try again after `retry_after`.
    #[error("Deposco's rate limit is still exceeded after retrying; try again in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// 5xx, 409, timeouts, connection errors: worth retrying later.
    #[error("Deposco is unavailable or slow ({0}); it will be retried")]
    Transient(String),
    /// Credentials refused (401/403, or the token endpoint refused the
    /// refresh token / client): the merchant must fix the connection.
    #[error("Deposco refused the credentials ({0}); check the warehouse connection settings")]
    Unauthorized(String),
    /// Another 4xx, with Deposco's own message (`errors[].errorMessage`),
    /// e.g. an unknown item or a field too long: show it to the user.
    #[error("Deposco refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// The connection settings are unusable (e.g. `api_url` is not a URL).
    #[error("the Deposco connection settings are invalid: {0}")]
    Config(String),
    /// An answer that is not what the API documents (bad JSON, missing
    /// fields, a link to another host, a shipment that does not parse).
    #[error("Deposco answered something shipsync does not understand: {0}")]
    Malformed(String),
}

impl DeposcoError {
    /// Worth trying again later without any change (rate limit, outage).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DeposcoError::RateLimited { .. } | DeposcoError::Transient(_)
        )
    }
}
