//! The JSON API (docs/contract.md, "HTTP", "Merchants", "Connections and
//! channels", "Orders, shipments, events"), on both backends.

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{
    KitSpec, LineSpec, PackageSpec, Shape, ShipmentSpec, Signing, WebhookRequest,
};
use shipsync_testkit::{Harness, Options, SHOPIFY_TOKEN};

use crate::support::SETTLE;
use crate::webhook::{error_code, new_shipment, note, send, signed, status};

fn merchant_doc(name: &str) -> Value {
    json!({
        "name": name,
        "warehouse": {
            "platform": "deposco",
            "api_url": "https://api.deposco.com/latest",
            "business_unit": "BU",
            "auth": {"type": "basic", "username": "user", "password": "pw-PLAIN-merchant-1"},
        },
        "shipment_webhooks": {"enabled": true, "shared_secret": "shared-PLAIN-secret-1"},
        "kit_policy": "first_component",
    })
}

fn connection_doc(merchant_id: &str, shop_url: &str) -> Value {
    json!({
        "name": "Second store",
        "merchant_id": merchant_id,
        "store": {"platform": "shopify", "shop_url": shop_url, "access_token": "shpat_PLAIN_token_1"},
    })
}

async fn ok(h: &Harness, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
    h.api(method, path, body)
        .await
        .expect("api call")
        .ok(want)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(error_code(body), code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// A 422 whose message names `field`.
async fn assert_invalid(h: &Harness, method: &str, path: &str, body: Option<Value>, field: &str) {
    let r = h.api(method, path, body.clone()).await.expect("api");
    assert_eq!(r.status, 422, "{method} {path} {body:?}: {:?}", r.body);
    assert_error(&r.body, "invalid_field");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(field), "message {msg:?} should name {field:?}");
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok() && s.ends_with('Z'))
}

