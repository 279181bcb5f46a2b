//! Drives the sandbox over real HTTP on a loopback port, as shipsync will.

use serde_json::{Value, json};
use shipsync_sandbox_shopify::*;

const TOKEN: &str = "shpat_test";

struct Client {
    http: reqwest::Client,
    running: RunningShopify,
}

impl Client {
    async fn start() -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sandbox = ShopifySandbox::new(SandboxConfig {
            access_token: TOKEN.into(),
            ..Default::default()
        });
        let running = sandbox
            .start("127.0.0.1:0".parse().expect("loopback address"))
            .await
            .expect("bind loopback");
        Client {
            http: reqwest::Client::new(),
            running,
        }
    }

    fn sandbox(&self) -> &ShopifySandbox {
        &self.running.sandbox
    }

    async fn post(&self, token: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.running.graphql_url())
            .header("X-Shopify-Access-Token", token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .post(TOKEN, json!({ "query": query, "variables": variables }))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Two lines at location 1, one at location 2.
fn split_order(name: &str) -> OrderSpec {
    OrderSpec {
        name: name.into(),
        lines: vec![
            LineSpec {
                sku: "A".into(),
                quantity: 3,
                ..Default::default()
            },
            LineSpec {
                sku: "B".into(),
                quantity: 1,
                group: Some("BUNDLE-1".into()),
                ..Default::default()
            },
            LineSpec {
                sku: "C".into(),
                quantity: 2,
                ..Default::default()
            },
        ],
        fulfillment_orders: vec![
            FoSpec {
                location_id: "gid://shopify/Location/1".into(),
                lines: vec![0, 1],
                status: None,
            },
            FoSpec {
                location_id: "gid://shopify/Location/2".into(),
                lines: vec![2],
                status: None,
            },
        ],
        ..Default::default()
    }
}

const ORDER_BY_NAME: &str = r#"
query OrderByName($q: String!) {
  orders(first: 2, query: $q) {
    edges { cursor node { ...O } }
    pageInfo { hasNextPage endCursor }
  }
}
fragment O on Order {
  id name displayFulfillmentStatus displayFinancialStatus email updatedAt
  shippingAddress { name city countryCodeV2 }
  lineItems(first: 5) { nodes { id sku quantity unfulfilledQuantity variant { sku } lineItemGroup { title quantity } } }
  fulfillmentOrders(first: 3) {
    nodes {
      id status
      assignedLocation { location { id name } }
      lineItems(first: 5) { nodes { id totalQuantity remainingQuantity lineItem { id sku } } }
    }
  }
  fulfillments(first: 5) { id status trackingInfo(first: 5) { company number url } }
}"#;

const FULFILL: &str = r#"
mutation Fulfill($f: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $f) {
    fulfillment { id status trackingInfo(first: 10) { company number url }
                  fulfillmentLineItems(first: 10) { nodes { quantity lineItem { sku } } } }
    userErrors { field message }
  }
}"#;

fn fulfill_vars(fo: &str, items: Value, tracking: Value) -> Value {
    json!({ "f": {
        "lineItemsByFulfillmentOrder": [{ "fulfillmentOrderId": fo, "fulfillmentOrderLineItems": items }],
        "trackingInfo": tracking,
        "notifyCustomer": true,
    }})
}

