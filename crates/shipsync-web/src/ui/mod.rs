//! The operator web UI: server-rendered pages (maud: templates are Rust,
//! checked at compile time and embedded in the binary, with no template
//! files to ship) over the same functions the JSON API uses, so business
//! rules live in one place. Every asset is embedded; nothing is fetched.

// A page handler's error is itself a page (a `Response`), as large as the
// success; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod session;
mod users;
mod wizard;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use shipsync_db::rows::{MerchantRow, ShipmentFilter};
use shipsync_engine::ShipmentAction;
use shipsync_engine::users::Role;

use crate::AppState;
use crate::api::{connections, events, merchants, orders, shipments};
use crate::client::Client;
use crate::error::ApiError;
use crate::json::time;
use session::{Form, LOGIN_COOKIE, Ui, checked_form, set_cookie, ui_cookie};

type Page = Result<Response, Response>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/merchants", get(merchant_list).post(merchant_create))
        .route("/merchants/new", get(merchant_new))
        .route("/merchants/{id}", get(merchant_edit).post(merchant_save))
        .route("/merchants/{id}/rotate", post(merchant_rotate))
        .route(
            "/connections",
            get(connection_list).post(wizard::connection_create),
        )
        .route("/connections/new", get(wizard::connection_new))
        .route("/connections/{id}", get(connection_show))
        .route("/connections/{id}/enabled", post(connection_enabled))
        .route("/connections/{id}/test", post(connection_test))
        .route("/connections/{id}/authorize", post(connection_authorize))
        .route("/connect/shopify/callback", get(shopify_callback))
        .route(
            "/connections/{id}/channels/{channel}/enabled",
            post(channel_enabled),
        )
        .route(
            "/connections/{id}/channels/{channel}/run",
            post(channel_run),
        )
        .route(
            "/connections/{id}/channels/{channel}/schedules",
            post(channel_schedules),
        )
        .route("/orders", get(order_list))
        .route("/orders/{id}", get(order_show))
        .route("/orders/{id}/{action}", post(order_act))
        .route("/shipments", get(shipment_list).post(shipment_bulk))
        .route("/shipments/{id}", get(shipment_show))
        .route("/shipments/{id}/{action}", post(shipment_act))
        .route("/events", get(event_list))
        .route("/events/{id}", get(event_show))
        .route("/events/{id}/replay", post(event_replay))
        .route("/users", get(users::user_list).post(users::user_create))
        .route("/users/{id}", get(users::user_edit).post(users::user_save))
        .route("/account", get(account_page).post(account_token_create))
        .route("/account/tokens/{id}/revoke", post(account_token_revoke))
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · shipsync" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body { (body) }
        }
    }
}

const NAV: [(&str, &str); 7] = [
    ("Dashboard", "/"),
    ("Merchants", "/merchants"),
    ("Connections", "/connections"),
    ("Orders", "/orders"),
    ("Shipments", "/shipments"),
    ("Events", "/events"),
    ("Users", "/users"),
];

/// A page inside the layout with the sidebar.
fn page(ui: &Ui, title: &str, active: &str, body: Markup) -> Response {
    Html(
        document(
            title,
            html! {
                div.shell {
                    nav.sidebar aria-label="Main" {
                        div.brand { "shipsync" }
                        @for (name, href) in NAV {
                            @if name != "Users" || ui.principal.role == Role::Admin {
                                a href=(href) class=[(name == active).then_some("active")] { (name) }
                            }
                        }
                        div.who { a href="/account" { (ui.email) } " · " (ui.principal.role.label()) }
                        form method="post" action="/logout" {
                            (csrf(ui))
                            button type="submit" { "Sign out" }
                        }
                    }
                    main { (body) }
                }
            },
        )
        .into_string(),
    )
    .into_response()
}

fn csrf(ui: &Ui) -> Markup {
    html! { input type="hidden" name="csrf" value=(ui.csrf); }
}

