//! Behind a trusted reverse proxy (`SHIPSYNC_TRUSTED_PROXIES`), the
//! per-client limits count the client the proxy forwarded in
//! `X-Forwarded-For`, not the proxy: one client's failed sign-ins lock that
//! client only, and the proxy's own connections are not capped per client.
//! From a peer that is not trusted the header is ignored. Clients take other
//! loopback addresses (127.0.0.x) by binding their sockets; a "proxy" is a
//! client at a trusted address that sends the header.

use serde_json::json;
use shipsync_testkit::{Harness, Options};
use tokio::io::AsyncWriteExt;

use crate::support::{
    PASSWORD, SETTLE, client_from, connect_from, create_user, read_http_response, server_addr,
    sign_in_form,
};

fn options(db_url: String, trusted: &str) -> Options {
    let mut o = Options::new(db_url);
    o.settings.trusted_proxies = trusted.parse().expect("trusted proxies");
    o
}

/// A browser whose connections come from `peer`, sending
/// `X-Forwarded-For: xff` when given, holding the sign-in form's cookie and
/// CSRF token.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn at(h: &Harness, peer: &str, xff: Option<&str>) -> Self {
        let client = client_from(peer, xff);
        let base = h.url();
        let (cookie, csrf) = sign_in_form(&client, &base).await;
        Self {
            client,
            base,
            cookie,
            csrf,
        }
    }

    /// One sign-in as JSON: status and `Location` (`/` when signed in).
    async fn sign_in(&self, email: &str, password: &str) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}/login", self.base))
            .header("cookie", &self.cookie)
            .header("accept", "application/json")
            .form(&[
                ("csrf", self.csrf.as_str()),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .expect("POST /login");
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if status == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let body = r.text().await.expect("body");
            assert!(body.contains("too_many_attempts"), "{body}");
        }
        (status, location)
    }
}

const USER: &str = "ops@example.com";

async fn create_admin(h: &Harness) {
    create_user(h, json!({"email": USER, "role": "admin"})).await;
}

/// Failed sign-ins from `peer` with `X-Forwarded-For: xff`, each for
/// another unknown email (so that only the client's lock can refuse them),
/// until refused (at most 10 failures, the contract's).
async fn fail_until_refused(h: &Harness, peer: &str, xff: Option<&str>) {
    let b = Browser::at(h, peer, xff).await;
    for failures in 0..=10 {
        let (status, _) = b
            .sign_in(&format!("guess{failures}@example.com"), "not the password")
            .await;
        if status == 429 {
            return;
        }
        assert_eq!(status, 303, "a wrong password");
    }
    panic!("11 failed sign-ins from {peer} ({xff:?}) were never refused");
}

/// Signs in as [`USER`] with the right password: 303 to `/` when the client
/// is not locked, 429 when it is.
async fn sign_in_status(h: &Harness, peer: &str, xff: Option<&str>) -> u16 {
    let (status, location) = Browser::at(h, peer, xff)
        .await
        .sign_in(USER, PASSWORD)
        .await;
    if status == 303 {
        assert_eq!(location, "/", "signed in");
    }
    status
}

async fn a_trusted_proxy_forwards_the_client_that_failed(db_url: String) {
    let h = Harness::start(options(db_url, "127.0.0.1"))
        .await
        .expect("harness");
    create_admin(&h).await;
    // What a client sent left of what the proxy appended is not believed.
    fail_until_refused(&h, "127.0.0.1", Some("198.51.100.1, 203.0.113.7")).await;
    assert_eq!(
        sign_in_status(&h, "127.0.0.1", Some("203.0.113.7")).await,
        429,
        "203.0.113.7 is locked"
    );
    assert_eq!(
        sign_in_status(&h, "127.0.0.1", Some("203.0.113.8")).await,
        303,
        "another client through the same proxy is not locked"
    );
    assert_eq!(
        sign_in_status(&h, "127.0.0.1", Some("198.51.100.1")).await,
        303,
        "the address the client put in the header is not the one locked"
    );
    // The proxy itself, or a request it sent without the header, is not
    // locked either.
    assert_eq!(sign_in_status(&h, "127.0.0.1", None).await, 303);
    h.shutdown().await;
}

