//! The order as the Sales Orders channel reads it: one request in the common
//! case, every list read to its end otherwise, and the changed-orders pull.

use serde_json::{Value, json};
use shipsync_shopify::{
    ShippingAddress, ShopifyError, StoreLineItem, StoreOrderForWarehouse,
    WarehouseFulfillmentOrder, WarehouseFulfillmentOrderLine,
};

use crate::client::{assert_well_formed, gid, page};
use crate::stub::{Reply, Seen, Stub};

const ORDER_ID: &str = "gid://shopify/Order/1001";

fn line(n: u32, sku: Option<&str>, ordered: u64, current: u64, ships: bool) -> Value {
    json!({
        "id": gid("LineItem", n), "sku": sku, "name": format!("Line {n}"),
        "quantity": ordered, "currentQuantity": current,
        "requiresShipping": ships, "unfulfilledQuantity": current,
        "variant": null, "lineItemGroup": null,
    })
}

fn fo_line(n: u32, line: u32, remaining: u64) -> Value {
    json!({
        "id": gid("FulfillmentOrderLineItem", n),
        "totalQuantity": remaining,
        "remainingQuantity": remaining,
        "lineItem": { "id": gid("LineItem", line) },
    })
}

fn fo(n: u32, status: &str, location: Option<u32>, holds: Value, lines: Value) -> Value {
    json!({
        "id": gid("FulfillmentOrder", n),
        "status": status,
        "assignedLocation": { "location": location.map(|l| json!({ "id": gid("Location", l) })) },
        "fulfillmentHolds": holds,
        "lineItems": lines,
    })
}

/// Order #1001 as Shopify answers `OrderForWarehouse` (or one node of
/// `OrdersForWarehouse`), with the given line and fulfillment order pages.
fn order_node(id: &str, name: &str, lines: Value, fulfillment_orders: Value) -> Value {
    json!({
        "id": id, "name": name, "updatedAt": "2026-11-02T10:00:00Z",
        "email": "jo@example.com",
        "cancelledAt": "2026-11-02T09:59:00Z", "cancelReason": "CUSTOMER",
        "displayFinancialStatus": "AUTHORIZED",
        "displayFulfillmentStatus": "PARTIALLY_FULFILLED",
        "tags": ["HOLD", "vip"], "edited": true,
        "shippingAddress": { "name": "Jo Doe", "firstName": "Jo", "lastName": "Doe",
            "company": null, "address1": "1 Main St", "address2": "", "city": "Springfield",
            "province": "Illinois", "provinceCode": "IL", "zip": "62701",
            "country": "United States", "countryCodeV2": "US", "phone": null },
        "shippingLine": { "title": "Express", "code": "Express", "source": "shopify", "carrierIdentifier": null },
        "lineItems": lines,
        "fulfillmentOrders": fulfillment_orders,
    })
}

fn item(
    n: u32,
    sku: Option<&str>,
    ordered: u64,
    current: u64,
    ships: bool,
    group: Option<&str>,
) -> StoreLineItem {
    StoreLineItem {
        id: gid("LineItem", n),
        sku: sku.map(str::to_owned),
        name: format!("Line {n}"),
        quantity: current,
        ordered_quantity: ordered,
        requires_shipping: ships,
        unfulfilled_quantity: Some(current),
        group: group.map(str::to_owned),
    }
}

/// (fulfillment order line item, order line item, remaining).
fn fo_lines(lines: &[(u32, u32, u64)]) -> Vec<WarehouseFulfillmentOrderLine> {
    lines
        .iter()
        .map(|(id, line, remaining)| WarehouseFulfillmentOrderLine {
            id: Some(gid("FulfillmentOrderLineItem", *id)),
            line_item_id: gid("LineItem", *line),
            remaining_quantity: *remaining,
        })
        .collect()
}

