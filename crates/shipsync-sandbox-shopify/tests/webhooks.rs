//! Webhook subscriptions through GraphQL and signed deliveries to a real
//! listener on loopback, as shipsync will receive them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use shipsync_sandbox_shopify::*;

const TOKEN: &str = "shpat_webhooks";
const SECRET: &str = "shpss_test_secret";
const WAIT: Duration = Duration::from_secs(10);

/// One POST the listener received.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    fn topic(&self) -> String {
        self.header("x-shopify-topic")
    }
}

/// A webhook receiver: records every POST; answers 500 to the first
/// `fail_first` requests, 200 afterwards.
struct Listener {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start() -> Listener {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let fail_first = Arc::new(AtomicU32::new(0));
        let (r, f) = (received.clone(), fail_first.clone());
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (r, f) = (r.clone(), f.clone());
                async move {
                    r.lock().unwrap().push(Received {
                        headers,
                        body: body.to_vec(),
                    });
                    let failing = f
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if failing {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Listener {
            url: format!("http://{addr}/hooks"),
            received,
            fail_first,
            task,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (or fails the test).
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} deliveries, got {}: {:?}",
                got.len(),
                got.iter().map(Received::topic).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Store {
    http: reqwest::Client,
    running: RunningShopify,
}

fn config() -> SandboxConfig {
    SandboxConfig {
        access_token: TOKEN.into(),
        api_secret: SECRET.into(),
        allow_http_webhooks: true,
        webhook_retry_delays_ms: vec![20, 40],
        ..Default::default()
    }
}

impl Store {
    async fn start(config: SandboxConfig) -> Store {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let running = ShopifySandbox::new(config)
            .start("127.0.0.1:0".parse().expect("loopback address"))
            .await
            .expect("bind loopback");
        Store {
            http: reqwest::Client::new(),
            running,
        }
    }

    fn sandbox(&self) -> &ShopifySandbox {
        &self.running.sandbox
    }

    async fn gql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let resp = self
            .http
            .post(self.running.graphql_url())
            .header("X-Shopify-Access-Token", token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("JSON")
    }

    async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(TOKEN, query, variables).await
    }

    /// `webhookSubscriptionCreate`: the payload.
    async fn subscribe_as(&self, token: &str, topic: &str, uri: &str) -> Value {
        let body = self
            .gql_as(
                token,
                "mutation Sub($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
                    webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
                        webhookSubscription { id topic uri format apiVersion { handle } }
                        userErrors { field message }
                    }
                }",
                json!({ "topic": topic, "sub": { "uri": uri, "format": "JSON" } }),
            )
            .await;
        body["data"]["webhookSubscriptionCreate"].clone()
    }

