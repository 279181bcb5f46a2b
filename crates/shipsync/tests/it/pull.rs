//! The scheduled shipment pull: the fallback that finds what webhooks missed
//! (scenario 7), run-now, run status, and repeats that change nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{ItemSpec, KitSpec, LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Options};

use crate::support::{SETTLE, run_cli};

/// Runs the shipments channel now and waits for it and its work.
async fn pull(h: &Harness) -> Value {
    h.run_channel("shipments", SETTLE).await.unwrap()
}

async fn webhook_lost_pull_finds_it(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (name, _) = h.place_order(&[("A", 1)]);
    // Shipped, but the webhook never arrives.
    let record = h.deposco.sandbox.add_shipment(
        ShipmentSpec::new(name.trim_start_matches('#'))
            .line(LineSpec::new(1, "A", 1))
            .package(PackageSpec::new("C1", "T7").line(1, 1)),
    );
    let run = pull(&h).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["new"], 1, "{run}");
    let s = h
        .wait_shipment(&record.number, &["completed"], SETTLE)
        .await
        .unwrap();
    assert_eq!(s["first_seen_via"], "poll");
    assert_eq!(s["sources"], json!(["poll"]));
    let order = h.shopify.sandbox.order(&name).unwrap();
    assert_eq!(order.fulfillments.len(), 1);
    assert_eq!(
        order.fulfillments[0].tracking_numbers,
        vec!["T7".to_string()]
    );

    // A second pull over the same shipment changes nothing.
    let again = pull(&h).await;
    assert_eq!(again["counts"]["new"], 0, "{again}");
    assert_eq!(again["counts"]["updated"], 0, "{again}");
    assert_eq!(
        h.shopify.sandbox.order(&name).unwrap().fulfillments.len(),
        1
    );

    // The channel shows the run and when it completed.
    let ch = h
        .api(
            "GET",
            &format!("/api/v1/connections/{}/channels/shipments", h.connection_id),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(ch["last_run"]["status"], "succeeded");
    assert!(ch["last_completed_at"].is_string(), "{ch}");
    h.shutdown().await;
}

async fn webhook_then_pull_is_one_shipment(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (name, ids) = h.place_order(&[("KIT-1", 2)]);
    let kit = KitSpec {
        kit_line_number: 1,
        kit_sku: "KIT-1".into(),
        kit_ordered: 2,
        kit_customer_line_number: Some(ids[0].clone()),
    };
    let (number, status) = h
        .ship(
            ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(2, "COMP-A", 2).kit(kit.clone()))
                .line(LineSpec::new(3, "COMP-B", 4).kit(kit))
                .package(PackageSpec::new("C1", "T1").line(2, 2).line(3, 4)),
            Shape::Xml,
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let run = pull(&h).await;
    assert_eq!(run["counts"]["new"], 0, "{run}");
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    assert_eq!(s["first_seen_via"], "webhook");
    assert_eq!(s["sources"], json!(["webhook", "poll"]));
    let order = h.shopify.sandbox.order(&name).unwrap();
    assert_eq!(order.fulfillments.len(), 1);
    assert_eq!(order.lines[0].fulfilled_quantity, 2);
    h.shutdown().await;
}

