//! The rules of `docs/kits-and-partials.md` beyond the acceptance table:
//! tracking replacement, version order, Deposco statuses, carriers,
//! fulfillment-order statuses and locations, store faults, unmatched SKUs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{KitSpec, LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_sandbox_shopify::{FaultKind, Faults, FoSpec, OrderSpec};
use shipsync_testkit::{Harness, Options};

use crate::scenarios::{
    SHAPES, bare, creates, error_of, fulfilled, fulfillment_lines, harness, map, order, repost,
    ship, wait,
};

const LOC1: &str = "gid://shopify/Location/1";
const LOC2: &str = "gid://shopify/Location/2";

/// A package that comes back with a new number replaces its own number, in
/// place; the other packages' numbers stay.
async fn tracking_replacement(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 2), ("B", 1)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 2))
            .line(LineSpec::new(2, "B", 1))
            .package(PackageSpec::new("C1", "T1").line(1, 1))
            .package(PackageSpec::new("C2", "T2").line(1, 1).line(2, 1));
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(
            o.fulfillments[0].tracking_numbers,
            vec!["T1", "T2"],
            "{shape:?}"
        );
        let before = creates(&h);

        // C1 gets a new label.
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
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(
            o.fulfillments[0].tracking_numbers,
            vec!["T9", "T2"],
            "{shape:?}"
        );

        // Then C2.
        h.deposco
            .sandbox
            .update_shipment(&number, |s| s.packages[1].tracking_number = "T8".into())
            .expect("update");
        repost(&h, &number, shape).await;
        let s = wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(
            o.fulfillments[0].tracking_numbers,
            vec!["T9", "T8"],
            "{shape:?}"
        );
        assert_eq!(fulfilled(&o), map(&[("A", 2), ("B", 1)]), "{shape:?}");
        assert_eq!(
            creates(&h),
            before,
            "{shape:?}: corrections make no new fulfillment"
        );
        let sf = s["store_fulfillments"].to_string();
        assert!(
            sf.contains("T9") && sf.contains("T8") && !sf.contains("\"T1\""),
            "{shape:?}: {sf}"
        );
    }
    h.shutdown().await;
}

/// A newer `updatedDate` first, then the older version: the older changes
/// nothing (only the JSON shapes carry `updatedDate`; without it, arrival
/// order rules).
async fn older_version_changes_nothing(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in [Shape::Current, Shape::Wrapped, Shape::DataList] {
        let (name, _) = h.place_order(&[("A", 2)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 2).shipped(1))
            .package(PackageSpec::new("C1", "T1").line(1, 1));
        let record = h.deposco.sandbox.add_shipment(spec);
        let number = record.number.clone();
        let older = h
            .deposco
            .sandbox
            .webhook_request(&number, shape, h.signing(false))
            .expect("older body");
        h.deposco
            .sandbox
            .update_shipment(&number, |s| {
                s.lines[0].shipped = 2;
                s.packages[0].lines = vec![(1, 2)];
                s.packages[0].tracking_number = "T5".into();
                s.tracking_number = None;
            })
            .expect("update");
        repost(&h, &number, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(fulfilled(&o), map(&[("A", 2)]), "{shape:?}");
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T5"], "{shape:?}");

        let r = h
            .deposco
            .sandbox
            .send_webhook(&h.webhook_url, older)
            .await
            .expect("deliver");
        assert_eq!(r.status(), Some(202), "{shape:?}");
        let s = wait(&h, &number, "completed", shape).await;
        let activity = s["activity"].to_string();
        assert!(
            activity.contains("older version"),
            "{shape:?}: the older one was seen: {activity}"
        );
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 2)]), "{shape:?}");
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T5"], "{shape:?}");
        assert_eq!(
            s["packages"][0]["tracking_number"], "T5",
            "{shape:?}: kept the newer version"
        );
    }
    h.shutdown().await;
}

