//! Store authentication since 2026 (issue 12), against the Shopify
//! sandbox's real grants: client credentials refreshed once for many
//! workers, the install flow end to end with every refusal, a revoked
//! token → "reconnect needed", missing scopes reported.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{LineSpec, PackageSpec, Shape, ShipmentSpec};
use shipsync_testkit::{APP_CLIENT_ID, APP_CLIENT_SECRET, Harness, Hop, Options, Session};

use crate::support::{PASSWORD, SETTLE, create_user};

/// The connection as the API shows it.
async fn connection(h: &Harness) -> Value {
    h.api(
        "GET",
        &format!("/api/v1/connections/{}", h.connection_id),
        None,
    )
    .await
    .expect("api")
    .ok(200)
    .expect("connection")
}

async fn use_client_credentials(h: &Harness, secret: &str) {
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"store": {"auth": {
            "type": "client_credentials",
            "client_id": APP_CLIENT_ID,
            "client_secret": secret,
        }}})),
    )
    .await
    .expect("api")
    .ok(200)
    .expect("client credentials set");
}

/// Places `n` one-line orders and ships each by webhook, all at once;
/// returns the Deposco shipment numbers.
async fn ship_many(h: &mut Harness, n: usize) -> Vec<String> {
    let mut specs = Vec::new();
    for i in 0..n {
        let (name, _) = h.place_order(&[("A", 1)]);
        specs.push(
            ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(1, "A", 1))
                .package(PackageSpec::new("C1", format!("T{i}-{name}")).line(1, 1)),
        );
    }
    let h = &*h;
    let sent =
        futures::future::join_all(specs.into_iter().map(|spec| h.ship(spec, Shape::Current))).await;
    sent.into_iter()
        .map(|r| {
            let (number, status) = r.expect("ship");
            assert_eq!(status, 202);
            number
        })
        .collect()
}

async fn all_completed(h: &Harness, numbers: &[String]) {
    for number in numbers {
        let s = h
            .wait_shipment(number, &["completed"], SETTLE)
            .await
            .expect("completed");
        assert_eq!(s["status"], "completed", "{s}");
    }
}

/// The sandbox's token grants of one type (answered 200).
fn grants(h: &Harness, grant_type: &str) -> usize {
    h.shopify
        .sandbox
        .token_requests()
        .iter()
        .filter(|r| r.grant_type == grant_type && r.status == 200)
        .count()
}

/// GraphQL requests the sandbox refused with 401.
fn refused(h: &Harness) -> usize {
    h.shopify
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count()
}

