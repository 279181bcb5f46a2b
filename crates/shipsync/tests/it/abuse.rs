//! Abuse from one client cannot stall the server for the others: guessed
//! sign-ins and bearer tokens are throttled per client address (sign-ins
//! per email too) with 429 `too_many_attempts`; Argon2id runs off the async
//! runtime, so a login flood leaves webhooks answered; idle and trickling
//! connections are capped per client and closed by the header, idle and
//! body timeouts. Clients take other loopback addresses (127.0.0.x) by
//! binding their sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shipsync_sandbox_deposco::Shape;
use shipsync_testkit::{Harness, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    SETTLE, client_from, connect_from, create_user, read_http_response, server_addr, sign_in_form,
};

/// A bound on answers that take milliseconds on an idle server: generous
/// for a loaded machine, far below the stalls it guards against.
const PROMPT: Duration = Duration::from_secs(3);

/// A browser at one client address, holding the sign-in form's cookie and
/// CSRF token.
#[derive(Clone)]
struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

type Answer = (u16, Option<String>, String);

impl Browser {
    async fn at(h: &Harness, from: &str) -> Self {
        let client = client_from(from, None);
        let base = h.url();
        let (cookie, csrf) = sign_in_form(&client, &base).await;
        Self {
            client,
            base,
            cookie,
            csrf,
        }
    }

    /// One sign-in (asking for JSON or not): status, `Retry-After`, body.
    async fn sign_in(&self, email: &str, password: &str, json: bool) -> Answer {
        let mut req = self
            .client
            .post(format!("{}/login", self.base))
            .header("cookie", &self.cookie)
            .form(&[
                ("csrf", self.csrf.as_str()),
                ("email", email),
                ("password", password),
            ]);
        if json {
            req = req.header("accept", "application/json");
        }
        let r = req.send().await.expect("POST /login");
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, retry, r.text().await.expect("body"))
    }
}

/// A 429 `too_many_attempts` with `Retry-After`, as JSON or as the sign-in
/// page.
fn assert_too_many(answer: &Answer) {
    let (status, retry, body) = answer;
    assert_eq!(*status, 429, "{body}");
    let secs: u64 = retry
        .as_deref()
        .expect("429 carries Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(secs >= 1, "Retry-After: {secs}");
    match serde_json::from_str::<Value>(body) {
        Ok(v) => assert_eq!(v["error"]["code"], "too_many_attempts", "{v}"),
        Err(_) => assert!(
            body.contains("data-code=\"too_many_attempts\""),
            "the sign-in page names the refusal: {body}"
        ),
    }
}

async fn create_admin(h: &Harness, email: &str) {
    create_user(h, json!({"email": email, "role": "admin"})).await;
}

/// Failed sign-ins from `from` for `email` until refused; returns the
/// number of failures before the first 429 (at most 10, the contract's).
async fn fail_until_refused(h: &Harness, from: &str, email: &str) -> usize {
    let b = Browser::at(h, from).await;
    for failures in 0..=10 {
        let answer = b
            .sign_in(email, "not the password", failures % 2 == 0)
            .await;
        if answer.0 == 429 {
            assert_too_many(&answer);
            // Refused either way it is asked.
            for json in [true, false] {
                assert_too_many(&b.sign_in(email, "not the password", json).await);
            }
            return failures;
        }
        assert_eq!(answer.0, 303, "a wrong password: {}", answer.2);
    }
    panic!("11 failed sign-ins from {from} for {email} were never refused");
}

async fn failed_sign_ins_from_one_address_are_refused_alike_for_known_and_unknown_emails(
    db_url: String,
) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    create_admin(&h, "ops@example.com").await;
    let known = fail_until_refused(&h, "127.0.0.5", "ops@example.com").await;
    let unknown = fail_until_refused(&h, "127.0.0.6", "nobody@example.com").await;
    assert_eq!(
        known, unknown,
        "the same answer for known and unknown emails"
    );
    // Locked out, even the right password is refused, the same way.
    let b = Browser::at(&h, "127.0.0.5").await;
    assert_too_many(&b.sign_in("ops@example.com", "a long password", false).await);
    // Other addresses and other emails are not affected.
    create_admin(&h, "staff@example.com").await;
    let b = Browser::at(&h, "127.0.0.9").await;
    let (status, _, body) = b
        .sign_in("staff@example.com", "a long password", false)
        .await;
    assert_eq!(status, 303, "{body}");
    h.shutdown().await;
}