/// `Shipping`/`New` send nothing and the shipment waits; `Shipped` later
/// sends; `Rolled Back` after `Shipped` is an error and the fulfillment stays.
async fn deposco_statuses(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        for early in ["Shipping", "New"] {
            let ctx = format!("{shape:?} {early}");
            let (name, _) = h.place_order(&[("A", 1)]);
            let spec = ShipmentSpec::new(bare(&name))
                .status(early)
                .line(LineSpec::new(1, "A", 1))
                .package(PackageSpec::new("C1", "T1").line(1, 1));
            let before = creates(&h);
            let number = ship(&h, spec, shape).await;
            let s = wait(&h, &number, "new", shape).await;
            assert!(
                error_of(&s).contains(early),
                "{ctx}: says why it waits: {s}"
            );
            assert!(order(&h, &name).fulfillments.is_empty(), "{ctx}");
            assert_eq!(creates(&h), before, "{ctx}");

            h.deposco
                .sandbox
                .update_shipment(&number, |s| s.status = "Shipped".into())
                .expect("update");
            repost(&h, &number, shape).await;
            wait(&h, &number, "completed", shape).await;
            let o = order(&h, &name);
            assert_eq!(o.fulfillments.len(), 1, "{ctx}");
            assert_eq!(fulfilled(&o), map(&[("A", 1)]), "{ctx}");

            h.deposco
                .sandbox
                .update_shipment(&number, |s| s.status = "Rolled Back".into())
                .expect("update");
            repost(&h, &number, shape).await;
            let s = wait(&h, &number, "error", shape).await;
            assert!(error_of(&s).contains("Rolled Back"), "{ctx}: {s}");
            let o = order(&h, &name);
            assert_eq!(o.fulfillments.len(), 1, "{ctx}: the fulfillment stays");
            assert_eq!(o.fulfillments[0].status, "SUCCESS", "{ctx}");
            assert_eq!(fulfilled(&o), map(&[("A", 1)]), "{ctx}");
        }
    }
    h.shutdown().await;
}

/// Shipped never goes back: a later report of the shipment as `Shipping` or
/// `New` changes nothing (the shipment stays completed, the store keeps its
/// fulfillment, and the units still count for the order).
async fn shipped_never_goes_back(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in [Shape::Current, Shape::Xml, Shape::Mirror] {
        for late in ["Shipping", "New"] {
            let ctx = format!("{shape:?} {late}");
            let (name, _) = h.place_order(&[("A", 2)]);
            let spec = ShipmentSpec::new(bare(&name))
                .line(LineSpec::new(1, "A", 2).shipped(1))
                .package(PackageSpec::new("C1", "T1").line(1, 1));
            let n1 = ship(&h, spec, shape).await;
            wait(&h, &n1, "completed", shape).await;

            h.deposco
                .sandbox
                .update_shipment(&n1, |s| s.status = late.into())
                .expect("update");
            repost(&h, &n1, shape).await;
            let s = wait(&h, &n1, "completed", shape).await;
            assert_eq!(s["warehouse_status"], "shipped", "{ctx}: {s}");
            let o = order(&h, &name);
            assert_eq!(o.fulfillments.len(), 1, "{ctx}");
            assert_eq!(fulfilled(&o), map(&[("A", 1)]), "{ctx}");

            // The order's second shipment still sees the first one's unit.
            let spec = ShipmentSpec::new(bare(&name))
                .line(LineSpec::new(1, "A", 2).shipped(1))
                .package(PackageSpec::new("C2", "T2").line(1, 1));
            let n2 = ship(&h, spec, shape).await;
            wait(&h, &n2, "completed", shape).await;
            let o = order(&h, &name);
            assert_eq!(o.fulfillments.len(), 2, "{ctx}");
            assert_eq!(fulfilled(&o), map(&[("A", 2)]), "{ctx}");
        }
    }
    h.shutdown().await;
}

/// A changed shipment with a new package: only the new units go out, as a
/// new fulfillment carrying the new package's number; the first fulfillment
/// keeps its own.
async fn new_package_adds_only_the_difference(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 2), ("B", 1)]);
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 2).shipped(1))
            .package(PackageSpec::new("C1", "T1").line(1, 1));
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;

        h.deposco
            .sandbox
            .update_shipment(&number, |s| {
                s.lines[0].shipped = 2;
                s.lines.push(LineSpec::new(2, "B", 1));
                s.packages
                    .push(PackageSpec::new("C2", "T2").line(1, 1).line(2, 1));
            })
            .expect("update");
        repost(&h, &number, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 2, "{shape:?}: {:?}", o.fulfillments);
        assert_eq!(
            fulfillment_lines(&o.fulfillments[0]),
            map(&[("A", 1)]),
            "{shape:?}"
        );
        assert_eq!(o.fulfillments[0].tracking_numbers, vec!["T1"], "{shape:?}");
        assert_eq!(
            fulfillment_lines(&o.fulfillments[1]),
            map(&[("A", 1), ("B", 1)]),
            "{shape:?}"
        );
        assert_eq!(o.fulfillments[1].tracking_numbers, vec!["T2"], "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 2), ("B", 1)]), "{shape:?}");
    }
    h.shutdown().await;
}