async fn client_credentials_refreshed_once_for_many_workers(db_url: String) {
    // Tokens are the subject here, not the store's cost budget: a bucket
    // large enough that no call waits for it.
    let mut opts = Options::new(db_url);
    opts.shopify_throttle = shipsync_sandbox_shopify::ThrottleConfig {
        maximum_available: 100_000.0,
        restore_rate: 10_000.0,
    };
    let mut h = Harness::start(opts).await.expect("harness");

    h.register_app(3_600, None);
    use_client_credentials(&h, APP_CLIENT_SECRET).await;

    // Many shipments at once: one token for every worker.
    let first = ship_many(&mut h, 8).await;
    all_completed(&h, &first).await;
    assert_eq!(
        grants(&h, "client_credentials"),
        1,
        "one token for all workers"
    );
    let c = connection(&h).await;
    assert_eq!(c["store"]["auth"]["type"], "client_credentials");
    assert_eq!(c["store"]["auth"]["connected"], true);
    assert!(c["store"]["auth"]["expires_at"].is_string(), "{c}");
    assert_eq!(c["store"]["auth"]["client_secret_set"], true);
    assert!(
        c["store"]["auth"].get("client_secret").is_none(),
        "write-only"
    );

    // The store lets the token expire while shipsync still holds it: the
    // 401s of every worker lead to one refresh, and nothing fails.
    h.shopify.sandbox.expire_tokens();
    let second = ship_many(&mut h, 8).await;
    all_completed(&h, &second).await;
    assert_eq!(
        grants(&h, "client_credentials"),
        2,
        "one refresh after the 401s"
    );
    assert!(
        refused(&h) >= 1,
        "the expired token was refused at least once"
    );

    // Eight clients at once that do not share a process's lock (as eight
    // nodes would: "Test connection" builds its own client each time) all
    // meet the 401 together: one of them refreshes, the others wait for it.
    // Some may start after the refresh and never meet it; on a busy
    // machine all but one can: a round is repeated until several met the
    // 401 (each round one refresh, whoever met it).
    let engine = h.engine().expect("engine");
    for round in 1.. {
        h.shopify.sandbox.expire_tokens();
        let refused_before = refused(&h);
        let grants_before = grants(&h, "client_credentials");
        let tests =
            futures::future::join_all((0..8).map(|_| engine.test_connection(&h.connection_id)))
                .await;
        for t in tests {
            let t = t.expect("tested");
            assert!(t.store.is_ok(), "{}", t.report());
        }
        assert_eq!(
            grants(&h, "client_credentials"),
            grants_before + 1,
            "one refresh for eight clients (round {round})"
        );
        if refused(&h) >= refused_before + 2 {
            break;
        }
        assert!(
            round < 10,
            "in 10 rounds of eight clients, never did several meet the 401"
        );
    }

    // Short-lived tokens: refreshed ahead of their expiry, without a 401.
    h.register_app(2, None);
    h.shopify.sandbox.expire_tokens();
    let third = ship_many(&mut h, 4).await;
    all_completed(&h, &third).await;
    let before = (grants(&h, "client_credentials"), refused(&h));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let fourth = ship_many(&mut h, 4).await;
    all_completed(&h, &fourth).await;
    assert_eq!(
        grants(&h, "client_credentials"),
        before.0 + 1,
        "one refresh ahead of use"
    );
    assert_eq!(
        refused(&h),
        before.1,
        "no 401 when the token is refreshed ahead"
    );

    let errors = h
        .api(
            "GET",
            &format!(
                "/api/v1/shipments?merchant_id={}&status=error",
                h.merchant_id
            ),
            None,
        )
        .await
        .expect("api")
        .ok(200)
        .expect("list");
    assert_eq!(
        errors["items"].as_array().map(Vec::len),
        Some(0),
        "{errors}"
    );
    h.shutdown().await;
}

/// The callback URL `hop` leads to, with `name` set to `value` (the hmac
/// recomputed with `secret` when given, else left as it was).
fn altered(callback: &str, name: &str, value: &str, secret: Option<&str>) -> String {
    let url = url::Url::parse(callback).expect("callback URL");
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    for (k, v) in &mut pairs {
        if k == name {
            *v = value.to_string();
        }
    }
    if let Some(secret) = secret {
        let mut rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "hmac").collect();
        rest.sort();
        let message = rest
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mac = hmac_hex(secret, &message);
        for (k, v) in &mut pairs {
            if k == "hmac" {
                v.clone_from(&mac);
            }
        }
    }
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(&pairs);
    out.to_string()
}

