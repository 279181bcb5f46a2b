//! A merchant document: its defaults, the checks of every field (with
//! the answers a person reads), and how its secrets are sealed into the row.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use shipsync_core::ledger::KitPolicy;
use shipsync_db::merchants::MerchantRow;

use crate::Engine;
use crate::edit::{EditError, EditResult, check_url};
use crate::secrets::SecretBox;

pub(super) const DEFAULT_API_URL: &str = "https://api.deposco.com/latest";
/// A rotated-out key keeps working this long.
pub(super) const OLD_KEY_GRACE_MICROS: i64 = 24 * 3600 * 1_000_000;
pub const SECRET_FIELDS: [&str; 3] = ["password", "client_secret", "refresh_token"];

pub(super) fn defaults() -> Value {
    json!({
        "warehouse": {"platform": "deposco", "api_url": DEFAULT_API_URL, "business_unit": ""},
        "shipment_webhooks": {"enabled": false},
        "kit_policy": KitPolicy::default(),
        "carrier_overrides": {},
    })
}

/// Read-only fields a client may send back unchanged; they are ignored.
pub(super) fn strip_read_only(patch: &mut Value) {
    if let Some(o) = patch.as_object_mut() {
        for k in ["id", "created_at", "updated_at"] {
            o.remove(k);
        }
        if let Some(w) = o
            .get_mut("shipment_webhooks")
            .and_then(Value::as_object_mut)
        {
            w.remove("url");
            w.remove("shared_secret_set");
            w.remove("signed");
        }
        if let Some(a) = o
            .get_mut("warehouse")
            .and_then(Value::as_object_mut)
            .and_then(|w| w.get_mut("auth"))
            .and_then(Value::as_object_mut)
        {
            for k in ["password_set", "client_secret_set", "refresh_token_set"] {
                a.remove(k);
            }
        }
    }
}

/// The merchant as an editable document, secrets included (never rendered).
pub(super) fn to_doc(secrets: &SecretBox, m: &MerchantRow) -> EditResult<Value> {
    let mut warehouse: Value =
        serde_json::from_str(&m.warehouse_json).unwrap_or_else(|_| json!({}));
    if let Some(sealed) = &m.warehouse_secrets {
        let plain = secrets
            .open_string(sealed)
            .map_err(|e| EditError::Internal(e.to_string()))?;
        let extra: Value = serde_json::from_str(&plain).unwrap_or_else(|_| json!({}));
        if let (Some(auth), Some(extra)) = (
            warehouse.get_mut("auth").and_then(Value::as_object_mut),
            extra.as_object(),
        ) {
            auth.extend(extra.clone());
        }
    }
    let shared_secret = match &m.shared_secret {
        Some(sealed) => Value::String(
            secrets
                .open_string(sealed)
                .map_err(|e| EditError::Internal(e.to_string()))?,
        ),
        None => Value::Null,
    };
    Ok(json!({
        "name": m.name,
        "warehouse": warehouse,
        "shipment_webhooks": {"enabled": m.webhooks_enabled, "shared_secret": shared_secret},
        "kit_policy": m.kit_policy,
        "carrier_overrides": m.carrier_overrides,
    }))
}

pub(super) fn check_keys(
    obj: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
) -> EditResult<()> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(EditError::invalid(&format!("{prefix}{k}"), "unknown field"));
        }
    }
    Ok(())
}

pub(super) fn req_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> EditResult<&'a str> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(EditError::invalid(field, "is required"))
        }
        Some(_) => Err(EditError::invalid(field, "must be a string")),
    }
}

pub(super) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> EditResult<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EditError::invalid(field, "must be a string")),
    }
}

/// Copies the auth secret `key` into `into`; required unless `missing_ok`
/// names it (then an absent or blank one stays absent).
pub(super) fn secret(
    auth: &Map<String, Value>,
    key: &str,
    missing_ok: &[&str],
    into: &mut Map<String, Value>,
) -> EditResult<()> {
    let field = format!("warehouse.auth.{key}");
    let value = if missing_ok.contains(&key) {
        opt_str(auth, key, &field)?.filter(|v| !v.trim().is_empty())
    } else {
        Some(req_str(auth, key, &field)?)
    };
    if let Some(v) = value {
        into.insert(key.into(), json!(v));
    }
    Ok(())
}

/// The endpoint fields (where the credentials go) that differ between two
/// stored warehouse documents. A token URL going away (OAuth → Basic) sends
/// nothing anywhere new.
pub(super) fn endpoint_changes(old: &str, new: &str) -> Vec<&'static str> {
    let old: Value = serde_json::from_str(old).unwrap_or_else(|_| json!({}));
    let new: Value = serde_json::from_str(new).unwrap_or_else(|_| json!({}));
    let mut changed = Vec::new();
    for (pointer, field) in [
        ("/api_url", "warehouse.api_url"),
        ("/auth/token_url", "warehouse.auth.token_url"),
        ("/business_unit", "warehouse.business_unit"),
    ] {
        let (before, after) = (old.pointer(pointer), new.pointer(pointer));
        if after.is_some_and(|a| !a.is_null()) && before != after {
            changed.push(field);
        }
    }
    changed
}

