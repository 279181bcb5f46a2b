//! The client against the stub: parsing, paging, and the classification of
//! every failure.

use std::time::Duration;

use serde_json::{Value, json};
use shipsync_shopify::{
    FulfillmentRequest, ShopifyError, StoreFulfillment, StoreFulfillmentOrder,
    StoreFulfillmentOrderLineItem, StoreLineItem, StoreOrder, StoreTracking, Timeouts, Tracking,
    operations,
};

use crate::stub::{Reply, Seen, Stub, TOKEN, client_for, cost};

const ORDER_ID: &str = "gid://shopify/Order/1001";
const FO_ID: &str = "gid://shopify/FulfillmentOrder/1";
const F1: &str = "gid://shopify/Fulfillment/1";
const F2: &str = "gid://shopify/Fulfillment/2";

pub(crate) fn gid(kind: &str, n: u32) -> String {
    format!("gid://shopify/{kind}/{n}")
}

pub(crate) fn page(nodes: Value, next: Option<&str>) -> Value {
    json!({
        "pageInfo": { "hasNextPage": next.is_some(), "endCursor": next },
        "nodes": nodes,
    })
}

fn fo_line(n: u32, line: u32, total: u64, remaining: u64) -> Value {
    json!({
        "id": gid("FulfillmentOrderLineItem", n),
        "totalQuantity": total,
        "remainingQuantity": remaining,
        "lineItem": { "id": gid("LineItem", line) },
    })
}

/// A store holding order #1001: three lines over two pages, one fulfillment
/// order whose lines span two pages, two fulfillments.
fn store(seen: &Seen) -> Reply {
    let v = &seen.variables;
    match seen.operation.as_str() {
        "Order" if v["id"] == ORDER_ID => {
            let lines = if v["lineItemsAfter"].is_null() {
                page(
                    json!([
                        { "id": gid("LineItem", 1), "sku": "A", "name": "Widget A", "quantity": 2,
                          "currentQuantity": 2, "requiresShipping": true, "unfulfilledQuantity": 0,
                          "variant": { "sku": "A" }, "lineItemGroup": null },
                        { "id": gid("LineItem", 2), "sku": null, "name": "Widget B", "quantity": 3,
                          "currentQuantity": 1, "requiresShipping": true, "unfulfilledQuantity": 1,
                          "variant": { "sku": "B-VARIANT" }, "lineItemGroup": null },
                    ]),
                    Some("li-1"),
                )
            } else {
                assert_eq!(v["lineItemsAfter"], "li-1");
                page(
                    json!([
                        { "id": gid("LineItem", 3), "sku": "C", "name": "Bundle part C", "quantity": 1,
                          "requiresShipping": true, "unfulfilledQuantity": 1,
                          "variant": null, "lineItemGroup": { "title": "Gift box" } },
                    ]),
                    None,
                )
            };
            Reply::data(json!({ "order": {
                "id": ORDER_ID, "name": "#1001", "updatedAt": "2026-11-02T10:00:00Z",
                "cancelledAt": null, "lineItems": lines,
            }}))
        }
        "Order" => Reply::data(json!({ "order": null })),
        "OrderFulfillmentOrders" => {
            assert!(v["after"].is_null());
            Reply::data(json!({ "order": { "fulfillmentOrders": page(json!([{
                "id": FO_ID,
                "status": "IN_PROGRESS",
                "assignedLocation": { "location": { "id": gid("Location", 9) } },
                "lineItems": page(json!([fo_line(11, 1, 2, 0), fo_line(12, 2, 1, 1)]), Some("fo-1")),
            }]), None) }}))
        }
        "FulfillmentOrderLineItems" => {
            assert_eq!(v["id"], FO_ID);
            assert_eq!(v["after"], "fo-1");
            Reply::data(json!({ "fulfillmentOrder": {
                "lineItems": page(json!([fo_line(13, 3, 1, 1)]), None),
            }}))
        }
        // Two pages: an order's fulfillments are read whole, however many.
        "FulfillmentOrderFulfillments" => {
            assert_eq!(v["id"], FO_ID);
            let fulfillments = if v["after"].is_null() {
                page(
                    json!([{ "id": F1, "status": "SUCCESS", "createdAt": "2026-11-01T09:00:00Z" }]),
                    Some("ff-1"),
                )
            } else {
                assert_eq!(v["after"], "ff-1");
                page(
                    json!([{ "id": F2, "status": "CANCELLED", "createdAt": null }]),
                    None,
                )
            };
            Reply::data(json!({ "fulfillmentOrder": { "fulfillments": fulfillments } }))
        }
        "Fulfillment" if v["id"] == F1 => {
            let lines = if v["lineItemsAfter"].is_null() {
                page(
                    json!([{ "quantity": 1, "lineItem": { "id": gid("LineItem", 1) } }]),
                    Some("fl-1"),
                )
            } else {
                page(
                    json!([{ "quantity": 1, "lineItem": { "id": gid("LineItem", 1) } }]),
                    None,
                )
            };
            Reply::data(json!({ "fulfillment": {
                "id": F1,
                "trackingInfo": [
                    { "company": "UPS", "number": "1Z1", "url": "https://ups.example/1Z1" },
                    { "company": "UPS", "number": "1Z2", "url": null },
                ],
                "fulfillmentLineItems": lines,
            }}))
        }
        "Fulfillment" => Reply::data(json!({ "fulfillment": {
            "id": F2, "trackingInfo": [],
            "fulfillmentLineItems": page(json!([{ "quantity": null, "lineItem": { "id": gid("LineItem", 2) } }]), None),
        }})),
        "FindOrdersByName" => {
            let nodes = match v["query"].as_str() {
                Some("name:#1001") => json!([
                    { "id": ORDER_ID, "name": "#1001" },
                    { "id": gid("Order", 10010), "name": "#10010" },
                ]),
                Some("name:1001") => json!([{ "id": ORDER_ID, "name": "#1001" }]),
                _ => json!([]),
            };
            Reply::data(json!({ "orders": { "nodes": nodes } }))
        }
        other => panic!("the stub does not know {other}"),
    }
}

