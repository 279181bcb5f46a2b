//! Shopify app authentication: the app the sandbox knows, the two grants
//! that give it Admin API tokens, and the tokens themselves. Nothing here
//! knows HTTP; `oauth.rs` serves it.
//!
//! # What Shopify does, and where that comes from
//!
//! - Since 2026 apps come from the Dev Dashboard: scopes on the app's
//!   version, a client id and a client secret
//!   (shopify.dev: `apps/build/authentication-authorization/client-secrets`).
//! - **Client credentials grant**: `POST /admin/oauth/access_token` with
//!   `grant_type=client_credentials`, `client_id`, `client_secret`, form- or
//!   JSON-encoded → `{"access_token": "shpat_…", "scope", "expires_in"}`; the
//!   token lives about 24 hours (shopify.dev:
//!   `…/access-tokens/client-credentials-grant`; ShopifySharp 6.30.0: "expire
//!   every 24 hours"), hence the default `expires_in` of 86399. A store where the app is not installed answers 400
//!   `{"error": "app_not_installed", "error_description": "The application is
//!   not installed on this shop."}` (community.shopify.dev thread 33287).
//! - **Authorization code grant**: the browser visits
//!   `/admin/oauth/authorize?client_id&scope&redirect_uri&state`; Shopify
//!   redirects to `redirect_uri` with `code`, `hmac`, `host`, `shop`, `state`,
//!   `timestamp`; `hmac` is the lowercase hex HMAC-SHA256, keyed with the
//!   client secret, of the other parameters sorted by name and joined
//!   `k=v&k=v` (shopify.dev: `…/access-tokens/authorization-code-grant`). A
//!   `redirect_uri` that is not one of the app's allowed URLs (exact match)
//!   gets Shopify's error page "Oauth error invalid_request: The redirect_uri
//!   is not whitelisted" (community.shopify.com, thread 846975). The code is
//!   exchanged with `client_id`, `client_secret`, `code` →
//!   `{"access_token", "scope"}`; a used or unknown code answers 400
//!   `{"error": "invalid_request", "error_description": "The authorization
//!   code was not found or was already used"}` (ShopifySharp issues 70, 121;
//!   Laravel-ShopifyAPI issue 9).
//! - **Expiring offline tokens** (shopify.dev changelog 2025-12-10 "Offline
//!   access tokens now support expiry and refresh"): the answer adds
//!   `expires_in` (3600), `refresh_token` and `refresh_token_expires_in`
//!   (90 days); `grant_type=refresh_token` with `client_id`, `client_secret`,
//!   `refresh_token` gives a new pair. A token request opts in with
//!   `expiring=1` (shopify-api's `migrateToExpiringToken`;
//!   Shopify/shopify-app-php issue 12).
//! - **Refresh-token rotation** (shopify.dev changelog 2026-08-28 "More
//!   resilient refreshes for expiring offline access tokens"): a used refresh
//!   token can be used again until the app uses its replacement, for at most
//!   30 days after its first use and never past its own lifetime; using the
//!   replacement retires it.
//! - **Scopes**: a write scope also grants read access to its resource
//!   (shopify.dev: `api/usage/access-scopes`). Which field needs which scope
//!   is in `access.rs`; a denied field is an error with
//!   `extensions: {code: "ACCESS_DENIED", documentation, requiredAccess}` and
//!   the message "Access denied for X field. Required access: …" (as quoted
//!   in Shopify/function-examples issue 164, shopify-api-ruby issue 1415).
//!
//! # Assumptions
//!
//! Where Shopify's documentation is silent, the sandbox does the following.
//! Each is marked **Assumption** here and nowhere else.
//!
//! - **Assumption**: a wrong or unknown `client_id`/`client_secret` answers
//!   400 `{"error": "invalid_client", …}` (third-party error references name
//!   `invalid_client`; the status is a guess). A missing parameter answers 400
//!   `invalid_request`, an unknown `grant_type` 400 `unsupported_grant_type`.
//! - **Assumption**: an unknown, retired or expired refresh token answers 400
//!   `{"error": "invalid_request", "error_description": "The refresh token was
//!   not found, has expired or was already used"}`, mirroring the code error.
//! - **Assumption**: an authorization code lives 10 minutes (RFC 6749 §4.1.2
//!   recommends at most that; Shopify only says codes are short-lived), and
//!   an expired code gets the "not found" answer.
//! - **Assumption**: a refresh answer has the same shape as the code answer,
//!   with a refresh token that lives its full lifetime from issue; access
//!   tokens issued before a refresh stay valid until they expire; when a
//!   refresh token's replacement is used, the other replacements it had
//!   (from retries) are retired with it, so only one line of tokens lives on.
//! - **Assumption**: the authorize page refuses (400 page, like the redirect
//!   error) a scope the app's version does not have. Shopify's
//!   "Manage access scopes" page says a Dev Dashboard app declares its scopes
//!   on its version; it does not say what happens when the authorize URL asks
//!   for more. No `scope` parameter means the version's scopes.
//! - **Assumption**: an unknown `client_id` gets the page "Oauth error
//!   invalid_request: Could not find Shopify API application with api_key …",
//!   a missing `redirect_uri` a 400 page (Shopify would fall back to the app
//!   URL, which a sandbox app does not have).
//! - **Assumption**: the approval is immediate: no merchant is asked, the
//!   browser is redirected at once (the sandbox has no human step).
//!   `grant_options[]=per-user` (online tokens) is not modelled and refused
//!   with a 400 page that says so; offline access is what shipsync asks for.
//! - **Assumption**: `host` is the standard base64 of `{shop}/admin`, and
//!   `shop` is the sandbox's own `host[:port]` as requested (a real shop is
//!   `name.myshopify.com`). The HMAC joins the decoded values as they are;
//!   Shopify's own JS library URL-encodes them first, which gives the same
//!   bytes for what real Shopify sends but not for the sandbox's `:`.
//! - **Assumption**: an uninstall ([`revoke_tokens`]) also makes the client
//!   credentials grant answer `app_not_installed` until the app is installed
//!   again (an approval on the authorize page, or a new
//!   [`set_app`](crate::ShopifySandbox::set_app)).
//! - **Assumption**: refresh tokens look like `shprt_` + 32 hex digits and
//!   codes like 32 hex digits (as in Shopify's examples).
//! - **Assumption** (scopes): `fulfillment(id)` and a fulfillment found by
//!   `node` need `read_orders`, like the order they belong to; a
//!   `fulfillmentCreate` whose fulfillment order the token's write scopes do
//!   not cover (e.g. only the third-party one, for the sandbox's
//!   merchant-managed locations) gets the user error "Fulfillment order … does
//!   not exist.", as for an order it cannot see; `requiredAccess` lists the
//!   alternatives joined with ", " and " or ".
//!
//! [`revoke_tokens`]: crate::ShopifySandbox::revoke_tokens

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The scopes shipsync needs: what the legacy config token has unless
/// [`SandboxConfig::access_token_scopes`](crate::SandboxConfig) says
/// otherwise, and a sensible app version.
pub const SHIPSYNC_SCOPES: &[&str] = &[
    "read_orders",
    "read_merchant_managed_fulfillment_orders",
    "write_merchant_managed_fulfillment_orders",
    "read_third_party_fulfillment_orders",
    "write_third_party_fulfillment_orders",
];