    async fn subscribe(&self, topic: &str, uri: &str) -> String {
        let payload = self.subscribe_as(TOKEN, topic, uri).await;
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        payload["webhookSubscription"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    async fn list_as(&self, token: &str, variables: Value) -> Vec<Value> {
        let body = self
            .gql_as(
                token,
                "query Subs($topics: [WebhookSubscriptionTopic!], $uri: String, $after: String) {
                    webhookSubscriptions(first: 1, topics: $topics, uri: $uri, after: $after) {
                        nodes { id topic uri }
                        pageInfo { hasNextPage endCursor }
                    }
                }",
                variables.clone(),
            )
            .await;
        let page = &body["data"]["webhookSubscriptions"];
        let mut nodes = page["nodes"].as_array().expect("nodes").clone();
        if page["pageInfo"]["hasNextPage"] == json!(true) {
            let mut v = variables;
            v["after"] = page["pageInfo"]["endCursor"].clone();
            nodes.extend(Box::pin(self.list_as(token, v)).await);
        }
        nodes
    }

    async fn delete_as(&self, token: &str, id: &str) -> Value {
        let body = self
            .gql_as(
                token,
                "mutation Del($id: ID!) {
                    webhookSubscriptionDelete(id: $id) {
                        deletedWebhookSubscriptionId
                        userErrors { field message }
                    }
                }",
                json!({ "id": id }),
            )
            .await;
        body["data"]["webhookSubscriptionDelete"].clone()
    }
}

fn order(name: &str) -> OrderSpec {
    OrderSpec {
        name: name.into(),
        lines: vec![
            LineSpec {
                sku: "A".into(),
                quantity: 2,
                ..Default::default()
            },
            LineSpec {
                sku: "GIFT".into(),
                quantity: 1,
                requires_shipping: Some(false),
                ..Default::default()
            },
        ],
        shipping_line: Some("Standard".into()),
        tags: vec!["wholesale".into()],
        ..Default::default()
    }
}

/// The signature recomputed here, independently of the sandbox.
fn hmac_b64(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn subscriptions_are_created_listed_paged_and_deleted() {
    let s = Store::start(config()).await;
    let created = s
        .subscribe_as(TOKEN, "ORDERS_CREATE", "https://example.com/a")
        .await;
    assert_eq!(created["userErrors"], json!([]));
    let sub = &created["webhookSubscription"];
    assert_eq!(sub["topic"], "ORDERS_CREATE");
    assert_eq!(sub["uri"], "https://example.com/a");
    assert_eq!(sub["format"], "JSON");
    assert_eq!(sub["apiVersion"]["handle"], API_VERSION);
    let a = sub["id"].as_str().unwrap().to_owned();
    assert!(a.starts_with("gid://shopify/WebhookSubscription/"), "{a}");
    let b = s.subscribe("ORDERS_UPDATED", "https://example.com/a").await;
    let c = s.subscribe("ORDERS_UPDATED", "https://example.com/c").await;

    // first: 1, so this follows cursors over three pages.
    let all = s.list_as(TOKEN, json!({})).await;
    let ids: Vec<&str> = all.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str(), c.as_str()]);
    let updated = s
        .list_as(TOKEN, json!({ "topics": ["ORDERS_UPDATED"] }))
        .await;
    assert_eq!(updated.len(), 2);
    let at_c = s
        .list_as(TOKEN, json!({ "uri": "https://example.com/c" }))
        .await;
    assert_eq!(at_c.len(), 1);
    assert_eq!(at_c[0]["id"], c.as_str());

    let deleted = s.delete_as(TOKEN, &b).await;
    assert_eq!(deleted["deletedWebhookSubscriptionId"], b.as_str());
    assert_eq!(deleted["userErrors"], json!([]));
    assert_eq!(s.list_as(TOKEN, json!({})).await.len(), 2);
    let again = s.delete_as(TOKEN, &b).await;
    assert_eq!(again["deletedWebhookSubscriptionId"], Value::Null);
    assert_eq!(
        again["userErrors"][0]["message"],
        "Webhook subscription does not exist"
    );
    assert_eq!(s.sandbox().webhook_subscriptions().len(), 2);
}

#[tokio::test]
async fn the_same_topic_and_address_twice_is_refused() {
    let s = Store::start(config()).await;
    s.subscribe("ORDERS_CREATE", "https://example.com/a").await;
    let again = s
        .subscribe_as(TOKEN, "ORDERS_CREATE", "https://example.com/a")
        .await;
    assert_eq!(again["webhookSubscription"], Value::Null);
    assert_eq!(
        again["userErrors"],
        json!([{ "field": ["webhookSubscription", "uri"], "message": "Address for this topic has already been taken" }])
    );
    // Another topic at the same address is fine.
    s.subscribe("ORDERS_CANCELLED", "https://example.com/a")
        .await;
}

#[tokio::test]
async fn http_addresses_are_refused_unless_the_flag_allows_them() {
    let s = Store::start(SandboxConfig {
        allow_http_webhooks: false,
        ..config()
    })
    .await;
    let refused = s
        .subscribe_as(TOKEN, "ORDERS_CREATE", "http://127.0.0.1:9/hooks")
        .await;
    assert_eq!(refused["webhookSubscription"], Value::Null);
    assert_eq!(
        refused["userErrors"][0]["message"],
        "Address protocol http:// is not supported"
    );
    let invalid = s.subscribe_as(TOKEN, "ORDERS_CREATE", "not a url").await;
    assert_eq!(invalid["userErrors"][0]["message"], "Address is invalid");
    s.subscribe("ORDERS_CREATE", "https://example.com/hooks")
        .await;

    let allowed = Store::start(config()).await;
    allowed
        .subscribe("ORDERS_CREATE", "http://127.0.0.1:9/hooks")
        .await;
}

