//! A connection document: its defaults, the checks of every field (with
//! the answers a person reads), and how its store secrets are sealed into
//! the row.

use serde_json::{Map, Value, json};
use shipsync_core::order_rules::OrderRules;
use shipsync_core::states::Channel;
use shipsync_db::connections::ConnectionRow;
use shipsync_db::merchants::MerchantRow;

use crate::StoreSettings;
use crate::edit::{EditError, EditResult, check_url};
use crate::secrets::SecretBox;
use crate::tokens::StoreAuth;

/// A new connection's channels, in the order they are created.
pub const CHANNELS: [Channel; 2] = [Channel::SalesOrders, Channel::Shipments];
pub(super) const DEFAULT_API_VERSION: &str = "2026-10";

/// The default Shipments schedule: every 4 hours.
pub(super) fn default_schedules(channel: Channel) -> Value {
    if channel == Channel::Shipments {
        json!([{"id": shipsync_db::new_id("sch"), "kind": "hourly", "every": 4, "minute": 0, "time_zone": "UTC"}])
    } else {
        json!([])
    }
}

pub(super) fn defaults() -> Value {
    json!({
        "enabled": false,
        "order_prefix": "",
        "store": {"platform": "shopify", "api_version": DEFAULT_API_VERSION, "location_id": null, "notify_customer": true},
    })
}

pub(super) fn strip_read_only(patch: &mut Value) {
    if let Some(o) = patch.as_object_mut() {
        for k in ["id", "created_at", "updated_at"] {
            o.remove(k);
        }
        for k in ["store_status", "store_error", "order_webhooks"] {
            o.remove(k);
        }
        if let Some(st) = o.get_mut("store").and_then(Value::as_object_mut) {
            st.remove("access_token_set");
            st.remove("api_secret_set");
            if let Some(a) = st.get_mut("auth").and_then(Value::as_object_mut) {
                for k in AUTH_READ_ONLY {
                    a.remove(k);
                }
            }
        }
    }
}

/// What answers show of `store.auth` and a request may send back unchanged.
pub(super) const AUTH_READ_ONLY: [&str; 6] = [
    "client_secret_set",
    "access_token_set",
    "connected",
    "expires_at",
    "missing_scopes",
    "requested_scopes",
];

/// A stored (sealed) secret, opened.
pub(super) fn open(secrets: &SecretBox, sealed: &Option<Vec<u8>>) -> EditResult<Option<String>> {
    sealed
        .as_ref()
        .map(|b| secrets.open_string(b))
        .transpose()
        .map_err(|e| EditError::Internal(e.to_string()))
}

pub(super) fn to_doc(s: &SecretBox, c: &ConnectionRow) -> EditResult<Value> {
    let mut store: Value = serde_json::from_str(&c.store_json).unwrap_or_else(|_| json!({}));
    if let (Some(token), Some(o)) = (open(s, &c.store_token)?, store.as_object_mut()) {
        o.insert("access_token".into(), json!(token));
    }
    if let (Some(secret), Some(a)) = (
        open(s, &c.store_client_secret)?,
        store.get_mut("auth").and_then(Value::as_object_mut),
    ) {
        a.insert("client_secret".into(), json!(secret));
    }
    if let (Some(secret), Some(o)) = (open(s, &c.store_api_secret)?, store.as_object_mut()) {
        o.insert("api_secret".into(), json!(secret));
    }
    Ok(
        json!({"name": c.name, "merchant_id": c.merchant_id, "enabled": c.enabled, "order_prefix": c.order_prefix, "store": store, "order_rules": c.order_rules}),
    )
}

pub(super) struct Parts {
    pub(super) name: String,
    pub(super) merchant_id: String,
    pub(super) enabled: bool,
    pub(super) order_prefix: String,
    pub(super) store_json: String,
    pub(super) access_token: Option<String>,
    pub(super) client_secret: Option<String>,
    /// The Shopify app's API secret key (signs order webhooks).
    pub(super) api_secret: Option<String>,
    pub(super) order_rules: OrderRules,
}