pub(crate) fn shipsync_scopes() -> Vec<String> {
    SHIPSYNC_SCOPES.iter().map(|s| s.to_string()).collect()
}

/// An app from Shopify's Dev Dashboard, installed on the sandbox's store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxApp {
    pub client_id: String,
    pub client_secret: String,
    /// The scopes of the app's released version: what the client credentials
    /// grant gives, and the most the authorize page grants.
    pub scopes: Vec<String>,
    /// Allowed redirect URIs; `redirect_uri` must equal one exactly.
    pub redirect_urls: Vec<String>,
    /// Lifetime of client-credentials tokens (Shopify: 86399).
    pub token_lifetime_secs: u64,
    /// Authorization-code tokens expire and come with a refresh token, as a
    /// public app created after 2026-04-01 must have them. Without it, a
    /// token request that sends `expiring=1` still gets them.
    pub expiring_offline_tokens: bool,
    /// Lifetime of expiring offline access tokens (Shopify: 3600).
    pub offline_token_lifetime_secs: u64,
    /// Lifetime of refresh tokens (Shopify: 90 days).
    pub refresh_token_lifetime_secs: u64,
    /// Lifetime of authorization codes (see the module's Assumptions).
    pub code_lifetime_secs: u64,
    /// When set, an install grants only these of the requested scopes, as a
    /// merchant who declined some would (to test "missing scopes").
    pub grant_only: Option<Vec<String>>,
}

