//! Webhook parsing against the fixtures: every shape of one example must
//! give the same shipment, plus the specific expectations of each fixture.

use shipsync_core::{
    KitLink, Package, PackageLine, ShipmentLine, ShipmentVersion, WarehouseStatus,
};
use shipsync_deposco::{ParseError, parse_webhook};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn parse_one(name: &str) -> ShipmentVersion {
    let mut all = parse_webhook(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(all.len(), 1, "{name}: one shipment expected");
    all.remove(0)
}

fn unmapped(body: &[u8]) -> String {
    match parse_webhook(body) {
        Err(ParseError::Unmapped(msg)) => msg,
        other => panic!("expected Unmapped, got {other:?}"),
    }
}

/// Fields only the REST shape carries are blanked before comparing shapes.
fn without_rest_only(mut s: ShipmentVersion) -> ShipmentVersion {
    s.warehouse_id = None;
    s.updated_at = None;
    s
}

fn pkg_line(line_number: &str, sku: &str, quantity: u64) -> PackageLine {
    PackageLine {
        line_number: line_number.into(),
        sku: sku.into(),
        quantity,
    }
}

fn assert_same_across_shapes(example: &str) -> ShipmentVersion {
    let current = parse_one(&format!("{example}.current.json"));
    let wrapped = parse_one(&format!("{example}.wrapped.json"));
    assert_eq!(current, wrapped, "{example}: bare vs wrapped");
    let xml = parse_one(&format!("{example}.xml"));
    let mirror = parse_one(&format!("{example}.mirror.json"));
    assert_eq!(xml, mirror, "{example}: XML vs its JSON mirror");
    assert_eq!(
        without_rest_only(current.clone()),
        xml,
        "{example}: REST JSON vs XML"
    );
    current
}

#[test]
fn simple_shipment_is_the_same_in_every_shape() {
    let s = assert_same_across_shapes("simple");
    assert_eq!(s.number, "SHP-100045");
    assert_eq!(s.warehouse_id.as_deref(), Some("558214"));
    assert_eq!(s.status, WarehouseStatus::Shipped);
    assert_eq!(s.order_refs, ["#1001", "1001"]);
    assert_eq!(s.carrier.as_deref(), Some("UPS"));
    assert_eq!(s.service.as_deref(), Some("UPS Ground"));
    assert_eq!(s.shipped_at.as_deref(), Some("2026-11-27T21:14:05Z"));
    assert_eq!(s.updated_at.as_deref(), Some("2026-11-27T21:14:07Z"));
    assert_eq!(
        s.lines,
        [
            ShipmentLine {
                line_number: "1".into(),
                sku: "TSHIRT-M-BLU".into(),
                quantity: 2,
                ordered_quantity: Some(2),
                store_line_id: Some("gid://shopify/LineItem/13542875496701".into()),
                kit: None,
            },
            ShipmentLine {
                line_number: "2".into(),
                sku: "MUG-CLASSIC".into(),
                quantity: 1,
                ordered_quantity: Some(1),
                store_line_id: Some("gid://shopify/LineItem/13542875529469".into()),
                kit: None,
            },
        ]
    );
    assert_eq!(
        s.packages,
        [
            Package {
                key: "LPN0000731".into(),
                tracking_number: Some("1Z999AA10123456784".into()),
                carrier: Some("UPS".into()),
                service: Some("UPS Ground".into()),
                lines: vec![pkg_line("1", "TSHIRT-M-BLU", 1)],
            },
            Package {
                key: "LPN0000732".into(),
                tracking_number: Some("1Z999AA10123456791".into()),
                carrier: Some("UPS".into()),
                service: Some("UPS Ground".into()),
                lines: vec![
                    pkg_line("1", "TSHIRT-M-BLU", 1),
                    pkg_line("2", "MUG-CLASSIC", 1)
                ],
            },
        ]
    );
    assert_eq!(s.shipped_units(), 3);
}

#[test]
fn kit_shipment_is_the_same_in_every_shape() {
    let s = assert_same_across_shapes("kit");
    assert_eq!(s.number, "SHP-100046");
    assert_eq!(s.order_refs, ["#1002", "1002"]);
    let kit = |per_kit| {
        Some(KitLink {
            line_number: "1".into(),
            sku: Some("GIFTSET-01".into()),
            store_line_id: Some("gid://shopify/LineItem/13542875660541".into()),
            kit_quantity: Some(2),
            per_kit: Some(per_kit),
        })
    };
    assert_eq!(
        s.lines,
        [
            ShipmentLine {
                line_number: "2".into(),
                sku: "CANDLE-VAN".into(),
                quantity: 2,
                ordered_quantity: Some(2),
                store_line_id: None,
                kit: kit(1),
            },
            ShipmentLine {
                line_number: "3".into(),
                sku: "SOAP-LAV".into(),
                quantity: 4,
                ordered_quantity: Some(4),
                store_line_id: None,
                kit: kit(2),
            },
        ],
        "the kit's own line is not a shipped line"
    );
    assert_eq!(
        s.packages,
        [Package {
            key: "LPN0000740".into(),
            tracking_number: Some("9400111899223197428490".into()),
            carrier: Some("USPS".into()),
            service: Some("USPS Ground Advantage".into()),
            lines: vec![pkg_line("2", "CANDLE-VAN", 2), pkg_line("3", "SOAP-LAV", 4)],
        }]
    );
}

#[test]
fn data_page_with_two_shipments() {
    let all = parse_webhook(&fixture("data-two.current.json")).expect("parses");
    assert_eq!(all.len(), 2);
    let (a, b) = (&all[0], &all[1]);
    assert_eq!(a.number, "SHP-7001");
    assert_eq!(a.order_refs, ["#2001", "2001"]);
    assert_eq!(a.tracking_url.as_deref(), Some("https://track.example/?n="));
    assert_eq!(a.updated_at.as_deref(), Some("2026-11-28T10:00:00Z"));
    assert_eq!(b.number, "SHP-7002", "a wrapped item inside data");
    assert_eq!(b.warehouse_id.as_deref(), Some("7002"));
    // No containers: one implicit package with the header tracking.
    assert_eq!(
        b.packages,
        [Package {
            key: "shipment".into(),
            tracking_number: Some("T-7002".into()),
            carrier: Some("UPS".into()),
            service: Some("UPS Ground".into()),
            lines: vec![pkg_line("1", "B", 2)],
        }]
    );
}

#[test]
fn top_level_array_is_a_list_of_shipments() {
    let page = fixture("data-two.current.json");
    let value: serde_json::Value = serde_json::from_slice(&page).expect("json");
    let array = serde_json::to_vec(&value["data"]).expect("json");
    let from_array = parse_webhook(&array).expect("parses");
    assert_eq!(from_array, parse_webhook(&page).expect("parses"));
}

#[test]
fn whole_floats_and_string_numbers_are_accepted() {
    let s = parse_one("whole-floats.current.json");
    assert_eq!(s.warehouse_id.as_deref(), Some("558300"));
    assert_eq!(s.order_refs, ["#3001", "3001"]);
    assert_eq!(s.status, WarehouseStatus::Shipped);
    assert_eq!(
        s.service.as_deref(),
        Some("FEDEX_GROUND"),
        "shipMethod when no shipVia"
    );
    let got: Vec<_> = s
        .lines
        .iter()
        .map(|l| {
            (
                l.line_number.as_str(),
                l.sku.as_str(),
                l.quantity,
                l.ordered_quantity,
            )
        })
        .collect();
    assert_eq!(got, [("1", "A", 2, Some(2)), ("2", "B", 3, Some(3))]);
    assert_eq!(s.packages.len(), 1);
    assert_eq!(
        s.packages[0].tracking_number.as_deref(),
        Some("794600000001")
    );
}

#[test]
fn a_line_spread_over_two_containers() {
    let s = parse_one("split.current.json");
    assert_eq!(s.lines.len(), 1, "the zero-quantity label line is left out");
    assert_eq!(s.lines[0].quantity, 3);
    assert_eq!(
        s.packages,
        [
            Package {
                key: "C1".into(),
                tracking_number: Some("T1".into()),
                carrier: Some("UPS".into()),
                service: Some("UPS Ground".into()),
                lines: vec![pkg_line("1", "A", 1)],
            },
            Package {
                key: "C2".into(),
                tracking_number: Some("T2".into()),
                carrier: Some("FedEx".into()),
                service: Some("Home Delivery".into()),
                lines: vec![pkg_line("1", "A", 2)],
            },
        ]
    );
}

#[test]
fn two_lines_of_one_sku_told_apart_by_external_line_number() {
    let s = parse_one("same-sku.current.json");
    let lines: Vec<_> = s
        .lines
        .iter()
        .map(|l| (l.line_number.as_str(), l.quantity))
        .collect();
    assert_eq!(lines, [("1", 1), ("2", 2)]);
    let packages: Vec<_> = s
        .packages
        .iter()
        .map(|p| (p.key.as_str(), p.lines.clone()))
        .collect();
    assert_eq!(
        packages,
        [
            ("C1", vec![pkg_line("2", "A", 2)]),
            ("C2", vec![pkg_line("1", "A", 1)]),
        ]
    );
}

#[test]
fn xml_with_prefixed_namespace_same_sku_and_split_line() {
    let s = parse_one("same-sku.xml");
    assert_eq!(s.order_refs, ["#4401", "4401"]);
    let lines: Vec<_> = s
        .lines
        .iter()
        .map(|l| (l.line_number.as_str(), l.quantity, l.ordered_quantity))
        .collect();
    assert_eq!(
        lines,
        [("1", 3, Some(3)), ("2", 1, Some(1))],
        "repeated rows merged, ordered not summed"
    );
    assert_eq!(
        s.packages,
        [
            Package {
                key: "C1".into(),
                tracking_number: Some("T1".into()),
                carrier: Some("FedEx".into()),
                service: None,
                lines: vec![pkg_line("1", "A", 1)],
            },
            Package {
                key: "C2".into(),
                tracking_number: Some("T2".into()),
                carrier: Some("UPS".into()),
                service: Some("Ground".into()),
                lines: vec![pkg_line("1", "A", 2), pkg_line("2", "A", 1)],
            },
        ]
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let s = parse_one("unknown-fields.current.json");
    assert_eq!(s.number, "SHP-9201");
    assert_eq!(s.lines.len(), 1);
    assert_eq!(s.packages[0].lines, [pkg_line("1", "A", 1)]);
}

#[test]
fn single_objects_and_nil_in_the_mirror() {
    let s = parse_one("single-object.mirror.json");
    assert_eq!(s.number, "SHP-9301");
    assert_eq!(
        s.order_refs,
        ["4301"],
        "a nil customerOrderNumber is no reference"
    );
    assert_eq!(
        s.service.as_deref(),
        Some("Priority"),
        "nil shipVia falls back to shipMethod"
    );
    assert_eq!(s.tracking_url, None);
    assert_eq!(s.lines.len(), 1);
    assert_eq!(s.lines[0].store_line_id, None);
    assert_eq!(s.lines[0].kit, None);
    assert_eq!(s.packages[0].key, "shipment");
    assert_eq!(
        s.packages[0].tracking_number.as_deref(),
        Some("9400100000000000000001")
    );
}

#[test]
fn not_a_shipment_is_unmapped() {
    let msg = unmapped(&fixture("not-a-shipment.json"));
    assert!(msg.contains("event"), "names what it found: {msg}");
    unmapped(b"[]");
    unmapped(br#"{"data": []}"#);
    unmapped(b"[1, \"two\"]");
    unmapped(b"<note><to>someone</to></note>");
}

#[test]
fn garbage_is_neither_json_nor_xml() {
    for body in [
        fixture("garbage.bin"),
        b"".to_vec(),
        b"   \n".to_vec(),
        b"hello".to_vec(),
        // Only objects and arrays count as JSON bodies.
        b"\"a string\"".to_vec(),
        b"42".to_vec(),
        b"{\"number\": ".to_vec(),
        b"<shipments><shipment>".to_vec(),
        b"<a>\xff\xfe</a>".to_vec(),
    ] {
        assert!(
            matches!(parse_webhook(&body), Err(ParseError::NotJsonOrXml(_))),
            "{:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn bom_and_leading_whitespace_are_skipped() {
    let mut body = b"\xEF\xBB\xBF \r\n\t".to_vec();
    body.extend(fixture("simple.current.json"));
    assert_eq!(
        parse_webhook(&body).expect("parses")[0].number,
        "SHP-100045"
    );
    let mut body = b"\xEF\xBB\xBF\n".to_vec();
    body.extend(fixture("kit.xml"));
    assert_eq!(
        parse_webhook(&body).expect("parses")[0].number,
        "SHP-100046"
    );
}

fn simple_with(pointer: &str, value: serde_json::Value) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("simple.current.json")).expect("json");
    *v.pointer_mut(pointer).expect("pointer exists") = value;
    serde_json::to_vec(&v).expect("json")
}

#[test]
fn bad_quantities_are_unmapped_naming_the_line() {
    let field = "/shipmentLines/data/1/shippedPackQuantity";
    for bad in [
        serde_json::json!(2.5),
        serde_json::json!("2.5"),
        serde_json::json!(-1),
        serde_json::json!("-1"),
        serde_json::json!(1e12),
        serde_json::json!("lots"),
        serde_json::json!([1]),
    ] {
        let msg = unmapped(&simple_with(field, bad.clone()));
        assert!(
            msg.contains("line 2") && msg.contains("MUG-CLASSIC"),
            "{bad}: {msg}"
        );
    }
    let msg = unmapped(&simple_with(
        "/shippedContainers/data/0/shippedContainerLines/0/shippedPackQuantity",
        serde_json::json!(0.5),
    ));
    assert!(msg.contains("LPN0000731"), "{msg}");
}

#[test]
fn missing_number_status_or_order_is_unmapped() {
    let msg = unmapped(&simple_with("/number", serde_json::Value::Null));
    assert!(msg.contains("shipment number"), "{msg}");
    let msg = unmapped(&simple_with("/status", serde_json::json!("")));
    assert!(msg.contains("status"), "{msg}");
    let msg = unmapped(&simple_with(
        "/orderHeaders",
        serde_json::json!({"data": []}),
    ));
    assert!(msg.contains("order"), "{msg}");
}

#[test]
fn containers_carrying_more_than_shipped_are_unmapped() {
    let msg = unmapped(&simple_with(
        "/shippedContainers/data/0/shippedContainerLines/0/shippedPackQuantity",
        serde_json::json!(5),
    ));
    assert!(msg.contains("TSHIRT-M-BLU"), "{msg}");
    let msg = unmapped(&simple_with(
        "/shippedContainers/data/0/shippedContainerLines/0/item/businessKey/number",
        serde_json::json!("NOPE"),
    ));
    assert!(msg.contains("NOPE"), "{msg}");
}

#[test]
fn units_no_container_lists_travel_under_the_header_tracking() {
    // The first container lists nothing: its T-shirt unit is unaccounted.
    let s = parse_webhook(&simple_with(
        "/shippedContainers/data/0/shippedContainerLines",
        serde_json::json!([]),
    ))
    .expect("parses")
    .remove(0);
    let keys: Vec<_> = s.packages.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["LPN0000732", "shipment"]);
    assert_eq!(s.packages[1].lines, [pkg_line("1", "TSHIRT-M-BLU", 1)]);
    assert_eq!(
        s.packages[1].tracking_number.as_deref(),
        Some("1Z999AA10123456784")
    );
}

#[test]
fn a_single_container_without_lines_holds_everything() {
    let s = parse_webhook(&simple_with(
        "/shippedContainers/data",
        serde_json::json!([{"number": "C9", "trackingNumber": "T9"}]),
    ))
    .expect("parses")
    .remove(0);
    assert_eq!(s.packages.len(), 1);
    assert_eq!(s.packages[0].key, "C9");
    assert_eq!(
        s.packages[0].lines,
        [
            pkg_line("1", "TSHIRT-M-BLU", 2),
            pkg_line("2", "MUG-CLASSIC", 1)
        ]
    );
}

#[test]
fn unused_label_shipment_has_no_lines_or_packages() {
    let body = br#"{"number":"SHP-1","status":"Shipped","trackingNumber":"T",
        "orderHeaders":{"data":[{"number":"1"}]},
        "shipmentLines":{"data":[{"number":"1","item":{"businessKey":{"number":"A"}},
            "orderPackQuantity":1,"shippedPackQuantity":0}]}}"#;
    let s = parse_webhook(body).expect("parses").remove(0);
    assert!(s.lines.is_empty());
    assert!(s.packages.is_empty());
}

#[test]
fn related_order_line_directly_on_the_shipment_line() {
    let body = br#"{"number":"SHP-2","status":"Shipped",
        "orderHeaders":{"data":[{"customerOrderNumber":"R5"}]},
        "shipmentLines":{"data":[{"number":"1","orderLine":{"id":11},
            "relatedOrderLine":{"id":10,"orderPackQuantity":"3"},
            "item":{"businessKey":{"number":"C"}},"orderPackQuantity":6,"shippedPackQuantity":6}]}}"#;
    let s = parse_webhook(body).expect("parses").remove(0);
    assert_eq!(
        s.lines[0].line_number, "11",
        "order line id when no line number"
    );
    assert_eq!(
        s.lines[0].kit,
        Some(KitLink {
            line_number: "10".into(),
            sku: None,
            store_line_id: None,
            kit_quantity: Some(3),
            per_kit: Some(2),
        })
    );
}