#[tokio::test]
async fn a_topic_needs_its_read_scope() {
    let s = Store::start(SandboxConfig {
        access_token_scopes: vec!["read_merchant_managed_fulfillment_orders".into()],
        ..config()
    })
    .await;
    let refused = s
        .subscribe_as(TOKEN, "ORDERS_CREATE", "https://example.com/a")
        .await;
    assert_eq!(refused["webhookSubscription"], Value::Null);
    assert_eq!(refused["userErrors"][0]["field"], json!(["topic"]));
    let message = refused["userErrors"][0]["message"].as_str().unwrap();
    assert!(message.contains("`read_orders`"), "{message}");
    // The fulfillment order topics need a fulfillment order scope, which
    // this token has.
    s.subscribe("FULFILLMENT_ORDERS_PLACED_ON_HOLD", "https://example.com/a")
        .await;
    // A topic the sandbox never raises is an error, not a silent no-op.
    let body = s
        .gql(
            "mutation { webhookSubscriptionCreate(topic: PRODUCTS_CREATE, webhookSubscription: {uri: \"https://example.com/a\"}) { userErrors { message } } }",
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not raise PRODUCTS_CREATE"),
        "{body}"
    );
}

#[tokio::test]
async fn a_delivery_is_signed_with_the_app_secret_and_carries_shopifys_headers() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    let sub = s.subscribe("ORDERS_CREATE", &l.url).await;
    let created = s.sandbox().create_order(order("#1001"));

    let got = l.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.topic(), "orders/create");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("x-shopify-hmac-sha256"), hmac_b64(SECRET, &r.body));
    assert_ne!(
        r.header("x-shopify-hmac-sha256"),
        hmac_b64("wrong", &r.body)
    );
    assert_eq!(r.header("x-shopify-api-version"), API_VERSION);
    assert_eq!(
        r.header("x-shopify-shop-domain"),
        s.running.url.strip_prefix("http://").unwrap()
    );
    assert_eq!(r.header("x-shopify-webhook-id").len(), 36);
    assert_eq!(r.header("x-shopify-event-id").len(), 36);
    assert!(
        r.header("x-shopify-triggered-at")
            .parse::<jiff::Timestamp>()
            .is_ok()
    );

    let body = r.json();
    let numeric = created.order_id.rsplit('/').next().unwrap();
    assert_eq!(body["id"].to_string(), numeric);
    assert_eq!(body["admin_graphql_api_id"], created.order_id.as_str());
    assert_eq!(body["name"], "#1001");
    assert_eq!(body["financial_status"], "paid");
    assert_eq!(body["fulfillment_status"], Value::Null);
    assert_eq!(body["cancelled_at"], Value::Null);
    assert_eq!(body["cancel_reason"], Value::Null);
    assert_eq!(body["tags"], "wholesale");
    assert!(body["updated_at"].as_str().unwrap().ends_with("+00:00"));
    let lines = body["line_items"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["admin_graphql_api_id"],
        created.line_item_ids[0].as_str()
    );
    assert!(lines[0]["id"].is_u64());
    assert_eq!(lines[0]["sku"], "A");
    assert_eq!(lines[0]["quantity"], 2);
    assert_eq!(lines[0]["current_quantity"], 2);
    assert_eq!(lines[0]["requires_shipping"], true);
    assert_eq!(lines[1]["requires_shipping"], false);
    assert_eq!(lines[0]["fulfillment_status"], Value::Null);
    assert_eq!(body["shipping_lines"][0]["title"], "Standard");
    assert_eq!(body["shipping_lines"][0]["code"], "Standard");
    assert_eq!(body["shipping_lines"][0]["source"], "shopify");

    let log = s.sandbox().wait_for_webhook_deliveries(1, WAIT).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].subscription_id, sub);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[0].attempt, 1);
    assert_eq!(log[0].event_id, r.header("x-shopify-event-id"));
    assert_eq!(log[0].webhook_id, r.header("x-shopify-webhook-id"));
}

