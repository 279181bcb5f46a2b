//! JSON helpers shared by the API resources.

use serde_json::Value;

/// Unix microseconds → RFC 3339 UTC.
pub fn time(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn opt_time(micros: Option<i64>) -> Value {
    micros
        .map(|m| Value::String(time(m)))
        .unwrap_or(Value::Null)
}