fn hmac_hex(secret: &str, message: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Clicks Connect to Shopify and lets the store approve: the callback URL
/// Shopify sends the browser to (not followed).
async fn approved_callback(h: &Harness, session: &mut Session) -> String {
    let csrf = session.csrf.clone();
    let clicked = session
        .post(
            &format!("/connections/{}/authorize", h.connection_id),
            &[("csrf", &csrf)],
        )
        .await
        .expect("click");
    assert_eq!(clicked.status, 303, "{clicked:?}");
    assert!(clicked.location.starts_with(&h.shopify.url), "{clicked:?}");
    let link = url::Url::parse(&clicked.location).expect("authorize URL");
    let q: Vec<(String, String)> = link.query_pairs().into_owned().collect();
    assert!(q.contains(&("client_id".into(), APP_CLIENT_ID.into())));
    let scope = q
        .iter()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for needed in ["read_orders", "write_merchant_managed_fulfillment_orders"] {
        assert!(scope.split(',').any(|s| s == needed), "{scope}");
    }
    let approved = session.get(&clicked.location).await.expect("approve");
    assert_eq!(approved.status, 302, "{approved:?}");
    approved.location
}

fn refused_page(hop: &Hop, words: &str) {
    assert_eq!(hop.status, 400, "{hop:?}");
    assert!(
        hop.body.contains(words),
        "expected {words:?} in {}",
        hop.body
    );
    assert!(hop.body.contains("Nothing was stored"), "{}", hop.body);
}

async fn signed_in_admin(h: &Harness, email: &str) -> Session {
    create_user(h, json!({"email": email, "role": "admin"})).await;
    Session::sign_in(&h.url(), email, PASSWORD)
        .await
        .expect("sign in")
}

async fn install_flow_end_to_end(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.register_app(86_399, None);
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"store": {"auth": {
            "type": "authorization_code",
            "client_id": APP_CLIENT_ID,
            "client_secret": APP_CLIENT_SECRET,
        }}})),
    )
    .await
    .expect("api")
    .ok(200)
    .expect("authorization code set");
    assert_eq!(connection(&h).await["store"]["auth"]["connected"], false);

    // The API gives the link too (409 for another way of authenticating
    // is covered below).
    let link = h
        .api(
            "POST",
            &format!("/api/v1/connections/{}/store/authorize", h.connection_id),
            None,
        )
        .await
        .expect("api")
        .ok(200)
        .expect("authorize");
    assert!(
        link["authorize_url"]
            .as_str()
            .unwrap_or("")
            .contains("/admin/oauth/authorize?"),
        "{link}"
    );

    let mut alice = signed_in_admin(&h, "alice@example.com").await;
    let mut bob = signed_in_admin(&h, "bob@example.com").await;
    let good = approved_callback(&h, &mut alice).await;
    let nothing_stored = |c: &Value| c["store"]["auth"]["connected"] == false;

    // A tampered hmac.
    let flipped = {
        let url = url::Url::parse(&good).expect("url");
        let mac = url
            .query_pairs()
            .find(|(k, _)| k == "hmac")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let first = if mac.starts_with('0') { "1" } else { "0" };
        altered(&good, "hmac", &format!("{first}{}", &mac[1..]), None)
    };
    refused_page(&alice.get(&flipped).await.expect("get"), "signature");
    // Another shop's callback, correctly signed.
    refused_page(
        &alice
            .get(&altered(
                &good,
                "shop",
                "evil.myshopify.com",
                Some(APP_CLIENT_SECRET),
            ))
            .await
            .expect("get"),
        "names shop",
    );
    // A state bound to another user.
    let bobs = approved_callback(&h, &mut bob).await;
    refused_page(&alice.get(&bobs).await.expect("get"), "another user");
    // An unknown state.
    refused_page(
        &alice
            .get(&altered(
                &good,
                "state",
                "st_forged",
                Some(APP_CLIENT_SECRET),
            ))
            .await
            .expect("get"),
        "unknown",
    );
    assert!(nothing_stored(&connection(&h).await));
    assert_eq!(grants(&h, "authorization_code"), 0, "no code exchanged");

    // The real callback: connected, back on the connection's page.
    let done = alice.get(&good).await.expect("callback");
    assert_eq!(done.status, 303, "{done:?}");
    assert!(
        done.location
            .starts_with(&format!("/connections/{}?saved=", h.connection_id)),
        "{done:?}"
    );
    let page = alice.get(&done.location).await.expect("page");
    assert!(page.body.contains("Connected to Shopify"), "{}", page.body);
    let c = connection(&h).await;
    assert_eq!(c["store"]["auth"]["connected"], true, "{c}");
    assert_eq!(c["store_status"], "ok");
    assert!(
        c["store"]["auth"]["scopes"].as_array().is_some_and(|s| s
            .iter()
            .any(|x| x == "write_merchant_managed_fulfillment_orders")),
        "{c}"
    );
    assert_eq!(c["store"]["auth"]["missing_scopes"], json!([]));
    assert_eq!(grants(&h, "authorization_code"), 1);

    // Reused state: refused, nothing more exchanged.
    refused_page(&alice.get(&good).await.expect("get"), "already used");
    assert_eq!(grants(&h, "authorization_code"), 1);

    // The token works.
    let numbers = ship_many(&mut h, 2).await;
    all_completed(&h, &numbers).await;

    // A legacy connection has no install link.
    h.api(
        "PATCH",
        &format!("/api/v1/connections/{}", h.connection_id),
        Some(json!({"store": {"access_token": shipsync_testkit::SHOPIFY_TOKEN}})),
    )
    .await
    .expect("api")
    .ok(200)
    .expect("back to the legacy token");
    let refused = h
        .api(
            "POST",
            &format!("/api/v1/connections/{}/store/authorize", h.connection_id),
            None,
        )
        .await
        .expect("api");
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    h.shutdown().await;
}