impl Default for SandboxApp {
    fn default() -> Self {
        SandboxApp {
            client_id: "sandbox-client-id".into(),
            client_secret: "sandbox-client-secret".into(),
            scopes: shipsync_scopes(),
            redirect_urls: Vec::new(),
            token_lifetime_secs: 86_399,
            expiring_offline_tokens: false,
            offline_token_lifetime_secs: 3_600,
            refresh_token_lifetime_secs: 90 * 24 * 3_600,
            code_lifetime_secs: 600,
            grant_only: None,
        }
    }
}

impl fmt::Debug for SandboxApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("redirect_urls", &self.redirect_urls)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("expiring_offline_tokens", &self.expiring_offline_tokens)
            .field(
                "offline_token_lifetime_secs",
                &self.offline_token_lifetime_secs,
            )
            .field(
                "refresh_token_lifetime_secs",
                &self.refresh_token_lifetime_secs,
            )
            .field("code_lifetime_secs", &self.code_lifetime_secs)
            .field("grant_only", &self.grant_only)
            .finish()
    }
}

/// One `POST /admin/oauth/access_token`, for assertions (e.g. counting
/// refreshes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// As sent; `authorization_code` when absent (Shopify's default); empty
    /// when the body could not be read.
    pub grant_type: String,
    /// HTTP status answered.
    pub status: u16,
}

/// A token-endpoint refusal, in Shopify's shape (always HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

fn oauth_error(error: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        error,
        description: description.into(),
    }
}

/// What a successful token request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issued {
    pub access_token: String,
    pub scopes: Vec<String>,
    pub expires_in: Option<u64>,
    /// (refresh token, its lifetime in seconds)
    pub refresh: Option<(String, u64)>,
}

/// The authorize page's answer: where to send the browser, or why not.
pub(crate) type Authorized = Result<String, String>;

struct Code {
    scopes: Vec<String>,
    expires_at: Instant,
}

struct Token {
    scopes: Vec<String>,
    /// The app that was issued the token.
    client_id: String,
    /// `None`: a non-expiring offline token.
    expires_at: Option<Instant>,
}

struct Refresh {
    scopes: Vec<String>,
    expires_at: Instant,
    first_used: Option<Instant>,
    /// The refresh token that was used to obtain this one.
    parent: Option<String>,
    retired: bool,
}

/// How long a used refresh token may be retried (changelog 2026-08-28).
const REFRESH_RETRY_WINDOW: Duration = Duration::from_secs(30 * 24 * 3_600);

/// How many token requests [`Auth::requests`] remembers.
const MAX_TOKEN_REQUESTS: usize = 10_000;