/// 422 `private_target` for a changed URL whose host is not public.
pub(super) async fn check_targets(
    engine: &Engine,
    warehouse_json: &str,
    changed: &[&str],
) -> EditResult<()> {
    let w: Value = serde_json::from_str(warehouse_json).unwrap_or_else(|_| json!({}));
    for (pointer, field) in [
        ("/api_url", "warehouse.api_url"),
        ("/auth/token_url", "warehouse.auth.token_url"),
    ] {
        if changed.contains(&field)
            && let Some(url) = w.pointer(pointer).and_then(Value::as_str)
        {
            engine.check_public(field, url).await?;
        }
    }
    Ok(())
}

/// The warehouse secret keys a merchant holds.
pub(super) fn stored_secret_keys(secrets: &SecretBox, m: &MerchantRow) -> Vec<String> {
    m.warehouse_secrets
        .as_ref()
        .and_then(|sealed| secrets.open_string(sealed).ok())
        .and_then(|p| serde_json::from_str::<Map<String, Value>>(&p).ok())
        .map(|o| {
            o.into_iter()
                .filter(|(_, v)| v.as_str().is_some_and(|v| !v.is_empty()))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default()
}

/// The warehouse secret a connection of this merchant needs and lacks
/// (cleared when the endpoint changed), as the field to give. A merchant
/// without warehouse credentials at all has none to lack.
pub fn missing_secret(secrets: &SecretBox, m: &MerchantRow) -> Option<&'static str> {
    let w: Value = serde_json::from_str(&m.warehouse_json).unwrap_or_else(|_| json!({}));
    let needed: &[&str] = match w.pointer("/auth/type").and_then(Value::as_str) {
        Some("basic") => &SECRET_FIELDS[..1],
        Some("oauth") => &SECRET_FIELDS[1..],
        _ => &[],
    };
    let held = stored_secret_keys(secrets, m);
    needed
        .iter()
        .find(|k| !held.iter().any(|h| h == *k))
        .map(|k| match *k {
            "password" => "warehouse.auth.password",
            "client_secret" => "warehouse.auth.client_secret",
            _ => "warehouse.auth.refresh_token",
        })
}

/// Validated parts of a merchant document.
pub(super) struct Parts {
    pub(super) name: String,
    pub(super) warehouse_json: String,
    pub(super) warehouse_secrets: Option<String>,
    pub(super) webhooks_enabled: bool,
    pub(super) shared_secret: Option<String>,
    pub(super) kit_policy: KitPolicy,
    pub(super) carrier_overrides: BTreeMap<String, String>,
}

/// `missing_ok`: secrets that may be absent (cleared when the endpoint
/// changed, and not given again yet).
pub(super) fn validate(doc: &Value, missing_ok: &[&str]) -> EditResult<Parts> {
    let obj = doc
        .as_object()
        .ok_or_else(|| EditError::Malformed("the body must be a JSON object".into()))?;
    check_keys(
        obj,
        &[
            "name",
            "warehouse",
            "shipment_webhooks",
            "kit_policy",
            "carrier_overrides",
        ],
        "",
    )?;
    let name = req_str(obj, "name", "name")?.trim().to_string();
    if name.chars().count() > 200 {
        return Err(EditError::invalid("name", "must be at most 200 characters"));
    }
    let w = obj
        .get("warehouse")
        .and_then(Value::as_object)
        .ok_or_else(|| EditError::invalid("warehouse", "must be an object"))?;
    check_keys(
        w,
        &["platform", "api_url", "business_unit", "auth"],
        "warehouse.",
    )?;
    let platform = req_str(w, "platform", "warehouse.platform")?;
    if platform != "deposco" {
        return Err(EditError::invalid(
            "warehouse.platform",
            "must be \"deposco\" (the only warehouse supported so far)",
        ));
    }
    let api_url = req_str(w, "api_url", "warehouse.api_url")?;
    check_url(api_url, "warehouse.api_url")?;
    let business_unit = opt_str(w, "business_unit", "warehouse.business_unit")?.unwrap_or("");
    let mut public_auth = Value::Null;
    let mut secret_auth = Map::new();
    match w.get("auth") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => {
            let kind = req_str(a, "type", "warehouse.auth.type")?;
            match kind {
                "basic" => {
                    check_keys(a, &["type", "username", "password"], "warehouse.auth.")?;
                    let username = req_str(a, "username", "warehouse.auth.username")?;
                    public_auth = json!({"type": "basic", "username": username});
                    secret(a, "password", missing_ok, &mut secret_auth)?;
                }
                "oauth" => {
                    check_keys(
                        a,
                        &[
                            "type",
                            "token_url",
                            "client_id",
                            "client_secret",
                            "refresh_token",
                        ],
                        "warehouse.auth.",
                    )?;
                    let token_url = req_str(a, "token_url", "warehouse.auth.token_url")?;
                    check_url(token_url, "warehouse.auth.token_url")?;
                    let client_id = req_str(a, "client_id", "warehouse.auth.client_id")?;
                    public_auth =
                        json!({"type": "oauth", "token_url": token_url, "client_id": client_id});
                    secret(a, "client_secret", missing_ok, &mut secret_auth)?;
                    secret(a, "refresh_token", missing_ok, &mut secret_auth)?;
                }
                _ => {
                    return Err(EditError::invalid(
                        "warehouse.auth.type",
                        "must be \"basic\" or \"oauth\"",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(EditError::invalid(
                "warehouse.auth",
                "must be an object or null",
            ));
        }
    }
    let hooks = match obj.get("shipment_webhooks") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(h)) => h.clone(),
        Some(_) => return Err(EditError::invalid("shipment_webhooks", "must be an object")),
    };
    check_keys(&hooks, &["enabled", "shared_secret"], "shipment_webhooks.")?;
    let webhooks_enabled = match hooks.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(EditError::invalid(
                "shipment_webhooks.enabled",
                "must be true or false",
            ));
        }
    };
    let shared_secret = opt_str(&hooks, "shared_secret", "shipment_webhooks.shared_secret")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(sec) = &shared_secret {
        check_shared_secret(sec)?;
    }
    let kit_policy = match obj.get("kit_policy") {
        None | Some(Value::Null) => Some(KitPolicy::default()),
        Some(Value::String(p)) => p.parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| {
        let words: Vec<String> = KitPolicy::ALL.iter().map(|p| format!("\"{p}\"")).collect();
        EditError::invalid("kit_policy", format!("must be {}", words.join(" or ")))
    })?;
    let carrier_overrides = match obj.get("carrier_overrides") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(o)) => {
            let mut overrides = BTreeMap::new();
            for (k, v) in o {
                let Some(to) = v.as_str() else {
                    return Err(EditError::invalid(
                        &format!("carrier_overrides.{k}"),
                        "must be a string (the store's carrier name)",
                    ));
                };
                overrides.insert(k.clone(), to.to_string());
            }
            overrides
        }
        Some(_) => {
            return Err(EditError::invalid(
                "carrier_overrides",
                "must be an object of warehouse carrier → store carrier",
            ));
        }
    };
    let warehouse_json = json!({"platform": platform, "api_url": api_url.trim_end_matches('/'), "business_unit": business_unit, "auth": public_auth}).to_string();
    Ok(Parts {
        name,
        warehouse_json,
        warehouse_secrets: if secret_auth.is_empty() {
            None
        } else {
            Some(Value::Object(secret_auth).to_string())
        },
        webhooks_enabled,
        shared_secret,
        kit_policy,
        carrier_overrides,
    })
}