/// An API error as a page (same status, same message).
fn fail(ui: &Ui, e: ApiError) -> Response {
    let status = e.status;
    let mut r = page(
        ui,
        "Problem",
        "",
        html! { h1 { "Something needs attention" } div.error-box role="alert" { (e.message) } },
    );
    *r.status_mut() = status;
    r
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn status_badge(s: &str) -> Markup {
    html! { span class={"status " (s)} { (s.replace('_', " ")) } }
}

/// Whether a merchant takes shipment webhooks without a shared secret.
fn receives_unsigned(m: &MerchantRow) -> bool {
    m.webhooks_enabled == 1 && m.shared_secret.is_none()
}

/// "signed" or "unsigned": whether the merchant's webhooks must be signed.
fn signed_badge(m: &MerchantRow) -> Markup {
    if m.shared_secret.is_some() {
        html! { span.status.signed { "signed" } }
    } else {
        html! { span.status.unsigned title="No shared secret: deliveries are not authenticated" { "unsigned" } }
    }
}

fn when(micros: Option<i64>) -> String {
    micros.map(time).unwrap_or_else(|| "—".into())
}

#[derive(Deserialize, Default)]
struct Flash {
    saved: Option<String>,
    error: Option<String>,
}

fn flash(f: &Flash) -> Markup {
    html! {
        @if let Some(m) = &f.saved { div.flash role="status" { (m) } }
        @if let Some(m) = &f.error { div.error-box role="alert" { (m) } }
    }
}

/// The message of an invalid-field error when it names `field` (shown
/// under that field).
fn field_error(error: Option<&ApiError>, field: &str) -> Markup {
    let message = error
        .filter(|e| e.code == "invalid_field")
        .and_then(|e| e.message.split_once(": "))
        .filter(|(f, _)| *f == field)
        .map(|(_, why)| why);
    html! {
        @if let Some(why) = message { p.field-error { (why) } }
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------- sign-in ----------

async fn login_page(State(s): State<AppState>, Query(f): Query<Flash>) -> Response {
    login_form(&s, &f, None)
}

/// The sign-in page; `refused` shows why sign-in is refused for now.
fn login_form(s: &AppState, f: &Flash, refused: Option<&ApiError>) -> Response {
    let token = shipsync_engine::secrets::random_token("lgn");
    let body = html! {
        div.login.card {
            h1 { "Sign in to shipsync" }
            (flash(f))
            @if let Some(e) = refused {
                div.error-box role="alert" data-code=(e.code) { (e.message) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                div.actions { button.primary type="submit" { "Sign in" } }
            }
            p.hint { "No account yet? An administrator creates users; the first one with "
                code { "shipsync users create --admin EMAIL" } "." }
        }
    };
    (
        [(
            header::SET_COOKIE,
            set_cookie(s, LOGIN_COOKIE, &token, 3600),
        )],
        Html(document("Sign in", body).into_string()),
    )
        .into_response()
}

/// A sign-in refused for now (429 `too_many_attempts`, or 503 while every
/// core is busy checking others): the sign-in page with the reason, or the
/// API's JSON error to a client that asks for JSON; `Retry-After` either way.
fn login_refused(s: &AppState, headers: &axum::http::HeaderMap, e: ApiError) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return e.into_response();
    }
    let mut r = login_form(s, &Flash::default(), Some(&e));
    *r.status_mut() = e.status;
    if let Some(secs) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    r
}

/// Failed sign-ins are throttled per client address and per email
/// ([`crate::throttle`]): the same 429 for known and unknown emails.
async fn login(
    State(s): State<AppState>,
    Client(client): Client,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Page {
    let f = Form::parse(&body);
    let expected = ui_cookie(&s, &headers, LOGIN_COOKIE).unwrap_or_default();
    if !f.csrf_ok(&expected) {
        return Err(session::csrf_refused());
    }
    let attempt = s
        .throttle
        .sign_in(client, f.get("email"))
        .map_err(|t| login_refused(&s, &headers, ApiError::too_many_attempts(t)))?;
    let user = match s.engine.sign_in(f.get("email"), f.get("password")).await {
        Ok(user) => user,
        Err(e) => {
            attempt.abandoned();
            return Err(login_refused(&s, &headers, ApiError::from(e)));
        }
    };
    let Some(user) = user else {
        drop(attempt);
        return Ok(see_other("/login?error=Wrong+email+or+password."));
    };
    attempt.succeeded();
    let (token, _) = s
        .engine
        .start_session(&user.id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let max_age = shipsync_engine::users::SESSION_MICROS / 1_000_000;
    let mut r = see_other("/");
    let h = r.headers_mut();
    for c in [
        set_cookie(&s, session::COOKIE, &token, max_age),
        set_cookie(&s, LOGIN_COOKIE, "", 0),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

async fn logout(
    State(s): State<AppState>,
    ui: Ui,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    if let Some(token) = ui_cookie(&s, &headers, session::COOKIE) {
        let _ = s.engine.end_session(&token).await;
    }
    Ok((
        [(header::SET_COOKIE, set_cookie(&s, session::COOKIE, "", 0))],
        Redirect::to("/login?saved=Signed+out."),
    )
        .into_response())
}

// ---------- dashboard ----------

async fn dashboard(State(s): State<AppState>, ui: Ui) -> Page {
    let p = &ui.principal;
    let db = s.engine.db();
    let counts: Vec<(String, i64)> = if p.scope().is_none() {
        db.count_shipments_by_status()
            .await
            .map_err(|e| fail(&ui, e.into()))?
    } else {
        Vec::new()
    };
    let errors = db
        .list_shipments(
            &ShipmentFilter {
                merchant_ids: p.narrow(None),
                status: Some("error".into()),
                ..Default::default()
            },
            None,
            20,
        )
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let latency = s.engine.metrics().ship_to_store_percentiles();
    let scope = p.scope();
    let by_first_seen = db
        .count_shipments_by_first_seen(scope)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let total: i64 = by_first_seen.iter().map(|(_, n)| n).sum();
    let by_poll: i64 = by_first_seen
        .iter()
        .filter(|(via, _)| via == shipsync_engine::SOURCE_POLL)
        .map(|(_, n)| n)
        .sum();
    let now = shipsync_db::now_micros();
    let hour_start = now - now.rem_euclid(HOUR);
    let since = hour_start - 23 * HOUR;
    let done = db
        .shipment_completions_since(scope, since)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let buckets = latency_buckets(since, &done);
    let unsigned: Vec<MerchantRow> = merchants::visible(&s, p, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?
        .into_iter()
        .filter(receives_unsigned)
        .collect();
    Ok(page(
        &ui,
        "Dashboard",
        "Dashboard",
        html! {
            h1 { "Dashboard" }
            @if !unsigned.is_empty() {
                div.error-box #unsigned-webhooks role="alert" {
                    b { "Unsigned shipment webhooks. " }
                    "These merchants accept shipment webhooks without a signature, so anyone who learns their URL can post shipments: "
                    @for (i, m) in unsigned.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href={"/merchants/" (m.id)} { (m.name) }
                    }
                    ". Set a Webhook Shared Secret on each (and the same in Deposco)."
                }
            }
            @if !counts.is_empty() {
                h2 { "Shipments by state" }
                div.bars.card {
                    @for (st, n) in &counts {
                        div.kpi { div { (status_badge(st)) } div.n { (n) } }
                    }
                }
            }
            div.card #fallback-share {
                h2 { "Found by fallback" }
                @if total == 0 { p { "No shipment yet." } } @else {
                    p { span.n { (format!("{:.0}%", by_poll as f64 * 100.0 / total as f64)) } " of shipments were found by the scheduled pull rather than a webhook ("
                        (by_poll) " of " (total) ")." }
                }
            }
            div.card #latency-chart {
                h2 { "Ship-to-store latency, last 24 hours" }
                p.hint { "Per hour of completion (UTC): p50 and p99 of the time from receiving a shipment to completing it in the store." }
                (latency_chart(&buckets))
            }
            @if let Some((p50, p99, n)) = latency {
                div.card { h2 { "Ship-to-store latency" }
                    p { "p50 " (format!("{:.0} ms", p50 * 1000.0)) ", p99 " (format!("{:.0} ms", p99 * 1000.0)) " over the last " (n) " shipments (since this server started)." } }
            }
            h2 { "Error queue" }
            @if errors.is_empty() { p { "No shipment is in error." } } @else {
                table { thead { tr { th { "Shipment" } th { "Order" } th { "Reason" } } }
                    tbody { @for sh in &errors { tr {
                        td { a href={"/shipments/" (sh.id)} { (sh.number) } }
                        td { (sh.order_name) }
                        td { (sh.error.as_deref().unwrap_or("")) }
                    } } } }
            }
        },
    ))
}

const HOUR: i64 = 3_600_000_000;

/// One hour of the latency chart: its start (µs) and, when shipments
/// completed in it, (p50 s, p99 s, count).
type Bucket = (i64, Option<(f64, f64, usize)>);

/// 24 hourly buckets from `since` of `(received_at, completed_at)` pairs.
fn latency_buckets(since: i64, done: &[(i64, i64)]) -> Vec<Bucket> {
    (0..24)
        .map(|i| {
            let start = since + i * HOUR;
            let mut l: Vec<f64> = done
                .iter()
                .filter(|(_, c)| *c >= start && *c < start + HOUR)
                .map(|(r, c)| (c - r).max(0) as f64 / 1e6)
                .collect();
            l.sort_by(f64::total_cmp);
            let pick = |q: f64| l[((l.len() as f64 - 1.0) * q).round() as usize];
            (
                start,
                (!l.is_empty()).then(|| (pick(0.5), pick(0.99), l.len())),
            )
        })
        .collect()
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// The p50/p99 lines as an inline SVG (no script), with the numbers in a
/// table below for screen readers and exact values.
fn latency_chart(buckets: &[Bucket]) -> Markup {
    let (w, h, left, right, top, bottom) = (720.0, 220.0, 64.0, 12.0, 12.0, 28.0);
    let max = buckets
        .iter()
        .filter_map(|(_, v)| v.map(|(_, p99, _)| p99))
        .fold(0.0_f64, f64::max);
    let max = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let x = |i: usize| left + (w - left - right) * (i as f64 + 0.5) / buckets.len().max(1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let line = |pick: fn(&(f64, f64, usize)) -> f64| {
        buckets
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| v.as_ref().map(|v| format!("{:.1},{:.1}", x(i), y(pick(v)))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let hour = |start: i64| (start / HOUR).rem_euclid(24);
    let any = buckets.iter().any(|(_, v)| v.is_some());
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label="Ship-to-store latency p50 and p99 per hour, last 24 hours" {
            @for k in 0..=4 {
                @let v = max * k as f64 / 4.0;
                line x1=(left) x2=(w - right) y1=(y(v)) y2=(y(v)) stroke="#d8dee6" {}
                text x=(left - 6.0) y=(y(v) + 4.0) text-anchor="end" font-size="11" fill="#5b6675" { (secs(v)) }
            }
            @for (i, (start, _)) in buckets.iter().enumerate() {
                @if i % 4 == 0 {
                    text x=(x(i)) y=(h - 8.0) text-anchor="middle" font-size="11" fill="#5b6675" { (format!("{:02}:00", hour(*start))) }
                }
            }
            polyline points=(line(|v| v.1)) fill="none" stroke="#b42318" stroke-width="2" {}
            polyline points=(line(|v| v.0)) fill="none" stroke="#1f6feb" stroke-width="2" {}
            @for (i, (start, v)) in buckets.iter().enumerate() {
                @if let Some((p50, p99, n)) = v {
                    circle cx=(x(i)) cy=(y(*p99)) r="3" fill="#b42318" { title { (format!("{:02}:00 p99 {} ({n})", hour(*start), secs(*p99))) } }
                    circle cx=(x(i)) cy=(y(*p50)) r="3" fill="#1f6feb" { title { (format!("{:02}:00 p50 {} ({n})", hour(*start), secs(*p50))) } }
                }
            }
        }
        p.legend { span.swatch.p50 {} " p50 " span.swatch.p99 {} " p99" }
        @if !any { p.hint { "No shipment completed in the last 24 hours." } } @else {
            details { summary { "Hourly values" }
                table { thead { tr { th { "Hour (UTC)" } th { "Shipments" } th { "p50" } th { "p99" } } }
                    tbody { @for (start, v) in buckets { @if let Some((p50, p99, n)) = v { tr {
                        td { (format!("{:02}:00", hour(*start))) } td { (n) } td { (secs(*p50)) } td { (secs(*p99)) }
                    } } } } }
            }
        }
    }
}

// ---------- merchants ----------

async fn merchant_list(State(s): State<AppState>, ui: Ui, Query(f): Query<Flash>) -> Page {
    let rows = merchants::visible(&s, &ui.principal, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?;
    Ok(page(
        &ui,
        "Merchants",
        "Merchants",
        html! {
            div.row { h1 { "Merchants" }
                @if ui.principal.scope().is_none() { a.button.primary href="/merchants/new" { "Add merchant" } } }
            (flash(&f))
            table { thead { tr { th { "Name" } th { "Warehouse" } th { "Shipment webhooks" } } }
                tbody { @for m in &rows {
                    @let w: Value = serde_json::from_str(&m.warehouse_json).unwrap_or_default();
                    tr {
                        td { a href={"/merchants/" (m.id)} { (m.name) } }
                        td { "Deposco · " (w["business_unit"].as_str().unwrap_or("")) }
                        td { @if m.webhooks_enabled == 1 { (status_badge("on")) " " (signed_badge(m)) } @else { "off" } }
                    }
                } } }
        },
    ))
}

/// The warehouse fields shared by the create and edit pages.
/// `locked`: the user may not change where the credentials go (API URL,
/// business unit): shown read-only.
fn warehouse_fields(w: &Value, locked: bool) -> Markup {
    let auth = &w["auth"];
    html! {
        label for="name" { "Name" }
        input #name type="text" name="name" required value=(w["_name"].as_str().unwrap_or(""));
        label for="api_url" { "Deposco API URL" }
        input #api_url type="url" name="api_url" required readonly[locked] value=(w["api_url"].as_str().unwrap_or("https://api.deposco.com/latest"));
        label for="business_unit" { "Business unit" }
        input #business_unit type="text" name="business_unit" readonly[locked] value=(w["business_unit"].as_str().unwrap_or(""));
        @if locked { p.hint { "Only an Administrator can change where the credentials are sent." } }
        label for="username" { "API username" }
        input #username type="text" name="username" autocomplete="off" value=(auth["username"].as_str().unwrap_or(""));
        label for="password" { "API password" }
        input #password type="password" name="password" autocomplete="new-password";
        p.hint { @if auth["password_set"] == true { "A password is stored; leave blank to keep it. Changing the API URL or business unit clears it unless you type it again." } @else { "Write-only: never shown again once saved." } }
        label for="kit_policy" { "Kit policy" }
        select #kit_policy name="kit_policy" {
            option value="complete_kits" selected[w["_kit_policy"] != "first_component"] { "Complete kits only" }
            option value="first_component" selected[w["_kit_policy"] == "first_component"] { "First component ships the kit" }
        }
    }
}

/// The warehouse part of a merchant document from the form.
fn warehouse_patch(f: &Form, keep_password: bool) -> Value {
    let mut w = json!({"platform": "deposco", "api_url": f.get("api_url").trim(), "business_unit": f.get("business_unit").trim()});
    let user = f.get("username").trim();
    if !user.is_empty() {
        let mut auth = json!({"type": "basic", "username": user});
        if !f.get("password").is_empty() {
            auth["password"] = json!(f.get("password"));
        } else if !keep_password {
            auth["password"] = json!("");
        }
        w["auth"] = auth;
    }
    w
}

async fn merchant_new(ui: Ui) -> Page {
    ui.principal
        .require_unscoped("create merchants")
        .map_err(|e| fail(&ui, e))?;
    Ok(page(
        &ui,
        "Add merchant",
        "Merchants",
        html! {
            h1 { "Add merchant" }
            div.notice { "Shipment webhooks can only be configured for existing merchants: save this merchant first, then edit it to check " b { "Use webhooks for shipments" } " and copy its Deposco URL." }
            form.card method="post" action="/merchants" {
                (csrf(&ui))
                (warehouse_fields(&json!({}), false))
                div.actions { button.primary type="submit" { "Save" } a.button href="/merchants" { "Cancel" } }
            }
        },
    ))
}

async fn merchant_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    let doc = json!({"name": f.get("name"), "warehouse": warehouse_patch(&f, false), "kit_policy": f.get("kit_policy")});
    match merchants::create_merchant(&s, &ui.principal, doc).await {
        Ok(m) => Ok(see_other(&format!(
            "/merchants?saved={}",
            enc(&format!("Merchant {} saved.", m.name))
        ))),
        Err(e) => Err(fail(&ui, e)),
    }
}

async fn merchant_edit(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let m = merchants::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let r = merchants::render(&s, &m);
    let mut w = r["warehouse"].clone();
    w["_name"] = r["name"].clone();
    w["_kit_policy"] = r["kit_policy"].clone();
    let hooks = &r["shipment_webhooks"];
    Ok(page(
        &ui,
        &m.name,
        "Merchants",
        html! {
            h1 { (m.name) }
            (flash(&f))
            form method="post" action={"/merchants/" (m.id)} {
                (csrf(&ui))
                div.card {
                    h2 { "Warehouse" }
                    (warehouse_fields(&w, ui.principal.scope().is_some()))
                }
                div.card #shipment-webhooks {
                    h2 { "Shipment webhooks " (signed_badge(&m)) }
                    @if receives_unsigned(&m) {
                        div.error-box role="alert" { "Deliveries are accepted without a signature: anyone who learns the Deposco URL can post shipments. Set a shared secret (at least 16 bytes) here and in Deposco." }
                    }
                    label.inline for="webhooks_enabled" {
                        input #webhooks_enabled type="checkbox" name="webhooks_enabled" value="1" checked[hooks["enabled"] == true];
                        "Use webhooks for shipments"
                    }
                    label for="shared_secret" { "Webhook Shared Secret" }
                    input #shared_secret type="password" name="shared_secret" autocomplete="new-password";
                    p.hint { "Optional. Blank: deliveries are accepted without a signature. "
                        @if hooks["shared_secret_set"] == true { "A secret is set; leave blank to keep it." } }
                    @if hooks["shared_secret_set"] == true {
                        label.inline for="clear_secret" { input #clear_secret type="checkbox" name="clear_secret" value="1"; "Remove the shared secret" }
                    }
                    label for="deposco_url" { "Deposco URL" }
                    div.row {
                        input #deposco_url type="text" readonly value=(hooks["url"].as_str().unwrap_or(""));
                        button type="button" data-copy="deposco_url" { "Copy" }
                    }
                    p.hint { "Configure this URL as the shipment webhook in Deposco." }
                }
                div.actions { button.primary type="submit" { "Save Changes" } }
            }
            form.card method="post" action={"/merchants/" (m.id) "/rotate"} {
                (csrf(&ui))
                h2 { "Webhook key" }
                p { "Rotating issues a new Deposco URL; the current one keeps working for 24 hours." }
                label.inline for="revoke_old" { input #revoke_old type="checkbox" name="revoke_old" value="1"; "Stop the current URL at once (it leaked, say)" }
                button type="submit" { "Rotate webhook key" }
            }
        },
    ))
}

async fn merchant_save(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let mut hooks = json!({"enabled": f.has("webhooks_enabled")});
    if f.has("clear_secret") {
        hooks["shared_secret"] = Value::Null;
    } else if !f.get("shared_secret").trim().is_empty() {
        hooks["shared_secret"] = json!(f.get("shared_secret"));
    }
    let patch = json!({
        "name": f.get("name"),
        "warehouse": warehouse_patch(&f, true),
        "shipment_webhooks": hooks,
        "kit_policy": f.get("kit_policy"),
    });
    match merchants::update_merchant(&s, &ui.principal, &id, patch).await {
        Ok(_) => Ok(see_other(&format!("/merchants/{id}?saved=Changes+saved."))),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => Ok(see_other(&format!(
            "/merchants/{id}?error={}",
            enc(&e.message)
        ))),
        Err(e) => Err(fail(&ui, e)),
    }
}

async fn merchant_rotate(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let revoke_old = f.has("revoke_old");
    merchants::rotate_key(&s, &ui.principal, &id, revoke_old)
        .await
        .map_err(|e| fail(&ui, e))?;
    let message = if revoke_old {
        "New Deposco URL issued: configure it in Deposco (the old one no longer works)."
    } else {
        "New Deposco URL issued: configure it in Deposco (the old one works for 24 hours)."
    };
    Ok(see_other(&format!(
        "/merchants/{id}?saved={}",
        enc(message)
    )))
}

// ---------- connections ----------

#[derive(Deserialize, Default)]
struct ConnectionQuery {
    status: Option<String>,
    merchant_id: Option<String>,
    store: Option<String>,
    warehouse: Option<String>,
    saved: Option<String>,
    error: Option<String>,
}

/// The platform named in a stored store or warehouse document.
fn platform(doc: &str, default: &str) -> String {
    serde_json::from_str::<Value>(doc)
        .ok()
        .and_then(|v| v["platform"].as_str().map(str::to_string))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn platform_label(p: &str) -> String {
    match p {
        "shopify" => "Shopify".into(),
        "deposco" => "Deposco".into(),
        other => other.to_string(),
    }
}

async fn connection_list(
    State(s): State<AppState>,
    ui: Ui,
    Query(q): Query<ConnectionQuery>,
) -> Page {
    let all = connections::visible(&s, &ui.principal, None, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?;
    let ms = merchants::visible(&s, &ui.principal, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?;
    let pick = |v: &Option<String>| v.clone().filter(|x| !x.is_empty());
    let (status, merchant, store, warehouse) = (
        pick(&q.status),
        pick(&q.merchant_id),
        pick(&q.store),
        pick(&q.warehouse),
    );
    let warehouse_of = |merchant_id: &str| {
        ms.iter()
            .find(|m| m.id == merchant_id)
            .map(|m| platform(&m.warehouse_json, "deposco"))
            .unwrap_or_else(|| "deposco".into())
    };
    let mut stores: Vec<String> = all
        .iter()
        .map(|c| platform(&c.store_json, "shopify"))
        .collect();
    stores.sort();
    stores.dedup();
    let mut warehouses: Vec<String> = ms
        .iter()
        .map(|m| platform(&m.warehouse_json, "deposco"))
        .collect();
    warehouses.sort();
    warehouses.dedup();
    let rows: Vec<_> = all
        .iter()
        .filter(|c| match status.as_deref() {
            Some("enabled") => c.enabled == 1,
            Some("disabled") => c.enabled != 1,
            _ => true,
        })
        .filter(|c| merchant.as_ref().is_none_or(|m| *m == c.merchant_id))
        .filter(|c| {
            store
                .as_ref()
                .is_none_or(|p| *p == platform(&c.store_json, "shopify"))
        })
        .filter(|c| {
            warehouse
                .as_ref()
                .is_none_or(|p| *p == warehouse_of(&c.merchant_id))
        })
        .collect();
    let back = format!(
        "/connections?status={}&merchant_id={}&store={}&warehouse={}",
        enc(status.as_deref().unwrap_or("")),
        enc(merchant.as_deref().unwrap_or("")),
        enc(store.as_deref().unwrap_or("")),
        enc(warehouse.as_deref().unwrap_or(""))
    );
    let f = Flash {
        saved: q.saved,
        error: q.error,
    };
    Ok(page(
        &ui,
        "Connections",
        "Connections",
        html! {
            div.row { h1 { "Connections" } a.button.primary href="/connections/new" { "Add connection" } }
            (flash(&f))
            form.filters method="get" action="/connections" {
                div { label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any" }
                        @for (v, l) in [("enabled", "Enabled"), ("disabled", "Disabled")] { option value=(v) selected[status.as_deref() == Some(v)] { (l) } }
                    } }
                div { label for="merchant_id" { "Merchant" }
                    select #merchant_id name="merchant_id" {
                        option value="" { "Any" }
                        @for m in &ms { option value=(m.id) selected[merchant.as_deref() == Some(m.id.as_str())] { (m.name) } }
                    } }
                div { label for="store" { "Store platform" }
                    select #store name="store" {
                        option value="" { "Any" }
                        @for p in &stores { option value=(p) selected[store.as_deref() == Some(p.as_str())] { (platform_label(p)) } }
                    } }
                div { label for="warehouse" { "Warehouse platform" }
                    select #warehouse name="warehouse" {
                        option value="" { "Any" }
                        @for p in &warehouses { option value=(p) selected[warehouse.as_deref() == Some(p.as_str())] { (platform_label(p)) } }
                    } }
                button type="submit" { "Filter" }
            }
            table #connections { thead { tr { th { "Name" } th { "Merchant" } th { "Store" } th { "Warehouse" } th { "Enabled" } } }
                tbody { @for c in &rows {
                    @let st: Value = serde_json::from_str(&c.store_json).unwrap_or_default();
                    @let on = c.enabled == 1;
                    tr {
                        td { a href={"/connections/" (c.id)} { (c.name) } }
                        td { (ms.iter().find(|m| m.id == c.merchant_id).map(|m| m.name.as_str()).unwrap_or("")) }
                        td { (platform_label(&platform(&c.store_json, "shopify"))) " · " (st["shop_url"].as_str().unwrap_or("")) }
                        td { (platform_label(&warehouse_of(&c.merchant_id))) }
                        td {
                            form.switch method="post" action={"/connections/" (c.id) "/enabled"} {
                                (csrf(&ui))
                                input type="hidden" name="enabled" value=(if on { "0" } else { "1" });
                                input type="hidden" name="back" value=(back);
                                button.toggle type="submit" role="switch" aria-checked=(if on { "true" } else { "false" })
                                    aria-label={ (if on { "Disable " } else { "Enable " }) (c.name) } {
                                    span.knob {} (if on { "On" } else { "Off" })
                                }
                            }
                        }
                    }
                } } }
            @if rows.is_empty() { p.hint { "No connection matches these filters." } }
        },
    ))
}

async fn merchant_names(s: &AppState, ui: &Ui) -> Result<Vec<(String, String)>, Response> {
    Ok(merchants::visible(s, &ui.principal, None, 500)
        .await
        .map_err(|e| fail(ui, e))?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect())
}

#[derive(Deserialize, Default)]
struct Tab {
    tab: Option<String>,
    saved: Option<String>,
    error: Option<String>,
}

async fn connection_show(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(q): Query<Tab>,
) -> Page {
    let p = &ui.principal;
    let c = connections::load(&s, p, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let m = merchants::load(&s, p, &c.merchant_id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let store = connections::render(&c)["store"].clone();
    let tab = q.tab.clone().unwrap_or_else(|| "shipments".into());
    let channel = if tab == "sales_orders" {
        "sales_orders"
    } else {
        "shipments"
    };
    let ch = connections::load_channel(&s, p, &id, channel)
        .await
        .map_err(|e| fail(&ui, e))?;
    let rules = shipsync_core::schedule::parse_schedules(
        &serde_json::from_str(&ch.schedules_json).unwrap_or_else(|_| json!([])),
    )
    .unwrap_or_default();
    let last_run = s
        .engine
        .db()
        .last_run(&id, channel)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let recommend = channel == "shipments"
        && m.webhooks_enabled == 1
        && shipsync_core::schedule::runs_more_often_than_daily(&rules);
    let label = if channel == "shipments" {
        "order status import"
    } else {
        "sales order export"
    };
    let base = format!("/connections/{id}/channels/{channel}");
    let f = Flash {
        saved: q.saved,
        error: q.error,
    };
    Ok(page(
        &ui,
        &c.name,
        "Connections",
        html! {
            h1 { (c.name) }
            (flash(&f))
            div.card {
                dl.facts {
                    dt { "Merchant" } dd { a href={"/merchants/" (m.id)} { (m.name) } }
                    dt { "Connection" } dd { @if c.enabled == 1 { (status_badge("on")) " enabled" } @else { "disabled" } }
                    dt { "Store" } dd #store-auth { (store_auth_facts(&store)) }
                    @if c.store_status == "reconnect_needed" {
                        dt { "Store status" } dd #store-status { (status_badge("reconnect_needed")) " " (c.store_error.as_deref().unwrap_or("")) }
                    }
                    @if let Some(missing) = store["auth"]["missing_scopes"].as_array().filter(|m| !m.is_empty()) {
                        dt { "Missing scopes" } dd #missing-scopes {
                            @for (i, m) in missing.iter().enumerate() { @if i > 0 { ", " } code { (m.as_str().unwrap_or("")) } }
                            " — add them to the app's scopes and install it again"
                        }
                    }
                }
                div.actions {
                    @if store["auth"]["type"] == "authorization_code" {
                        form method="post" action={"/connections/" (id) "/authorize"} {
                            (csrf(&ui))
                            button.primary #connect-shopify type="submit" { @if store["auth"]["connected"] == true { "Reconnect to Shopify" } @else { "Connect to Shopify" } }
                        }
                    }
                    form method="post" action={"/connections/" (id) "/enabled"} {
                        (csrf(&ui))
                        input type="hidden" name="enabled" value=(if c.enabled == 1 { "0" } else { "1" });
                        button type="submit" { @if c.enabled == 1 { "Disable connection" } @else { "Enable connection" } }
                    }
                    form method="post" action={"/connections/" (id) "/test"} {
                        (csrf(&ui))
                        button type="submit" { "Test connection" }
                    }
                }
            }
            nav.tabs aria-label="Channels" {
                a href={"/connections/" (id) "?tab=sales_orders"} class=[(channel == "sales_orders").then_some("active")] { "Sales Orders" }
                a href={"/connections/" (id) "?tab=shipments"} class=[(channel == "shipments").then_some("active")] { "Shipments" }
            }
            div.card #channel {
                h2 { (if channel == "shipments" { "Shipments" } else { "Sales Orders" }) " · Control Panel" }
                dl.facts {
                    dt { "Status" } dd #channel-status { @if ch.enabled == 1 { (status_badge("on")) " enabled" } @else { "disabled" } }
                    dt { "Recurrence" } dd #recurrence {
                        @if rules.is_empty() { "no schedule" }
                        @for (i, r) in rules.iter().enumerate() { @if i > 0 { "; " } (shipsync_core::schedule::describe(r)) }
                    }
                    dt { "Last completed" } dd { (when(ch.last_completed_at)) }
                    dt { "Next update" } dd { @if ch.enabled == 1 { (when(ch.next_run_at)) } @else { "— (disabled)" } }
                    dt { "Last run" } dd { @if let Some(r) = &last_run { (status_badge(&r.status)) " " (when(Some(r.started_at.unwrap_or(r.created_at)))) } @else { "—" } }
                }
                @if recommend {
                    div.notice #recommendation { "Shipment webhooks are on for " (m.name) ": we recommend one daily run during off hours (for example every day at 12:00 am) as the fallback, instead of this more frequent schedule." }
                }
                div.actions {
                    form method="post" action={(base) "/enabled"} {
                        (csrf(&ui))
                        input type="hidden" name="enabled" value=(if ch.enabled == 1 { "0" } else { "1" });
                        button type="submit" { @if ch.enabled == 1 { "Disable " (label) } @else { "Enable " (label) } }
                    }
                    form method="post" action={(base) "/run"} {
                        (csrf(&ui))
                        button type="submit" { "Run now" }
                    }
                    button type="button" data-open="schedule-dialog" { "Edit schedule" }
                }
            }
            (schedule_dialog(&ui, &base, &rules))
        },
    ))
}

fn schedule_dialog(ui: &Ui, base: &str, rules: &[shipsync_core::schedule::Schedule]) -> Markup {
    let json = shipsync_core::schedule::to_json(rules);
    let items = json.as_array().cloned().unwrap_or_default();
    html! {
        dialog #schedule-dialog aria-labelledby="schedule-title" {
            form method="post" action={(base) "/schedules"} {
                (csrf(ui))
                h2 #schedule-title { "Edit schedule" }
                table #rules { tbody {
                    @for (r, item) in rules.iter().zip(items.iter()) { tr {
                        td { (shipsync_core::schedule::describe(r)) input type="hidden" name="rule" value=(item.to_string()); }
                        td { button.danger type="button" data-delete-rule { "Delete" } }
                    } }
                } }
                button type="button" data-add-schedule="new-rule" { "Add schedule" }
                fieldset #new-rule hidden {
                    legend { "New schedule" }
                    label for="new_kind" { "Repeats" }
                    select #new_kind name="new_kind" disabled {
                        option value="minutely" { "Every N minutes" }
                        option value="hourly" { "Every N hours" }
                        option value="daily" selected { "Every day" }
                        option value="flexible" { "Flexible" }
                    }
                    div data-kind="minutely hourly" { label for="new_every" { "Every" } input #new_every type="number" name="new_every" min="1" value="4" disabled; }
                    div data-kind="hourly" { label for="new_minute" { "At minute" } input #new_minute type="number" name="new_minute" min="0" max="59" value="0" disabled; }
                    div data-kind="daily" { label for="new_at" { "Time" } input #new_at type="time" name="new_at" value="00:00" disabled; }
                    div data-kind="flexible" {
                        fieldset { legend { "Weekdays" }
                            @for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
                                label.inline { input type="checkbox" name="new_weekdays" value=(d) checked[d != "sat" && d != "sun"] disabled; (d) }
                            }
                        }
                        label for="new_start" { "From hour" } input #new_start type="number" name="new_start" min="0" max="23" value="8" disabled;
                        label for="new_end" { "Until hour" } input #new_end type="number" name="new_end" min="1" max="24" value="18" disabled;
                        label for="new_every_minutes" { "Every (minutes)" } input #new_every_minutes type="number" name="new_every_minutes" min="1" value="30" disabled;
                    }
                    label for="new_tz" { "Time zone" }
                    input #new_tz type="text" name="new_tz" value="UTC" disabled;
                    p.hint { "An IANA time zone such as America/New_York." }
                }
                div.actions {
                    button.primary type="submit" { "Save changes" }
                    button type="button" data-close { "Cancel" }
                }
            }
        }
    }
}

