//! `parse_webhook` must answer every input with a value, never a panic:
//! arbitrary bytes, arbitrary JSON, and damaged fixtures; and the same value
//! as its reference path (`parse_webhook_reference`, JSON read through
//! serde_json's owned `Value` only), whose fast path reads JSON borrowed.

use proptest::prelude::*;
use serde_json::Value;
use shipsync_deposco::{ParseError, parse_webhook, parse_webhook_reference};

const FIXTURES: &[&str] = &[
    "simple.current.json",
    "simple.wrapped.json",
    "simple.xml",
    "simple.mirror.json",
    "kit.current.json",
    "kit.wrapped.json",
    "kit.xml",
    "kit.mirror.json",
    "same-sku.current.json",
    "same-sku.xml",
    "single-object.mirror.json",
    "split.current.json",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Every parse result must be the reference path's, and when `Ok`
/// internally consistent.
fn check(body: &[u8]) {
    let parsed = parse_webhook(body);
    assert_eq!(
        parsed,
        parse_webhook_reference(body),
        "{}",
        String::from_utf8_lossy(body)
    );
    if let Ok(shipments) = parsed {
        assert!(!shipments.is_empty());
        for s in shipments {
            assert!(!s.number.is_empty());
            assert!(!s.order_refs.is_empty());
            for line in &s.lines {
                assert!(line.quantity > 0);
                let packed: u64 = s
                    .packages
                    .iter()
                    .flat_map(|p| &p.lines)
                    .filter(|pl| pl.line_number == line.line_number)
                    .map(|pl| pl.quantity)
                    .sum();
                assert_eq!(
                    packed, line.quantity,
                    "every unit is in exactly one package"
                );
            }
        }
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u64..5).prop_map(Value::from),
        Just(Value::from(2.0)),
        Just(Value::from("2.0")),
        Just(serde_json::json!({"@nil": "true"})),
        "[a-zA-Z0-9#.-]{0,6}".prop_map(Value::from),
        prop::sample::select(vec![
            "SHP-1", "1", "2", "Shipped", "A", "#1001", "1001", "LPN1", "T1",
        ])
        .prop_map(Value::from),
    ]
}

/// Keys the parser looks at, so that random JSON reaches deep code paths.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "data",
            // serde_json's raw-value key: `Value` reads such an object as
            // the text of its first member (the fast path must not differ).
            "$serde_json::private::RawValue",
            "outboundShipment",
            "shipments",
            "shipment",
            "number",
            "status",
            "self",
            "id",
            "orderHeaders",
            "customerOrderNumber",
            "orderNumber",
            "shipmentLines",
            "orderLine",
            "businessKey",
            "lineNumber",
            "relatedOrderLine",
            "item",
            "orderPackQuantity",
            "shippedPackQuantity",
            "externalLineNumber",
            "shippedContainers",
            "shippedContainerLines",
            "lpnNumber",
            "trackingNumber",
            "shipmentNumber",
            "shipmentStatus",
            "orders",
            "order",
            "lines",
            "line",
            "itemNumber",
            "relatedLineNumber",
            "container",
            "lpn",
            "customerLineNumber",
            "orderLineDetails",
            "@nil",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,4}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&body);
    }

    #[test]
    fn arbitrary_bytes_after_a_plausible_start(
        start in prop::sample::select(vec!["{", "[", "<", "<shipments>", "{\"data\":["]),
        rest in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut body = start.as_bytes().to_vec();
        body.extend(rest);
        check(&body);
    }

    #[test]
    fn arbitrary_json(value in json_value()) {
        let body = serde_json::to_vec(&value).expect("serialises");
        check(&body);
    }

    #[test]
    fn fixtures_with_a_field_replaced(
        name in prop::sample::select(FIXTURES.iter().filter(|n| n.ends_with(".json")).collect::<Vec<_>>()),
        pick in any::<prop::sample::Index>(),
        replacement in json_value(),
    ) {
        let mut value: Value = serde_json::from_slice(&fixture(name)).expect("fixture is JSON");
        let mut pointers = Vec::new();
        collect_pointers(&value, String::new(), &mut pointers);
        let pointer = pick.get(&pointers).clone();
        if let Some(slot) = value.pointer_mut(&pointer) {
            *slot = replacement;
        }
        check(&serde_json::to_vec(&value).expect("serialises"));
    }

    /// A key repeated in one object, before or after the original (keys
    /// sort, and '_' sorts before the fixtures' keys, '~' after them): the
    /// fast path must read the value serde_json's map keeps, the last.
    #[test]
    fn fixtures_with_a_key_repeated(
        name in prop::sample::select(FIXTURES.iter().filter(|n| n.ends_with(".json")).collect::<Vec<_>>()),
        pick in any::<prop::sample::Index>(),
        key_pick in any::<prop::sample::Index>(),
        marker in prop::sample::select(vec!["__repeated__", "~repeated~"]),
        repeated in json_value(),
    ) {
        let mut value: Value = serde_json::from_slice(&fixture(name)).expect("fixture is JSON");
        let mut pointers = Vec::new();
        collect_pointers(&value, String::new(), &mut pointers);
        let objects: Vec<String> = pointers
            .into_iter()
            .filter(|p| value.pointer(p).is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())))
            .collect();
        let pointer = pick.get(&objects).clone();
        let Some(Value::Object(obj)) = value.pointer_mut(&pointer) else {
            unreachable!("an object was picked");
        };
        let keys: Vec<String> = obj.keys().cloned().collect();
        let key = key_pick.get(&keys).clone();
        obj.insert(marker.to_string(), repeated);
        let text = serde_json::to_string(&value).expect("serialises");
        let body = text.replacen(&format!("\"{marker}\""), &serde_json::to_string(&key).expect("a key"), 1);
        check(body.as_bytes());
    }

    #[test]
    fn truncated_fixtures(name in prop::sample::select(FIXTURES.to_vec()), cut in any::<prop::sample::Index>()) {
        let body = fixture(name);
        let at = cut.index(body.len());
        check(body.get(..at).unwrap_or_default());
    }

    #[test]
    fn fixtures_with_bytes_flipped(
        name in prop::sample::select(FIXTURES.to_vec()),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut body = fixture(name);
        for (at, byte) in flips {
            let i = at.index(body.len());
            if let Some(b) = body.get_mut(i) {
                *b = byte;
            }
        }
        check(&body);
    }
}

fn collect_pointers(value: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                collect_pointers(v, format!("{here}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_pointers(v, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn deeply_nested_inputs_are_errors() {
    for body in [
        "[".repeat(100_000),
        "{\"data\":".repeat(50_000),
        format!("{}1{}", "[".repeat(127), "]".repeat(127)),
        "<a>".repeat(100_000),
        format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000)),
        format!(
            "{}{}",
            "<a xsi:nil=\"true\">".repeat(1_000),
            "</a>".repeat(1_000)
        ),
    ] {
        assert!(parse_webhook(body.as_bytes()).is_err());
    }
    // Within the limits nesting is merely not a shipment.
    let ok_depth = format!("{}{}", "<a>".repeat(60), "</a>".repeat(60));
    assert!(matches!(
        parse_webhook(ok_depth.as_bytes()),
        Err(ParseError::Unmapped(_))
    ));
}
