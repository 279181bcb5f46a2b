//! The order lifecycle controls (cancel, edit, tags, payment, holds) as a
//! GraphQL client sees them, and the `orders(query:)` filters shipsync uses
//! to follow orders after creation.

use serde_json::{Value, json};
use shipsync_sandbox_shopify::*;

const TOKEN: &str = "shpat_lifecycle";

struct Store {
    http: reqwest::Client,
    running: RunningShopify,
}

impl Store {
    async fn start() -> Store {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let running = ShopifySandbox::new(SandboxConfig {
            access_token: TOKEN.into(),
            ..Default::default()
        })
        .start("127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("bind loopback");
        Store {
            http: reqwest::Client::new(),
            running,
        }
    }

    fn sandbox(&self) -> &ShopifySandbox {
        &self.running.sandbox
    }

    async fn gql(&self, query: &str, variables: Value) -> Value {
        let resp = self
            .http
            .post(self.running.graphql_url())
            .header("X-Shopify-Access-Token", TOKEN)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "{body}");
        body
    }

    /// The order as shipsync reads it after creation.
    async fn order(&self, id: &str) -> Value {
        let body = self
            .gql(
                "query O($id: ID!) { order(id: $id) {
                    id cancelledAt cancelReason
                    displayFinancialStatus displayFulfillmentStatus
                    tags edited updatedAt
                    shippingLines(first: 5, includeRemovals: true) {
                        nodes { title code source carrierIdentifier isRemoved }
                    }
                    lineItems(first: 20) { nodes {
                        id sku quantity currentQuantity unfulfilledQuantity requiresShipping
                        lineItemGroup { title }
                    } }
                    fulfillmentOrders(first: 10) { nodes {
                        id status
                        assignedLocation { location { id } }
                        fulfillmentHolds { reason reasonNotes displayReason }
                        lineItems(first: 20) { nodes {
                            sku totalQuantity remainingQuantity lineItem { id }
                        } }
                    } }
                } }",
                json!({ "id": id }),
            )
            .await;
        body["data"]["order"].clone()
    }

    async fn names(&self, query: &str) -> Vec<String> {
        let body = self
            .gql(
                "query Os($q: String) { orders(first: 50, query: $q) { nodes { name } } }",
                json!({ "q": query }),
            )
            .await;
        body["data"]["orders"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn fulfill(&self, fo_id: &str) -> Value {
        let body = self
            .gql(
                "mutation F($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) { fulfillment { id } userErrors { field message } } }",
                json!({ "f": { "lineItemsByFulfillmentOrder": [{ "fulfillmentOrderId": fo_id }] } }),
            )
            .await;
        body["data"]["fulfillmentCreate"].clone()
    }
}

fn an_hour_ago() -> jiff::Timestamp {
    let now = jiff::Timestamp::now().as_second() - 3600;
    jiff::Timestamp::from_second(now).unwrap()
}

fn order(name: &str) -> OrderSpec {
    OrderSpec {
        name: name.into(),
        lines: vec![
            LineSpec {
                sku: "A".into(),
                quantity: 3,
                ..Default::default()
            },
            LineSpec {
                sku: "CARD".into(),
                quantity: 1,
                requires_shipping: Some(false),
                ..Default::default()
            },
        ],
        shipping_line: Some("Express".into()),
        shipping_line_code: Some("EXP-1".into()),
        created_at: Some(an_hour_ago()),
        ..Default::default()
    }
}

fn line<'a>(order: &'a Value, sku: &str) -> &'a Value {
    order["lineItems"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == sku)
        .unwrap_or_else(|| panic!("no line {sku} in {order}"))
}

#[tokio::test]
async fn a_new_order_reads_as_shopify_shows_it() {
    let s = Store::start().await;
    let created = s.sandbox().create_order(OrderSpec {
        tags: vec!["b2b".into(), "rush".into()],
        ..order("#1001")
    });
    let o = s.order(&created.order_id).await;
    assert_eq!(o["cancelledAt"], Value::Null);
    assert_eq!(o["cancelReason"], Value::Null);
    assert_eq!(o["displayFinancialStatus"], "PAID");
    assert_eq!(o["displayFulfillmentStatus"], "UNFULFILLED");
    assert_eq!(o["tags"], json!(["b2b", "rush"]));
    assert_eq!(o["edited"], false);
    assert_eq!(
        o["shippingLines"]["nodes"],
        json!([{ "title": "Express", "code": "EXP-1", "source": "shopify", "carrierIdentifier": null, "isRemoved": false }])
    );
    let a = line(&o, "A");
    assert_eq!(
        (
            &a["quantity"],
            &a["currentQuantity"],
            &a["unfulfilledQuantity"]
        ),
        (&json!(3), &json!(3), &json!(3))
    );
    assert_eq!(a["requiresShipping"], true);
    assert_eq!(line(&o, "CARD")["requiresShipping"], false);
    let fo = &o["fulfillmentOrders"]["nodes"][0];
    assert_eq!(fo["status"], "OPEN");
    assert_eq!(fo["fulfillmentHolds"], json!([]));
    assert_eq!(
        fo["assignedLocation"]["location"]["id"],
        DEFAULT_LOCATION_ID
    );

    let refused = s.sandbox().try_create_order(OrderSpec {
        financial_status: Some("ALMOST_PAID".into()),
        ..order("#1002")
    });
    assert!(matches!(refused, Err(SandboxError::InvalidSpec(_))));
}

