use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use shipsync_sandbox_deposco::*;

use crate::{client, sales_order, start, unlimited};

const BASIC: (&str, &str) = ("sandbox", "sandbox");

async fn get(url: &str) -> (StatusCode, Value) {
    let response = client()
        .get(url)
        .basic_auth(BASIC.0, Some(BASIC.1))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn token_flow_and_bearer_calls() {
    let (sandbox, running) = start(unlimited()).await;
    let http = client();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "sandbox-refresh-token"),
        ("client_id", "sandbox-client"),
        ("client_secret", "sandbox-secret"),
    ];
    let response = http
        .post(running.token_url())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    let access = token["access_token"].as_str().unwrap().to_owned();

    let list = format!("{}/shipments/outboundShipments", running.url);
    let ok = http.get(&list).bearer_auth(&access).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    let mut wrong = form;
    wrong[3].1 = "nope";
    let response = http
        .post(running.token_url())
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let mut wrong = form;
    wrong[1].1 = "nope";
    let response = http
        .post(running.token_url())
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    sandbox.revoke_tokens();
    let revoked = http.get(&list).bearer_auth(&access).send().await.unwrap();
    assert_eq!(revoked.status(), 401);
}

#[tokio::test]
async fn no_or_wrong_auth_is_401() {
    let (sandbox, running) = start(unlimited()).await;
    let http = client();
    let list = format!("{}/shipments/outboundShipments", running.url);
    let none = http.get(&list).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert!(body["errors"][0]["errorMessage"].is_string());
    assert_eq!(
        http.get(&list)
            .basic_auth("sandbox", Some("bad"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http.get(&list)
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http.get(&list)
            .basic_auth("sandbox", Some("sandbox"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(sandbox.request_count(), 4);
}

#[tokio::test]
async fn pages_through_250_shipments_newest_first() {
    let (sandbox, running) = start(SandboxConfig::default()).await;
    for i in 0..250u32 {
        let created: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut spec = ShipmentSpec::new(format!("{}", 5000 + i))
            .line(LineSpec::new(1, "SKU", 1))
            .package(PackageSpec::new(format!("LPN{i}"), format!("1Z{i:08}")).line(1, 1));
        spec.created_date = Some(created + jiff::SignedDuration::from_secs(i64::from(i)));
        sandbox.add_shipment(spec);
    }
    let mut url = format!(
        "{}/shipments/outboundShipments?businessUnit=ACME&pageSize=100",
        running.url
    );
    let mut seen = Vec::new();
    let mut requests = 0;
    loop {
        let (status, page) = get(&url).await;
        requests += 1;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["pages"], 3);
        for s in page["data"].as_array().unwrap() {
            seen.push(s["number"].as_str().unwrap().to_owned());
        }
        if page["complete"] == true {
            assert_eq!(page["links"], json!([]));
            break;
        }
        let next = page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
            .unwrap();
        url = next["href"].as_str().unwrap().to_owned();
        assert!(
            url.starts_with(&running.url) && url.contains("searchId="),
            "{url}"
        );
    }
    assert_eq!(requests, 3);
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
    assert_eq!(seen[0], "SHP-100250", "newest first");
    assert_eq!(seen[249], "SHP-100001");
}

#[tokio::test]
async fn page_size_over_100_is_400() {
    let (_sandbox, running) = start(unlimited()).await;
    let (status, body) = get(&format!(
        "{}/shipments/outboundShipments?pageSize=101",
        running.url
    ))
    .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("100")
    );
}

#[tokio::test]
async fn filters_and_search_id_override() {
    let (sandbox, running) = start(unlimited()).await;
    let at = |s: &str| Some(s.parse::<jiff::Timestamp>().unwrap());
    let mut a = ShipmentSpec::example_simple();
    a.created_date = at("2020-01-01T00:00:00Z");
    let a = sandbox.add_shipment(a);
    let mut b = ShipmentSpec::example_kit();
    b.created_date = at("2020-06-02T00:00:00Z");
    let b = sandbox.add_shipment(b);
    let mut c = ShipmentSpec::new("1003")
        .status("New")
        .line(LineSpec::new(1, "X", 1).shipped(0));
    c.created_date = at("2020-06-03T00:00:00Z");
    let c = sandbox.add_shipment(c);
    let base = format!("{}/shipments/outboundShipments", running.url);
    let numbers = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["number"].as_str().unwrap().to_owned())
            .collect()
    };

    let (_, v) = get(&format!("{base}?orderNumber=1002")).await;
    assert_eq!(numbers(&v), [b.number.as_str()]);
    let (_, v) = get(&format!("{base}?customerOrderNumber=%231001")).await;
    assert_eq!(numbers(&v), [a.number.as_str()]);
    let (_, v) = get(&format!("{base}?shipmentStatus=New")).await;
    assert_eq!(numbers(&v), [c.number.as_str()]);
    let (_, v) = get(&format!("{base}?shipmentNumber={}", a.number)).await;
    assert_eq!(numbers(&v), [a.number.as_str()]);
    let (_, v) = get(&format!("{base}?createdAfter=2020-06-01T00:00:00Z")).await;
    assert_eq!(numbers(&v), [c.number.as_str(), b.number.as_str()]);
    let (_, v) = get(&format!("{base}?shippedAfter=2020-06-01T00:00:00")).await;
    assert_eq!(
        numbers(&v),
        [b.number.as_str()],
        "a New shipment has no ship date"
    );
    let (status, _) = get(&format!("{base}?updatedAfter=yesterday")).await;
    assert_eq!(status, 400);

    let updated = sandbox
        .update_shipment(&a.number, |s| s.tracking_url = Some("https://ups/".into()))
        .unwrap();
    let (_, v) = get(&format!("{base}?updatedAfter={}", updated.updated_date)).await;
    assert_eq!(numbers(&v), [a.number.as_str()]);

    // searchId wins over everything else, even contradicting filters.
    let (_, first) = get(&format!("{base}?orderNumber=1002&pageSize=1")).await;
    assert_eq!(first["complete"], true);
    let (_, all) = get(&format!("{base}?pageSize=1")).await;
    let next = all["links"][0]["href"].as_str().unwrap().to_owned();
    let (_, v) = get(&format!("{next}&orderNumber=nothing-matches&pageSize=100")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["pages"], 3);
    let (status, _) = get(&format!("{base}?searchId=unknown")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (sandbox, running) = start(SandboxConfig::default()).await;
    let url = format!("{}/shipments/outboundShipments", running.url);
    let http = client();
    let mut limited = 0;
    for _ in 0..10 {
        let response = http
            .get(&url)
            .basic_auth(BASIC.0, Some(BASIC.1))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited += 1;
            assert_eq!(response.headers()["retry-after"], "1");
            assert!(response.bytes().await.unwrap().is_empty());
        }
    }
    // Burst 4 at 4/s: most of 10 back-to-back requests are refused (allow for a slow machine).
    assert!(limited >= 3, "only {limited} of 10 were limited");
    assert_eq!(sandbox.request_count(), 10);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = http
        .get(&url)
        .basic_auth(BASIC.0, Some(BASIC.1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The token endpoint counts against the same account.
    let mut token_limited = false;
    for _ in 0..20 {
        let response = http
            .post(running.token_url())
            .form(&[("grant_type", "refresh_token")])
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            token_limited = true;
            break;
        }
        assert_eq!(response.status(), 401, "no client credentials");
    }
    assert!(token_limited);
}

#[tokio::test]
async fn nested_lines_truncate_and_the_sub_resource_pages() {
    let (sandbox, running) = start(unlimited()).await;
    let mut spec = ShipmentSpec::new("4001");
    for n in 1..=25 {
        spec = spec.line(
            LineSpec::new(n, format!("SKU-{n}"), 1)
                .customer_line(format!("gid://shopify/LineItem/{n}")),
        );
    }
    let record = sandbox.add_shipment(spec);
    let (status, one) = get(&format!(
        "{}/shipments/outboundShipments/{}",
        running.url, record.id
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["number"], record.number.as_str());
    assert_eq!(one["shipmentLines"]["data"].as_array().unwrap().len(), 10);
    assert_eq!(one["shipmentLines"]["complete"], false);

    let mut url = format!(
        "{}/shipments/outboundShipments/{}/shipmentLines?pageSize=10",
        running.url, record.id
    );
    let mut lines = Vec::new();
    loop {
        let (status, page) = get(&url).await;
        assert_eq!(status, 200);
        lines.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["complete"] == true {
            break;
        }
        url = page["links"][0]["href"].as_str().unwrap().to_owned();
    }
    assert_eq!(lines.len(), 25);
    assert_eq!(
        lines[24]["orderLineDetails"]["customerLineNumber"],
        "gid://shopify/LineItem/25"
    );

    let (status, _) = get(&format!("{}/shipments/outboundShipments/999", running.url)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn single_shipment_can_come_wrapped() {
    let (sandbox, running) = start(SandboxConfig {
        wrap_single_shipment: true,
        ..unlimited()
    })
    .await;
    let record = sandbox.add_shipment(ShipmentSpec::example_kit());
    let (_, v) = get(&format!(
        "{}/shipments/outboundShipments/{}",
        running.url, record.id
    ))
    .await;
    assert_eq!(v["outboundShipment"]["self"]["id"], record.id);
}

#[tokio::test]
async fn injected_5xx_and_slowness() {
    let (sandbox, running) = start(unlimited()).await;
    sandbox.set_faults(Faults {
        rest_5xx_rate: 1.0,
        slow_ms: 50,
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let (status, body) = get(&format!("{}/shipments/outboundShipments", running.url)).await;
    assert!(status.is_server_error());
    assert!(body["errors"][0]["errorMessage"].is_string());
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));
}

fn order(number: &str, lines: usize) -> Value {
    let skus: Vec<String> = (1..=lines).map(|n| format!("SKU-{n}")).collect();
    let lines: Vec<(&str, u32)> = skus.iter().map(|sku| (sku.as_str(), 2)).collect();
    sales_order(number, &lines)
}

#[tokio::test]
async fn sales_orders_create_update_validate_and_read() {
    let (sandbox, running) = start(unlimited()).await;
    let http = client();
    let url = format!("{}/orders/salesOrders", running.url);
    let post = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(&url)
                .basic_auth(BASIC.0, Some(BASIC.1))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, created) = post(order("1001", 12)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["self"]["id"].as_u64().unwrap();
    let (status, _) = post(order("1001", 12)).await;
    assert_eq!(status, 200);
    assert_eq!(sandbox.sales_orders().len(), 1);
    assert_eq!(sandbox.sales_order("1001").unwrap().times_posted, 2);
    assert_eq!(
        sandbox.sales_order("1001").unwrap().lines[0]
            .customer_line_number
            .as_deref(),
        Some("gid://shopify/LineItem/1")
    );

    let (status, body) = post(order("1002", 101)).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("100")
    );
    let (status, _) = post(order(&"9".repeat(51), 1)).await;
    assert_eq!(status, 400);
    let mut missing = order("1003", 1);
    missing["orderLines"][0]
        .as_object_mut()
        .unwrap()
        .remove("orderPackQuantity");
    assert_eq!(post(missing).await.0, 400);
    let mut missing = order("1003", 1);
    missing.as_object_mut().unwrap().remove("businessUnit");
    assert_eq!(post(missing).await.0, 400);

    let (status, found) = get(&format!("{url}?number=1001")).await;
    assert_eq!(status, 200);
    assert_eq!(found["data"][0]["self"]["id"], id);
    let (_, one) = get(&format!("{url}/{id}")).await;
    assert_eq!(one["orderLines"]["complete"], false);
    let (_, lines) = get(&format!("{url}/{id}/orderLines?pageSize=100")).await;
    assert_eq!(lines["data"].as_array().unwrap().len(), 12);
    assert_eq!(lines["complete"], true);
}

#[tokio::test]
async fn unknown_items_are_rejected_when_the_catalogue_is_enforced() {
    let (sandbox, running) = start(SandboxConfig {
        items_must_exist: true,
        ..unlimited()
    })
    .await;
    sandbox.add_item(ItemSpec::new("SKU-1"));
    let url = format!("{}/orders/salesOrders", running.url);
    let http = client();
    let r = http
        .post(&url)
        .basic_auth(BASIC.0, Some(BASIC.1))
        .json(&order("1", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["errorMessage"], "Item SKU-2 not found");
    let r = http
        .post(&url)
        .basic_auth(BASIC.0, Some(BASIC.1))
        .json(&order("1", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn kit_items_and_shipping_an_order() {
    let (sandbox, running) = start(unlimited()).await;
    sandbox.add_item(
        ItemSpec::new("GIFTSET-01")
            .component("CANDLE-VAN", 1)
            .component("SOAP-LAV", 2),
    );
    let (status, item) = get(&format!("{}/items/GIFTSET-01", running.url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        item["components"][1]["subComponent"]["businessKey"]["number"],
        "SOAP-LAV"
    );
    assert_eq!(item["components"][1]["quantity"], 2);
    let (_, list) = get(&format!("{}/items?number=GIFTSET-01", running.url)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(get(&format!("{}/items/NOPE", running.url)).await.0, 404);

    let mut body = order("1002", 1);
    body["orderLines"][0]["item"]["businessKey"]["number"] = json!("GIFTSET-01");
    let r = client()
        .post(format!("{}/orders/salesOrders", running.url))
        .basic_auth(BASIC.0, Some(BASIC.1))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let spec = sandbox
        .ship_order_spec("1002", "9400111899223197428490")
        .unwrap();
    let record = sandbox.add_shipment(spec);
    let v: Value =
        serde_json::from_slice(&sandbox.render(&record.number, Shape::Current).unwrap()).unwrap();
    let lines = v["shipmentLines"]["data"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["item"]["businessKey"]["number"], "SOAP-LAV");
    assert_eq!(lines[1]["shippedPackQuantity"], 4);
    assert_eq!(
        lines[1]["orderLine"]["relatedOrderLine"]["orderLineDetails"]["customerLineNumber"],
        "gid://shopify/LineItem/1"
    );
    // The kit line's id matches the sales order's line id.
    let order_line_id = sandbox.sales_order("1002").unwrap().lines[0].id;
    assert_eq!(
        lines[0]["orderLine"]["relatedOrderLine"]["id"],
        order_line_id
    );
}
