//! Shopify's app authentication over real HTTP: the client credentials,
//! authorization code and refresh token grants, the tokens they issue, and
//! the access scopes those tokens carry into GraphQL.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use shipsync_sandbox_shopify::*;

const LEGACY: &str = "shpat_legacy";
const CLIENT_ID: &str = "client-1";
const SECRET: &str = "secret-1";
const CALLBACK: &str = "http://127.0.0.1:9/connect/shopify/callback";

fn app() -> SandboxApp {
    SandboxApp {
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        redirect_urls: vec![CALLBACK.into()],
        ..Default::default()
    }
}

struct Store {
    http: reqwest::Client,
    running: RunningShopify,
}

impl Store {
    async fn start(app: Option<SandboxApp>) -> Store {
        Store::with_config(SandboxConfig {
            access_token: LEGACY.into(),
            app,
            ..Default::default()
        })
        .await
    }

    async fn with_config(config: SandboxConfig) -> Store {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sandbox = ShopifySandbox::new(config);
        let running = sandbox
            .start("127.0.0.1:0".parse().expect("loopback address"))
            .await
            .expect("bind loopback");
        Store {
            // The authorize page answers with a redirect the test inspects.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            running,
        }
    }

    fn sandbox(&self) -> &ShopifySandbox {
        &self.running.sandbox
    }

    /// `host:port` of the sandbox, as the `shop` parameter names it.
    fn authority(&self) -> &str {
        self.running.url.strip_prefix("http://").expect("http URL")
    }

    /// `POST /admin/oauth/access_token` with the body `body` puts on it.
    async fn token(
        &self,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}/admin/oauth/access_token", self.running.url));
        let resp = body(request).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn token_form(&self, params: &[(&str, &str)]) -> (u16, Value) {
        self.token(|r| r.form(params)).await
    }

    async fn token_json(&self, body: Value) -> (u16, Value) {
        self.token(|r| r.json(&body)).await
    }

    async fn client_credentials(&self) -> (u16, Value) {
        self.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
        .await
    }

    /// `GET /admin/oauth/authorize`: (status, Location or page body).
    async fn authorize(&self, params: &[(&str, &str)]) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}/admin/oauth/authorize", self.running.url))
            .query(params)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        (status, location.unwrap_or(body))
    }

    /// Approves the app and answers the callback's query parameters.
    async fn approve(&self, scope: &str, state: &str) -> HashMap<String, String> {
        let (status, location) = self
            .authorize(&[
                ("client_id", CLIENT_ID),
                ("scope", scope),
                ("redirect_uri", CALLBACK),
                ("state", state),
            ])
            .await;
        assert_eq!(status, 302, "{location}");
        let url = url::Url::parse(&location).expect("Location is a URL");
        assert!(location.starts_with(CALLBACK), "{location}");
        url.query_pairs().into_owned().collect()
    }

    async fn exchange(&self, code: &str) -> (u16, Value) {
        self.token_form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code", code),
        ])
        .await
    }

    async fn gql(&self, token: &str, query: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.running.graphql_url())
            .header("X-Shopify-Access-Token", token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn scopes_of(&self, token: &str) -> Vec<String> {
        let (status, body) = self
            .gql(
                token,
                "{ currentAppInstallation { accessScopes { handle } } }",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["currentAppInstallation"]["accessScopes"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .filter_map(|s| s["handle"].as_str().map(str::to_owned))
            .collect()
    }

    async fn control(&self, path: &str) -> u16 {
        self.http
            .post(format!("{}{path}", self.running.url))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }
}

const SHOP_QUERY: &str = "{ shop { name } }";
const REFUSED: &str =
    "[API] Invalid API key or access token (unrecognized login or wrong password)";

fn token_of(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {body}"))
        .to_owned()
}

fn is_shpat(token: &str) -> bool {
    token
        .strip_prefix("shpat_")
        .is_some_and(|hex| hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Shopify's rule, written independently of the sandbox: every parameter
/// but `hmac`, sorted by name, joined `k=v&k=v`, HMAC-SHA256 with the client
/// secret, lowercase hex.
fn expected_hmac(secret: &str, params: &HashMap<String, String>) -> String {
    let mut pairs: Vec<(&String, &String)> = params.iter().filter(|(k, _)| *k != "hmac").collect();
    pairs.sort();
    let message = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn client_credentials_grant_in_form_and_json() {
    let s = Store::start(Some(app())).await;
    let (status, body) = s.client_credentials().await;
    assert_eq!(status, 200, "{body}");
    assert!(is_shpat(&token_of(&body)), "{body}");
    assert_eq!(body["scope"], SHIPSYNC_SCOPES.join(","));
    assert_eq!(body["expires_in"], 86_399);
    assert!(body.get("refresh_token").is_none(), "{body}");

    let (status, json_body) = s
        .token_json(json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
        }))
        .await;
    assert_eq!(status, 200, "{json_body}");
    assert_ne!(token_of(&json_body), token_of(&body), "tokens are random");

    for token in [token_of(&body), token_of(&json_body)] {
        let (status, answer) = s.gql(&token, SHOP_QUERY).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"]["shop"]["name"], SHOP_NAME);
    }
    assert_eq!(
        s.sandbox().token_requests(),
        vec![
            TokenRequest {
                grant_type: "client_credentials".into(),
                status: 200
            };
            2
        ]
    );
}

#[tokio::test]
async fn wrong_credentials_and_malformed_requests_are_refused() {
    let s = Store::start(Some(app())).await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
            ],
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "other-app"),
                ("client_secret", SECRET),
            ],
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
            ],
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ],
            "unsupported_grant_type",
        ),
        (
            &[
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("code", "0123456789abcdef0123456789abcdef"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("refresh_token", "shprt_unknown"),
            ],
            "invalid_request",
        ),
        // A good code does not help a wrong secret.
        (
            &[
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
                ("code", "0123456789abcdef0123456789abcdef"),
            ],
            "invalid_client",
        ),
    ];
    for (params, error) in cases {
        let (status, body) = s.token_form(params).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(*error)),
            "{params:?}: {body}"
        );
        assert!(body["error_description"].is_string(), "{body}");
        assert!(body.get("access_token").is_none());
    }
    let (status, body) = s.token_json(json!("not an object")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        s.sandbox().token_requests().iter().all(|r| r.status == 400),
        "{:?}",
        s.sandbox().token_requests()
    );

    // A store without the app knows no client at all.
    let bare = Store::start(None).await;
    let (status, body) = bare.client_credentials().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client"))
    );
}