fn expected(
    line_items: Vec<StoreLineItem>,
    fulfillment_orders: Vec<WarehouseFulfillmentOrder>,
) -> StoreOrderForWarehouse {
    StoreOrderForWarehouse {
        id: ORDER_ID.into(),
        name: "#1001".into(),
        updated_at: Some("2026-11-02T10:00:00Z".into()),
        email: Some("jo@example.com".into()),
        shipping_address: Some(ShippingAddress {
            name: Some("Jo Doe".into()),
            first_name: Some("Jo".into()),
            last_name: Some("Doe".into()),
            address1: Some("1 Main St".into()),
            city: Some("Springfield".into()),
            province: Some("Illinois".into()),
            province_code: Some("IL".into()),
            zip: Some("62701".into()),
            country: Some("United States".into()),
            country_code: Some("US".into()),
            ..ShippingAddress::default()
        }),
        shipping_method: Some("Express".into()),
        shipping_code: Some("Express".into()),
        shipping_source: Some("shopify".into()),
        shipping_carrier_identifier: None,
        line_items,
        cancelled_at: Some("2026-11-02T09:59:00Z".into()),
        cancel_reason: Some("CUSTOMER".into()),
        financial_status: Some("AUTHORIZED".into()),
        fulfillment_status: Some("PARTIALLY_FULFILLED".into()),
        tags: vec!["HOLD".into(), "vip".into()],
        edited: true,
        fulfillment_orders,
    }
}

/// Up to 20 lines and 3 fulfillment orders: the whole order in one request,
/// every new field carried over.
#[tokio::test]
async fn the_common_order_is_one_request() {
    let stub = Stub::start(|seen: &Seen| {
        assert_eq!(seen.operation, "OrderForWarehouse");
        if seen.variables["id"] != ORDER_ID {
            return Reply::data(json!({ "order": null }));
        }
        let lines = json!([
            line(1, Some("A"), 3, 2, true),
            // A gift card: nothing to ship.
            line(2, None, 1, 1, false),
            { "id": gid("LineItem", 3), "sku": "", "name": "Line 3", "quantity": 1,
              "currentQuantity": 1, "requiresShipping": true, "unfulfilledQuantity": 1,
              "variant": { "sku": "C-VAR" }, "lineItemGroup": { "title": "Gift box" } },
        ]);
        let fos = json!([
            fo(
                1,
                "OPEN",
                Some(9),
                json!([]),
                page(json!([fo_line(11, 1, 2), fo_line(13, 3, 1)]), None)
            ),
            fo(
                2,
                "ON_HOLD",
                Some(10),
                json!([{ "reason": "INCORRECT_ADDRESS", "reasonNotes": " Check the zip " },
                      { "reason": "OTHER", "reasonNotes": "" },
                      { "reason": "AWAITING_PAYMENT", "reasonNotes": null }]),
                page(json!([fo_line(12, 1, 0)]), None)
            ),
            fo(3, "CLOSED", None, json!([]), page(json!([]), None)),
        ]);
        Reply::data(
            json!({ "order": order_node(ORDER_ID, "#1001", page(lines, None), page(fos, None)) }),
        )
    })
    .await;
    let client = stub.client();
    let order = client.order_for_warehouse(ORDER_ID).await;
    let want = expected(
        vec![
            item(1, Some("A"), 3, 2, true, None),
            item(2, None, 1, 1, false, None),
            item(3, Some("C-VAR"), 1, 1, true, Some("Gift box")),
        ],
        vec![
            WarehouseFulfillmentOrder {
                id: gid("FulfillmentOrder", 1),
                status: "OPEN".into(),
                location_id: Some(gid("Location", 9)),
                holds: vec![],
                lines: fo_lines(&[(11, 1, 2), (13, 3, 1)]),
            },
            WarehouseFulfillmentOrder {
                id: gid("FulfillmentOrder", 2),
                status: "ON_HOLD".into(),
                location_id: Some(gid("Location", 10)),
                holds: vec![
                    "INCORRECT_ADDRESS: Check the zip".into(),
                    "OTHER".into(),
                    "AWAITING_PAYMENT".into(),
                ],
                lines: fo_lines(&[(12, 1, 0)]),
            },
            WarehouseFulfillmentOrder {
                id: gid("FulfillmentOrder", 3),
                status: "CLOSED".into(),
                location_id: None,
                holds: vec![],
                lines: vec![],
            },
        ],
    );
    assert_eq!(order, Ok(Some(want)));
    let seen = stub.seen();
    assert_eq!(seen.len(), 1, "one request");
    assert_eq!(seen[0].variables, json!({ "id": ORDER_ID }));
    assert_well_formed(&seen);

    assert_eq!(
        client.order_for_warehouse("gid://shopify/Order/404").await,
        Ok(None)
    );
    assert_eq!(stub.seen().len(), 2);
}