#[tokio::test]
async fn subscriptions_belong_to_their_app_and_are_signed_with_its_secret() {
    let s = Store::start(SandboxConfig {
        app: Some(SandboxApp {
            client_id: "dev-client".into(),
            client_secret: "dev-secret".into(),
            ..Default::default()
        }),
        ..config()
    })
    .await;
    let resp = s
        .http
        .post(format!("{}/admin/oauth/access_token", s.running.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "dev-client"),
            ("client_secret", "dev-secret"),
        ])
        .send()
        .await
        .expect("token request");
    let dev_token = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let l = Listener::start().await;
    let legacy = s.subscribe("ORDERS_CREATE", &l.url).await;
    let dev = s.subscribe_as(&dev_token, "ORDERS_CREATE", &l.url).await;
    assert_eq!(
        dev["userErrors"],
        json!([]),
        "another app may use the same address"
    );
    let dev = dev["webhookSubscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let seen_by_dev = s.list_as(&dev_token, json!({})).await;
    assert_eq!(seen_by_dev.len(), 1);
    assert_eq!(seen_by_dev[0]["id"], dev.as_str());
    let refused = s.delete_as(&dev_token, &legacy).await;
    assert_eq!(refused["deletedWebhookSubscriptionId"], Value::Null);

    s.sandbox().create_order(order("#1002"));
    let got = l.wait_for(2).await;
    let mut secrets: Vec<&str> = got
        .iter()
        .map(|r| {
            let sig = r.header("x-shopify-hmac-sha256");
            if sig == hmac_b64(SECRET, &r.body) {
                "legacy"
            } else if sig == hmac_b64("dev-secret", &r.body) {
                "dev"
            } else {
                "bad"
            }
        })
        .collect();
    secrets.sort();
    assert_eq!(secrets, ["dev", "legacy"]);
    assert_eq!(
        got[0].header("x-shopify-event-id"),
        got[1].header("x-shopify-event-id"),
        "one event, two subscriptions"
    );

    // Uninstalling the app deletes its subscriptions.
    s.sandbox().revoke_tokens();
    let left = s.sandbox().webhook_subscriptions();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].app, "legacy");
}

