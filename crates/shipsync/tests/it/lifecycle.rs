//! The order lifecycle (issue 14) through both sandboxes: Shopify order
//! webhooks (signed, durable, repeats and late deliveries), import rules,
//! holds, cancellations and edits before and after Deposco has the order,
//! and what happens when Deposco is too late to follow.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shipsync_sandbox_deposco::Shape;
use shipsync_sandbox_shopify::{FoSpec, LineEdit, WebhookFaults};
use shipsync_testkit::{Harness, Options};

use crate::orders::{enable_sales_orders, find_order, paid_order, run_orders, wait_order};
use crate::support::SETTLE;

/// A harness whose store delivers order webhooks to shipsync, with the
/// Sales Orders channel on and subscribed.
async fn with_webhooks(db_url: String, rules: Option<Value>) -> Harness {
    let mut opts = Options::new(db_url);
    opts.order_webhooks = true;
    let h = Harness::start(opts).await.expect("harness");
    if let Some(rules) = rules {
        h.api(
            "PATCH",
            &format!("/api/v1/connections/{}", h.connection_id),
            Some(json!({"order_rules": rules})),
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    }
    enable_sales_orders(&h, "SS-").await;
    wait_subscribed(&h).await;
    h
}

/// Waits until the connection shows its order webhooks subscribed.
async fn wait_subscribed(h: &Harness) -> Value {
    let start = Instant::now();
    loop {
        let c = h
            .api(
                "GET",
                &format!("/api/v1/connections/{}", h.connection_id),
                None,
            )
            .await
            .unwrap()
            .ok(200)
            .unwrap();
        if c["order_webhooks"]["subscribed"] == true {
            return c;
        }
        assert!(start.elapsed() < SETTLE, "never subscribed: {c}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (polling the API) until order `name` exists and `done` holds.
async fn wait_for(h: &Harness, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        match find_order(h, name).await {
            Some(o) if done(&o) => return o,
            Some(o) => assert!(start.elapsed() < SETTLE, "order {name}: {what}: {o}"),
            None => assert!(start.elapsed() < SETTLE, "order {name} never came: {what}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn wait_status(h: &Harness, name: &str, status: &str) -> Value {
    wait_for(h, name, &format!("never {status}"), |o| {
        o["status"] == status
    })
    .await
}

fn activity_text(o: &Value) -> String {
    o["activity"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| format!("{}: {}", x["kind"], x["message"]))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

async fn webhook_brings_the_order_and_cancellations_follow(db_url: String) {
    let h = with_webhooks(db_url, None).await;
    let subs = h.shopify.sandbox.webhook_subscriptions();
    let topics: Vec<&str> = subs.iter().map(|s| s.topic.as_str()).collect();
    for t in [
        "ORDERS_CREATE",
        "ORDERS_UPDATED",
        "ORDERS_CANCELLED",
        "ORDERS_EDITED",
    ] {
        assert!(topics.contains(&t), "{topics:?}");
    }

    // Created in the store: in Deposco through the webhook, no pull run.
    h.shopify
        .sandbox
        .create_order(paid_order("#5001", &[("A", 2), ("B", 1)]));
    let o = wait_status(&h, "#5001", "open").await;
    assert_eq!(o["first_seen_via"], "webhook", "{o}");
    assert!(h.deposco.sandbox.sales_order("SS-5001").is_some());

    // Cancelled after it was sent, while Deposco still allows it.
    h.shopify.sandbox.cancel_order("#5001", "CUSTOMER").unwrap();
    let o = wait_status(&h, "#5001", "cancelled").await;
    let so = h.deposco.sandbox.sales_order("SS-5001").unwrap();
    assert_eq!(so.status, "Canceled", "{so:?}");
    assert!(activity_text(&o).contains("Deposco"), "{o}");

    // Held by a tag, cancelled while held: never sent.
    let mut tagged = paid_order("#5002", &[("A", 1)]);
    tagged.tags = vec!["HOLD".into()];
    h.shopify.sandbox.create_order(tagged);
    let o = wait_status(&h, "#5002", "held").await;
    assert!(
        o["hold_reason"].as_str().unwrap_or("").contains("HOLD"),
        "{o}"
    );
    h.shopify.sandbox.cancel_order("#5002", "CUSTOMER").unwrap();
    wait_status(&h, "#5002", "cancelled").await;
    assert!(h.deposco.sandbox.sales_order("SS-5002").is_none());

    // Cancelled after Deposco released it: too late, a person acts; the
    // shipment that then arrives is an error saying so.
    h.shopify
        .sandbox
        .create_order(paid_order("#5003", &[("C", 1)]));
    wait_status(&h, "#5003", "open").await;
    h.deposco
        .sandbox
        .set_sales_order_status("SS-5003", "Released")
        .unwrap();
    h.shopify.sandbox.cancel_order("#5003", "CUSTOMER").unwrap();
    let o = wait_status(&h, "#5003", "needs_attention").await;
    assert!(
        o["error"].as_str().unwrap_or("").contains("Released"),
        "{o}"
    );
    let spec = h
        .deposco
        .sandbox
        .ship_order_spec("SS-5003", "T-5003")
        .expect("ship spec");
    let (number, _) = h.ship(spec, Shape::Current).await.unwrap();
    let s = h.wait_shipment(&number, &["error"], SETTLE).await.unwrap();
    assert!(
        s["error"].as_str().unwrap_or("").contains("cancelled"),
        "{s}"
    );
    h.shutdown().await;
}

async fn edits_follow_while_deposco_allows_them(db_url: String) {
    let h = with_webhooks(db_url, None).await;
    // Sent, then edited while still New in Deposco: raised, removed, added.
    h.shopify
        .sandbox
        .create_order(paid_order("#5101", &[("A", 2), ("B", 1)]));
    wait_status(&h, "#5101", "open").await;
    h.shopify
        .sandbox
        .edit_order(
            "#5101",
            &[
                LineEdit::SetQuantity {
                    line: "A".into(),
                    quantity: 3,
                },
                LineEdit::SetQuantity {
                    line: "B".into(),
                    quantity: 0,
                },
                LineEdit::Add {
                    sku: "D".into(),
                    quantity: 4,
                    requires_shipping: None,
                },
            ],
        )
        .unwrap();
    let o = wait_for(&h, "#5101", "edit applied", |o| {
        activity_text(o).contains("Deposco updated")
    })
    .await;
    assert_eq!(o["status"], "open", "{o}");
    let so = h.deposco.sandbox.sales_order("SS-5101").unwrap();
    let open = |sku: &str| -> f64 {
        so.lines
            .iter()
            .filter(|l| l.sku == sku)
            .map(|l| l.quantity - l.canceled_quantity)
            .sum()
    };
    assert_eq!((open("A"), open("B"), open("D")), (3.0, 0.0, 4.0), "{so:?}");

    // Edited after Deposco released it: needs attention naming the change.
    h.shopify
        .sandbox
        .create_order(paid_order("#5102", &[("A", 1)]));
    wait_status(&h, "#5102", "open").await;
    h.deposco
        .sandbox
        .set_sales_order_status("SS-5102", "Released")
        .unwrap();
    h.shopify
        .sandbox
        .edit_order(
            "#5102",
            &[LineEdit::SetQuantity {
                line: "A".into(),
                quantity: 2,
            }],
        )
        .unwrap();
    let o = wait_status(&h, "#5102", "needs_attention").await;
    assert!(o["error"].as_str().unwrap_or("").contains("A 1 → 2"), "{o}");
    h.shutdown().await;
}

async fn a_removed_line_shipped_anyway_does_not_stop_the_rest(db_url: String) {
    let h = with_webhooks(db_url, None).await;
    let placed = h
        .shopify
        .sandbox
        .create_order(paid_order("#5201", &[("A", 1), ("B", 2)]));
    wait_status(&h, "#5201", "open").await;
    h.deposco
        .sandbox
        .set_sales_order_status("SS-5201", "Released")
        .unwrap();
    h.shopify
        .sandbox
        .edit_order(
            "#5201",
            &[LineEdit::SetQuantity {
                line: "B".into(),
                quantity: 0,
            }],
        )
        .unwrap();
    wait_status(&h, "#5201", "needs_attention").await;
    // Deposco ships what it had: A×1 and the removed B×2.
    let spec = h
        .deposco
        .sandbox
        .ship_order_spec("SS-5201", "T-5201")
        .expect("ship spec");
    assert!(spec.lines.iter().any(|l| l.sku == "B"), "{spec:?}");
    let (number, _) = h.ship(spec, Shape::Current).await.unwrap();
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let view = h.shopify.sandbox.order("#5201").unwrap();
    let fulfilled: u32 = view
        .lines
        .iter()
        .filter(|l| l.id == placed.line_item_ids[0])
        .map(|l| l.fulfilled_quantity)
        .sum();
    assert_eq!(fulfilled, 1, "{view:?}");
    assert!(
        s["activity"].to_string().contains("removed"),
        "the removed units are in the shipment's activity: {s}"
    );
    h.shutdown().await;
}

async fn import_rules_decide_what_goes(db_url: String) {
    let rules = json!({"financial_statuses": ["PAID", "AUTHORIZED"], "include_partially_fulfilled": true,
                       "location_ids": ["gid://shopify/Location/1"]});
    let h = with_webhooks(db_url, Some(rules)).await;
    // Authorized: imported by the rule.
    let mut authorized = paid_order("#5301", &[("A", 1)]);
    authorized.financial_status = Some("AUTHORIZED".into());
    h.shopify.sandbox.create_order(authorized);
    wait_status(&h, "#5301", "open").await;

    // Pending: not imported; paid later: imported then.
    let mut pending = paid_order("#5302", &[("A", 1)]);
    pending.financial_status = Some("PENDING".into());
    h.shopify.sandbox.create_order(pending);
    h.shopify
        .sandbox
        .set_financial_status("#5302", "PAID")
        .unwrap();
    wait_status(&h, "#5302", "open").await;

    // A gift card is skipped, never an error; a line at another location
    // is not sent.
    let mut mixed = paid_order("#5303", &[("A", 2), ("GIFT", 1), ("B", 1)]);
    mixed.lines[1].requires_shipping = Some(false);
    mixed.fulfillment_orders = vec![
        FoSpec {
            location_id: "gid://shopify/Location/1".into(),
            lines: vec![0, 1],
            status: None,
        },
        FoSpec {
            location_id: "gid://shopify/Location/2".into(),
            lines: vec![2],
            status: None,
        },
    ];
    h.shopify.sandbox.create_order(mixed);
    let o = wait_status(&h, "#5303", "open").await;
    let skipped: Vec<(String, Value)> = o["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap_or("").to_string(),
                l["skipped"].clone(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("A".to_string(), Value::Null),
            ("GIFT".to_string(), json!("does_not_require_shipping")),
            ("B".to_string(), json!("other_location")),
        ],
        "{o}"
    );
    let so = h.deposco.sandbox.sales_order("SS-5303").unwrap();
    let skus: Vec<&str> = so.lines.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, vec!["A"], "{so:?}");
    h.shutdown().await;
}

async fn a_hold_period_applies_changes_locally(db_url: String) {
    let h = with_webhooks(db_url, Some(json!({"hold_minutes": 30}))).await;
    h.shopify
        .sandbox
        .create_order(paid_order("#5401", &[("A", 2)]));
    let o = wait_status(&h, "#5401", "held").await;
    assert!(o["hold_until"].is_string(), "{o}");
    // Edited during the hold: the order waits with the new quantities.
    h.shopify
        .sandbox
        .edit_order(
            "#5401",
            &[LineEdit::SetQuantity {
                line: "A".into(),
                quantity: 1,
            }],
        )
        .unwrap();
    wait_for(&h, "#5401", "edit applied locally", |o| {
        o["lines"][0]["quantity"] == 1
    })
    .await;
    // Cancelled during the hold: never sent.
    h.shopify.sandbox.cancel_order("#5401", "CUSTOMER").unwrap();
    wait_status(&h, "#5401", "cancelled").await;
    assert!(h.deposco.sandbox.sales_orders().is_empty());

    // A hold period that ends: its push job, due then, releases the order
    // with what the store last said. (Time is moved, not waited for: the
    // order is made to have been seen 31 minutes ago, its job due now.)
    h.shopify
        .sandbox
        .create_order(paid_order("#5402", &[("A", 3)]));
    let o = wait_status(&h, "#5402", "held").await;
    let id = o["id"].as_str().unwrap().to_string();
    let pool = h.db().await.unwrap().pool().clone();
    let earlier = 31 * 60 * 1_000_000_i64;
    sqlx::query("UPDATE orders SET created_at = created_at - $1, hold_until = hold_until - $1 WHERE id = $2")
        .bind(earlier)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    h.engine().unwrap().enqueue_push(&id).await.unwrap();
    let o = wait_status(&h, "#5402", "open").await;
    assert!(activity_text(&o).contains("hold period over"), "{o}");
    let so = h.deposco.sandbox.sales_order("SS-5402").unwrap();
    assert_eq!(so.lines[0].quantity, 3.0, "{so:?}");
    h.shutdown().await;
}

async fn lost_duplicate_and_late_webhooks(db_url: String) {
    let h = with_webhooks(db_url, None).await;
    // Lost: the pull finds it, counted as found by the fallback.
    h.shopify.sandbox.set_webhook_faults(WebhookFaults {
        drop_next: 1,
        ..Default::default()
    });
    h.shopify
        .sandbox
        .create_order(paid_order("#5501", &[("A", 1)]));
    let run = run_orders(&h).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let o = wait_status(&h, "#5501", "open").await;
    assert_eq!(o["first_seen_via"], "poll", "{o}");
    let found = h
        .api(
            "GET",
            &format!(
                "/api/v1/orders?connection_id={}&first_seen_via=poll",
                h.connection_id
            ),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let names: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["#5501"],
        "only what the pull found first: {found}"
    );

    // Twice: one order, one Deposco order; the repeat answered as such.
    h.shopify.sandbox.set_webhook_faults(WebhookFaults {
        duplicate_next: 1,
        ..Default::default()
    });
    h.shopify
        .sandbox
        .create_order(paid_order("#5502", &[("A", 1)]));
    wait_status(&h, "#5502", "open").await;
    let so = h.deposco.sandbox.sales_order("SS-5502").unwrap();
    assert_eq!(so.times_posted, 1, "{so:?}");

    // Out of order: the create and the cancellation delivered newest first;
    // the order ends cancelled (its updatedAt decides), never sent.
    h.shopify.sandbox.set_webhook_faults(WebhookFaults {
        hold: true,
        ..Default::default()
    });
    h.shopify
        .sandbox
        .create_order(paid_order("#5503", &[("A", 1)]));
    h.shopify.sandbox.cancel_order("#5503", "CUSTOMER").unwrap();
    h.shopify
        .sandbox
        .set_webhook_faults(WebhookFaults::default());
    assert!(h.shopify.sandbox.release_held_webhooks() >= 2);
    let run = run_orders(&h).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let list = h
        .api(
            "GET",
            &format!("/api/v1/orders?connection_id={}&name=5503", h.connection_id),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    // Cancelled before shipsync saw it: not an order to send.
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "cancelled"),
        "{list}"
    );
    assert!(h.deposco.sandbox.sales_order("SS-5503").is_none());
    h.shutdown().await;
}

async fn bad_signatures_are_refused_and_recorded(db_url: String) {
    let h = with_webhooks(db_url, None).await;
    let url = format!("{}/webhooks/shopify/{}", h.url(), h.connection_id);
    let body = json!({"id": 1, "admin_graphql_api_id": "gid://shopify/Order/1", "name": "#1",
                      "updated_at": "2026-12-01T00:00:00Z"})
    .to_string();
    for hmac in [None, Some("bm90IHRoZSBzaWduYXR1cmU=")] {
        let mut req = h
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-shopify-topic", "orders/updated")
            .header("x-shopify-event-id", "evt-forged")
            .body(body.clone());
        if let Some(v) = hmac {
            req = req.header("x-shopify-hmac-sha256", v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let unknown = h
        .http
        .post(format!("{}/webhooks/shopify/con_nope", h.url()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let start = Instant::now();
    loop {
        let events = h
            .api("GET", "/api/v1/events?outcome=invalid_signature", None)
            .await
            .unwrap()
            .ok(200)
            .unwrap();
        if events["items"].as_array().is_some_and(|i| i.len() >= 2) {
            break;
        }
        assert!(start.elapsed() < SETTLE, "refusals not recorded: {events}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    h.shutdown().await;
}

async fn bundles_go_as_their_components(db_url: String) {
    let h = with_webhooks(db_url, None).await;
    let mut spec = paid_order("#5601", &[("TENT", 1), ("POLES", 2), ("SOCKS", 1)]);
    for l in &mut spec.lines[..2] {
        l.group = Some("Camping bundle".into());
    }
    h.shopify.sandbox.create_order(spec);
    let o = wait_status(&h, "#5601", "open").await;
    assert_eq!(o["lines"][0]["group"], "Camping bundle", "{o}");
    let so = h.deposco.sandbox.sales_order("SS-5601").unwrap();
    let skus: Vec<&str> = so.lines.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, vec!["TENT", "POLES", "SOCKS"], "{so:?}");
    let spec = h
        .deposco
        .sandbox
        .ship_order_spec("SS-5601", "T-5601")
        .expect("ship spec");
    let (number, _) = h.ship(spec, Shape::Current).await.unwrap();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let o = wait_order(&h, "#5601", "closed").await;
    assert!(
        o["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["fulfilled_quantity"] == l["quantity"]),
        "{o}"
    );
    h.shutdown().await;
}

/// Fulfills `quantity` units of fulfillment order `fo`'s line `fo_line`
/// in the store, as another app or the merchant would.
async fn fulfill_elsewhere(h: &Harness, fo: &str, fo_line: &str, quantity: u32) {
    let body: Value = h
        .http
        .post(h.shopify.graphql_url())
        .header("X-Shopify-Access-Token", shipsync::demo::world::SHOPIFY_TOKEN)
        .json(&json!({
            "query": "mutation F($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) { fulfillment { id } userErrors { field message } } }",
            "variables": {"f": {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo,
                "fulfillmentOrderLineItems": [{"id": fo_line, "quantity": quantity}]}]}},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body["data"]["fulfillmentCreate"]["fulfillment"]["id"].is_string(),
        "{body}"
    );
}

async fn a_partly_fulfilled_order_sends_the_rest(db_url: String) {
    let h = with_webhooks(db_url, Some(json!({"include_partially_fulfilled": true}))).await;
    // Waiting for payment (not imported) while another app ships one unit.
    let mut spec = paid_order("#5701", &[("A", 3), ("B", 1)]);
    spec.financial_status = Some("PENDING".into());
    let placed = h.shopify.sandbox.create_order(spec);
    fulfill_elsewhere(
        &h,
        &placed.fulfillment_order_ids[0],
        &placed.fulfillment_order_line_item_ids[0][0],
        1,
    )
    .await;
    h.shopify
        .sandbox
        .set_financial_status("#5701", "PAID")
        .unwrap();
    let o = wait_status(&h, "#5701", "open").await;
    let so = h.deposco.sandbox.sales_order("SS-5701").unwrap();
    let sent: Vec<(&str, f64)> = so
        .lines
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(sent, vec![("A", 2.0), ("B", 1.0)], "{so:?} {o}");
    assert_eq!(o["lines"][0]["sent_quantity"], 2, "{o}");
    h.shutdown().await;
}

both_backends!(
    a_partly_fulfilled_order_sends_the_rest,
    webhook_brings_the_order_and_cancellations_follow,
    edits_follow_while_deposco_allows_them,
    a_removed_line_shipped_anyway_does_not_stop_the_rest,
    import_rules_decide_what_goes,
    a_hold_period_applies_changes_locally,
    lost_duplicate_and_late_webhooks,
    bad_signatures_are_refused_and_recorded,
    bundles_go_as_their_components
);