/// More lines, more fulfillment orders and longer fulfillment orders than
/// the first request carries: each list is read to its end.
#[tokio::test]
async fn a_long_order_is_read_to_the_end() {
    let stub = Stub::start(|seen: &Seen| {
        let v = &seen.variables;
        match seen.operation.as_str() {
            "OrderForWarehouse" => {
                let fos = json!([fo(
                    1,
                    "OPEN",
                    Some(9),
                    json!([]),
                    page(json!([fo_line(11, 1, 1)]), Some("fol-1"))
                )]);
                Reply::data(json!({ "order": order_node(
                    ORDER_ID, "#1001",
                    page(json!([line(1, Some("A"), 1, 1, true)]), Some("li-1")),
                    page(fos, Some("fo-1")),
                ) }))
            }
            "Order" => {
                assert_eq!(
                    (&v["id"], &v["lineItemsAfter"]),
                    (&json!(ORDER_ID), &json!("li-1"))
                );
                Reply::data(json!({ "order": {
                    "id": ORDER_ID, "name": "#1001", "updatedAt": "2026-11-02T10:00:00Z",
                    "cancelledAt": "2026-11-02T09:59:00Z",
                    "lineItems": page(json!([line(2, Some("B"), 4, 0, true)]), None),
                }}))
            }
            "FulfillmentOrderLineItems" => {
                let (id, after) = (v["id"].as_str(), v["after"].as_str());
                let lines = match (id, after) {
                    (Some(id), Some("fol-1")) if id == gid("FulfillmentOrder", 1) => {
                        json!([fo_line(12, 2, 0)])
                    }
                    (Some(id), Some("fol-3")) if id == gid("FulfillmentOrder", 3) => {
                        json!([fo_line(32, 2, 0)])
                    }
                    other => panic!("unexpected FulfillmentOrderLineItems {other:?}"),
                };
                Reply::data(json!({ "fulfillmentOrder": { "lineItems": page(lines, None) } }))
            }
            "WarehouseFulfillmentOrders" => {
                assert_eq!(v["id"], ORDER_ID);
                let (fos, next) = match v["after"].as_str() {
                    Some("fo-1") => (
                        json!([fo(
                            2,
                            "CANCELLED",
                            Some(9),
                            json!([]),
                            page(json!([]), None)
                        )]),
                        Some("fo-2"),
                    ),
                    Some("fo-2") => (
                        json!([fo(
                            3,
                            "OPEN",
                            Some(11),
                            json!([]),
                            page(json!([fo_line(31, 1, 1)]), Some("fol-3"))
                        )]),
                        None,
                    ),
                    other => panic!("unexpected cursor {other:?}"),
                };
                Reply::data(json!({ "order": { "fulfillmentOrders": page(fos, next) } }))
            }
            other => panic!("the stub does not know {other}"),
        }
    })
    .await;
    let order = stub.client().order_for_warehouse(ORDER_ID).await;
    let fulfillment_order =
        |n: u32, status: &str, location: u32, lines| WarehouseFulfillmentOrder {
            id: gid("FulfillmentOrder", n),
            status: status.into(),
            location_id: Some(gid("Location", location)),
            holds: vec![],
            lines,
        };
    let want = expected(
        vec![
            item(1, Some("A"), 1, 1, true, None),
            item(2, Some("B"), 4, 0, true, None),
        ],
        vec![
            fulfillment_order(1, "OPEN", 9, fo_lines(&[(11, 1, 1), (12, 2, 0)])),
            fulfillment_order(2, "CANCELLED", 9, vec![]),
            fulfillment_order(3, "OPEN", 11, fo_lines(&[(31, 1, 1), (32, 2, 0)])),
        ],
    );
    assert_eq!(order, Ok(Some(want)));
    let seen = stub.seen();
    let ops: Vec<&str> = seen.iter().map(|s| s.operation.as_str()).collect();
    assert_eq!(
        ops,
        [
            "OrderForWarehouse",
            "Order",
            "FulfillmentOrderLineItems",
            "WarehouseFulfillmentOrders",
            "WarehouseFulfillmentOrders",
            "FulfillmentOrderLineItems",
        ]
    );
    assert_well_formed(&seen);
}

