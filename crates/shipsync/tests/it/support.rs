//! The macro that runs a test on both backends (each in a throwaway
//! database), and helpers the test modules share.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};
use shipsync_testkit::Harness;
use tokio::net::{TcpSocket, TcpStream};

use crate::ui::Browser;

/// Generous bound for work that normally takes milliseconds.
pub const SETTLE: Duration = Duration::from_secs(30);

/// Opens the sign-in page at `base` with `client`: the sign-in cookie
/// (`shipsync_login=…`) and the form's CSRF token, to post `/login` with.
pub async fn sign_in_form(client: &reqwest::Client, base: &str) -> (String, String) {
    let r = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("GET /login");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("shipsync_login="))
        .and_then(|v| v.split(';').next())
        .expect("the sign-in cookie")
        .to_string();
    let page = r.text().await.expect("page");
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let csrf = page[at..].split('"').next().unwrap_or("").to_string();
    (cookie, csrf)
}

/// Runs `async fn name(db_url: String)` once on SQLite and once on
/// PostgreSQL (skipped, with a notice, when `SHIPSYNC_TEST_POSTGRES_URL` is
/// unset), each on a database dropped afterwards, also when the test
/// panics: `both_backends!(name, other_name, …);`
macro_rules! both_backends {
    ($($f:ident),* $(,)?) => { $(
        mod $f {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = shipsync_testkit::TestDb::sqlite().expect("test database");
                super::$f(db.url.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = shipsync_testkit::TestDb::postgres().await.expect("test database") {
                    super::$f(db.url.clone()).await;
                }
            }
        }
    )* };
}

/// Reads one HTTP/1.1 response from `sock`: status, headers (lower-case
/// names), body (by `Content-Length`). Callers bound the wait.
pub async fn read_http_response(
    sock: &mut tokio::net::TcpStream,
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status line");
            let headers: Vec<(String, String)> = head
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
                })
                .collect();
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return (status, headers, body);
            }
        }
        let n = sock.read(&mut chunk).await.expect("read response");
        assert!(
            n > 0,
            "connection closed before a full response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The password of every user the tests create.
pub const PASSWORD: &str = "a long password";

/// Creates the user `user` ([`PASSWORD`] added) through the API as admin.
pub async fn create_user(h: &Harness, mut user: Value) -> Value {
    user["password"] = json!(PASSWORD);
    h.api("POST", "/api/v1/users", Some(user))
        .await
        .expect("api")
        .ok(201)
        .expect("user")
}

/// Creates the user `user` ([`PASSWORD`] added); returns the user and an
/// API token acting as it.
pub async fn user_and_token(h: &Harness, user: Value) -> (Value, String) {
    let u = create_user(h, user).await;
    let token = h
        .engine()
        .expect("engine")
        .create_user_token(u["id"].as_str().unwrap_or_default(), "test")
        .await
        .expect("token");
    (u, token)
}

/// Creates the user `user` ([`PASSWORD`] added) and signs it in to the UI;
/// returns the session and its CSRF token.
pub async fn browser_for(h: &Harness, user: Value) -> (Browser, String) {
    let email = user["email"].as_str().unwrap_or_default().to_string();
    create_user(h, user).await;
    let mut b = Browser::new(h.url());
    let csrf = b.sign_in(&email, PASSWORD).await;
    (b, csrf)
}

/// The text of `/metrics`.
pub async fn metrics_text(h: &Harness) -> String {
    h.http
        .get(format!("{}/metrics", h.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// An HTTP client whose connections come from `from` (another loopback
/// address, 127.0.0.x), sending `X-Forwarded-For: xff` when given and
/// following no redirects.
pub fn client_from(from: &str, xff: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(xff) = xff {
        headers.insert("x-forwarded-for", xff.parse().expect("header value"));
    }
    reqwest::Client::builder()
        .local_address(ip(from))
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A raw TCP connection to the server from `from`.
pub async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(ip(from), 0))
        .expect("bind a loopback address");
    socket.connect(server).await.expect("connect")
}

/// The server's socket address.
pub fn server_addr(h: &Harness) -> SocketAddr {
    h.url()
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

/// Runs the `shipsync` binary with `args` against the harness's database
/// (its URL and secret key; private targets allowed, since the sandboxes
/// listen on loopback), as a separate process.
pub async fn run_cli(h: &Harness, db_url: &str, args: &[&str]) -> std::process::Output {
    let key = h
        .settings
        .secret_key
        .as_ref()
        .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
        .unwrap_or_default();
    let db_url = db_url.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_shipsync"))
            .args(args)
            .env("SHIPSYNC_DATABASE_URL", db_url)
            .env("SHIPSYNC_SECRET_KEY", key)
            .env("SHIPSYNC_ALLOW_PRIVATE_TARGETS", "true")
            .env_remove("RUST_LOG")
            .output()
            .expect("run shipsync")
    })
    .await
    .expect("the command's thread")
}