#[derive(Default)]
pub(crate) struct Auth {
    app: Option<SandboxApp>,
    installed: bool,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Token>,
    refresh: HashMap<String, Refresh>,
    requests: Vec<TokenRequest>,
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Shopify's query HMAC: lowercase hex HMAC-SHA256 keyed with the client
/// secret over `k=v` pairs sorted by name, joined with `&`.
pub(crate) fn query_hmac(secret: &str, params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(pairs.join("&").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Splits a `scope` parameter (`a,b`, spaces tolerated) into handles.
fn split_scopes(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for handle in s.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        if !out.iter().any(|h| h == handle) {
            out.push(handle.to_string());
        }
    }
    out
}

/// The authorize page's parameters.
#[derive(Debug, Default)]
pub(crate) struct AuthorizeRequest {
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub grant_options: Vec<String>,
}

impl Auth {
    pub fn new(app: Option<SandboxApp>) -> Self {
        Auth {
            installed: app.is_some(),
            app,
            ..Auth::default()
        }
    }

    /// Installs `app` (replacing any other): tokens issued so far stay valid,
    /// as they do when a Dev Dashboard app's settings change.
    pub fn set_app(&mut self, app: SandboxApp) {
        self.app = Some(app);
        self.installed = true;
    }

    /// An uninstall: every issued token, refresh token and pending code is
    /// refused from now on.
    pub fn revoke(&mut self) {
        self.tokens.clear();
        self.refresh.clear();
        self.codes.clear();
        self.installed = false;
    }

    /// Every issued access token expires now; refresh tokens stay valid.
    pub fn expire(&mut self) {
        let now = Instant::now();
        for t in self.tokens.values_mut() {
            t.expires_at = Some(now);
        }
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.clone()
    }

    /// The scopes of an issued, unexpired, unrevoked access token.
    /// The scopes of a live issued token and the client id of its app.
    pub fn token_app(&self, token: &str) -> Option<(Vec<String>, String)> {
        let t = self.tokens.get(token)?;
        if t.expires_at.is_some_and(|at| Instant::now() >= at) {
            return None;
        }
        Some((t.scopes.clone(), t.client_id.clone()))
    }

    /// The client secret of the installed app with `client_id`, if any: what
    /// signs its webhooks.
    pub fn secret_of(&self, client_id: &str) -> Option<String> {
        self.app
            .as_ref()
            .filter(|a| self.installed && a.client_id == client_id)
            .map(|a| a.client_secret.clone())
    }

    /// The client id of the configured app.
    pub fn client_id(&self) -> Option<String> {
        self.app.as_ref().map(|a| a.client_id.clone())
    }

    /// `GET /admin/oauth/authorize`, approved at once: the URL to redirect
    /// the browser to, or the error page's message.
    pub fn authorize(&mut self, req: &AuthorizeRequest, shop: &str) -> Authorized {
        let app = match &self.app {
            Some(app) if req.client_id.as_deref() == Some(app.client_id.as_str()) => app,
            _ => {
                return Err(format!(
                    "Oauth error invalid_request: Could not find Shopify API application with api_key {}",
                    req.client_id.as_deref().unwrap_or_default()
                ));
            }
        };
        let Some(redirect_uri) = req.redirect_uri.as_deref() else {
            return Err("Oauth error invalid_request: The redirect_uri is missing".into());
        };
        if !app.redirect_urls.iter().any(|u| u == redirect_uri) {
            return Err("Oauth error invalid_request: The redirect_uri is not whitelisted".into());
        }
        if req
            .grant_options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("per-user"))
        {
            return Err(
                "The Shopify sandbox does not model online (per-user) access tokens; request offline access (no grant_options[])"
                    .into(),
            );
        }
        let requested = match req.scope.as_deref() {
            Some(s) if !s.trim().is_empty() => split_scopes(s),
            _ => app.scopes.clone(),
        };
        if let Some(extra) = requested.iter().find(|s| !app.scopes.contains(s)) {
            return Err(format!(
                "Oauth error invalid_scope: The app's version does not have the scope {extra}; add it to the version in the Dev Dashboard or stop requesting it"
            ));
        }
        let granted: Vec<String> = match &app.grant_only {
            Some(only) => requested.into_iter().filter(|s| only.contains(s)).collect(),
            None => requested,
        };
        let mut url = url::Url::parse(redirect_uri).map_err(|e| {
            format!(
                "Oauth error invalid_request: The redirect_uri {redirect_uri} is not a URL ({e})"
            )
        })?;

        let now = Instant::now();
        let code = random_hex();
        self.codes.insert(
            code.clone(),
            Code {
                scopes: granted,
                expires_at: now + Duration::from_secs(app.code_lifetime_secs),
            },
        );
        self.installed = true;

        let host = base64::engine::general_purpose::STANDARD.encode(format!("{shop}/admin"));
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let mut params: Vec<(&str, &str)> = vec![
            ("code", &code),
            ("host", &host),
            ("shop", shop),
            ("timestamp", &timestamp),
        ];
        if let Some(state) = req.state.as_deref() {
            params.push(("state", state));
        }
        let hmac = query_hmac(&app.client_secret, &params);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("code", &code);
            query.append_pair("hmac", &hmac);
            query.append_pair("host", &host);
            query.append_pair("shop", shop);
            if let Some(state) = req.state.as_deref() {
                query.append_pair("state", state);
            }
            query.append_pair("timestamp", &timestamp);
        }
        Ok(url.into())
    }

