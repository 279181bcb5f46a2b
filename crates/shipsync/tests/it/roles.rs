//! Roles in the JSON API: a Merchant user's token sees only its merchant
//! (404 for other tenants' ids, even guessed ones; lists filtered); Staff
//! and Merchant users cannot manage users (403 `forbidden`).

use serde_json::{Value, json};
use shipsync::harness::{Harness, Options};

/// Calls the API with another bearer token.
pub async fn call(
    h: &Harness,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = h
        .http
        .request(m, format!("{}{path}", h.url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A second merchant with a connection; returns (merchant id, connection id).
pub async fn other_tenant(h: &Harness) -> (String, String) {
    let m = h
        .api(
            "POST",
            "/api/v1/merchants",
            Some(json!({"name": "Other Brand", "warehouse": {"api_url": h.deposco.url}})),
        )
        .await
        .expect("api")
        .ok(201)
        .expect("merchant");
    let c = h
        .api("POST", "/api/v1/connections", Some(json!({"name": "Other Shopify", "merchant_id": m["id"], "store": {"platform": "shopify", "shop_url": h.shopify.url, "access_token": "x"}})))
        .await
        .expect("api")
        .ok(201)
        .expect("connection");
    (
        m["id"].as_str().unwrap_or_default().into(),
        c["id"].as_str().unwrap_or_default().into(),
    )
}

/// Creates a user through the API (as admin) and an API token acting as it.
pub async fn user_with_token(
    h: &Harness,
    email: &str,
    role: &str,
    merchant: Option<&str>,
) -> String {
    let u = h
        .api("POST", "/api/v1/users", Some(json!({"email": email, "password": "a long password", "role": role, "merchant_id": merchant})))
        .await
        .expect("api")
        .ok(201)
        .expect("user");
    h.engine()
        .expect("engine")
        .create_user_token(u["id"].as_str().unwrap_or_default(), "test")
        .await
        .expect("token")
}

async fn merchant_user_sees_only_its_merchant(db_url: String) {
    let mut opts = Options::new(db_url);
    opts.shared_secret = None;
    let h = Harness::start(opts).await.expect("harness");
    let (other_m, other_c) = other_tenant(&h).await;
    let mine = h.merchant_id.clone();
    let tok = user_with_token(&h, "brand@example.com", "merchant", Some(&mine)).await;

    let (st, list) = call(&h, &tok, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 200);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec![mine.as_str()]);
    let (st, list) = call(&h, &tok, "GET", "/api/v1/connections", None).await;
    assert_eq!(st, 200);
    assert!(
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["merchant_id"] == mine.as_str()),
        "{list}"
    );
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    for filtered in [
        format!("/api/v1/connections?merchant_id={other_m}"),
        format!("/api/v1/shipments?merchant_id={other_m}"),
        format!("/api/v1/events?merchant_id={other_m}"),
    ] {
        let (st, list) = call(&h, &tok, "GET", &filtered, None).await;
        assert_eq!(
            (st, list["items"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{filtered}"
        );
    }
    // Another tenant's ids, and guessed ones, are 404 — never 403.
    for (method, path) in [
        ("GET", format!("/api/v1/merchants/{other_m}")),
        ("PATCH", format!("/api/v1/merchants/{other_m}")),
        ("DELETE", format!("/api/v1/merchants/{other_m}")),
        (
            "POST",
            format!("/api/v1/merchants/{other_m}/webhook-key/rotate"),
        ),
        ("GET", format!("/api/v1/connections/{other_c}")),
        ("PATCH", format!("/api/v1/connections/{other_c}")),
        (
            "GET",
            format!("/api/v1/connections/{other_c}/channels/shipments"),
        ),
        (
            "PATCH",
            format!("/api/v1/connections/{other_c}/channels/shipments"),
        ),
        (
            "POST",
            format!("/api/v1/connections/{other_c}/channels/shipments/runs"),
        ),
        (
            "GET",
            "/api/v1/shipments/shp_01jzzzzzzzzzzzzzzzzzzzzzzz".to_string(),
        ),
        (
            "GET",
            "/api/v1/orders/ord_01jzzzzzzzzzzzzzzzzzzzzzzz".to_string(),
        ),
        (
            "GET",
            "/api/v1/events/evt_01jzzzzzzzzzzzzzzzzzzzzzzz".to_string(),
        ),
    ] {
        let body = (method != "GET" && method != "DELETE").then(|| json!({"name": "taken over"}));
        let (st, b) = call(&h, &tok, method, &path, body).await;
        assert_eq!(st, 404, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], "not_found");
    }
    // Its own data works.
    let (st, _) = call(&h, &tok, "GET", &format!("/api/v1/merchants/{mine}"), None).await;
    assert_eq!(st, 200);
    // Cannot move its connection to another merchant, nor create merchants.
    let (st, b) = call(
        &h,
        &tok,
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"merchant_id": other_m})),
    )
    .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (422, Some("invalid_field")),
        "{b}"
    );
    let (st, b) = call(
        &h,
        &tok,
        "POST",
        "/api/v1/merchants",
        Some(json!({"name": "Mine too"})),
    )
    .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{b}"
    );
    // The other tenant's data is untouched.
    let m = h
        .api("GET", &format!("/api/v1/merchants/{other_m}"), None)
        .await
        .expect("api")
        .ok(200)
        .expect("other");
    assert_eq!(m["name"], "Other Brand");
    h.shutdown().await;
}

async fn only_administrators_manage_users(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let staff = user_with_token(&h, "staff@example.com", "staff", None).await;
    let brand = user_with_token(
        &h,
        "brand@example.com",
        "merchant",
        Some(&h.merchant_id.clone()),
    )
    .await;
    for tok in [&staff, &brand] {
        let (st, b) = call(&h, tok, "GET", "/api/v1/users", None).await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{b}"
        );
        let (st, b) = call(
            &h,
            tok,
            "POST",
            "/api/v1/users",
            Some(json!({"email": "x@example.com", "password": "a long password", "role": "admin"})),
        )
        .await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{b}"
        );
    }
    // Staff sees every merchant.
    let (st, list) = call(&h, &staff, "GET", "/api/v1/merchants", None).await;
    assert_eq!((st, list["items"].as_array().map(Vec::len)), (200, Some(1)));
    let users = h
        .api("GET", "/api/v1/users", None)
        .await
        .expect("api")
        .ok(200)
        .expect("users");
    assert_eq!(users["items"].as_array().map(Vec::len), Some(2));
    // Field-named 422s; the email is unique (case-insensitively).
    for (body, field) in [
        (
            json!({"email": "STAFF@example.com", "password": "a long password", "role": "staff"}),
            "email",
        ),
        (
            json!({"email": "new@example.com", "password": "short", "role": "staff"}),
            "password",
        ),
        (
            json!({"email": "new@example.com", "password": "a long password", "role": "merchant"}),
            "merchant_id",
        ),
        (
            json!({"email": "new@example.com", "password": "a long password", "role": "owner"}),
            "role",
        ),
    ] {
        let a = h
            .api("POST", "/api/v1/users", Some(body))
            .await
            .expect("api");
        assert_eq!(a.status, 422, "{}", a.body);
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with(field),
            "{}",
            a.body
        );
    }
    h.shutdown().await;
}

both_backends!(
    merchant_user_sees_only_its_merchant,
    only_administrators_manage_users
);