async fn run_now_refusals(db_url: String) {
    let mut opts = Options::new(db_url);
    opts.enable = false;
    let h = Harness::start(opts).await.expect("harness");
    let path = format!(
        "/api/v1/connections/{}/channels/shipments/runs",
        h.connection_id
    );
    let r = h.api("POST", &path, None).await.unwrap();
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["error"]["code"], "channel_disabled");
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"enabled": true})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}/channels/shipments", h.connection_id),
        Some(json!({"enabled": true})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    // A slow warehouse keeps the first run going: a second one is refused.
    h.deposco
        .sandbox
        .set_faults(shipsync_sandbox_deposco::Faults {
            slow_ms: 1500,
            ..Default::default()
        });
    let first = h.api("POST", &path, None).await.unwrap().ok(202).unwrap();
    let r = h.api("POST", &path, None).await.unwrap();
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["error"]["code"], "run_in_progress");
    assert_eq!(r.body["error"]["run_id"], first["id"]);
    h.deposco
        .sandbox
        .set_faults(shipsync_sandbox_deposco::Faults::default());
    let id = first["id"].as_str().unwrap();
    let start = Instant::now();
    loop {
        let run = h
            .api("GET", &format!("{path}/{id}"), None)
            .await
            .unwrap()
            .ok(200)
            .unwrap();
        if run["status"] == "succeeded" {
            break;
        }
        assert!(start.elapsed() < SETTLE, "{run}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Unknown run ids answer 404.
    let r = h
        .api("GET", &format!("{path}/run_nope"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    h.shutdown().await;
}

/// `shipsync sync shipments` as a separate process on the same database.
async fn sync_shipments_command(db_url: String) {
    let mut h = Harness::start(Options::new(db_url.clone()))
        .await
        .expect("harness");
    let (name, _) = h.place_order(&[("A", 3)]);
    let record = h.deposco.sandbox.add_shipment(
        ShipmentSpec::new(name.trim_start_matches('#'))
            .line(LineSpec::new(1, "A", 3))
            .package(PackageSpec::new("C1", "T-CLI").line(1, 3)),
    );
    let out = run_cli(
        &h,
        &db_url,
        &["sync", "shipments", "--connection", &h.connection_id],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 new"), "{stdout}");
    let s = h
        .wait_shipment(&record.number, &["completed"], SETTLE)
        .await
        .unwrap();
    assert_eq!(s["first_seen_via"], "poll");
    assert_eq!(
        h.shopify.sandbox.order(&name).unwrap().fulfillments.len(),
        1
    );

    // Bad input: a clear message and a non-zero exit.
    let out = run_cli(
        &h,
        &db_url,
        &["sync", "shipments", "--connection", "con_nope"],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("no connection con_nope"), "{err}");
    let out = run_cli(
        &h,
        &db_url,
        &[
            "sync",
            "shipments",
            "--connection",
            &h.connection_id,
            "--since",
            "yesterday",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    h.shutdown().await;
}

/// 200 orders, 20 % of their webhooks dropped by the sender, then one
/// shipments run: every order fulfilled exactly once, the dropped ones found
/// by the fallback; pulling again changes nothing.
async fn dropped_webhooks_are_found_by_the_pull(db_url: String) {
    let mut opts = Options::new(db_url);
    // A Shopify Plus-sized bucket keeps the test quick; the logic is the same.
    opts.shopify_throttle = shipsync_sandbox_shopify::ThrottleConfig {
        maximum_available: 20_000.0,
        restore_rate: 10_000.0,
    };
    let mut h = Harness::start(opts).await.expect("harness");
    h.deposco
        .sandbox
        .set_faults(shipsync_sandbox_deposco::Faults {
            drop_webhook_rate: 0.2,
            ..Default::default()
        });
    let mut orders = Vec::new();
    let mut dropped = 0;
    for i in 0..200u32 {
        let (name, _) = h.place_order(&[("A", 1 + i % 3)]);
        let record = h.deposco.sandbox.add_shipment(
            ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(1, "A", 1 + i % 3))
                .package(PackageSpec::new("C1", format!("T{i:05}")).line(1, 1 + i % 3)),
        );
        let r = h
            .deposco
            .sandbox
            .post_webhook(
                &record.number,
                &h.webhook_url,
                Shape::Current,
                h.signing(false),
            )
            .await
            .unwrap();
        match r.status() {
            None => dropped += 1,
            Some(s) => assert_eq!(s, 202),
        }
        orders.push((name, 1 + i % 3));
    }
    assert!(dropped > 0, "the sandbox dropped nothing");
    h.settle(SETTLE).await.unwrap();
    let run = pull(&h).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["new"], dropped, "{run}");
    assert_eq!(run["counts"]["fetched"], 200, "{run}");
    h.settle(SETTLE).await.unwrap();
    for (name, qty) in &orders {
        let o = h.shopify.sandbox.order(name).unwrap();
        assert_eq!(o.fulfillments.len(), 1, "{name}");
        assert_eq!(o.lines[0].fulfilled_quantity, *qty, "{name}");
    }
    let polled = h
        .api(
            "GET",
            &format!(
                "/api/v1/shipments?source=poll&limit=500&merchant_id={}",
                h.merchant_id
            ),
            None,
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let found_by_fallback = polled["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["first_seen_via"] == "poll")
        .count();
    assert_eq!(found_by_fallback, dropped as usize);
    let again = pull(&h).await;
    assert_eq!(again["counts"]["new"], 0, "{again}");
    assert_eq!(again["counts"]["updated"], 0, "{again}");
    assert_eq!(h.shopify.sandbox.fulfillments_created(), 200);
    h.shutdown().await;
}

/// Scenario 5 through the pull alone, with no kit links in the payloads:
/// the kit recipe comes from Deposco's item data.
async fn scenario_5_pulled_kits_use_item_recipes(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.deposco.sandbox.add_item(
        ItemSpec::new("KIT-1")
            .component("COMP-A", 1)
            .component("COMP-B", 2),
    );
    let (name, ids) = h.place_order(&[("KIT-1", 2)]);
    let first = h.deposco.sandbox.add_shipment(
        ShipmentSpec::new(name.trim_start_matches('#'))
            .line(LineSpec::new(2, "COMP-A", 2))
            .line(LineSpec::new(3, "COMP-B", 2))
            .package(PackageSpec::new("C1", "T1").line(2, 2).line(3, 2)),
    );
    let run = pull(&h).await;
    assert_eq!(run["counts"]["new"], 1, "{run}");
    h.wait_shipment(&first.number, &["completed"], SETTLE)
        .await
        .unwrap();
    let order = h.shopify.sandbox.order(&name).unwrap();
    assert_eq!(order.lines[0].id, ids[0]);
    assert_eq!(
        order.lines[0].fulfilled_quantity, 1,
        "complete_kits: one whole kit after shipment 1"
    );
    let second = h.deposco.sandbox.add_shipment(
        ShipmentSpec::new(name.trim_start_matches('#'))
            .line(LineSpec::new(3, "COMP-B", 2))
            .package(PackageSpec::new("C2", "T2").line(3, 2)),
    );
    let run = pull(&h).await;
    assert_eq!(run["counts"]["new"], 1, "{run}");
    h.wait_shipment(&second.number, &["completed"], SETTLE)
        .await
        .unwrap();
    let order = h.shopify.sandbox.order(&name).unwrap();
    assert_eq!(order.lines[0].fulfilled_quantity, 2);
    assert_eq!(order.fulfillments.len(), 2);
    h.shutdown().await;
}

/// Reset re-fetches the shipment from Deposco: a tracking number corrected
/// there (without a new webhook) reaches the store.
async fn reset_refetches_from_deposco(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (name, _) = h.place_order(&[("A", 1)]);
    let (number, status) = h
        .ship(
            ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(1, "A", 1))
                .package(PackageSpec::new("C1", "T1").line(1, 1)),
            Shape::Current,
        )
        .await
        .unwrap();
    assert_eq!(status, 202);
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    h.deposco.sandbox.update_shipment(&number, |spec| {
        spec.packages[0].tracking_number = "T9".into();
        spec.tracking_number = Some("T9".into());
    });
    let id = s["id"].as_str().unwrap();
    let after = h
        .api("POST", &format!("/api/v1/shipments/{id}/reset"), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(after["id"], id);
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let order = h.shopify.sandbox.order(&name).unwrap();
    assert_eq!(order.fulfillments.len(), 1);
    assert_eq!(
        order.fulfillments[0].tracking_numbers,
        vec!["T9".to_string()]
    );
    assert!(
        s["activity"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["message"]
                .as_str()
                .unwrap_or("")
                .contains("re-fetched from Deposco")),
        "{s}"
    );
    h.shutdown().await;
}

both_backends!(
    webhook_lost_pull_finds_it,
    webhook_then_pull_is_one_shipment,
    run_now_refusals,
    sync_shipments_command,
    dropped_webhooks_are_found_by_the_pull,
    scenario_5_pulled_kits_use_item_recipes,
    reset_refetches_from_deposco
);
