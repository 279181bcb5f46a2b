//! Credentials never follow a URL a limited user chose: only unlimited
//! principals change where they go (403 `forbidden` naming the field); a
//! change without the credentials clears them and the connection cannot be
//! enabled until they are given (422); non-public targets are refused when
//! saved (422 `private_target`) and when called, unless
//! `SHIPSYNC_ALLOW_PRIVATE_TARGETS` is set; redirects to another host are not
//! followed; Deposco answers are capped; "Test connection" shows a limited
//! user no remote text.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use shipsync_testkit::{Harness, Options, SHOPIFY_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::roles::{call, user_with_token};
use crate::support::{SETTLE, browser_for, user_and_token};

const SETTING: &str = "SHIPSYNC_ALLOW_PRIVATE_TARGETS";

/// What a raw test server answers.
#[derive(Clone)]
enum Reply {
    /// These bytes, then close.
    Fixed(String),
    /// 200 with a chunked body that never ends (until the client leaves).
    Endless,
}

/// A loopback HTTP server answering every request with `reply`; returns its
/// base URL and the number of requests it has read.
async fn raw_server(reply: Reply) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let reply = reply.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                if !read_request(&mut sock).await {
                    return;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                match reply {
                    Reply::Fixed(answer) => {
                        let _ = sock.write_all(answer.as_bytes()).await;
                    }
                    Reply::Endless => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
                        while sock.write_all(chunk.as_bytes()).await.is_ok() {}
                    }
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://127.0.0.1:{}", addr.port()), hits)
}

/// Reads one request (head and `Content-Length` body); false if the
/// connection ended first.
async fn read_request(sock: &mut tokio::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(n) = sock.read(&mut chunk).await else {
            return false;
        };
        if n == 0 {
            return false;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return true;
        }
    }
}

