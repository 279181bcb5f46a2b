//! How a Shopify app gets and keeps its Admin API token since 2026, when
//! apps come from the Dev Dashboard (orders-lifecycle.md § "Connecting a
//! store"; shopify.dev: authentication-authorization/access-tokens):
//!
//! - the **client credentials grant** (an app of one's own organization
//!   installed in a store one owns): client id + secret → a token that
//!   expires after about 24 hours;
//! - the **authorization code grant** (a merchant installs the app from a
//!   link): Shopify redirects back with a `code`, exchanged for a token —
//!   long-lived, or expiring with a refresh token;
//! - refreshing an expiring token with its refresh token.
//!
//! Also here: the install link, the check of the callback's `hmac` (the
//! same client secret signs webhooks: [`crate::webhook::verify`]), and
//! which scopes each of shipsync's channels needs.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::error::ShopifyError;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Larger token answers are refused (a real one is a few hundred bytes).
const MAX_GRANT_BYTES: usize = 64 * 1024;

/// A future of [`AccessTokens`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SecretString, ShopifyError>> + Send + 'a>>;

/// Where a client gets the token it sends, when the token is not fixed:
/// one that expires and is refreshed (client credentials, expiring offline
/// tokens). Implemented by the engine, which keeps tokens sealed in the
/// database and refreshes them once for every worker and node.
pub trait AccessTokens: Send + Sync {
    /// The token to send now.
    fn token(&self) -> TokenFuture<'_>;
    /// Whether another token can follow a 401 (a fixed legacy token
    /// cannot: its refusal is final, and [`AccessTokens::failed`] is told).
    fn refreshable(&self) -> bool;
    /// Shopify answered 401 to `refused`: a token to try once more (a
    /// refreshed one, or one another worker refreshed meanwhile), or the
    /// error that says a person must reconnect the store.
    fn refused<'a>(&'a self, refused: &'a SecretString) -> TokenFuture<'a>;
    /// Shopify refused even the token [`AccessTokens::refused`] gave: the
    /// credentials themselves are no good (`reason` says Shopify's words).
    fn failed<'a>(&'a self, reason: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// What Shopify granted.
#[derive(Clone)]
pub struct Grant {
    pub access_token: SecretString,
    /// Granted scopes (Shopify's `scope`, comma-separated).
    pub scopes: Vec<String>,
    /// When the token expires (`expires_in`); `None`: it does not.
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<SecretString>,
    pub refresh_token_expires_in: Option<Duration>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("scopes", &self.scopes)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.is_some())
            .field("refresh_token_expires_in", &self.refresh_token_expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct GrantWire {
    access_token: String,
    #[serde(default)]
    scope: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<u64>,
}

/// An app's credentials, as given in the Dev Dashboard (*Settings*).
#[derive(Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Client credentials grant: `POST {shop}/admin/oauth/access_token` with
/// `grant_type=client_credentials`.
pub async fn client_credentials(
    http: &reqwest::Client,
    shop_url: &str,
    app: &AppCredentials,
) -> Result<Grant, ShopifyError> {
    request_grant(
        http,
        shop_url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose_secret()),
        ],
    )
    .await
}

/// Authorization code grant: exchanges the `code` of the install callback.
pub async fn exchange_code(
    http: &reqwest::Client,
    shop_url: &str,
    app: &AppCredentials,
    code: &str,
) -> Result<Grant, ShopifyError> {
    request_grant(
        http,
        shop_url,
        &[
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose_secret()),
            ("code", code),
        ],
    )
    .await
}

/// Refreshes an expiring token with its refresh token (`grant_type=refresh_token`).
/// **Assumption** (orders-lifecycle.md): the answer has the shape of the
/// code exchange's.
pub async fn refresh(
    http: &reqwest::Client,
    shop_url: &str,
    app: &AppCredentials,
    refresh_token: &SecretString,
) -> Result<Grant, ShopifyError> {
    request_grant(
        http,
        shop_url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
        ],
    )
    .await
}