#[tokio::test]
async fn a_cancelled_order_reads_cancelled_everywhere() {
    let s = Store::start().await;
    let created = s.sandbox().create_order(order("#2001"));
    let before = s.order(&created.order_id).await["updatedAt"].clone();
    s.sandbox().cancel_order("#2001", "INVENTORY").unwrap();
    let o = s.order(&created.order_id).await;
    assert_eq!(o["cancelReason"], "INVENTORY");
    assert!(o["cancelledAt"].is_string());
    assert!(o["updatedAt"].as_str() > before.as_str(), "{o}");
    assert_eq!(o["displayFinancialStatus"], "REFUNDED");
    let a = line(&o, "A");
    assert_eq!(a["quantity"], 3, "quantity keeps the units ordered");
    assert_eq!(a["currentQuantity"], 0);
    assert_eq!(a["unfulfilledQuantity"], 0);
    let fo = &o["fulfillmentOrders"]["nodes"][0];
    assert_eq!(fo["status"], "CANCELLED");
    assert_eq!(fo["lineItems"]["nodes"][0]["totalQuantity"], 3);
    assert_eq!(fo["lineItems"]["nodes"][0]["remainingQuantity"], 0);

    // Nothing of it can be fulfilled, cancelled again or edited.
    let f = s.fulfill(&created.fulfillment_order_ids[0]).await;
    assert_eq!(f["fulfillment"], Value::Null);
    assert!(matches!(
        s.sandbox().cancel_order("#2001", "OTHER"),
        Err(SandboxError::Refused(_))
    ));
    assert!(matches!(
        s.sandbox().edit_order(
            "#2001",
            &[LineEdit::SetQuantity {
                line: "A".into(),
                quantity: 1
            }]
        ),
        Err(SandboxError::Refused(_))
    ));

    // An authorized (uncaptured) payment is voided.
    s.sandbox().create_order(OrderSpec {
        financial_status: Some("AUTHORIZED".into()),
        ..order("#2002")
    });
    s.sandbox().cancel_order("2002", "FRAUD").unwrap();
    assert_eq!(
        s.sandbox().order("#2002").unwrap().display_financial_status,
        "VOIDED"
    );
    assert!(matches!(
        s.sandbox().cancel_order("#2003", "FRAUD"),
        Err(SandboxError::NotFound(_))
    ));
    assert!(matches!(
        s.sandbox().cancel_order("#2002", "BORED"),
        Err(SandboxError::InvalidSpec(_))
    ));
}

#[tokio::test]
async fn an_order_with_a_fulfillment_cannot_be_cancelled() {
    let s = Store::start().await;
    let created = s.sandbox().create_order(order("#2101"));
    assert_eq!(
        s.fulfill(&created.fulfillment_order_ids[0]).await["userErrors"],
        json!([])
    );
    let refused = s.sandbox().cancel_order("#2101", "CUSTOMER");
    assert!(
        matches!(refused, Err(SandboxError::Refused(_))),
        "{refused:?}"
    );
    assert!(s.sandbox().order("#2101").unwrap().cancelled_at.is_none());
}

