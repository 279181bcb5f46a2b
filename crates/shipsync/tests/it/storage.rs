//! Issue 11 §§ 5–6: unsigned webhooks visible as such (`signed`, the UI
//! badge and dashboard warning), shared secrets of at least 16 bytes, key
//! rotation that revokes at once, `webhook-id` trusted only when signed, a
//! tracking URL passed on only when https and signed; what is stored (a
//! header allowlist within 8 KiB, refused deliveries capped per merchant and
//! minute), shown (summaries in lists) and kept (the retention job). Every
//! test runs on SQLite and on PostgreSQL.

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{
    LineSpec, PackageSpec, Shape, ShipmentSpec, Signing, WebhookRequest,
};
use shipsync_testkit::{Harness, Options};

use crate::support::{SETTLE, browser_for, metrics_text};
use crate::ui::Browser;
use crate::webhook::{
    event, events, marker, new_shipment, note, send, send_to, signed, status, wait_events,
};

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

async fn api(h: &Harness, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let a = h.api(method, path, body).await.expect("api");
    (a.status, a.body)
}

/// A signed-in administrator's browser.
async fn admin_browser(h: &Harness) -> Browser {
    browser_for(h, json!({"email": "ops@example.com", "role": "admin"}))
        .await
        .0
}

/// The value of a counter in `/metrics` (0 when absent).
async fn metric(h: &Harness, line_start: &str) -> u64 {
    metrics_text(h)
        .await
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

fn merchant_path(h: &Harness) -> String {
    format!("/api/v1/merchants/{}", h.merchant_id)
}

// ---------- § 5 ----------

async fn unsigned_merchants_show_as_such(db_url: String) {
    let mut o = Options::new(db_url);
    o.shared_secret = None;
    let h = Harness::start(o).await.expect("harness");
    let (_, m) = api(&h, "GET", &merchant_path(&h), None).await;
    assert_eq!(m["shipment_webhooks"]["signed"], false, "{m}");
    let (_, list) = api(&h, "GET", "/api/v1/merchants", None).await;
    assert_eq!(list["items"][0]["shipment_webhooks"]["signed"], false);

    let mut b = admin_browser(&h).await;
    let (st, page) = b.get(&format!("/merchants/{}", h.merchant_id)).await;
    assert_eq!(st, 200);
    assert!(page.contains(r#"class="status unsigned""#), "badge: {page}");
    let (_, dash) = b.get("/").await;
    assert!(
        dash.contains(r#"id="unsigned-webhooks""#),
        "warning: {dash}"
    );
    assert!(dash.contains("Acme Outdoor"), "names the merchant: {dash}");
    let (_, merchants) = b.get("/merchants").await;
    assert!(merchants.contains(r#"class="status unsigned""#));

    let (st, m) = api(
        &h,
        "PATCH",
        &merchant_path(&h),
        Some(json!({"shipment_webhooks": {"shared_secret": "sixteen-bytes-ok"}})),
    )
    .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["shipment_webhooks"]["signed"], true, "{m}");
    let (_, page) = b.get(&format!("/merchants/{}", h.merchant_id)).await;
    assert!(page.contains(r#"class="status signed""#), "badge: {page}");
    assert!(!page.contains(r#"class="status unsigned""#));
    let (_, dash) = b.get("/").await;
    assert!(!dash.contains(r#"id="unsigned-webhooks""#), "{dash}");
    // A read-only field sent back is ignored.
    let (st, _) = api(
        &h,
        "PATCH",
        &merchant_path(&h),
        Some(json!({"shipment_webhooks": {"signed": false}})),
    )
    .await;
    assert_eq!(st, 200);
    h.shutdown().await;
}

async fn short_shared_secrets_are_refused(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let cases: Vec<(String, u16)> = vec![
        ("fifteen-bytes!!".into(), 422),
        ("sixteen-bytes-ok".into(), 200),
        // 15 and 16 bytes once decoded (20 and 24 characters).
        ("whsec_BwcHBwcHBwcHBwcHBwcH".into(), 422),
        ("whsec_BwcHBwcHBwcHBwcHBwcHBw==".into(), 200),
        // Long as text, yet only 3 bytes as a key.
        ("whsec_AAECAAEC".into(), 422),
        ("whsec_!!not base64!!".into(), 422),
    ];
    for (secret, want) in &cases {
        let (st, v) = api(
            &h,
            "PATCH",
            &merchant_path(&h),
            Some(json!({"shipment_webhooks": {"shared_secret": secret}})),
        )
        .await;
        assert_eq!(st, *want, "{secret:?}: {v}");
        if *want == 422 {
            assert_eq!(v["error"]["code"], "invalid_field", "{v}");
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("shared_secret"), "{message}");
        }
    }
    // Creating one is checked the same way.
    let (st, v) = api(
        &h,
        "POST",
        "/api/v1/merchants",
        Some(
            json!({"name": "Short", "warehouse": {"platform": "deposco", "api_url": h.deposco.url},
                    "shipment_webhooks": {"enabled": true, "shared_secret": "fifteen-bytes!!"}}),
        ),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shared_secret")
    );
    h.shutdown().await;
}

async fn rotation_can_revoke_the_old_key_at_once(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let rotate = |q: &'static str, body: Option<Value>| {
        let path = format!("/api/v1/merchants/{}/webhook-key/rotate{q}", h.merchant_id);
        let h = &h;
        async move {
            let (st, m) = api(h, "POST", &path, body).await;
            assert_eq!(st, 200, "{m}");
            m["shipment_webhooks"]["url"].as_str().unwrap().to_string()
        }
    };
    let first = h.webhook_url.clone();
    // Plain rotation: the first key keeps its 24 h grace.
    let second = rotate("", None).await;
    assert_eq!(
        status(&send_to(&h, &first, signed(&h, note("k1"))).await),
        202
    );
    // Revoking: the second key, and the first still in its grace, stop now.
    let third = rotate("", Some(json!({"revoke_old": true}))).await;
    for old in [&first, &second] {
        let r = send_to(&h, old, signed(&h, note("old"))).await;
        assert_eq!(status(&r), 404, "{old}");
    }
    assert_eq!(
        status(&send_to(&h, &third, signed(&h, note("k3"))).await),
        202
    );
    // The query form does the same.
    let fourth = rotate("?revoke_old=true", None).await;
    assert_eq!(
        status(&send_to(&h, &third, signed(&h, note("k3b"))).await),
        404
    );
    assert_eq!(
        status(&send_to(&h, &fourth, signed(&h, note("k4"))).await),
        202
    );
    let (st, v) = api(
        &h,
        "POST",
        &format!("/api/v1/merchants/{}/webhook-key/rotate", h.merchant_id),
        Some(json!({"revoke_old": "yes"})),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    h.shutdown().await;
}

async fn webhook_id_counts_only_when_standard_signed(db_url: String) {
    // Unsigned merchant: a later, different delivery reusing a webhook-id is
    // a new event, not a "repeat" of the first.
    let mut o = Options::new(db_url.clone());
    o.shared_secret = None;
    let h = Harness::start(o).await.expect("harness");
    let first = send(
        &h,
        WebhookRequest::raw(note("first"), "application/json").with_id("msg_same"),
    )
    .await;
    assert_eq!(status(&first), 202);
    let later = send(
        &h,
        WebhookRequest::raw(note("later"), "application/json").with_id("msg_same"),
    )
    .await;
    assert_eq!(status(&later), 202);
    assert_eq!(later.json().unwrap()["status"], "needs_attention");
    assert_ne!(
        later.json().unwrap()["event_id"],
        first.json().unwrap()["event_id"]
    );
    assert_eq!(events(&h, "").await.len(), 2);
    // The same bytes again are still a repeat (by body).
    let again = send(
        &h,
        WebhookRequest::raw(note("later"), "application/json").with_id("msg_other"),
    )
    .await;
    assert_eq!(again.json().unwrap()["status"], "duplicate");
    let key = h
        .settings
        .secret_key
        .as_ref()
        .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned());
    h.shutdown().await;

    // Signed with X-Deposco-Signature, which does not cover webhook-id: the
    // same.
    let mut o = Options::new(db_url);
    o.settings.secret_key = key.map(Into::into);
    let h = Harness::start(o).await.expect("harness");
    let hmac = |tag: &str| {
        WebhookRequest::raw(note(tag), "application/json")
            .signed(h.signing(true))
            .with_header("webhook-id", "msg_hmac")
    };
    let a = send(&h, hmac("a")).await;
    let b = send(&h, hmac("b")).await;
    assert_eq!(status(&a), 202);
    assert_eq!(status(&b), 202);
    assert_ne!(b.json().unwrap()["event_id"], a.json().unwrap()["event_id"]);
    // Standard Webhooks signed: the id is trusted.
    let c = send(&h, signed(&h, note("c")).with_id("msg_std")).await;
    let d = send(&h, signed(&h, note("d")).with_id("msg_std")).await;
    assert_eq!(d.json().unwrap()["status"], "duplicate");
    assert_eq!(d.json().unwrap()["event_id"], c.json().unwrap()["event_id"]);
    h.shutdown().await;
}

/// Repeats sent at the same moment as their original, beside other
/// deliveries, so that they land in the same batch or in batches one
/// after the other: each repeat is answered with its original's event,
/// and only the originals are stored.
async fn repeats_sent_at_once_are_one_event(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let mut requests = Vec::new();
    for round in 0..10 {
        // The same webhook-id with a new body each time (a repeat by its
        // Standard-signed id); the same body under new ids.
        requests.push(signed(&h, note(&format!("same-id-{round}"))).with_id("msg_same"));
        requests.push(signed(&h, note("same-body")).with_id(format!("msg_body_{round}")));
        for other in 0..4 {
            requests.push(signed(&h, note(&format!("other-{round}-{other}"))));
        }
    }
    let answers = futures::future::join_all(requests.into_iter().map(|r| send(&h, r))).await;
    let mut by_tag: std::collections::BTreeMap<usize, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(status(a), 202, "{:?}", a.json());
        let v = a.json().unwrap();
        let (st, id) = (
            v["status"].as_str().unwrap().to_string(),
            v["event_id"].as_str().unwrap().to_string(),
        );
        // 0: the same id, 1: the same body, 2..: all different.
        let tag = if i % 6 < 2 { i % 6 } else { 2 + i };
        by_tag.entry(tag).or_default().push((st, id));
    }
    for (tag, answers) in &by_tag {
        let ids: std::collections::BTreeSet<&str> =
            answers.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids.len(), 1, "tag {tag}: {answers:?}");
        let new = answers.iter().filter(|(st, _)| st != "duplicate").count();
        assert_eq!(
            new, 1,
            "tag {tag}: one original, the rest repeats: {answers:?}"
        );
    }
    assert_eq!(by_tag.len(), 2 + 40);
    assert_eq!(
        events(&h, "").await.len(),
        2 + 40,
        "only the originals stored"
    );
    h.shutdown().await;
}

/// Ships one package with a tracking URL base and an unknown carrier (so
/// the URL would be sent); returns the store's tracking URLs once done.
async fn tracking_urls_for(h: &mut Harness, tag: &str, url: &str) -> Vec<Option<String>> {
    let (name, _) = h.place_order(&[("A", 1)]);
    let mut spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .carrier("Hometown Couriers", "Hometown Next Day")
        .line(LineSpec::new(1, "A", 1))
        .package(PackageSpec::new(format!("C-{tag}"), format!("TRK{tag}")).line(1, 1));
    spec.tracking_url = Some(url.to_string());
    let (number, st) = h.ship(spec, Shape::Current).await.expect("ship");
    assert_eq!(st, 202);
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .expect("completed");
    let order = h.shopify.sandbox.order(&name).expect("order");
    assert_eq!(order.fulfillments.len(), 1);
    order.fulfillments[0].tracking_urls.clone()
}

async fn tracking_url_only_when_https_and_signed(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    assert_eq!(
        tracking_urls_for(&mut h, "1", "https://track.example/?n=").await,
        vec![Some("https://track.example/?n=TRK1".to_string())],
        "https and signed: passed on"
    );
    assert_eq!(
        tracking_urls_for(&mut h, "2", "http://track.example/?n=").await,
        vec![None],
        "http: left out"
    );
    let (st, _) = api(
        &h,
        "PATCH",
        &merchant_path(&h),
        Some(json!({"shipment_webhooks": {"shared_secret": null}})),
    )
    .await;
    assert_eq!(st, 200);
    h.shared_secret = None;
    assert_eq!(
        tracking_urls_for(&mut h, "3", "https://track.example/?n=").await,
        vec![None],
        "unsigned: left out"
    );
    h.shutdown().await;
}

// ---------- § 6 ----------

async fn lists_are_summaries_and_headers_an_allowlist(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let huge = "agent/1.0 ".repeat(2_000);
    let r = send(
        &h,
        signed(&h, note("headers"))
            .with_header("X-Request-Id", "req-42")
            .with_header("X-Custom-Trace", "trace-42")
            .with_header("Authorization", "Bearer should-not-be-stored")
            .with_header("Cookie", "session=should-not-be-stored")
            .with_header("User-Agent", huge.clone()),
    )
    .await;
    assert_eq!(status(&r), 202);
    let id = r.json().unwrap()["event_id"].as_str().unwrap().to_string();
    for e in events(&h, "").await {
        let o = e.as_object().unwrap();
        assert!(!o.contains_key("body") && !o.contains_key("headers"), "{e}");
    }
    let d = event(&h, &id).await;
    assert!(d["body"].is_string(), "{d}");
    let headers = d["headers"].as_array().expect("headers");
    let names: Vec<&str> = headers.iter().map(|p| p[0].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    // What was sent of the allowlist, nothing else (content-length, sent
    // after the huge user agent, no longer fits in the 8 KiB).
    assert_eq!(
        sorted,
        [
            "content-type",
            "user-agent",
            "webhook-id",
            "webhook-timestamp",
            "x-request-id"
        ],
        "{d}"
    );
    let text = d.to_string();
    assert!(!text.contains("should-not-be-stored") && !text.contains("trace-42"));
    assert!(!text.contains("v1,"), "no signature stored: {d}");
    let pool = h.db().await.unwrap().pool().clone();
    let (stored,): (String,) = sqlx::query_as("SELECT headers_json FROM events WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stored.len() <= 8 * 1024, "{} bytes", stored.len());
    assert!(
        stored.contains("agent/1.0"),
        "the user agent, cut: {stored}"
    );
    assert!(stored.len() < huge.len());
    h.shutdown().await;
}

async fn refused_deliveries_are_capped_per_merchant_and_minute(db_url: String) {
    let mut o = Options::new(db_url);
    o.engine.refused_record_per_minute = 3;
    o.settings.webhook_max_bytes = 1024;
    let h = Harness::start(o).await.expect("harness");
    let bad = || {
        WebhookRequest::raw(note("forged"), "application/json").signed(Signing::Standard {
            secret: "not-the-merchant-secret".into(),
        })
    };
    for _ in 0..6 {
        assert_eq!(status(&send(&h, bad()).await), 401);
    }
    for _ in 0..2 {
        let r = send(&h, signed(&h, vec![b' '; 2048])).await;
        assert_eq!(status(&r), 413);
    }
    marker(&h).await;
    let recorded = events(&h, "outcome=invalid_signature").await.len()
        + events(&h, "outcome=too_large").await.len();
    let unrecorded = metric(
        &h,
        "shipsync_webhooks_refused_unrecorded_total{outcome=\"invalid_signature\"}",
    )
    .await
        + metric(
            &h,
            "shipsync_webhooks_refused_unrecorded_total{outcome=\"too_large\"}",
        )
        .await;
    // 3 a minute (6 at most when the sends straddle a minute).
    assert!((3..=6).contains(&recorded), "recorded {recorded}");
    assert_eq!(recorded as u64 + unrecorded, 8, "every refusal counted");
    let received = metric(
        &h,
        "shipsync_webhooks_received_total{outcome=\"invalid_signature\"}",
    )
    .await;
    assert_eq!(received, 6, "all counted as received");
    h.shutdown().await;
}

/// The accepted event that produced shipment `shipment_id`.
async fn event_of(h: &Harness, shipment_id: &str) -> Option<String> {
    events(h, "outcome=accepted")
        .await
        .into_iter()
        .find(|e| {
            e["shipment_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|x| x == shipment_id))
        })
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
}

async fn retention_removes_old_data_but_not_what_open_work_needs(db_url: String) {
    // Everything kept one day: a pass "a day after" a moment of the test
    // removes what came before that moment (rows keep the times they were
    // written at, as they would in use).
    let mut options = Options::new(db_url);
    options.engine.retention = shipsync_engine::Retention {
        event_bodies_days: 1,
        activity_days: 1,
        refused_days: 1,
    };
    let mut h = Harness::start(options).await.expect("harness");
    // Completed shipment (its event, activity and versions may go).
    let (done_number, _) = new_shipment(&mut h, "T-DONE");
    assert_eq!(h.post(&done_number, Shape::Current).await.unwrap(), 202);
    let done = h
        .wait_shipment(&done_number, &["completed"], SETTLE)
        .await
        .unwrap();
    // A shipment whose order the store does not have: never completes.
    let spec = ShipmentSpec::new("NO-SUCH-ORDER")
        .line(LineSpec::new(1, "A", 1))
        .package(PackageSpec::new("C-OPEN", "T-OPEN").line(1, 1));
    let (open_number, st) = h.ship(spec, Shape::Current).await.unwrap();
    assert_eq!(st, 202);
    let open = loop {
        if let Some(s) = h.shipment_by_number(&open_number).await.unwrap() {
            break s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // A refused delivery, and one needing attention.
    let forged =
        WebhookRequest::raw(note("forged"), "application/json").signed(Signing::Standard {
            secret: "not-the-merchant-secret".into(),
        });
    assert_eq!(status(&send(&h, forged.clone()).await), 401);
    let attention = send(&h, signed(&h, note("attention"))).await;
    assert_eq!(status(&attention), 202);
    let attention_id = attention.json().unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = wait_events(&h, "outcome=invalid_signature", 1).await;
    let refused_id = refused[0]["id"].as_str().unwrap().to_string();
    let done_id = done["id"].as_str().unwrap().to_string();
    let open_id = open["id"].as_str().unwrap().to_string();
    let done_event = event_of(&h, &done_id)
        .await
        .expect("event of the completed shipment");
    let open_event = loop {
        if let Some(e) = event_of(&h, &open_id).await {
            break e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    // Everything so far is older than `split`; the pass runs a day after
    // it (a few milliseconds between, on both sides).
    let pool = h.db().await.unwrap().pool().clone();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let split = shipsync_db::now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let a_day_after = split + DAY_MICROS;
    // A recent refused delivery stays.
    assert_eq!(status(&send(&h, forged).await), 401);
    wait_events(&h, "outcome=invalid_signature", 2).await;
    let count = |sql: &'static str, id: String| {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&pool).await.unwrap();
            n
        }
    };
    let versions = "SELECT COUNT(*) FROM shipment_versions WHERE shipment_id = $1";
    let activity = "SELECT COUNT(*) FROM activity WHERE subject_id = $1";
    assert!(count(versions, done_id.clone()).await > 0);
    assert!(count(activity, done_id.clone()).await > 0);

    let engine = h.engine().unwrap();
    let counts = engine
        .apply_retention(a_day_after)
        .await
        .expect("retention");
    assert!(counts.event_bodies >= 1, "{counts:?}");
    assert_eq!(counts.refused_events, 1, "{counts:?}");

    assert_eq!(
        event(&h, &done_event).await["body"],
        Value::Null,
        "old body of a completed shipment"
    );
    assert!(
        event(&h, &open_event).await["body"].is_string(),
        "an open shipment's body stays"
    );
    assert!(
        event(&h, &attention_id).await["body"].is_string(),
        "needs attention: kept to replay"
    );
    let (st, _) = api(&h, "GET", &format!("/api/v1/events/{refused_id}"), None).await;
    assert_eq!(st, 404, "old refused delivery removed");
    assert_eq!(
        events(&h, "outcome=invalid_signature").await.len(),
        1,
        "the recent one stays"
    );
    assert_eq!(count(versions, done_id.clone()).await, 0);
    assert_eq!(count(activity, done_id.clone()).await, 0);
    assert!(
        count(versions, open_id.clone()).await > 0,
        "open shipment's versions stay"
    );
    assert!(
        count(activity, open_id.clone()).await > 0,
        "open shipment's activity stays"
    );
    // The completed shipment still shows its current version.
    let (st, s) = api(&h, "GET", &format!("/api/v1/shipments/{done_id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(s["status"], "completed", "{s}");
    // Replaying a body-less event says why it cannot.
    let (st, v) = api(
        &h,
        "POST",
        &format!("/api/v1/events/{done_event}/replay"),
        None,
    )
    .await;
    assert!(st >= 400, "{v}");

    // Counted in /metrics; a second pass removes nothing more.
    assert!(
        metric(
            &h,
            "shipsync_retention_removed_total{kind=\"event_bodies\"}"
        )
        .await
            >= 1
    );
    assert_eq!(
        metric(
            &h,
            "shipsync_retention_removed_total{kind=\"refused_events\"}"
        )
        .await,
        1
    );
    assert!(metric(&h, "shipsync_retention_removed_total{kind=\"activity\"}").await >= 1);
    assert!(
        metric(
            &h,
            "shipsync_retention_removed_total{kind=\"shipment_versions\"}"
        )
        .await
            >= 1
    );
    let again = engine.apply_retention(a_day_after).await.unwrap();
    assert_eq!(again.event_bodies + again.refused_events, 0, "{again:?}");

    // The daily claim: one caller wins per period.
    let db = h.db().await.unwrap();
    let now = shipsync_db::now_micros();
    assert!(
        !shipsync_db::meta::claim_periodic(&db, "test", now, DAY_MICROS, 0)
            .await
            .unwrap(),
        "first call sets the date"
    );
    assert!(
        shipsync_db::meta::claim_periodic(&db, "test", now, DAY_MICROS, 0)
            .await
            .unwrap()
    );
    assert!(
        !shipsync_db::meta::claim_periodic(&db, "test", now, DAY_MICROS, 0)
            .await
            .unwrap(),
        "claimed already"
    );
    assert!(
        shipsync_db::meta::claim_periodic(&db, "test", now + DAY_MICROS, DAY_MICROS, 0)
            .await
            .unwrap(),
        "next day"
    );
    h.shutdown().await;
}

both_backends!(
    unsigned_merchants_show_as_such,
    short_shared_secrets_are_refused,
    rotation_can_revoke_the_old_key_at_once,
    webhook_id_counts_only_when_standard_signed,
    repeats_sent_at_once_are_one_event,
    tracking_url_only_when_https_and_signed,
    lists_are_summaries_and_headers_an_allowlist,
    refused_deliveries_are_capped_per_merchant_and_minute,
    retention_removes_old_data_but_not_what_open_work_needs,
);