/// An order that disappears between two pages is a transient failure, not
/// a half-read order.
#[tokio::test]
async fn an_order_gone_while_paging_is_transient() {
    let stub = Stub::start(|seen: &Seen| match seen.operation.as_str() {
        "OrderForWarehouse" => Reply::data(json!({ "order": order_node(
            ORDER_ID, "#1001",
            page(json!([]), None),
            page(json!([]), Some("fo-1")),
        ) })),
        _ => Reply::data(json!({ "order": null })),
    })
    .await;
    let err = stub.client().order_for_warehouse(ORDER_ID).await;
    assert!(
        matches!(&err, Err(ShopifyError::Transient { reason, .. }) if reason.contains("disappeared")),
        "{err:?}"
    );
}

/// Orders changed since a time, of every status: the search, complete
/// orders (lines beyond the page read from the order), an order listed
/// twice kept once, the cursor.
#[tokio::test]
async fn orders_changed_since_reads_every_status_completely() {
    let stub = Stub::start(|seen: &Seen| {
        let v = &seen.variables;
        match seen.operation.as_str() {
            "OrdersForWarehouse" => {
                let first = order_node(
                    ORDER_ID,
                    "#1001",
                    page(json!([line(1, Some("A"), 3, 2, true)]), Some("li-1")),
                    page(
                        json!([fo(
                            1,
                            "OPEN",
                            Some(9),
                            json!([]),
                            page(json!([fo_line(11, 1, 2)]), None)
                        )]),
                        None,
                    ),
                );
                let mut second = order_node(
                    &gid("Order", 1002),
                    "#1002",
                    page(json!([]), None),
                    page(json!([]), None),
                );
                second["shippingAddress"] = Value::Null;
                second["shippingLine"] = Value::Null;
                second["email"] = json!(" ");
                second["cancelledAt"] = Value::Null;
                second["cancelReason"] = Value::Null;
                second["displayFinancialStatus"] = Value::Null;
                second["tags"] = json!([]);
                second["edited"] = json!(false);
                let (nodes, next) = if v["after"].is_null() {
                    (json!([first, first.clone()]), Some("o-1"))
                } else {
                    assert_eq!(v["after"], "o-1");
                    (json!([second]), None)
                };
                Reply::data(json!({ "orders": page(nodes, next) }))
            }
            "Order" => {
                assert_eq!(v["lineItemsAfter"], "li-1");
                Reply::data(json!({ "order": {
                    "id": ORDER_ID, "name": "#1001", "updatedAt": "2026-11-02T10:00:00Z",
                    "lineItems": page(json!([line(2, None, 1, 1, false)]), None),
                }}))
            }
            other => panic!("the stub does not know {other}"),
        }
    })
    .await;
    let client = stub.client();
    let page1 = client
        .orders_changed_since("2026-11-01T00:00:00Z", None)
        .await;
    let want = expected(
        vec![
            item(1, Some("A"), 3, 2, true, None),
            item(2, None, 1, 1, false, None),
        ],
        vec![WarehouseFulfillmentOrder {
            id: gid("FulfillmentOrder", 1),
            status: "OPEN".into(),
            location_id: Some(gid("Location", 9)),
            holds: vec![],
            lines: fo_lines(&[(11, 1, 2)]),
        }],
    );
    let page1 = page1.expect("first page");
    assert_eq!(page1.orders, vec![want]);
    assert_eq!(page1.next.as_deref(), Some("o-1"));
    let page2 = client
        .orders_changed_since("2026-11-01T00:00:00Z", page1.next)
        .await
        .expect("second page");
    assert_eq!(page2.next, None);
    let o = &page2.orders[0];
    assert_eq!(o.name, "#1002");
    assert_eq!(
        (&o.shipping_address, &o.shipping_method, &o.email),
        (&None, &None, &None)
    );
    assert_eq!((&o.cancelled_at, &o.financial_status), (&None, &None));
    assert!(!o.edited && o.tags.is_empty() && o.fulfillment_orders.is_empty());

    let seen = stub.seen();
    let calls: Vec<(&str, &Value)> = seen
        .iter()
        .map(|s| (s.operation.as_str(), &s.variables))
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    // Every status: no financial, fulfillment or status filter.
    assert_eq!(calls[0].1["query"], "updated_at:>='2026-11-01T00:00:00Z'");
    assert_eq!(calls[1].0, "Order");
    assert_eq!(calls[2].1["after"], "o-1");
    assert_well_formed(&seen);
    assert!(matches!(
        client.orders_changed_since("x' OR name:*", None).await,
        Err(ShopifyError::Permanent(_))
    ));
}