async fn connection_enabled(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    connections::update_connection(
        &s,
        &ui.principal,
        &id,
        json!({"enabled": f.get("enabled") == "1"}),
    )
    .await
    .map_err(|e| fail(&ui, e))?;
    // From the list's switch: back to the list with its filters (a local
    // path only).
    let back = f.get("back");
    if back.starts_with("/connections?") && !back.contains("//") {
        return Ok(see_other(back));
    }
    Ok(see_other(&format!("/connections/{id}")))
}

/// How the store signs in, as the connection page says it.
fn store_auth_facts(store: &Value) -> Markup {
    let auth = &store["auth"];
    let kind = match auth["type"].as_str().unwrap_or("") {
        "client_credentials" => "app client credentials",
        "authorization_code" => "installed app (Connect to Shopify)",
        _ => "Admin API access token",
    };
    html! {
        (store["shop_url"].as_str().unwrap_or("")) " · " (kind)
        @if let Some(id) = auth["client_id"].as_str() { " · client ID " code { (id) } }
        " · "
        @if auth["connected"] == true {
            (status_badge("on")) " connected"
            @if let Some(at) = auth["expires_at"].as_str() { " (token until " (at) ")" }
        } @else {
            @if auth["type"] == "client_credentials" { "a token is asked for when first needed" } @else { "not connected" }
        }
    }
}

