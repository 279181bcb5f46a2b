//! The shortest path: one webhook, one fulfillment (scenario 1), on both
//! backends.

use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Options};

use crate::support::SETTLE;

async fn webhook_becomes_one_fulfillment(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (name, ids) = h.place_order(&[("A", 2)]);
    let spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .line(LineSpec::new(1, "A", 2))
        .package(PackageSpec::new("C1", "T1").line(1, 2));
    let (number, status) = h.ship(spec, Shape::Current).await.expect("ship");
    assert_eq!(status, 202);
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .expect("completed");
    assert_eq!(s["first_seen_via"], "webhook");
    let order = h.shopify.sandbox.order(&name).expect("order");
    assert_eq!(order.fulfillments.len(), 1);
    assert_eq!(
        order.fulfillments[0].tracking_numbers,
        vec!["T1".to_string()]
    );
    assert_eq!(order.lines[0].id, ids[0]);
    assert_eq!(order.lines[0].fulfilled_quantity, 2);
    h.shutdown().await;
}

both_backends!(webhook_becomes_one_fulfillment);
