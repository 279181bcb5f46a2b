//! The acceptance scenarios of `docs/kits-and-partials.md`, each run with
//! every webhook shape the warehouse may send: webhook in, then the Shopify
//! sandbox's state and the shipment's status via the API.
//!
//! Each scenario starts one harness per backend and loops over the shapes,
//! with a fresh store order per shape, so the suite stays fast.

use serde_json::Value;
use shipsync_sandbox_deposco::{KitSpec, LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_sandbox_shopify::OrderView;
use shipsync_testkit::{Harness, Options};
use std::collections::BTreeMap;

use crate::support::SETTLE;

/// Every shape `docs/deposco.md` lists.
pub(crate) const SHAPES: [Shape; 5] = Shape::ALL;

/// The Deposco order number of a store order name (`#1001` → `1001`).
pub(crate) fn bare(name: &str) -> String {
    name.trim_start_matches('#').to_string()
}

pub(crate) async fn harness(db_url: &str) -> Harness {
    Harness::start(Options::new(db_url)).await.expect("harness")
}

/// The store's view of an order (panics when it does not exist: a test bug).
pub(crate) fn order(h: &Harness, name: &str) -> OrderView {
    h.shopify.sandbox.order(name).expect("order exists")
}

/// Fulfilled quantity per SKU.
pub(crate) fn fulfilled(o: &OrderView) -> BTreeMap<String, u32> {
    o.lines
        .iter()
        .map(|l| (l.sku.clone(), l.fulfilled_quantity))
        .collect()
}

/// Quantity per SKU of one fulfillment.
pub(crate) fn fulfillment_lines(
    f: &shipsync_sandbox_shopify::FulfillmentView,
) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for l in &f.line_items {
        *out.entry(l.sku.clone()).or_default() += l.quantity;
    }
    out
}

pub(crate) fn map(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Posts and checks the 202.
pub(crate) async fn ship(h: &Harness, spec: ShipmentSpec, shape: Shape) -> String {
    let (number, status) = h.ship(spec, shape).await.expect("ship");
    assert_eq!(status, 202, "{shape:?}: webhook answered {status}");
    number
}

pub(crate) async fn repost(h: &Harness, number: &str, shape: Shape) {
    let status = h.post(number, shape).await.expect("post");
    assert_eq!(status, 202, "{shape:?}: webhook answered {status}");
}

/// Waits for the shipment to reach `status` with no work left, and returns
/// it as read after the work settled (`wait_shipment` returns the snapshot
/// read before it saw the queue empty, which can predate the last write when
/// the status did not change, e.g. `new` → waiting `new`).
pub(crate) async fn wait(h: &Harness, number: &str, status: &str, shape: Shape) -> Value {
    h.wait_shipment(number, &[status], SETTLE)
        .await
        .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
    let s = h
        .shipment_by_number(number)
        .await
        .expect("read shipment")
        .expect("shipment exists");
    assert_eq!(
        s["status"], status,
        "{shape:?}: changed after settling: {s}"
    );
    s
}

/// The shipment's error text (empty when none).
pub(crate) fn error_of(s: &Value) -> String {
    s["error"].as_str().unwrap_or_default().to_string()
}

/// How many `fulfillmentCreate` requests reached the store so far.
pub(crate) fn creates(h: &Harness) -> usize {
    h.shopify
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.query.contains("fulfillmentCreate"))
        .count()
}

fn kit(line: &str, ordered: u32) -> KitSpec {
    KitSpec {
        kit_line_number: 1,
        kit_sku: "KIT-1".into(),
        kit_ordered: ordered,
        kit_customer_line_number: Some(line.to_string()),
    }
}

// ---------------------------------------------------------------------------

/// 1: A×2, one package T1 → one fulfillment A×2, tracking T1.
async fn scenario_1_one_package(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 2)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 2))
            .package(PackageSpec::new("C1", "T1").line(1, 2));
        let number = ship(&h, spec, shape).await;
        let s = wait(&h, &number, "completed", shape).await;
        assert_eq!(s["first_seen_via"], "webhook", "{shape:?}");
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(
            fulfillment_lines(&o.fulfillments[0]),
            map(&[("A", 2)]),
            "{shape:?}"
        );
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T1"], "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 2)]), "{shape:?}");
    }
    h.shutdown().await;
}