/// "Connect to Shopify": to Shopify's install page for this connection.
async fn connection_authorize(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    match connections::authorize_link(&s, &ui.principal, &id).await {
        Ok(url) => Ok(see_other(&url)),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(fail(&ui, e)),
        Err(e) => Ok(see_other(&format!(
            "/connections/{id}?error={}",
            enc(&e.message)
        ))),
    }
}

/// Where Shopify sends the browser back after an install: checks
/// everything (see `Engine::complete_install`), keeps the token, and shows
/// the connection; or an error page, with nothing stored.
async fn shopify_callback(
    State(s): State<AppState>,
    ui: Result<Ui, Response>,
    RawQuery(query): RawQuery,
) -> Response {
    let problem = |status: StatusCode, message: String| {
        let mut r = Html(
            document(
                "Could not connect the store",
                html! {
                    main.narrow {
                        h1 { "Could not connect the store" }
                        div.error-box role="alert" { (message) }
                        p { "Nothing was stored. " a href="/connections" { "Back to connections" } }
                    }
                },
            )
            .into_string(),
        )
        .into_response();
        *r.status_mut() = status;
        r
    };
    let Ok(ui) = ui else {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Sign in to shipsync in this browser (as the user who clicked Connect to Shopify), then open this link again.".into(),
        );
    };
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let user = ui.principal.user.as_ref().map(|u| u.id.as_str());
    let admin = ui.principal.role == Role::Admin;
    match s.engine.complete_install(&pairs, user, admin).await {
        Ok(c) => {
            let shown = connections::render(&c);
            let granted = shown["store"]["auth"]["scopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let message = format!("Connected to Shopify (granted scopes: {granted}).");
            see_other(&format!("/connections/{}?saved={}", c.id, enc(&message)))
        }
        Err(shipsync_engine::InstallError::Engine(e)) => {
            let e = ApiError::from(e);
            problem(e.status, e.message)
        }
        Err(e @ shipsync_engine::InstallError::Exchange(_)) => {
            problem(StatusCode::BAD_GATEWAY, e.to_string())
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// What "Test connection" shows: the full report to an unlimited user, a
/// status and a classified reason — nothing the remote sent — to a user
/// limited to some merchants.
fn shown_report(ui: &Ui, tested: &shipsync_engine::ConnectionTest) -> String {
    if ui.principal.scope().is_none() {
        tested.report()
    } else {
        tested.summary()
    }
}

/// "Test connection": calls the store and the warehouse with the stored
/// credentials and shows what they answered on the connection's page.
async fn connection_test(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    connections::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let tested = s
        .engine
        .test_connection(&id)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let report = shown_report(&ui, &tested);
    let to = if tested.passed() {
        format!("saved={}", enc(&report))
    } else {
        format!("error={}", enc(&report))
    };
    Ok(see_other(&format!("/connections/{id}?{to}")))
}

async fn channel_enabled(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    connections::patch_channel(
        &s,
        &ui.principal,
        &id,
        &channel,
        &json!({"enabled": f.get("enabled") == "1"}),
    )
    .await
    .map_err(|e| fail(&ui, e))?;
    Ok(see_other(&format!("/connections/{id}?tab={channel}")))
}

async fn channel_run(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    let to = match connections::queue_run(&s, &ui.principal, &id, &channel).await {
        Ok((run, _)) => format!(
            "/connections/{id}?tab={channel}&saved={}",
            enc(&format!("Run {run} queued."))
        ),
        Err(e) if e.status == StatusCode::CONFLICT => {
            format!("/connections/{id}?tab={channel}&error={}", enc(&e.message))
        }
        Err(e) => return Err(fail(&ui, e)),
    };
    Ok(see_other(&to))
}

/// The dialog's rules: the kept ones (JSON) plus the new one, if added.
fn schedules_from(f: &Form) -> Value {
    let mut list: Vec<Value> = f
        .all("rule")
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    let tz = if f.get("new_tz").trim().is_empty() {
        "UTC"
    } else {
        f.get("new_tz").trim()
    };
    let num = |k: &str| {
        f.get(k)
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(json!(f.get(k)))
    };
    let new = match f.get("new_kind") {
        "minutely" => Some(json!({"kind": "minutely", "every": num("new_every"), "time_zone": tz})),
        "hourly" => Some(
            json!({"kind": "hourly", "every": num("new_every"), "minute": num("new_minute"), "time_zone": tz}),
        ),
        "daily" => Some(json!({"kind": "daily", "at": f.get("new_at"), "time_zone": tz})),
        "flexible" => Some(
            json!({"kind": "flexible", "weekdays": f.all("new_weekdays"), "start_hour": num("new_start"),
            "end_hour": num("new_end"), "every_minutes": num("new_every_minutes"), "time_zone": tz}),
        ),
        _ => None,
    };
    list.extend(new);
    Value::Array(list)
}

async fn channel_schedules(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let patch = json!({"schedules": schedules_from(&f)});
    let to = match connections::patch_channel(&s, &ui.principal, &id, &channel, &patch).await {
        Ok(_) => format!("/connections/{id}?tab={channel}&saved=Schedule+saved."),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            format!("/connections/{id}?tab={channel}&error={}", enc(&e.message))
        }
        Err(e) => return Err(fail(&ui, e)),
    };
    Ok(see_other(&to))
}

// ---------- shipments ----------

#[derive(Deserialize, Default)]
struct ShipmentQuery {
    status: Option<String>,
    q: Option<String>,
    saved: Option<String>,
    error: Option<String>,
}

async fn shipment_list(State(s): State<AppState>, ui: Ui, Query(q): Query<ShipmentQuery>) -> Page {
    let status = q
        .status
        .clone()
        .filter(|x| shipments::STATUSES.contains(&x.as_str()));
    let search = q.q.clone().unwrap_or_default();
    let rows = shipments::search(&s, &ui.principal, status.clone(), &search, 200)
        .await
        .map_err(|e| fail(&ui, e))?;
    let f = Flash {
        saved: q.saved,
        error: q.error,
    };
    Ok(page(
        &ui,
        "Shipments",
        "Shipments",
        html! {
            h1 { "Shipments" }
            (flash(&f))
            form.filters method="get" action="/shipments" {
                div { label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any" }
                        @for st in shipments::STATUSES { option value=(st) selected[status.as_deref() == Some(st)] { (st) } }
                    } }
                div { label for="q" { "Order name or tracking number" } input #q type="search" name="q" value=(search) placeholder="#1001 or 1Z…"; }
                button type="submit" { "Search" }
            }
            form #bulk method="post" action="/shipments" {
                (csrf(&ui))
                input type="hidden" name="status" value=(status.as_deref().unwrap_or(""));
                input type="hidden" name="q" value=(search);
                div.row.bulk-actions {
                    button type="submit" name="action" value="reprocess" { "Reprocess" }
                    details.menu {
                        summary { "More actions" }
                        div.menu-items {
                            button type="submit" name="action" value="reset" { "Reset" }
                            button.danger type="submit" name="action" value="archive" { "Archive" }
                        }
                    }
                    span.hint { "Applies to the checked shipments." }
                }
                table #shipments { thead { tr {
                        th { label.inline for="select-all" { input #select-all type="checkbox" data-select-all="id"; span.sr-only { "Select all" } } }
                        th { "Shipment" } th { "Order" } th { "Status" } th { "Source" } th { "Received" } } }
                    tbody { @for sh in &rows { tr {
                        td { label.inline for={"sel-" (sh.id)} { input id={"sel-" (sh.id)} type="checkbox" name="id" value=(sh.id); span.sr-only { "Select " (sh.number) } } }
                        td { a href={"/shipments/" (sh.id)} { (sh.number) } }
                        td { (sh.order_name) }
                        td { (status_badge(&sh.status)) }
                        td { (sh.sources.replace(',', " + ")) }
                        td { (time(sh.received_at)) }
                    } } } }
            }
        },
    ))
}