pub(super) fn validate(doc: &Value) -> EditResult<Parts> {
    let obj = doc
        .as_object()
        .ok_or_else(|| EditError::Malformed("the body must be a JSON object".into()))?;
    for k in obj.keys() {
        if ![
            "name",
            "merchant_id",
            "enabled",
            "order_prefix",
            "store",
            "order_rules",
        ]
        .contains(&k.as_str())
        {
            return Err(EditError::invalid(k, "unknown field"));
        }
    }
    let string = |o: &Map<String, Value>,
                  k: &str,
                  field: &str,
                  required: bool|
     -> EditResult<Option<String>> {
        match o.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(Value::String(_)) | None | Some(Value::Null) if required => {
                Err(EditError::invalid(field, "is required"))
            }
            Some(Value::String(_)) | None | Some(Value::Null) => Ok(None),
            Some(_) => Err(EditError::invalid(field, "must be a string")),
        }
    };
    let name = string(obj, "name", "name", true)?.unwrap_or_default();
    if name.chars().count() > 200 {
        return Err(EditError::invalid("name", "must be at most 200 characters"));
    }
    let merchant_id = string(obj, "merchant_id", "merchant_id", true)?.unwrap_or_default();
    let enabled = match obj.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(EditError::invalid("enabled", "must be true or false")),
    };
    let order_prefix = string(obj, "order_prefix", "order_prefix", false)?.unwrap_or_default();
    if order_prefix.len() > 20 {
        return Err(EditError::invalid(
            "order_prefix",
            "must be at most 20 characters",
        ));
    }
    let st = obj
        .get("store")
        .and_then(Value::as_object)
        .ok_or_else(|| EditError::invalid("store", "must be an object"))?;
    for k in st.keys() {
        if ![
            "platform",
            "shop_url",
            "access_token",
            "api_version",
            "location_id",
            "notify_customer",
            "auth",
            "api_secret",
        ]
        .contains(&k.as_str())
        {
            return Err(EditError::invalid(&format!("store.{k}"), "unknown field"));
        }
    }
    let platform = string(st, "platform", "store.platform", true)?.unwrap_or_default();
    if platform != "shopify" {
        return Err(EditError::invalid(
            "store.platform",
            "must be \"shopify\" (the only store supported so far)",
        ));
    }
    let shop_url = string(st, "shop_url", "store.shop_url", true)?.unwrap_or_default();
    check_url(&shop_url, "store.shop_url")?;
    let api_version = string(st, "api_version", "store.api_version", false)?
        .unwrap_or_else(|| DEFAULT_API_VERSION.into());
    let valid_version = api_version.len() == 7
        && api_version.as_bytes()[4] == b'-'
        && api_version
            .chars()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
        || api_version == "unstable";
    if !valid_version {
        return Err(EditError::invalid(
            "store.api_version",
            "must look like 2026-10",
        ));
    }
    let location_id = string(st, "location_id", "store.location_id", false)?;
    let notify_customer = match st.get("notify_customer") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(EditError::invalid(
                "store.notify_customer",
                "must be true or false",
            ));
        }
    };
    let api_secret = string(st, "api_secret", "store.api_secret", false)?;
    if api_secret.as_ref().is_some_and(|s| s.len() > 500) {
        return Err(EditError::invalid(
            "store.api_secret",
            "must be at most 500 characters",
        ));
    }
    let order_rules = match obj.get("order_rules") {
        None | Some(Value::Null) => OrderRules::default(),
        Some(v @ Value::Object(_)) => serde_json::from_value::<OrderRules>(v.clone())
            .map_err(|e| EditError::invalid("order_rules", e.to_string()))?
            .normalized()
            .map_err(|(field, message)| EditError::invalid(&field, &message))?,
        Some(_) => return Err(EditError::invalid("order_rules", "must be an object")),
    };
    let mut access_token = string(st, "access_token", "store.access_token", false)?;
    let mut client_secret = None;
    let auth = match st.get("auth") {
        None | Some(Value::Null) => StoreAuth::AccessToken,
        Some(Value::Object(a)) => {
            for k in a.keys() {
                if ![
                    "type",
                    "client_id",
                    "client_secret",
                    "scopes",
                    "access_token",
                ]
                .contains(&k.as_str())
                {
                    return Err(EditError::invalid(
                        &format!("store.auth.{k}"),
                        "unknown field",
                    ));
                }
            }
            let kind = string(a, "type", "store.auth.type", true)?.unwrap_or_default();
            let client_id = || -> EditResult<String> {
                let id = string(a, "client_id", "store.auth.client_id", true)?.unwrap_or_default();
                if id.len() > 200 {
                    return Err(EditError::invalid(
                        "store.auth.client_id",
                        "must be at most 200 characters",
                    ));
                }
                Ok(id)
            };
            match kind.as_str() {
                "access_token" => {
                    if let Some(t) = string(a, "access_token", "store.auth.access_token", false)? {
                        access_token = Some(t);
                    }
                    StoreAuth::AccessToken
                }
                "client_credentials" => StoreAuth::ClientCredentials {
                    client_id: client_id()?,
                },
                "authorization_code" => StoreAuth::AuthorizationCode {
                    client_id: client_id()?,
                    scopes: scopes_of(a.get("scopes"))?,
                },
                _ => {
                    return Err(EditError::invalid(
                        "store.auth.type",
                        "must be access_token, client_credentials or authorization_code",
                    ));
                }
            }
        }
        Some(_) => return Err(EditError::invalid("store.auth", "must be an object")),
    };
    if auth != StoreAuth::AccessToken {
        // An app's token comes from its client id and secret: a legacy
        // token left in the document is dropped.
        access_token = None;
        client_secret = st
            .get("auth")
            .and_then(|a| a.as_object())
            .map(|a| string(a, "client_secret", "store.auth.client_secret", false))
            .transpose()?
            .flatten();
    }
    let mut store = json!({
        "platform": platform,
        "shop_url": shop_url.trim_end_matches('/'),
        "api_version": api_version,
        "location_id": location_id,
        "notify_customer": notify_customer,
    });
    if auth != StoreAuth::AccessToken {
        store["auth"] =
            serde_json::to_value(&auth).map_err(|e| EditError::Internal(e.to_string()))?;
    }
    let store_json = store.to_string();
    Ok(Parts {
        name,
        merchant_id,
        enabled,
        order_prefix,
        store_json,
        access_token,
        client_secret,
        api_secret,
        order_rules,
    })
}