/// 2: A×2, B×1; shipment 1 A×2 (T1), later shipment 2 B×1 (T2) → two
/// fulfillments; order fulfilled.
async fn scenario_2_two_shipments(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 2), ("B", 1)]);
        let first = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 2))
            .package(PackageSpec::new("C1", "T1").line(1, 2));
        let n1 = ship(&h, first, shape).await;
        wait(&h, &n1, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 2), ("B", 0)]), "{shape:?}");
        assert_ne!(o.display_fulfillment_status, "FULFILLED", "{shape:?}");

        let second = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(2, "B", 1))
            .package(PackageSpec::new("C2", "T2").line(2, 1));
        let n2 = ship(&h, second, shape).await;
        assert_ne!(n1, n2);
        wait(&h, &n2, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 2, "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(
            fulfillment_lines(&o.fulfillments[0]),
            map(&[("A", 2)]),
            "{shape:?}"
        );
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T1"], "{shape:?}");
        assert_eq!(
            fulfillment_lines(&o.fulfillments[1]),
            map(&[("B", 1)]),
            "{shape:?}"
        );
        assert_eq!(o.fulfillments[1].tracking_numbers, vec!["T2"], "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 2), ("B", 1)]), "{shape:?}");
        assert_eq!(o.display_fulfillment_status, "FULFILLED", "{shape:?}");
        // The first shipment is still complete and untouched.
        let s1 = wait(&h, &n1, "completed", shape).await;
        assert_eq!(s1["status"], "completed");
    }
    h.shutdown().await;
}

/// 3: A×3 in packages T1 (A×1) and T2 (A×2) → one fulfillment A×3 with both numbers.
async fn scenario_3_line_over_two_packages(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 3)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 3))
            .package(PackageSpec::new("C1", "T1").line(1, 1))
            .package(PackageSpec::new("C2", "T2").line(1, 2));
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(
            fulfillment_lines(&o.fulfillments[0]),
            map(&[("A", 3)]),
            "{shape:?}"
        );
        let mut numbers = o.fulfillments[0].tracking_numbers.clone();
        numbers.sort();
        assert_eq!(numbers, vec!["T1", "T2"], "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 3)]), "{shape:?}");
    }
    h.shutdown().await;
}

/// 4: KIT-1×2 (= COMP-A×1 + COMP-B×2 each), components in one package → one
/// fulfillment KIT-1×2.
async fn scenario_4_kit_in_one_package(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, ids) = h.place_order(&[("KIT-1", 2)]);
        let k = kit(&ids[0], 2);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(2, "COMP-A", 2).kit(k.clone()))
            .line(LineSpec::new(3, "COMP-B", 4).kit(k))
            .package(PackageSpec::new("C1", "T1").line(2, 2).line(3, 4));
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(
            fulfillment_lines(&o.fulfillments[0]),
            map(&[("KIT-1", 2)]),
            "{shape:?}"
        );
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T1"], "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("KIT-1", 2)]), "{shape:?}");
    }
    h.shutdown().await;
}

/// 5: KIT-1×2; shipment 1 COMP-A×2 + COMP-B×2, shipment 2 COMP-B×2.
/// complete_kits: 1 after shipment 1, 2 after shipment 2; first_component: 2
/// after shipment 1 (and shipment 2 adds nothing).
async fn scenario_5_kit_over_two_shipments(db_url: String) {
    for policy in ["complete_kits", "first_component"] {
        let mut opts = Options::new(db_url.clone());
        opts.kit_policy = policy;
        let mut h = Harness::start(opts).await.expect("harness");
        for shape in SHAPES {
            let ctx = format!("{policy} {shape:?}");
            let (name, ids) = h.place_order(&[("KIT-1", 2)]);
            let k = kit(&ids[0], 2);
            let first = ShipmentSpec::new(bare(&name))
                .line(LineSpec::new(2, "COMP-A", 2).kit(k.clone()))
                .line(LineSpec::new(3, "COMP-B", 4).shipped(2).kit(k.clone()))
                .package(PackageSpec::new("C1", "T1").line(2, 2).line(3, 2));
            let n1 = ship(&h, first, shape).await;
            wait(&h, &n1, "completed", shape).await;
            let o = order(&h, &name);
            let after_first = if policy == "complete_kits" { 1 } else { 2 };
            assert_eq!(fulfilled(&o), map(&[("KIT-1", after_first)]), "{ctx}");
            assert_eq!(o.fulfillments.len(), 1, "{ctx}: {:?}", o.fulfillments);
            assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T1"], "{ctx}");

            let second = ShipmentSpec::new(bare(&name))
                .line(LineSpec::new(3, "COMP-B", 4).shipped(2).kit(k))
                .package(PackageSpec::new("C2", "T2").line(3, 2));
            let n2 = ship(&h, second, shape).await;
            wait(&h, &n2, "completed", shape).await;
            let o = order(&h, &name);
            assert_eq!(fulfilled(&o), map(&[("KIT-1", 2)]), "{ctx}");
            if policy == "complete_kits" {
                assert_eq!(o.fulfillments.len(), 2, "{ctx}: {:?}", o.fulfillments);
                assert_eq!(
                    fulfillment_lines(&o.fulfillments[1]),
                    map(&[("KIT-1", 1)]),
                    "{ctx}"
                );
                assert_eq!(o.fulfillments[1].tracking_numbers, vec!["T2"], "{ctx}");
            } else {
                assert_eq!(o.fulfillments.len(), 1, "{ctx}: {:?}", o.fulfillments);
            }
            assert_eq!(o.display_fulfillment_status, "FULFILLED", "{ctx}");
        }
        h.shutdown().await;
    }
}

