//! Keys, tokens, browser headers and Staff scope (issue 11 §§ 7–8): `serve`
//! refuses a key that does not open the stored credentials, a missing key
//! file beside sealed data, a key file others may read, and a short
//! `SHIPSYNC_ADMIN_TOKEN`; a generated admin token goes to a 0600 file, not
//! to the log; API tokens are listed, expire and are revoked at once; UI
//! answers carry CSP, nosniff and Referrer-Policy, and the session cookie
//! is `__Host-` with an https public URL; a limited Staff user's last
//! merchant removed leaves them seeing nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use shipsync::config::{Flags, Settings};
use shipsync_testkit::{Harness, Options, TestDb, fast_engine};

use crate::roles::{call, user_with_token};
use crate::support::{SETTLE, browser_for, user_and_token};
use crate::ui::Browser;

const BIN: &str = env!("CARGO_BIN_EXE_shipsync");

fn random_key() -> String {
    (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Settings as `serve` resolves them, from flags and an environment given
/// here (nothing read from the test's own environment).
fn settings(db_url: &str, public_url: Option<&str>, env: &[(&str, String)]) -> Settings {
    let flags = Flags {
        database_url: Some(db_url.to_string()),
        listen: Some("127.0.0.1:0".into()),
        public_url: public_url.map(str::to_string),
        log_format: Some("json".into()),
        ..Flags::default()
    };
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Settings::resolve_with(&flags, move |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .expect("settings")
}

/// Runs `shipsync serve` on `db_url` with only the environment given,
/// expecting it to exit by itself (a refusal); returns (success, stderr).
async fn serve_refused(db_url: &str, env: &[(&str, String)], dir: &Path) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args([
        "serve",
        "--database-url",
        db_url,
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ])
    .env_clear()
    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
    .current_dir(dir)
    .kill_on_drop(true);
    let out = tokio::time::timeout(SETTLE, cmd.output())
        .await
        .expect("serve should have refused to start, but it kept running")
        .expect("run shipsync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shipsync-accounts-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A database with sealed data (the harness's merchant) refuses to serve
/// under another key, or without its key; the right key still serves.
async fn wrong_or_missing_key_refused(db_url: String) {
    let mut h = Harness::start(Options::new(db_url.clone()))
        .await
        .expect("harness");
    h.stop_server().await;
    let dir = temp_dir();
    let admin = ("SHIPSYNC_ADMIN_TOKEN", h.token.clone());
    let (ok, err) = serve_refused(
        &db_url,
        &[admin.clone(), ("SHIPSYNC_SECRET_KEY", random_key())],
        &dir,
    )
    .await;
    assert!(!ok, "{err}");
    assert!(
        err.contains("does not open the credentials stored in this database")
            && err.contains("SHIPSYNC_SECRET_KEY"),
        "{err}"
    );
    // A database from before key checks (sealed data, no check row) is
    // checked against its sealed data.
    let db = shipsync_db::Db::open(&db_url).await.expect("db");
    assert!(
        shipsync_db::meta::get(db.pool(), "secret_key_check")
            .await
            .expect("meta")
            .is_some()
    );
    sqlx::query("DELETE FROM meta WHERE key = 'secret_key_check'")
        .execute(db.pool())
        .await
        .expect("delete the check");
    let (ok, err) = serve_refused(
        &db_url,
        &[admin.clone(), ("SHIPSYNC_SECRET_KEY", random_key())],
        &dir,
    )
    .await;
    assert!(
        !ok && err.contains("does not open the credentials"),
        "{err}"
    );
    assert!(
        shipsync_db::meta::get(db.pool(), "secret_key_check")
            .await
            .expect("meta")
            .is_none()
    );
    // No key at all: SQLite does not make a new key file beside sealed data.
    let (ok, err) = serve_refused(&db_url, std::slice::from_ref(&admin), &dir).await;
    assert!(!ok, "{err}");
    if shipsync_db::Backend::of_url(&db_url) == Some(shipsync_db::Backend::Sqlite) {
        assert!(
            err.contains("key file")
                && err.contains("is missing")
                && err.contains("SHIPSYNC_SECRET_KEY"),
            "{err}"
        );
        let key_file = format!("{}.key", db_url.trim_start_matches("sqlite://"));
        assert!(!Path::new(&key_file).exists(), "a key file was made");
        // A key file with another key: refused too (and the env key, which
        // wins over it, still serves below).
        shipsync_engine::SecretBox::create_key_file(Path::new(&key_file)).expect("key file");
        let (ok, err) = serve_refused(&db_url, &[admin], &dir).await;
        assert!(!ok, "{err}");
        assert!(
            err.contains("does not open the credentials")
                && err.contains(&format!("restore the key file {key_file}")),
            "{err}"
        );
    } else {
        assert!(err.contains("SHIPSYNC_SECRET_KEY is required"), "{err}");
    }
    // The right key serves, and the check row is written again.
    h.restart_server().await.expect("the right key serves");
    assert!(
        shipsync_db::meta::get(db.pool(), "secret_key_check")
            .await
            .expect("meta")
            .is_some()
    );
    db.close().await;
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The key file beside a SQLite database must be readable by its user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_readable_by_others_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tdb = TestDb::sqlite().expect("test database");
    let admin = ("SHIPSYNC_ADMIN_TOKEN", "a".repeat(40));
    let first = shipsync::server::start(
        &settings(&tdb.url, None, std::slice::from_ref(&admin)),
        fast_engine(),
    )
    .await
    .expect("first start makes the key file");
    first.stop().await;
    let key_file = PathBuf::from(format!("{}.key", tdb.url.trim_start_matches("sqlite://")));
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let dir = temp_dir();
    let (ok, err) = serve_refused(&tdb.url, std::slice::from_ref(&admin), &dir).await;
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", key_file.display())),
        "{err}"
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let again = shipsync::server::start(&settings(&tdb.url, None, &[admin]), fast_engine())
        .await
        .expect("serves once fixed");
    again.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `SHIPSYNC_ADMIN_TOKEN` shorter than 32 characters is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_admin_token_refused() {
    let tdb = TestDb::sqlite().expect("test database");
    let dir = temp_dir();
    let (ok, err) = serve_refused(
        &tdb.url,
        &[
            ("SHIPSYNC_ADMIN_TOKEN", "x".repeat(31)),
            ("SHIPSYNC_SECRET_KEY", random_key()),
        ],
        &dir,
    )
    .await;
    assert!(!ok, "{err}");
    assert!(
        err.contains("SHIPSYNC_ADMIN_TOKEN") && err.contains("at least 32"),
        "{err}"
    );
    let s = settings(
        &tdb.url,
        None,
        &[
            ("SHIPSYNC_ADMIN_TOKEN", "x".repeat(32)),
            ("SHIPSYNC_SECRET_KEY", random_key()),
        ],
    );
    shipsync::server::start(&s, fast_engine())
        .await
        .expect("32 characters serve")
        .stop()
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// With no admin token, `serve` writes a generated one to a 0600 file
/// (beside a SQLite database; in the working directory with PostgreSQL)
/// and prints the file's path, never the token.
async fn generated_admin_token_in_private_file(db_url: String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let log = dir.join("serve.log");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--database-url",
            &db_url,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env_clear()
        .env("SHIPSYNC_SECRET_KEY", random_key())
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let file = match db_url.strip_prefix("sqlite://") {
        Some(db) => PathBuf::from(format!("{db}.admin-token")),
        None => dir.join("shipsync-admin-token"),
    };
    let started = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("\"url\":\"") {
            break text[at + 7..].split('"').next().unwrap_or("").to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited ({status}): {text}");
        }
        assert!(started.elapsed() < SETTLE, "serve did not start: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token = std::fs::read_to_string(&file)
        .expect("the token file")
        .trim()
        .to_string();
    assert!(token.starts_with("sst_") && token.len() >= 32, "{token}");
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !stderr.contains(&token),
        "the token is in the log: {stderr}"
    );
    let shown = std::fs::canonicalize(&file).expect("canonical path");
    assert!(
        stderr.contains(&shown.display().to_string()),
        "the path is not printed: {stderr}"
    );
    let r = reqwest::Client::new()
        .get(format!("{url}/api/v1/merchants"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("call");
    assert_eq!(r.status().as_u16(), 200);
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/api/v1/account/tokens`: the caller's tokens with prefix and times;
/// created with an expiry and shown once; revoked → 401 at once; expired
/// → 401; another user's token is not the caller's to revoke.
async fn account_tokens_api(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let first = user_with_token(&h, "ops@example.com", "staff", None).await;
    let other = user_with_token(&h, "other@example.com", "staff", None).await;
    // The admin token is no user's: it has no tokens of its own.
    let a = h
        .api("GET", "/api/v1/account/tokens", None)
        .await
        .expect("api");
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{}",
        a.body
    );
    let (st, list) = call(&h, &first, "GET", "/api/v1/account/tokens", None).await;
    assert_eq!(st, 200, "{list}");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{list}");
    let t = &items[0];
    assert_eq!(t["name"], "test");
    assert_eq!(t["prefix"].as_str(), Some(&first[..8]), "{t}");
    assert!(
        t["created_at"].is_string() && t["expires_at"].is_null(),
        "{t}"
    );
    // This very call used it.
    assert!(t["last_used_at"].is_string(), "{t}");
    assert!(
        !list.to_string().contains(&first),
        "the token's value is listed"
    );

    // Bad fields are named.
    for (body, field) in [
        (json!({"name": "", "expires_in_days": 5}), "name"),
        (
            json!({"name": "ci", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "ci", "expires_in_days": "soon"}),
            "expires_in_days",
        ),
    ] {
        let (st, b) = call(&h, &first, "POST", "/api/v1/account/tokens", Some(body)).await;
        assert_eq!(st, 422, "{b}");
        assert!(
            b["error"]["message"].as_str().unwrap_or("").contains(field),
            "{b}"
        );
    }
    let (st, made) = call(
        &h,
        &first,
        "POST",
        "/api/v1/account/tokens",
        Some(json!({"name": "ci deploy", "expires_in_days": 30})),
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let new = made["token"].as_str().unwrap_or_default().to_string();
    let new_id = made["id"].as_str().unwrap_or_default().to_string();
    assert!(
        new.starts_with(made["prefix"].as_str().unwrap_or("-")),
        "{made}"
    );
    assert!(
        made["expires_at"].is_string() && made["last_used_at"].is_null(),
        "{made}"
    );
    let (st, _) = call(&h, &new, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 200);
    let (_, list) = call(&h, &new, "GET", "/api/v1/account/tokens", None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    assert!(!list.to_string().contains(&new), "{list}");

    // Not another user's to revoke.
    let (st, _) = call(
        &h,
        &other,
        "DELETE",
        &format!("/api/v1/account/tokens/{new_id}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(&h, &new, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 200);
    // Revoked: 401 from the next request on.
    let (st, _) = call(
        &h,
        &first,
        "DELETE",
        &format!("/api/v1/account/tokens/{new_id}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, b) = call(&h, &new, "GET", "/api/v1/merchants", None).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // Expired: 401.
    let (_, made) = call(
        &h,
        &first,
        "POST",
        "/api/v1/account/tokens",
        Some(json!({"name": "short-lived", "expires_in_days": 1})),
    )
    .await;
    let short = made["token"].as_str().unwrap_or_default().to_string();
    let (st, _) = call(&h, &short, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 200);
    let db = h.db().await.expect("db");
    sqlx::query("UPDATE api_tokens SET expires_at = $1 WHERE id = $2")
        .bind(shipsync_db::now_micros() - 1)
        .bind(made["id"].as_str().unwrap_or_default())
        .execute(db.pool())
        .await
        .expect("expire it");
    let (st, _) = call(&h, &short, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 401);
    h.shutdown().await;
}

/// `shipsync users token EMAIL` prints one line: a token that acts as the
/// user; an unknown email fails.
async fn users_token_command(db_url: String) {
    let h = Harness::start(Options::new(db_url.clone()))
        .await
        .expect("harness");
    h.api("POST", "/api/v1/users", Some(json!({"email": "brand@example.com", "password": "a long password", "role": "merchant", "merchant_id": h.merchant_id})))
        .await
        .expect("api")
        .ok(201)
        .expect("user");
    let run = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args).env_clear().kill_on_drop(true);
        async move {
            tokio::time::timeout(SETTLE, cmd.output())
                .await
                .expect("users token ends")
                .expect("run shipsync")
        }
    };
    let args = |email: &str| -> Vec<String> {
        [
            "users",
            "token",
            email,
            "--name",
            "nightly export",
            "--expires-in-days",
            "7",
            "--database-url",
            &db_url,
        ]
        .map(String::from)
        .to_vec()
    };
    let out = run(args("Brand@Example.com")).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    let token = lines[0];
    let (st, list) = call(&h, token, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let (_, tokens) = call(&h, token, "GET", "/api/v1/account/tokens", None).await;
    assert_eq!(tokens["items"][0]["name"], "nightly export", "{tokens}");
    assert!(tokens["items"][0]["expires_at"].is_string(), "{tokens}");
    let out = run(args("nobody@example.com")).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody@example.com"));
    h.shutdown().await;
}

/// The Account page lists the user's tokens (name, prefix, last use,
/// expiry), creates one with an expiry, and revokes it (401 at once).
async fn ui_account_tokens(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (mut b, csrf) = browser_for(&h, json!({"email": "ops@example.com", "role": "staff"})).await;
    let (st, made) = b
        .post(
            "/account",
            &[
                ("csrf", &csrf),
                ("label", "nightly"),
                ("expires_in_days", "10"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{made}");
    let at = made.find("value=\"sst").expect("the token shown") + 7;
    let token = made[at..].split('"').next().unwrap_or("").to_string();
    let (st, _) = call(&h, &token, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 200);
    let (_, list) = call(&h, &token, "GET", "/api/v1/account/tokens", None).await;
    let id = list["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(list["items"][0]["expires_at"].is_string(), "{list}");
    let (_, page) = b.get("/account").await;
    assert!(
        page.contains("nightly") && page.contains(&token[..8]) && !page.contains(&token),
        "{page}"
    );
    assert!(
        !page.contains(">never</td><td>never<"),
        "last use and expiry shown: {page}"
    );
    // A bad expiry is refused; a CSRF-less revoke too.
    let (st, to) = b
        .post(
            "/account",
            &[("csrf", &csrf), ("label", "x"), ("expires_in_days", "0")],
        )
        .await;
    assert_eq!(st, 303, "{to}");
    assert!(to.contains("error="), "{to}");
    let revoke = format!("/account/tokens/{id}/revoke");
    let (st, _) = b.post(&revoke, &[]).await;
    assert_eq!(st, 403);
    let (st, to) = b.post(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!((st, to.as_str()), (303, "/account?saved=Token+revoked."));
    let (st, _) = call(&h, &token, "GET", "/api/v1/merchants", None).await;
    assert_eq!(st, 401);
    let (_, page) = b.get("/account").await;
    assert!(page.contains("No tokens yet"), "{page}");
    h.shutdown().await;
}

/// Every UI answer carries a Content-Security-Policy, nosniff and a
/// Referrer-Policy; with an https public URL the cookies are `__Host-`
/// and Secure, and signing in works with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_headers_and_host_cookie() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tdb = TestDb::sqlite().expect("test database");
    let s = settings(
        &tdb.url,
        Some("https://shipsync.example.com"),
        &[
            ("SHIPSYNC_ADMIN_TOKEN", "a".repeat(40)),
            ("SHIPSYNC_SECRET_KEY", random_key()),
        ],
    );
    let running = shipsync::server::start(&s, fast_engine())
        .await
        .expect("server");
    running
        .engine
        .create_user(
            "ops@example.com",
            "a long password",
            shipsync_engine::users::Role::Admin,
            &[],
        )
        .await
        .expect("user");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in [
        "/login",
        "/",
        "/merchants",
        "/assets/app.js",
        "/assets/app.css",
    ] {
        let r = http
            .get(format!("{}{path}", running.url))
            .send()
            .await
            .expect("get");
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp:?}"
        );
        assert_eq!(
            h.get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            h.get("referrer-policy").and_then(|v| v.to_str().ok()),
            Some("same-origin"),
            "{path}"
        );
    }
    let r = http
        .get(format!("{}/login", running.url))
        .send()
        .await
        .expect("login page");
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        set.starts_with("__Host-shipsync_login=")
            && set.contains("; Secure")
            && set.contains("Path=/")
            && !set.contains("Domain"),
        "{set}"
    );
    let mut b = Browser::new(running.url.clone());
    b.sign_in("ops@example.com", "a long password").await;
    let (st, page) = b.get("/merchants").await;
    assert_eq!(st, 200, "{page}");
    running.stop().await;
}

/// A Staff user limited to one merchant whose merchant is removed sees no
/// merchant — never every merchant; `all_merchants` is the explicit way
/// to every merchant.
async fn staff_losing_last_merchant_sees_nothing(db_url: String) {
    let h = Harness::start(Options::new(db_url)).await.expect("harness");
    let (u, tok) = user_and_token(
        &h,
        json!({"email": "limited@example.com", "role": "staff", "merchant_ids": [h.merchant_id]}),
    )
    .await;
    assert_eq!(u["all_merchants"], false, "{u}");
    let uid = u["id"].as_str().unwrap_or_default().to_string();
    let merchants = async |tok: &str| {
        let (st, list) = call(&h, tok, "GET", "/api/v1/merchants", None).await;
        assert_eq!(st, 200, "{list}");
        list["items"].as_array().map(Vec::len).unwrap_or(99)
    };
    assert_eq!(merchants(&tok).await, 1);
    let u = h
        .api(
            "PATCH",
            &format!("/api/v1/users/{uid}"),
            Some(json!({"merchant_ids": []})),
        )
        .await
        .expect("api")
        .ok(200)
        .expect("patched");
    assert_eq!(
        (u["all_merchants"].clone(), u["merchant_ids"].clone()),
        (json!(false), json!([])),
        "{u}"
    );
    assert_eq!(merchants(&tok).await, 0);
    let (st, _) = call(
        &h,
        &tok,
        "GET",
        &format!("/api/v1/merchants/{}", h.merchant_id),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = call(
        &h,
        &tok,
        "POST",
        "/api/v1/merchants",
        Some(json!({"name": "Mine"})),
    )
    .await;
    assert_eq!(st, 403);
    // The explicit setting; with merchants listed too it is refused.
    let a = h
        .api(
            "PATCH",
            &format!("/api/v1/users/{uid}"),
            Some(json!({"all_merchants": true, "merchant_ids": [h.merchant_id]})),
        )
        .await
        .expect("api");
    assert_eq!(a.status, 422, "{}", a.body);
    let u = h
        .api(
            "PATCH",
            &format!("/api/v1/users/{uid}"),
            Some(json!({"all_merchants": true})),
        )
        .await
        .expect("api")
        .ok(200)
        .expect("patched");
    assert_eq!(u["all_merchants"], true, "{u}");
    assert_eq!(merchants(&tok).await, 1);
    // The Users page shows the setting as a box; unticking it with no
    // merchant ticked leaves the user seeing none.
    let (mut admin, csrf) =
        browser_for(&h, json!({"email": "admin@example.com", "role": "admin"})).await;
    let (st, page) = admin.get(&format!("/users/{uid}")).await;
    assert_eq!(st, 200);
    assert!(
        page.contains(
            "id=\"all_merchants\" type=\"checkbox\" name=\"all_merchants\" value=\"on\" checked"
        ),
        "{page}"
    );
    let (st, _) = admin
        .post(
            &format!("/users/{uid}"),
            &[("csrf", &csrf), ("role", "staff")],
        )
        .await;
    assert_eq!(st, 303);
    assert_eq!(merchants(&tok).await, 0);
    let (_, page) = admin.get("/users").await;
    assert!(page.contains("<td>none</td>"), "{page}");
    let (st, _) = admin
        .post(
            &format!("/users/{uid}"),
            &[("csrf", &csrf), ("role", "staff"), ("all_merchants", "on")],
        )
        .await;
    assert_eq!(st, 303);
    assert_eq!(merchants(&tok).await, 1);
    // Listing merchants limits an all-merchants user again.
    let u = h
        .api(
            "PATCH",
            &format!("/api/v1/users/{uid}"),
            Some(json!({"merchant_ids": [h.merchant_id]})),
        )
        .await
        .expect("api")
        .ok(200)
        .expect("patched");
    assert_eq!(u["all_merchants"], false, "{u}");
    h.shutdown().await;
}

/// Migration 0011 keeps today's Staff users as they are: without merchants
/// they see every merchant, with some only those.
async fn all_merchants_migrates(db_url: String) {
    let db = shipsync_db::Db::open(&db_url).await.expect("db");
    for sql in [
        // Read first: on SQLite a DROP COLUMN as the first statement of a
        // pooled connection was refused ("no such column"), as if that
        // connection still had the schema from before 0011.
        "SELECT all_merchants FROM users",
        "ALTER TABLE api_tokens DROP COLUMN prefix",
        "ALTER TABLE users DROP COLUMN all_merchants",
        "ALTER TABLE api_tokens DROP COLUMN last_used_at",
        "ALTER TABLE api_tokens DROP COLUMN expires_at",
        "DELETE FROM schema_migrations WHERE version = 11",
        "INSERT INTO users (id, email, password_hash, role, merchant_id, created_at, updated_at)
         VALUES ('usr_all', 'all@example.com', 'x', 'staff', NULL, 0, 0),
                ('usr_lim', 'lim@example.com', 'x', 'staff', NULL, 0, 0),
                ('usr_adm', 'adm@example.com', 'x', 'admin', NULL, 0, 0),
                ('usr_brand', 'brand@example.com', 'x', 'merchant', 'mer_two', 0, 0)",
        "INSERT INTO user_merchants (user_id, merchant_id) VALUES ('usr_lim', 'mer_one')",
    ] {
        sqlx::query(sql).execute(db.pool()).await.expect(sql);
    }
    db.migrate().await.expect("migrate");
    for (id, all) in [
        ("usr_all", true),
        ("usr_lim", false),
        ("usr_adm", false),
        ("usr_brand", false),
    ] {
        let u = shipsync_db::users::get(&db, id)
            .await
            .expect("get")
            .expect("user");
        assert_eq!(u.all_merchants, all, "{id}");
    }
    let lim = shipsync_db::users::get(&db, "usr_lim")
        .await
        .expect("get")
        .expect("user");
    assert_eq!(lim.merchant_ids, vec!["mer_one".to_string()]);
    db.close().await;
}

both_backends!(
    wrong_or_missing_key_refused,
    generated_admin_token_in_private_file,
    account_tokens_api,
    users_token_command,
    ui_account_tokens,
    staff_losing_last_merchant_sees_nothing,
    all_merchants_migrates
);