#[tokio::test]
async fn order_lookup_and_partial_fulfilment() {
    let c = Client::start().await;
    let created = c.sandbox().create_order(split_order("#1001"));
    c.sandbox().create_order(OrderSpec {
        name: "#1002".into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
        ..Default::default()
    });

    // Shopify matches the name with or without '#'.
    for q in [
        "name:#1001",
        "name:1001",
        "name:'#1001' financial_status:paid fulfillment_status:unfulfilled",
    ] {
        let body = c.gql(ORDER_BY_NAME, json!({ "q": q })).await;
        let edges = body["data"]["orders"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(edges.len(), 1, "{q}: {body}");
        let order = &edges[0]["node"];
        assert_eq!(order["id"], created.order_id.as_str());
        assert_eq!(order["displayFulfillmentStatus"], "UNFULFILLED");
        assert_eq!(
            order["lineItems"]["nodes"][1]["lineItemGroup"]["title"],
            "BUNDLE-1"
        );
        assert_eq!(
            order["fulfillmentOrders"]["nodes"][1]["assignedLocation"]["location"]["id"],
            "gid://shopify/Location/2"
        );
        assert!(body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"].is_number());
    }

    // Ship 2 of the 3 A at location 1, with two packages.
    let fo1 = &created.fulfillment_order_ids[0];
    let foli_a = &created.fulfillment_order_line_item_ids[0][0];
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(
                fo1,
                json!([{ "id": foli_a, "quantity": 2 }]),
                json!({ "company": "UPS", "numbers": ["1Z1", "1Z2"] }),
            ),
        )
        .await;
    let payload = &body["data"]["fulfillmentCreate"];
    assert_eq!(payload["userErrors"], json!([]), "{body}");
    assert_eq!(payload["fulfillment"]["status"], "SUCCESS");
    assert_eq!(payload["fulfillment"]["trackingInfo"][1]["number"], "1Z2");
    assert_eq!(payload["fulfillment"]["trackingInfo"][0]["company"], "UPS");
    assert!(
        payload["fulfillment"]["trackingInfo"][0]["url"]
            .as_str()
            .is_some_and(|u| u.contains("1Z1"))
    );
    assert_eq!(
        payload["fulfillment"]["fulfillmentLineItems"]["nodes"][0]["quantity"],
        2
    );

    let view = c.sandbox().order("1001").expect("order");
    assert_eq!(view.display_fulfillment_status, "PARTIALLY_FULFILLED");
    assert_eq!(view.fulfillment_orders[0].status, "IN_PROGRESS");
    assert_eq!(
        view.fulfillment_orders[0].line_items[0].remaining_quantity,
        1
    );
    assert_eq!(view.lines[0].fulfilled_quantity, 2);
    assert_eq!(view.fulfillments[0].tracking_numbers, vec!["1Z1", "1Z2"]);
    assert!(view.fulfillments[0].notify_customer);

    // Over-quantity: only 1 A remains.
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(fo1, json!([{ "id": foli_a, "quantity": 2 }]), Value::Null),
        )
        .await;
    let errors = &body["data"]["fulfillmentCreate"]["userErrors"];
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("quantity")),
        "{body}"
    );
    assert_eq!(
        body["data"]["fulfillmentCreate"]["fulfillment"],
        Value::Null
    );

    // Two fulfillment orders at different locations in one call.
    let fo2 = &created.fulfillment_order_ids[1];
    let both = json!({ "f": { "lineItemsByFulfillmentOrder": [
        { "fulfillmentOrderId": fo1 }, { "fulfillmentOrderId": fo2 } ] } });
    let body = c.gql(FULFILL, both).await;
    let message = body["data"]["fulfillmentCreate"]["userErrors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("same location"), "{body}");

    // A line item of another fulfillment order.
    let foli_c = &created.fulfillment_order_line_item_ids[1][0];
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(fo1, json!([{ "id": foli_c, "quantity": 1 }]), Value::Null),
        )
        .await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{body}"
    );

    // url without number.
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(fo2, Value::Null, json!({ "url": "https://t.example/1" })),
        )
        .await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{body}"
    );

    // ON_HOLD is refused.
    c.sandbox().set_fulfillment_order_status(fo2, "ON_HOLD");
    let body = c
        .gql(FULFILL, fulfill_vars(fo2, Value::Null, Value::Null))
        .await;
    let message = body["data"]["fulfillmentCreate"]["userErrors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("on_hold"), "{body}");
    assert_eq!(c.sandbox().fulfillments_created(), 1);

    // Back to OPEN: an empty line list fulfils everything remaining.
    c.sandbox().set_fulfillment_order_status(fo2, "OPEN");
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(
                fo2,
                json!([]),
                json!({ "company": "FedEx", "number": "F1" }),
            ),
        )
        .await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"],
        json!([]),
        "{body}"
    );
    let body = c
        .gql(FULFILL, fulfill_vars(fo1, Value::Null, Value::Null))
        .await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"],
        json!([]),
        "{body}"
    );

    let view = c.sandbox().order("#1001").expect("order");
    assert_eq!(view.display_fulfillment_status, "FULFILLED");
    assert!(view.fulfillment_orders.iter().all(|f| f.status == "CLOSED"));
    assert_eq!(view.fulfillments.len(), 3);
    assert_eq!(c.sandbox().fulfillments_created(), 3);

    // Fulfilled orders drop out of an unfulfilled search.
    let body = c
        .gql(
            ORDER_BY_NAME,
            json!({ "q": "fulfillment_status:unfulfilled" }),
        )
        .await;
    let names: Vec<&str> = body["data"]["orders"]["edges"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["node"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, vec!["#1002"]);

    let requests = c.sandbox().requests();
    assert!(
        requests
            .iter()
            .any(|r| r.operation_name.as_deref() == Some("Fulfill"))
    );
}