fn fixed(status: &str, headers: &str, body: &str) -> Reply {
    Reply::Fixed(format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// The same sandbox under another host name (localhost instead of
/// 127.0.0.1): a different endpoint that still works.
fn other_host(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Points the merchant's warehouse at `api_url` (password given again) and
/// runs "Test connection".
async fn test_warehouse_at(h: &Harness, api_url: &str) -> shipsync_engine::ConnectionTest {
    let (st, body) = admin(
        h,
        "PATCH",
        &format!("/api/v1/merchants/{}", h.merchant_id),
        Some(json!({"warehouse": {"api_url": api_url, "auth": {"password": "sandbox"}}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    h.engine()
        .expect("engine")
        .test_connection(&h.connection_id)
        .await
        .expect("test")
}

async fn admin(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let a = h.api(method, path, body).await.expect("api");
    (a.status, a.body)
}

/// A Merchant user and a Staff user limited to the harness's merchant may
/// not change any of the four endpoint fields (API and UI); what they may
/// change otherwise still works; an Administrator and unlimited Staff may.
async fn only_unlimited_principals_move_credentials(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let m = h.merchant_id.clone();
    let brand = user_with_token(&h, "brand@example.com", "merchant", Some(&m)).await;
    let (_, limited) = user_and_token(
        &h,
        json!({"email": "limited@example.com", "role": "staff", "merchant_ids": [m]}),
    )
    .await;
    let mpath = format!("/api/v1/merchants/{m}");
    let cpath = format!("/api/v1/connections/{}", h.connection_id);
    let attempts = [
        (
            mpath.as_str(),
            json!({"warehouse": {"api_url": "https://collector.example.com/api"}}),
            "warehouse.api_url",
        ),
        (
            mpath.as_str(),
            json!({"warehouse": {"business_unit": "SOMEONE-ELSE"}}),
            "warehouse.business_unit",
        ),
        (
            mpath.as_str(),
            json!({"warehouse": {"auth": {"type": "oauth", "token_url": "https://collector.example.com/token",
                "client_id": "c", "client_secret": "s", "refresh_token": "r"}}}),
            "warehouse.auth.token_url",
        ),
        (
            cpath.as_str(),
            json!({"store": {"shop_url": "https://collector.example.com"}}),
            "store.shop_url",
        ),
    ];
    for token in [&brand, &limited] {
        for (path, patch, field) in &attempts {
            let (st, body) = call(&h, token, "PATCH", path, Some(patch.clone())).await;
            assert_eq!(st, 403, "{field}: {body}");
            assert_eq!(code(&body), "forbidden", "{body}");
            assert!(message(&body).contains(field), "{field}: {body}");
        }
        // What they could change before still works, the same URL included.
        let (st, body) = call(
            &h,
            token,
            "PATCH",
            &mpath,
            Some(json!({"kit_policy": "first_component", "warehouse": {"api_url": h.deposco.url, "business_unit": "ACME"}})),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        let (st, body) = call(
            &h,
            token,
            "PATCH",
            &cpath,
            Some(json!({"order_prefix": "B-", "store": {"shop_url": h.shopify.url}})),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["store"]["access_token_set"], true, "{body}");
    }
    // Nothing moved, nothing was cleared.
    let (_, now) = admin(&h, "GET", &mpath, None).await;
    assert_eq!(now["warehouse"]["api_url"], h.deposco.url.as_str(), "{now}");
    assert_eq!(now["warehouse"]["business_unit"], "ACME");
    assert_eq!(now["warehouse"]["auth"]["type"], "basic");
    assert_eq!(now["warehouse"]["auth"]["password_set"], true);

    // The UI form: the same refusals, the same edits allowed.
    for user in [
        json!({"email": "brand-ui@example.com", "role": "merchant", "merchant_id": m}),
        json!({"email": "limited-ui@example.com", "role": "staff", "merchant_ids": [m]}),
    ] {
        let (mut b, csrf) = browser_for(&h, user).await;
        let form = |api_url: String, business_unit: &'static str| {
            vec![
                ("csrf", csrf.clone()),
                ("name", "Acme Outdoor".to_string()),
                ("api_url", api_url),
                ("business_unit", business_unit.to_string()),
                ("username", "sandbox".to_string()),
                ("kit_policy", "complete_kits".to_string()),
            ]
        };
        let path = format!("/merchants/{m}");
        let (_, page) = b.get(&path).await;
        assert!(
            page.contains("Only an Administrator can change where the credentials are sent."),
            "{page}"
        );
        for (api_url, bu, field) in [
            (
                "https://collector.example.com/api".to_string(),
                "ACME",
                "warehouse.api_url",
            ),
            (
                h.deposco.url.clone(),
                "SOMEONE-ELSE",
                "warehouse.business_unit",
            ),
        ] {
            let f = form(api_url, bu);
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (st, page) = b.post(&path, &pairs).await;
            assert_eq!(st, 403, "{page}");
            assert!(page.contains(field), "{field}: {page}");
        }
        let f = form(h.deposco.url.clone(), "ACME");
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (st, to) = b.post(&path, &pairs).await;
        assert_eq!(st, 303, "{to}");
        assert!(to.contains("saved="), "{to}");
    }

    // An Administrator and unlimited Staff may, credentials given again.
    let (st, body) = admin(
        &h,
        "PATCH",
        &mpath,
        Some(json!({"warehouse": {"api_url": other_host(&h.deposco.url), "auth": {"password": "sandbox"}}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["warehouse"]["auth"]["password_set"], true, "{body}");
    let staff = user_with_token(&h, "staff@example.com", "staff", None).await;
    let (st, body) = call(
        &h,
        &staff,
        "PATCH",
        &cpath,
        Some(json!({"store": {"shop_url": other_host(&h.shopify.url), "access_token": SHOPIFY_TOKEN}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["store"]["access_token_set"], true, "{body}");
    assert_eq!(body["enabled"], true, "{body}");
    h.shutdown().await;
}

/// Moving an endpoint without the credentials clears them; the connection
/// is switched off and cannot be switched on until they are given.
async fn endpoint_change_without_credentials_clears_them(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let mpath = format!("/api/v1/merchants/{}", h.merchant_id);
    let cpath = format!("/api/v1/connections/{}", h.connection_id);

    // Warehouse side.
    let (st, m) = admin(
        &h,
        "PATCH",
        &mpath,
        Some(json!({"warehouse": {"api_url": other_host(&h.deposco.url)}})),
    )
    .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["warehouse"]["auth"]["password_set"], false, "{m}");
    let (_, c) = admin(&h, "GET", &cpath, None).await;
    assert_eq!(c["enabled"], false, "{c}");
    let (st, body) = admin(&h, "PATCH", &cpath, Some(json!({"enabled": true}))).await;
    assert_eq!(st, 422, "{body}");
    assert!(message(&body).contains("warehouse.auth.password"), "{body}");
    // Other edits of the merchant still work while the password is missing.
    let (st, body) = admin(&h, "PATCH", &mpath, Some(json!({"name": "Acme Two"}))).await;
    assert_eq!(st, 200, "{body}");
    let (st, m) = admin(
        &h,
        "PATCH",
        &mpath,
        Some(json!({"warehouse": {"auth": {"password": "sandbox"}}})),
    )
    .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["warehouse"]["auth"]["password_set"], true, "{m}");
    let (st, body) = admin(&h, "PATCH", &cpath, Some(json!({"enabled": true}))).await;
    assert_eq!(st, 200, "{body}");

    // The business unit is an endpoint too.
    let (_, m) = admin(
        &h,
        "PATCH",
        &mpath,
        Some(json!({"warehouse": {"business_unit": "ACME2"}})),
    )
    .await;
    assert_eq!(m["warehouse"]["auth"]["password_set"], false, "{m}");
    admin(
        &h,
        "PATCH",
        &mpath,
        Some(json!({"warehouse": {"business_unit": "ACME", "auth": {"password": "sandbox"}}})),
    )
    .await;

    // Store side.
    let (st, c) = admin(&h, "PATCH", &cpath, Some(json!({"enabled": true}))).await;
    assert_eq!(st, 200, "{c}");
    let (st, c) = admin(
        &h,
        "PATCH",
        &cpath,
        Some(json!({"store": {"shop_url": other_host(&h.shopify.url)}})),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["store"]["access_token_set"], false, "{c}");
    assert_eq!(c["enabled"], false, "{c}");
    let (st, body) = admin(&h, "PATCH", &cpath, Some(json!({"enabled": true}))).await;
    assert_eq!(st, 422, "{body}");
    assert!(message(&body).contains("store.access_token"), "{body}");
    let (st, c) = admin(
        &h,
        "PATCH",
        &cpath,
        Some(json!({"enabled": true, "store": {"access_token": SHOPIFY_TOKEN}})),
    )
    .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["enabled"], true, "{c}");
    // The store answers with the token given again.
    let tested = h
        .engine()
        .expect("engine")
        .test_connection(&h.connection_id)
        .await
        .expect("test");
    assert!(tested.passed(), "{}", tested.report());
    h.shutdown().await;
}

/// With the setting off, saving a non-public URL answers 422
/// `private_target`, and a run that meets one fails with the same message.
async fn private_targets_refused_without_the_setting(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.settings.allow_private_targets = false;
    h.restart_server().await.expect("restart");
    let mpath = format!("/api/v1/merchants/{}", h.merchant_id);
    let cpath = format!("/api/v1/connections/{}", h.connection_id);
    let refused = |(st, body): (u16, Value), what: &str| {
        assert_eq!(st, 422, "{what}: {body}");
        assert_eq!(code(&body), "private_target", "{what}: {body}");
        assert!(message(&body).contains(SETTING), "{what}: {body}");
    };
    let warehouse = |api_url: &str| {
        json!({"name": "Inside", "warehouse": {"platform": "deposco", "api_url": api_url, "business_unit": "X",
            "auth": {"type": "basic", "username": "u", "password": "p"}}})
    };
    for url in [
        "http://127.0.0.1:5432",
        "http://169.254.169.254/latest",
        "http://localhost:8080/api",
        "http://[::1]:9000/",
        "http://10.1.2.3/",
    ] {
        refused(
            admin(&h, "POST", "/api/v1/merchants", Some(warehouse(url))).await,
            url,
        );
    }
    refused(
        admin(
            &h,
            "PATCH",
            &mpath,
            Some(json!({"warehouse": {"api_url": "http://169.254.169.254/", "auth": {"password": "sandbox"}}})),
        )
        .await,
        "PATCH api_url",
    );
    refused(
        admin(
            &h,
            "PATCH",
            &mpath,
            Some(json!({"warehouse": {"auth": {"type": "oauth", "token_url": "http://127.0.0.1:5432/token",
                "client_id": "c", "client_secret": "s", "refresh_token": "r"}}})),
        )
        .await,
        "PATCH token_url",
    );
    refused(
        admin(
            &h,
            "PATCH",
            &cpath,
            Some(json!({"store": {"shop_url": "http://localhost:1", "access_token": "t"}})),
        )
        .await,
        "PATCH shop_url",
    );
    refused(
        admin(
            &h,
            "POST",
            "/api/v1/connections",
            Some(json!({"name": "Inside", "merchant_id": h.merchant_id,
                "store": {"platform": "shopify", "shop_url": "http://127.0.0.1:5432", "access_token": "t"}})),
        )
        .await,
        "POST connection",
    );
    // A public URL is accepted; what is stored is not checked again on an
    // unrelated edit.
    let (st, body) = admin(
        &h,
        "POST",
        "/api/v1/merchants",
        Some(warehouse("https://8.8.8.8/api")),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = admin(&h, "PATCH", &mpath, Some(json!({"name": "Renamed"}))).await;
    assert_eq!(st, 200, "{body}");

    // The UI: the merchant form and the wizard say the same.
    let (mut b, csrf) = browser_for(&h, json!({"email": "ops@example.com", "role": "admin"})).await;
    let (st, to) = b
        .post(
            &format!("/merchants/{}", h.merchant_id),
            &[
                ("csrf", &csrf),
                ("name", "Acme Outdoor"),
                ("api_url", "http://169.254.169.254/latest"),
                ("business_unit", "ACME"),
                ("username", "sandbox"),
                ("password", "sandbox"),
                ("kit_policy", "complete_kits"),
            ],
        )
        .await;
    assert_eq!(st, 303, "{to}");
    let (_, page) = b.get(&to).await;
    assert!(page.contains(SETTING), "{page}");
    let (st, page) = b
        .post(
            "/connections",
            &[
                ("csrf", &csrf),
                ("action", "test"),
                ("name", "Inside"),
                ("merchant", "existing"),
                ("merchant_id", &h.merchant_id),
                ("shop_url", "http://localhost:5432"),
                ("access_token", "t"),
            ],
        )
        .await;
    assert_eq!(st, 422, "{page}");
    assert!(page.contains(SETTING), "{page}");

    // The stored sandbox URLs are on loopback: a pull fails with the message,
    // and nothing reached the sandbox.
    let before = h.deposco.sandbox.request_count();
    let run = h
        .run_channel("shipments", SETTLE)
        .await
        .expect("run finishes");
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run.to_string().contains(SETTING), "{run}");
    assert_eq!(h.deposco.sandbox.request_count(), before);
    let tested = h
        .engine()
        .expect("engine")
        .test_connection(&h.connection_id)
        .await
        .expect("test");
    assert!(tested.report().contains(SETTING), "{}", tested.report());
    assert_eq!(
        tested.summary(),
        "Shopify: failed (refused by policy); Deposco: failed (refused by policy)"
    );
    h.shutdown().await;
}

/// A redirect to another host is not followed (the credentials stay
/// home); an endless Deposco answer ends in an error, not in memory.
async fn redirects_not_followed_and_answers_capped(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (elsewhere, elsewhere_hits) = raw_server(fixed("200 OK", "", "{\"data\":[]}")).await;
    let (redirector, redirector_hits) = raw_server(fixed(
        "302 Found",
        &format!("location: {}/stolen\r\n", other_host(&elsewhere)),
        "",
    ))
    .await;
    for target in [redirector.clone(), other_host(&redirector)] {
        let tested = test_warehouse_at(&h, &target).await;
        let report = tested.report();
        assert!(!tested.passed(), "{report}");
        assert!(report.contains("302"), "{report}");
    }
    assert!(redirector_hits.load(Ordering::SeqCst) >= 2);
    let followed = elsewhere_hits.load(Ordering::SeqCst);
    assert_eq!(followed, 0, "redirect followed");

    let (endless, _) = raw_server(Reply::Endless).await;
    let report = test_warehouse_at(&h, &endless).await.report();
    assert!(report.contains("larger than"), "{report}");
    h.shutdown().await;
}

/// "Test connection" shows a limited user a status and a classified
/// reason, never what the remote answered; an Administrator sees it all.
async fn scoped_test_connection_shows_no_remote_body(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (store, _) = raw_server(fixed(
        "401 Unauthorized",
        "content-type: text/plain\r\n",
        "TOPSECRET-internal-answer",
    ))
    .await;
    let (st, body) = admin(
        &h,
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"store": {"shop_url": store, "access_token": SHOPIFY_TOKEN}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    for (email, role, sees_body) in [
        ("brand@example.com", "merchant", false),
        ("limited@example.com", "staff", false),
        ("ops@example.com", "admin", true),
    ] {
        let mut user = json!({"email": email, "role": role});
        match role {
            "merchant" => user["merchant_id"] = json!(h.merchant_id),
            "staff" => user["merchant_ids"] = json!([h.merchant_id]),
            _ => {}
        }
        let (mut b, csrf) = browser_for(&h, user).await;
        let (st, to) = b
            .post(
                &format!("/connections/{}/test", h.connection_id),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(st, 303, "{to}");
        let (st, page) = b.get(&to).await;
        assert_eq!(st, 200);
        assert_eq!(page.contains("TOPSECRET"), sees_body, "{role}: {page}");
        if !sees_body {
            assert!(
                page.contains("Shopify: failed (unauthorized); Deposco: ok"),
                "{role}: {page}"
            );
        }
    }
    h.shutdown().await;
}

both_backends!(
    only_unlimited_principals_move_credentials,
    endpoint_change_without_credentials_clears_them,
    private_targets_refused_without_the_setting,
    redirects_not_followed_and_answers_capped,
    scoped_test_connection_shows_no_remote_body,
);