pub(crate) fn expected_order() -> StoreOrder {
    let fo_line = |n, line, total, remaining| StoreFulfillmentOrderLineItem {
        id: gid("FulfillmentOrderLineItem", n),
        line_item_id: gid("LineItem", line),
        total_quantity: total,
        remaining_quantity: remaining,
    };
    StoreOrder {
        id: ORDER_ID.into(),
        name: "#1001".into(),
        updated_at: Some("2026-11-02T10:00:00Z".into()),
        cancelled_at: None,
        line_items: vec![
            StoreLineItem {
                id: gid("LineItem", 1),
                sku: Some("A".into()),
                name: "Widget A".into(),
                quantity: 2,
                ordered_quantity: 2,
                requires_shipping: true,
                unfulfilled_quantity: Some(0),
                group: None,
            },
            StoreLineItem {
                id: gid("LineItem", 2),
                sku: Some("B-VARIANT".into()),
                name: "Widget B".into(),
                quantity: 1,
                ordered_quantity: 3,
                requires_shipping: true,
                unfulfilled_quantity: Some(1),
                group: None,
            },
            StoreLineItem {
                id: gid("LineItem", 3),
                sku: Some("C".into()),
                name: "Bundle part C".into(),
                quantity: 1,
                ordered_quantity: 1,
                requires_shipping: true,
                unfulfilled_quantity: Some(1),
                group: Some("Gift box".into()),
            },
        ],
        fulfillment_orders: vec![StoreFulfillmentOrder {
            id: FO_ID.into(),
            status: "IN_PROGRESS".into(),
            location_id: Some(gid("Location", 9)),
            line_items: vec![
                fo_line(11, 1, 2, 0),
                fo_line(12, 2, 1, 1),
                fo_line(13, 3, 1, 1),
            ],
        }],
        fulfillments: vec![
            StoreFulfillment {
                id: F1.into(),
                status: "SUCCESS".into(),
                created_at: Some("2026-11-01T09:00:00Z".into()),
                tracking: vec![
                    StoreTracking {
                        company: Some("UPS".into()),
                        number: Some("1Z1".into()),
                        url: Some("https://ups.example/1Z1".into()),
                    },
                    StoreTracking {
                        company: Some("UPS".into()),
                        number: Some("1Z2".into()),
                        url: None,
                    },
                ],
                line_items: vec![(gid("LineItem", 1), 1), (gid("LineItem", 1), 1)],
            },
            StoreFulfillment {
                id: F2.into(),
                status: "CANCELLED".into(),
                created_at: None,
                tracking: vec![],
                line_items: vec![(gid("LineItem", 2), 0)],
            },
        ],
    }
}