async fn request_grant(
    http: &reqwest::Client,
    shop_url: &str,
    form: &[(&str, &str)],
) -> Result<Grant, ShopifyError> {
    let url = shop_base(shop_url)?
        .join("admin/oauth/access_token")
        .map_err(|e| ShopifyError::Permanent(format!("invalid shop URL {shop_url:?}: {e}")))?;
    let response = http.post(url).form(form).send().await.map_err(|e| {
        if let Some(refused) = shipsync_outbound::refusal(&e) {
            return ShopifyError::Permanent(refused.to_string());
        }
        // Asking for a token changes nothing in the store: repeating is safe.
        ShopifyError::Transient {
            reason: format!("could not get a token from Shopify: {e}"),
            retry_after: None,
        }
    })?;
    let status = response.status();
    let bytes = shipsync_outbound::read_capped(response, MAX_GRANT_BYTES)
        .await
        .map_err(|e| ShopifyError::Transient {
            reason: format!("the token answer was lost: {e}"),
            retry_after: None,
        })?;
    if !status.is_success() {
        // Only OAuth's error code is quoted (`invalid_client`, say): the
        // reason is kept on the connection and shown to every user who
        // sees it, so no free text from the other side goes into it.
        let code = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .filter(|c| {
                c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            });
        let reason = match code {
            Some(code) => format!("HTTP {status}: {code}"),
            None => format!("HTTP {status}"),
        };

        return Err(match status.as_u16() {
            // Shopify answers a wrong client id or secret, or a used,
            // expired or unknown code or refresh token, with a 4xx: a
            // person must give the credentials again or reconnect.
            400 | 401 | 403 => ShopifyError::Unauthorized(format!(
                "Shopify refused the app's credentials: {reason}"
            )),
            404 => ShopifyError::NotFound(reason),
            429 => ShopifyError::Throttled {
                retry_after: Duration::from_secs(2),
            },
            500..=599 => ShopifyError::Transient {
                reason,
                retry_after: None,
            },
            _ => ShopifyError::Permanent(reason),
        });
    }
    let wire: GrantWire = serde_json::from_slice(&bytes).map_err(|e| ShopifyError::Transient {
        reason: format!("unexpected token answer from Shopify: {e}"),
        retry_after: None,
    })?;
    if wire.access_token.is_empty() {
        return Err(ShopifyError::Permanent(
            "Shopify's token answer has an empty access_token".into(),
        ));
    }
    Ok(Grant {
        access_token: SecretString::from(wire.access_token),
        scopes: split_scopes(&wire.scope),
        expires_in: wire.expires_in.map(Duration::from_secs),
        refresh_token: wire
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(SecretString::from),
        refresh_token_expires_in: wire.refresh_token_expires_in.map(Duration::from_secs),
    })
}