/// Bulk Reprocess / Reset / Archive of the checked shipments, each through
/// the same call as the API (a Merchant user's other-tenant ids fail as
/// not found and change nothing).
async fn shipment_bulk(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    let action = f.get("action").to_string();
    let a = match action.as_str() {
        "reprocess" => ShipmentAction::Reprocess,
        "reset" => ShipmentAction::Reset,
        "archive" => ShipmentAction::Archive,
        _ => {
            return Err(fail(
                &ui,
                ApiError::invalid("action", "must be reprocess, reset or archive"),
            ));
        }
    };
    let mut back = format!(
        "/shipments?status={}&q={}",
        enc(f.get("status")),
        enc(f.get("q"))
    );
    let ids = f.all("id");
    if ids.is_empty() {
        back.push_str("&error=Check+at+least+one+shipment.");
        return Ok(see_other(&back));
    }
    let (mut done, mut failed) = (0, Vec::new());
    for id in ids {
        match shipments::act_on(&s, &ui.principal, id, a).await {
            Ok(()) => done += 1,
            Err(e) => failed.push(format!("{id}: {}", e.message)),
        }
    }
    back.push_str(&format!(
        "&saved={}",
        enc(&format!("{action}: {done} shipment(s) done."))
    ));
    if !failed.is_empty() {
        back.push_str(&format!("&error={}", enc(&failed.join("; "))));
    }
    Ok(see_other(&back))
}