/// A corrected version arrives while a run that will fail for good (on the
/// version it read) is in progress: the correction is not lost; the shipment
/// ends completed, not in `error`.
async fn correction_during_a_failing_run(db_url: String) {
    let mut h = harness(&db_url).await;
    let (proxy, proxy_url) = crate::crash::start_proxy(&h.shopify.url).await;
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        // A new shop URL needs its token again (else it is cleared).
        Some(json!({"store": {"shop_url": proxy_url, "access_token": shipsync_testkit::SHOPIFY_TOKEN}})),
    )
    .await
    .expect("patch")
    .ok(200)
    .expect("patch 200");
    let shape = Shape::Current;
    let (name, _) = h.place_order(&[("A", 1)]);
    proxy.set(crate::crash::Mode::Gate);
    let from = h.shopify.sandbox.requests().len();
    // Over-shipped: on its own, an error for a person.
    let spec = ShipmentSpec::new(bare(&name))
        .line(LineSpec::new(1, "A", 2))
        .package(PackageSpec::new("C1", "T1").line(1, 2));
    let number = ship(&h, spec, shape).await;
    let start = std::time::Instant::now();
    while proxy.held.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < crate::support::SETTLE, "no store call");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The run is at its first store call; the warehouse corrects the shipment.
    h.deposco
        .sandbox
        .update_shipment(&number, |s| {
            s.lines[0].ordered = 1;
            s.lines[0].shipped = 1;
            s.packages[0].lines = vec![(1, 1)];
        })
        .expect("update");
    repost(&h, &number, shape).await;
    let start = std::time::Instant::now();
    loop {
        let s = h
            .shipment_by_number(&number)
            .await
            .expect("read")
            .expect("exists");
        if s["activity"].to_string().contains("Updated from webhook") {
            break;
        }
        assert!(
            start.elapsed() < crate::support::SETTLE,
            "v2 not merged: {s}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.open_gate();
    let s = wait(&h, &number, "completed", shape).await;
    // The first run failed: recorded, or — its order read ahead — followed
    // at once by a run that read the store (and found the newer version
    // merged meanwhile: that run's success is what the activity shows).
    let reread = h.shopify.sandbox.requests()[from..]
        .iter()
        .any(|r| r.operation_name.as_deref() == Some("OrderToFulfill"));
    assert!(
        s["activity"].to_string().contains("over-shipment") || reread,
        "the first run did fail: {s}"
    );
    let o = order(&h, &name);
    assert_eq!(o.fulfillments.len(), 1, "{:?}", o.fulfillments);
    assert_eq!(fulfilled(&o), map(&[("A", 1)]));
    h.shutdown().await;
}

/// Warehouse carrier codes become Shopify's names; two carriers in one
/// shipment make two fulfillments.
async fn carriers(db_url: String) {
    let mut h = harness(&db_url).await;
    let cases = [
        ("UPS", "UPS Ground", "UPS"),
        ("FEDEX", "FEDEX_GROUND", "FedEx"),
        ("USPS Ground Advantage", "USPS Ground Advantage", "USPS"),
    ];
    for shape in SHAPES {
        for (vendor, via, want) in cases {
            let (name, _) = h.place_order(&[("A", 1)]);
            let spec = ShipmentSpec::new(bare(&name))
                .carrier(vendor, via)
                .line(LineSpec::new(1, "A", 1))
                .package(PackageSpec::new("C1", "T1").line(1, 1));
            let number = ship(&h, spec, shape).await;
            wait(&h, &number, "completed", shape).await;
            let o = order(&h, &name);
            assert_eq!(o.fulfillments.len(), 1, "{shape:?} {vendor}");
            assert_eq!(
                o.fulfillments[0].tracking_company.as_deref(),
                Some(want),
                "{shape:?} {vendor}"
            );
        }

        // Two carriers in one shipment.
        let (name, _) = h.place_order(&[("A", 1), ("B", 1)]);
        let mut fedex = PackageSpec::new("C2", "T2").line(2, 1);
        fedex.ship_vendor = Some("FEDEX".into());
        let spec = ShipmentSpec::new(bare(&name))
            .carrier("UPS", "UPS Ground")
            .line(LineSpec::new(1, "A", 1))
            .line(LineSpec::new(2, "B", 1))
            .package(PackageSpec::new("C1", "T1").line(1, 1))
            .package(fedex);
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 2, "{shape:?}: {:?}", o.fulfillments);
        let by_company: BTreeMap<String, (Vec<String>, BTreeMap<String, u32>)> = o
            .fulfillments
            .iter()
            .map(|f| {
                (
                    f.tracking_company.clone().unwrap_or_default(),
                    (f.tracking_numbers.clone(), fulfillment_lines(f)),
                )
            })
            .collect();
        assert_eq!(
            by_company,
            BTreeMap::from([
                (
                    "UPS".to_string(),
                    (vec!["T1".to_string()], map(&[("A", 1)]))
                ),
                (
                    "FedEx".to_string(),
                    (vec!["T2".to_string()], map(&[("B", 1)]))
                ),
            ]),
            "{shape:?}"
        );
    }
    h.shutdown().await;
}