#[tokio::test]
async fn each_control_sends_its_topics() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    for topic in [
        "ORDERS_CREATE",
        "ORDERS_UPDATED",
        "ORDERS_CANCELLED",
        "ORDERS_EDITED",
        "ORDERS_PAID",
        "FULFILLMENT_ORDERS_PLACED_ON_HOLD",
        "FULFILLMENT_ORDERS_HOLD_RELEASED",
    ] {
        s.subscribe(topic, &l.url).await;
    }
    let sb = s.sandbox();
    let created = sb.create_order(order("#2001"));
    let mut expected = vec!["orders/create"];
    assert_eq!(topics(&l.wait_for(expected.len()).await), expected);

    sb.set_order_tags("#2001", &["vip", "rush"]).unwrap();
    expected.push("orders/updated");
    let got = l.wait_for(expected.len()).await;
    assert_eq!(topics(&got), expected);
    assert_eq!(got.last().unwrap().json()["tags"], "vip, rush");

    let fo = &created.fulfillment_order_ids[0];
    sb.hold_fulfillment_order(fo, "AWAITING_PAYMENT", Some("card check"))
        .unwrap();
    expected.extend(["fulfillment_orders/placed_on_hold", "orders/updated"]);
    let got = l.wait_for(expected.len()).await;
    let hold = got
        .iter()
        .find(|r| r.topic() == "fulfillment_orders/placed_on_hold")
        .unwrap()
        .json();
    assert_eq!(hold["fulfillment_order"]["id"], fo.as_str());
    assert_eq!(hold["fulfillment_order"]["status"], "on_hold");
    assert_eq!(hold["fulfillment_hold"]["reason"], "awaiting_payment");
    sb.release_fulfillment_order(fo).unwrap();
    expected.extend(["fulfillment_orders/hold_released", "orders/updated"]);
    l.wait_for(expected.len()).await;

    sb.create_order(OrderSpec {
        financial_status: Some("AUTHORIZED".into()),
        ..order("#2002")
    });
    expected.push("orders/create");
    let got = l.wait_for(expected.len()).await;
    assert_eq!(got.last().unwrap().json()["financial_status"], "authorized");
    sb.set_financial_status("#2002", "PAID").unwrap();
    expected.extend(["orders/updated", "orders/paid"]);
    l.wait_for(expected.len()).await;

    let edited = sb
        .edit_order(
            "#2001",
            &[
                LineEdit::SetQuantity {
                    line: "A".into(),
                    quantity: 1,
                },
                LineEdit::Add {
                    sku: "NEW".into(),
                    quantity: 3,
                    requires_shipping: None,
                },
            ],
        )
        .unwrap();
    expected.extend(["orders/edited", "orders/updated"]);
    let got = l.wait_for(expected.len()).await;
    let edit = got
        .iter()
        .find(|r| r.topic() == "orders/edited")
        .unwrap()
        .json();
    let e = &edit["order_edit"];
    assert_eq!(e["id"], edited.edit_id);
    assert_eq!(
        e["order_id"].to_string(),
        created.order_id.rsplit('/').next().unwrap()
    );
    let line_a: u64 = created.line_item_ids[0]
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let added: u64 = edited.added_line_item_ids[0]
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        e["line_items"]["removals"],
        json!([{ "id": line_a, "delta": 1 }])
    );
    assert_eq!(
        e["line_items"]["additions"],
        json!([{ "id": added, "delta": 3 }])
    );
    let updated = got.last().unwrap().json();
    assert_eq!(updated["line_items"][0]["quantity"], 2);
    assert_eq!(updated["line_items"][0]["current_quantity"], 1);
    assert_eq!(updated["line_items"][2]["sku"], "NEW");

    sb.cancel_order("#2002", "CUSTOMER").unwrap();
    expected.extend(["orders/cancelled", "orders/updated"]);
    let got = l.wait_for(expected.len()).await;
    assert_eq!(topics(&got), expected);
    let cancelled = got[got.len() - 2].json();
    assert_eq!(cancelled["cancel_reason"], "customer");
    assert!(cancelled["cancelled_at"].is_string());
    assert_eq!(cancelled["financial_status"], "refunded");
    assert_eq!(cancelled["line_items"][0]["current_quantity"], 0);
    // Nothing else was sent meanwhile.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(l.received().len(), expected.len());
}

fn topics(got: &[Received]) -> Vec<String> {
    got.iter().map(Received::topic).collect()
}

#[tokio::test]
async fn a_fulfillment_through_graphql_sends_orders_updated() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    s.subscribe("ORDERS_UPDATED", &l.url).await;
    s.subscribe("ORDERS_FULFILLED", &l.url).await;
    let created = s.sandbox().create_order(order("#3001"));
    let body = s
        .gql(
            "mutation F($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) { fulfillment { id } userErrors { message } } }",
            json!({ "f": { "lineItemsByFulfillmentOrder": [{ "fulfillmentOrderId": created.fulfillment_order_ids[0] }] } }),
        )
        .await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"],
        json!([]),
        "{body}"
    );
    let got = l.wait_for(2).await;
    assert_eq!(topics(&got), ["orders/updated", "orders/fulfilled"]);
    let order = got[0].json();
    assert_eq!(order["fulfillment_status"], "fulfilled");
    assert_eq!(order["line_items"][0]["fulfillment_status"], "fulfilled");
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_event_id() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    s.subscribe("ORDERS_CREATE", &l.url).await;
    l.fail_first.store(2, Ordering::SeqCst);
    s.sandbox().create_order(order("#4001"));
    let got = l.wait_for(3).await;
    let events: Vec<String> = got.iter().map(|r| r.header("x-shopify-event-id")).collect();
    assert!(events.iter().all(|e| *e == events[0]));
    let webhooks: std::collections::HashSet<String> = got
        .iter()
        .map(|r| r.header("x-shopify-webhook-id"))
        .collect();
    assert_eq!(webhooks.len(), 3, "a new webhook id per attempt");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the original payload"
    );
    let log = s.sandbox().wait_for_webhook_deliveries(3, WAIT).await;
    let outcome: Vec<(u32, Option<u16>)> = log.iter().map(|d| (d.attempt, d.status)).collect();
    assert_eq!(outcome, [(1, Some(500)), (2, Some(500)), (3, Some(200))]);
}

