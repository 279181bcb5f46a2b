//! A merchant's mappings (issue 15): ship-method rules decide `shipVia`
//! (an unmapped method waits in `error` until a rule exists), SKU aliases
//! work both ways, a person's kit recipe wins over a learned one, carrier
//! mappings reach the store's fulfillments; the document round-trips
//! through the TOML file; bad documents are refused whole, naming the rule;
//! only those who see the merchant see its mappings.

use serde_json::{Value, json};
use shipsync_core::mappings::RecipeSource;
use shipsync_sandbox_deposco::{LineSpec as DeposcoLine, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{Harness, Options};

use crate::orders::{enable_sales_orders, paid_order, run_orders, wait_order};
use crate::roles::{call, other_tenant, user_with_token};
use crate::support::{SETTLE, run_cli};

fn path(h: &Harness) -> String {
    format!("/api/v1/merchants/{}/mappings", h.merchant_id)
}

async fn get(h: &Harness) -> Value {
    h.api("GET", &path(h), None).await.unwrap().ok(200).unwrap()
}

async fn put(h: &Harness, doc: Value) -> Value {
    h.api("PUT", &path(h), Some(doc))
        .await
        .unwrap()
        .ok(200)
        .unwrap()
}

/// The merchant's mappings changes, as logged: (who, changed sections).
async fn changes(h: &Harness) -> Vec<(String, Vec<String>)> {
    let db = h.db().await.unwrap();
    let rows = shipsync_db::activity::of(db.pool(), &h.merchant_id)
        .await
        .unwrap();
    db.close().await;
    rows.iter()
        .filter(|a| a.kind == "mappings")
        .map(|a| {
            let v: Value = serde_json::from_str(&a.message).unwrap();
            let sections = v["changes"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            (v["by"].as_str().unwrap_or_default().to_string(), sections)
        })
        .collect()
}

async fn unmapped_method_waits_until_a_rule_exists(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    enable_sales_orders(&h, "").await;
    // The built-in rules are the new merchant's, visible; no default.
    let shown = get(&h).await;
    assert_eq!(shown["ship_methods"]["default"], Value::Null, "{shown}");
    assert!(
        shown["ship_methods"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["match"]["title"] == "express" && r["ship_via"] == "Expedited"),
        "{shown}"
    );

    let mut spec = paid_order("#6001", &[("A", 1)]);
    spec.shipping_line = Some("Free shipping over $50".into());
    spec.shipping_line_code = Some("FREE50".into());
    h.place_order_spec(spec);
    run_orders(&h).await;
    let o = wait_order(&h, "#6001", "error").await;
    let error = o["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("unmapped shipping method 'Free shipping over $50'"),
        "{o}"
    );
    assert!(h.deposco.sandbox.sales_orders().is_empty());

    // A rule on the code (any case), with carrier and service.
    let mut doc = shown.clone();
    doc["ship_methods"]["rules"].as_array_mut().unwrap().insert(
        0,
        json!({"match": {"code": "free50"}, "ship_via": "UPS Ground", "carrier": "UPS",
                   "service": "Ground"}),
    );
    let stored = put(&h, doc).await;
    assert_eq!(stored["ship_methods"]["rules"][0]["ship_via"], "UPS Ground");
    let id = o["id"].as_str().unwrap();
    h.api("POST", &format!("/api/v1/orders/{id}/reprocess"), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    wait_order(&h, "#6001", "open").await;
    let so = h.deposco.sandbox.sales_order("6001").expect("sent");
    assert_eq!(so.body["shipVia"], "UPS Ground", "{:?}", so.body);
    assert_eq!(so.body["shipVendor"], "UPS");
    assert_eq!(so.body["shipMethod"], "Ground");

    // An order without a shipping line sends no shipVia, as before.
    let mut spec = paid_order("#6002", &[("A", 1)]);
    spec.shipping_line = None;
    h.place_order_spec(spec);
    run_orders(&h).await;
    wait_order(&h, "#6002", "open").await;
    let so = h.deposco.sandbox.sales_order("6002").expect("sent");
    assert!(so.body.get("shipVia").is_none(), "{:?}", so.body);

    // The change is in the merchant's activity, with who and what.
    assert_eq!(
        changes(&h).await,
        vec![(
            "administrator token".to_string(),
            vec!["ship_methods".to_string()]
        )]
    );
    h.shutdown().await;
}

async fn aliases_work_both_ways(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    enable_sales_orders(&h, "").await;
    let mut doc = get(&h).await;
    doc["sku_aliases"] = json!([{"store_sku": "TSHIRT-RED-M", "warehouse_item": "100234"}]);
    put(&h, doc).await;
    h.place_order_spec(paid_order("#7001", &[("TSHIRT-RED-M", 2), ("B", 1)]));
    run_orders(&h).await;
    wait_order(&h, "#7001", "open").await;
    let so = h.deposco.sandbox.sales_order("7001").expect("sent");
    let skus: Vec<&str> = so.lines.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, ["100234", "B"]);

    // Deposco ships the item by its number, without the store's line ids:
    // only the alias can tell which store line it is.
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
    let o = wait_order(&h, "#7001", "shipped").await;
    assert_eq!(o["lines"][0]["sku"], "TSHIRT-RED-M");
    assert_eq!(o["lines"][0]["shipped_quantity"], 2, "{o}");
    assert_eq!(o["lines"][0]["fulfilled_quantity"], 2, "{o}");
    let store = h.shopify.sandbox.order("#7001").unwrap();
    assert_eq!(store.fulfillments.len(), 1);
    let units: u32 = store.fulfillments[0]
        .line_items
        .iter()
        .map(|l| l.quantity)
        .sum();
    assert_eq!(units, 3);
    h.shutdown().await;
}

async fn a_persons_recipe_wins_over_a_learned_one(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    // Learned (e.g. from an earlier webhook): KIT-1 = COMP-A + COMP-B.
    let db = h.db().await.unwrap();
    for (comp, n) in [("COMP-A", 1), ("COMP-B", 1)] {
        shipsync_db::recipes::save(
            db.pool(),
            &h.merchant_id,
            "KIT-1",
            comp,
            n,
            RecipeSource::Webhook,
        )
        .await
        .unwrap();
    }
    shipsync_db::recipes::save(
        db.pool(),
        &h.merchant_id,
        "KIT-2",
        "COMP-X",
        3,
        RecipeSource::Items,
    )
    .await
    .unwrap();
    db.close().await;
    let shown = get(&h).await;
    assert_eq!(
        shown["kit_recipes"],
        json!([
            {"kit_sku": "KIT-1", "components": [{"sku": "COMP-A", "quantity": 1}, {"sku": "COMP-B", "quantity": 1}], "source": "webhook"},
            {"kit_sku": "KIT-2", "components": [{"sku": "COMP-X", "quantity": 3}], "source": "items"}
        ])
    );
    // A person says KIT-1 is COMP-A + 2 × COMP-C.
    let mut doc = shown.clone();
    doc["kit_recipes"][0] = json!({"kit_sku": "KIT-1", "components": [
        {"sku": "COMP-A", "quantity": 1}, {"sku": "COMP-C", "quantity": 2}]});
    let stored = put(&h, doc).await;
    assert_eq!(stored["kit_recipes"][0]["source"], "person", "{stored}");
    assert_eq!(stored["kit_recipes"][1]["source"], "items", "{stored}");

    let (name, _) = h.place_order(&[("KIT-1", 1)]);
    let (number, _) = h
        .ship(
            ShipmentSpec::new(name.trim_start_matches('#'))
                .line(DeposcoLine::new(1, "COMP-A", 1))
                .line(DeposcoLine::new(2, "COMP-C", 2))
                .package(PackageSpec::new("C1", "TKIT").line(1, 1).line(2, 2)),
            Shape::Current,
        )
        .await
        .unwrap();
    let s = h
        .wait_shipment(&number, &["completed", "error"], SETTLE)
        .await
        .unwrap();
    assert_eq!(s["status"], "completed", "{s}");
    let store = h.shopify.sandbox.order(&name).unwrap();
    assert_eq!(store.fulfillments.len(), 1, "{store:?}");
    assert_eq!(store.fulfillments[0].line_items[0].quantity, 1);
    h.shutdown().await;
}

async fn carrier_mapping_reaches_the_fulfillment(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let mut doc = get(&h).await;
    doc["carriers"] = json!([{"warehouse_carrier": "ACME Freight", "store_company": "Acme Freight Co",
                              "tracking_url_template": "https://track.acme.example/{tracking_number}"}]);
    put(&h, doc).await;
    // The merchant's older field shows the same carriers.
    let m = h
        .api("GET", &format!("/api/v1/merchants/{}", h.merchant_id), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(
        m["carrier_overrides"],
        json!({"ACME Freight": "Acme Freight Co"})
    );

    let (name, _) = h.place_order(&[("A", 1)]);
    let (number, _) = h
        .ship(
            ShipmentSpec::new(name.trim_start_matches('#'))
                .carrier("acme freight", "ACME Ground")
                .line(DeposcoLine::new(1, "A", 1))
                .package(PackageSpec::new("C1", "AF123").line(1, 1)),
            Shape::Current,
        )
        .await
        .unwrap();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let store = h.shopify.sandbox.order(&name).unwrap();
    let f = &store.fulfillments[0];
    assert_eq!(f.tracking_company.as_deref(), Some("Acme Freight Co"));
    assert_eq!(f.tracking_numbers, ["AF123"]);
    assert_eq!(
        f.tracking_urls,
        [Some("https://track.acme.example/AF123".to_string())]
    );

    // Changing the older field changes the document's carriers.
    h.api(
        "PATCH",
        &format!("/api/v1/merchants/{}", h.merchant_id),
        Some(json!({"carrier_overrides": {"ACME Freight": "Acme"}})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    let shown = get(&h).await;
    assert_eq!(
        shown["carriers"],
        json!([{"warehouse_carrier": "ACME Freight", "store_company": "Acme",
                "tracking_url_template": "https://track.acme.example/{tracking_number}"}])
    );
    // Overrides that do not read as carriers (the same carrier twice, in
    // other cases) are refused before anything is saved.
    let r = h
        .api(
            "PATCH",
            &format!("/api/v1/merchants/{}", h.merchant_id),
            Some(json!({"name": "Renamed", "carrier_overrides": {"UPS": "UPS", "ups": "UPS Ground"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{r:?}");
    let m = h
        .api("GET", &format!("/api/v1/merchants/{}", h.merchant_id), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_ne!(m["name"], "Renamed");
    assert_eq!(m["carrier_overrides"], json!({"ACME Freight": "Acme"}));
    assert_eq!(get(&h).await, shown);
    h.shutdown().await;
}

async fn the_toml_file_round_trips(db_url: String) {
    let h = Harness::start(Options::new(db_url.clone()))
        .await
        .expect("harness");
    let mut doc = get(&h).await;
    doc["ship_methods"]["default"] =
        json!({"ship_via": "Ground", "carrier": null, "service": null});
    doc["sku_aliases"] = json!([{"store_sku": "S1", "warehouse_item": "100"},
                                {"store_sku": "S2", "warehouse_item": "100"}]);
    doc["kit_recipes"] = json!([{"kit_sku": "K", "components": [{"sku": "S1", "quantity": 2}]}]);
    doc["carriers"] = json!([{"warehouse_carrier": "UPSN", "store_company": "UPS",
                              "tracking_url_template": null}]);
    let first = put(&h, doc).await;

    let m = h.merchant_id.clone();
    let export_args = ["mappings", "export", "--merchant", m.as_str()];
    let export = || run_cli(&h, &db_url, &export_args);
    let out = export().await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[[ship_methods.rules]]"), "{text}");

    // Changed meanwhile, then the file imported: as exported.
    put(&h, json!({"sku_aliases": []})).await;
    let dir = std::env::temp_dir().join(format!("shipsync-mappings-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mappings.toml");
    std::fs::write(&file, &text).unwrap();
    let import = |f: &std::path::Path| {
        let f = f.display().to_string();
        let (h, db_url, m) = (&h, db_url.clone(), m.clone());
        async move { run_cli(h, &db_url, &["mappings", "import", "--merchant", &m, &f]).await }
    };
    let out = import(&file).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&h).await, first);
    let again = export().await;
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);

    // A bad file changes nothing and says why.
    let bad = dir.join("bad.toml");
    let conflicting =
        format!("{text}\n[[sku_aliases]]\nstore_sku = \"S1\"\nwarehouse_item = \"200\"\n");
    std::fs::write(&bad, conflicting).unwrap();
    let out = import(&bad).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sku_aliases[2]"), "{stderr}");
    std::fs::write(&bad, "ship_methods = [").unwrap();
    let out = import(&bad).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid TOML"));
    assert_eq!(get(&h).await, first);
    let log = changes(&h).await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2].0, "shipsync mappings import (command line)");
    let _ = std::fs::remove_dir_all(&dir);
    h.shutdown().await;
}

async fn bad_documents_are_refused_whole(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let before = get(&h).await;
    let rule = |title: &str, via: &str| json!({"match": {"title": title}, "ship_via": via});
    let cases = [
        (
            "PUT",
            json!({"ship_methods": {"rules": [rule("Express", "A"), rule(" express", "B")]}}),
            "ship_methods.rules[1]",
        ),
        (
            "PUT",
            json!({"ship_methods": {"rulez": []}}),
            "ship_methods.rulez",
        ),
        ("PATCH", json!({"aliases": []}), "aliases"),
        (
            "PATCH",
            json!({"kit_recipes": [
                {"kit_sku": "K", "components": [{"sku": "L", "quantity": 1}]},
                {"kit_sku": "L", "components": [{"sku": "K", "quantity": 1}]}]}),
            "kit_recipes[0]",
        ),
        (
            "PATCH",
            json!({"kit_recipes": [{"kit_sku": "K", "components": [{"sku": "A", "quantity": 0}]}]}),
            "kit_recipes[0].components[0]",
        ),
        (
            "PUT",
            json!({"sku_aliases": [{"store_sku": "S", "warehouse_item": "1"},
                                   {"store_sku": "S", "warehouse_item": "2"}],
                   "carriers": [{"warehouse_carrier": "UPSN", "store_company": "UPS"}]}),
            "sku_aliases[1]",
        ),
        (
            "PATCH",
            json!({"carriers": [{"warehouse_carrier": "UPSN", "store_company": "UPS",
                                 "tracking_url_template": "https://t.example/track"}]}),
            "carriers[0].tracking_url_template",
        ),
    ];
    for (method, body, want) in cases {
        let r = h.api(method, &path(&h), Some(body.clone())).await.unwrap();
        assert_eq!(r.status, 422, "{method} {body}: {r:?}");
        assert_eq!(r.body["error"]["code"], "invalid_mapping", "{r:?}");
        assert_eq!(r.body["error"]["rule"], want, "{method} {body}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(want),
            "{r:?}"
        );
        assert_eq!(get(&h).await, before, "nothing applied after {body}");
    }
    let r = h.api("PUT", &path(&h), None).await.unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(changes(&h).await.is_empty());
    h.shutdown().await;
}

async fn only_those_who_see_the_merchant_see_its_mappings(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (other, _) = other_tenant(&h).await;
    let mine = h.merchant_id.clone();
    let own = user_with_token(&h, "brand@example.com", "merchant", Some(&mine)).await;
    let stranger = user_with_token(&h, "other@example.com", "merchant", Some(&other)).await;
    let p = path(&h);

    let (st, doc) = call(&h, &own, "GET", &p, None).await;
    assert_eq!(st, 200, "{doc}");
    let (st, stored) = call(
        &h,
        &own,
        "PATCH",
        &p,
        Some(json!({"sku_aliases": [
        {"store_sku": "S", "warehouse_item": "1"}]})),
    )
    .await;
    assert_eq!(st, 200, "{stored}");
    assert_eq!(stored["sku_aliases"][0]["warehouse_item"], "1");
    assert_eq!(changes(&h).await[0].0, "brand@example.com");

    for (method, body) in [
        ("GET", None),
        ("PUT", Some(json!({"sku_aliases": []}))),
        ("PATCH", Some(json!({"sku_aliases": []}))),
    ] {
        let (st, r) = call(&h, &stranger, method, &p, body).await;
        assert_eq!(st, 404, "{method}: {r}");
        assert_eq!(r["error"]["code"], "not_found");
    }
    let r = h
        .api("GET", "/api/v1/merchants/mer_nothing/mappings", None)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(get(&h).await, stored);
    h.shutdown().await;
}

both_backends!(
    unmapped_method_waits_until_a_rule_exists,
    aliases_work_both_ways,
    a_persons_recipe_wins_over_a_learned_one,
    carrier_mapping_reaches_the_fulfillment,
    the_toml_file_round_trips,
    bad_documents_are_refused_whole,
    only_those_who_see_the_merchant_see_its_mappings
);