/// Scopes as Shopify lists them (`a,b` or `a, b`), without blanks.
pub fn split_scopes(scope: &str) -> Vec<String> {
    scope
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The install link: `{shop}/admin/oauth/authorize?client_id&scope&redirect_uri&state`.
pub fn authorize_url(
    shop_url: &str,
    client_id: &str,
    scopes: &[String],
    redirect_uri: &str,
    state: &str,
) -> Result<Url, ShopifyError> {
    let mut url = shop_base(shop_url)?
        .join("admin/oauth/authorize")
        .map_err(|e| ShopifyError::Permanent(format!("invalid shop URL {shop_url:?}: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("scope", &scopes.join(","))
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state);
    Ok(url)
}

/// The shop's `host[:port]`, as Shopify names it in the callback's `shop`.
pub fn shop_host(shop_url: &str) -> Result<String, ShopifyError> {
    let base = shop_base(shop_url)?;
    let host = base.host_str().ok_or_else(|| {
        ShopifyError::Permanent(format!("invalid shop URL {shop_url:?}: no host"))
    })?;
    Ok(match base.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// `shop_url` with a path ending in `/`, so that `join` appends.
fn shop_base(shop_url: &str) -> Result<Url, ShopifyError> {
    let invalid =
        |why: &str| ShopifyError::Permanent(format!("invalid shop URL {shop_url:?}: {why}"));
    let mut base = Url::parse(shop_url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(base.scheme(), "https" | "http") {
        return Err(invalid("use https://"));
    }
    if base.host_str().is_none() {
        return Err(invalid("no host"));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

/// Whether the install callback's `hmac` is right: lowercase hex
/// HMAC-SHA256, keyed with the client secret, of the other parameters
/// (decoded) sorted by name and joined `k=v&…`. Checked in constant time.
/// `query` is every parameter of the callback, `hmac` included.
pub fn callback_hmac_valid(query: &[(String, String)], client_secret: &SecretString) -> bool {
    let Some(given) = query
        .iter()
        .find(|(k, _)| k == "hmac")
        .and_then(|(_, v)| hex::decode(v.trim()).ok())
    else {
        return false;
    };
    let mut rest: Vec<&(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .collect();
    rest.sort();
    let message = rest
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let Ok(mut mac) = HmacSha256::new_from_slice(client_secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(message.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// Reading and writing the fulfillment orders of the store's own locations
/// (shopify.dev: FulfillmentOrder, "Access scopes").
pub const MERCHANT_MANAGED: [&str; 2] = [
    "read_merchant_managed_fulfillment_orders",
    "write_merchant_managed_fulfillment_orders",
];
/// The same for locations another app (a fulfillment service) manages.
pub const THIRD_PARTY: [&str; 2] = [
    "read_third_party_fulfillment_orders",
    "write_third_party_fulfillment_orders",
];

/// The scopes shipsync asks for when a store is installed: everything its
/// channels may use, so that switching a channel on needs no reinstall.
pub fn requested_scopes() -> Vec<String> {
    ["read_orders"]
        .iter()
        .chain(MERCHANT_MANAGED.iter())
        .chain(THIRD_PARTY.iter())
        .map(|s| (*s).to_owned())
        .collect()
}

/// The scopes the enabled channels need and `granted` lacks, in a stable
/// order. Shipments read orders and their fulfillment orders and create
/// fulfillments; Sales Orders read orders and their fulfillment orders.
/// The third-party scopes are needed only when another app manages the
/// location (`third_party`).
pub fn missing_scopes(
    granted: &[String],
    shipments: bool,
    sales_orders: bool,
    third_party: bool,
) -> Vec<String> {
    let mut needed: Vec<&str> = Vec::new();
    if shipments || sales_orders {
        needed.push("read_orders");
        needed.push(MERCHANT_MANAGED[0]);
        if third_party {
            needed.push(THIRD_PARTY[0]);
        }
    }
    if shipments {
        needed.push(MERCHANT_MANAGED[1]);
        if third_party {
            needed.push(THIRD_PARTY[1]);
        }
    }
    needed
        .into_iter()
        .filter(|s| !granted.iter().any(|g| g == s || implied_by(g, s)))
        .map(str::to_owned)
        .collect()
}

/// Shopify's `write_x` scope includes `read_x` (shopify.dev: access scopes).
fn implied_by(granted: &str, needed: &str) -> bool {
    needed
        .strip_prefix("read_")
        .is_some_and(|rest| granted.strip_prefix("write_") == Some(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(pairs: &[(&str, &str)], secret: &str) -> String {
        let mut sorted = pairs.to_vec();
        sorted.sort();
        let msg = sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(msg.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn query(pairs: &[(&str, &str)], hmac: &str) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        q.push(("hmac".into(), hmac.into()));
        q
    }

    #[test]
    fn callback_hmac() {
        let secret = SecretString::from("hush");
        let pairs = [
            ("shop", "acme.myshopify.com"),
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            ("state", "0.6784241404160823"),
            ("timestamp", "1337178173"),
        ];
        let good = sign(&pairs, "hush");
        // (query, valid?, why)
        type Case = (Vec<(String, String)>, bool, &'static str);
        let cases: Vec<Case> = vec![
            (query(&pairs, &good), true, "signed with the secret"),
            (
                query(&pairs, &good.to_uppercase()),
                true,
                "hex case does not matter",
            ),
            (
                query(&pairs, &sign(&pairs, "other")),
                false,
                "another secret",
            ),
            (query(&pairs[..3], &good), false, "a parameter removed"),
            (
                query(
                    &[("shop", "evil.myshopify.com"), pairs[1], pairs[2], pairs[3]],
                    &good,
                ),
                false,
                "the shop changed",
            ),
            (query(&pairs, "zz"), false, "not hex"),
            (query(&pairs, ""), false, "empty"),
            (
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                false,
                "no hmac at all",
            ),
        ];
        for (q, valid, why) in cases {
            assert_eq!(callback_hmac_valid(&q, &secret), valid, "{why}");
        }
    }

    #[test]
    fn scopes_missing_by_channel() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let all = requested_scopes();
        // (granted, shipments, sales_orders, third_party, missing)
        type Case = (Vec<String>, bool, bool, bool, Vec<String>);
        let cases: Vec<Case> = vec![
            (all.clone(), true, true, true, vec![]),
            (s(&[]), false, false, false, vec![]),
            (
                s(&["read_orders"]),
                true,
                false,
                false,
                s(&[
                    "read_merchant_managed_fulfillment_orders",
                    "write_merchant_managed_fulfillment_orders",
                ]),
            ),
            (
                // write_x implies read_x
                s(&["read_orders", "write_merchant_managed_fulfillment_orders"]),
                true,
                true,
                false,
                vec![],
            ),
            (
                s(&["read_orders", "read_merchant_managed_fulfillment_orders"]),
                false,
                true,
                false,
                vec![],
            ),
            (
                s(&["read_orders", "write_merchant_managed_fulfillment_orders"]),
                true,
                false,
                true,
                s(&[
                    "read_third_party_fulfillment_orders",
                    "write_third_party_fulfillment_orders",
                ]),
            ),
            (
                s(&["write_merchant_managed_fulfillment_orders"]),
                false,
                true,
                false,
                s(&["read_orders"]),
            ),
        ];
        for (granted, ship, sales, third, missing) in cases {
            assert_eq!(
                missing_scopes(&granted, ship, sales, third),
                missing,
                "granted {granted:?}, shipments {ship}, sales {sales}, third party {third}"
            );
        }
    }

    #[test]
    fn install_link_and_shop_host() {
        let url = authorize_url(
            "https://acme.myshopify.com",
            "cid",
            &[
                "read_orders".into(),
                "write_merchant_managed_fulfillment_orders".into(),
            ],
            "https://ship.example.com/connect/shopify/callback",
            "st4te",
        )
        .expect("url");
        assert_eq!(url.path(), "/admin/oauth/authorize");
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(q.contains(&("client_id".into(), "cid".into())));
        assert!(q.contains(&(
            "scope".into(),
            "read_orders,write_merchant_managed_fulfillment_orders".into()
        )));
        assert!(q.contains(&("state".into(), "st4te".into())));
        assert_eq!(
            shop_host("https://acme.myshopify.com/").expect("host"),
            "acme.myshopify.com"
        );
        assert_eq!(
            shop_host("http://127.0.0.1:8123").expect("host"),
            "127.0.0.1:8123"
        );
        assert!(shop_host("ftp://x").is_err());
        assert_eq!(split_scopes("a, b,,c "), vec!["a", "b", "c"]);
    }
}