async fn without_trusted_proxies_forwarded_for_is_ignored(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    create_admin(&h).await;
    fail_until_refused(&h, "127.0.0.1", Some("203.0.113.7")).await;
    assert_eq!(
        sign_in_status(&h, "127.0.0.1", Some("203.0.113.8")).await,
        429,
        "the peer is locked, whatever the header says"
    );
    assert_eq!(sign_in_status(&h, "127.0.0.3", None).await, 303);
    h.shutdown().await;
}

async fn forwarded_for_from_an_untrusted_peer_is_ignored(db_url: String) {
    let h = Harness::start(options(db_url, "127.0.0.1"))
        .await
        .expect("harness");
    create_admin(&h).await;
    fail_until_refused(&h, "127.0.0.2", Some("203.0.113.7")).await;
    assert_eq!(
        sign_in_status(&h, "127.0.0.2", Some("203.0.113.8")).await,
        429,
        "a spoofed header does not unlock 127.0.0.2"
    );
    assert_eq!(
        sign_in_status(&h, "127.0.0.1", Some("203.0.113.7")).await,
        303,
        "203.0.113.7 did not fail: 127.0.0.2 did"
    );
    assert_eq!(
        sign_in_status(&h, "127.0.0.1", Some("127.0.0.2")).await,
        429,
        "127.0.0.2 forwarded by the trusted proxy is the same client"
    );
    h.shutdown().await;
}

async fn failed_bearer_tokens_lock_the_forwarded_client(db_url: String) {
    let h = Harness::start(options(db_url, "127.0.0.1"))
        .await
        .expect("harness");
    let proxy = client_from("127.0.0.1", None);
    let url = format!("{}/api/v1/merchants", h.url());
    let get = |xff: &'static str, token: String| {
        proxy
            .get(&url)
            .header("x-forwarded-for", xff)
            .bearer_auth(token)
            .send()
    };
    let mut refused = false;
    for i in 0..=50 {
        match get("203.0.113.7", format!("sst_guess{i}"))
            .await
            .expect("send")
            .status()
            .as_u16()
        {
            401 => {}
            429 => {
                refused = true;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused, "51 failed bearer tokens were never refused");
    // Another client through the same proxy is served.
    let r = get("203.0.113.8", h.token.clone()).await.expect("send");
    assert_eq!(r.status().as_u16(), 200, "203.0.113.8 is not locked");
    h.shutdown().await;
}

/// Opens `n` connections from `from`, all held at once, then asks
/// `/healthz` on each: how many were served (200) and refused (503).
async fn hold_connections(h: &Harness, from: &str, n: usize) -> (usize, usize) {
    let addr = server_addr(h);
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(connect_from(from, addr).await);
    }
    let (mut served, mut refused) = (0, 0);
    for sock in &mut conns {
        // A refused connection may be closed before the request is written.
        let _ = sock
            .write_all(
                b"GET /healthz HTTP/1.1\r\nHost: shipsync\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
            )
            .await;
        let (status, _, _) = tokio::time::timeout(SETTLE, read_http_response(sock))
            .await
            .expect("an answer");
        match status {
            200 => served += 1,
            503 => refused += 1,
            other => panic!("/healthz answered {other}"),
        }
    }
    (served, refused)
}

async fn a_trusted_proxy_is_not_capped_per_client(db_url: String) {
    let mut o = options(db_url, "127.0.0.1");
    o.settings.max_connections_per_client = 8;
    let h = Harness::start(o).await.expect("harness");
    let (served, refused) = hold_connections(&h, "127.0.0.1", 40).await;
    assert_eq!(
        (served, refused),
        (40, 0),
        "the trusted proxy holds 40 connections at once, past the per-client cap of 8"
    );
    // An untrusted client is still capped, the header notwithstanding.
    let (served, refused) = hold_connections(&h, "127.0.0.2", 40).await;
    assert_eq!(
        (served, refused),
        (8, 32),
        "127.0.0.2 is served 8 connections at once"
    );
    h.shutdown().await;
}

both_backends!(
    a_trusted_proxy_forwards_the_client_that_failed,
    without_trusted_proxies_forwarded_for_is_ignored,
    forwarded_for_from_an_untrusted_peer_is_ignored,
    a_trusted_proxy_is_not_capped_per_client,
    failed_bearer_tokens_lock_the_forwarded_client,
);