/// 6: the same webhook three times (the third also re-delivered with the same
/// `webhook-id`), then the same shipment in the other shapes → exactly one
/// fulfillment.
async fn scenario_6_same_webhook_thrice(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 1)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 1))
            .package(PackageSpec::new("C1", "T1").line(1, 1));
        let number = ship(&h, spec, shape).await;
        // The second delivery races the first's processing.
        repost(&h, &number, shape).await;
        wait(&h, &number, "completed", shape).await;
        // The third, after completion, then re-delivered with its webhook-id.
        let req = h
            .deposco
            .sandbox
            .webhook_request(&number, shape, h.signing(false))
            .expect("request");
        let sent = req.prepare();
        assert!(sent.webhook_id.is_some());
        for _ in 0..2 {
            let r = h
                .deposco
                .sandbox
                .resend_webhook(&h.webhook_url, sent.clone())
                .await
                .expect("deliver");
            assert_eq!(r.status(), Some(202), "{shape:?}: {:?}", r.json());
        }
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(fulfilled(&o), map(&[("A", 1)]), "{shape:?}");
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T1"], "{shape:?}");

        // The same shipment in every other shape: a different body, the same
        // shipment; still nothing new.
        for other in SHAPES.into_iter().filter(|s| *s != shape) {
            repost(&h, &number, other).await;
            wait(&h, &number, "completed", other).await;
        }
        let o = order(&h, &name);
        assert_eq!(
            o.fulfillments.len(),
            1,
            "{shape:?} then others: {:?}",
            o.fulfillments
        );
        assert_eq!(fulfilled(&o), map(&[("A", 1)]), "{shape:?}");
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T1"], "{shape:?}");
    }
    h.shutdown().await;
}

/// 8: same shipment, package C1 tracking T1, then T9 with a later
/// `updatedDate` → one fulfillment, its tracking T9.
async fn scenario_8_tracking_corrected(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 1)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 1))
            .package(PackageSpec::new("C1", "T1").line(1, 1));
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;
        assert_eq!(
            order(&h, &name).fulfillments[0].tracking_numbers,
            vec!["T1"]
        );
        let before = creates(&h);

        h.deposco
            .sandbox
            .update_shipment(&number, |s| {
                s.packages[0].tracking_number = "T9".into();
                s.tracking_number = None;
            })
            .expect("update");
        repost(&h, &number, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T9"], "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 1)]), "{shape:?}");
        assert_eq!(
            creates(&h),
            before,
            "{shape:?}: no second fulfillmentCreate"
        );
    }
    h.shutdown().await;
}

/// 9: a shipment for an order the store does not have → `error` naming the
/// order after the retries; nothing sent.
async fn scenario_9_unknown_order(db_url: String) {
    let mut h = harness(&db_url).await;
    for (i, shape) in SHAPES.into_iter().enumerate() {
        // A real order exists, so a wrong match would be visible.
        let (name, _) = h.place_order(&[("A", 1)]);
        let missing = format!("77{i}01");
        let spec = ShipmentSpec::new(&missing)
            .line(LineSpec::new(1, "A", 1))
            .package(PackageSpec::new("C1", "T1").line(1, 1));
        let before = creates(&h);
        let number = ship(&h, spec, shape).await;
        let s = wait(&h, &number, "error", shape).await;
        let err = error_of(&s);
        assert!(
            err.contains(&missing),
            "{shape:?}: error should name the order: {err}"
        );
        assert!(err.contains("not found"), "{shape:?}: {err}");
        assert!(order(&h, &name).fulfillments.is_empty(), "{shape:?}");
        assert_eq!(creates(&h), before, "{shape:?}: nothing sent");
    }
    h.shutdown().await;
}

/// 10: A×1 ordered, the warehouse reports A×2 → `error` (over-shipment);
/// nothing sent, not even the one unit that would fit.
async fn scenario_10_over_shipment(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 1)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 2))
            .package(PackageSpec::new("C1", "T1").line(1, 2));
        let before = creates(&h);
        let number = ship(&h, spec, shape).await;
        let s = wait(&h, &number, "error", shape).await;
        let err = error_of(&s);
        assert!(
            err.contains('A'),
            "{shape:?}: error should name the line: {err}"
        );
        let o = order(&h, &name);
        assert!(o.fulfillments.is_empty(), "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(fulfilled(&o), map(&[("A", 0)]), "{shape:?}");
        assert_eq!(creates(&h), before, "{shape:?}: nothing sent");
    }
    h.shutdown().await;
}

both_backends!(
    scenario_1_one_package,
    scenario_2_two_shipments,
    scenario_3_line_over_two_packages,
    scenario_4_kit_in_one_package,
    scenario_5_kit_over_two_shipments,
    scenario_6_same_webhook_thrice,
    scenario_8_tracking_corrected,
    scenario_9_unknown_order,
    scenario_10_over_shipment,
);