    /// `POST /admin/oauth/access_token`, recorded.
    pub fn token_request(
        &mut self,
        params: &HashMap<String, String>,
    ) -> Result<Issued, OAuthError> {
        let grant_type = params
            .get("grant_type")
            .cloned()
            .unwrap_or_else(|| "authorization_code".into());
        let result = self.grant(&grant_type, params);
        self.record(grant_type, if result.is_ok() { 200 } else { 400 });
        result
    }

    /// Remembers one token request (a long-running sandbox keeps the latest).
    pub fn record(&mut self, grant_type: String, status: u16) {
        if self.requests.len() >= MAX_TOKEN_REQUESTS {
            self.requests.drain(..MAX_TOKEN_REQUESTS / 10);
        }
        self.requests.push(TokenRequest { grant_type, status });
    }

    fn grant(
        &mut self,
        grant_type: &str,
        params: &HashMap<String, String>,
    ) -> Result<Issued, OAuthError> {
        let param = |name: &str| -> Result<&str, OAuthError> {
            params
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    oauth_error(
                        "invalid_request",
                        format!("Required parameter missing: {name}"),
                    )
                })
        };
        let client_id = param("client_id")?;
        let client_secret = param("client_secret")?;
        let app = match &self.app {
            Some(app) if app.client_id == client_id && app.client_secret == client_secret => {
                app.clone()
            }
            _ => {
                return Err(oauth_error(
                    "invalid_client",
                    "Client authentication failed: the client_id or client_secret is wrong. Copy both from the app's Settings in the Dev Dashboard.",
                ));
            }
        };
        let now = Instant::now();
        match grant_type {
            "client_credentials" => {
                if !self.installed {
                    return Err(oauth_error(
                        "app_not_installed",
                        "The application is not installed on this shop.",
                    ));
                }
                let scopes = match &app.grant_only {
                    Some(only) => app
                        .scopes
                        .iter()
                        .filter(|s| only.contains(s))
                        .cloned()
                        .collect(),
                    None => app.scopes.clone(),
                };
                let token = self.issue_token(
                    &app.client_id,
                    scopes.clone(),
                    Some(app.token_lifetime_secs),
                    now,
                );
                Ok(Issued {
                    access_token: token,
                    scopes,
                    expires_in: Some(app.token_lifetime_secs),
                    refresh: None,
                })
            }
            "authorization_code" => {
                let code = param("code")?;
                let not_found = || {
                    oauth_error(
                        "invalid_request",
                        "The authorization code was not found or was already used",
                    )
                };
                // Single use: gone whether or not it was still valid.
                let found = self.codes.remove(code).ok_or_else(not_found)?;
                if now >= found.expires_at {
                    return Err(not_found());
                }
                let expiring =
                    app.expiring_offline_tokens || params.get("expiring").is_some_and(|v| v == "1");
                Ok(self.issue_offline(&app, found.scopes, expiring, None, now))
            }
            "refresh_token" => {
                let presented = param("refresh_token")?.to_string();
                let refused = || {
                    oauth_error(
                        "invalid_request",
                        "The refresh token was not found, has expired or was already used",
                    )
                };
                let r = self.refresh.get_mut(&presented).ok_or_else(refused)?;
                let first_used = *r.first_used.get_or_insert(now);
                if r.retired
                    || now >= r.expires_at
                    || now.duration_since(first_used) >= REFRESH_RETRY_WINDOW
                {
                    return Err(refused());
                }
                let scopes = r.scopes.clone();
                // The app moved on to this token: its predecessor, and the
                // predecessor's other replacements, are retired.
                if let Some(parent) = r.parent.clone() {
                    for (value, other) in self.refresh.iter_mut() {
                        if *value == parent
                            || (other.parent.as_deref() == Some(parent.as_str())
                                && *value != presented)
                        {
                            other.retired = true;
                        }
                    }
                }
                Ok(self.issue_offline(&app, scopes, true, Some(presented), now))
            }
            other => Err(oauth_error(
                "unsupported_grant_type",
                format!(
                    "grant_type {other} is not supported; use client_credentials, authorization_code or refresh_token"
                ),
            )),
        }
    }

    fn issue_token(
        &mut self,
        client_id: &str,
        scopes: Vec<String>,
        lifetime: Option<u64>,
        now: Instant,
    ) -> String {
        let token = format!("shpat_{}", random_hex());
        self.tokens.insert(
            token.clone(),
            Token {
                scopes,
                client_id: client_id.to_string(),
                expires_at: lifetime.map(|s| now + Duration::from_secs(s)),
            },
        );
        token
    }

    /// An offline token, with a refresh token when `expiring`.
    fn issue_offline(
        &mut self,
        app: &SandboxApp,
        scopes: Vec<String>,
        expiring: bool,
        parent: Option<String>,
        now: Instant,
    ) -> Issued {
        if !expiring {
            let token = self.issue_token(&app.client_id, scopes.clone(), None, now);
            return Issued {
                access_token: token,
                scopes,
                expires_in: None,
                refresh: None,
            };
        }
        let token = self.issue_token(
            &app.client_id,
            scopes.clone(),
            Some(app.offline_token_lifetime_secs),
            now,
        );
        let refresh = format!("shprt_{}", random_hex());
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                scopes: scopes.clone(),
                expires_at: now + Duration::from_secs(app.refresh_token_lifetime_secs),
                first_used: None,
                parent,
                retired: false,
            },
        );
        Issued {
            access_token: token,
            scopes,
            expires_in: Some(app.offline_token_lifetime_secs),
            refresh: Some((refresh, app.refresh_token_lifetime_secs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_hmac_matches_shopifys_documented_example() {
        // The example of Shopify's OAuth docs (code, shop, timestamp) with
        // the secret "hush", as the exshopify package documents it
        // (hexdocs.pm/exshopify, Shopify.HMAC).
        let hmac = query_hmac(
            "hush",
            &[
                ("shop", "some-shop.myshopify.com"),
                ("code", "0907a61c0c8d55e99db179b68161bc00"),
                ("timestamp", "1337178173"),
            ],
        );
        assert_eq!(
            hmac,
            "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20"
        );
    }

    #[test]
    fn scope_lists_split_on_commas_without_duplicates() {
        for (input, expected) in [
            ("read_orders", vec!["read_orders"]),
            (
                "read_orders, write_orders",
                vec!["read_orders", "write_orders"],
            ),
            ("a,,a,b", vec!["a", "b"]),
            ("", vec![]),
        ] {
            assert_eq!(split_scopes(input), expected, "{input}");
        }
    }
}
