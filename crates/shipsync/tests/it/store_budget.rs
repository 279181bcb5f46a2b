//! What a shipment costs the store (issue 17): an order shipsync sent to
//! Deposco is fulfilled from what shipsync recorded then — one request, the
//! mutation — and a view gone stale is refused by Shopify and followed by a
//! read, with the same outcome as before; an order shipsync never saw is
//! found among the store's open fulfillment orders read ahead (a read of
//! what changed since the last, or none when it was read already; a search
//! before the store's bucket size is known), then fulfilled; a read-ahead
//! view gone stale is handled like a recorded one.

use std::time::{Duration, Instant};

use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Options};

use crate::orders::{enable_sales_orders, paid_order, run_orders, wait_order};
use crate::support::SETTLE;

/// The operations the store answered from request `from` on.
fn operations_since(h: &Harness, from: usize) -> Vec<String> {
    h.shopify.sandbox.requests()[from..]
        .iter()
        .map(|r| r.operation_name.clone().unwrap_or_default())
        .collect()
}

/// Polls the shipment until a run said it waits for the store.
async fn waiting_for_the_store(h: &Harness, number: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(s) = h.shipment_by_number(number).await.unwrap()
            && s["error"]
                .as_str()
                .unwrap_or("")
                .contains("waiting for the store")
        {
            return s;
        }
        assert!(
            start.elapsed() < SETTLE,
            "shipment {number} never waited for the store"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A sales order sent to Deposco by the channel's run (no store webhooks:
/// the store's later changes reach shipsync only by a read).
async fn sent_order(h: &Harness, name: &str, lines: &[(&str, u32)]) {
    h.shopify.sandbox.create_order(paid_order(name, lines));
    let run = run_orders(h).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    wait_order(h, name, "open").await;
}

/// Holds the first fulfillment order of store order `name`, as a person
/// would in the store, without telling shipsync; returns its id.
fn hold_in_store(h: &Harness, name: &str) -> String {
    let fo = h.shopify.sandbox.order(name).unwrap().fulfillment_orders[0]
        .id
        .clone();
    h.shopify
        .sandbox
        .hold_fulfillment_order(&fo, "OTHER", Some("check the address"))
        .unwrap();
    fo
}

/// Shipment `number` of held order `name`, sent from a view of the order
/// that said OPEN: Shopify refused that one fulfillment, the store was
/// read, and the shipment waits for the hold like any other (`what`
/// names the view). Released in the store and reprocessed, it ships
/// exactly once.
async fn refused_then_shipped_once_released(
    h: &Harness,
    (name, fo): (&str, &str),
    number: &str,
    from: usize,
    what: &str,
) {
    let s = waiting_for_the_store(h, number).await;
    assert_ne!(s["status"], "completed", "{s}");
    let ops = operations_since(h, from);
    assert_eq!(
        ops.iter().filter(|o| *o == "FulfillmentCreate").count(),
        1,
        "one refused attempt from the {what}, none after the read: {ops:?}"
    );
    assert!(ops.iter().any(|o| o == "OrderToFulfill"), "{ops:?}");
    assert!(
        h.shopify
            .sandbox
            .order(name)
            .unwrap()
            .fulfillments
            .is_empty()
    );

    // Released: the next try reads the store (it failed once) and ships.
    h.shopify.sandbox.release_fulfillment_order(fo).unwrap();
    let id = s["id"].as_str().unwrap();
    h.api("POST", &format!("/api/v1/shipments/{id}/reprocess"), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    h.wait_shipment(number, &["completed"], SETTLE)
        .await
        .unwrap();
    assert_eq!(
        h.shopify.sandbox.order(name).unwrap().fulfillments.len(),
        1,
        "exactly once"
    );
}

/// Store order `name` has one fulfillment, with tracking number
/// `tracking`, of all its lines.
fn fulfilled_once(h: &Harness, name: &str, tracking: &str) {
    let store = h.shopify.sandbox.order(name).unwrap();
    assert_eq!(store.fulfillments.len(), 1, "{name}");
    assert_eq!(store.fulfillments[0].tracking_numbers, vec![tracking]);
    assert!(
        store
            .lines
            .iter()
            .all(|l| l.fulfilled_quantity == l.current_quantity),
        "{store:?}"
    );
}

async fn a_sent_order_ships_with_one_request(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    enable_sales_orders(&h, "SS-").await;
    sent_order(&h, "#3001", &[("A", 2), ("B", 1)]).await;

    let from = h.shopify.sandbox.requests().len();
    let spec = h
        .deposco
        .sandbox
        .ship_order_spec("SS-3001", "T-3001")
        .expect("ship spec");
    let (number, status) = h.ship(spec, Shape::Current).await.unwrap();
    assert_eq!(status, 202);
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    wait_order(&h, "#3001", "shipped").await;
    assert_eq!(operations_since(&h, from), vec!["FulfillmentCreate"]);
    fulfilled_once(&h, "#3001", "T-3001");
    h.shutdown().await;
}

async fn a_stale_view_is_refused_then_the_store_is_read(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    enable_sales_orders(&h, "SS-").await;
    sent_order(&h, "#3101", &[("A", 1)]).await;
    // The store holds the order after it was sent; shipsync is not told.
    let fo = hold_in_store(&h, "#3101");
    let from = h.shopify.sandbox.requests().len();
    let spec = h
        .deposco
        .sandbox
        .ship_order_spec("SS-3101", "T-3101")
        .expect("ship spec");
    let (number, _) = h.ship(spec, Shape::Current).await.unwrap();
    refused_then_shipped_once_released(&h, ("#3101", &fo), &number, from, "recorded view").await;
    h.shutdown().await;
}

/// Ships one unit of SKU `sku` of order `name` with tracking `tracking`;
/// waits until the shipment is completed.
async fn ship_one(h: &Harness, name: &str, sku: &str, tracking: &str) -> String {
    let spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .line(LineSpec::new(1, sku, 1))
        .package(PackageSpec::new(format!("C-{tracking}"), tracking).line(1, 1));
    let (number, _) = h.ship(spec, Shape::Current).await.unwrap();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    number
}

async fn an_unknown_order_ships_with_two_requests(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (first, _) = h.place_order(&[("A", 1)]);
    let (second, _) = h.place_order(&[("B", 1)]);
    let (third, _) = h.place_order(&[("C", 1)]);
    // The store's first answer says how large its bucket is: until then
    // nothing is read ahead (a page's requested cost may not fit), and the
    // order is searched by name.
    let from = h.shopify.sandbox.requests().len();
    ship_one(&h, &first, "A", "T1").await;
    assert_eq!(
        operations_since(&h, from),
        vec!["OrdersToFulfillByName", "FulfillmentCreate"]
    );
    // Not read ahead yet: the store's open fulfillment orders are read
    // (the second and third orders'), then the order is fulfilled.
    let from = h.shopify.sandbox.requests().len();
    ship_one(&h, &second, "B", "T2").await;
    assert_eq!(
        operations_since(&h, from),
        vec!["OpenFulfillmentOrders", "FulfillmentCreate"]
    );
    // The third order was read with it: its shipment is the mutation alone.
    let from = h.shopify.sandbox.requests().len();
    ship_one(&h, &third, "C", "T3").await;
    assert_eq!(operations_since(&h, from), vec!["FulfillmentCreate"]);
    // What was read ahead holds only the open fulfillment orders' lines:
    // shipsync's record of the order keeps none of them (not all are
    // known), so the record is not moved to shipped on a partial view.
    let record = crate::orders::order(&h, &third).await;
    assert_eq!(record["status"], "open", "{record}");
    assert_eq!(record["lines"], serde_json::json!([]), "{record}");
    for (n, tracking) in [(&first, "T1"), (&second, "T2"), (&third, "T3")] {
        fulfilled_once(&h, n, tracking);
    }
    h.shutdown().await;
}

/// An order read ahead, then held in the store: the fulfillment from the
/// read-ahead view is refused, the store is read, the shipment waits for
/// the hold, and ships exactly once when it is released.
async fn a_stale_read_ahead_is_refused_then_the_store_is_read(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (first, _) = h.place_order(&[("A", 1)]);
    let (second, _) = h.place_order(&[("A", 1)]);
    let (held, _) = h.place_order(&[("B", 1)]);
    // The first shipment learns the store's bucket; the second's reads the
    // open fulfillment orders, the held order's among them.
    ship_one(&h, &first, "A", "T1").await;
    let from = h.shopify.sandbox.requests().len();
    ship_one(&h, &second, "A", "T2").await;
    assert_eq!(
        operations_since(&h, from),
        vec!["OpenFulfillmentOrders", "FulfillmentCreate"]
    );
    let fo = hold_in_store(&h, &held);
    let from = h.shopify.sandbox.requests().len();
    let spec = ShipmentSpec::new(held.trim_start_matches('#'))
        .line(LineSpec::new(1, "B", 1))
        .package(PackageSpec::new("C-T3", "T3").line(1, 1));
    let (number, _) = h.ship(spec, Shape::Current).await.unwrap();
    refused_then_shipped_once_released(&h, (&held, &fo), &number, from, "read-ahead view").await;
    fulfilled_once(&h, &held, "T3");
    h.shutdown().await;
}

both_backends!(
    a_sent_order_ships_with_one_request,
    a_stale_view_is_refused_then_the_store_is_read,
    an_unknown_order_ships_with_two_requests,
    a_stale_read_ahead_is_refused_then_the_store_is_read,
);