#[tokio::test]
async fn retries_stop_when_the_schedule_runs_out() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    s.subscribe("ORDERS_CREATE", &l.url).await;
    l.fail_first.store(100, Ordering::SeqCst);
    s.sandbox().create_order(order("#4101"));
    // Two retries configured: three attempts in all.
    l.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(l.received().len(), 3);
    let log = s.sandbox().webhook_deliveries();
    assert!(log.iter().all(|d| !d.succeeded()));
}

#[tokio::test]
async fn an_unreachable_receiver_is_logged_with_an_error() {
    let s = Store::start(config()).await;
    // A port nothing listens on (bound, then released).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    s.subscribe("ORDERS_CREATE", &format!("http://127.0.0.1:{port}/hooks"))
        .await;
    s.sandbox().create_order(order("#4201"));
    let log = s.sandbox().wait_for_webhook_deliveries(3, WAIT).await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|d| d.status.is_none() && d.error.is_some()));
}

#[tokio::test]
async fn dropped_deliveries_never_arrive_and_are_not_retried() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    s.subscribe("ORDERS_CREATE", &l.url).await;
    s.sandbox().set_webhook_faults(WebhookFaults {
        drop_next: 1,
        ..Default::default()
    });
    s.sandbox().create_order(order("#5001"));
    s.sandbox().create_order(order("#5002"));
    let got = l.wait_for(1).await;
    assert_eq!(got[0].json()["name"], "#5002");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(l.received().len(), 1);
    let log = s.sandbox().webhook_deliveries();
    assert_eq!(log.len(), 2);
    assert!(log[0].dropped);
    assert_eq!(log[0].body["name"], "#5001");
    assert!(!log[1].dropped);
}

#[tokio::test]
async fn a_duplicated_delivery_has_one_event_id_and_two_webhook_ids() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    s.subscribe("ORDERS_CREATE", &l.url).await;
    s.sandbox().set_webhook_faults(WebhookFaults {
        duplicate_next: 1,
        ..Default::default()
    });
    s.sandbox().create_order(order("#6001"));
    s.sandbox().create_order(order("#6002"));
    let got = l.wait_for(3).await;
    let first: Vec<&Received> = got.iter().filter(|r| r.json()["name"] == "#6001").collect();
    assert_eq!(first.len(), 2);
    assert_eq!(
        first[0].header("x-shopify-event-id"),
        first[1].header("x-shopify-event-id")
    );
    assert_ne!(
        first[0].header("x-shopify-webhook-id"),
        first[1].header("x-shopify-webhook-id")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(l.received().len(), 3, "only the next delivery is doubled");
}

#[tokio::test]
async fn held_deliveries_are_released_newest_first() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    s.subscribe("ORDERS_CREATE", &l.url).await;
    s.subscribe("ORDERS_UPDATED", &l.url).await;
    let sb = s.sandbox();
    sb.set_webhook_faults(WebhookFaults {
        hold: true,
        ..Default::default()
    });
    sb.create_order(order("#7001"));
    sb.set_order_tags("#7001", &["first"]).unwrap();
    sb.set_order_tags("#7001", &["second"]).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(l.received().is_empty(), "held");
    assert_eq!(sb.release_held_webhooks(), 3);
    let got = l.wait_for(3).await;
    let seen: Vec<(String, Value)> = got
        .iter()
        .map(|r| (r.topic(), r.json()["tags"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("orders/updated".to_owned(), json!("second")),
            ("orders/updated".to_owned(), json!("first")),
            ("orders/create".to_owned(), json!("wholesale")),
        ]
    );
    // No longer holding.
    sb.set_order_tags("#7001", &["third"]).unwrap();
    l.wait_for(4).await;
}