pub(crate) fn assert_well_formed(seen: &[Seen]) {
    for s in seen {
        assert_eq!(
            s.token.as_deref(),
            Some(TOKEN),
            "{}: token header",
            s.operation
        );
        assert!(
            !s.raw.contains(TOKEN),
            "{}: the token leaked into the body",
            s.operation
        );
        let document = operations::ALL
            .iter()
            .find(|(name, _)| *name == s.operation)
            .map(|(_, d)| *d);
        assert_eq!(
            document,
            Some(s.query.as_str()),
            "{}: not a known document",
            s.operation
        );
    }
}

#[tokio::test]
async fn reads_an_order_with_every_page() {
    let stub = Stub::start(store).await;
    let order = stub.client().order(ORDER_ID).await;
    assert_eq!(order, Ok(Some(expected_order())));
    let ops: Vec<String> = stub.seen().into_iter().map(|s| s.operation).collect();
    assert_eq!(
        ops,
        [
            "Order",
            "Order",
            "OrderFulfillmentOrders",
            "FulfillmentOrderLineItems",
            "FulfillmentOrderFulfillments",
            "FulfillmentOrderFulfillments",
            "Fulfillment",
            "Fulfillment",
            "Fulfillment",
        ]
    );
    assert_well_formed(&stub.seen());
}

#[tokio::test]
async fn an_unknown_order_is_none() {
    let stub = Stub::start(store).await;
    assert_eq!(
        stub.client().order("gid://shopify/Order/404").await,
        Ok(None)
    );
    assert_eq!(stub.seen().len(), 1);
}

