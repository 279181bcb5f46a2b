//! The Sales Orders channel: paid, unfulfilled store orders reach Deposco
//! once with the references shipments come back with; refusals wait in
//! `error` until a person fixes them and reprocesses; shipments move the
//! order to shipped.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{
    ItemSpec, LineSpec as DeposcoLine, PackageSpec, Shape, ShipmentSpec,
};
use shipsync_sandbox_shopify::{Address, LineSpec, OrderSpec};
use shipsync_testkit::{Harness, Options};

use crate::support::SETTLE;

/// Runs the sales orders channel now and waits for it and its work.
pub(crate) async fn run_orders(h: &Harness) -> Value {
    h.run_channel("sales_orders", SETTLE).await.unwrap()
}

pub(crate) async fn enable_sales_orders(h: &Harness, prefix: &str) {
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"order_prefix": prefix})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    h.api(
        "PATCH",
        &format!(
            "/api/v1/connections/{}/channels/sales_orders",
            h.connection_id
        ),
        Some(json!({"enabled": true})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
}

pub(crate) fn paid_order(name: &str, lines: &[(&str, u32)]) -> OrderSpec {
    OrderSpec {
        name: name.into(),
        lines: lines
            .iter()
            .map(|(sku, q)| LineSpec {
                sku: sku.to_string(),
                quantity: *q,
                ..Default::default()
            })
            .collect(),
        email: Some("jo@example.com".into()),
        shipping_address: Some(Address {
            first_name: Some("Jo".into()),
            last_name: Some("Doe".into()),
            address1: Some("1 Main St".into()),
            city: Some("Springfield".into()),
            province_code: Some("IL".into()),
            zip: Some("62701".into()),
            country_code: Some("US".into()),
            phone: Some("+1 555 0100".into()),
            ..Default::default()
        }),
        shipping_line: Some("Express".into()),
        ..Default::default()
    }
}

/// The order named `name` (the list's filter ignores a leading `#`), in full.
pub(crate) async fn order(h: &Harness, name: &str) -> Value {
    find_order(h, name).await.expect("the order exists")
}

/// The order named `name` in full, if shipsync has one (at most one).
pub(crate) async fn find_order(h: &Harness, name: &str) -> Option<Value> {
    let list = h
        .api(
            "GET",
            &format!(
                "/api/v1/orders?connection_id={}&name={}",
                h.connection_id,
                name.trim_start_matches('#')
            ),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert!(items.len() <= 1, "{list}");
    let id = items.first()?["id"].as_str()?.to_string();
    Some(
        h.api("GET", &format!("/api/v1/orders/{id}"), None)
            .await
            .unwrap()
            .ok(200)
            .unwrap(),
    )
}

pub(crate) async fn wait_order(h: &Harness, name: &str, status: &str) -> Value {
    let start = Instant::now();
    loop {
        h.settle(SETTLE).await.unwrap();
        let o = order(h, name).await;
        if o["status"] == status {
            return o;
        }
        assert!(
            start.elapsed() < SETTLE,
            "order {name} did not reach {status}: {o}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn sales_orders_reach_deposco_once(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    enable_sales_orders(&h, "SS-").await;
    let one = h.place_order_spec(paid_order("#1001", &[("A", 2), ("B", 1)]));
    let two = h.place_order_spec(paid_order("#1002", &[("C", 3)]));

    let run = run_orders(&h).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["fetched"], 2, "{run}");
    assert_eq!(run["counts"]["new"], 2, "{run}");

    let sent = h.deposco.sandbox.sales_orders();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let so = h.deposco.sandbox.sales_order("SS-1001").expect("SS-1001");
    assert_eq!(so.customer_order_number.as_deref(), Some("#1001"));
    assert_eq!(so.order_status.as_deref(), Some("New"));
    assert_eq!(so.times_posted, 1);
    let lines: Vec<(String, String, f64, Option<String>)> = so
        .lines
        .iter()
        .map(|l| {
            (
                l.line_number.clone(),
                l.sku.clone(),
                l.quantity,
                l.customer_line_number.clone(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "1".into(),
                "A".into(),
                2.0,
                Some(one.line_item_ids[0].clone())
            ),
            (
                "2".into(),
                "B".into(),
                1.0,
                Some(one.line_item_ids[1].clone())
            ),
        ]
    );
    assert_eq!(so.body["shipToContact"]["name"], "Jo Doe");
    assert_eq!(so.body["shipToContact"]["email"], "jo@example.com");
    assert_eq!(so.body["shipToAddress"]["addressLine1"], "1 Main St");
    assert_eq!(so.body["shipToAddress"]["postalCode"], "62701");
    assert_eq!(so.body["shipToAddress"]["country"], "US");
    assert_eq!(so.body["shipVia"], "Expedited");
    let so2 = h.deposco.sandbox.sales_order("SS-1002").expect("SS-1002");
    assert_eq!(so2.customer_order_number.as_deref(), Some("#1002"));
    assert_eq!(
        so2.lines[0].customer_line_number.as_deref(),
        Some(two.line_item_ids[0].as_str())
    );

    let o = order(&h, "#1001").await;
    assert_eq!(o["status"], "open", "{o}");
    assert_eq!(o["warehouse_order_number"], "SS-1001");
    assert_eq!(o["lines"][0]["quantity"], 2);
    assert_eq!(o["lines"][0]["shipped_quantity"], 0);
    let kinds: Vec<&str> = o["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert_eq!(kinds, vec!["imported", "sent"], "{o}");
    let all = h
        .api(
            "GET",
            &format!(
                "/api/v1/orders?connection_id={}&status=open",
                h.connection_id
            ),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");

    // A second run creates nothing new.
    let again = run_orders(&h).await;
    assert_eq!(again["counts"]["new"], 0, "{again}");
    assert_eq!(again["counts"]["unchanged"], 2, "{again}");
    assert_eq!(h.deposco.sandbox.sales_orders().len(), 2);
    assert!(
        h.deposco
            .sandbox
            .sales_orders()
            .iter()
            .all(|s| s.times_posted == 1)
    );

    // The push job again (a retry, a second node): nothing is sent.
    let id = o["id"].as_str().unwrap().to_string();
    let engine = h.engine().unwrap().clone();
    engine.enqueue_push(&id).await.unwrap();
    h.settle(SETTLE).await.unwrap();
    // A crash after Deposco created the order but before shipsync recorded
    // it: the order is still queued locally; the push finds it and adopts it.
    let db = h.db().await.unwrap();
    let mut rec = shipsync_db::orders::get(db.pool(), &id)
        .await
        .unwrap()
        .unwrap();
    rec.status = shipsync_core::states::OrderStatus::Queued;
    rec.warehouse_number = None;
    rec.warehouse_id = None;
    rec.sent_at = None;
    shipsync_db::orders::update(db.pool(), &rec).await.unwrap();

    engine.enqueue_push(&id).await.unwrap();
    let o = wait_order(&h, "#1001", "open").await;
    assert_eq!(o["warehouse_order_number"], "SS-1001");
    assert!(
        o["activity"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"].as_str().unwrap_or("").contains("adopted")),
        "{o}"
    );
    assert_eq!(h.deposco.sandbox.sales_orders().len(), 2);
    assert_eq!(
        h.deposco
            .sandbox
            .sales_order("SS-1001")
            .unwrap()
            .times_posted,
        1
    );

    // Deposco ships it: the shipment finds its order (the Deposco number
    // carries the prefix) and the order shows what shipped.
    let spec = h
        .deposco
        .sandbox
        .ship_order_spec("SS-1001", "1Z999AA10123456784")
        .expect("ship spec");
    let (number, status) = h.ship(spec, Shape::Current).await.unwrap();
    assert_eq!(status, 202);
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let o = wait_order(&h, "#1001", "shipped").await;
    for (i, want) in [2, 1].into_iter().enumerate() {
        assert_eq!(o["lines"][i]["shipped_quantity"], want, "{o}");
        assert_eq!(o["lines"][i]["fulfilled_quantity"], want, "{o}");
    }
    assert_eq!(o["shipments"].as_array().unwrap().len(), 1, "{o}");
    let store = h.shopify.sandbox.order("#1001").unwrap();
    assert_eq!(store.fulfillments.len(), 1);
    // The other order is still open.
    assert_eq!(order(&h, "#1002").await["status"], "open");
    h.shutdown().await;
}

async fn refused_order_waits_in_error_until_reprocessed(db_url: String) {
    let mut opts = Options::new(db_url);
    opts.deposco.items_must_exist = true;
    let mut h = Harness::start(opts).await.expect("harness");
    h.deposco.sandbox.add_item(ItemSpec::new("A"));
    enable_sales_orders(&h, "").await;
    h.place_order_spec(paid_order("#2001", &[("A", 1), ("NOPE", 2)]));

    let run = run_orders(&h).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let o = wait_order(&h, "#2001", "error").await;
    let error = o["error"].as_str().unwrap_or_default();
    assert!(error.contains("Item NOPE not found"), "{o}");
    assert!(h.deposco.sandbox.sales_orders().is_empty());
    let errors = h
        .api(
            "GET",
            &format!(
                "/api/v1/orders?connection_id={}&status=error",
                h.connection_id
            ),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(errors["items"].as_array().unwrap().len(), 1, "{errors}");

    // Not retried by itself, nor by the next run.
    let again = run_orders(&h).await;
    assert_eq!(again["counts"]["new"], 0, "{again}");
    assert_eq!(order(&h, "#2001").await["status"], "error");
    assert!(h.deposco.sandbox.sales_orders().is_empty());

    // Fixed in Deposco, reprocessed: sent.
    h.deposco.sandbox.add_item(ItemSpec::new("NOPE"));
    let id = o["id"].as_str().unwrap().to_string();
    let r = h
        .api("POST", &format!("/api/v1/orders/{id}/reprocess"), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert!(r["status"] == "queued" || r["status"] == "open", "{r}");
    let o = wait_order(&h, "#2001", "open").await;
    assert!(o["error"].is_null(), "{o}");
    assert_eq!(h.deposco.sandbox.sales_orders().len(), 1);
    assert_eq!(
        h.deposco.sandbox.sales_order("2001").unwrap().times_posted,
        1
    );

    // An open order cannot be reprocessed; any order can be archived.
    let r = h
        .api("POST", &format!("/api/v1/orders/{id}/reprocess"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{r:?}");
    let r = h
        .api("POST", &format!("/api/v1/orders/{id}/archive"), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(r["status"], "archived");
    // Unknown ids and statuses.
    let r = h.api("GET", "/api/v1/orders/ord_nope", None).await.unwrap();
    assert_eq!(r.status, 404);
    let r = h
        .api("GET", "/api/v1/orders?status=lost", None)
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    h.shutdown().await;
}

async fn too_long_number_is_refused_with_deposco_message(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    // 20 characters of prefix (the most a connection takes) before a long
    // store name: 55 characters, more than Deposco's 50.
    enable_sales_orders(&h, "SHIPSYNC-LONG-PREFIX").await;
    let name = format!("#{}", "3".repeat(35));
    h.place_order_spec(paid_order(&name, &[("A", 1)]));
    run_orders(&h).await;
    let o = wait_order(&h, &name, "error").await;
    assert!(
        o["error"]
            .as_str()
            .unwrap_or_default()
            .contains("number exceeds the maximum length"),
        "{o}"
    );
    assert!(h.deposco.sandbox.sales_orders().is_empty());
    h.shutdown().await;
}

async fn kits_and_partial_shipments_show_on_the_order(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.deposco.sandbox.add_item(
        ItemSpec::new("KIT-1")
            .component("COMP-A", 1)
            .component("COMP-B", 2),
    );
    enable_sales_orders(&h, "").await;
    let placed = h.place_order_spec(paid_order("#4001", &[("B", 2), ("KIT-1", 1)]));
    run_orders(&h).await;
    wait_order(&h, "#4001", "open").await;

    // One of the two B first: partially shipped.
    let (number, _) = h
        .ship(
            ShipmentSpec::new("4001")
                .line(
                    DeposcoLine::new(1, "B", 2)
                        .shipped(1)
                        .customer_line(&placed.line_item_ids[0]),
                )
                .package(PackageSpec::new("C1", "T1").line(1, 1)),
            Shape::Current,
        )
        .await
        .unwrap();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let o = wait_order(&h, "#4001", "partially_shipped").await;
    assert_eq!(o["lines"][0]["shipped_quantity"], 1, "{o}");
    assert_eq!(o["lines"][0]["fulfilled_quantity"], 1, "{o}");
    assert_eq!(o["lines"][1]["shipped_quantity"], 0, "{o}");

    // The rest, the kit as its components: shipped.
    let mut rest = h
        .deposco
        .sandbox
        .ship_order_spec("4001", "T2")
        .expect("ship spec");
    rest.lines.retain(|l| l.sku != "B");
    rest.lines.push(
        DeposcoLine::new(1, "B", 2)
            .shipped(1)
            .customer_line(&placed.line_item_ids[0]),
    );
    for p in &mut rest.packages {
        p.lines.retain(|(n, _)| *n != 1);
        p.lines.push((1, 1));
    }
    let (number, _) = h.ship(rest, Shape::Xml).await.unwrap();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let o = wait_order(&h, "#4001", "shipped").await;
    assert_eq!(o["lines"][0]["fulfilled_quantity"], 2, "{o}");
    assert_eq!(o["lines"][1]["sku"], "KIT-1");
    assert_eq!(o["lines"][1]["shipped_quantity"], 1, "{o}");
    assert_eq!(o["lines"][1]["fulfilled_quantity"], 1, "{o}");
    let comps = o["lines"][1]["kit"]["components"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(comps.len(), 2, "{o}");
    assert_eq!(o["shipments"].as_array().unwrap().len(), 2, "{o}");
    h.shutdown().await;
}

both_backends!(
    sales_orders_reach_deposco_once,
    refused_order_waits_in_error_until_reprocessed,
    too_long_number_is_refused_with_deposco_message,
    kits_and_partial_shipments_show_on_the_order
);