#[test]
fn per_kit_only_when_it_divides_evenly() {
    let body = br#"<shipment><shipmentNumber>S</shipmentNumber><shipmentStatus>Shipped</shipmentStatus>
        <orders><order><orderNumber>9</orderNumber><lines>
          <line><lineNumber>1</lineNumber><itemNumber>KIT</itemNumber><orderPackQuantity>2</orderPackQuantity><shippedPackQuantity>0</shippedPackQuantity></line>
          <line><lineNumber>2</lineNumber><itemNumber>C</itemNumber><orderPackQuantity>3</orderPackQuantity><shippedPackQuantity>3</shippedPackQuantity><relatedLineNumber>1</relatedLineNumber></line>
        </lines></order></orders></shipment>"#;
    let s = parse_webhook(body).expect("parses").remove(0);
    assert_eq!(s.lines.len(), 1);
    let kit = s.lines[0].kit.as_ref().expect("kit link");
    assert_eq!(
        (kit.sku.as_deref(), kit.kit_quantity, kit.per_kit),
        (Some("KIT"), Some(2), None)
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep_json = "[".repeat(100_000);
    assert!(matches!(
        parse_webhook(deep_json.as_bytes()),
        Err(ParseError::NotJsonOrXml(_))
    ));
    let deep_obj = r#"{"a":"#.repeat(100_000);
    assert!(parse_webhook(deep_obj.as_bytes()).is_err());
    let deep_xml = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    assert!(parse_webhook(deep_xml.as_bytes()).is_err());
    let deep_shipment = format!(
        "<shipments><shipment>{}{}</shipment></shipments>",
        "<x>".repeat(70),
        "</x>".repeat(70)
    );
    assert!(parse_webhook(deep_shipment.as_bytes()).is_err());
}

#[test]
fn dtd_entities_are_refused() {
    let body =
        br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><shipment>&lol;</shipment>"#;
    assert!(matches!(
        parse_webhook(body),
        Err(ParseError::NotJsonOrXml(_))
    ));
}

#[test]
fn large_payloads_parse_in_linear_time() {
    let n = 10_000;
    let lines: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "orderLine": {"businessKey": {"lineNumber": i + 1}},
                "relatedOrderLine": {"businessKey": {"lineNumber": 0}},
                "item": {"businessKey": {"number": format!("SKU-{}", i % 50)}},
                "orderPackQuantity": 1, "shippedPackQuantity": 1, "externalLineNumber": i + 1,
            })
        })
        .collect();
    let container_lines: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"item": {"businessKey": {"number": format!("SKU-{}", i % 50)}},
            "shippedPackQuantity": 1, "externalLineNumber": i + 1})
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "number": "BIG", "status": "Shipped", "orderHeaders": {"data": [{"number": "1"}]},
        "shipmentLines": {"data": lines},
        "shippedContainers": {"data": [{"number": "C", "shippedContainerLines": container_lines}]},
    }))
    .expect("json");
    let started = std::time::Instant::now();
    let s = parse_webhook(&body).expect("parses").remove(0);
    assert_eq!(s.lines.len(), n);
    assert_eq!(s.packages.len(), 1);
    assert_eq!(s.packages[0].lines.len(), n);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