fn two_location_order(name: &str) -> OrderSpec {
    OrderSpec {
        name: name.into(),
        lines: vec![
            shipsync_sandbox_shopify::LineSpec {
                sku: "A".into(),
                quantity: 1,
                ..Default::default()
            },
            shipsync_sandbox_shopify::LineSpec {
                sku: "B".into(),
                quantity: 2,
                ..Default::default()
            },
        ],
        fulfillment_orders: vec![
            FoSpec {
                location_id: LOC1.into(),
                lines: vec![0],
                status: None,
            },
            FoSpec {
                location_id: LOC2.into(),
                lines: vec![1],
                status: None,
            },
        ],
        ..Default::default()
    }
}

/// An ON_HOLD fulfillment order: the shipment retries, then goes to `error`
/// naming the status; released and reprocessed, it goes out once.
async fn fulfillment_order_on_hold(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in [Shape::Current, Shape::Xml, Shape::Mirror] {
        let (name, _) = h.place_order(&[("A", 1)]);
        let fo = order(&h, &name).fulfillment_orders[0].id.clone();
        h.shopify
            .sandbox
            .set_fulfillment_order_status(&fo, "ON_HOLD");
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 1))
            .package(PackageSpec::new("C1", "T1").line(1, 1));
        let before = creates(&h);
        let number = ship(&h, spec, shape).await;
        let s = wait(&h, &number, "error", shape).await;
        assert!(error_of(&s).contains("ON_HOLD"), "{shape:?}: {s}");
        let retries = s["activity"]
            .as_array()
            .map(|a| a.iter().filter(|x| x["kind"] == "retry").count())
            .unwrap_or(0);
        assert!(retries >= 1, "{shape:?}: it waited and retried first: {s}");
        assert!(order(&h, &name).fulfillments.is_empty(), "{shape:?}");
        assert_eq!(creates(&h), before, "{shape:?}");

        h.shopify.sandbox.set_fulfillment_order_status(&fo, "OPEN");
        let id = s["id"].as_str().expect("id").to_string();
        h.api("POST", &format!("/api/v1/shipments/{id}/reprocess"), None)
            .await
            .expect("reprocess")
            .ok(200)
            .expect("reprocess 200");
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 1)]), "{shape:?}");
    }
    h.shutdown().await;
}

/// A connection naming a location uses only that location's fulfillment
/// orders.
async fn connection_location_only(db_url: String) {
    let mut h = harness(&db_url).await;
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"store": {"location_id": LOC2}})),
    )
    .await
    .expect("patch")
    .ok(200)
    .expect("patch 200");
    for (i, shape) in [Shape::Current, Shape::Xml, Shape::Mirror]
        .into_iter()
        .enumerate()
    {
        let name = format!("#{}", 3001 + i);
        let created = h.place_order_spec(two_location_order(&name));
        let fo_at_loc2 = created.fulfillment_order_ids[1].clone();
        // B is at the connection's location: it goes out, from that FO.
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(2, "B", 2))
            .package(PackageSpec::new("C1", "T1").line(2, 2));
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(
            o.fulfillments[0].fulfillment_order_ids,
            vec![fo_at_loc2.clone()],
            "{shape:?}"
        );
        assert_eq!(fulfilled(&o), map(&[("A", 0), ("B", 2)]), "{shape:?}");

        // A is only at another location: never sent, error names the location.
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 1))
            .package(PackageSpec::new("C2", "T2").line(1, 1));
        let number = ship(&h, spec, shape).await;
        let s = wait(&h, &number, "error", shape).await;
        assert!(
            error_of(&s).contains(LOC1) || error_of(&s).contains("location"),
            "{shape:?}: {s}"
        );
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 1, "{shape:?}");
        assert_eq!(fulfilled(&o), map(&[("A", 0), ("B", 2)]), "{shape:?}");
    }
    h.shutdown().await;
}