#[tokio::test]
async fn controls_and_logs_over_http() {
    let s = Store::start(config()).await;
    let l = Listener::start().await;
    s.subscribe("ORDERS_CANCELLED", &l.url).await;
    let created = s.sandbox().create_order(order("#8001"));
    let base = &s.running.url;
    let post = |path: &str, body: Value| {
        let req = s.http.post(format!("{base}{path}")).json(&body);
        async move {
            let resp = req.send().await.expect("request");
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, _) = post("/_sandbox/webhook-faults", json!({ "duplicate_next": 1 })).await;
    assert_eq!(status, 204);
    let (status, body) = post(
        "/_sandbox/orders/%238001/cancel",
        json!({ "reason": "NOPE" }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = post("/_sandbox/orders/8001/cancel", json!({ "reason": "FRAUD" })).await;
    assert_eq!(status, 204);
    let (status, body) = post("/_sandbox/orders/8001/cancel", json!({ "reason": "FRAUD" })).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = post(
        "/_sandbox/fulfillment_orders/release",
        json!({ "fulfillment_order_id": created.fulfillment_order_ids[0] }),
    )
    .await;
    assert_eq!(status, 409, "a cancelled fulfillment order is not on hold");
    l.wait_for(2).await;

    let other = s.sandbox().create_order(order("#8002"));
    let (status, body) = post(
        "/_sandbox/orders/8002/edit",
        json!({ "changes": [
            { "op": "set_quantity", "line": "A", "quantity": 1 },
            { "op": "add", "sku": "C", "quantity": 2, "requires_shipping": false },
        ] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added_line_item_ids"].as_array().unwrap().len(), 1);
    let (status, _) = post("/_sandbox/orders/8002/tags", json!({ "tags": ["x"] })).await;
    assert_eq!(status, 204);
    let (status, _) = post(
        "/_sandbox/orders/8002/financial_status",
        json!({ "status": "PARTIALLY_REFUNDED" }),
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = post(
        "/_sandbox/fulfillment_orders/hold",
        json!({ "fulfillment_order_id": other.fulfillment_order_ids[0], "reason": "OTHER" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["hold_id"].is_string());
    let view = s.sandbox().order("#8002").unwrap();
    assert!(view.edited);
    assert_eq!(view.tags, ["x"]);
    assert_eq!(view.display_financial_status, "PARTIALLY_REFUNDED");
    assert_eq!(view.fulfillment_orders[0].hold_reasons, ["OTHER"]);
    assert_eq!(view.lines[0].current_quantity, 1);
    assert!(!view.lines[2].requires_shipping);
    let (status, _) = post(
        "/_sandbox/fulfillment_orders/release",
        json!({ "fulfillment_order_id": other.fulfillment_order_ids[0] }),
    )
    .await;
    assert_eq!(status, 204);

    let get = |path: &str| {
        let req = s.http.get(format!("{base}{path}"));
        async move {
            let list: Vec<Value> = req.send().await.unwrap().json().await.unwrap();
            list
        }
    };
    // The sandbox logs a delivery once its answer is in, which can be just
    // after the listener has it: wait for both entries.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let log = loop {
        let log = get("/_sandbox/webhook-deliveries").await;
        if log.len() >= 2 || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["topic"], "orders/cancelled");
    assert_eq!(log[0]["event_id"], log[1]["event_id"]);
    let subs = get("/_sandbox/webhook-subscriptions").await;
    assert_eq!(subs[0]["topic"], "ORDERS_CANCELLED");
}