/// A shared secret's HMAC key must hold at least this many bytes (after
/// `whsec_` decoding): shorter keys are guessable offline from one signed
/// delivery.
pub const MIN_SHARED_SECRET_BYTES: usize = 16;

/// Refuses a shared secret whose key (the bytes HMAC uses, as the signature
/// check derives them) is shorter than [`MIN_SHARED_SECRET_BYTES`], and a
/// `whsec_` secret whose rest is not base64.
pub(super) fn check_shared_secret(secret: &str) -> EditResult<()> {
    const FIELD: &str = "shipment_webhooks.shared_secret";
    if let Some(b64) = secret.strip_prefix("whsec_") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| {
                EditError::invalid(FIELD, "a secret written whsec_… must be followed by base64")
            })?;
        if decoded.len() < MIN_SHARED_SECRET_BYTES {
            return Err(EditError::invalid(
                FIELD,
                format!(
                    "whsec_ decodes to {} bytes; use at least {MIN_SHARED_SECRET_BYTES} (e.g. whsec_ followed by `openssl rand -base64 32`), or blank for none",
                    decoded.len()
                ),
            ));
        }
    } else if secret.len() < MIN_SHARED_SECRET_BYTES {
        return Err(EditError::invalid(
            FIELD,
            format!(
                "must be at least {MIN_SHARED_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`), or blank for none"
            ),
        ));
    }
    Ok(())
}

pub(super) fn apply(secrets: &SecretBox, m: &mut MerchantRow, p: Parts) {
    m.name = p.name;
    m.warehouse_json = p.warehouse_json;
    m.warehouse_secrets = p.warehouse_secrets.map(|x| secrets.seal_str(&x));
    m.webhooks_enabled = p.webhooks_enabled;

    m.shared_secret = p.shared_secret.map(|x| secrets.seal_str(&x));
    m.kit_policy = p.kit_policy;
    m.carrier_overrides = p.carrier_overrides;
}