/// Lines of two fulfillment orders at two locations shipped together: one
/// fulfillment per fulfillment order.
async fn two_locations_one_shipment(db_url: String) {
    let mut h = harness(&db_url).await;
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let name = format!("#{}", 4001 + i);
        let created = h.place_order_spec(two_location_order(&name));
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 1))
            .line(LineSpec::new(2, "B", 2))
            .package(PackageSpec::new("C1", "T1").line(1, 1).line(2, 2));
        let number = ship(&h, spec, shape).await;
        wait(&h, &number, "completed", shape).await;
        let o = order(&h, &name);
        assert_eq!(o.fulfillments.len(), 2, "{shape:?}: {:?}", o.fulfillments);
        let mut got: Vec<(Vec<String>, BTreeMap<String, u32>)> = o
            .fulfillments
            .iter()
            .map(|f| (f.fulfillment_order_ids.clone(), fulfillment_lines(f)))
            .collect();
        got.sort();
        let mut want = vec![
            (
                vec![created.fulfillment_order_ids[0].clone()],
                map(&[("A", 1)]),
            ),
            (
                vec![created.fulfillment_order_ids[1].clone()],
                map(&[("B", 2)]),
            ),
        ];
        want.sort();
        assert_eq!(got, want, "{shape:?}");
        for f in &o.fulfillments {
            assert_eq!(f.tracking_numbers, vec!["T1"], "{shape:?}");
        }
        assert_eq!(o.display_fulfillment_status, "FULFILLED", "{shape:?}");
    }
    h.shutdown().await;
}

fn fault_options(db_url: &str) -> Options {
    let mut opts = Options::new(db_url);
    // A stalled call gives up after 1 s (the sandbox stalls 1.5 s): an
    // unknown outcome, as with a real timeout.
    opts.engine.http_timeout = Duration::from_secs(1);
    opts.engine.max_attempts = 40;
    opts
}

fn all_kinds() -> Vec<FaultKind> {
    vec![
        FaultKind::Http500,
        FaultKind::Http502,
        FaultKind::Throttled,
        FaultKind::TooManyRequests,
        FaultKind::Timeout,
        FaultKind::ApplyThenDrop,
    ]
}

/// Checks an order against what shipped: every line fulfilled exactly as
/// shipped, never above, and the fulfillments add up.
fn check_exact(h: &Harness, name: &str, shipped: &BTreeMap<String, u32>, fulfillments: usize) {
    let o = order(h, name);
    assert_eq!(&fulfilled(&o), shipped, "{name}: fulfilled == shipped");
    for l in &o.lines {
        assert!(
            l.fulfilled_quantity <= l.quantity,
            "{name}: {} over-fulfilled",
            l.sku
        );
    }
    let mut sum: BTreeMap<String, u32> = shipped.keys().map(|k| (k.clone(), 0)).collect();
    for f in &o.fulfillments {
        for (k, q) in fulfillment_lines(f) {
            *sum.entry(k).or_default() += q;
        }
    }
    assert_eq!(&sum, shipped, "{name}: fulfillments add up");
    assert_eq!(
        o.fulfillments.len(),
        fulfillments,
        "{name}: {:?}",
        o.fulfillments
    );
}