#[tokio::test]
async fn authorization_code_grant_signs_the_callback_and_codes_are_single_use() {
    let s = Store::start(Some(app())).await;
    let params = s
        .approve(
            "read_orders,write_merchant_managed_fulfillment_orders",
            "st-1",
        )
        .await;
    let mut names: Vec<&str> = params.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        ["code", "hmac", "host", "shop", "state", "timestamp"]
    );
    assert_eq!(params["shop"], s.authority());
    assert_eq!(params["state"], "st-1");
    let host = base64::engine::general_purpose::STANDARD
        .decode(&params["host"])
        .expect("base64 host");
    assert_eq!(host, format!("{}/admin", s.authority()).into_bytes());
    let now = jiff::Timestamp::now().as_second();
    let ts: i64 = params["timestamp"].parse().expect("timestamp");
    assert!((now - ts).abs() <= 5, "{ts} vs {now}");

    // The signature follows Shopify's rule, and only with the right secret
    // and the parameters as sent.
    assert_eq!(params["hmac"], expected_hmac(SECRET, &params));
    assert_ne!(params["hmac"], expected_hmac("another-secret", &params));
    let mut tampered = params.clone();
    tampered.insert("state".into(), "st-2".into());
    assert_ne!(params["hmac"], expected_hmac(SECRET, &tampered));

    let (status, body) = s.exchange(&params["code"]).await;
    assert_eq!(status, 200, "{body}");
    let token = token_of(&body);
    assert!(is_shpat(&token));
    assert_eq!(
        body["scope"],
        "read_orders,write_merchant_managed_fulfillment_orders"
    );
    // A non-expiring offline token: no expiry, no refresh token.
    assert!(body.get("expires_in").is_none(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(s.gql(&token, SHOP_QUERY).await.0, 200);

    let (status, body) = s.exchange(&params["code"]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({ "error": "invalid_request",
                "error_description": "The authorization code was not found or was already used" })
    );
    // The first token is untouched by the refused second use.
    assert_eq!(s.gql(&token, SHOP_QUERY).await.0, 200);
    let grants: Vec<(String, u16)> = s
        .sandbox()
        .token_requests()
        .into_iter()
        .map(|r| (r.grant_type, r.status))
        .collect();
    assert_eq!(
        grants,
        [
            ("authorization_code".to_string(), 200),
            ("authorization_code".to_string(), 400)
        ]
    );

    // JSON with an explicit grant type works as well; no scope asks for the
    // version's scopes.
    let params = s.approve("", "st-3").await;
    let (status, body) = s
        .token_json(
            json!({ "grant_type": "authorization_code", "client_id": CLIENT_ID,
                            "client_secret": SECRET, "code": params["code"] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], SHIPSYNC_SCOPES.join(","));
}

#[tokio::test]
async fn the_authorize_page_refuses_what_shopify_refuses() {
    let s = Store::start(Some(app())).await;
    let other = "http://127.0.0.1:9/other/callback";
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("client_id", CLIENT_ID), ("redirect_uri", other)],
            "The redirect_uri is not whitelisted",
        ),
        // Exact match: a trailing slash is another URI.
        (
            &[
                ("client_id", CLIENT_ID),
                (
                    "redirect_uri",
                    "http://127.0.0.1:9/connect/shopify/callback/",
                ),
            ],
            "The redirect_uri is not whitelisted",
        ),
        (
            &[("client_id", "nope"), ("redirect_uri", CALLBACK)],
            "Could not find Shopify API application",
        ),
        (&[("client_id", CLIENT_ID)], "redirect_uri is missing"),
        (
            &[
                ("client_id", CLIENT_ID),
                ("redirect_uri", CALLBACK),
                ("scope", "read_orders,write_products"),
            ],
            "write_products",
        ),
        (
            &[
                ("client_id", CLIENT_ID),
                ("redirect_uri", CALLBACK),
                ("grant_options[]", "per-user"),
            ],
            "online",
        ),
    ];
    for (params, expected) in cases {
        let (status, page) = s.authorize(params).await;
        assert_eq!(status, 400, "{params:?}: {page}");
        assert!(page.contains(expected), "{params:?}: {page}");
    }

    // A shipsync started after the sandbox adds its redirect URL at run time.
    let mut with_other = app();
    with_other.redirect_urls.push(other.into());
    let resp = s
        .http
        .post(format!("{}/_sandbox/app", s.running.url))
        .json(&with_other)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 204);
    let (status, location) = s
        .authorize(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", other),
            ("grant_options[]", ""),
        ])
        .await;
    assert_eq!(status, 302, "{location}");
    assert!(
        location.starts_with(&format!("{other}?code=")),
        "{location}"
    );
}