#[tokio::test]
async fn tracking_update_replaces_tracking() {
    let c = Client::start().await;
    let created = c.sandbox().create_order(OrderSpec {
        name: "#2001".into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
        ..Default::default()
    });
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(
                &created.fulfillment_order_ids[0],
                Value::Null,
                json!({ "company": "UPS", "number": "T1" }),
            ),
        )
        .await;
    let id = body["data"]["fulfillmentCreate"]["fulfillment"]["id"]
        .as_str()
        .expect("fulfillment id")
        .to_owned();

    let update = r#"
      mutation Track($id: ID!, $t: FulfillmentTrackingInput!) {
        fulfillmentTrackingInfoUpdate(fulfillmentId: $id, trackingInfoInput: $t, notifyCustomer: false) {
          fulfillment { id trackingInfo(first: 5) { company number url } }
          userErrors { field message }
        }
      }"#;
    let body = c
        .gql(update, json!({ "id": id, "t": { "company": "UPS", "numbers": ["T9", "T10"], "urls": ["https://t.example/9"] } }))
        .await;
    let payload = &body["data"]["fulfillmentTrackingInfoUpdate"];
    assert_eq!(payload["userErrors"], json!([]), "{body}");
    assert_eq!(payload["fulfillment"]["trackingInfo"][0]["number"], "T9");
    assert_eq!(
        payload["fulfillment"]["trackingInfo"][0]["url"],
        "https://t.example/9"
    );
    let view = c.sandbox().order("2001").expect("order");
    assert_eq!(view.fulfillments[0].tracking_numbers, vec!["T9", "T10"]);
    assert_eq!(view.fulfillments.len(), 1);

    let body = c
        .gql(
            update,
            json!({ "id": "gid://shopify/Fulfillment/999999", "t": { "number": "X" } }),
        )
        .await;
    assert_eq!(
        body["data"]["fulfillmentTrackingInfoUpdate"]["userErrors"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn invalid_requests_are_rejected_like_shopify() {
    let c = Client::start().await;
    let q = "{ orders(first: 1) { nodes { id } } }";

    let (status, body) = c.post("wrong", json!({ "query": q })).await;
    assert_eq!(status, 401);
    assert!(
        body["errors"]
            .as_str()
            .is_some_and(|e| e.contains("Invalid API key"))
    );

    let resp = c
        .http
        .post(format!("{}/admin/api/2019-01/graphql.json", c.running.url))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({ "query": q }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);

    // Unknown field: HTTP 200 with errors and no data.
    let body = c
        .gql(
            "{ orders(first: 1) { nodes { id trackingNumber } } }",
            Value::Null,
        )
        .await;
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );

    // Wrong variable type and unknown input field.
    let body = c
        .gql(
            "query($n: Int) { orders(first: $n) { nodes { id } } }",
            json!({ "n": "five" }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_VARIABLE",
        "{body}"
    );
    let body = c
        .gql(
            FULFILL,
            json!({ "f": { "lineItemsByFulfillmentOrder": [], "trackingNumber": "X" } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_VARIABLE",
        "{body}"
    );
    // Required variable missing.
    let body = c.gql(FULFILL, json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_VARIABLE",
        "{body}"
    );

    // Connections need first or last.
    let body = c.gql("{ orders { nodes { id } } }", Value::Null).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("first or last")),
        "{body}"
    );
}

#[tokio::test]
async fn throttles_when_the_bucket_is_empty() {
    let c = Client::start().await;
    let q = "{ orders(first: 10) { nodes { id name } } }";
    let body = c.gql(q, Value::Null).await;
    let cost = &body["extensions"]["cost"];
    assert!(
        cost["requestedQueryCost"]
            .as_f64()
            .is_some_and(|n| n >= 12.0),
        "{body}"
    );
    // No orders: the actual cost is lower and the difference is refunded.
    assert!(
        cost["actualQueryCost"].as_f64() < cost["requestedQueryCost"].as_f64(),
        "{body}"
    );
    assert_eq!(cost["throttleStatus"]["maximumAvailable"], 1000.0);

    // Shopify refuses single queries above 1000 points whatever the bucket holds.
    let heavy = "{ orders(first: 250) { nodes { lineItems(first: 250) { nodes { id } } } } }";
    let body = c.gql(heavy, Value::Null).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED",
        "{body}"
    );

    c.sandbox().drain_bucket();
    let body = c.gql(q, Value::Null).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "THROTTLED",
        "{body}"
    );
    assert!(
        body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"].as_f64() < Some(12.0)
    );

    // The bucket refills at 100/s.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let body = c.gql(q, Value::Null).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn faults_fail_requests_and_apply_then_drop_still_applies() {
    let c = Client::start().await;
    let created = c.sandbox().create_order(OrderSpec {
        name: "#3001".into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
        ..Default::default()
    });
    c.sandbox().set_faults(Faults {
        fail_next: 4,
        kinds: vec![
            FaultKind::Http502,
            FaultKind::TooManyRequests,
            FaultKind::Throttled,
            FaultKind::ApplyThenDrop,
        ],
        mutations_only: true,
        ..Default::default()
    });
    let vars = fulfill_vars(
        &created.fulfillment_order_ids[0],
        Value::Null,
        json!({ "number": "T1" }),
    );
    // Reads are unaffected with mutations_only.
    let body = c
        .gql("{ orders(first: 1) { nodes { id } } }", Value::Null)
        .await;
    assert!(body["errors"].is_null());

    let (status, _) = c
        .post(TOKEN, json!({ "query": FULFILL, "variables": vars }))
        .await;
    assert_eq!(status, 502);
    let (status, _) = c
        .post(TOKEN, json!({ "query": FULFILL, "variables": vars }))
        .await;
    assert_eq!(status, 429);
    let (status, body) = c
        .post(TOKEN, json!({ "query": FULFILL, "variables": vars }))
        .await;
    assert_eq!(
        (status, &body["errors"][0]["extensions"]["code"]),
        (200, &json!("THROTTLED"))
    );
    assert_eq!(c.sandbox().fulfillments_created(), 0);
    let (status, _) = c
        .post(TOKEN, json!({ "query": FULFILL, "variables": vars }))
        .await;
    assert_eq!(status, 500);
    // The write landed even though the client saw a 500.
    assert_eq!(c.sandbox().fulfillments_created(), 1);
    // A retry without checking would now be refused: nothing remains.
    let body = c.gql(FULFILL, vars).await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn pagination_and_control_endpoints() {
    let c = Client::start().await;
    for n in 1..=5 {
        let resp = c
            .http
            .post(format!("{}/_sandbox/orders", c.running.url))
            .json(&json!({ "name": format!("#{n}"), "lines": [{ "sku": "A", "quantity": 1 }] }))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 201);
    }
    let page = r#"query($after: String) { orders(first: 2, after: $after, sortKey: ID) {
        nodes { name } pageInfo { hasNextPage hasPreviousPage endCursor } } }"#;
    let mut names = Vec::new();
    let mut after = Value::Null;
    loop {
        let body = c.gql(page, json!({ "after": after })).await;
        let orders = &body["data"]["orders"];
        names.extend(
            orders["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["name"].as_str().map(str::to_owned)),
        );
        if orders["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = orders["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(names, vec!["#1", "#2", "#3", "#4", "#5"]);

    let body = c.gql("{ orders(last: 2, reverse: true, sortKey: ID) { nodes { name } pageInfo { hasPreviousPage } } }", Value::Null).await;
    assert_eq!(
        body["data"]["orders"]["nodes"],
        json!([{ "name": "#2" }, { "name": "#1" }])
    );
    assert_eq!(body["data"]["orders"]["pageInfo"]["hasPreviousPage"], true);

    let resp = c
        .http
        .get(format!("{}/_sandbox/orders/%233", c.running.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let view: OrderView = resp.json().await.expect("order view");
    assert_eq!(view.name, "#3");

    let resp = c
        .http
        .post(format!("{}/_sandbox/orders", c.running.url))
        .json(&json!({ "name": "#3", "lines": [{ "sku": "A", "quantity": 1 }] }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 422);
}

#[tokio::test]
async fn node_and_aliases() {
    let c = Client::start().await;
    let created = c.sandbox().create_order(split_order("#4001"));
    let q = r#"query($id: ID!, $fo: ID!) {
        n: node(id: $id) { __typename ... on Order { orderName: name } }
        fo: fulfillmentOrder(id: $fo) { status order { name } lineItems(first: 5) { edges { node { sku remainingQuantity } } } }
        missing: order(id: "gid://shopify/Order/999999") { id }
    }"#;
    let body = c
        .gql(
            q,
            json!({ "id": created.order_id, "fo": created.fulfillment_order_ids[1] }),
        )
        .await;
    assert_eq!(
        body["data"]["n"],
        json!({ "__typename": "Order", "orderName": "#4001" }),
        "{body}"
    );
    assert_eq!(body["data"]["fo"]["order"]["name"], "#4001");
    assert_eq!(
        body["data"]["fo"]["lineItems"]["edges"][0]["node"],
        json!({ "sku": "C", "remainingQuantity": 2 })
    );
    assert!(body["data"]["missing"].is_null());
}

#[tokio::test]
async fn searches_by_time() {
    let c = Client::start().await;
    let old: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("timestamp");
    c.sandbox().create_order(OrderSpec {
        name: "#5001".into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
        created_at: Some(old),
        ..Default::default()
    });
    c.sandbox().create_order(OrderSpec {
        name: "#5002".into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
        ..Default::default()
    });
    let q = "query($q: String) { orders(first: 10, query: $q, sortKey: UPDATED_AT) { nodes { name updatedAt } } }";
    for (query, expected) in [
        ("updated_at:>2026-01-01T00:00:00Z", json!(["#5002"])),
        (
            "updated_at:>='2026-01-01T00:00:00Z'",
            json!(["#5001", "#5002"]),
        ),
        ("created_at:<2026-06-01", json!(["#5001"])),
    ] {
        let body = c.gql(q, json!({ "q": query })).await;
        let names: Vec<Value> = body["data"]["orders"]["nodes"]
            .as_array()
            .map(|n| n.iter().map(|o| o["name"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(Value::Array(names), expected, "{query}: {body}");
    }
    let body = c.gql(q, json!({ "q": "created_at:<2026-06-01" })).await;
    assert_eq!(
        body["data"]["orders"]["nodes"][0]["updatedAt"],
        "2026-01-01T00:00:00Z"
    );
}

/// `fulfillments_visible_after_ms`: the create is applied at once (its
/// answer names the fulfillment, the quantities are taken) but reads show
/// the fulfillment only later.
#[tokio::test]
async fn a_fulfillment_can_show_up_late() {
    let c = Client::start().await;
    let created = c.sandbox().create_order(OrderSpec {
        name: "#3101".into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 2,
            ..Default::default()
        }],
        ..Default::default()
    });
    c.sandbox().set_faults(Faults {
        fulfillments_visible_after_ms: 1_500,
        ..Default::default()
    });
    let fo = &created.fulfillment_order_ids[0];
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(fo, Value::Null, json!({ "number": "T1" })),
        )
        .await;
    let id = body["data"]["fulfillmentCreate"]["fulfillment"]["id"].clone();
    assert!(id.is_string(), "{body}");
    let read = r#"query R($o: ID!, $fo: ID!, $f: ID!) {
      order(id: $o) { fulfillments(first: 5) { id } }
      fulfillmentOrder(id: $fo) {
        fulfillments(first: 5) { nodes { id } }
        lineItems(first: 5) { nodes { remainingQuantity } }
      }
      fulfillment(id: $f) { id }
    }"#;
    let vars = json!({ "o": created.order_id, "fo": fo, "f": id });
    let body = c.gql(read, vars.clone()).await;
    assert_eq!(body["data"]["order"]["fulfillments"], json!([]), "{body}");
    assert_eq!(
        body["data"]["fulfillmentOrder"]["fulfillments"]["nodes"],
        json!([])
    );
    assert_eq!(body["data"]["fulfillment"], Value::Null);
    // Applied all the same: nothing remains to fulfil.
    assert_eq!(
        body["data"]["fulfillmentOrder"]["lineItems"]["nodes"][0]["remainingQuantity"],
        0
    );
    assert_eq!(c.sandbox().fulfillments_created(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    let body = c.gql(read, vars).await;
    assert_eq!(body["data"]["order"]["fulfillments"][0]["id"], id, "{body}");
    assert_eq!(
        body["data"]["fulfillmentOrder"]["fulfillments"]["nodes"][0]["id"],
        id
    );
    assert_eq!(body["data"]["fulfillment"]["id"], id);
}

/// Root `fulfillmentOrders`: the documented filters (status, assigned
/// location, last change), closed ones only on request, sorted by last
/// change, priced per fulfillment order and line actually returned.
#[tokio::test]
async fn fulfillment_orders_of_the_store() {
    let c = Client::start().await;
    let old: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("timestamp");
    let one_line = |name: &str, created_at: Option<jiff::Timestamp>| OrderSpec {
        name: name.into(),
        lines: vec![LineSpec {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
        created_at,
        ..Default::default()
    };
    c.sandbox().create_order(one_line("#6001", Some(old)));
    let fulfilled = c.sandbox().create_order(one_line("#6002", None));
    c.sandbox().create_order(split_order("#6003"));
    let q = r#"query($q: String, $closed: Boolean) {
      fulfillmentOrders(first: 10, query: $q, includeClosed: $closed, sortKey: UPDATED_AT) {
        nodes { orderName status lineItems(first: 10) { nodes { id lineItem { id } } } }
      }
    }"#;
    let names = |body: &Value| -> Vec<String> {
        body["data"]["fulfillmentOrders"]["nodes"]
            .as_array()
            .map(|n| {
                n.iter()
                    .map(|f| f["orderName"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let at_1 = "status:open assigned_location_id:1";
    let body = c.gql(q, json!({ "q": at_1 })).await;
    assert_eq!(names(&body), ["#6001", "#6002", "#6003"], "{body}");
    let body = c
        .gql(q, json!({ "q": "status:open assigned_location_id:2" }))
        .await;
    assert_eq!(names(&body), ["#6003"], "{body}");
    let body = c
        .gql(
            q,
            json!({ "q": format!("{at_1} updated_at:>'2026-06-01T00:00:00Z'") }),
        )
        .await;
    assert_eq!(names(&body), ["#6002", "#6003"], "{body}");

    // Fulfilled whole: closed, so listed only with includeClosed.
    let body = c
        .gql(
            FULFILL,
            fulfill_vars(
                &fulfilled.fulfillment_order_ids[0],
                json!([{ "id": fulfilled.fulfillment_order_line_item_ids[0][0], "quantity": 1 }]),
                json!({ "number": "T-6002" }),
            ),
        )
        .await;
    assert_eq!(
        body["data"]["fulfillmentCreate"]["userErrors"],
        json!([]),
        "{body}"
    );
    let body = c.gql(q, json!({ "q": at_1 })).await;
    assert_eq!(names(&body), ["#6001", "#6003"], "{body}");
    let body = c
        .gql(q, json!({ "q": "assigned_location_id:1", "closed": true }))
        .await;
    let mut all = names(&body);
    all.sort();
    assert_eq!(all, ["#6001", "#6002", "#6003"], "{body}");

    // Priced by what came back: 2 for the connection, then per
    // fulfillment order 1 + its lines' connection 2 + per line 1 + 1.
    let body = c
        .gql(q, json!({ "q": "status:open assigned_location_id:2" }))
        .await;
    let cost = &body["extensions"]["cost"];
    assert_eq!(cost["actualQueryCost"].as_f64(), Some(7.0), "{body}");
    assert!(cost["requestedQueryCost"].as_f64() > cost["actualQueryCost"].as_f64());

    // Free text, connectives and GIDs for ids are refused, not answered
    // differently.
    for bad in [
        "hoodie",
        "status:open OR status:closed",
        "assigned_location_id:gid://shopify/Location/1",
    ] {
        let body = c.gql(q, json!({ "q": bad })).await;
        assert!(body["errors"].is_array(), "{bad}: {body}");
    }
}
