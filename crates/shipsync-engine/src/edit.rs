//! What editing a merchant or a connection shares: the caller's reach (as
//! the web's authorization decided it), the typed error the web turns into
//! its HTTP answers, JSON merge patch, and the checks of where credentials
//! go (`warehouse.api_url`, `warehouse.auth.token_url`,
//! `warehouse.business_unit`, `store.shop_url`): only an unlimited caller
//! may change it, the address must be public unless the operator allows
//! private targets, and a change that does not give the credentials again
//! clears them, so that stored secrets never follow a URL someone else
//! chose.

use serde_json::{Map, Value};
use shipsync_db::DbError;

use crate::{Engine, EngineError};

/// Whose data a caller may touch; the web decides it (roles, scopes) and
/// the engine applies it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The merchants the caller is limited to (None: all).
    pub scope: Option<&'a [String]>,
}

impl<'a> Caller<'a> {
    /// A caller limited to `scope` (None: every merchant).
    pub fn new(scope: Option<&'a [String]>) -> Self {
        Self { scope }
    }

    /// Whether the caller may see the merchant's data.
    pub fn sees(&self, merchant_id: &str) -> bool {
        self.scope
            .is_none_or(|s| s.iter().any(|m| m == merchant_id))
    }
}

/// Why a merchant or connection edit was refused; each variant is one kind
/// of HTTP answer (the web maps them, messages as they are).
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The document is not a JSON object (400 `malformed`).
    #[error("{0}")]
    Malformed(String),
    /// A field a person can correct (422 `invalid_field`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A mappings document refused: the rule it names and why (422
    /// `invalid_mapping`); nothing was applied.
    #[error("{rule}: {message}")]
    InvalidMapping { rule: String, message: String },
    /// A URL whose host is not public (422 `private_target`).
    #[error("{0}")]
    PrivateTarget(String),
    /// Switching on what lacks its credentials (422 `credentials_missing`).
    #[error("{0}")]
    CredentialsMissing(String),
    /// The caller may not do this (403 `forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource, or one the caller may not see (404; names it).
    #[error("no {0} with this id")]
    NotFound(&'static str),
    /// The resource's state refuses the change (409 with `code`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A stored secret cannot be opened (500 `internal`, message shown).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl EditError {
    /// 422 `invalid_field` about `field`.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        Self::Invalid {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

pub type EditResult<T> = Result<T, EditError>;

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Whether the patch gives the secret at `pointer` (a non-empty string).
pub(crate) fn gives(patch: &Value, pointer: &str) -> bool {
    patch
        .pointer(pointer)
        .and_then(Value::as_str)
        .is_some_and(|v| !v.trim().is_empty())
}

/// 422 unless `value` is an http(s) URL with a host.
pub(crate) fn check_url(value: &str, field: &str) -> EditResult<()> {
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        _ => Err(EditError::invalid(
            field,
            "must be an http(s) URL such as https://api.deposco.com/latest",
        )),
    }
}

/// 403 naming the first endpoint field a limited caller tried to change.
pub(crate) fn forbid_scoped(caller: Caller<'_>, changed: &[&str]) -> EditResult<()> {
    match changed.first() {
        Some(field) if caller.scope.is_some() => Err(EditError::Forbidden(format!(
            "{field}: your role may not change where credentials are sent (API URL, token URL, \
             business unit, shop URL): ask an Administrator"
        ))),
        _ => Ok(()),
    }
}

/// 422 for switching on a connection whose credentials are missing.
pub(crate) fn missing_credentials(missing: &str) -> EditError {
    EditError::CredentialsMissing(format!(
        "enabled: the connection cannot be enabled until {missing} is given (it is cleared \
         when where it is sent changes)"
    ))
}

impl Engine {
    /// 422 `private_target` when `url`'s host resolves to a non-public
    /// address and the operator has not allowed private targets.
    pub(crate) async fn check_public(&self, field: &str, url: &str) -> EditResult<()> {
        let Ok(parsed) = url::Url::parse(url) else {
            // Not a URL: validation has already answered for that.
            return Ok(());
        };
        shipsync_outbound::check_target(self.config().target_policy(), &parsed)
            .await
            .map_err(|e| EditError::PrivateTarget(format!("{field}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7396_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
        ];
        for (mut t, p, want) in cases {
            merge_patch(&mut t, &p);
            assert_eq!(t, want);
        }
    }
}
