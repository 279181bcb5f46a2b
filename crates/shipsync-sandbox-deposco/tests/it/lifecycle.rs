//! Sales orders after creation: status, status changes, cancellations,
//! updates, and the warehouse moving them (orders-lifecycle.md § "Deposco
//! sales orders").

use reqwest::StatusCode;
use serde_json::{Value, json};
use shipsync_sandbox_deposco::*;

use crate::{client, sales_order as order, start, unlimited};

const BASIC: (&str, &str) = ("sandbox", "sandbox");

/// A sandbox on 127.0.0.1:0 and a way to call it with Basic auth.
struct Api {
    sandbox: DeposcoSandbox,
    running: RunningDeposco,
}

impl Api {
    async fn start() -> Self {
        let (sandbox, running) = start(unlimited()).await;
        Self { sandbox, running }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = client()
            .request(method, format!("{}{path}", self.running.url))
            .basic_auth(BASIC.0, Some(BASIC.1));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// Creates order `number` with `(sku, quantity)` lines numbered from 1; its Deposco id.
    async fn create(&self, number: &str, lines: &[(&str, u32)]) -> u64 {
        let (status, body) = self
            .post("/orders/salesOrders", Some(order(number, lines)))
            .await;
        assert_eq!(status, 201, "{body}");
        body["self"]["id"].as_u64().unwrap()
    }

    async fn status(&self, id: u64) -> String {
        let (status, body) = self.get(&format!("/orders/salesOrders/{id}/status")).await;
        assert_eq!(status, 200, "{body}");
        body["orderStatus"].as_str().unwrap().to_owned()
    }

    async fn set_status(&self, id: u64, value: &str) -> (StatusCode, Value) {
        self.post(
            &format!(
                "/orders/salesOrders/{id}/status?value={}",
                value.replace(' ', "%20")
            ),
            None,
        )
        .await
    }

    async fn cancel(&self, id: u64, body: Option<Value>) -> (StatusCode, Value) {
        self.post(&format!("/orders/salesOrders/{id}/cancellations"), body)
            .await
    }

    fn line(&self, number: &str, line_number: &str) -> SalesOrderLine {
        self.sandbox
            .sales_order(number)
            .unwrap()
            .lines
            .into_iter()
            .find(|l| l.line_number == line_number)
            .unwrap()
    }
}

fn message(body: &Value) -> String {
    body["errors"][0]["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn cancel_lines(lines: &[(u64, Option<u32>)]) -> Value {
    let rows: Vec<Value> = lines
        .iter()
        .map(|(id, units)| match units {
            Some(n) => json!({"orderLine": {"id": id}, "canceledPackQuantity": n}),
            None => json!({"orderLine": {"id": id}}),
        })
        .collect();
    json!({ "orderLines": rows })
}

#[tokio::test]
async fn orders_start_new_or_hold_and_nothing_else() {
    let api = Api::start().await;
    let id = api.create("1", &[("A", 1)]).await;
    assert_eq!(api.status(id).await, "New");
    let (_, one) = api.get(&format!("/orders/salesOrders/{id}")).await;
    assert_eq!(one["orderStatus"], "New");
    let line = &one["orderLines"]["data"][0];
    assert_eq!(line["orderLineStatus"], "New");
    assert_eq!(line["orderPackQuantity"], 1);
    assert_eq!(line["canceledPackQuantity"], 0);
    assert_eq!(line["shippedPackQuantity"], 0);

    let mut held = order("2", &[("A", 1)]);
    held["orderStatus"] = json!("Hold");
    let (status, body) = api.post("/orders/salesOrders", Some(held)).await;
    assert_eq!(status, 201);
    assert_eq!(body["orderStatus"], "Hold");

    let mut no_status = order("3", &[("A", 1)]);
    no_status.as_object_mut().unwrap().remove("orderStatus");
    let (status, body) = api.post("/orders/salesOrders", Some(no_status)).await;
    assert_eq!(status, 201);
    assert_eq!(body["orderStatus"], "New");

    for refused in ["Released", "Draft", "Canceled", "Shipped"] {
        let mut o = order("4", &[("A", 1)]);
        o["orderStatus"] = json!(refused);
        let (status, body) = api.post("/orders/salesOrders", Some(o)).await;
        assert_eq!(status, 400, "{refused}");
        assert!(message(&body).contains("New or Hold"), "{body}");
    }
    assert!(api.sandbox.sales_order("4").is_none());

    let (status, body) = api.get("/orders/salesOrders/999/status").await;
    assert_eq!(status, 404);
    assert!(message(&body).contains("999"));
}

#[tokio::test]
async fn status_changes_follow_deposcos_transitions() {
    let api = Api::start().await;
    let id = api.create("1", &[("A", 2)]).await;

    // New → Hold → New.
    let (status, body) = api.set_status(id, "Hold").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orderStatus"], "Hold");
    assert_eq!(api.status(id).await, "Hold");
    let (status, body) = api.set_status(id, "Hold").await;
    assert_eq!(status, 400, "Hold → Hold: {body}");
    assert!(message(&body).contains("from Hold to Hold"), "{body}");
    assert_eq!(api.set_status(id, "New").await.0, 200);
    assert_eq!(api.set_status(id, "New").await.0, 400, "New → New");

    // Only New, Hold and Canceled can be asked for; value is required.
    for bad in ["Released", "hold", "Cancelled"] {
        let (status, body) = api.set_status(id, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(message(&body).contains("New, Hold or Canceled"), "{body}");
    }
    assert_eq!(
        api.post(&format!("/orders/salesOrders/{id}/status"), None)
            .await
            .0,
        400
    );
    assert_eq!(api.status(id).await, "New");

    // From the warehouse's waiting statuses, all three are allowed.
    for from in [
        "Draft",
        "Ready for Fulfillment",
        "Wave Built",
        "Back Ordered",
    ] {
        api.sandbox.set_sales_order_status("1", from).unwrap();
        assert_eq!(api.set_status(id, "Hold").await.0, 200, "{from} → Hold");
        api.sandbox.set_sales_order_status("1", from).unwrap();
        assert_eq!(api.set_status(id, "New").await.0, 200, "{from} → New");
    }

    // Nothing moves back from Released or later.
    for late in ["Partially Released", "Released", "Picking", "Ship Complete"] {
        api.sandbox.set_sales_order_status("1", late).unwrap();
        for to in ["New", "Hold", "Canceled"] {
            let (status, body) = api.set_status(id, to).await;
            assert_eq!(status, 400, "{late} → {to}");
            assert!(message(&body).contains(late), "{body}");
        }
        assert_eq!(api.status(id).await, late);
    }

    // Canceled through the status call cancels every open unit.
    api.sandbox.set_sales_order_status("1", "New").unwrap();
    let (status, body) = api.set_status(id, "Canceled").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orderLines"]["data"][0]["canceledPackQuantity"], 2);
    assert_eq!(body["orderLines"]["data"][0]["orderLineStatus"], "Canceled");
    assert_eq!(api.set_status(id, "New").await.0, 400, "Canceled → New");
    assert_eq!(api.set_status(999, "Hold").await.0, 404);
}

#[tokio::test]
async fn whole_orders_are_cancelled_while_allowed() {
    let api = Api::start().await;
    let id = api.create("1", &[("A", 2), ("B", 1)]).await;
    let (status, body) = api.cancel(id, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orderStatus"], "Canceled");
    assert_eq!(api.status(id).await, "Canceled");
    let record = api.sandbox.sales_order("1").unwrap();
    assert_eq!(record.status, "Canceled");
    assert!(
        record
            .lines
            .iter()
            .all(|l| l.canceled_quantity == l.quantity && l.status == "Canceled")
    );
    // A second time: refused, nothing changes.
    let (status, body) = api.cancel(id, None).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("already Canceled"), "{body}");
    assert_eq!(api.line("1", "1").canceled_quantity, 2.0);

    // `{}` and an empty list are the whole order too; so is Draft.
    let two = api.create("2", &[("A", 1)]).await;
    assert_eq!(api.cancel(two, Some(json!({}))).await.0, 200);
    assert_eq!(api.status(two).await, "Canceled");
    let three = api.create("3", &[("A", 1)]).await;
    api.sandbox.set_sales_order_status("3", "Draft").unwrap();
    assert_eq!(
        api.cancel(three, Some(json!({"orderLines": []}))).await.0,
        200
    );
    assert_eq!(api.status(three).await, "Canceled");

    // Hold, Ready for Fulfillment, Wave Built, Back Ordered: allowed.
    for (n, from) in [
        "Hold",
        "Ready for Fulfillment",
        "Wave Built",
        "Back Ordered",
    ]
    .iter()
    .enumerate()
    {
        let number = format!("1{n}");
        let id = api.create(&number, &[("A", 1)]).await;
        api.sandbox.set_sales_order_status(&number, from).unwrap();
        assert_eq!(api.cancel(id, None).await.0, 200, "{from}");
        assert_eq!(api.status(id).await, "Canceled", "{from}");
    }
    assert_eq!(api.cancel(999, None).await.0, 404);
}

#[tokio::test]
async fn too_late_from_released_on() {
    let api = Api::start().await;
    for (n, late) in [
        "Partially Released",
        "Released",
        "Picking",
        "Pick Complete",
        "Staged",
        "Loaded",
        "Partially Shipped",
        "Ship Complete",
    ]
    .iter()
    .enumerate()
    {
        let number = format!("{n}");
        let id = api.create(&number, &[("A", 2)]).await;
        api.sandbox.set_sales_order_status(&number, late).unwrap();
        let line_id = api.line(&number, "1").id;
        let (status, body) = api.cancel(id, None).await;
        assert_eq!(status, 400, "{late}: {body}");
        assert!(message(&body).contains(late), "{body}");
        let (status, body) = api
            .cancel(id, Some(cancel_lines(&[(line_id, Some(1))])))
            .await;
        assert_eq!(status, 400, "{late}: {body}");
        let (status, body) = api
            .post("/orders/salesOrders", Some(order(&number, &[("A", 3)])))
            .await;
        assert_eq!(status, 400, "{late}: {body}");
        assert!(
            message(&body).contains("can no longer be updated"),
            "{body}"
        );
        let line = api.line(&number, "1");
        assert_eq!(
            (line.quantity, line.canceled_quantity),
            (2.0, 0.0),
            "{late}"
        );
        assert_eq!(api.status(id).await, *late);
    }
}

#[tokio::test]
async fn lines_are_cancelled_in_full_or_in_part() {
    let api = Api::start().await;
    let id = api.create("1", &[("A", 3), ("B", 1)]).await;
    let a = api.line("1", "1").id;
    let b = api.line("1", "2").id;

    // Part of a line.
    let (status, body) = api.cancel(id, Some(cancel_lines(&[(a, Some(2))]))).await;
    assert_eq!(status, 200, "{body}");
    let line = api.line("1", "1");
    assert_eq!((line.quantity, line.canceled_quantity), (3.0, 2.0));
    assert_eq!(line.status, "New");
    assert_eq!(api.status(id).await, "New");
    let (_, lines) = api
        .get(&format!("/orders/salesOrders/{id}/orderLines"))
        .await;
    assert_eq!(lines["data"][0]["orderPackQuantity"], 3);
    assert_eq!(lines["data"][0]["canceledPackQuantity"], 2);

    // More than is open: refused, nothing changes.
    let (status, body) = api.cancel(id, Some(cancel_lines(&[(a, Some(2))]))).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("only 1 open"), "{body}");
    // All or nothing: a good line with a bad one changes neither.
    let (status, _) = api
        .cancel(id, Some(cancel_lines(&[(b, None), (a, Some(5))])))
        .await;
    assert_eq!(status, 400);
    assert_eq!(api.line("1", "2").canceled_quantity, 0.0);
    // Unknown line, named twice, not a whole number.
    assert_eq!(
        api.cancel(id, Some(cancel_lines(&[(12345, None)]))).await.0,
        400
    );
    assert_eq!(
        api.cancel(id, Some(cancel_lines(&[(b, None), (b, None)])))
            .await
            .0,
        400
    );
    let fractional = json!({"orderLines": [{"orderLine": {"id": a}, "canceledPackQuantity": 0.5}]});
    assert_eq!(api.cancel(id, Some(fractional)).await.0, 400);

    // A line in full (no quantity): its open units.
    let (status, body) = api.cancel(id, Some(cancel_lines(&[(b, None)]))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.line("1", "2").status, "Canceled");
    assert_eq!(api.status(id).await, "New");
    assert_eq!(
        api.cancel(id, Some(cancel_lines(&[(b, None)]))).await.0,
        400,
        "nothing left on the line"
    );

    // The last open unit: the order is cancelled.
    let (status, body) = api.cancel(id, Some(cancel_lines(&[(a, Some(1))]))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orderStatus"], "Canceled");

    // Draft: whole order only.
    let two = api.create("2", &[("A", 1)]).await;
    api.sandbox.set_sales_order_status("2", "Draft").unwrap();
    let line = api.line("2", "1").id;
    let (status, body) = api.cancel(two, Some(cancel_lines(&[(line, None)]))).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("only the whole order"), "{body}");
}

#[tokio::test]
async fn partially_released_orders_cancel_back_ordered_units_only() {
    let api = Api::start().await;
    let id = api.create("1", &[("A", 5), ("B", 1)]).await;
    let a = api.line("1", "1").id;
    let b = api.line("1", "2").id;
    api.sandbox.set_back_ordered("1", "1", 2.0).unwrap();
    api.sandbox
        .set_sales_order_status("1", "Partially Released")
        .unwrap();
    assert_eq!(api.line("1", "1").status, "Partial Released");
    assert_eq!(api.line("1", "2").status, "Released");

    assert_eq!(api.cancel(id, None).await.0, 400, "not the whole order");
    let (status, body) = api.cancel(id, Some(cancel_lines(&[(a, Some(3))]))).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("only 2 back-ordered"), "{body}");
    assert_eq!(
        api.cancel(id, Some(cancel_lines(&[(b, None)]))).await.0,
        400,
        "a released line"
    );
    let (status, body) = api.cancel(id, Some(cancel_lines(&[(a, Some(2))]))).await;
    assert_eq!(status, 200, "{body}");
    let line = api.line("1", "1");
    assert_eq!((line.canceled_quantity, line.back_ordered), (2.0, 0.0));
    assert_eq!(line.status, "Released");
    assert_eq!(api.status(id).await, "Partially Released");

    // The control refuses what cannot be.
    assert!(matches!(
        api.sandbox.set_back_ordered("1", "1", 9.0),
        Err(Error::BackOrder { .. })
    ));
    assert!(matches!(
        api.sandbox.set_back_ordered("1", "7", 1.0),
        Err(Error::UnknownOrderLine { .. })
    ));
    assert!(matches!(
        api.sandbox.set_sales_order_status("1", "Shipped"),
        Err(Error::UnknownOrderStatus(_))
    ));
    assert!(matches!(
        api.sandbox.set_sales_order_status("nope", "New"),
        Err(Error::UnknownSalesOrder(_))
    ));
}

#[tokio::test]
async fn updates_add_lines_and_raise_but_never_lower() {
    let api = Api::start().await;
    let id = api.create("1", &[("A", 2), ("B", 1)]).await;

    // Raise line 1, add line 3, change the address; the status stays.
    let mut raised = order("1", &[("A", 3), ("B", 1), ("C", 4)]);
    raised["shipToAddress"]["addressLine1"] = json!("2 Side St");
    raised["orderStatus"] = json!("Hold");
    let (status, body) = api.post("/orders/salesOrders", Some(raised)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["self"]["id"], id);
    assert_eq!(
        body["orderStatus"], "New",
        "an update does not change the status"
    );
    let record = api.sandbox.sales_order("1").unwrap();
    assert_eq!(record.status, "New");
    assert_eq!(record.times_posted, 2);
    assert_eq!(record.body["shipToAddress"]["addressLine1"], "2 Side St");
    let quantities: Vec<(&str, f64)> = record
        .lines
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(quantities, vec![("A", 3.0), ("B", 1.0), ("C", 4.0)]);

    // A line left out stays as it is.
    let (status, body) = api
        .post("/orders/salesOrders", Some(order("1", &[("A", 3)])))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.sandbox.sales_order("1").unwrap().lines.len(), 3);
    let (_, lines) = api
        .get(&format!("/orders/salesOrders/{id}/orderLines"))
        .await;
    assert_eq!(lines["data"].as_array().unwrap().len(), 3);