#[tokio::test]
async fn finds_orders_by_name_with_and_without_hash() {
    let stub = Stub::start(store).await;
    let client = stub.client();
    for name in ["1001", "#1001", " #1001 "] {
        let found = client.find_orders_by_name(name).await;
        assert_eq!(found, Ok(vec![expected_order()]), "{name:?}");
    }
    let searches: Vec<String> = stub
        .seen()
        .into_iter()
        .filter(|s| s.operation == "FindOrdersByName")
        .map(|s| s.variables["query"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        searches,
        [
            "name:1001",
            "name:#1001",
            "name:#1001",
            "name:1001",
            "name:#1001",
            "name:1001"
        ]
    );
    let order = expected_order();
    for name in ["1001", "#1001"] {
        let before = stub.seen().len();
        assert_eq!(
            client.find_order_names(name).await,
            Ok(vec![(order.id.clone(), order.name.clone())]),
            "{name:?}"
        );
        // The two searches, no read of the order.
        assert_eq!(stub.seen().len() - before, 2, "{name:?}");
    }
    assert_eq!(client.find_order_names("#999").await, Ok(vec![]));
    assert_eq!(client.find_orders_by_name("#999").await, Ok(vec![]));
    assert_eq!(client.find_orders_by_name(" # ").await, Ok(vec![]));
    assert_well_formed(&stub.seen());
}

#[tokio::test]
async fn shop_name_for_test_connection() {
    let stub = Stub::start(|_| Reply::data(json!({ "shop": { "name": "Acme" } }))).await;
    assert_eq!(stub.client().shop_name().await, Ok("Acme".to_owned()));
    assert_well_formed(&stub.seen());
}

fn request() -> FulfillmentRequest {
    FulfillmentRequest {
        fulfillment_order_id: FO_ID.into(),
        items: vec![
            (gid("FulfillmentOrderLineItem", 12), 1),
            (gid("FulfillmentOrderLineItem", 13), 1),
        ],
        tracking: Tracking {
            company: Some("UPS".into()),
            numbers: vec!["1Z3".into(), "1Z4".into()],
            urls: vec![],
        },
        notify_customer: true,
    }
}

#[tokio::test]
async fn creates_a_fulfillment_through_variables() {
    let stub = Stub::start(|_| {
        Reply::data(json!({ "fulfillmentCreate": {
            "fulfillment": { "id": "gid://shopify/Fulfillment/3", "status": "SUCCESS" },
            "userErrors": [],
        }}))
    })
    .await;
    let created = stub.client().fulfillment_create(&request()).await;
    assert_eq!(
        created,
        Ok(shipsync_shopify::CreatedFulfillment {
            id: "gid://shopify/Fulfillment/3".into(),
            status: "SUCCESS".into(),
        })
    );
    let seen = stub.seen();
    assert_well_formed(&seen);
    assert_eq!(
        seen[0].variables,
        json!({ "fulfillment": {
            "lineItemsByFulfillmentOrder": [{
                "fulfillmentOrderId": FO_ID,
                "fulfillmentOrderLineItems": [
                    { "id": gid("FulfillmentOrderLineItem", 12), "quantity": 1 },
                    { "id": gid("FulfillmentOrderLineItem", 13), "quantity": 1 },
                ],
            }],
            "notifyCustomer": true,
            "trackingInfo": { "company": "UPS", "numbers": ["1Z3", "1Z4"] },
        }})
    );
}

#[tokio::test]
async fn updates_tracking_with_number_and_url_lists() {
    let stub = Stub::start(|_| {
        Reply::data(json!({ "fulfillmentTrackingInfoUpdate": {
            "fulfillment": { "id": F1 }, "userErrors": [],
        }}))
    })
    .await;
    let tracking = Tracking {
        company: Some("Acme Freight".into()),
        numbers: vec!["T1".into(), "T9".into()],
        urls: vec!["https://t.example/T1".into(), "https://t.example/T9".into()],
    };
    assert_eq!(
        stub.client().tracking_update(F1, &tracking, false).await,
        Ok(())
    );
    let seen = stub.seen();
    assert_well_formed(&seen);
    assert_eq!(
        seen[0].variables,
        json!({
            "fulfillmentId": F1,
            "trackingInfoInput": {
                "company": "Acme Freight",
                "numbers": ["T1", "T9"],
                "urls": ["https://t.example/T1", "https://t.example/T9"],
            },
            "notifyCustomer": false,
        })
    );
}

#[tokio::test]
async fn user_errors_need_a_person() {
    let stub = Stub::start(|_| {
        Reply::data(json!({ "fulfillmentCreate": {
            "fulfillment": null,
            "userErrors": [
                { "field": ["fulfillment", "lineItemsByFulfillmentOrder", "0"], "message": "Invalid quantity" },
                { "field": null, "message": "Fulfillment order is closed" },
            ],
        }}))
    })
    .await;
    assert_eq!(
        stub.client().fulfillment_create(&request()).await,
        Err(ShopifyError::UserErrors(vec![
            "fulfillment.lineItemsByFulfillmentOrder.0: Invalid quantity".into(),
            "Fulfillment order is closed".into(),
        ]))
    );
}

fn throttled_body() -> Value {
    json!({
        "errors": [{ "message": "Throttled", "extensions": { "code": "THROTTLED" } }],
        "extensions": cost(752.0, 100.0, 100.0),
    })
}

#[tokio::test]
async fn throttled_with_200_waits_for_the_bucket() {
    let stub = Stub::start(|_| Reply::json(200, throttled_body())).await;
    let client = stub.client();
    // (752 needed − 100 available) / 100 per second.
    let expected = ShopifyError::Throttled {
        retry_after: Duration::from_secs_f64(6.52),
    };
    assert_eq!(client.order(ORDER_ID).await, Err(expected.clone()));
    assert_eq!(client.fulfillment_create(&request()).await, Err(expected));
}

#[tokio::test]
async fn throttled_with_429_honours_retry_after() {
    let stub = Stub::start(|_| {
        Reply::json(429, json!({ "errors": "Throttled" })).header("retry-after", "2.0")
    })
    .await;
    assert_eq!(
        stub.client().shop_name().await,
        Err(ShopifyError::Throttled {
            retry_after: Duration::from_secs(2)
        })
    );
    // Without the header, the bucket decides.
    let stub = Stub::start(|_| Reply::json(429, throttled_body())).await;
    assert_eq!(
        stub.client().shop_name().await,
        Err(ShopifyError::Throttled {
            retry_after: Duration::from_secs_f64(6.52)
        })
    );
}

#[tokio::test]
async fn server_errors_are_transient_for_queries() {
    let stub = Stub::start(|_| Reply::raw(500, "oops").header("retry-after", "3")).await;
    let err = stub.client().order(ORDER_ID).await;
    assert!(
        matches!(&err, Err(ShopifyError::Transient { retry_after: Some(d), .. }) if *d == Duration::from_secs(3)),
        "{err:?}"
    );
    let stub = Stub::start(|_| Reply::raw(503, "maintenance")).await;
    let client = stub.client();
    assert!(matches!(
        client.shop_name().await,
        Err(ShopifyError::Transient { .. })
    ));
    // 503: not processed, so a mutation can simply be retried.
    let err = client.fulfillment_create(&request()).await;
    assert!(
        matches!(err, Err(ShopifyError::Transient { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_mutation_behind_a_failing_gateway_has_an_unknown_outcome() {
    for status in [500, 502, 504] {
        let stub = Stub::start(move |_| Reply::raw(status, "gateway")).await;
        let err = stub.client().fulfillment_create(&request()).await;
        assert!(
            matches!(err, Err(ShopifyError::UnknownOutcome { .. })),
            "{status}: {err:?}"
        );
    }
}

#[tokio::test]
async fn malformed_answers() {
    let stub = Stub::start(|_| Reply::raw(200, "<html>not json</html>")).await;
    let client = stub.client();
    assert!(matches!(
        client.order(ORDER_ID).await,
        Err(ShopifyError::Transient { .. })
    ));
    let err = client.fulfillment_create(&request()).await;
    assert!(
        matches!(err, Err(ShopifyError::UnknownOutcome { .. })),
        "{err:?}"
    );
    // Right JSON, wrong shape: a negative quantity.
    let stub = Stub::start(|_| {
        Reply::data(
            json!({ "order": { "id": ORDER_ID, "name": "#1", "updatedAt": null,
            "lineItems": page(json!([{ "id": "x", "sku": null, "name": "n", "quantity": -1,
                "requiresShipping": true }]), None) } }),
        )
    })
    .await;
    let err = stub.client().order(ORDER_ID).await;
    assert!(
        matches!(err, Err(ShopifyError::Transient { .. })),
        "{err:?}"
    );
}

fn quick() -> Timeouts {
    Timeouts {
        total: Duration::from_millis(300),
        ..Timeouts::default()
    }
}

#[tokio::test]
async fn a_timeout_is_unknown_for_a_mutation_and_transient_for_a_query() {
    let stub = Stub::start(|_| Reply::data(json!({})).delayed(Duration::from_secs(3))).await;
    let client = stub.client_with(quick());
    let err = client.fulfillment_create(&request()).await;
    assert!(
        matches!(err, Err(ShopifyError::UnknownOutcome { .. })),
        "{err:?}"
    );
    let err = client.tracking_update(F1, &request().tracking, false).await;
    assert!(
        matches!(err, Err(ShopifyError::UnknownOutcome { .. })),
        "{err:?}"
    );
    let err = client.order(ORDER_ID).await;
    assert!(
        matches!(err, Err(ShopifyError::Transient { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_transient_even_for_a_mutation() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = client_for(&format!("http://{addr}"), quick());
    let err = client.fulfillment_create(&request()).await;
    assert!(
        matches!(err, Err(ShopifyError::Transient { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn credentials_and_addresses() {
    let stub = Stub::start(|_| {
        Reply::json(401, json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" }))
    })
    .await;
    let err = stub.client().shop_name().await;
    assert!(
        matches!(&err, Err(ShopifyError::Unauthorized(m)) if m.contains("Invalid API key")),
        "{err:?}"
    );
    let stub = Stub::start(|_| Reply::raw(403, "")).await;
    assert!(matches!(
        stub.client().shop_name().await,
        Err(ShopifyError::Unauthorized(_))
    ));
    let stub = Stub::start(|_| {
        Reply::json(
            200,
            json!({ "errors": [{ "message": "Access denied for orders field.",
            "extensions": { "code": "ACCESS_DENIED" } }] }),
        )
    })
    .await;
    assert!(matches!(
        stub.client().order(ORDER_ID).await,
        Err(ShopifyError::Unauthorized(_))
    ));
    // Wrong API version: the stub only serves 2026-10.
    let stub = Stub::start(store).await;
    let http = shipsync_shopify::ShopifyClient::http_client(
        &Timeouts::default(),
        shipsync_outbound::TargetPolicy::ALLOW_PRIVATE,
    )
    .expect("http");
    let client = shipsync_shopify::ShopifyClient::new(
        http,
        &stub.base_url,
        "2019-01",
        secrecy::SecretString::from(TOKEN),
    )
    .expect("client");
    assert!(matches!(
        client.shop_name().await,
        Err(ShopifyError::NotFound(_))
    ));
}

#[tokio::test]
async fn graphql_validation_errors_are_permanent() {
    let stub = Stub::start(|_| {
        Reply::json(
            200,
            json!({ "errors": [{ "message": "Field 'nope' doesn't exist on type 'Order'",
            "extensions": { "code": "undefinedField" } }] }),
        )
    })
    .await;
    let err = stub.client().order(ORDER_ID).await;
    assert!(
        matches!(&err, Err(ShopifyError::Permanent(m)) if m.contains("doesn't exist")),
        "{err:?}"
    );
}

/// The first call tells the client its bucket is empty; the second waits
/// for 100 points at 250/s (0.4 s) before it is sent.
#[tokio::test]
async fn the_budget_waits_when_the_bucket_is_low() {
    let stub = Stub::start(|_| {
        Reply::json(
            200,
            json!({ "data": { "shop": { "name": "Acme" } },
            "extensions": cost(100.0, 0.0, 250.0) }),
        )
    })
    .await;
    let client = stub.client();
    assert_eq!(client.shop_name().await, Ok("Acme".into()));
    assert_eq!(client.clone().shop_name().await, Ok("Acme".into()));
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    // A lower bound only: a slow machine makes the gap longer, never shorter.
    assert!(gap >= Duration::from_millis(350), "sent after {gap:?}");
}

/// A wait beyond `max_budget_wait` is not slept: the call returns Throttled
/// at once and nothing is sent.
#[tokio::test]
async fn a_long_budget_wait_returns_throttled_without_sending() {
    let stub = Stub::start(|_| {
        Reply::json(
            200,
            json!({ "data": { "shop": { "name": "Acme" } },
            "extensions": cost(500.0, 0.0, 50.0) }),
        )
    })
    .await;
    let client = stub.client_with(Timeouts {
        max_budget_wait: Duration::from_secs(1),
        ..Timeouts::default()
    });
    assert_eq!(client.shop_name().await, Ok("Acme".into()));
    let err = client.shop_name().await;
    assert!(
        matches!(err, Err(ShopifyError::Throttled { retry_after }) if retry_after > Duration::from_secs(9)),
        "{err:?}"
    );
    assert_eq!(stub.seen().len(), 1);
}
