//! The Deposco webhook endpoint, row by row of the contract's answer table
//! (docs/contract.md, "The Deposco webhook endpoint"), plus key rotation and
//! the event views. Every test runs on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shipsync_sandbox_deposco::{
    LineSpec, PackageSpec, Shape, ShipmentSpec, Signing, WebhookRequest, WebhookResponse,
    sign_body_hmac, sign_standard,
};
use shipsync_testkit::{Harness, Options};
use tokio::io::AsyncWriteExt;

use crate::support::SETTLE;

// ---------- helpers shared with api.rs ----------

/// Sends a delivery to the harness merchant's webhook URL.
pub(crate) async fn send(h: &Harness, req: WebhookRequest) -> WebhookResponse {
    send_to(h, &h.webhook_url, req).await
}

pub(crate) async fn send_to(h: &Harness, url: &str, req: WebhookRequest) -> WebhookResponse {
    h.deposco
        .sandbox
        .send_webhook(url, req)
        .await
        .expect("webhook delivered")
}

pub(crate) fn status(r: &WebhookResponse) -> u16 {
    r.status().expect("not dropped")
}

/// A well-formed JSON body that is not a shipment (unique per `tag`).
pub(crate) fn note(tag: &str) -> Vec<u8> {
    json!({"hello": "world", "tag": tag})
        .to_string()
        .into_bytes()
}

/// A delivery of `body`, signed the way the harness merchant expects.
pub(crate) fn signed(h: &Harness, body: Vec<u8>) -> WebhookRequest {
    WebhookRequest::raw(body, "application/json").signed(h.signing(false))
}