    // Lowering is a cancellation: refused, nothing changes.
    let (status, body) = api
        .post(
            "/orders/salesOrders",
            Some(order("1", &[("A", 1), ("B", 1), ("C", 5)])),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("cancellations"), "{body}");
    assert_eq!(api.line("1", "1").quantity, 3.0);
    assert_eq!(api.line("1", "3").quantity, 4.0, "all or nothing");

    // The item of a line cannot change (lines are matched by lineNumber).
    let (status, body) = api
        .post("/orders/salesOrders", Some(order("1", &[("Z", 3)])))
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("item A"), "{body}");

    // A cancelled line cannot be raised; re-posting it unchanged is fine.
    let c = api.line("1", "3").id;
    assert_eq!(
        api.cancel(id, Some(cancel_lines(&[(c, None)]))).await.0,
        200
    );
    let same = order("1", &[("A", 3), ("B", 1), ("C", 4)]);
    assert_eq!(api.post("/orders/salesOrders", Some(same)).await.0, 200);
    let (status, body) = api
        .post(
            "/orders/salesOrders",
            Some(order("1", &[("A", 3), ("B", 1), ("C", 6)])),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("Canceled"), "{body}");

    // Allowed while Hold, Ready for Fulfillment, Wave Built, Back Ordered, Draft.
    for from in [
        "Hold",
        "Ready for Fulfillment",
        "Wave Built",
        "Back Ordered",
        "Draft",
    ] {
        api.sandbox.set_sales_order_status("1", from).unwrap();
        let more = api.line("1", "2").quantity as u32 + 1;
        let (status, body) = api
            .post(
                "/orders/salesOrders",
                Some(order("1", &[("A", 3), ("B", more), ("C", 4)])),
            )
            .await;
        assert_eq!(status, 200, "{from}: {body}");
        assert_eq!(api.status(id).await, from);
    }

    // Released: too late.
    api.sandbox.set_sales_order_status("1", "Released").unwrap();
    let (status, body) = api
        .post("/orders/salesOrders", Some(order("1", &[("A", 4)])))
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("Released"), "{body}");
    assert_eq!(api.line("1", "1").quantity, 3.0);
}

