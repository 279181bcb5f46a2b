//! The mappings preview (issue 15, item 6): an edited document run over the
//! merchant's latest orders and shipments shows what would be sent
//! differently and which records would change state, and nothing is saved
//! or sent (the sandboxes' request logs stay as they were).

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{LineSpec as DeposcoLine, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Options};

use crate::orders::{enable_sales_orders, paid_order, run_orders, wait_order};
use crate::support::SETTLE;

fn path(h: &Harness) -> String {
    format!("/api/v1/merchants/{}/mappings", h.merchant_id)
}

/// What the sandboxes were asked so far: Deposco's requests and sales
/// orders, Shopify's requests and fulfillments.
fn sent(h: &Harness) -> (u64, usize, usize, usize) {
    (
        h.deposco.sandbox.request_count(),
        h.deposco.sandbox.sales_orders().len(),
        h.shopify.sandbox.requests().len(),
        h.shopify.sandbox.fulfillments_created(),
    )
}

fn item<'a>(items: &'a [Value], kind: &str, name: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["kind"] == kind && i["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {items:?}"))
}

fn change<'a>(i: &'a Value, field: &str) -> &'a Value {
    i["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == field)
        .unwrap_or_else(|| panic!("no change of {field} in {i}"))
}

async fn preview_shows_what_would_change_and_sends_nothing(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    enable_sales_orders(&h, "").await;
    let mut doc: Value = h
        .api("GET", &path(&h), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    doc["sku_aliases"] = json!([{"store_sku": "TSHIRT-RED-M", "warehouse_item": "100234"}]);
    let stored: Value = h
        .api("PUT", &path(&h), Some(doc))
        .await
        .unwrap()
        .ok(200)
        .unwrap();

    // A shipped order whose item went out by its alias.
    h.place_order_spec(paid_order("#7001", &[("TSHIRT-RED-M", 2), ("B", 1)]));
    run_orders(&h).await;
    wait_order(&h, "#7001", "open").await;
    let (number, _) = h
        .ship(
            ShipmentSpec::new("7001")
                .line(DeposcoLine::new(1, "100234", 2))
                .line(DeposcoLine::new(2, "B", 1))
                .package(PackageSpec::new("C1", "T7001").line(1, 2).line(2, 1)),
            Shape::Current,
        )
        .await
        .unwrap();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    // A shipment in error: the warehouse ships an item number no alias
    // turns into the order's SKU.
    h.place_order_spec(paid_order("#7002", &[("MUG", 1)]));
    run_orders(&h).await;
    wait_order(&h, "#7002", "open").await;
    let (mug, _) = h
        .ship(
            ShipmentSpec::new("7002")
                .line(DeposcoLine::new(1, "100999", 1))
                .package(PackageSpec::new("C2", "T7002").line(1, 1)),
            Shape::Current,
        )
        .await
        .unwrap();
    h.wait_shipment(&mug, &["error"], SETTLE).await.unwrap();
    // An order waiting for a rule for its method.
    let mut spec = paid_order("#6001", &[("A", 1)]);
    spec.shipping_line = Some("Free shipping over $50".into());
    spec.shipping_line_code = Some("FREE50".into());
    h.place_order_spec(spec);
    run_orders(&h).await;
    let unmapped = wait_order(&h, "#6001", "error").await;
    let before = sent(&h);

    // The edit: a rule for the method, the T-shirt's alias gone, one for
    // the mug.
    let mut edited = stored.clone();
    edited["ship_methods"]["rules"]
        .as_array_mut()
        .unwrap()
        .insert(
            0,
            json!({"match": {"code": "free50"}, "ship_via": "UPS Ground", "carrier": "UPS",
               "service": "Ground"}),
        );
    edited["sku_aliases"] = json!([{"store_sku": "MUG", "warehouse_item": "100999"}]);
    let answer: Value = h
        .api(
            "POST",
            &format!("{}/preview", path(&h)),
            Some(edited.clone()),
        )
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let items = answer["items"].as_array().unwrap();

    let o = item(items, "order", "#6001");
    assert_eq!(o["id"], unmapped["id"]);
    assert_eq!(o["status_before"], "error", "{o}");
    assert_eq!(o["status_after"], "queued", "{o}");
    let ship_via = change(o, "shipVia");
    assert_eq!(ship_via["before"], Value::Null, "{o}");
    assert_eq!(ship_via["after"], "UPS Ground", "{o}");
    assert_eq!(change(o, "shipVendor")["after"], "UPS");
    assert!(
        change(o, "error")["before"]
            .as_str()
            .unwrap()
            .contains("unmapped shipping method"),
        "{o}"
    );

    // The sent order would go out with the store SKU as item number; its
    // state stays (Deposco has it: open, shipped or closed by now).
    let o = item(items, "order", "#7001");
    assert_eq!(o["status_before"], o["status_after"], "{o}");
    assert!(
        !["error", "queued"].contains(&o["status_after"].as_str().unwrap()),
        "{o}"
    );
    let line = change(o, "orderLines[1].item");
    assert_eq!(
        (&line["before"], &line["after"]),
        (&json!("100234"), &json!("TSHIRT-RED-M"))
    );

    // The shipment's line would reach the store as the bare item number.
    let s = item(items, "shipment", "#7001");
    let skus: Vec<&Value> = s["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["field"].as_str().unwrap().ends_with(".store_sku"))
        .collect();
    assert_eq!(skus.len(), 1, "{s}");
    assert_eq!(skus[0]["before"], "TSHIRT-RED-M");
    assert_eq!(skus[0]["after"], "100234");
    assert_eq!(s["status_before"], "completed");
    assert_eq!(s["status_after"], "completed", "a sent shipment stays: {s}");
    // The ledger, which placed the T-shirts on their store line, would not
    // find the bare item number in the order: the shipment would not go.
    let placed: Vec<&Value> = s["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["field"].as_str().unwrap().starts_with("store_lines["))
        .collect();
    assert!(
        placed.iter().all(|c| c["after"].is_null()) && placed.iter().any(|c| c["before"] == 2),
        "the shipment's units would no longer be placed: {s}"
    );
    assert_eq!(change(s, "ledger_error")["before"], Value::Null);
    assert!(change(s, "ledger_error")["after"].is_string(), "{s}");

    // The mug's shipment would reach its store line: its error clears.
    let s = item(items, "shipment", "#7002");
    assert_eq!(s["status_before"], "error", "{s}");
    assert_eq!(s["status_after"], "completed", "{s}");
    let line = change(s, "lines[1].store_sku");
    assert_eq!(
        (&line["before"], &line["after"]),
        (&json!("100999"), &json!("MUG"))
    );
    assert!(change(s, "ledger_error")["before"].is_string(), "{s}");
    let o = item(items, "order", "#7002");
    let line = change(o, "orderLines[1].item");
    assert_eq!(
        (&line["before"], &line["after"]),
        (&json!("MUG"), &json!("100999"))
    );

    // Only what differs is listed: the untouched line B is not.
    assert_eq!(items.len(), 5, "{answer}");

    // Nothing was sent, saved or changed.
    assert_eq!(sent(&h), before);
    let now: Value = h
        .api("GET", &path(&h), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(now, stored);
    wait_order(&h, "#6001", "error").await;

    // The stored mappings change nothing; `limit` is checked.
    let same: Value = h
        .api("POST", &format!("{}/preview", path(&h)), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(same, json!({"items": []}));
    let r = h
        .api("POST", &format!("{}/preview?limit=0", path(&h)), None)
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{r:?}");
    let r = h
        .api(
            "POST",
            &format!("{}/preview?limit=1", path(&h)),
            Some(edited),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["items"].as_array().unwrap().len() <= 2, "{r:?}");
    h.shutdown().await;
}

async fn a_bad_document_is_refused_naming_the_rule(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let r = h
        .api(
            "POST",
            &format!("{}/preview", path(&h)),
            Some(
                json!({"sku_aliases": [{"store_sku": "S", "warehouse_item": "1"},
                                        {"store_sku": "S", "warehouse_item": "2"}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.body["error"]["code"], "invalid_mapping", "{r:?}");
    assert_eq!(r.body["error"]["rule"], "sku_aliases[1]", "{r:?}");
    let r = h
        .api(
            "POST",
            "/api/v1/merchants/mer_nothing/mappings/preview",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    h.shutdown().await;
}

/// The mappings page for a Merchant user: its own merchant's only, CSRF
/// checked, a refused rule shown at its row with nothing saved, a good
/// form saved and logged as the user.
async fn the_mappings_page_for_a_merchant_user(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (other, _) = crate::roles::other_tenant(&h).await;
    h.api(
        "POST",
        "/api/v1/users",
        Some(
            json!({"email": "brand@example.com", "password": "a long password",
                    "role": "merchant", "merchant_id": h.merchant_id}),
        ),
    )
    .await
    .unwrap()
    .ok(201)
    .unwrap();
    let stored: Value = h
        .api("GET", &path(&h), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    let mut b = crate::ui::Browser::new(h.url());
    b.sign_in("brand@example.com", "a long password").await;
    let page_path = format!("/merchants/{}/mappings", h.merchant_id);
    let (st, merchant) = b.get(&format!("/merchants/{}", h.merchant_id)).await;
    assert_eq!(st, 200);
    assert!(
        merchant.contains(&format!("href=\"{page_path}\"")),
        "linked from the merchant"
    );
    let (st, page) = b.get(&page_path).await;
    assert_eq!(st, 200, "{page}");
    let first = stored["ship_methods"]["rules"][0]["ship_via"]
        .as_str()
        .unwrap();
    assert!(
        page.contains("Shipping methods")
            && page.contains("SKU aliases")
            && page.contains("Kit recipes")
            && page.contains("Carriers")
            && page.contains(&format!("name=\"rule0_ship_via\" value=\"{first}\"")),
        "{page}"
    );
    let (st, _) = b.get(&format!("/merchants/{other}/mappings")).await;
    assert_eq!(st, 404);
    let csrf = crate::ui::Browser::csrf(&page);

    // Without the form's token: refused.
    let (st, _) = b.post(&page_path, &[("action", "save")]).await;
    assert_eq!(st, 403);
    // Two rules with the same match: 422, the second rule named at its row.
    let twice = [
        ("csrf", csrf.as_str()),
        ("rules", "2"),
        ("rule0_title", "Express"),
        ("rule0_ship_via", "UPS Next Day Air"),
        ("rule0_case_insensitive", "1"),
        ("rule1_title", "Express"),
        ("rule1_ship_via", "FedEx Priority"),
        ("rule1_case_insensitive", "1"),
        ("aliases", "0"),
        ("carriers", "0"),
        ("action", "save"),
    ];
    let (st, refused) = b.post(&page_path, &twice).await;
    assert_eq!(st, 422, "{refused}");
    let row = refused
        .find("name=\"rule1_ship_via\"")
        .expect("the second rule's row");
    let error = refused.find("field-error").expect("an error at a row");
    assert!(error > row, "the error follows the refused rule's row");
    assert!(
        refused[error..].contains("ship_methods.rules[1]"),
        "{refused}"
    );
    assert!(
        refused.contains("value=\"FedEx Priority\""),
        "the form as typed"
    );
    let now: Value = h
        .api("GET", &path(&h), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(now, stored, "nothing saved");

    // A good form: saved, logged as the user.
    let good = [
        ("csrf", csrf.as_str()),
        ("rules", "1"),
        ("rule0_title", "Express"),
        ("rule0_ship_via", "UPS Next Day Air"),
        ("rule0_case_insensitive", "1"),
        ("default_ship_via", "Ground"),
        ("aliases", "1"),
        ("alias0_store_sku", "TSHIRT-RED-M"),
        ("alias0_warehouse_item", "100234"),
        ("carriers", "0"),
        ("recipes", "KIT-1 = A x2, B"),
        ("action", "save"),
    ];
    let (st, to) = b.post(&page_path, &good).await;
    assert_eq!(st, 303, "{to}");
    let now: Value = h
        .api("GET", &path(&h), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(
        now["ship_methods"]["rules"].as_array().unwrap().len(),
        1,
        "{now}"
    );
    assert_eq!(now["ship_methods"]["default"]["ship_via"], "Ground");
    assert_eq!(now["sku_aliases"][0]["warehouse_item"], "100234");
    assert_eq!(
        now["kit_recipes"][0]["components"],
        json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}])
    );
    let db = h.db().await.unwrap();
    let log = shipsync_db::activity::of(db.pool(), &h.merchant_id)
        .await
        .unwrap();
    db.close().await;
    assert!(
        log.iter()
            .any(|a| a.kind == "mappings" && a.message.contains("brand@example.com")),
        "the change is logged as the user"
    );
    h.shutdown().await;
}

both_backends!(
    preview_shows_what_would_change_and_sends_nothing,
    a_bad_document_is_refused_naming_the_rule,
    the_mappings_page_for_a_merchant_user
);