#[tokio::test]
async fn edits_change_current_quantities_and_the_fulfillment_orders_follow() {
    let s = Store::start().await;
    let created = s.sandbox().create_order(order("#3001"));
    let edited = s
        .sandbox()
        .edit_order(
            "#3001",
            &[
                LineEdit::SetQuantity {
                    line: created.line_item_ids[0].clone(),
                    quantity: 1,
                },
                LineEdit::SetQuantity {
                    line: "CARD".into(),
                    quantity: 0,
                },
                LineEdit::Add {
                    sku: "B".into(),
                    quantity: 2,
                    requires_shipping: None,
                },
                LineEdit::Add {
                    sku: "TIP".into(),
                    quantity: 1,
                    requires_shipping: Some(false),
                },
            ],
        )
        .unwrap();
    assert_eq!(edited.added_line_item_ids.len(), 2);
    let o = s.order(&created.order_id).await;
    assert_eq!(o["edited"], true);
    let a = line(&o, "A");
    assert_eq!(
        (&a["quantity"], &a["currentQuantity"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(a["unfulfilledQuantity"], 1);
    assert_eq!(line(&o, "CARD")["currentQuantity"], 0);
    let b = line(&o, "B");
    assert_eq!(b["id"], edited.added_line_item_ids[0].as_str());
    assert_eq!(
        (&b["quantity"], &b["currentQuantity"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(line(&o, "TIP")["requiresShipping"], false);
    let fos = o["fulfillmentOrders"]["nodes"].as_array().unwrap();
    assert_eq!(fos.len(), 1, "added lines join the open fulfillment order");
    let fo_lines: Vec<(String, i64, i64)> = fos[0]["lineItems"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_owned(),
                l["totalQuantity"].as_i64().unwrap(),
                l["remainingQuantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fo_lines,
        [
            ("A".to_owned(), 1, 1),
            ("CARD".to_owned(), 0, 0),
            ("B".to_owned(), 2, 2),
            ("TIP".to_owned(), 1, 1)
        ]
    );

    // Raising a quantity adds units to the line.
    s.sandbox()
        .edit_order(
            "#3001",
            &[LineEdit::SetQuantity {
                line: "A".into(),
                quantity: 4,
            }],
        )
        .unwrap();
    let view = s.sandbox().order("#3001").unwrap();
    let a = view.lines.iter().find(|l| l.sku == "A").unwrap();
    assert_eq!((a.quantity, a.current_quantity), (6, 4));
    let fo_a = view.fulfillment_orders[0]
        .line_items
        .iter()
        .find(|l| l.sku == "A")
        .unwrap();
    assert_eq!((fo_a.total_quantity, fo_a.remaining_quantity), (4, 4));

    // An edit that changes nothing, or names nothing, is refused whole.
    let unchanged = s.sandbox().edit_order(
        "#3001",
        &[LineEdit::SetQuantity {
            line: "A".into(),
            quantity: 4,
        }],
    );
    assert!(matches!(unchanged, Err(SandboxError::InvalidSpec(_))));
    let unknown = s.sandbox().edit_order(
        "#3001",
        &[
            LineEdit::SetQuantity {
                line: "A".into(),
                quantity: 2,
            },
            LineEdit::SetQuantity {
                line: "NOPE".into(),
                quantity: 1,
            },
        ],
    );
    assert!(matches!(unknown, Err(SandboxError::NotFound(_))));
    let a = s.sandbox().order("#3001").unwrap().lines[0].clone();
    assert_eq!(a.current_quantity, 4, "nothing of a refused edit applies");
}

#[tokio::test]
async fn fulfilled_units_cannot_be_removed_and_new_units_get_a_new_fulfillment_order() {
    let s = Store::start().await;
    let created = s.sandbox().create_order(order("#3101"));
    assert_eq!(
        s.fulfill(&created.fulfillment_order_ids[0]).await["userErrors"],
        json!([])
    );
    let refused = s.sandbox().edit_order(
        "#3101",
        &[LineEdit::SetQuantity {
            line: "A".into(),
            quantity: 2,
        }],
    );
    assert!(
        matches!(refused, Err(SandboxError::Refused(_))),
        "{refused:?}"
    );

    s.sandbox()
        .edit_order(
            "#3101",
            &[LineEdit::SetQuantity {
                line: "A".into(),
                quantity: 5,
            }],
        )
        .unwrap();
    let o = s.order(&created.order_id).await;
    assert_eq!(o["displayFulfillmentStatus"], "PARTIALLY_FULFILLED");
    let fos = o["fulfillmentOrders"]["nodes"].as_array().unwrap();
    assert_eq!(fos.len(), 2);
    assert_eq!(fos[0]["status"], "CLOSED");
    assert_eq!(fos[1]["status"], "OPEN");
    assert_eq!(
        fos[1]["lineItems"]["nodes"][0],
        json!({ "sku": "A", "totalQuantity": 2, "remainingQuantity": 2, "lineItem": { "id": created.line_item_ids[0] } })
    );
    assert_eq!(line(&o, "A")["unfulfilledQuantity"], 2);
}

#[tokio::test]
async fn a_held_fulfillment_order_cannot_be_fulfilled_until_released() {
    let s = Store::start().await;
    let created = s.sandbox().create_order(order("#4001"));
    let fo = &created.fulfillment_order_ids[0];
    let hold = s
        .sandbox()
        .hold_fulfillment_order(fo, "INCORRECT_ADDRESS", Some("no street number"))
        .unwrap();
    assert!(hold.starts_with("gid://shopify/FulfillmentHold/"));
    let o = s.order(&created.order_id).await;
    assert_eq!(o["displayFulfillmentStatus"], "ON_HOLD");
    let f = &o["fulfillmentOrders"]["nodes"][0];
    assert_eq!(f["status"], "ON_HOLD");
    assert_eq!(
        f["fulfillmentHolds"],
        json!([{ "reason": "INCORRECT_ADDRESS", "reasonNotes": "no street number", "displayReason": "Incorrect address" }])
    );
    let refused = s.fulfill(fo).await;
    assert_eq!(refused["fulfillment"], Value::Null);
    assert!(
        refused["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("on_hold")
    );
    assert_eq!(s.names("fulfillment_status:on_hold").await, ["#4001"]);

    assert!(matches!(
        s.sandbox().hold_fulfillment_order(fo, "BECAUSE", None),
        Err(SandboxError::InvalidSpec(_))
    ));
    s.sandbox().release_fulfillment_order(fo).unwrap();
    let o = s.order(&created.order_id).await;
    assert_eq!(o["fulfillmentOrders"]["nodes"][0]["status"], "OPEN");
    assert_eq!(
        o["fulfillmentOrders"]["nodes"][0]["fulfillmentHolds"],
        json!([])
    );
    assert_eq!(o["displayFulfillmentStatus"], "UNFULFILLED");
    assert!(matches!(
        s.sandbox().release_fulfillment_order(fo),
        Err(SandboxError::Refused(_))
    ));
    assert_eq!(s.fulfill(fo).await["userErrors"], json!([]));
}

#[tokio::test]
async fn tags_and_payment_changes_bump_updated_at() {
    let s = Store::start().await;
    let created = s.sandbox().create_order(OrderSpec {
        financial_status: Some("AUTHORIZED".into()),
        ..order("#5001")
    });
    let before = s.order(&created.order_id).await;
    assert_eq!(before["displayFinancialStatus"], "AUTHORIZED");
    s.sandbox().set_order_tags("#5001", &["hold-me"]).unwrap();
    s.sandbox().set_financial_status("#5001", "PAID").unwrap();
    let after = s.order(&created.order_id).await;
    assert_eq!(after["tags"], json!(["hold-me"]));
    assert_eq!(after["displayFinancialStatus"], "PAID");
    assert!(after["updatedAt"].as_str() > before["updatedAt"].as_str());
    assert!(matches!(
        s.sandbox().set_financial_status("#5001", "paid"),
        Err(SandboxError::InvalidSpec(_))
    ));
}

#[tokio::test]
async fn searches_follow_status_payment_and_updates() {
    let s = Store::start().await;
    let sb = s.sandbox();
    sb.create_order(order("#6001"));
    sb.create_order(order("#6002"));
    sb.create_order(OrderSpec {
        financial_status: Some("AUTHORIZED".into()),
        ..order("#6003")
    });
    let start = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    sb.cancel_order("#6002", "CUSTOMER").unwrap();

    // The GraphQL orders query has no default status filter.
    assert_eq!(s.names("").await, ["#6001", "#6002", "#6003"]);
    assert_eq!(s.names("status:any").await, ["#6001", "#6002", "#6003"]);
    assert_eq!(s.names("status:open").await, ["#6001", "#6003"]);
    assert_eq!(s.names("status:cancelled").await, ["#6002"]);
    assert_eq!(s.names("status:closed").await, Vec::<String>::new());
    assert_eq!(s.names("financial_status:authorized").await, ["#6003"]);
    assert_eq!(s.names("financial_status:refunded").await, ["#6002"]);
    assert_eq!(s.names("financial_status:paid").await, ["#6001"]);
    // Created an hour ago; only the cancelled one changed since `start`.
    assert_eq!(s.names(&format!("updated_at:>='{start}'")).await, ["#6002"]);
    assert_eq!(
        s.names(&format!("updated_at:>='{start}' status:open"))
            .await,
        Vec::<String>::new()
    );
    assert_eq!(
        s.names("fulfillment_status:unfulfilled status:open").await,
        ["#6001", "#6003"]
    );
}