async fn shipment_show(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let d = shipments::detail(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let text = |v: &Value| {
        v.as_str().map(str::to_string).unwrap_or_else(|| {
            if v.is_null() {
                "—".into()
            } else {
                v.to_string()
            }
        })
    };
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    Ok(page(
        &ui,
        "Shipment",
        "Shipments",
        html! {
            h1 { "Shipment " (text(&d["warehouse_shipment_number"])) " " span #shipment-status { (status_badge(d["status"].as_str().unwrap_or(""))) } }
            (flash(&f))
            @if let Some(err) = d["error"].as_str() { div.error-box role="alert" { (err) } }
            div.card { dl.facts {
                dt { "Order" } dd { (text(&d["order_name"])) }
                dt { "Sources" } dd { (list(&d["sources"]).iter().map(text).collect::<Vec<_>>().join(" + ")) " (first seen via " (text(&d["first_seen_via"])) ")" }
                dt { "Carrier" } dd { (text(&d["carrier"])) " " (text(&d["service"])) }
                dt { "Received" } dd { (text(&d["received_at"])) }
                dt { "Completed" } dd { (text(&d["completed_at"])) }
            }
            div.actions { @for (a, label) in [("reprocess", "Reprocess"), ("reset", "Reset"), ("archive", "Archive")] {
                form method="post" action={"/shipments/" (id) "/" (a)} { (csrf(&ui)) button type="submit" { (label) } }
            } } }
            div.card { h2 { "Lines" }
                table { thead { tr { th { "SKU" } th { "Quantity" } th { "Kit" } } }
                    tbody { @for l in list(&d["lines"]) { tr { td { (text(&l["sku"])) } td { (text(&l["quantity"])) } td { (text(&l["kit_sku"])) } } } } } }
            div.card { h2 { "Packages and tracking" }
                table { thead { tr { th { "Tracking number" } th { "Carrier" } th { "Lines" } } }
                    tbody { @for p in list(&d["packages"]) { tr {
                        td { (text(&p["tracking_number"])) } td { (text(&p["carrier"])) " " (text(&p["service"])) }
                        td { (list(&p["lines"]).iter().map(|l| format!("{} × {}", text(&l["sku"]), text(&l["quantity"]))).collect::<Vec<_>>().join(", ")) }
                    } } } } }
            div.card { h2 { "Store fulfillments" }
                table { thead { tr { th { "Fulfillment" } th { "State" } th { "Tracking" } th { "Created" } } }
                    tbody { @for sf in list(&d["store_fulfillments"]) { tr {
                        td { (text(&sf["id"])) } td { (text(&sf["state"])) }
                        td { (list(&sf["tracking_numbers"]).iter().map(text).collect::<Vec<_>>().join(", ")) } td { (text(&sf["created_at"])) }
                    } } } } }
            div.card { h2 { "Activity" }
                table { tbody { @for a in list(&d["activity"]) { tr { td { (text(&a["at"])) } td { (text(&a["kind"])) } td { (text(&a["message"])) } } } } } }
        },
    ))
}

async fn shipment_act(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    let a = match action.as_str() {
        "reprocess" => ShipmentAction::Reprocess,
        "reset" => ShipmentAction::Reset,
        "archive" => ShipmentAction::Archive,
        _ => return Err(fail(&ui, ApiError::not_found("action"))),
    };
    shipments::act_on(&s, &ui.principal, &id, a)
        .await
        .map_err(|e| fail(&ui, e))?;
    Ok(see_other(&format!(
        "/shipments/{id}?saved={}",
        enc(&format!("{action}: done."))
    )))
}

// ---------- orders ----------

async fn order_list(State(s): State<AppState>, ui: Ui, Query(q): Query<ShipmentQuery>) -> Page {
    let search = q.q.clone().unwrap_or_default();
    let status = q
        .status
        .clone()
        .filter(|x| shipsync_engine::orders::ORDER_STATUSES.contains(&x.as_str()));
    let rows = orders::search(&s, &ui.principal, status, &search, 200)
        .await
        .map_err(|e| fail(&ui, e))?;
    Ok(page(
        &ui,
        "Orders",
        "Orders",
        html! {
            h1 { "Orders" }
            form.filters method="get" action="/orders" {
                div { label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any" }
                        @for st in shipsync_engine::orders::ORDER_STATUSES { option value=(st) selected[q.status.as_deref() == Some(st)] { (st) } }
                    } }
                div { label for="q" { "Order name or tracking number" } input #q type="search" name="q" value=(search) placeholder="#1001 or 1Z…"; }
                button type="submit" { "Search" }
            }
            table { thead { tr { th { "Order" } th { "Status" } th { "Deposco number" } th { "Problem" } th { "Updated" } } }
                tbody { @for o in &rows { tr {
                    td { a href={"/orders/" (o.id)} { (o.name) } } td { (status_badge(&o.status)) }
                    td { (o.warehouse_number.as_deref().unwrap_or("—")) }
                    td { (o.error.as_deref().unwrap_or("")) } td { (time(o.updated_at)) }
                } } } }
        },
    ))
}

async fn order_show(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let d = orders::detail(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let text = |v: &Value| {
        v.as_str().map(str::to_string).unwrap_or_else(|| {
            if v.is_null() {
                "—".into()
            } else {
                v.to_string()
            }
        })
    };
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let mut ships = Vec::new();
    for sid in list(&d["shipments"]) {
        if let Some(sid) = sid.as_str()
            && let Ok(sh) = shipments::load(&s, &ui.principal, sid).await
        {
            ships.push(sh);
        }
    }
    Ok(page(
        &ui,
        "Order",
        "Orders",
        html! {
            h1 { "Order " (text(&d["name"])) " " span #order-status { (status_badge(d["status"].as_str().unwrap_or(""))) } }
            @if let Some(err) = d["error"].as_str() { div.error-box role="alert" { b { "Error: " } (err) } }
            (flash(&f))
            div.card { dl.facts {
                dt { "Store order" } dd { (text(&d["store_order_id"])) }
                dt { "Deposco order number" } dd { (text(&d["warehouse_order_number"])) }
                dt { "Sent to Deposco" } dd { (text(&d["sent_at"])) }
                dt { "Created" } dd { (text(&d["created_at"])) }
                dt { "Updated" } dd { (text(&d["updated_at"])) }
            }
            div.actions { @for (a, label) in [("reprocess", "Reprocess"), ("archive", "Archive")] {
                form method="post" action={"/orders/" (id) "/" (a)} { (csrf(&ui)) button type="submit" { (label) } }
            } } }
            div.card { h2 { "Lines" }
                table #order-lines { thead { tr { th { "SKU" } th { "Name" } th { "Ordered" } th { "Sent" } th { "Shipped" } th { "Fulfilled" } } }
                    tbody { @for l in list(&d["lines"]) { tr {
                        td { (text(&l["sku"])) @if l["kit"].is_object() { " " span.status { "kit" } } }
                        td { (text(&l["name"])) }
                        td.qty-ordered { (text(&l["quantity"])) }
                        td.qty-sent { (text(&l["sent_quantity"])) }
                        td.qty-shipped { (text(&l["shipped_quantity"])) }
                        td.qty-fulfilled { (text(&l["fulfilled_quantity"])) }
                    } } } } }
            div.card { h2 { "Shipments" }
                @if ships.is_empty() { p { "No shipment yet." } } @else {
                    table { thead { tr { th { "Shipment" } th { "Status" } th { "Source" } th { "Received" } } }
                        tbody { @for sh in &ships { tr {
                            td { a href={"/shipments/" (sh.id)} { (sh.number) } }
                            td { (status_badge(&sh.status)) }
                            td { (sh.sources.replace(',', " + ")) }
                            td { (time(sh.received_at)) }
                        } } } }
                }
            }
            div.card { h2 { "Activity" }
                table { tbody { @for a in list(&d["activity"]) { tr { td { (text(&a["at"])) } td { (text(&a["kind"])) } td { (text(&a["message"])) } } } } } }
        },
    ))
}

async fn order_act(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    let a = match action.as_str() {
        "reprocess" => shipsync_engine::OrderAction::Reprocess,
        "archive" => shipsync_engine::OrderAction::Archive,
        _ => return Err(fail(&ui, ApiError::not_found("action"))),
    };
    orders::act_on(&s, &ui.principal, &id, a)
        .await
        .map_err(|e| fail(&ui, e))?;
    Ok(see_other(&format!(
        "/orders/{id}?saved={}",
        enc(&format!("{action}: done."))
    )))
}

// ---------- events ----------

async fn event_list(State(s): State<AppState>, ui: Ui) -> Page {
    let rows = s
        .engine
        .db()
        .list_events(
            &shipsync_db::rows::EventFilter {
                merchant_ids: ui.principal.narrow(None),
                ..Default::default()
            },
            None,
            200,
        )
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    Ok(page(
        &ui,
        "Events",
        "Events",
        html! {
            h1 { "Events" }
            p.hint { "Every inbound webhook delivery, stored raw before it was acknowledged." }
            table { thead { tr { th { "Received" } th { "Merchant" } th { "Verified" } th { "Outcome" } } }
                tbody { @for e in &rows { tr {
                    td { a href={"/events/" (e.id)} { (time(e.received_at)) } }
                    td { (e.merchant_id) }
                    td { @if e.verified == 1 { "signed" } @else { "unsigned" } }
                    td { (status_badge(&e.outcome)) }
                } } } }
        },
    ))
}

async fn event_show(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let e = events::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let raw = events::raw(&e);
    Ok(page(
        &ui,
        "Event",
        "Events",
        html! {
            h1 { "Event " (e.id) " " (status_badge(&e.outcome)) }
            (flash(&f))
            @if let Some(d) = &e.detail { div.notice { (d) } }
            form method="post" action={"/events/" (e.id) "/replay"} { (csrf(&ui)) button type="submit" { "Replay" } }
            h2 { "Headers (signatures redacted)" }
            pre { (serde_json::to_string_pretty(&raw["headers"]).unwrap_or_default()) }
            h2 { "Body" }
            @match raw["body"].as_str() {
                Some(body) => pre { (body) },
                None => p.hint { @if e.body_size > 0 && matches!(e.outcome.as_str(), "accepted" | "needs_attention") { "Removed by retention (SHIPSYNC_RETAIN_EVENT_BODIES_DAYS)." } @else { "Not stored." } },
            }
        },
    ))
}

async fn event_replay(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    events::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    s.engine
        .replay_event(&id)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    Ok(see_other(&format!("/events/{id}?saved=Replay+queued.")))
}

// ---------- account: the signed-in user's API tokens ----------

fn own_user_id(ui: &Ui) -> Result<&str, Response> {
    ui.principal
        .user
        .as_ref()
        .map(|u| u.id.as_str())
        .ok_or_else(|| {
            fail(
                ui,
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this session has no user",
                ),
            )
        })
}

async fn account_view(s: &AppState, ui: &Ui, f: &Flash, new_token: Option<&str>) -> Page {
    let uid = own_user_id(ui)?;
    let tokens = s
        .engine
        .db()
        .user_api_tokens(uid)
        .await
        .map_err(|e| fail(ui, e.into()))?;
    Ok(page(
        ui,
        "Account",
        "",
        html! {
            h1 { "Account" }
            p { (ui.email) " · " (ui.principal.role.label()) }
            (flash(f))
            section.card {
                h2 { "API tokens" }
                p { "A token acts as you, with your role, on the API (" code { "Authorization: Bearer <token>" } " on /api/v1)." }
                @if let Some(t) = new_token {
                    div.flash role="status" {
                        p { "Your new token — copy it now, it is shown only once:" }
                        input #new-token type="text" readonly value=(t) aria-label="New API token";
                    }
                }
                @if tokens.is_empty() {
                    p { "No tokens yet." }
                } @else {
                    table { thead { tr { th { "Name" } th { "Starts with" } th { "Created" } th { "Last used" } th { "Expires" } th { span.sr-only { "Actions" } } } }
                        tbody { @for t in &tokens { tr {
                            td { (t.label) }
                            td { code { (t.prefix.as_deref().unwrap_or("—")) "…" } }
                            td { (time(t.created_at)) }
                            td { (t.last_used_at.map(time).unwrap_or_else(|| "never".into())) }
                            td { (t.expires_at.map(time).unwrap_or_else(|| "never".into())) }
                            td { form method="post" action={"/account/tokens/" (t.id) "/revoke"} {
                                (csrf(ui))
                                button type="submit" aria-label={"Revoke " (t.label)} { "Revoke" }
                            } }
                        } } } }
                }
                form method="post" action="/account" {
                    (csrf(ui))
                    label for="label" { "Name" }
                    input #label type="text" name="label" maxlength="100" required;
                    label for="expires_in_days" { "Expires after (days; empty: never)" }
                    input #expires_in_days type="number" name="expires_in_days" min="1" max=(shipsync_engine::users::MAX_TOKEN_DAYS);
                    div.actions { button.primary type="submit" { "Create token" } }
                }
            }
        },
    ))
}

async fn account_page(State(s): State<AppState>, ui: Ui, Query(f): Query<Flash>) -> Page {
    account_view(&s, &ui, &f, None).await
}

async fn account_token_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    let uid = own_user_id(&ui)?.to_string();
    let days = match f.get("expires_in_days").trim() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(d) => Some(d),
            Err(_) => {
                return Ok(see_other(
                    "/account?error=The+expiry+must+be+a+whole+number+of+days.",
                ));
            }
        },
    };
    match shipsync_engine::users::issue_user_token(s.engine.db(), &uid, f.get("label"), days)
        .await
        .map(|(_, token)| token)
    {
        Ok(token) => {
            // The secret is on this page only: keep it out of caches.
            let mut r = account_view(&s, &ui, &Flash::default(), Some(&token)).await?;
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            Ok(r)
        }
        Err(e) => Ok(see_other(&format!(
            "/account?error={}",
            enc(&e.to_string())
        ))),
    }
}

async fn account_token_revoke(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    let uid = own_user_id(&ui)?.to_string();
    if s.engine
        .db()
        .delete_user_api_token(&uid, &id)
        .await
        .map_err(|e| fail(&ui, e.into()))?
    {
        Ok(see_other("/account?saved=Token+revoked."))
    } else {
        Err(fail(&ui, ApiError::not_found("token")))
    }
}