#[tokio::test]
async fn shipments_move_the_order_to_shipped() {
    let api = Api::start().await;
    api.sandbox
        .add_item(ItemSpec::new("KIT").component("X", 1).component("Y", 2));
    let id = api.create("1", &[("A", 2), ("KIT", 2)]).await;
    let a = api.line("1", "1").id;
    // One A is cancelled: the order ships 1 A and 2 kits.
    assert_eq!(
        api.cancel(id, Some(cancel_lines(&[(a, Some(1))]))).await.0,
        200
    );

    // Half the kits first: Partially Shipped.
    let mut first = api.sandbox.ship_order_spec("1", "T1").unwrap();
    assert_eq!(first.lines[0].ordered, 1, "cancelled units are not shipped");
    first.lines.retain(|l| l.kit.is_some());
    for line in &mut first.lines {
        line.shipped /= 2;
    }
    api.sandbox.add_shipment(first);
    assert_eq!(api.status(id).await, "Partially Shipped");
    let kit = api.line("1", "2");
    assert_eq!(kit.shipped_quantity, 1.0);
    assert_eq!(api.line("1", "1").shipped_quantity, 0.0);
    let (_, lines) = api
        .get(&format!("/orders/salesOrders/{id}/orderLines"))
        .await;
    assert_eq!(lines["data"][1]["shippedPackQuantity"], 1);

    // A shipment not yet shipped counts for nothing; once Shipped it does.
    let mut rest = api.sandbox.ship_order_spec("1", "T2").unwrap();
    for line in &mut rest.lines {
        if line.kit.is_some() {
            line.shipped /= 2;
        }
    }
    let rest = api.sandbox.add_shipment(rest.status("Shipping"));
    assert_eq!(api.status(id).await, "Partially Shipped");
    api.sandbox
        .update_shipment(&rest.number, |s| s.status = "Shipped".into())
        .unwrap();
    assert_eq!(api.status(id).await, "Ship Complete");
    let record = api.sandbox.sales_order("1").unwrap();
    assert!(
        record.lines.iter().all(|l| l.status == "Complete"),
        "{record:?}"
    );
    assert_eq!(record.lines[1].shipped_quantity, 2.0);

    // Shipped: too late for anything.
    assert_eq!(api.cancel(id, None).await.0, 400);
    assert_eq!(api.set_status(id, "Hold").await.0, 400);
}

#[tokio::test]
async fn the_warehouse_control_over_http() {
    let api = Api::start().await;
    let id = api.create("1", &[("A", 2)]).await;
    let http = client();
    let url = format!("{}/_sandbox/sales_orders/1/status", api.running.url);
    let r = http
        .post(&url)
        .json(&json!({"status": "Partially Released", "back_ordered": {"1": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let record: Value = r.json().await.unwrap();
    assert_eq!(record["status"], "Partially Released");
    assert_eq!(record["lines"][0]["back_ordered"], 1.0);
    assert_eq!(api.status(id).await, "Partially Released");

    let r = http
        .post(&url)
        .json(&json!({"status": "Shipped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!(
            "{}/_sandbox/sales_orders/nope/status",
            api.running.url
        ))
        .json(&json!({"status": "Released"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The list shows status and quantities.
    let list: Value = http
        .get(format!("{}/_sandbox/sales_orders", api.running.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["status"], "Partially Released");
    assert_eq!(list[0]["lines"][0]["canceled_quantity"], 0.0);
    assert_eq!(list[0]["lines"][0]["status"], "Partial Released");
}