/// The scopes an install asks for: `None` for shipsync's default set.
pub(super) fn scopes_of(v: Option<&Value>) -> EditResult<Option<Vec<String>>> {
    let field = "store.auth.scopes";
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let mut scopes = Vec::new();
            for item in items {
                let scope = item
                    .as_str()
                    .map(str::trim)
                    .filter(|x| {
                        !x.is_empty()
                            && x.len() <= 100
                            && x.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                    .ok_or_else(|| {
                        EditError::invalid(
                            field,
                            "must be a list of scope names such as read_orders",
                        )
                    })?;
                scopes.push(scope.to_owned());
            }
            Ok(Some(scopes))
        }
        Some(_) => Err(EditError::invalid(field, "must be a list of scope names")),
    }
}

pub(super) fn shop_url(store_json: &str) -> String {
    serde_json::from_str::<Value>(store_json)
        .ok()
        .and_then(|v| v["shop_url"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The credential an enabled connection needs and lacks, as the field to
/// give: the store's access token, or its merchant's warehouse secret.
pub(super) fn missing_secret(
    s: &SecretBox,
    c: &ConnectionRow,
    m: &MerchantRow,
) -> Option<&'static str> {
    let auth = StoreSettings::parse(c)
        .map(|st| st.auth())
        .unwrap_or(StoreAuth::AccessToken);
    match auth {
        StoreAuth::AccessToken if c.store_token.is_none() => return Some("store.access_token"),
        StoreAuth::AccessToken => {}
        _ if c.store_client_secret.is_none() => return Some("store.auth.client_secret"),
        StoreAuth::AuthorizationCode { .. } if !c.token_held => {
            return Some(
                "the store's authorization (Connect to Shopify, or POST /api/v1/connections/{id}/store/authorize)",
            );
        }
        _ => {}
    }
    crate::merchants::missing_secret(s, m)
}

pub(super) fn set(s: &SecretBox, c: &mut ConnectionRow, p: Parts) {
    c.name = p.name;
    c.merchant_id = p.merchant_id;
    c.enabled = p.enabled;

    c.order_prefix = p.order_prefix;
    c.store_json = p.store_json;
    c.store_token = p.access_token.map(|t| s.seal_str(&t));
    c.store_client_secret = p.client_secret.map(|t| s.seal_str(&t));
    c.store_api_secret = p.api_secret.map(|t| s.seal_str(&t));
    c.order_rules = p.order_rules;
}

/// Everything that decides which token the store gets: the shop, how it
/// authenticates, and the secrets (opened).
pub(super) type Credentials = (String, StoreAuth, Option<String>, Option<String>);

pub(super) fn credentials(s: &SecretBox, c: &ConnectionRow) -> EditResult<Credentials> {
    let settings = StoreSettings::parse(c)?;
    Ok((
        settings.shop_url.clone(),
        settings.auth(),
        open(s, &c.store_token)?,
        open(s, &c.store_client_secret)?,
    ))
}