async fn shipments(h: &Harness, query: &str) -> Vec<Value> {
    ok(
        h,
        "GET",
        &format!("/api/v1/shipments?limit=500&{query}"),
        None,
        200,
    )
    .await["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

// ---------- auth, ids, errors ----------

async fn bearer_token_is_required(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let url = format!("{}/api/v1/merchants", h.url());
    let cases = [
        None,
        Some("Bearer not-the-token".to_string()),
        Some(format!("Basic {}", h.token)),
        Some(format!("Bearer {}x", h.token)),
        Some("Bearer ".to_string()),
    ];
    for auth in cases {
        let mut req = h.http.get(&url);
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        let body: Value = r.json().await.expect("JSON error");
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    // A write without a token does nothing.
    let r = h
        .http
        .post(&url)
        .json(&merchant_doc("Sneaky"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let list = ok(&h, "GET", "/api/v1/merchants", None, 200).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The right token works, case-insensitive scheme aside.
    let r = h.http.get(&url).bearer_auth(&h.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    h.shutdown().await;
}

async fn unknown_ids_are_404(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let c = &h.connection_id;
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/merchants/mer_nope".into(), None),
        (
            "PATCH",
            "/api/v1/merchants/mer_nope".into(),
            Some(json!({"name": "x"})),
        ),
        ("DELETE", "/api/v1/merchants/mer_nope".into(), None),
        (
            "POST",
            "/api/v1/merchants/mer_nope/webhook-key/rotate".into(),
            None,
        ),
        ("GET", "/api/v1/connections/con_nope".into(), None),
        (
            "PATCH",
            "/api/v1/connections/con_nope".into(),
            Some(json!({"name": "x"})),
        ),
        ("DELETE", "/api/v1/connections/con_nope".into(), None),
        (
            "GET",
            "/api/v1/connections/con_nope/channels/shipments".into(),
            None,
        ),
        (
            "GET",
            format!("/api/v1/connections/{c}/channels/inventory"),
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/connections/{c}/channels/inventory"),
            Some(json!({"enabled": true})),
        ),
        ("GET", "/api/v1/shipments/shp_nope".into(), None),
        ("POST", "/api/v1/shipments/shp_nope/reprocess".into(), None),
        ("POST", "/api/v1/shipments/shp_nope/reset".into(), None),
        ("POST", "/api/v1/shipments/shp_nope/archive".into(), None),
        ("GET", "/api/v1/events/evt_nope".into(), None),
        ("POST", "/api/v1/events/evt_nope/replay".into(), None),
        // Another resource's id is not an id of this kind.
        ("GET", format!("/api/v1/merchants/{c}"), None),
        (
            "GET",
            format!("/api/v1/connections/{}", h.merchant_id),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let r = h.api(method, &path, body).await.unwrap();
        assert_eq!(r.status, 404, "{method} {path}: {:?}", r.body);
        assert_error(&r.body, "not_found");
    }
    let r = h
        .http
        .post(format!("{}/api/v1/merchants", h.url()))
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    // A query string that cannot be read is a JSON 400/422 too.
    for q in ["limit=1&limit=2", "status=new&status=open"] {
        let r = h
            .api("GET", &format!("/api/v1/shipments?{q}"), None)
            .await
            .unwrap();
        assert!(r.status == 400 || r.status == 422, "{q}: {r:?}");
        assert!(
            r.body["error"]["code"].is_string(),
            "{q}: JSON error shape: {:?}",
            r.body
        );
    }
    // Unknown endpoints and methods answer with the same error shape.
    let r = h.api("GET", "/api/v1/nothing-here", None).await.unwrap();
    assert_eq!(r.status, 404);
    assert_error(&r.body, "not_found");
    let r = h
        .api(
            "PUT",
            &format!("/api/v1/merchants/{}", h.merchant_id),
            Some(json!({"name": "x"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 405, "{:?}", r.body);
    assert!(
        r.body["error"]["code"].is_string(),
        "405 in the error shape: {:?}",
        r.body
    );
    h.shutdown().await;
}

async fn create_answers_201_with_prefixed_ids(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let m = ok(
        &h,
        "POST",
        "/api/v1/merchants",
        Some(merchant_doc("Beta Brand")),
        201,
    )
    .await;
    let id = m["id"].as_str().unwrap();
    assert!(id.starts_with("mer_") && id.len() > 8, "{m}");
    assert_eq!(m["name"], "Beta Brand");
    assert_eq!(m["kit_policy"], "first_component");
    assert_eq!(m["warehouse"]["platform"], "deposco");
    assert_eq!(m["warehouse"]["business_unit"], "BU");
    assert_eq!(m["warehouse"]["auth"]["type"], "basic");
    assert_eq!(m["warehouse"]["auth"]["username"], "user");
    assert_eq!(m["shipment_webhooks"]["enabled"], true);
    assert!(
        is_rfc3339(&m["created_at"]) && is_rfc3339(&m["updated_at"]),
        "{m}"
    );
    assert_eq!(
        ok(&h, "GET", &format!("/api/v1/merchants/{id}"), None, 200).await,
        m
    );
    let c = ok(
        &h,
        "POST",
        "/api/v1/connections",
        Some(connection_doc(id, &h.shopify.url)),
        201,
    )
    .await;
    let cid = c["id"].as_str().unwrap();
    assert!(cid.starts_with("con_") && cid.len() > 8, "{c}");
    assert_eq!(c["merchant_id"], id);
    assert_eq!(c["enabled"], false, "new connections start disabled");
    assert_eq!(c["order_prefix"], "");
    assert_eq!(c["store"]["api_version"], "2026-10");
    assert_eq!(c["store"]["notify_customer"], true);
    assert_eq!(c["store"]["location_id"], Value::Null);
    assert_eq!(
        ok(&h, "GET", &format!("/api/v1/connections/{cid}"), None, 200).await,
        c
    );
    // Lists: items + next_cursor.
    let list = ok(&h, "GET", "/api/v1/merchants", None, 200).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["next_cursor"], Value::Null);
    let list = ok(
        &h,
        "GET",
        &format!("/api/v1/connections?merchant_id={id}"),
        None,
        200,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], cid);
    h.shutdown().await;
}

// ---------- secrets ----------

/// id, warehouse_json, warehouse_secrets, shared_secret, webhook_key.
type MerchantSecrets = (String, String, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>);

const PLAIN: [&str; 6] = [
    "pw-PLAIN-merchant-1",
    "shared-PLAIN-secret-1",
    "shpat_PLAIN_token_1",
    "cs-PLAIN-client-secret",
    "rt-PLAIN-refresh-token",
    "PLAIN",
];

fn assert_no_secret(v: &Value) {
    let text = v.to_string();
    for p in PLAIN {
        assert!(!text.contains(p), "response leaks {p:?}: {text}");
    }
    for k in [
        "password",
        "client_secret",
        "refresh_token",
        "shared_secret",
        "access_token",
    ] {
        assert!(
            !text.contains(&format!("\"{k}\":")),
            "response has a {k} field: {text}"
        );
    }
}

async fn secrets_are_write_only_and_encrypted_at_rest(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let m = ok(
        &h,
        "POST",
        "/api/v1/merchants",
        Some(merchant_doc("Secretive")),
        201,
    )
    .await;
    assert_no_secret(&m);
    assert_eq!(m["warehouse"]["auth"]["password_set"], true, "{m}");
    assert_eq!(m["shipment_webhooks"]["shared_secret_set"], true, "{m}");
    let mid = m["id"].as_str().unwrap().to_string();
    let oauth = ok(
        &h,
        "POST",
        "/api/v1/merchants",
        Some(json!({
            "name": "OAuth brand",
            "warehouse": {"platform": "deposco", "api_url": "https://api.deposco.com/latest",
                "auth": {"type": "oauth", "token_url": "https://api.deposco.com/oauth2/token",
                         "client_id": "cid", "client_secret": "cs-PLAIN-client-secret",
                         "refresh_token": "rt-PLAIN-refresh-token"}},
        })),
        201,
    )
    .await;
    assert_no_secret(&oauth);
    assert_eq!(
        oauth["warehouse"]["auth"]["client_secret_set"], true,
        "{oauth}"
    );
    assert_eq!(
        oauth["warehouse"]["auth"]["refresh_token_set"], true,
        "{oauth}"
    );
    assert_eq!(oauth["warehouse"]["auth"]["client_id"], "cid");
    assert_eq!(oauth["shipment_webhooks"]["shared_secret_set"], false);
    let c = ok(
        &h,
        "POST",
        "/api/v1/connections",
        Some(connection_doc(&mid, &h.shopify.url)),
        201,
    )
    .await;
    assert_no_secret(&c);
    assert_eq!(c["store"]["access_token_set"], true, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    // Every read path too.
    for path in [
        "/api/v1/merchants".to_string(),
        format!("/api/v1/merchants/{mid}"),
        "/api/v1/connections".to_string(),
        format!("/api/v1/connections/{cid}"),
    ] {
        assert_no_secret(&ok(&h, "GET", &path, None, 200).await);
    }
    let rotated = ok(
        &h,
        "POST",
        &format!("/api/v1/merchants/{mid}/webhook-key/rotate"),
        None,
        200,
    )
    .await;
    assert_no_secret(&rotated);

    // At rest: no plaintext in the rows.
    let pool = h.db().await.unwrap().pool().clone();
    let rows: Vec<MerchantSecrets> = sqlx::query_as(
        "SELECT id, warehouse_json, warehouse_secrets, shared_secret, webhook_key FROM merchants",
    )
    .fetch_all(&pool)
    .await
    .expect("read merchants");
    assert_eq!(rows.len(), 3);
    let key = rotated["shipment_webhooks"]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    for (id, json, wsec, ssec, wkey) in &rows {
        let mut blob = json.clone().into_bytes();
        for b in [
            wsec.clone().unwrap_or_default(),
            ssec.clone().unwrap_or_default(),
            wkey.clone(),
        ] {
            blob.extend_from_slice(&b);
        }
        let text = String::from_utf8_lossy(&blob);
        for p in &PLAIN[..5] {
            assert!(!text.contains(p), "merchant {id} stores {p:?} in plaintext");
        }
        assert!(
            !text.contains(&key),
            "merchant {id} stores its webhook key in plaintext"
        );
        if id == &mid {
            assert!(
                wsec.is_some() && ssec.is_some(),
                "secrets are stored (sealed)"
            );
        }
    }
    let conns: Vec<(String, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT store_json, store_token FROM connections")
            .fetch_all(&pool)
            .await
            .expect("read connections");
    assert_eq!(conns.len(), 2);
    for (json, token) in &conns {
        assert!(!json.contains("shpat_"), "{json}");
        let t = token.clone().expect("token stored sealed");
        assert!(
            !String::from_utf8_lossy(&t).contains("shpat_"),
            "access token in plaintext"
        );
    }
    h.shutdown().await;
}

// ---------- merge patch ----------

async fn patch_is_a_merge_patch(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let path = format!("/api/v1/merchants/{}", h.merchant_id);
    let before = ok(&h, "GET", &path, None, 200).await;

    // Omitted fields stay; the secret left out is kept.
    let m = ok(&h, "PATCH", &path, Some(json!({"name": "Renamed"})), 200).await;
    assert_eq!(m["name"], "Renamed");
    assert_eq!(m["warehouse"], before["warehouse"]);
    assert_eq!(m["kit_policy"], before["kit_policy"]);
    assert_eq!(m["shipment_webhooks"], before["shipment_webhooks"]);
    assert_eq!(m["created_at"], before["created_at"]);
    assert_eq!(
        status(&send(&h, signed(&h, note("kept"))).await),
        202,
        "old secret still verifies"
    );

    let m = ok(
        &h,
        "PATCH",
        &path,
        Some(json!({"warehouse": {"auth": {"username": "other"}}})),
        200,
    )
    .await;
    assert_eq!(m["warehouse"]["auth"]["username"], "other");
    assert_eq!(m["warehouse"]["auth"]["password_set"], true, "{m}");
    assert_eq!(m["warehouse"]["business_unit"], "ACME");

    // A new secret replaces the old one.
    let m = ok(
        &h,
        "PATCH",
        &path,
        Some(json!({"shipment_webhooks": {"shared_secret": "brand-new-secret-1"}})),
        200,
    )
    .await;
    assert_eq!(m["shipment_webhooks"]["shared_secret_set"], true);
    assert_eq!(m["shipment_webhooks"]["enabled"], true);
    assert_eq!(status(&send(&h, signed(&h, note("old-secret"))).await), 401);
    let new_sig =
        WebhookRequest::raw(note("new-secret"), "application/json").signed(Signing::Standard {
            secret: "brand-new-secret-1".into(),
        });
    assert_eq!(status(&send(&h, new_sig).await), 202);

    // null clears it: unsigned deliveries are accepted.
    let m = ok(
        &h,
        "PATCH",
        &path,
        Some(json!({"shipment_webhooks": {"shared_secret": null}})),
        200,
    )
    .await;
    assert_eq!(m["shipment_webhooks"]["shared_secret_set"], false, "{m}");
    assert_eq!(m["shipment_webhooks"]["enabled"], true);
    let unsigned = WebhookRequest::raw(note("unsigned"), "application/json");
    assert_eq!(status(&send(&h, unsigned).await), 202);

    // Switching the auth type replaces the auth object.
    let m = ok(
        &h,
        "PATCH",
        &path,
        Some(json!({"warehouse": {"auth": {"type": "oauth", "token_url": "https://api.deposco.com/oauth2/token",
            "client_id": "cid", "client_secret": "cs-PLAIN-client-secret", "refresh_token": "rt-PLAIN-refresh-token"}}})),
        200,
    )
    .await;
    let auth = &m["warehouse"]["auth"];
    assert_eq!(auth["type"], "oauth");
    assert_eq!(auth["client_secret_set"], true);
    assert_eq!(auth["refresh_token_set"], true);
    assert!(
        auth.get("password_set").is_none() && auth.get("username").is_none(),
        "{auth}"
    );
    assert_no_secret(&m);
    let m = ok(
        &h,
        "PATCH",
        &path,
        Some(json!({"warehouse": {"auth": {"client_id": "cid-2"}}})),
        200,
    )
    .await;
    assert_eq!(m["warehouse"]["auth"]["client_id"], "cid-2");
    assert_eq!(m["warehouse"]["auth"]["client_secret_set"], true);
    assert_eq!(m["warehouse"]["auth"]["refresh_token_set"], true);
    // Back to basic without a password: the password is required.
    assert_invalid(
        &h,
        "PATCH",
        &path,
        Some(json!({"warehouse": {"auth": {"type": "basic", "username": "u"}}})),
        "warehouse.auth.password",
    )
    .await;
    // A refused patch changes nothing.
    assert_invalid(
        &h,
        "PATCH",
        &path,
        Some(json!({"name": "Half", "kit_policy": "sometimes"})),
        "kit_policy",
    )
    .await;
    let now = ok(&h, "GET", &path, None, 200).await;
    assert_eq!(now["name"], "Renamed");
    assert_eq!(now["warehouse"]["auth"]["type"], "oauth");

    // Connections: the access token left out is kept, a new one replaces it.
    let cpath = format!("/api/v1/connections/{}", h.connection_id);
    let c = ok(
        &h,
        "PATCH",
        &cpath,
        Some(json!({"name": "Renamed store", "order_prefix": "AC-"})),
        200,
    )
    .await;
    assert_eq!(c["name"], "Renamed store");
    assert_eq!(c["order_prefix"], "AC-");
    assert_eq!(c["enabled"], true);
    assert_eq!(c["store"]["access_token_set"], true);
    assert_eq!(c["store"]["shop_url"], h.shopify.url.as_str());
    let c = ok(
        &h,
        "PATCH",
        &cpath,
        Some(json!({"order_prefix": null, "store": {"notify_customer": false}})),
        200,
    )
    .await;
    assert_eq!(c["order_prefix"], "");
    assert_eq!(c["store"]["notify_customer"], false);
    assert_eq!(c["store"]["access_token_set"], true);
    assert_eq!(c["store"]["access_token"], Value::Null);
    let _ = SHOPIFY_TOKEN;
    h.shutdown().await;
}

// ---------- validation ----------

async fn invalid_fields_are_422_naming_the_field(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut d = merchant_doc("Valid");
        f(&mut d);
        Some(d)
    };
    let m = "/api/v1/merchants";
    let cases: Vec<(Option<Value>, &str)> = vec![
        (
            with(&|d| {
                d.as_object_mut().unwrap().remove("name");
            }),
            "name",
        ),
        (with(&|d| d["name"] = json!("")), "name"),
        (with(&|d| d["name"] = json!(42)), "name"),
        (
            with(&|d| d["warehouse"]["api_url"] = json!("not a url")),
            "warehouse.api_url",
        ),
        (
            with(&|d| d["warehouse"]["api_url"] = json!("ftp://example.com")),
            "warehouse.api_url",
        ),
        (
            with(&|d| d["kit_policy"] = json!("sometimes")),
            "kit_policy",
        ),
        (
            with(&|d| d["warehouse"]["auth"]["type"] = json!("digest")),
            "warehouse.auth.type",
        ),
        (with(&|d| d["colour"] = json!("blue")), "colour"),
        (
            with(&|d| d["warehouse"]["region"] = json!("eu")),
            "warehouse.region",
        ),
        (
            with(&|d| d["shipment_webhooks"]["enabled"] = json!("yes")),
            "shipment_webhooks.enabled",
        ),
        (
            with(&|d| d["warehouse"]["platform"] = json!("sap")),
            "warehouse.platform",
        ),
    ];
    for (body, field) in cases {
        assert_invalid(&h, "POST", m, body, field).await;
    }
    let list = ok(&h, "GET", m, None, 200).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "nothing created"
    );
    // A merge patch may not null a required field.
    let mpath = format!("{m}/{}", h.merchant_id);
    assert_invalid(&h, "PATCH", &mpath, Some(json!({"name": null})), "name").await;
    assert_invalid(
        &h,
        "PATCH",
        &mpath,
        Some(json!({"warehouse": {"api_url": "nope"}})),
        "warehouse.api_url",
    )
    .await;

    let c = "/api/v1/connections";
    let conn = |f: &dyn Fn(&mut Value)| {
        let mut d = connection_doc(&h.merchant_id, &h.shopify.url);
        f(&mut d);
        Some(d)
    };
    let cases: Vec<(Option<Value>, &str)> = vec![
        (
            conn(&|d| d["merchant_id"] = json!("mer_nowhere")),
            "merchant_id",
        ),
        (
            conn(&|d| {
                d.as_object_mut().unwrap().remove("merchant_id");
            }),
            "merchant_id",
        ),
        (
            conn(&|d| d["store"]["shop_url"] = json!("acme")),
            "store.shop_url",
        ),
        (
            conn(&|d| d["store"]["shop_url"] = json!("javascript:alert(1)")),
            "store.shop_url",
        ),
        (conn(&|d| d["colour"] = json!("blue")), "colour"),
        (
            conn(&|d| d["store"]["api_version"] = json!("latest")),
            "store.api_version",
        ),
        (conn(&|d| d["enabled"] = json!("on")), "enabled"),
        (
            conn(&|d| {
                d.as_object_mut().unwrap().remove("name");
            }),
            "name",
        ),
    ];
    for (body, field) in cases {
        assert_invalid(&h, "POST", c, body, field).await;
    }
    assert_invalid(
        &h,
        "PATCH",
        &format!("{c}/{}", h.connection_id),
        Some(json!({"merchant_id": "mer_nowhere"})),
        "merchant_id",
    )
    .await;
    for list in ["merchants", "connections", "shipments", "events"] {
        for limit in ["501", "0", "ten"] {
            assert_invalid(
                &h,
                "GET",
                &format!("/api/v1/{list}?limit={limit}"),
                None,
                "limit",
            )
            .await;
        }
        ok(&h, "GET", &format!("/api/v1/{list}?limit=500"), None, 200).await;
    }
    assert_invalid(&h, "GET", "/api/v1/shipments?status=lost", None, "status").await;
    assert_invalid(
        &h,
        "GET",
        "/api/v1/shipments?source=carrier_pigeon",
        None,
        "source",
    )
    .await;
    let ch = format!("{c}/{}/channels/shipments", h.connection_id);
    assert_invalid(&h, "PATCH", &ch, Some(json!({"enabled": "yes"})), "enabled").await;
    assert_invalid(&h, "PATCH", &ch, Some(json!({"colour": "blue"})), "colour").await;
    h.shutdown().await;
}

// ---------- delete ----------

async fn delete_merchant_with_connections_is_409(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let mpath = format!("/api/v1/merchants/{}", h.merchant_id);
    let r = h.api("DELETE", &mpath, None).await.unwrap();
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_error(&r.body, "has_connections");
    ok(&h, "GET", &mpath, None, 200).await;

    let cpath = format!("/api/v1/connections/{}", h.connection_id);
    let r = h.api("DELETE", &cpath, None).await.unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(r.body, Value::Null, "204 has no body");
    assert_eq!(h.api("GET", &cpath, None).await.unwrap().status, 404);
    let r = h.api("DELETE", &mpath, None).await.unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = h.api("GET", &mpath, None).await.unwrap();
    assert_eq!(r.status, 404);
    assert_error(&r.body, "not_found");
    assert_eq!(h.api("DELETE", &mpath, None).await.unwrap().status, 404);
    // Its webhook URL is gone with it.
    assert_eq!(status(&send(&h, signed(&h, note("gone"))).await), 404);
    h.shutdown().await;
}

// ---------- webhook URL ----------

/// Bits of randomness a key's random part can hold, from its alphabet.
fn key_bits(key: &str) -> usize {
    // A short type prefix such as `whk_` carries no randomness.
    let random = match key.split_once('_') {
        Some((head, rest)) if head.len() <= 4 && head.chars().all(|c| c.is_ascii_lowercase()) => {
            rest
        }
        _ => key,
    };
    let per_char = if random.chars().all(|c| c.is_ascii_hexdigit()) {
        4
    } else if random
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        6
    } else {
        0
    };
    random.len() * per_char
}

async fn webhook_urls_carry_random_per_merchant_keys(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let prefix = format!("{}/webhooks/deposco/", h.url());
    let mut keys = Vec::new();
    let first = ok(
        &h,
        "GET",
        &format!("/api/v1/merchants/{}", h.merchant_id),
        None,
        200,
    )
    .await;
    keys.push(
        first["shipment_webhooks"]["url"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    for i in 0..3 {
        let mut doc = merchant_doc(&format!("Brand {i}"));
        doc["shipment_webhooks"] = json!({"enabled": false});
        let m = ok(&h, "POST", "/api/v1/merchants", Some(doc), 201).await;
        // Every saved merchant has a URL, webhooks on or not.
        keys.push(m["shipment_webhooks"]["url"].as_str().unwrap().to_string());
        let rotated = ok(
            &h,
            "POST",
            &format!(
                "/api/v1/merchants/{}/webhook-key/rotate",
                m["id"].as_str().unwrap()
            ),
            None,
            200,
        )
        .await;
        keys.push(
            rotated["shipment_webhooks"]["url"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for url in &keys {
        let key = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{url} under {prefix}"));
        assert!(!key.contains('/') && !key.is_empty(), "{url}");
        assert!(
            key_bits(key) >= 128,
            "key {key:?} holds fewer than 128 random bits"
        );
        assert!(
            !key.contains("mer_"),
            "the key must not be the merchant id: {key}"
        );
    }
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "keys differ: {keys:?}");
    h.shutdown().await;
}

// ---------- channels ----------

async fn channels_start_disabled_with_default_schedule(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let c = ok(
        &h,
        "POST",
        "/api/v1/connections",
        Some(connection_doc(&h.merchant_id, &h.shopify.url)),
        201,
    )
    .await;
    assert_eq!(c["enabled"], false);
    let cid = c["id"].as_str().unwrap();
    let base = format!("/api/v1/connections/{cid}/channels");
    let so = ok(&h, "GET", &format!("{base}/sales_orders"), None, 200).await;
    assert_eq!(so["channel"], "sales_orders");
    assert_eq!(so["enabled"], false);
    let sh = ok(&h, "GET", &format!("{base}/shipments"), None, 200).await;
    assert_eq!(sh["channel"], "shipments");
    assert_eq!(sh["enabled"], false);
    let schedules = sh["schedules"].as_array().expect("schedules");
    assert_eq!(schedules.len(), 1, "{sh}");
    let s = &schedules[0];
    assert_eq!(s["kind"], "hourly");
    assert_eq!(s["every"], 4);
    assert!(s["id"].as_str().unwrap().starts_with("sch_"), "{s}");
    assert!(s["time_zone"].is_string());

    let on = ok(
        &h,
        "PATCH",
        &format!("{base}/shipments"),
        Some(json!({"enabled": true})),
        200,
    )
    .await;
    assert_eq!(on["enabled"], true);
    assert_eq!(
        on["schedules"], sh["schedules"],
        "enabled alone keeps the schedules"
    );
    assert_eq!(
        ok(&h, "GET", &format!("{base}/shipments"), None, 200).await["enabled"],
        true
    );
    assert_eq!(
        ok(&h, "GET", &format!("{base}/sales_orders"), None, 200).await["enabled"],
        false
    );
    let off = ok(
        &h,
        "PATCH",
        &format!("{base}/shipments"),
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(off["enabled"], false);
    h.shutdown().await;
}

async fn shipments_wait_until_connection_and_channel_are_on(db_url: String) {
    let mut o = Options::new(db_url);
    o.enable = false;
    let mut h = Harness::start(o).await.expect("harness");
    let (number, name) = new_shipment(&mut h, "T-WAIT");
    assert_eq!(h.post(&number, Shape::Current).await.unwrap(), 202);
    let s = h.wait_shipment(&number, &["new"], SETTLE).await.unwrap();
    assert!(
        s["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a reason while it waits: {s}"
    );
    assert!(
        h.shopify
            .sandbox
            .order(&name)
            .unwrap()
            .fulfillments
            .is_empty()
    );

    // The connection alone is not enough.
    ok(
        &h,
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"enabled": true})),
        200,
    )
    .await;
    h.settle(SETTLE).await.unwrap();
    let s = h.shipment_by_number(&number).await.unwrap().unwrap();
    assert_eq!(s["status"], "new", "{s}");
    assert!(
        s["error"].as_str().is_some_and(|e| e.contains("channel")),
        "names the channel: {s}"
    );
    assert!(
        h.shopify
            .sandbox
            .order(&name)
            .unwrap()
            .fulfillments
            .is_empty()
    );

    // Both on: it goes out, once.
    ok(
        &h,
        "PATCH",
        &format!("/api/v1/connections/{}/channels/shipments", h.connection_id),
        Some(json!({"enabled": true})),
        200,
    )
    .await;
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    assert_eq!(s["error"], Value::Null);
    assert_eq!(
        h.shopify.sandbox.order(&name).unwrap().fulfillments.len(),
        1
    );

    // Channel on, connection off: a new shipment waits again.
    ok(
        &h,
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    let (n2, name2) = new_shipment(&mut h, "T-WAIT-2");
    assert_eq!(h.post(&n2, Shape::Current).await.unwrap(), 202);
    let s = h.wait_shipment(&n2, &["new"], SETTLE).await.unwrap();
    assert!(s["error"].is_string(), "{s}");
    assert!(
        h.shopify
            .sandbox
            .order(&name2)
            .unwrap()
            .fulfillments
            .is_empty()
    );
    h.shutdown().await;
}

// ---------- shipments ----------

async fn shipment_filters_and_detail(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (name1, _) = h.place_order(&[("A", 2), ("B", 1)]);
    let spec1 = ShipmentSpec::new(name1.trim_start_matches('#'))
        .carrier("UPS", "UPS Ground")
        .line(LineSpec::new(1, "A", 2))
        .line(LineSpec::new(2, "B", 1))
        .package(PackageSpec::new("LPN-1", "1Z-ONE").line(1, 2))
        .package(PackageSpec::new("LPN-2", "1Z-TWO").line(2, 1));
    let (n1, code) = h.ship(spec1, Shape::Current).await.unwrap();
    assert_eq!(code, 202);
    let (name2, ids2) = h.place_order(&[("GIFTSET-01", 2)]);
    let kit = KitSpec {
        kit_line_number: 1,
        kit_sku: "GIFTSET-01".into(),
        kit_ordered: 2,
        kit_customer_line_number: Some(ids2[0].clone()),
    };
    let spec2 = ShipmentSpec::new(name2.trim_start_matches('#'))
        .carrier("USPS", "USPS Ground Advantage")
        .line(LineSpec::new(2, "CANDLE-VAN", 2).kit(kit.clone()))
        .line(LineSpec::new(3, "SOAP-LAV", 4).kit(kit))
        .package(PackageSpec::new("LPN-3", "9400-KIT").line(2, 2).line(3, 4));
    let (n2, code) = h.ship(spec2, Shape::Xml).await.unwrap();
    assert_eq!(code, 202);
    let s1 = h.wait_shipment(&n1, &["completed"], SETTLE).await.unwrap();
    let s2 = h.wait_shipment(&n2, &["completed"], SETTLE).await.unwrap();
    let id1 = s1["id"].as_str().unwrap().to_string();
    let id2 = s2["id"].as_str().unwrap().to_string();
    assert!(id1.starts_with("shp_") && id2.starts_with("shp_"));

    let ids = |v: Vec<Value>| {
        let mut x: Vec<String> = v
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        x.sort();
        x
    };
    let mut both = vec![id1.clone(), id2.clone()];
    both.sort();
    assert_eq!(ids(shipments(&h, "status=completed").await), both);
    assert!(shipments(&h, "status=new").await.is_empty());
    assert!(shipments(&h, "status=error").await.is_empty());
    let bare1 = name1.trim_start_matches('#');
    assert_eq!(
        ids(shipments(&h, &format!("order_name={bare1}")).await),
        vec![id1.clone()]
    );
    assert_eq!(
        ids(shipments(&h, &format!("order_name=%23{bare1}")).await),
        vec![id1.clone()]
    );
    assert_eq!(
        ids(shipments(&h, &format!("order_name={}", name2.trim_start_matches('#'))).await),
        vec![id2.clone()]
    );
    assert!(shipments(&h, "order_name=9999").await.is_empty());
    assert_eq!(ids(shipments(&h, "source=webhook").await), both);
    assert!(shipments(&h, "source=poll").await.is_empty());
    assert_eq!(
        ids(shipments(&h, &format!("merchant_id={}", h.merchant_id)).await),
        both
    );
    assert_eq!(
        ids(shipments(&h, &format!("connection_id={}", h.connection_id)).await),
        both
    );
    let other = ok(
        &h,
        "POST",
        "/api/v1/merchants",
        Some(merchant_doc("Other")),
        201,
    )
    .await;
    assert!(
        shipments(
            &h,
            &format!("merchant_id={}", other["id"].as_str().unwrap())
        )
        .await
        .is_empty()
    );
    assert!(shipments(&h, "merchant_id=mer_nope").await.is_empty());
    // Paging over shipments.
    let page = ok(&h, "GET", "/api/v1/shipments?limit=1", None, 200).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let page2 = ok(
        &h,
        "GET",
        &format!("/api/v1/shipments?limit=1&cursor={cursor}"),
        None,
        200,
    )
    .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);

    // Detail of the two-package shipment.
    let d = ok(&h, "GET", &format!("/api/v1/shipments/{id1}"), None, 200).await;
    assert_eq!(d["status"], "completed");
    assert_eq!(d["order_name"], name1.as_str());
    assert_eq!(d["warehouse_shipment_number"], n1.as_str());
    assert_eq!(d["sources"], json!(["webhook"]));
    assert_eq!(d["first_seen_via"], "webhook");
    assert_eq!(d["error"], Value::Null);
    assert!(is_rfc3339(&d["received_at"]), "{d}");
    assert!(is_rfc3339(&d["completed_at"]), "{d}");
    let packages = d["packages"].as_array().expect("packages");
    assert_eq!(packages.len(), 2, "{d}");
    let mut tracking: Vec<&str> = packages
        .iter()
        .map(|p| p["tracking_number"].as_str().unwrap())
        .collect();
    tracking.sort();
    assert_eq!(tracking, vec!["1Z-ONE", "1Z-TWO"]);
    for p in packages {
        assert!(p["carrier"].as_str().is_some_and(|c| !c.is_empty()), "{p}");
        assert!(p.get("service").is_some(), "{p}");
        let lines = p["lines"].as_array().expect("package lines");
        assert_eq!(lines.len(), 1, "{p}");
        assert!(
            lines[0]["sku"].is_string() && lines[0]["quantity"].is_number(),
            "{p}"
        );
    }
    let one = packages
        .iter()
        .find(|p| p["tracking_number"] == "1Z-ONE")
        .unwrap();
    assert_eq!(one["lines"][0]["sku"], "A");
    assert_eq!(one["lines"][0]["quantity"], 2);
    let lines = d["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2);
    let a = lines.iter().find(|l| l["sku"] == "A").expect("line A");
    assert_eq!(a["quantity"], 2);
    assert_eq!(a["kit_sku"], Value::Null);
    let f = d["store_fulfillments"]
        .as_array()
        .expect("store_fulfillments");
    assert_eq!(f.len(), 1, "{d}");
    let mut ft: Vec<&str> = f[0]["tracking_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    ft.sort();
    assert_eq!(ft, vec!["1Z-ONE", "1Z-TWO"]);
    assert!(f[0]["id"].is_string(), "store id: {f:?}");
    assert!(!f[0]["quantities"].is_null(), "{f:?}");
    let activity = d["activity"].as_array().expect("activity");
    assert!(!activity.is_empty());
    for a in activity {
        assert!(
            is_rfc3339(&a["at"]) && a["kind"].is_string() && a["message"].is_string(),
            "{a}"
        );
    }

    // Detail of the kit shipment: components name their kit.
    let d = ok(&h, "GET", &format!("/api/v1/shipments/{id2}"), None, 200).await;
    let lines = d["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{d}");
    for l in lines {
        assert_eq!(l["kit_sku"], "GIFTSET-01", "{l}");
    }
    let order = h.shopify.sandbox.order(&name2).unwrap();
    assert_eq!(order.fulfillments.len(), 1);
    assert_eq!(order.lines[0].fulfilled_quantity, 2);
    h.shutdown().await;
}

async fn shipment_actions_return_the_shipment(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (number, name) = new_shipment(&mut h, "T-ACT");
    assert_eq!(h.post(&number, Shape::Current).await.unwrap(), 202);
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let id = s["id"].as_str().unwrap().to_string();
    for action in ["reprocess", "reset"] {
        let r = h
            .api("POST", &format!("/api/v1/shipments/{id}/{action}"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{action}: {:?}", r.body);
        assert_eq!(r.body["id"], id.as_str(), "{action} returns the shipment");
        assert!(
            r.body["packages"].is_array() && r.body["activity"].is_array(),
            "{action}: {}",
            r.body
        );
        let s = h
            .wait_shipment(&number, &["completed"], SETTLE)
            .await
            .unwrap();
        assert_eq!(
            s["store_fulfillments"].as_array().unwrap().len(),
            1,
            "{action}"
        );
        assert_eq!(
            h.shopify.sandbox.order(&name).unwrap().fulfillments.len(),
            1,
            "{action} never fulfills twice"
        );
    }
    let r = h
        .api("POST", &format!("/api/v1/shipments/{id}/archive"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["status"], "archived");
    h.settle(SETTLE).await.unwrap();
    let s = ok(&h, "GET", &format!("/api/v1/shipments/{id}"), None, 200).await;
    assert_eq!(s["status"], "archived");
    assert_eq!(
        ids_of(&shipments(&h, "status=archived").await),
        vec![id.clone()]
    );
    h.shutdown().await;
}

fn ids_of(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

async fn archived_shipment_is_not_sent(db_url: String) {
    let mut o = Options::new(db_url);
    o.enable = false;
    let mut h = Harness::start(o).await.expect("harness");
    let (number, name) = new_shipment(&mut h, "T-ARCH");
    assert_eq!(h.post(&number, Shape::Current).await.unwrap(), 202);
    let s = h.wait_shipment(&number, &["new"], SETTLE).await.unwrap();
    let id = s["id"].as_str().unwrap().to_string();
    let a = ok(
        &h,
        "POST",
        &format!("/api/v1/shipments/{id}/archive"),
        None,
        200,
    )
    .await;
    assert_eq!(a["status"], "archived");
    // Switching everything on releases waiting shipments, not archived ones.
    ok(
        &h,
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"enabled": true})),
        200,
    )
    .await;
    ok(
        &h,
        "PATCH",
        &format!("/api/v1/connections/{}/channels/shipments", h.connection_id),
        Some(json!({"enabled": true})),
        200,
    )
    .await;
    h.settle(SETTLE).await.unwrap();
    // A later delivery of the same shipment (another shape) changes nothing.
    assert_eq!(h.post(&number, Shape::Xml).await.unwrap(), 202);
    h.settle(SETTLE).await.unwrap();
    let s = ok(&h, "GET", &format!("/api/v1/shipments/{id}"), None, 200).await;
    assert_eq!(s["status"], "archived", "{s}");
    assert!(
        s["store_fulfillments"].as_array().unwrap().is_empty(),
        "{s}"
    );
    assert!(
        h.shopify
            .sandbox
            .order(&name)
            .unwrap()
            .fulfillments
            .is_empty(),
        "nothing sent"
    );
    // The store did get the other order's shipment: the pipeline was running.
    let (n2, name2) = new_shipment(&mut h, "T-LIVE");
    assert_eq!(h.post(&n2, Shape::Current).await.unwrap(), 202);
    h.wait_shipment(&n2, &["completed"], SETTLE).await.unwrap();
    assert_eq!(
        h.shopify.sandbox.order(&name2).unwrap().fulfillments.len(),
        1
    );
    assert!(
        h.shopify
            .sandbox
            .order(&name)
            .unwrap()
            .fulfillments
            .is_empty()
    );
    h.shutdown().await;
}

// ---------- health and metrics ----------

async fn healthz_and_metrics(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let r = h
        .http
        .get(format!("{}/healthz", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let (number, _) = new_shipment(&mut h, "T-METRICS");
    assert_eq!(h.post(&number, Shape::Current).await.unwrap(), 202);
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let r = h
        .http
        .get(format!("{}/metrics", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    for name in [
        "shipsync_webhooks_received",
        "shipsync_ship_to_store_seconds",
    ] {
        assert!(
            text.lines()
                .any(|l| !l.starts_with('#') && l.starts_with(name)),
            "{name} has samples in:\n{text}"
        );
    }
    h.shutdown().await;
}

both_backends!(
    bearer_token_is_required,
    unknown_ids_are_404,
    create_answers_201_with_prefixed_ids,
    secrets_are_write_only_and_encrypted_at_rest,
    patch_is_a_merge_patch,
    invalid_fields_are_422_naming_the_field,
    delete_merchant_with_connections_is_409,
    webhook_urls_carry_random_per_merchant_keys,
    channels_start_disabled_with_default_schedule,
    shipments_wait_until_connection_and_channel_are_on,
    shipment_filters_and_detail,
    shipment_actions_return_the_shipment,
    archived_shipment_is_not_sent,
    healthz_and_metrics,
);
