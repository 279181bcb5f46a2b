//! Exactly-once at the store's edge: a `fulfillmentCreate` whose outcome is
//! unknown is looked for long enough and among all of the order's
//! fulfillments, and a job stopped in the middle of one keeps its lease.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use shipsync_db::Db;
use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_sandbox_shopify::{FaultKind, Faults};
use shipsync_testkit::{Harness, Options};
use sqlx::Row;

use crate::crash::{Mode, Node, World, wait_for, wait_no_jobs};
use crate::scenarios::{bare, order, ship, wait};
use crate::support::SETTLE;

/// The store applies the create but shows it to reads only 15 s later; the
/// node is killed (`kill -9`) before the answer and restarted at once: it
/// must keep looking (its write may still show up) and adopt the one
/// fulfillment, not give up on it and send again.
async fn create_seen_late_after_kill9(db_url: String) {
    let w = World::start().await;
    let log = w.dir.join("shipsync.log");
    let name = "#2001";
    let record = w.order_shipping_two_of_three("2001");
    w.shopify.sandbox.set_faults(Faults {
        fulfillments_visible_after_ms: 15_000,
        ..Default::default()
    });
    // Looked for 2 (timeout) + 20 (margin) s after it was sent: longer
    // than the store's 15 s.
    let env = [
        ("SHIPSYNC_HTTP_TIMEOUT_SECS", "2"),
        ("SHIPSYNC_UNKNOWN_OUTCOME_MARGIN_SECS", "20"),
    ];
    let mut node = Node::start_with(&db_url, log.clone(), &w.http, &env).await;
    let (merchant_id, key) = w.setup(&node).await;
    w.proxy.set(Mode::ApplyThenHold);
    assert_eq!(w.post(&node, &key, &record.number).await, 202);
    let held = w.proxy.held.clone();
    wait_for("the create's answer held", &node, || {
        held.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(w.shopify.sandbox.fulfillments_created(), 1, "applied");
    node.kill9();

    w.proxy.set(Mode::Pass);
    let node = Node::start_with(&db_url, log, &w.http, &env).await;
    let what = "create seen late";
    let s = w
        .wait_shipment(&node, &merchant_id, &record.number, what, |s| {
            s["status"] == "completed" || s["status"] == "error"
        })
        .await;
    assert_eq!(s["status"], "completed", "{s}");
    wait_no_jobs(&db_url, what).await;
    let o = w.shopify.sandbox.order(name).expect("order");
    assert_eq!(o.fulfillments.len(), 1, "{:?}", o.fulfillments);
    assert_eq!(
        w.shopify.sandbox.fulfillments_created(),
        1,
        "one create in all"
    );
    assert_eq!(o.lines[0].fulfilled_quantity, 2);
    assert!(
        s["activity"].to_string().contains("adopted"),
        "the late create was adopted: {s}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(&w.dir);
}

/// An order with 51 fulfillments made elsewhere (one unit each); the
/// shipment's create lands but its answer is lost: the retry must find it
/// as the 52nd fulfillment, past the first 50, and adopt it.
async fn landed_create_found_past_fifty_fulfillments(db_url: String) {
    let mut opts = Options::new(&db_url);
    // Reading 52 fulfillments costs about 6,500 points: a large plan's bucket.
    opts.shopify_throttle = shipsync_sandbox_shopify::ThrottleConfig {
        maximum_available: 20_000.0,
        restore_rate: 1_000.0,
    };
    let mut h = Harness::start(opts).await.expect("harness");
    let (name, _) = h.place_order(&[("A", 60)]);
    let o = order(&h, &name);
    let fo_line = &o.fulfillment_orders[0].line_items[0];
    let http = reqwest::Client::new();
    for i in 0..51 {
        let r: serde_json::Value = http
            .post(h.shopify.graphql_url())
            .header("X-Shopify-Access-Token", "shpat_sandbox")
            .json(&json!({
                "query": "mutation F($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) { fulfillment { id } userErrors { message } } }",
                "variables": {"f": {
                    "lineItemsByFulfillmentOrder": [{
                        "fulfillmentOrderId": o.fulfillment_orders[0].id,
                        "fulfillmentOrderLineItems": [{"id": fo_line.id, "quantity": 1}],
                    }],
                    "trackingInfo": {"numbers": [format!("P{i}")]},
                }},
            }))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        assert!(
            r["data"]["fulfillmentCreate"]["fulfillment"]["id"].is_string(),
            "{r}"
        );
    }
    h.shopify.sandbox.set_faults(Faults {
        fail_next: 1,
        kinds: vec![FaultKind::ApplyThenDrop],
        mutations_only: true,
        ..Default::default()
    });
    let spec = ShipmentSpec::new(bare(&name))
        .line(LineSpec::new(1, "A", 60).shipped(2))
        .package(PackageSpec::new("C1", "T1").line(1, 2));
    let number = ship(&h, spec, Shape::Current).await;
    let s = wait(&h, &number, "completed", Shape::Current).await;
    let o = order(&h, &name);
    assert_eq!(o.fulfillments.len(), 52, "one more, not two");
    assert_eq!(h.shopify.sandbox.fulfillments_created(), 52);
    assert_eq!(o.lines[0].fulfilled_quantity, 53);
    assert!(
        s["activity"].to_string().contains("adopted"),
        "the landed create was adopted: {s}"
    );
    h.shutdown().await;
}

/// Stopping the server while a `fulfillmentCreate` is under way (the store
/// stalls longer than the drain): the job keeps its lease until the
/// write's outcome is settled (sent + 30 s timeout + 1 s margin), instead
/// of being freed for another node to send again.
async fn stop_mid_create_keeps_the_lease(db_url: String) {
    let mut opts = Options::new(&db_url);
    opts.engine.http_timeout = Duration::from_secs(30);
    let mut h = Harness::start(opts).await.expect("harness");
    let (name, _) = h.place_order(&[("A", 2)]);
    h.shopify.sandbox.set_faults(Faults {
        fail_next: 1,
        kinds: vec![FaultKind::Timeout],
        mutations_only: true,
        timeout_ms: 60_000,
        ..Default::default()
    });
    let spec = ShipmentSpec::new(bare(&name))
        .line(LineSpec::new(1, "A", 2))
        .package(PackageSpec::new("C1", "T1").line(1, 2));
    let number = ship(&h, spec, Shape::Current).await;
    let db = Db::open(&db_url).await.expect("open db");
    // The create's record, written just before it was sent.
    let start = Instant::now();
    let recorded: i64 = loop {
        let row = sqlx::query("SELECT created_at FROM store_fulfillments WHERE state = 'pending'")
            .fetch_optional(db.pool())
            .await
            .expect("pending record");
        if let Some(r) = row {
            break r.try_get("created_at").expect("created_at");
        }
        assert!(start.elapsed() < SETTLE, "no create under way");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    h.stop_server().await;
    let row = sqlx::query("SELECT lease_owner, lease_until FROM jobs WHERE kind = 'sync_shipment'")
        .fetch_one(db.pool())
        .await
        .expect("the job is still there");
    let owner: Option<String> = row.try_get("lease_owner").expect("owner");
    let until: Option<i64> = row.try_get("lease_until").expect("until");
    let hold = Duration::from_secs(30 + 1).as_micros() as i64;
    assert_eq!(until, Some(recorded + hold), "lease held; owner {owner:?}");
    // A restart on the same database does not take it before then either.
    h.restart_server().await.expect("restart");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let row = sqlx::query("SELECT lease_until FROM jobs WHERE kind = 'sync_shipment'")
        .fetch_one(db.pool())
        .await
        .expect("the job is still there");
    let until: Option<i64> = row.try_get("lease_until").expect("until");
    assert_eq!(until, Some(recorded + hold), "still held after a restart");
    assert_eq!(h.shopify.sandbox.fulfillments_created(), 0);
    let _ = number;
    db.close().await;
    h.shutdown().await;
}

both_backends!(
    create_seen_late_after_kill9,
    landed_create_found_past_fifty_fulfillments,
    stop_mid_create_keeps_the_lease,
);