/// Events of the harness merchant; `query` adds filters (e.g. `outcome=accepted`).
pub(crate) async fn events(h: &Harness, query: &str) -> Vec<Value> {
    let path = format!(
        "/api/v1/events?merchant_id={}&limit=500&{query}",
        h.merchant_id
    );
    let list = h
        .api("GET", &path, None)
        .await
        .expect("api")
        .ok(200)
        .expect("events");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Every event of every merchant.
pub(crate) async fn all_events(h: &Harness) -> Vec<Value> {
    let list = h
        .api("GET", "/api/v1/events?limit=500", None)
        .await
        .expect("api")
        .ok(200)
        .expect("events");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Polls until at least `n` events match `query` (refused deliveries are
/// recorded without the sender waiting for it).
pub(crate) async fn wait_events(h: &Harness, query: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let list = events(h, query).await;
        if list.len() >= n {
            return list;
        }
        assert!(
            start.elapsed() < SETTLE,
            "expected {n} events for {query:?}, found {}: {list:?}",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) async fn event(h: &Harness, id: &str) -> Value {
    h.api("GET", &format!("/api/v1/events/{id}"), None)
        .await
        .expect("api")
        .ok(200)
        .expect("event detail")
}

/// Posts a properly signed non-shipment delivery and returns its event id.
/// Deliveries are written in order, so once this one is stored, every
/// earlier refused delivery that was going to be recorded is too: counting
/// events after it proves a negative without sleeping.
pub(crate) async fn marker(h: &Harness) -> String {
    let r = send(
        h,
        signed(h, note(&format!("marker-{}", rand::random::<u64>()))),
    )
    .await;
    assert_eq!(status(&r), 202, "marker: {:?}", r.json());
    r.json().expect("json")["event_id"]
        .as_str()
        .expect("event_id")
        .to_string()
}

/// Places a store order and registers its shipment in the Deposco sandbox
/// (without posting it); returns (Deposco shipment number, store order name).
pub(crate) fn new_shipment(h: &mut Harness, tracking: &str) -> (String, String) {
    let (name, _) = h.place_order(&[("A", 2)]);
    let spec = ShipmentSpec::new(name.trim_start_matches('#'))
        .carrier("UPS", "UPS Ground")
        .line(LineSpec::new(1, "A", 2))
        .package(PackageSpec::new(format!("C-{tracking}"), tracking).line(1, 2));
    let record = h.deposco.sandbox.add_shipment(spec);
    (record.number, name)
}

pub(crate) fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

fn assert_error_shape(v: &Value) {
    assert!(v["error"]["code"].is_string(), "error shape: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error shape: {v}"
    );
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Header value of an event detail's `headers` (a list of `[name, value]`).
fn header_of<'a>(detail: &'a Value, name: &str) -> Option<&'a str> {
    detail["headers"].as_array()?.iter().find_map(|p| {
        (p[0].as_str()?.eq_ignore_ascii_case(name))
            .then(|| p[1].as_str())
            .flatten()
    })
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends raw bytes over TCP and reads one HTTP response (status, body),
/// leaving our side of the request unfinished if `bytes` is.
async fn raw_http(h: &Harness, bytes: &[u8]) -> (u16, String) {
    let addr = h.url().trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    sock.write_all(bytes).await.expect("write");
    let read = async {
        let (status, _, body) = crate::support::read_http_response(&mut sock).await;
        (status, body)
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("the server answered without waiting for the rest of the body")
}

fn webhook_path(h: &Harness) -> String {
    h.webhook_url.trim_start_matches(&h.url()).to_string()
}

// ---------- 404 ----------

async fn unknown_key_is_404_without_event(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    for key in ["whk_doesnotexist", "x", "mer_nope"] {
        let url = format!("{}/webhooks/deposco/{key}", h.url());
        let r = send_to(&h, &url, signed(&h, note("unknown"))).await;
        assert_eq!(status(&r), 404, "{key}");
        let body = r.json().expect("json error");
        assert_error_shape(&body);
    }
    // A key that only shares a prefix with the real one is unknown too.
    let truncated = h.webhook_url[..h.webhook_url.len() - 1].to_string();
    let r = send_to(&h, &truncated, signed(&h, note("truncated"))).await;
    assert_eq!(status(&r), 404);
    let m = marker(&h).await;
    let all = all_events(&h).await;
    assert_eq!(all.len(), 1, "only the marker is recorded: {all:?}");
    assert_eq!(all[0]["id"], m.as_str());
    h.shutdown().await;
}

async fn disabled_webhooks_answer_the_same_404(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let unknown = send_to(
        &h,
        &format!("{}/webhooks/deposco/whk_doesnotexist", h.url()),
        signed(&h, note("a")),
    )
    .await;
    assert_eq!(status(&unknown), 404);
    h.api(
        "PATCH",
        &format!("/api/v1/merchants/{}", h.merchant_id),
        Some(json!({"shipment_webhooks": {"enabled": false}})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    let disabled = send(&h, signed(&h, note("b"))).await;
    assert_eq!(status(&disabled), 404);
    assert_eq!(
        disabled.body(),
        unknown.body(),
        "a disabled merchant's key must not be distinguishable from an unknown key"
    );
    // Enabling again makes the same URL work; nothing was recorded meanwhile.
    h.api(
        "PATCH",
        &format!("/api/v1/merchants/{}", h.merchant_id),
        Some(json!({"shipment_webhooks": {"enabled": true}})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    let m = marker(&h).await;
    let all = all_events(&h).await;
    assert_eq!(all.len(), 1, "only the marker: {all:?}");
    assert_eq!(all[0]["id"], m.as_str());
    h.shutdown().await;
}

// ---------- 413 ----------

const SMALL_LIMIT: usize = 4096;

fn small_limit(db_url: String) -> Options {
    // The shared secret stays: the oversize requests below are unsigned, so
    // 413 also shows that size is checked before the signature.
    let mut o = Options::new(db_url);
    o.settings.webhook_max_bytes = SMALL_LIMIT;
    o
}

async fn too_large_by_content_length(db_url: String) {
    let h = Harness::start(small_limit(db_url)).await.expect("harness");
    // Declares far more than the limit and sends only a little of it: the
    // answer must come from the header alone.
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: shipsync\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"hello\":",
        webhook_path(&h)
    );
    let (code, body) = raw_http(&h, head.as_bytes()).await;
    assert_eq!(code, 413, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json error");
    assert_error_shape(&v);
    let list = wait_events(&h, "outcome=too_large", 1).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["size"], 1_000_000);
    let d = event(&h, list[0]["id"].as_str().unwrap()).await;
    assert_eq!(
        d["body"],
        Value::Null,
        "too_large is stored without body: {d}"
    );
    assert_eq!(d["outcome"], "too_large");
    assert!(
        header_of(&d, "content-length").is_some(),
        "headers kept: {d}"
    );

    // One byte over, sent whole: 413; exactly the limit: accepted.
    let mut over = note("over");
    over.resize(SMALL_LIMIT + 1, b' ');
    let r = send(&h, WebhookRequest::raw(over, "application/json")).await;
    assert_eq!(status(&r), 413);
    let mut exact = note("exact");
    exact.resize(SMALL_LIMIT, b' ');
    let r = send(&h, signed(&h, exact)).await;
    assert_eq!(status(&r), 202, "{:?}", r.json());
    wait_events(&h, "outcome=too_large", 2).await;
    h.shutdown().await;
}

async fn too_large_chunked_without_length(db_url: String) {
    let h = Harness::start(small_limit(db_url)).await.expect("harness");
    // Chunked, no Content-Length, past the limit and never finished (no
    // final 0-chunk): only a server that stops reading can answer.
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: shipsync\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        webhook_path(&h)
    )
    .into_bytes();
    let chunk = vec![b' '; 1000];
    for _ in 0..6 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    let (code, body) = raw_http(&h, &req).await;
    assert_eq!(code, 413, "{body}");
    let list = wait_events(&h, "outcome=too_large", 1).await;
    let d = event(&h, list[0]["id"].as_str().unwrap()).await;
    assert_eq!(d["body"], Value::Null, "{d}");
    assert!(d["size"].as_i64().unwrap() > SMALL_LIMIT as i64, "{d}");
    assert!(header_of(&d, "content-length").is_none());
    h.shutdown().await;
}

// ---------- 401 ----------

async fn bad_signatures_are_401_and_recorded_without_body(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let secret = h
        .shared_secret
        .clone()
        .expect("harness has a shared secret");
    let t = now();
    let cases: Vec<(&str, WebhookRequest)> = vec![
        (
            "missing",
            WebhookRequest::raw(note("missing"), "application/json"),
        ),
        (
            "missing, and the body is not JSON either (signature first)",
            WebhookRequest::raw(b"not json at all".to_vec(), "text/plain"),
        ),
        (
            "wrong secret",
            WebhookRequest::raw(note("wrong"), "application/json").signed(Signing::Standard {
                secret: "another-secret-entirely".into(),
            }),
        ),
        (
            "stale by 6 min",
            signed(&h, note("stale-past")).with_timestamp(t - 360),
        ),
        (
            "6 min in the future",
            signed(&h, note("stale-future")).with_timestamp(t + 360),
        ),
        (
            "empty v1,",
            signed(&h, note("empty")).with_header("webhook-signature", "v1,"),
        ),
        (
            "signed over another body",
            signed(&h, note("tampered"))
                .with_id("msg_tampered")
                .with_timestamp(t)
                .with_header(
                    "webhook-signature",
                    sign_standard(&secret, "msg_tampered", t, &note("original")),
                ),
        ),
        (
            "body HMAC with the wrong secret",
            WebhookRequest::raw(note("hmac-wrong"), "application/json").signed(Signing::BodyHmac {
                secret: "another-secret-entirely".into(),
            }),
        ),
        (
            "body HMAC garbage",
            WebhookRequest::raw(note("hmac-garbage"), "application/json")
                .with_header("x-deposco-signature", "sha256=zz"),
        ),
        (
            "timestamp not a number",
            signed(&h, note("ts-nan")).with_header("webhook-timestamp", "soon"),
        ),
    ];
    let mut sizes = Vec::new();
    for (what, req) in &cases {
        sizes.push(req.body.len() as i64);
        let r = send(&h, req.clone()).await;
        assert_eq!(status(&r), 401, "{what}: {:?}", r.json());
        let v = r.json().expect("json");
        assert_eq!(error_code(&v), "invalid_signature", "{what}: {v}");
        assert_error_shape(&v);
    }
    let list = wait_events(&h, "outcome=invalid_signature", cases.len()).await;
    assert_eq!(list.len(), cases.len());
    for e in &list {
        assert_eq!(e["verified"], false);
        let d = event(&h, e["id"].as_str().unwrap()).await;
        assert_eq!(d["body"], Value::Null, "headers and size only: {d}");
        assert!(sizes.contains(&d["size"].as_i64().unwrap()), "{d}");
        assert!(header_of(&d, "content-type").is_some(), "headers kept: {d}");
        for sig in ["webhook-signature", "x-deposco-signature"] {
            if let Some(v) = header_of(&d, sig) {
                assert!(
                    !v.contains("v1,") && !v.contains("sha256="),
                    "signature header shown unredacted: {d}"
                );
            }
        }
    }
    // A forged delivery must not claim its webhook-id: the genuine one with
    // the same id is a new event, not a repeat of the forgery.
    let forged = WebhookRequest::raw(note("claim"), "application/json")
        .signed(Signing::Standard {
            secret: "another-secret-entirely".into(),
        })
        .with_id("msg_claimed");
    assert_eq!(status(&send(&h, forged).await), 401);
    let genuine = send(&h, signed(&h, note("claim")).with_id("msg_claimed")).await;
    assert_eq!(status(&genuine), 202);
    let id = genuine.json().unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(event(&h, &id).await["outcome"], "needs_attention");
    h.shutdown().await;
}

async fn valid_signature_variants_are_accepted(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let secret = h.shared_secret.clone().unwrap();
    let t = now();
    let hmac_hex = |body: &[u8]| {
        sign_body_hmac(&secret, body)
            .trim_start_matches("sha256=")
            .to_string()
    };
    let body = |tag: &str| note(tag);
    let cases: Vec<(&str, WebhookRequest)> = vec![
        ("standard", signed(&h, body("std"))),
        ("4 min old", signed(&h, body("old")).with_timestamp(t - 240)),
        (
            "4 min ahead",
            signed(&h, body("ahead")).with_timestamp(t + 240),
        ),
        ("several signatures, one valid", {
            let b = body("several");
            let good = sign_standard(&secret, "msg_several", t, &b);
            signed(&h, b)
                .with_id("msg_several")
                .with_timestamp(t)
                .with_header(
                    "webhook-signature",
                    format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,xyz {good}"),
                )
        }),
        (
            "body HMAC sha256=hex",
            WebhookRequest::raw(body("hexp"), "application/json").signed(h.signing(true)),
        ),
        ("body HMAC bare hex", {
            let b = body("hex");
            let sig = hmac_hex(&b);
            WebhookRequest::raw(b, "application/json").with_header("X-Deposco-Signature", sig)
        }),
        ("body HMAC base64", {
            let b = body("b64");
            let sig = base64_encode(&hex_decode(&hmac_hex(&b)));
            WebhookRequest::raw(b, "application/json").with_header("X-Deposco-Signature", sig)
        }),
        ("body HMAC sha256=base64", {
            let b = body("b64p");
            let sig = format!("sha256={}", base64_encode(&hex_decode(&hmac_hex(&b))));
            WebhookRequest::raw(b, "application/json").with_header("X-Deposco-Signature", sig)
        }),
    ];
    let mut ids = Vec::new();
    for (what, req) in cases {
        let r = send(&h, req).await;
        assert_eq!(status(&r), 202, "{what}: {:?}", r.json());
        let id = r.json().unwrap()["event_id"].as_str().unwrap().to_string();
        assert!(!ids.contains(&id), "{what}: each is a new event");
        let e = event(&h, &id).await;
        assert_eq!(e["verified"], true, "{what}: {e}");
        ids.push(id);
    }
    assert!(events(&h, "outcome=invalid_signature").await.is_empty());
    h.shutdown().await;
}

async fn plain_secret_signs_with_its_utf8_bytes(db_url: String) {
    let mut o = Options::new(db_url);
    o.shared_secret = Some("plain-text-secret-123".into());
    let h = Harness::start(o).await.expect("harness");
    assert_eq!(status(&send(&h, signed(&h, note("std"))).await), 202);
    let r = send(
        &h,
        WebhookRequest::raw(note("hmac"), "application/json").signed(h.signing(true)),
    )
    .await;
    assert_eq!(status(&r), 202);
    h.shutdown().await;
}

async fn no_shared_secret_accepts_unsigned(db_url: String) {
    let mut o = Options::new(db_url);
    o.shared_secret = None;
    let mut h = Harness::start(o).await.expect("harness");
    let (number, _) = new_shipment(&mut h, "T-UNSIGNED");
    let req = h
        .deposco
        .sandbox
        .webhook_request(&number, Shape::Current, Signing::None)
        .unwrap();
    let r = send(&h, req).await;
    assert_eq!(status(&r), 202, "{:?}", r.json());
    assert_eq!(r.json().unwrap()["status"], "accepted");
    // A stray signature header is not checked when no secret is set.
    let r = send(
        &h,
        WebhookRequest::raw(note("stray"), "application/json")
            .with_header("webhook-signature", "v1,bm9wZQ=="),
    )
    .await;
    assert_eq!(status(&r), 202);
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    h.shutdown().await;
}

// ---------- 400 ----------

async fn neither_json_nor_xml_is_400_rejected_with_body(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let bodies: Vec<&[u8]> = vec![
        b"this is plain text",
        b"{\"truncated\": ",
        b"<shipment><unclosed>",
    ];
    for b in &bodies {
        let r = send(
            &h,
            signed(&h, b.to_vec()).with_header("content-type", "text/plain"),
        )
        .await;
        assert_eq!(
            status(&r),
            400,
            "{:?}: {:?}",
            String::from_utf8_lossy(b),
            r.json()
        );
        assert_error_shape(&r.json().expect("json"));
    }
    let list = wait_events(&h, "outcome=rejected", bodies.len()).await;
    assert_eq!(list.len(), bodies.len());
    let mut stored: Vec<String> = Vec::new();
    for e in &list {
        let d = event(&h, e["id"].as_str().unwrap()).await;
        assert_eq!(d["verified"], true, "signature was checked first: {d}");
        stored.push(
            d["body"]
                .as_str()
                .expect("rejected keeps its body")
                .to_string(),
        );
    }
    for b in &bodies {
        let text = String::from_utf8_lossy(b).to_string();
        assert!(stored.contains(&text), "{text:?} not in {stored:?}");
    }
    assert!(events(&h, "outcome=accepted").await.is_empty());
    h.shutdown().await;
}

// ---------- 503 ----------

async fn full_ingest_queue_is_503_and_every_202_is_stored(db_url: String) {
    let mut o = Options::new(db_url);
    o.shared_secret = None;
    o.engine.ingest_capacity = 1;
    let h = Harness::start(o).await.expect("harness");
    let mut accepted: Vec<String> = Vec::new();
    let mut unavailable = 0;
    for round in 0..5 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..150 {
            let http = h.http.clone();
            let url = h.webhook_url.clone();
            set.spawn(async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(json!({"flood": round, "i": i}).to_string())
                    .send()
                    .await
                    .expect("send");
                let code = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (code, retry, body)
            });
        }
        while let Some(res) = set.join_next().await {
            let (code, retry, body) = res.unwrap();
            match code {
                202 => accepted.push(body["event_id"].as_str().expect("event_id").to_string()),
                503 => {
                    unavailable += 1;
                    let secs: u64 = retry
                        .expect("503 carries Retry-After")
                        .parse()
                        .expect("seconds");
                    assert!(secs >= 1);
                    assert_error_shape(&body);
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        if unavailable > 0 {
            break;
        }
    }
    assert!(
        unavailable > 0,
        "a queue of 1 under a flood must refuse some"
    );
    assert!(!accepted.is_empty());
    for id in &accepted {
        let d = event(&h, id).await;
        assert_eq!(d["outcome"], "needs_attention");
    }
    // Refused deliveries are not recorded (the sender retries them).
    let all = events(&h, "").await;
    assert_eq!(all.len(), accepted.len());
    h.shutdown().await;
}

async fn database_unavailable_is_503(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let health = h
        .http
        .get(format!("{}/healthz", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    h.engine().unwrap().close().await;
    let r = send(&h, signed(&h, note("down"))).await;
    assert_eq!(status(&r), 503, "{:?}", r.json());
    assert_error_shape(&r.json().expect("json"));
    let retry = h
        .http
        .post(&h.webhook_url)
        .body(note("down-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status().as_u16(), 503);
    assert!(
        retry.headers().get("retry-after").is_some(),
        "503 carries Retry-After"
    );
    let health = h
        .http
        .get(format!("{}/healthz", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    h.shutdown().await;
}

// ---------- repeats ----------

async fn same_webhook_id_is_a_repeat(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (number, name) = new_shipment(&mut h, "T-REPEAT");
    let req = h
        .deposco
        .sandbox
        .webhook_request(&number, Shape::Current, h.signing(false))
        .unwrap()
        .with_id("msg_repeat_1");
    let first = send(&h, req.clone()).await;
    assert_eq!(status(&first), 202);
    let original = first.json().unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();

    // Exactly the same bytes and headers again.
    let again = h
        .deposco
        .sandbox
        .resend_webhook(&h.webhook_url, first.sent().clone())
        .await
        .unwrap();
    assert_eq!(status(&again), 202);
    assert_eq!(again.json().unwrap()["event_id"], original.as_str());
    // Same id, signed afresh and in another shape: still the same delivery.
    let reshaped = h
        .deposco
        .sandbox
        .webhook_request(&number, Shape::Xml, h.signing(false))
        .unwrap()
        .with_id("msg_repeat_1");
    let third = send(&h, reshaped).await;
    assert_eq!(status(&third), 202);
    assert_eq!(third.json().unwrap()["event_id"], original.as_str());

    h.settle(SETTLE).await.unwrap();
    let list = events(&h, "").await;
    assert_eq!(list.len(), 1, "no new event: {list:?}");
    assert_eq!(event(&h, &original).await["repeat_count"], 2);
    let order = h.shopify.sandbox.order(&name).unwrap();
    assert_eq!(order.fulfillments.len(), 1, "no second fulfillment");
    h.shutdown().await;
}

async fn same_body_without_id_is_a_repeat(db_url: String) {
    let mut o = Options::new(db_url);
    o.shared_secret = None;
    let mut h = Harness::start(o).await.expect("harness");
    let (number, name) = new_shipment(&mut h, "T-BODY");
    let body = h.deposco.sandbox.render(&number, Shape::Current).unwrap();
    let r1 = send(&h, WebhookRequest::raw(body.clone(), "application/json")).await;
    assert_eq!(status(&r1), 202);
    let original = r1.json().unwrap()["event_id"].as_str().unwrap().to_string();
    assert!(r1.sent().webhook_id.is_none());
    for n in 1..=2 {
        let r = send(&h, WebhookRequest::raw(body.clone(), "application/json")).await;
        assert_eq!(status(&r), 202);
        assert_eq!(r.json().unwrap()["event_id"], original.as_str());
        assert_eq!(event(&h, &original).await["repeat_count"], n);
    }
    // One byte different is a new delivery.
    let mut changed = body.clone();
    changed.push(b'\n');
    let r = send(&h, WebhookRequest::raw(changed, "application/json")).await;
    assert_eq!(status(&r), 202);
    assert_ne!(r.json().unwrap()["event_id"], original.as_str());
    h.wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    assert_eq!(events(&h, "").await.len(), 2);
    assert_eq!(
        h.shopify.sandbox.order(&name).unwrap().fulfillments.len(),
        1
    );
    h.shutdown().await;
}

// ---------- needs_attention / accepted ----------

async fn not_a_shipment_needs_attention_and_replays(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let body = br#"{"hello":"world"}"#.to_vec();
    let r = send(&h, signed(&h, body.clone())).await;
    assert_eq!(status(&r), 202, "{:?}", r.json());
    let v = r.json().unwrap();
    let id = v["event_id"].as_str().expect("event_id").to_string();
    assert!(id.starts_with("evt_"), "{v}");
    let listed = events(&h, "outcome=needs_attention").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    let d = event(&h, &id).await;
    assert_eq!(d["outcome"], "needs_attention");
    assert_eq!(d["body"], r#"{"hello":"world"}"#, "stored, never dropped");
    assert!(
        d["detail"].as_str().is_some_and(|s| !s.is_empty()),
        "says why: {d}"
    );

    let replay = h
        .api("POST", &format!("/api/v1/events/{id}/replay"), None)
        .await
        .unwrap();
    assert!(replay.status == 202 || replay.status == 200, "{replay:?}");
    h.settle(SETTLE).await.unwrap();
    let d = event(&h, &id).await;
    assert_eq!(d["outcome"], "needs_attention", "still not understood: {d}");
    assert_eq!(d["body"], r#"{"hello":"world"}"#);
    assert!(events(&h, "outcome=accepted").await.is_empty());
    h.shutdown().await;
}

async fn accepted_answers_status_and_event_id(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (number, name) = new_shipment(&mut h, "T-ACCEPT");
    let req = h
        .deposco
        .sandbox
        .webhook_request(&number, Shape::Current, h.signing(false))
        .unwrap();
    let r = send(&h, req).await;
    assert_eq!(status(&r), 202);
    let v = r.json().unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "exactly status and event_id: {v}");
    assert_eq!(v["status"], "accepted");
    let id = v["event_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("evt_") && id.len() > 8, "{id}");
    // Durable before the answer: visible at once.
    let d = event(&h, &id).await;
    assert_eq!(d["outcome"], "accepted");
    assert_eq!(d["verified"], true);
    let s = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    let d = event(&h, &id).await;
    assert_eq!(d["shipment_ids"], json!([s["id"]]), "{d}");
    assert_eq!(
        events(&h, "outcome=accepted").await.len(),
        1,
        "listed under accepted"
    );
    assert_eq!(
        h.shopify.sandbox.order(&name).unwrap().fulfillments.len(),
        1
    );
    // Replaying an accepted delivery merges into the same shipment: nothing new is sent.
    let replay = h
        .api("POST", &format!("/api/v1/events/{id}/replay"), None)
        .await
        .unwrap();
    assert_eq!(replay.status, 202, "{replay:?}");
    h.settle(SETTLE).await.unwrap();
    let again = h
        .wait_shipment(&number, &["completed"], SETTLE)
        .await
        .unwrap();
    assert_eq!(again["id"], s["id"]);
    assert_eq!(
        h.shopify.sandbox.order(&name).unwrap().fulfillments.len(),
        1
    );
    assert_eq!(event(&h, &id).await["outcome"], "accepted");
    h.shutdown().await;
}

// ---------- key rotation ----------

async fn rotated_key_works_and_old_key_keeps_working(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let old_url = h.webhook_url.clone();
    let m = h
        .api(
            "POST",
            &format!("/api/v1/merchants/{}/webhook-key/rotate", h.merchant_id),
            None,
        )
        .await
        .unwrap();
    assert!(m.status == 200 || m.status == 201, "{m:?}");
    let new_url = m.body["shipment_webhooks"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_url, old_url);
    assert!(
        new_url.starts_with(&format!("{}/webhooks/deposco/", h.url())),
        "{new_url}"
    );
    let shown = h
        .api("GET", &format!("/api/v1/merchants/{}", h.merchant_id), None)
        .await
        .unwrap()
        .ok(200)
        .unwrap();
    assert_eq!(shown["shipment_webhooks"]["url"], new_url.as_str());

    let (n1, _) = new_shipment(&mut h, "T-NEWKEY");
    let (n2, _) = new_shipment(&mut h, "T-OLDKEY");
    for (url, number) in [(&new_url, &n1), (&old_url, &n2)] {
        let req = h
            .deposco
            .sandbox
            .webhook_request(number, Shape::Current, h.signing(false))
            .unwrap();
        let r = send_to(&h, url, req).await;
        assert_eq!(status(&r), 202, "{url}: {:?}", r.json());
        assert_eq!(r.json().unwrap()["status"], "accepted");
    }
    h.wait_shipment(&n1, &["completed"], SETTLE).await.unwrap();
    h.wait_shipment(&n2, &["completed"], SETTLE).await.unwrap();

    // A second rotation the same day: every key still in its grace period
    // keeps working, the first one included.
    h.api(
        "POST",
        &format!("/api/v1/merchants/{}/webhook-key/rotate", h.merchant_id),
        None,
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    let (n3, _) = new_shipment(&mut h, "T-FIRSTKEY");
    let (n4, _) = new_shipment(&mut h, "T-SECONDKEY");
    for (url, number) in [(&old_url, &n3), (&new_url, &n4)] {
        let req = h
            .deposco
            .sandbox
            .webhook_request(number, Shape::Current, h.signing(false))
            .unwrap();
        let r = send_to(&h, url, req).await;
        assert_eq!(status(&r), 202, "{url}: {:?}", r.json());
    }
    h.wait_shipment(&n3, &["completed"], SETTLE).await.unwrap();
    h.wait_shipment(&n4, &["completed"], SETTLE).await.unwrap();
    h.shutdown().await;
}

/// The endpoint keeps looked-up merchants for a second, but a change saved
/// on this node applies at once: a new shared secret is required by the
/// very next delivery, the old one refused.
async fn new_shared_secret_applies_at_once(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    // Looked up (and kept) with the first secret.
    let r = send(&h, signed(&h, note("first-secret"))).await;
    assert_eq!(status(&r), 202, "{:?}", r.json());
    let old = h.shared_secret.clone().expect("a shared secret");
    let new = format!("rotated-{}", rand::random::<u64>());
    h.api(
        "PATCH",
        &format!("/api/v1/merchants/{}", h.merchant_id),
        Some(json!({"shipment_webhooks": {"shared_secret": new}})),
    )
    .await
    .unwrap()
    .ok(200)
    .unwrap();
    h.shared_secret = Some(new);
    let r = send(&h, signed(&h, note("new-secret"))).await;
    assert_eq!(status(&r), 202, "the new secret at once: {:?}", r.json());
    h.shared_secret = Some(old);
    let r = send(&h, signed(&h, note("old-secret"))).await;
    assert_eq!(status(&r), 401, "the old secret at once: {:?}", r.json());
    h.shutdown().await;
}

/// The `shipsync_ingest_burst_pauses_total` counter.
async fn burst_pauses(h: &Harness) -> u64 {
    crate::support::metrics_text(h)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("shipsync_ingest_burst_pauses_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Deliveries arriving in a burst make processing step aside (the workers
/// pause), and every delivery answered 202 is still processed once the
/// burst is over: each shipment reaches the store.
async fn processing_pauses_in_a_burst_and_catches_up(db_url: String) {
    let mut o = Options::new(db_url);
    // Any few deliveries at once are a burst.
    o.engine.ingest_burst_per_sec = 10;
    let mut h = Harness::start(o).await.expect("harness");
    let mut numbers = Vec::new();
    // Waves of concurrent deliveries until a worker was seen pausing
    // (bounded: a burst is at most a few hundred milliseconds long).
    for wave in 0..20 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            let (number, _) = new_shipment(&mut h, &format!("T-BURST-{wave}-{i}"));
            let req = h
                .deposco
                .sandbox
                .webhook_request(&number, Shape::Current, h.signing(false))
                .unwrap();
            let sandbox = h.deposco.sandbox.clone();
            let url = h.webhook_url.clone();
            set.spawn(async move { sandbox.send_webhook(&url, req).await.expect("sent") });
            numbers.push(number);
        }
        while let Some(r) = set.join_next().await {
            let r = r.unwrap();
            assert_eq!(status(&r), 202, "{:?}", r.json());
            assert_eq!(r.json().unwrap()["status"], "accepted");
        }
        if burst_pauses(&h).await > 0 {
            break;
        }
    }
    assert!(
        burst_pauses(&h).await > 0,
        "no worker paused during {} deliveries in waves of 20",
        numbers.len()
    );
    for number in &numbers {
        h.wait_shipment(number, &["completed"], SETTLE)
            .await
            .unwrap();
    }
    h.shutdown().await;
}

// ---------- event views ----------

async fn event_detail_shows_raw_body_and_redacted_headers(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let raw = b"{ \"hello\" :\n  \"world\",  \"spacing\": \"kept as sent\" }".to_vec();
    let r = send(
        &h,
        signed(&h, raw.clone())
            .with_header("X-Request-Id", "trace-42")
            .with_header("Authorization", "Bearer should-not-be-stored"),
    )
    .await;
    assert_eq!(status(&r), 202);
    let sent_sig = r.sent().header("webhook-signature").unwrap().to_string();
    let id = r.json().unwrap()["event_id"].as_str().unwrap().to_string();
    let d = event(&h, &id).await;
    assert_eq!(
        d["body"],
        String::from_utf8(raw.clone()).unwrap(),
        "raw bytes, not re-serialised"
    );
    assert_eq!(d["size"], raw.len());
    assert_eq!(header_of(&d, "x-request-id"), Some("trace-42"));
    assert_eq!(header_of(&d, "webhook-id"), r.sent().header("webhook-id"));
    // Signatures are not among the stored headers (issue 11 § 6).
    assert_eq!(header_of(&d, "webhook-signature"), None, "{d}");
    let text = d.to_string();
    assert!(!text.contains(&sent_sig), "signature leaked: {d}");
    assert!(
        !text.contains("should-not-be-stored"),
        "authorization leaked: {d}"
    );

    let r = send(
        &h,
        WebhookRequest::raw(note("hmac"), "application/json").signed(h.signing(true)),
    )
    .await;
    assert_eq!(status(&r), 202);
    let sig = r.sent().header("x-deposco-signature").unwrap().to_string();
    let d = event(&h, r.json().unwrap()["event_id"].as_str().unwrap()).await;
    assert_eq!(header_of(&d, "x-deposco-signature"), None, "{d}");
    assert!(!d.to_string().contains(&sig), "signature leaked: {d}");

    // Non-UTF-8 bytes are kept too (they cannot be JSON or XML: 400, stored).
    let r = send(&h, signed(&h, vec![0xff, 0xfe, 0x00, 0x81])).await;
    assert_eq!(status(&r), 400);
    let list = wait_events(&h, "outcome=rejected", 1).await;
    let d = event(&h, list[0]["id"].as_str().unwrap()).await;
    assert!(d["body"].is_string(), "{d}");
    assert_eq!(d["size"], 4);
    h.shutdown().await;
}

async fn event_list_limits_and_paging(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    for limit in ["501", "0", "-1", "many"] {
        let r = h
            .api("GET", &format!("/api/v1/events?limit={limit}"), None)
            .await
            .unwrap();
        assert_eq!(r.status, 422, "limit={limit}: {:?}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limit")
        );
    }
    let r = h
        .api("GET", "/api/v1/events?outcome=bogus", None)
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outcome")
    );
    assert_eq!(
        h.api("GET", "/api/v1/events?limit=500", None)
            .await
            .unwrap()
            .status,
        200
    );

    let mut sent = Vec::new();
    for i in 0..5 {
        let r = send(&h, signed(&h, note(&format!("page-{i}")))).await;
        assert_eq!(status(&r), 202);
        sent.push(r.json().unwrap()["event_id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/events?merchant_id={}&limit=2", h.merchant_id);
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = h.api("GET", &path, None).await.unwrap().ok(200).unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for e in items {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        assert!(pages <= 5, "paging does not end");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert_eq!(page["next_cursor"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    let mut a = seen.clone();
    a.sort();
    a.dedup();
    assert_eq!(a.len(), 5, "no duplicates across pages: {seen:?}");
    let mut b = sent.clone();
    b.sort();
    assert_eq!(a, b);
    h.shutdown().await;
}

// ---------- odd but legitimate input ----------

async fn content_type_is_not_trusted(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (n1, _) = new_shipment(&mut h, "T-CT-JSON");
    let (n2, _) = new_shipment(&mut h, "T-CT-XML");
    let json_as_text = h
        .deposco
        .sandbox
        .webhook_request(&n1, Shape::Current, h.signing(false))
        .unwrap()
        .with_header("content-type", "text/plain");
    let xml_as_json = h
        .deposco
        .sandbox
        .webhook_request(&n2, Shape::Xml, h.signing(false))
        .unwrap()
        .with_header("content-type", "application/json");
    for req in [json_as_text, xml_as_json] {
        let r = send(&h, req).await;
        assert_eq!(status(&r), 202, "{:?}", r.json());
        assert_eq!(r.json().unwrap()["status"], "accepted");
    }
    h.wait_shipment(&n1, &["completed"], SETTLE).await.unwrap();
    h.wait_shipment(&n2, &["completed"], SETTLE).await.unwrap();
    h.shutdown().await;
}

async fn deeply_nested_body_is_answered_and_kept(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let depth = 100_000;
    let mut body = "[".repeat(depth).into_bytes();
    body.extend(std::iter::repeat_n(b']', depth));
    let r = send(&h, signed(&h, body.clone())).await;
    let code = status(&r);
    assert!(code == 400 || code == 202, "a clear answer, got {code}");
    let all = wait_events(&h, "", 1).await;
    assert_eq!(all[0]["size"], body.len());
    let d = event(&h, all[0]["id"].as_str().unwrap()).await;
    assert_eq!(d["body"].as_str().map(str::len), Some(body.len()), "kept");
    // Still serving.
    marker(&h).await;
    h.shutdown().await;
}

both_backends!(
    content_type_is_not_trusted,
    deeply_nested_body_is_answered_and_kept,
    unknown_key_is_404_without_event,
    disabled_webhooks_answer_the_same_404,
    too_large_by_content_length,
    too_large_chunked_without_length,
    bad_signatures_are_401_and_recorded_without_body,
    valid_signature_variants_are_accepted,
    plain_secret_signs_with_its_utf8_bytes,
    no_shared_secret_accepts_unsigned,
    neither_json_nor_xml_is_400_rejected_with_body,
    full_ingest_queue_is_503_and_every_202_is_stored,
    database_unavailable_is_503,
    same_webhook_id_is_a_repeat,
    same_body_without_id_is_a_repeat,
    not_a_shipment_needs_attention_and_replays,
    accepted_answers_status_and_event_id,
    rotated_key_works_and_old_key_keeps_working,
    new_shared_secret_applies_at_once,
    processing_pauses_in_a_burst_and_catches_up,
    event_detail_shows_raw_body_and_redacted_headers,
    event_list_limits_and_paging,
);
