//! Outbound events (issue 16): a merchant's systems subscribe to events and
//! receive them signed per Standard Webhooks. The target is a real HTTP
//! server on loopback that verifies every request with the
//! `standardwebhooks` crate (not shipsync's code) and, as a subscriber
//! should, dedupes by `webhook-id`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Options};

use crate::alerts::{alerts, ok, until, webhook_channel};
use crate::orders::{enable_sales_orders, paid_order, run_orders, wait_order};
use crate::roles::{other_tenant, user_with_token};
use crate::support::{SETTLE, browser_for};

/// One request the target got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    id: String,
    signature: String,
    body: Value,
    /// Which of the target's secrets verify it (indexes).
    verified_with: Vec<usize>,
    status: u16,
}

#[derive(Default)]
pub(crate) struct TargetState {
    /// The secrets it verifies with (any one suffices).
    pub(crate) secrets: Vec<String>,
    /// Answer 500 to this many verified requests first.
    fail_next: usize,
    /// Answer 503 to everything.
    down: bool,
    requests: Vec<Seen>,
    /// What the subscriber processed: each `webhook-id` once.
    accepted: Vec<Seen>,
    ids: BTreeSet<String>,
}

/// A subscriber's endpoint on `127.0.0.1:0`.
pub(crate) struct Target {
    pub(crate) url: String,
    state: Arc<Mutex<TargetState>>,
    server: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(state): State<Arc<Mutex<TargetState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let verified_with: Vec<usize> = s
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, secret)| {
            standardwebhooks::Webhook::new(secret).is_ok_and(|w| w.verify(&body, &headers).is_ok())
        })
        .map(|(i, _)| i)
        .collect();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let status = if s.down {
        503
    } else if verified_with.is_empty() || header("content-type") != "application/json" {
        401
    } else if s.fail_next > 0 {
        s.fail_next -= 1;
        500
    } else {
        200
    };
    let seen = Seen {
        id: header("webhook-id"),
        signature: header("webhook-signature"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified_with,
        status,
    };
    s.requests.push(seen.clone());
    if status == 200 && s.ids.insert(seen.id.clone()) {
        s.accepted.push(seen);
    }
    match status {
        200 => (StatusCode::OK, "thanks"),
        401 => (StatusCode::UNAUTHORIZED, "bad signature"),
        500 => (StatusCode::INTERNAL_SERVER_ERROR, "try again later"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance"),
    }
}

impl Target {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(Mutex::new(TargetState::default()));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hooks/shipsync", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, server }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, TargetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn accepted(&self) -> Vec<Seen> {
        self.state().accepted.clone()
    }

    fn requests(&self) -> Vec<Seen> {
        self.state().requests.clone()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A harness whose event deliveries retry after `delays_ms`.
async fn harness(db_url: String, delays_ms: &[u64]) -> Harness {
    let mut opts = Options::new(db_url);
    opts.engine.event_retry_delays = delays_ms
        .iter()
        .map(|&ms| Duration::from_millis(ms))
        .collect();
    Harness::start(opts).await.expect("harness")
}

fn subs_path(h: &Harness) -> String {
    format!("/api/v1/merchants/{}/event-subscriptions", h.merchant_id)
}

/// Subscribes `target` to `events`; returns the subscription id and its
/// secret, which the target verifies with from now on.
async fn subscribe(h: &Harness, target: &Target, events: &[&str]) -> (String, String) {
    let sub = h
        .api(
            "POST",
            &subs_path(h),
            Some(json!({"url": target.url, "events": events})),
        )
        .await
        .unwrap()
        .ok(201)
        .unwrap();
    let secret = sub["secret"].as_str().expect("the secret").to_string();
    assert!(secret.starts_with("whsec_"), "{sub}");
    assert_eq!(sub["secret_set"], true);
    assert_eq!(sub["status"], "active");
    target.state().secrets.push(secret.clone());
    (sub["id"].as_str().unwrap().to_string(), secret)
}

async fn deliveries(h: &Harness, sid: &str) -> Vec<Value> {
    h.api("GET", &format!("{}/{sid}/deliveries", subs_path(h)), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls `check` until it gives a value (at most [`SETTLE`]).
async fn wait_for<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < SETTLE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the subscription's delivery of an `event_type` event is in
/// `state`; returns it.
async fn wait_delivery(h: &Harness, sid: &str, event_type: &str, state: &str) -> Value {
    let start = Instant::now();
    loop {
        let all = deliveries(h, sid).await;
        if let Some(d) = all
            .iter()
            .find(|d| d["event_type"] == event_type && d["state"] == state)
        {
            return d.clone();
        }
        assert!(
            start.elapsed() < SETTLE,
            "no {event_type} delivery {state}; the deliveries: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Places an order and ships it in full (two packages, UPS); returns the
/// shipment number and the order name.
async fn ship_an_order(h: &mut Harness, tracking: &str) -> (String, String) {
    let (name, _) = h.place_order(&[("A", 2), ("B", 1)]);
    let spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .carrier("UPS", "UPS Ground")
        .line(LineSpec::new(1, "A", 2))
        .line(LineSpec::new(2, "B", 1))
        .package(PackageSpec::new("LPN-1", tracking).line(1, 2))
        .package(PackageSpec::new("LPN-2", format!("{tracking}-2")).line(2, 1));
    let (number, code) = h.ship(spec, Shape::Current).await.unwrap();
    assert_eq!(code, 202);
    (number, name)
}

/// A completed shipment reaches the target signed and verified, with its
/// tracking and store fulfillment; a target that fails twice sees it once
/// (three attempts recorded); a replay sends the same `webhook-id` again.
async fn a_completed_shipment_is_delivered_signed_retried_and_replayed(db_url: String) {
    let mut h = harness(db_url, &[100, 100, 100]).await;
    let target = Target::start().await;
    let (sid, secret) = subscribe(&h, &target, &["shipment.completed", "shipment.error"]).await;
    target.state().fail_next = 2;

    let (number, name) = ship_an_order(&mut h, "1Z-EVT-1").await;
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let d = wait_delivery(&h, &sid, "shipment.completed", "delivered").await;

    // The target's view: one verified event, whatever the retries.
    let accepted = target.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    let got = &accepted[0];
    assert_eq!(got.verified_with, [0]);
    assert!(got.id.starts_with("msg_"), "{got:?}");
    assert_eq!(got.id, d["event_id"]);
    let body = &got.body;
    assert_eq!(body["type"], "shipment.completed", "{body}");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let data = &body["data"];
    assert_eq!(data["shipment_id"], s["id"]);
    assert_eq!(data["shipment_number"], number.as_str());
    assert_eq!(data["merchant_id"], h.merchant_id.as_str());
    assert_eq!(data["store_order"]["name"], name.as_str());
    assert!(
        data["store_order"]["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("gid://"))
    );
    let tracking: Vec<&str> = data["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["tracking_number"].as_str())
        .collect();
    assert_eq!(tracking, ["1Z-EVT-1", "1Z-EVT-1-2"], "{data}");
    assert_eq!(data["packages"][0]["carrier"], "UPS", "{data}");
    assert_eq!(
        data["lines"],
        json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}])
    );
    let fulfillments: Vec<&str> = s["store_fulfillments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(!fulfillments.is_empty(), "{s}");
    assert_eq!(data["store_fulfillment_ids"], json!(fulfillments), "{data}");
    assert!(data["error"].is_null());

    // Three attempts: two refusals, then the 200, each recorded.
    let attempts = d["attempts"].as_array().unwrap();
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(200)], "{d}");
    assert_eq!(attempts[0]["excerpt"], "try again later");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("500"))
    );
    assert_eq!(attempts[2]["excerpt"], "thanks");
    assert!(attempts[2]["error"].is_null());
    assert!(attempts.iter().all(|a| a["latency_ms"].as_i64().is_some()));
    assert!(d["next_attempt_at"].is_null());
    assert_eq!(target.requests().len(), 3);

    // Replay: the same webhook-id again, signed anew; the target still
    // processed it once.
    let did = d["id"].as_str().unwrap();
    let replayed = h
        .api(
            "POST",
            &format!("{}/{sid}/deliveries/{did}/replay", subs_path(&h)),
            None,
        )
        .await
        .unwrap()
        .ok(202)
        .unwrap();
    assert_eq!(replayed["id"], did);
    wait_for("the replay reached the target", || async {
        (target.requests().len() == 4).then_some(())
    })
    .await;
    let again = &target.requests()[3];
    assert_eq!(again.id, got.id);
    assert_eq!(again.status, 200);
    assert_eq!(again.verified_with, [0]);
    assert_eq!(target.accepted().len(), 1);
    let d = wait_for("the replay recorded", || async {
        deliveries(&h, &sid).await.into_iter().find(|x| {
            x["id"] == did
                && x["state"] == "delivered"
                && x["attempts"].as_array().is_some_and(|a| a.len() == 4)
        })
    })
    .await;
    assert!(d["next_attempt_at"].is_null(), "{d}");

    // The secret is in no answer after the one that made it.
    let sub = h
        .api("GET", &format!("{}/{sid}", subs_path(&h)), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(sub["secret_set"], true);
    assert!(sub.get("secret").is_none(), "{sub}");
    let list = h
        .api("GET", &subs_path(&h), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let b64 = secret.trim_start_matches("whsec_");
    for answer in [sub, list, json!(deliveries(&h, &sid).await)] {
        assert!(!answer.to_string().contains(b64), "the secret in {answer}");
    }
    h.shutdown().await;
}

/// A target that never answers 2xx: the delivery fails after its retries
/// and the subscription goes `failing` (what the alert watches); after a
/// rotation the replay carries both secrets' signatures and a good answer
/// makes the subscription `active` again.
async fn a_dead_target_fails_the_subscription_and_rotation_keeps_both_secrets(db_url: String) {
    let mut h = harness(db_url.clone(), &[50, 50]).await;
    let target = Target::start().await;
    let (sid, old) = subscribe(&h, &target, &["shipment.completed"]).await;
    target.state().down = true;
    let (number, _) = ship_an_order(&mut h, "1Z-DEAD").await;
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    // An alert policy on exhausted retries (its channel goes nowhere: the
    // alert itself is what is looked at).
    let channel = webhook_channel(&h, "http://127.0.0.1:9/alerts", "json").await;
    ok(
        &h,
        "POST",
        "/api/v1/alert-policies",
        Some(
            json!({"name": "Exhausted", "events": ["retries.exhausted"], "channel_ids": [channel]}),
        ),
        201,
    )
    .await;
    let d = wait_delivery(&h, &sid, "shipment.completed", "failed").await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 3, "{d}");
    let subject = format!("{}/{sid}", h.merchant_id);
    let with_subject = |list: Vec<Value>| {
        list.into_iter().find(|a| {
            a["event"] == "retries.exhausted"
                && a["subject_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i == subject.as_str()))
        })
    };
    let alert = until("the retries.exhausted alert", || async {
        with_subject(alerts(&h, "open").await)
    })
    .await;
    assert!(
        d["last_error"].as_str().is_some_and(|e| e.contains("503")),
        "{d}"
    );
    let sub = h
        .api("GET", &format!("{}/{sid}", subs_path(&h)), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(sub["status"], "failing", "{sub}");
    assert!(sub["failing_since"].is_string(), "{sub}");
    let db = h.db().await.unwrap();
    let failing = shipsync_db::event_subscriptions::failing(db.pool())
        .await
        .unwrap();
    assert_eq!(
        failing.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [sid.as_str()]
    );
    db.close().await;
    assert!(target.accepted().is_empty());

    // Rotation: a new secret, the old one still valid for the grace.
    let rotated = h
        .api(
            "POST",
            &format!("{}/{sid}/rotate-secret", subs_path(&h)),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(rotated["previous_secret_until"].is_string(), "{rotated}");
    {
        let mut t = target.state();
        t.secrets = vec![new.clone(), old.clone()];
        t.down = false;
    }
    let did = d["id"].as_str().unwrap();
    h.api(
        "POST",
        &format!("{}/{sid}/deliveries/{did}/replay", subs_path(&h)),
        None,
    )
    .await
    .unwrap()
    .ok(202)
    .unwrap();
    wait_delivery(&h, &sid, "shipment.completed", "delivered").await;
    let got = target.accepted();
    assert_eq!(got.len(), 1);
    // Both secrets verify it, each on its own; two signatures in the header.
    assert_eq!(got[0].verified_with, [0, 1], "{got:?}");
    assert_eq!(got[0].signature.split(' ').count(), 2, "{got:?}");
    let sub = h
        .api("GET", &format!("{}/{sid}", subs_path(&h)), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(sub["status"], "active", "{sub}");
    assert!(sub["failing_since"].is_null(), "{sub}");
    // Delivering again clears the condition: the alert closes by itself.
    let closed = until("the alert closed", || async {
        with_subject(alerts(&h, "closed").await)
    })
    .await;
    assert_eq!(closed["id"], alert["id"], "{closed}");
    h.shutdown().await;
}

/// Orders: `order.sent` when Deposco has it, `order.cancelled` when the
/// store cancels it; nothing for types the subscription does not name.
async fn order_events_sent_and_cancelled(db_url: String) {
    let h = harness(db_url, &[100]).await;
    let target = Target::start().await;
    let (sid, _) = subscribe(&h, &target, &["order.sent", "order.cancelled"]).await;
    enable_sales_orders(&h, "SS-").await;
    h.shopify
        .sandbox
        .create_order(paid_order("#8001", &[("A", 2), ("B", 1)]));
    run_orders(&h).await;
    let o = wait_order(&h, "#8001", "open").await;
    wait_delivery(&h, &sid, "order.sent", "delivered").await;
    h.shopify.sandbox.cancel_order("#8001", "CUSTOMER").unwrap();
    run_orders(&h).await;
    wait_order(&h, "#8001", "cancelled").await;
    wait_delivery(&h, &sid, "order.cancelled", "delivered").await;

    let got = target.accepted();
    let types: Vec<&Value> = got.iter().map(|s| &s.body["type"]).collect();
    assert_eq!(
        types,
        [&json!("order.sent"), &json!("order.cancelled")],
        "{got:?}"
    );
    let sent = &got[0].body["data"];
    assert_eq!(sent["order_id"], o["id"]);
    assert_eq!(sent["store_order"]["name"], "#8001");
    assert_eq!(sent["warehouse_order_number"], "SS-8001");
    assert_eq!(sent["merchant_id"], h.merchant_id.as_str());
    assert_eq!(
        sent["lines"],
        json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}])
    );
    let cancelled = &got[1].body["data"];
    assert_eq!(cancelled["order_id"], o["id"]);
    assert!(
        cancelled["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{cancelled}"
    );
    assert!(got.iter().all(|s| s.verified_with == [0]));
    h.shutdown().await;
}

/// `shipment.error`, then `shipment.completed` for the same shipment after
/// the fix, arrive in that order, though the first needed a retry.
async fn events_of_one_shipment_arrive_in_order(db_url: String) {
    let mut h = harness(db_url, &[1500, 100, 100]).await;
    let target = Target::start().await;
    let (sid, _) = subscribe(&h, &target, &["shipment.completed", "shipment.error"]).await;
    target.state().fail_next = 1;
    let (name, _) = h.place_order(&[("MUG", 1)]);
    let spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .line(LineSpec::new(1, "100999", 1))
        .package(PackageSpec::new("C1", "T-ORDER").line(1, 1));
    let (number, _) = h.ship(spec, Shape::Current).await.unwrap();
    let s = h.wait_shipment(&number, &["error"], SETTLE).await.unwrap();
    let id = s["id"].as_str().unwrap().to_string();

    // The fix: an alias for the item, and a reprocess.
    h.api(
        "PATCH",
        &format!("/api/v1/merchants/{}/mappings", h.merchant_id),
        Some(json!({"sku_aliases": [{"store_sku": "MUG", "warehouse_item": "100999"}]})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    h.api("POST", &format!("/api/v1/shipments/{id}/reprocess"), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    wait_delivery(&h, &sid, "shipment.completed", "delivered").await;
    let got = target.accepted();
    let types: Vec<&Value> = got.iter().map(|s| &s.body["type"]).collect();
    assert_eq!(
        types,
        [&json!("shipment.error"), &json!("shipment.completed")],
        "{got:?}"
    );
    assert!(
        got.iter()
            .all(|s| s.body["data"]["shipment_id"] == id.as_str())
    );
    assert!(
        got[0].body["data"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    // Every request the target saw came in that order too.
    let seen: Vec<String> = target
        .requests()
        .iter()
        .map(|r| r.body["type"].to_string())
        .collect();
    let first_completed = seen.iter().position(|t| t.contains("completed")).unwrap();
    assert!(
        seen[..first_completed].iter().all(|t| t.contains("error")),
        "{seen:?}"
    );
    assert_eq!(seen[..first_completed].len(), 2, "{seen:?}");
    h.shutdown().await;
}

/// The server stops while a delivery waits to be retried (its target
/// down); started again, it delivers it: the outbox is in the database.
async fn a_restart_mid_delivery_loses_nothing(db_url: String) {
    let mut h = harness(db_url, &[3000, 3000, 3000, 3000, 3000, 3000]).await;
    let target = Target::start().await;
    let (sid, _) = subscribe(&h, &target, &["shipment.completed"]).await;
    target.state().down = true;
    let (number, _) = ship_an_order(&mut h, "1Z-RESTART").await;
    // (Not `wait_shipment`: it waits for an empty job queue, and the
    // delivery's job stays queued for its retries.)
    wait_for("a first attempt", || async {
        deliveries(&h, &sid)
            .await
            .into_iter()
            .find(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    h.stop_server().await;
    target.state().down = false;
    h.restart_server().await.unwrap();
    let d = wait_delivery(&h, &sid, "shipment.completed", "delivered").await;
    let got = target.accepted();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].id, d["event_id"]);
    assert_eq!(got[0].body["data"]["shipment_number"], number.as_str());
    h.shutdown().await;
}

/// Bad input answers 422 naming the field (400 for a body that is not
/// JSON); a Merchant user manages its own merchant's subscriptions and
/// sees no other's.
async fn bad_input_and_rights(db_url: String) {
    let h = harness(db_url, &[100]).await;
    let target = Target::start().await;
    let path = subs_path(&h);
    let cases = [
        (json!({"events": ["shipment.completed"]}), "url"),
        (
            json!({"url": "ftp://example.com/x", "events": ["shipment.completed"]}),
            "url",
        ),
        (
            json!({"url": "not a url", "events": ["shipment.completed"]}),
            "url",
        ),
        (
            json!({"url": target.url, "events": ["shipment.shipped"]}),
            "events",
        ),
        (json!({"url": target.url, "events": []}), "events"),
        (
            json!({"url": target.url, "events": "shipment.completed"}),
            "events",
        ),
        (
            json!({"url": target.url, "events": ["order.sent"], "secret": "whsec_x"}),
            "secret",
        ),
        (
            json!({"url": target.url, "events": ["order.sent"], "enabled": "yes"}),
            "enabled",
        ),
    ];
    for (body, field) in cases {
        let r = h.api("POST", &path, Some(body.clone())).await.unwrap();
        assert_eq!(r.status, 422, "{body}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "invalid_field", "{body}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{body}: {}",
            r.body
        );
    }
    let r = h
        .http
        .post(format!("{}{path}", h.url()))
        .bearer_auth(&h.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (sid, _) = subscribe(&h, &target, &["order.sent"]).await;
    let r = h
        .api(
            "PATCH",
            &format!("{path}/{sid}"),
            Some(json!({"events": ["nope"]})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{:?}", r.body);
    let patched = h
        .api(
            "PATCH",
            &format!("{path}/{sid}"),
            Some(json!({"events": ["order.error", "order.sent"], "enabled": false})),
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(patched["events"], json!(["order.error", "order.sent"]));
    assert_eq!(patched["enabled"], false);

    // Rights: a Merchant user of another merchant sees nothing of these.
    let (other, _) = other_tenant(&h).await;
    let mine = user_with_token(&h, "me@example.com", "merchant", Some(&h.merchant_id)).await;
    let theirs = user_with_token(&h, "them@example.com", "merchant", Some(&other)).await;
    let call = |token: String, method: &'static str, p: String, body: Option<Value>| {
        let h = &h;
        async move {
            let mut req = h
                .http
                .request(method.parse().unwrap(), format!("{}{p}", h.url()))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let new = json!({"url": target.url, "events": ["shipment.error"]});
    for (method, p, body) in [
        ("GET", path.clone(), None),
        ("POST", path.clone(), Some(new.clone())),
        ("GET", format!("{path}/{sid}"), None),
        (
            "PATCH",
            format!("{path}/{sid}"),
            Some(json!({"enabled": true})),
        ),
        ("POST", format!("{path}/{sid}/rotate-secret"), None),
        ("GET", format!("{path}/{sid}/deliveries"), None),
        ("DELETE", format!("{path}/{sid}"), None),
    ] {
        let (status, answer) = call(theirs.clone(), method, p.clone(), body).await;
        assert_eq!(status, 404, "{method} {p}: {answer}");
    }
    let (status, created) = call(mine.clone(), "POST", path.clone(), Some(new)).await;
    assert_eq!(status, 201, "{created}");
    let (status, list) = call(mine.clone(), "GET", path.clone(), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let (status, _) = call(mine.clone(), "DELETE", format!("{path}/{sid}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(mine, "GET", format!("{path}/{sid}"), None).await;
    assert_eq!(status, 404);
    h.shutdown().await;
}

/// The merchant's Event subscriptions pages, for a Merchant user: subscribe
/// (the secret shown once), the delivery with its attempts, Replay, a bad
/// URL shown at its field with nothing saved, another merchant's refused,
/// and a post without the CSRF token refused.
async fn ui_event_subscriptions(db_url: String) {
    let mut h = harness(db_url, &[100]).await;
    let target = Target::start().await;
    let (other, _) = other_tenant(&h).await;
    let me =
        json!({"email": "brand@example.com", "role": "merchant", "merchant_id": h.merchant_id});
    let (mut b, csrf) = browser_for(&h, me).await;
    let base = format!("/merchants/{}/event-subscriptions", h.merchant_id);
    let (st, merchant) = b.get(&format!("/merchants/{}", h.merchant_id)).await;
    assert_eq!(st, 200);
    assert!(
        merchant.contains(&format!("href=\"{base}\"")),
        "linked from the merchant"
    );
    let (st, page) = b.get(&base).await;
    assert_eq!(st, 200);
    assert!(page.contains("No subscription yet"), "{page}");
    // The page tells what is sent and when it is tried again.
    for told in [
        "shipment.completed",
        "order.cancelled",
        "webhook-id",
        "12 h (±20 %)",
    ] {
        assert!(page.contains(told), "the catalogue names {told}: {page}");
    }

    // A refused URL: 422 with the form as typed, nothing saved.
    let (st, page) = b
        .post(
            &base,
            &[
                ("csrf", &csrf),
                ("url", "ftp://example.com/x"),
                ("events", "shipment.completed"),
            ],
        )
        .await;
    assert_eq!(st, 422, "{page}");
    assert!(page.contains("must be https"), "{page}");
    assert!(page.contains("ftp://example.com/x"));

    let (st, page) = b
        .post(
            &base,
            &[
                ("csrf", &csrf),
                ("url", &target.url),
                ("events", "shipment.completed"),
                ("events", "order.sent"),
                ("enabled", "1"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("data-copy=\"secret\""), "{page}");
    let at = page.find("whsec_").expect("the secret on the page");
    let secret: String = page[at..].chars().take_while(|c| *c != '"').collect();
    target.state().secrets.push(secret.clone());
    let subs = h
        .api("GET", &subs_path(&h), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let sid = subs["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        subs["items"][0]["events"],
        json!(["shipment.completed", "order.sent"])
    );

    ship_an_order(&mut h, "1Z-UI").await;
    wait_delivery(&h, &sid, "shipment.completed", "delivered").await;
    let (st, page) = b.get(&format!("{base}/{sid}")).await;
    assert_eq!(st, 200);
    assert!(!page.contains(&secret), "the secret is shown once only");
    assert!(
        page.contains("shipment.completed") && page.contains("HTTP 200"),
        "{page}"
    );
    let replay = page
        .split("action=\"")
        .filter_map(|p| p.split('"').next())
        .find(|a| a.ends_with("/replay"))
        .expect("a Replay button")
        .to_string();
    let (st, to) = b.post(&replay, &[("csrf", &csrf)]).await;
    assert_eq!(st, 303, "{to}");
    wait_for("the replay reached the target", || async {
        (target.requests().len() == 2).then_some(())
    })
    .await;

    // Settings: switched off.
    let (st, to) = b
        .post(
            &format!("{base}/{sid}"),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("url", &target.url),
                ("events", "order.error"),
            ],
        )
        .await;
    assert_eq!(st, 303, "{to}");
    let sub = h
        .api("GET", &format!("{}/{sid}", subs_path(&h)), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(sub["enabled"], false);
    assert_eq!(sub["events"], json!(["order.error"]));

    // Another merchant's page, and a post without the CSRF token.
    let (st, _) = b
        .get(&format!("/merchants/{other}/event-subscriptions"))
        .await;
    assert_eq!(st, 404);
    let (st, _) = b
        .post(&format!("{base}/{sid}"), &[("action", "delete")])
        .await;
    assert_eq!(st, 403);
    h.api("GET", &format!("{}/{sid}", subs_path(&h)), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    h.shutdown().await;
}

/// The daily retention removes settled deliveries past
/// `SHIPSYNC_RETAIN_ACTIVITY_DAYS` (with their attempts, and events no
/// delivery needs any more); a pending one stays, whatever its age.
async fn retention_keeps_what_is_pending(db_url: String) {
    let mut h = harness(db_url, &[60_000]).await;
    let live = Target::start().await;
    let dead = Target::start().await;
    dead.state().down = true;
    let (delivered_sid, _) = subscribe(&h, &live, &["shipment.completed"]).await;
    let (pending_sid, _) = subscribe(&h, &dead, &["shipment.completed"]).await;
    ship_an_order(&mut h, "1Z-OLD").await;
    wait_delivery(&h, &delivered_sid, "shipment.completed", "delivered").await;
    wait_for("a failed first attempt", || async {
        deliveries(&h, &pending_sid)
            .await
            .into_iter()
            .find(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let db = h.db().await.unwrap();
    let year = 400 * 24 * 3600 * 1_000_000_i64;
    for table in ["event_deliveries", "outbound_events"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET created_at = created_at - $1"
        )))
        .bind(year)
        .execute(db.pool())
        .await
        .unwrap();
    }
    let counts = h
        .engine()
        .unwrap()
        .apply_retention(shipsync_db::now_micros())
        .await
        .unwrap();
    assert_eq!(counts.event_deliveries, 1, "{counts:?}");
    assert!(deliveries(&h, &delivered_sid).await.is_empty());
    let pending = deliveries(&h, &pending_sid).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["state"], "pending");
    assert!(
        pending[0]["event"]["type"] == "shipment.completed",
        "its event stays"
    );
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM event_delivery_attempts")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(n.0, 1, "only the pending delivery's attempt stays");
    db.close().await;
    h.shutdown().await;
}

both_backends!(
    a_completed_shipment_is_delivered_signed_retried_and_replayed,
    a_dead_target_fails_the_subscription_and_rotation_keeps_both_secrets,
    order_events_sent_and_cancelled,
    events_of_one_shipment_arrive_in_order,
    a_restart_mid_delivery_loses_nothing,
    bad_input_and_rights,
    ui_event_subscriptions,
    retention_keeps_what_is_pending,
);

/// No secret of a subscription (the first, the rotated one, their keys) is
/// in any log line of a delivery's whole path; the lines name the event.
async fn secrets_stay_out_of_the_logs(db_url: String, logs: crate::logs::Captured) {
    let mut h = harness(db_url, &[100]).await;
    let target = Target::start().await;
    let (sid, first) = subscribe(&h, &target, &["shipment.completed"]).await;
    let rotated = h
        .api(
            "POST",
            &format!("{}/{sid}/rotate-secret", subs_path(&h)),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let second = rotated["secret"].as_str().unwrap().to_string();
    target.state().secrets.push(second.clone());
    ship_an_order(&mut h, "1Z-LOGS").await;
    let d = wait_delivery(&h, &sid, "shipment.completed", "delivered").await;
    h.shutdown().await;
    let lines = logs.lines();
    let text = serde_json::to_string(&lines).unwrap();
    assert!(
        text.contains(d["event_id"].as_str().unwrap()),
        "the delivery is logged: {} lines",
        lines.len()
    );
    for secret in [&first, &second] {
        let key = secret.trim_start_matches("whsec_");
        assert!(!text.contains(key), "a subscription secret is in the logs");
    }
}

fn logged(db_url: String) {
    let logs = crate::logs::Captured::default();
    let dispatch = shipsync::logging::dispatch(
        shipsync::config::LogFormat::Json,
        Some("debug,sqlx=warn,hyper=warn,reqwest=warn"),
        logs.clone(),
    );
    crate::logs::with_logs(&dispatch, secrets_stay_out_of_the_logs(db_url, logs));
}

#[test]
fn secrets_stay_out_of_the_logs_sqlite() {
    let db = shipsync_testkit::TestDb::sqlite().expect("test database");
    logged(db.url.clone());
}

#[test]
fn secrets_stay_out_of_the_logs_postgres() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = runtime
        .block_on(shipsync_testkit::TestDb::postgres())
        .expect("test database")
    else {
        return;
    };
    logged(db.url.clone());
}