async fn revoked_token_needs_reconnect(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.register_app(86_399, None);
    let installed = h.connect_by_install().await.expect("install");
    assert_eq!(installed.status, 303, "{installed:?}");
    let numbers = ship_many(&mut h, 1).await;
    all_completed(&h, &numbers).await;

    // The merchant uninstalls the app: its token is refused.
    h.shopify.sandbox.revoke_tokens();
    let waiting = ship_many(&mut h, 2).await;
    for number in &waiting {
        let s = h
            .wait_shipment(number, &["new", "error"], SETTLE)
            .await
            .expect("settled");
        assert_eq!(s["status"], "new", "waits, does not fail: {s}");
        assert!(
            s["error"]
                .as_str()
                .unwrap_or("")
                .contains("needs reconnecting"),
            "{s}"
        );
    }
    let c = connection(&h).await;
    assert_eq!(c["store_status"], "reconnect_needed", "{c}");
    assert!(
        c["store_error"].as_str().unwrap_or("").contains("401"),
        "{c}"
    );
    // Not endless retries: the store is not asked again while it waits.
    let asked = h.shopify.sandbox.requests().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.idle().await.expect("idle"), "no job left running");
    assert_eq!(h.shopify.sandbox.requests().len(), asked);

    // Reconnected with the install flow: what waited goes out.
    let again = h.connect_by_install().await.expect("install again");
    assert_eq!(again.status, 303, "{again:?}");
    all_completed(&h, &waiting).await;
    assert_eq!(connection(&h).await["store_status"], "ok");
    h.shutdown().await;
}

async fn wrong_client_secret_then_fixed(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.register_app(3_600, None);
    use_client_credentials(&h, "not-the-secret-at-all").await;
    let numbers = ship_many(&mut h, 1).await;
    let s = h
        .wait_shipment(&numbers[0], &["new", "error"], SETTLE)
        .await
        .expect("settled");
    let deadline = Instant::now() + SETTLE;
    let mut c = connection(&h).await;
    while c["store_status"] != "reconnect_needed" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c = connection(&h).await;
    }
    assert_eq!(c["store_status"], "reconnect_needed", "{c} / {s}");
    assert!(
        c["store_error"]
            .as_str()
            .unwrap_or("")
            .contains("refused the app's credentials"),
        "{c}"
    );
    // Given again, right: the connection is tried again and the shipment goes out.
    use_client_credentials(&h, APP_CLIENT_SECRET).await;
    all_completed(&h, &numbers).await;
    assert_eq!(connection(&h).await["store_status"], "ok");
    h.shutdown().await;
}

async fn missing_scopes_reported(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    h.register_app(86_399, Some(vec!["read_orders".into()]));
    let installed = h.connect_by_install().await.expect("install");
    assert_eq!(installed.status, 303, "{installed:?}");
    let c = connection(&h).await;
    assert_eq!(c["store"]["auth"]["scopes"], json!(["read_orders"]), "{c}");
    assert_eq!(
        c["store"]["auth"]["missing_scopes"],
        json!([
            "read_merchant_managed_fulfillment_orders",
            "write_merchant_managed_fulfillment_orders"
        ]),
        "the Shipments channel is on: {c}"
    );
    // Test connection says so too.
    let mut admin = Session::sign_in(
        &h.url(),
        "installer@example.com",
        "a long installer password",
    )
    .await
    .expect("sign in");
    let csrf = admin.csrf.clone();
    let tested = admin
        .post(
            &format!("/connections/{}/test", h.connection_id),
            &[("csrf", &csrf)],
        )
        .await
        .expect("test");
    assert_eq!(tested.status, 303, "{tested:?}");
    let page = admin.get(&tested.location).await.expect("page");
    assert!(
        page.body.contains(
            "missing scopes for the enabled channels: read_merchant_managed_fulfillment_orders"
        ),
        "{}",
        page.body
    );
    h.shutdown().await;
}

both_backends!(
    client_credentials_refreshed_once_for_many_workers,
    install_flow_end_to_end,
    revoked_token_needs_reconnect,
    wrong_client_secret_then_fixed,
    missing_scopes_reported,
);
