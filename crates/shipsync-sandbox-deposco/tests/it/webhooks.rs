use base64::Engine as _;
use hmac::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shipsync_sandbox_deposco::*;

use crate::{Receiver, client, start, unlimited};

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[tokio::test]
async fn standard_signature_verifies_over_the_raw_body() {
    let sandbox = DeposcoSandbox::new(SandboxConfig::default());
    let shipment = sandbox.add_shipment(ShipmentSpec::example_simple());
    let (receiver, url) = Receiver::start().await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let reply = sandbox
        .post_webhook(
            &shipment.number,
            &url,
            Shape::Current,
            Signing::Standard {
                secret: secret.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.status(), Some(202));
    assert_eq!(reply.json().unwrap()["status"], "accepted");

    let (headers, body) = receiver.deliveries().pop().unwrap();
    assert_eq!(headers["content-type"], "application/json");
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert!((ts.parse::<i64>().unwrap() - jiff::Timestamp::now().as_second()).abs() < 60);
    let key = base64::engine::general_purpose::STANDARD
        .decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .unwrap();
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", &body].concat();
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac(&key, &signed))
    );
    assert_eq!(headers["webhook-signature"].to_str().unwrap(), expected);
    assert_eq!(
        body.as_ref(),
        sandbox.render(&shipment.number, Shape::Current).unwrap()
    );
    assert_eq!(reply.sent().body, body.to_vec());
}

#[tokio::test]
async fn body_hmac_and_xml_content_type() {
    let sandbox = DeposcoSandbox::new(SandboxConfig::default());
    let shipment = sandbox.add_shipment(ShipmentSpec::example_kit());
    let (receiver, url) = Receiver::start().await;
    sandbox
        .post_webhook(
            &shipment.number,
            &url,
            Shape::Xml,
            Signing::BodyHmac {
                secret: "plain-secret".into(),
            },
        )
        .await
        .unwrap();
    let (headers, body) = receiver.deliveries().pop().unwrap();
    assert_eq!(headers["content-type"], "application/xml");
    assert!(headers.get("webhook-id").is_none());
    let expected = format!("sha256={}", hex::encode(hmac(b"plain-secret", &body)));
    assert_eq!(headers["x-deposco-signature"].to_str().unwrap(), expected);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(&format!(
        "<shipmentNumber>{}</shipmentNumber>",
        shipment.number
    )));
    assert!(text.contains("<relatedLineNumber>1</relatedLineNumber>"));
}

#[tokio::test]
async fn redelivery_with_a_fixed_id_raw_bytes_and_extra_headers() {
    let sandbox = DeposcoSandbox::new(SandboxConfig::default());
    let shipment = sandbox.add_shipment(ShipmentSpec::example_simple());
    let (receiver, url) = Receiver::start().await;
    let signing = Signing::Standard { secret: "s".into() };
    let request = sandbox
        .webhook_request(&shipment.number, Shape::Mirror, signing.clone())
        .unwrap()
        .with_id("msg_fixed")
        .with_timestamp(1_700_000_000)
        .with_header("X-Test", "yes");
    let first = sandbox.send_webhook(&url, request.clone()).await.unwrap();
    let again = sandbox
        .resend_webhook(&url, first.sent().clone())
        .await
        .unwrap();
    assert_eq!(first.sent(), again.sent());
    let raw = WebhookRequest::raw(b"not json at all".to_vec(), "text/plain")
        .signed(signing)
        .with_id("msg_raw");
    sandbox.send_webhook(&url, raw).await.unwrap();

    let got = receiver.deliveries();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0["webhook-id"], "msg_fixed");
    assert_eq!(got[1].0["webhook-id"], "msg_fixed");
    assert_eq!(got[0].0["webhook-timestamp"], "1700000000");
    assert_eq!(got[0].0["x-test"], "yes");
    assert_eq!(got[0].1, got[1].1);
    assert_eq!(
        got[0].0["webhook-signature"],
        sign_standard("s", "msg_fixed", 1_700_000_000, &got[0].1)
    );
    assert_eq!(got[2].1.as_ref(), b"not json at all");
    assert_eq!(got[2].0["content-type"], "text/plain");
}

