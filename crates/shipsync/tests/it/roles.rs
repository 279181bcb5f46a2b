//! Roles in the JSON API: a Merchant user's token sees only its merchant
//! (404 for other tenants' ids, even guessed ones; lists filtered); Staff
//! and Merchant users cannot manage users (403 `forbidden`).

use serde_json::{Value, json};
use shipsync_testkit::{Harness, Options};

use crate::support::{browser_for, user_and_token};
use crate::ui::Browser;

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
    let user = json!({"email": email, "role": role, "merchant_id": merchant});
    user_and_token(h, user).await.1
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

/// A merchant named `name` with a connection; (merchant id, connection id).
async fn tenant(h: &Harness, name: &str) -> (String, String) {
    let m = h
        .api(
            "POST",
            "/api/v1/merchants",
            Some(json!({"name": name, "warehouse": {"api_url": h.deposco.url}})),
        )
        .await
        .expect("api")
        .ok(201)
        .expect("merchant");
    let c = h
        .api("POST", "/api/v1/connections", Some(json!({"name": format!("{name} Shopify"), "merchant_id": m["id"], "store": {"platform": "shopify", "shop_url": h.shopify.url, "access_token": "x"}})))
        .await
        .expect("api")
        .ok(201)
        .expect("connection");
    (
        m["id"].as_str().unwrap_or_default().into(),
        c["id"].as_str().unwrap_or_default().into(),
    )
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i[key].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// A Staff user limited to two merchants (Beta, Gamma) sees those two;
/// the third merchant's (the harness's, with a real shipment and order)
/// ids answer 404 in the API, as guessed ids do.
async fn staff_limited_to_two_merchants(db_url: String) {
    use crate::orders::{enable_sales_orders, paid_order, run_orders, wait_order};
    use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (beta, beta_c) = tenant(&h, "Beta").await;
    let (gamma, gamma_c) = tenant(&h, "Gamma").await;
    // The third merchant's order and shipment.
    enable_sales_orders(&h, "").await;
    let placed = h.place_order_spec(paid_order("#1001", &[("TENT", 1)]));
    run_orders(&h).await;
    let order = wait_order(&h, "#1001", "open").await;
    let (number, _) = h
        .ship(
            ShipmentSpec::new("1001")
                .line(LineSpec::new(1, "TENT", 1).customer_line(&placed.line_item_ids[0]))
                .package(PackageSpec::new("C1", "1Z-THIRD").line(1, 1)),
            Shape::Current,
        )
        .await
        .expect("ship");
    let shipment = h
        .wait_shipment(&number, &["completed"], crate::support::SETTLE)
        .await
        .expect("completed");
    let (order_id, shipment_id) = (
        order["id"].as_str().unwrap_or_default().to_string(),
        shipment["id"].as_str().unwrap_or_default().to_string(),
    );

    // merchant_ids in, merchant_ids out (sorted, deduplicated).
    let u = h
        .api("POST", "/api/v1/users", Some(json!({"email": "limited@example.com", "password": "a long password", "role": "staff", "merchant_ids": [gamma, beta, gamma]})))
        .await
        .expect("api")
        .ok(201)
        .expect("user");
    let mut both = vec![beta.clone(), gamma.clone()];
    both.sort();
    assert_eq!(u["merchant_ids"], json!(both), "{u}");
    assert_eq!(u["merchant_id"], Value::Null, "{u}");
    let tok = h
        .engine()
        .expect("engine")
        .create_user_token(u["id"].as_str().unwrap_or_default(), "test")
        .await
        .expect("token");

    let (st, list) = call(&h, &tok, "GET", "/api/v1/merchants", None).await;
    assert_eq!((st, ids(&list, "id")), (200, both.clone()), "{list}");
    let (_, list) = call(&h, &tok, "GET", "/api/v1/connections", None).await;
    let mut conns = vec![beta_c.clone(), gamma_c.clone()];
    conns.sort();
    assert_eq!(ids(&list, "id"), conns, "{list}");
    for path in ["/api/v1/shipments", "/api/v1/orders", "/api/v1/events"] {
        let (st, list) = call(&h, &tok, "GET", path, None).await;
        assert_eq!(
            (st, ids(&list, "id")),
            (200, Vec::<String>::new()),
            "{path}: {list}"
        );
    }
    for filtered in [
        format!("/api/v1/connections?merchant_id={}", h.merchant_id),
        format!("/api/v1/shipments?merchant_id={}", h.merchant_id),
        format!("/api/v1/events?merchant_id={}", h.merchant_id),
        "/api/v1/orders?tracking_number=1Z-THIRD".to_string(),
    ] {
        let (st, list) = call(&h, &tok, "GET", &filtered, None).await;
        assert_eq!(
            (st, list["items"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{filtered}"
        );
    }
    let (st, _) = call(
        &h,
        &tok,
        "GET",
        &format!("/api/v1/connections/{gamma_c}"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    for (method, path) in [
        ("GET", format!("/api/v1/merchants/{}", h.merchant_id)),
        ("GET", format!("/api/v1/connections/{}", h.connection_id)),
        ("PATCH", format!("/api/v1/connections/{}", h.connection_id)),
        (
            "POST",
            format!(
                "/api/v1/connections/{}/channels/shipments/runs",
                h.connection_id
            ),
        ),
        ("GET", format!("/api/v1/shipments/{shipment_id}")),
        ("POST", format!("/api/v1/shipments/{shipment_id}/archive")),
        ("GET", format!("/api/v1/orders/{order_id}")),
        ("POST", format!("/api/v1/orders/{order_id}/archive")),
        (
            "GET",
            "/api/v1/shipments/shp_01jzzzzzzzzzzzzzzzzzzzzzzz".to_string(),
        ),
        (
            "GET",
            "/api/v1/orders/ord_01jzzzzzzzzzzzzzzzzzzzzzzz".to_string(),
        ),
    ] {
        let body = (method == "PATCH").then(|| json!({"name": "taken over"}));
        let (st, b) = call(&h, &tok, method, &path, body).await;
        assert_eq!(st, 404, "{method} {path}: {b}");
    }
    // Limited Staff cannot create merchants (it could not see them).
    let (st, _) = call(
        &h,
        &tok,
        "POST",
        "/api/v1/merchants",
        Some(json!({"name": "Mine"})),
    )
    .await;
    assert_eq!(st, 403);
    let s = h
        .api("GET", &format!("/api/v1/shipments/{shipment_id}"), None)
        .await
        .expect("api")
        .ok(200)
        .expect("shipment");
    assert_eq!(s["status"], "completed");

    // The same in the UI: lists hold Beta and Gamma only; the third
    // merchant's pages and actions are not found.
    let mut b = Browser::new(h.url());
    let csrf = b.sign_in("limited@example.com", "a long password").await;
    let (_, page) = b.get("/merchants").await;
    assert!(
        page.contains("Beta") && page.contains("Gamma") && !page.contains("Acme Outdoor"),
        "{page}"
    );
    let (_, page) = b.get("/connections").await;
    assert!(
        page.contains("Gamma Shopify") && !page.contains("Acme Shopify"),
        "{page}"
    );
    for list in [
        "/shipments?q=1Z-THIRD",
        "/orders?q=1Z-THIRD",
        "/orders",
        "/events",
    ] {
        let (st, page) = b.get(list).await;
        assert!(
            st == 200 && !page.contains(&order_id) && !page.contains(&shipment_id),
            "{list}: {page}"
        );
    }
    for path in [
        format!("/merchants/{}", h.merchant_id),
        format!("/connections/{}", h.connection_id),
        format!("/shipments/{shipment_id}"),
        format!("/orders/{order_id}"),
        "/orders/ord_01jzzzzzzzzzzzzzzzzzzzzzzz".to_string(),
    ] {
        let (st, _) = b.get(&path).await;
        assert_eq!(st, 404, "{path}");
    }
    for path in [
        format!("/shipments/{shipment_id}/archive"),
        format!("/orders/{order_id}/archive"),
        format!("/connections/{}/test", h.connection_id),
    ] {
        let (st, _) = b.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(st, 404, "{path}");
    }
    let (st, _) = b.get(&format!("/connections/{gamma_c}")).await;
    assert_eq!(st, 200);

    // An administrator changes the merchants with the edit page's
    // checkboxes (a CSRF-less post is refused).
    let uid = u["id"].as_str().unwrap_or_default();
    let (mut admin, admin_csrf) =
        browser_for(&h, json!({"email": "ops@example.com", "role": "admin"})).await;
    let (st, page) = admin.get(&format!("/users/{uid}")).await;
    assert_eq!(st, 200);
    for m in [&beta, &gamma] {
        assert!(
            page.contains(&format!(
                "id=\"m-{m}\" type=\"checkbox\" name=\"merchant_ids\" value=\"{m}\" checked"
            )),
            "{page}"
        );
    }
    assert!(
        page.contains(&format!(
            "<label class=\"inline\" for=\"m-{}\">",
            h.merchant_id
        )),
        "{page}"
    );
    let edit = format!("/users/{uid}");
    let (st, _) = admin
        .post(&edit, &[("role", "staff"), ("merchant_ids", &gamma)])
        .await;
    assert_eq!(st, 403);
    let (st, _) = admin
        .post(
            &edit,
            &[
                ("csrf", &admin_csrf),
                ("role", "staff"),
                ("merchant_ids", &gamma),
            ],
        )
        .await;
    assert_eq!(st, 303);
    let (_, list) = call(&h, &tok, "GET", "/api/v1/merchants", None).await;
    assert_eq!(ids(&list, "id"), vec![gamma.clone()]);
    let (_, page) = b.get("/merchants").await;
    assert!(page.contains("Gamma") && !page.contains("Beta"), "{page}");

    // PATCH narrows it to one merchant (also shown as merchant_id, as
    // before several were possible); an unknown merchant is refused.
    let a = h
        .api(
            "PATCH",
            &format!("/api/v1/users/{uid}"),
            Some(json!({"merchant_ids": ["mer_nope"]})),
        )
        .await
        .expect("api");
    assert_eq!(a.status, 422, "{}", a.body);
    let u = h
        .api(
            "PATCH",
            &format!("/api/v1/users/{uid}"),
            Some(json!({"merchant_ids": [beta]})),
        )
        .await
        .expect("api")
        .ok(200)
        .expect("patched");
    assert_eq!(
        (u["merchant_id"].as_str(), u["merchant_ids"].clone()),
        (Some(beta.as_str()), json!([beta]))
    );
    let (_, list) = call(&h, &tok, "GET", "/api/v1/merchants", None).await;
    assert_eq!(ids(&list, "id"), vec![beta.clone()]);
    // Every merchant: the explicit setting (an emptied list means none).
    h.api(
        "PATCH",
        &format!("/api/v1/users/{uid}"),
        Some(json!({"merchant_ids": [], "all_merchants": true})),
    )
    .await
    .expect("api")
    .ok(200)
    .expect("patched");
    let (_, list) = call(&h, &tok, "GET", "/api/v1/merchants", None).await;
    assert_eq!(ids(&list, "id").len(), 3);
    h.shutdown().await;
}

/// A Staff user's one merchant from before migration 0006 becomes its
/// `user_merchants` row.
async fn staff_limit_migrates(db_url: String) {
    let db = shipsync_db::Db::open(&db_url).await.expect("db");
    for sql in [
        "DROP TABLE user_merchants",
        "DELETE FROM schema_migrations WHERE version = 6",
        "INSERT INTO users (id, email, password_hash, role, merchant_id, created_at, updated_at)
         VALUES ('usr_old', 'old@example.com', 'x', 'staff', 'mer_one', 0, 0),
                ('usr_brand', 'brand@example.com', 'x', 'merchant', 'mer_two', 0, 0)",
    ] {
        sqlx::query(sql).execute(db.pool()).await.expect(sql);
    }
    db.migrate().await.expect("migrate");
    let staff = shipsync_db::users::get(&db, "usr_old")
        .await
        .expect("get")
        .expect("user");
    assert_eq!(
        (staff.merchant_id, staff.merchant_ids),
        (None, vec!["mer_one".to_string()])
    );
    let brand = shipsync_db::users::get(&db, "usr_brand")
        .await
        .expect("get")
        .expect("user");
    assert_eq!(
        (brand.merchant_id.as_deref(), brand.merchant_ids.len()),
        (Some("mer_two"), 0)
    );
    db.close().await;
}

both_backends!(
    merchant_user_sees_only_its_merchant,
    only_administrators_manage_users,
    staff_limited_to_two_merchants,
    staff_limit_migrates
);