#[tokio::test]
async fn codes_and_tokens_expire() {
    let s = Store::start(Some(SandboxApp {
        token_lifetime_secs: 1,
        code_lifetime_secs: 1,
        ..app()
    }))
    .await;
    let (_, body) = s.client_credentials().await;
    assert_eq!(body["expires_in"], 1);
    let token = token_of(&body);
    let params = s.approve("read_orders", "st").await;
    assert_eq!(s.gql(&token, SHOP_QUERY).await.0, 200);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, answer) = s.gql(&token, SHOP_QUERY).await;
    assert_eq!((status, answer), (401, json!({ "errors": REFUSED })));
    let (status, body) = s.exchange(&params["code"]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let recorded = s.sandbox().requests();
    let flags: Vec<(u16, bool)> = recorded
        .iter()
        .map(|r| (r.status, r.token_refused))
        .collect();
    assert_eq!(flags, [(200, false), (401, true)]);
}

#[tokio::test]
async fn expiring_offline_tokens_refresh_and_rotate() {
    let s = Store::start(Some(SandboxApp {
        expiring_offline_tokens: true,
        ..app()
    }))
    .await;
    let params = s.approve("read_orders", "st").await;
    let (status, first) = s.exchange(&params["code"]).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["expires_in"], 3_600);
    assert_eq!(first["refresh_token_expires_in"], 90 * 24 * 3_600);
    let r1 = first["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let a1 = token_of(&first);

    assert_eq!(s.control("/_sandbox/expire").await, 204);
    assert_eq!(s.gql(&a1, SHOP_QUERY).await.0, 401);

    let store = &s;
    let refresh = |token: String| async move {
        store
            .token_form(&[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("refresh_token", &token),
            ])
            .await
    };
    let (status, second) = refresh(r1.clone()).await;
    assert_eq!(status, 200, "{second}");
    let r2 = second["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    assert_ne!(r2, r1);
    assert_eq!(second["scope"], "read_orders");
    assert_eq!(second["expires_in"], 3_600);
    assert_eq!(s.gql(&token_of(&second), SHOP_QUERY).await.0, 200);
    assert_eq!(s.scopes_of(&token_of(&second)).await, ["read_orders"]);

    // A lost answer: the used refresh token still works until its
    // replacement is used (Shopify, 2026-08-28)...
    let (status, retried) = refresh(r1.clone()).await;
    assert_eq!(status, 200, "{retried}");
    let r3 = retried["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    // ...which retires it, and the other replacement with it.
    assert_eq!(refresh(r3.clone()).await.0, 200);
    for retired in [r1, r2] {
        let (status, body) = refresh(retired).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }
    let refreshes = s
        .sandbox()
        .token_requests()
        .iter()
        .filter(|r| r.grant_type == "refresh_token" && r.status == 200)
        .count();
    assert_eq!(refreshes, 3);

    // Without the app flag, a request that sends `expiring=1` opts in.
    s.sandbox().set_app(app());
    let params = s.approve("read_orders", "st").await;
    let (status, body) = s
        .token_json(json!({ "client_id": CLIENT_ID, "client_secret": SECRET,
                            "code": params["code"], "expiring": 1 }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
}

#[tokio::test]
async fn revoking_is_an_uninstall_and_leaves_the_legacy_token_alone() {
    let s = Store::start(Some(SandboxApp {
        expiring_offline_tokens: true,
        ..app()
    }))
    .await;
    let (_, cc) = s.client_credentials().await;
    let params = s.approve("read_orders", "st").await;
    let (_, ac) = s.exchange(&params["code"]).await;
    let pending = s.approve("read_orders", "st").await;

    assert_eq!(s.control("/_sandbox/revoke").await, 204);
    for token in [token_of(&cc), token_of(&ac)] {
        let (status, body) = s.gql(&token, SHOP_QUERY).await;
        assert_eq!((status, body), (401, json!({ "errors": REFUSED })));
    }
    let refresh = ac["refresh_token"].as_str().expect("refresh token");
    let (status, _) = s
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(s.exchange(&pending["code"]).await.0, 400);
    let (status, body) = s.client_credentials().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("app_not_installed"))
    );
    assert_eq!(s.gql(LEGACY, SHOP_QUERY).await.0, 200);

    // Approving the app again installs it.
    let params = s.approve("read_orders", "st").await;
    assert_eq!(s.exchange(&params["code"]).await.0, 200);
    assert_eq!(s.client_credentials().await.0, 200);

    // Expiring touches only issued tokens too.
    s.sandbox().expire_tokens();
    assert_eq!(s.gql(LEGACY, SHOP_QUERY).await.0, 200);

    let resp = s
        .http
        .get(format!("{}/_sandbox/token-requests", s.running.url))
        .send()
        .await
        .expect("request");
    let listed: Vec<TokenRequest> = resp.json().await.expect("token requests");
    assert_eq!(listed, s.sandbox().token_requests());
}

const FO_READ: &str = r#"query($id: ID!) {
  order(id: $id) { name fulfillmentOrders(first: 5) { nodes { id } } }
}"#;

const FULFILL: &str = r#"mutation($f: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $f) { fulfillment { id } userErrors { message } }
}"#;