async fn failed_sign_ins_for_one_email_from_many_addresses_are_refused(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    create_admin(&h, "victim@example.com").await;
    let mut refused_after = None;
    for i in 0..=10 {
        let b = Browser::at(&h, &format!("127.0.0.{}", 10 + i)).await;
        let answer = b
            .sign_in("victim@example.com", "not the password", false)
            .await;
        if answer.0 == 429 {
            assert_too_many(&answer);
            refused_after = Some(i);
            break;
        }
        assert_eq!(answer.0, 303, "{}", answer.2);
    }
    assert!(
        refused_after.is_some(),
        "11 failures for one email from 11 addresses were never refused"
    );
    // The email is locked from a fresh address too, right password or not;
    // that address may still sign in with another email.
    let b = Browser::at(&h, "127.0.0.40").await;
    assert_too_many(
        &b.sign_in(" Victim@Example.com", "a long password", true)
            .await,
    );
    let (status, _, body) = b
        .sign_in("someone@example.com", "not the password", false)
        .await;
    assert_eq!(status, 303, "{body}");
    h.shutdown().await;
}

async fn failed_bearer_tokens_are_refused_and_webhooks_are_not_throttled(db_url: String) {
    let mut o = Options::new(db_url);
    o.shared_secret = None;
    let h = Harness::start(o).await.expect("harness");
    let c = client_from("127.0.0.7", None);
    let url = format!("{}/api/v1/merchants", h.url());
    let mut refused = None;
    for i in 0..=50 {
        let r = c
            .get(&url)
            .bearer_auth(format!("sst_guess{i}"))
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.text().await.expect("body");
        match status {
            401 => {}
            429 => {
                refused = Some((status, retry, body));
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let refused = refused.expect("51 failed bearer tokens from one address were never refused");
    assert_too_many(&refused);
    // The address is locked out, whatever the token; others are not.
    let r = c
        .get(&url)
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 429);
    h.api("GET", "/api/v1/merchants", None)
        .await
        .expect("api")
        .ok(200)
        .expect("another address is served");
    // The webhook route (its key in the URL, no bearer token) is not
    // throttled, even from the locked address.
    let r = c
        .post(&h.webhook_url)
        .header("content-type", "application/json")
        .body(json!({"from": "a locked address"}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 202);
    h.shutdown().await;
}

/// Posts a signed shipment webhook from 127.0.0.1; returns how long the
/// 202 took.
async fn timed_webhook(h: &mut Harness, n: usize) -> Duration {
    let (number, _) = crate::webhook::new_shipment(h, &format!("1ZFLOOD{n:04}"));
    let started = Instant::now();
    let status = h.post(&number, Shape::Current).await.expect("post");
    let took = started.elapsed();
    assert_eq!(status, 202);
    took
}

async fn a_login_flood_does_not_delay_webhooks(db_url: String) {
    let mut h = Harness::start(Options::new(db_url)).await.expect("harness");
    let quiet = timed_webhook(&mut h, 0).await;

    // 400 sign-ins at a time, from 200 addresses (so that the per-address
    // limit lets 1,000 of them through): each one is an Argon2id check.
    let stop = Arc::new(AtomicBool::new(false));
    let mut browsers = Vec::new();
    for a in 0..200 {
        browsers.push(Browser::at(&h, &format!("127.0.1.{}", a + 1)).await);
    }
    let mut flooders = Vec::new();
    for (a, b) in browsers.into_iter().enumerate() {
        for t in 0..2 {
            let (b, stop) = (b.clone(), stop.clone());
            flooders.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let email = format!("flood{a}-{t}-{i}@example.com");
                    statuses.push(b.sign_in(&email, "guess", false).await.0);
                    i += 1;
                }
                statuses
            }));
        }
    }
    // The flood is on once some sign-ins have been checked.
    let flood_started = Instant::now();
    let engine = h.engine().expect("engine").clone();
    tokio::time::timeout(SETTLE, async {
        while engine.passwords().busy() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the flood keeps the password workers busy");
    let mut during = Vec::new();
    for n in 1..=5 {
        during.push(timed_webhook(&mut h, n).await);
    }
    let busy_at_end = engine.passwords().busy();
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for f in flooders {
        statuses.extend(f.await.expect("flooder"));
    }
    let flood_secs = flood_started.elapsed().as_secs_f64();
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    eprintln!(
        "login flood: {} sign-ins in {flood_secs:.1} s: {} checked (303, {:.0}/s), {} refused busy (503), {} throttled (429); webhook 202 in {quiet:?} before, {during:?} during",
        statuses.len(),
        count(303),
        count(303) as f64 / flood_secs,
        count(503),
        count(429),
    );
    assert!(
        busy_at_end > 0,
        "the flood ran while the webhooks were posted"
    );
    assert!(
        statuses.iter().all(|s| [303, 429, 503].contains(s)),
        "{statuses:?}"
    );
    for took in during {
        assert!(took < PROMPT, "a webhook took {took:?} during the flood");
    }
    h.shutdown().await;
}

async fn idle_and_trickling_connections_from_one_address_leave_room_for_others(db_url: String) {
    let mut o = Options::new(db_url);
    // Below the 1,000 connections below, so that one client could fill it
    // without the per-client cap (256 by default).
    o.settings.max_connections = 512;
    // Long enough for the 1,000 connections below to be open at once on a
    // busy machine (with 2 s, a CI run on a loaded machine saw the first
    // ones closed, their places taken by later ones, before the last
    // connected).
    o.settings.header_timeout = Duration::from_secs(6);
    o.settings.idle_timeout = Duration::from_secs(7);
    let mut h = Harness::start(o).await.expect("harness");
    let addr = server_addr(&h);

    // 1,000 connections from 127.0.0.2: half send nothing, half trickle a
    // request head a header line at a time and never finish it.
    let mut conns = Vec::new();
    for i in 0..1000 {
        let mut sock = connect_from("127.0.0.2", addr).await;
        if i % 2 == 1 {
            let _ = sock
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: shipsync\r\n")
                .await;
        }
        conns.push(sock);
    }
    let (readers, mut writers): (Vec<_>, Vec<_>) =
        conns.into_iter().map(TcpStream::into_split).unzip();
    let trickle = tokio::spawn(async move {
        for n in 0.. {
            let mut open = 0;
            for (i, w) in writers.iter_mut().enumerate() {
                if i % 2 == 1
                    && w.write_all(format!("x-{n}: 1\r\n").as_bytes())
                        .await
                        .is_ok()
                {
                    open += 1;
                }
            }
            if open == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    // Others are answered at once, on new connections: health and a signed
    // webhook.
    let fresh = client_from("127.0.0.1", None);
    let started = Instant::now();
    let healthz = tokio::time::timeout(PROMPT, fresh.get(format!("{}/healthz", h.url())).send())
        .await
        .expect("/healthz answered at once")
        .expect("/healthz");
    assert_eq!(healthz.status().as_u16(), 200);
    let health_took = started.elapsed();
    let took = tokio::time::timeout(PROMPT, timed_webhook(&mut h, 1))
        .await
        .expect("the webhook answered at once");
    eprintln!(
        "1,000 idle/trickling connections from 127.0.0.2: /healthz 200 in {health_took:?}, webhook 202 in {took:?}"
    );
    assert!(took < PROMPT, "{took:?}");

    // Past 256, 127.0.0.2's connections were refused (503, closed); the
    // others are closed by the header timeout, idle or trickling.
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut refused = 0;
    for mut r in readers {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout_at(deadline, r.read_to_end(&mut buf))
            .await
            .expect("every connection of 127.0.0.2 is closed");
        if buf.starts_with(b"HTTP/1.1 503 ") {
            refused += 1;
        }
    }
    assert!(
        refused >= 1000 - 256,
        "{refused} connections refused: at most 256 are served per client"
    );
    trickle.abort();

    // Their places are given back: 127.0.0.2 is served again.
    let served = async {
        loop {
            let mut sock = connect_from("127.0.0.2", addr).await;
            sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: shipsync\r\n\r\n")
                .await
                .expect("write");
            if read_http_response(&mut sock).await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(SETTLE, served)
        .await
        .expect("127.0.0.2 served again");
    h.shutdown().await;
}

/// Reads until the server closes the connection (guarded against a hang).
async fn closed_by_server(sock: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    tokio::time::timeout(SETTLE, async {
        let mut chunk = [0u8; 4096];
        loop {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server closed the connection");
    buf
}

async fn short_timeouts_close_idle_connections_and_slow_bodies_get_408(db_url: String) {
    let mut o = Options::new(db_url);
    o.shared_secret = None;
    o.settings.header_timeout = Duration::from_secs(1);
    o.settings.idle_timeout = Duration::from_secs(2);
    o.settings.body_timeout = Duration::from_secs(4);
    let h = Harness::start(o).await.expect("harness");
    let addr = server_addr(&h);
    let path = h.webhook_url.trim_start_matches(&h.url()).to_string();
    let post_head = |len: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: shipsync\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };

    // A connection that sends nothing is closed (header timeout).
    let mut silent = connect_from("127.0.0.1", addr).await;
    assert!(closed_by_server(&mut silent).await.is_empty());

    // A kept-alive connection is closed once idle (idle timeout), after its
    // answer.
    let mut kept = connect_from("127.0.0.1", addr).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: shipsync\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_http_response(&mut kept).await.0, 200);
    assert!(closed_by_server(&mut kept).await.is_empty());

    // A request whose body is late, but within the body deadline, is not
    // cut by the header or idle timeouts while it waits.
    let body = json!({"late": true, "pad": "x".repeat(100)}).to_string();
    let mut late = connect_from("127.0.0.1", addr).await;
    late.write_all(post_head(body.len()).as_bytes())
        .await
        .expect("write");
    late.write_all(&body.as_bytes()[..50]).await.expect("write");
    tokio::time::sleep(h.settings.idle_timeout + Duration::from_millis(500)).await;
    late.write_all(&body.as_bytes()[50..]).await.expect("write");
    let (status, _, text) = read_http_response(&mut late).await;
    assert_eq!(status, 202, "{text}");

    // A body trickled a byte at a time: 408 with the contract's error
    // shape, and the connection closed.
    let mut slow = connect_from("127.0.0.1", addr).await;
    slow.write_all(post_head(1000).as_bytes())
        .await
        .expect("write");
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(SETTLE, reader.read_to_end(&mut answer))
        .await
        .expect("the slow body is answered and closed")
        .ok();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close"),
        "{answer}"
    );
    let json_body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(json_body).expect("json error");
    assert_eq!(v["error"]["code"], "request_timeout", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    h.shutdown().await;
}

both_backends!(
    failed_sign_ins_from_one_address_are_refused_alike_for_known_and_unknown_emails,
    failed_sign_ins_for_one_email_from_many_addresses_are_refused,
    failed_bearer_tokens_are_refused_and_webhooks_are_not_throttled,
    a_login_flood_does_not_delay_webhooks,
    idle_and_trickling_connections_from_one_address_leave_room_for_others,
    short_timeouts_close_idle_connections_and_slow_bodies_get_408,
);