#[tokio::test]
async fn dropped_webhooks_send_nothing() {
    let sandbox = DeposcoSandbox::new(SandboxConfig::default());
    let shipment = sandbox.add_shipment(ShipmentSpec::example_simple());
    let (receiver, url) = Receiver::start().await;
    sandbox.set_faults(Faults {
        drop_webhook_rate: 1.0,
        ..Faults::default()
    });
    let reply = sandbox
        .post_webhook(&shipment.number, &url, Shape::Current, Signing::None)
        .await
        .unwrap();
    assert!(reply.is_dropped());
    assert_eq!(reply.status(), None);
    assert!(receiver.deliveries().is_empty());
}

#[tokio::test]
async fn unknown_shipment_and_unreachable_receiver_are_errors() {
    let sandbox = DeposcoSandbox::new(SandboxConfig::default());
    let err = sandbox
        .post_webhook(
            "SHP-nope",
            "http://127.0.0.1:9/",
            Shape::Current,
            Signing::None,
        )
        .await;
    assert!(matches!(err, Err(Error::UnknownShipment(_))));
    let shipment = sandbox.add_shipment(ShipmentSpec::example_simple());
    let err = sandbox
        .post_webhook(
            &shipment.number,
            "http://127.0.0.1:9/",
            Shape::Current,
            Signing::None,
        )
        .await;
    assert!(matches!(err, Err(Error::Delivery { .. })));
}

#[tokio::test]
async fn update_changes_tracking_and_bumps_updated_date() {
    let sandbox = DeposcoSandbox::new(SandboxConfig::default());
    let before = sandbox.add_shipment(ShipmentSpec::example_simple());
    let after = sandbox
        .update_shipment(&before.number, |s| {
            s.packages[1].tracking_number = "1ZNEWTRACKING".into()
        })
        .unwrap();
    assert!(after.updated_date > before.updated_date);
    let body = String::from_utf8(sandbox.render(&before.number, Shape::Xml).unwrap()).unwrap();
    assert!(body.contains("1ZNEWTRACKING"));
    assert!(sandbox.update_shipment("SHP-nope", |_| {}).is_none());
}

#[tokio::test]
async fn control_endpoints_add_and_post() {
    let (_sandbox, running) = start(unlimited()).await;
    let (receiver, url) = Receiver::start().await;
    let http = client();
    let record: serde_json::Value = http
        .post(format!("{}/_sandbox/shipments", running.url))
        .json(&ShipmentSpec::example_kit())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number = record["number"].as_str().unwrap();
    let reply: serde_json::Value = http
        .post(format!(
            "{}/_sandbox/shipments/{number}/webhook",
            running.url
        ))
        .json(&serde_json::json!({
            "url": url, "shape": "mirror",
            "signing": {"scheme": "body_hmac", "secret": "k"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["status"], 202);
    assert_eq!(reply["dropped"], false);
    let (headers, body) = receiver.deliveries().pop().unwrap();
    assert!(
        headers["x-deposco-signature"]
            .to_str()
            .unwrap()
            .starts_with("sha256=")
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v.pointer("/shipments/shipment/0/shipmentNumber").unwrap(),
        number
    );

    let faults = http
        .post(format!("{}/_sandbox/faults", running.url))
        .json(&serde_json::json!({"drop_webhook_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert!(faults.status().is_success());
    let reply: serde_json::Value = http
        .post(format!(
            "{}/_sandbox/shipments/{number}/webhook",
            running.url
        ))
        .json(&serde_json::json!({"url": url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["dropped"], true);
}

#[tokio::test]
async fn control_render_serves_each_shape() {
    let (sandbox, running) = start(unlimited()).await;
    let record = sandbox.add_shipment(ShipmentSpec::example_simple());
    for shape in Shape::ALL {
        let response = client()
            .get(format!(
                "{}/_sandbox/shipments/{}/render?shape={}",
                running.url,
                record.number,
                shape.name()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], shape.content_type());
        let body = response.bytes().await.unwrap();
        assert_eq!(
            body.as_ref(),
            sandbox.render(&record.number, shape).unwrap()
        );
    }
    assert_eq!(
        sandbox.request_count(),
        0,
        "control endpoints are not counted"
    );
}