#[tokio::test]
async fn access_scopes_and_access_denied() {
    let s = Store::start(Some(SandboxApp {
        scopes: vec![
            "read_orders".into(),
            "read_merchant_managed_fulfillment_orders".into(),
            "write_merchant_managed_fulfillment_orders".into(),
            "read_third_party_fulfillment_orders".into(),
            "write_third_party_fulfillment_orders".into(),
            "read_products".into(),
        ],
        ..app()
    }))
    .await;
    let order = s.sandbox().create_order(OrderSpec {
        name: "#1".into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(s.scopes_of(LEGACY).await, SHIPSYNC_SCOPES);

    let token_with = |scope: &'static str| {
        let s = &s;
        async move {
            let params = s.approve(scope, "st").await;
            let (status, body) = s.exchange(&params["code"]).await;
            assert_eq!(status, 200, "{body}");
            token_of(&body)
        }
    };
    let post = |token: String, query: &'static str, variables: Value| {
        let s = &s;
        async move {
            let resp = s
                .http
                .post(s.running.graphql_url())
                .header("X-Shopify-Access-Token", token)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Value>().await.expect("JSON")
        }
    };
    let order_vars = json!({ "id": order.order_id });
    let fulfill_vars = json!({ "f": { "lineItemsByFulfillmentOrder": [
        { "fulfillmentOrderId": order.fulfillment_order_ids[0] } ] } });

    // No read_orders: the order is denied, Shopify's way.
    let products = token_with("read_products").await;
    assert_eq!(s.scopes_of(&products).await, ["read_products"]);
    let body = post(
        products.clone(),
        "{ orders(first: 1) { nodes { id } } }",
        Value::Null,
    )
    .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    let error = &body["errors"][0];
    assert_eq!(
        error["message"],
        "Access denied for orders field. Required access: `read_orders` access scope."
    );
    assert_eq!(error["extensions"]["code"], "ACCESS_DENIED");
    assert_eq!(
        error["extensions"]["requiredAccess"],
        "`read_orders` access scope."
    );
    assert_eq!(error["path"], json!(["orders"]));
    let body = post(products, FO_READ, order_vars.clone()).await;
    assert_eq!(body["data"]["order"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "ACCESS_DENIED");
    let last = s.sandbox().requests().pop().expect("recorded");
    assert_eq!(last.error_codes, ["ACCESS_DENIED"]);
    assert!(!last.token_refused);

    // Orders but no fulfillment-order scope at all: that field is denied.
    let orders_only = token_with("read_orders").await;
    let body = post(orders_only.clone(), FO_READ, order_vars.clone()).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "ACCESS_DENIED",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["path"],
        json!(["order", "fulfillmentOrders"])
    );
    let body = post(orders_only, FULFILL, fulfill_vars.clone()).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "ACCESS_DENIED",
        "{body}"
    );
    assert_eq!(s.sandbox().fulfillments_created(), 0);

    // Third-party scopes only: the sandbox's merchant-managed fulfillment
    // orders are not among those the app may see or fulfil.
    let third_party = token_with(
        "read_orders,read_third_party_fulfillment_orders,write_third_party_fulfillment_orders",
    )
    .await;
    let body = post(third_party.clone(), FO_READ, order_vars.clone()).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["order"]["fulfillmentOrders"]["nodes"],
        json!([])
    );
    let body = post(third_party, FULFILL, fulfill_vars.clone()).await;
    let errors = &body["data"]["fulfillmentCreate"]["userErrors"];
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist")),
        "{body}"
    );
    assert_eq!(s.sandbox().fulfillments_created(), 0);

    // An install restricted by the merchant: granted what was allowed.
    s.sandbox().set_app(SandboxApp {
        grant_only: Some(vec![
            "read_orders".into(),
            "read_merchant_managed_fulfillment_orders".into(),
        ]),
        ..app()
    });
    let all = SHIPSYNC_SCOPES.join(",");
    let params = s.approve(&all, "st").await;
    let (_, granted) = s.exchange(&params["code"]).await;
    assert_eq!(
        granted["scope"],
        "read_orders,read_merchant_managed_fulfillment_orders"
    );
    let read_only = token_of(&granted);
    let body = post(read_only.clone(), FO_READ, order_vars).await;
    assert_eq!(
        body["data"]["order"]["fulfillmentOrders"]["nodes"][0]["id"],
        order.fulfillment_order_ids[0].as_str(),
        "{body}"
    );
    let body = post(read_only, FULFILL, fulfill_vars.clone()).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "ACCESS_DENIED",
        "{body}"
    );

    // The full set fulfils.
    s.sandbox().set_app(app());
    let full = token_with("").await;
    let body = post(full, FULFILL, fulfill_vars).await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"],
        json!([]),
        "{body}"
    );
    assert_eq!(s.sandbox().fulfillments_created(), 1);
}

#[tokio::test]
async fn the_legacy_token_keeps_working_with_its_configured_scopes() {
    let s = Store::with_config(SandboxConfig {
        access_token: LEGACY.into(),
        access_token_scopes: vec!["read_products".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(s.scopes_of(LEGACY).await, ["read_products"]);
    let (status, body) = s.gql(LEGACY, "{ orders(first: 1) { nodes { id } } }").await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "ACCESS_DENIED");
    for token in ["", "shpat_other", "shpat_legacy2"] {
        let (status, body) = s.gql(token, SHOP_QUERY).await;
        assert_eq!(
            (status, body),
            (401, json!({ "errors": REFUSED })),
            "{token:?}"
        );
    }
    // Without a token header at all.
    let resp = s
        .http
        .post(s.running.graphql_url())
        .json(&json!({ "query": SHOP_QUERY }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        s.sandbox()
            .requests()
            .iter()
            .skip(2)
            .all(|r| r.token_refused)
    );
}