/// Each fault kind once on `fulfillmentCreate` (ApplyThenDrop: it landed but
/// the answer was lost; Timeout: the answer never came) → one fulfillment.
async fn store_fault_each_kind(db_url: String) {
    let mut h = Harness::start(fault_options(&db_url))
        .await
        .expect("harness");
    for kind in all_kinds() {
        let (name, _) = h.place_order(&[("A", 3)]);
        h.shopify.sandbox.set_faults(Faults {
            fail_next: 1,
            kinds: vec![kind],
            mutations_only: true,
            timeout_ms: 1500,
            retry_after_secs: 1,
            ..Default::default()
        });
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 3).shipped(2))
            .package(PackageSpec::new("C1", "T1").line(1, 2));
        let number = ship(&h, spec, Shape::Current).await;
        let s = wait(&h, &number, "completed", Shape::Current).await;
        let faulted = h
            .shopify
            .sandbox
            .requests()
            .iter()
            .filter(|r| r.fault == Some(kind))
            .count();
        // A stalled request the client gave up on is never recorded by the
        // sandbox (its work is dropped): the failed attempt shows instead.
        let retried = s["activity"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["kind"] == "retry"));
        let seen = if kind == FaultKind::Timeout {
            retried
        } else {
            faulted >= 1
        };
        assert!(seen, "{kind:?}: the fault happened: {s}");
        check_exact(&h, &name, &map(&[("A", 2)]), 1);
        let sf = s["store_fulfillments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(sf.len(), 1, "{kind:?}: {s}");
    }
    h.shutdown().await;
}

/// fail_rate 0.3 with every fault kind, reads and writes, over 20 shipments
/// (two partial shipments for each of ten orders) → all completed, no
/// duplicate fulfillment.
async fn store_faults_random(db_url: String) {
    let mut h = Harness::start(fault_options(&db_url))
        .await
        .expect("harness");
    h.shopify.sandbox.set_faults(Faults {
        fail_rate: 0.3,
        kinds: all_kinds(),
        mutations_only: false,
        timeout_ms: 1500,
        retry_after_secs: 1,
        ..Default::default()
    });
    let mut orders = Vec::new();
    let mut numbers = Vec::new();
    for i in 0..10 {
        let shape = SHAPES[i % SHAPES.len()];
        let (name, _) = h.place_order(&[("A", 4), ("B", 2)]);
        let first = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 4).shipped(1))
            .line(LineSpec::new(2, "B", 2).shipped(1))
            .package(
                PackageSpec::new("C1", format!("T{i}a"))
                    .line(1, 1)
                    .line(2, 1),
            );
        numbers.push(ship(&h, first, shape).await);
        let second = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 4).shipped(2))
            .package(PackageSpec::new("C2", format!("T{i}b")).line(1, 2));
        numbers.push(ship(&h, second, shape).await);
        orders.push(name);
    }
    for n in &numbers {
        h.wait_shipment(n, &["completed"], Duration::from_secs(240))
            .await
            .expect("completed despite faults");
    }
    let faulted = h
        .shopify
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    assert!(faulted >= 5, "faults were injected ({faulted})");
    h.shopify.sandbox.set_faults(Faults::default());
    for name in &orders {
        check_exact(&h, name, &map(&[("A", 3), ("B", 1)]), 2);
    }
    h.shutdown().await;
}

/// Components (and a SKU) that match no order line: the whole shipment goes
/// to `error` naming the SKUs; nothing is sent, not even the line that matches.
async fn unmatched_components(db_url: String) {
    let mut h = harness(&db_url).await;
    for shape in SHAPES {
        let (name, _) = h.place_order(&[("A", 1)]);
        let stray_kit = KitSpec {
            kit_line_number: 5,
            kit_sku: "KIT-9".into(),
            kit_ordered: 1,
            kit_customer_line_number: None,
        };
        let spec = ShipmentSpec::new(bare(&name))
            .line(LineSpec::new(1, "A", 1))
            .line(LineSpec::new(6, "COMP-X", 2).kit(stray_kit))
            .line(LineSpec::new(7, "ZZZ-1", 1))
            .package(
                PackageSpec::new("C1", "T1")
                    .line(1, 1)
                    .line(6, 2)
                    .line(7, 1),
            );
        let before = creates(&h);
        let number = ship(&h, spec, shape).await;
        let s: Value = wait(&h, &number, "error", shape).await;
        let err = error_of(&s);
        assert!(err.contains("COMP-X"), "{shape:?}: {err}");
        assert!(err.contains("ZZZ-1"), "{shape:?}: {err}");
        assert!(order(&h, &name).fulfillments.is_empty(), "{shape:?}");
        assert_eq!(creates(&h), before, "{shape:?}");
    }
    h.shutdown().await;
}

both_backends!(
    tracking_replacement,
    older_version_changes_nothing,
    deposco_statuses,
    shipped_never_goes_back,
    new_package_adds_only_the_difference,
    correction_during_a_failing_run,
    carriers,
    fulfillment_order_on_hold,
    connection_location_only,
    two_locations_one_shipment,
    store_fault_each_kind,
    store_faults_random,
    unmatched_components,
);
