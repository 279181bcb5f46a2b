//! What every page shares: the document and the layout with the sidebar,
//! the embedded assets, CSRF fields, flash messages, status badges, error
//! pages and redirects, a list's search, and API documents shown as text.

use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::Value;
use shipsync_core::states::Source;
use shipsync_engine::users::Role;

use super::session::Ui;
use super::time::at;
use crate::error::ApiError;

pub(super) type Page = Result<Response, Response>;

pub(super) async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
}

pub(super) async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
}

pub(super) fn document(title: &str, body: Markup) -> Markup {
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

const NAV: [(&str, &str); 10] = [
    ("Dashboard", "/"),
    ("Merchants", "/merchants"),
    ("Connections", "/connections"),
    ("Orders", "/orders"),
    ("Shipments", "/shipments"),
    ("Events", "/events"),
    ("Alerts", "/alerts"),
    ("Alert policies", "/alert-policies"),
    ("Notification channels", "/notification-channels"),
    ("Users", "/users"),
];

/// Whether the nav shows `name` to `role`: users, alert policies and
/// notification channels to Administrators, alerts to Staff too.
fn shown(name: &str, role: Role) -> bool {
    match name {
        "Users" | "Alert policies" | "Notification channels" => role == Role::Admin,
        "Alerts" => role != Role::Merchant,
        _ => true,
    }
}

/// A page inside the layout with the sidebar.
pub(super) fn page(ui: &Ui, title: &str, active: &str, body: Markup) -> Response {
    Html(
        document(
            title,
            html! {
                div.shell {
                    nav.sidebar aria-label="Main" {
                        div.brand { "shipsync" }
                        @for (name, href) in NAV {
                            @if shown(name, ui.principal.role) {
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

pub(super) fn csrf(ui: &Ui) -> Markup {
    html! { input type="hidden" name="csrf" value=(ui.csrf); }
}

/// An API error as a page (same status, same message).
pub(super) fn fail(ui: &Ui, e: ApiError) -> Response {
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

/// A 422 page for bad input: the form again, with its values and the error.
pub(super) fn unprocessable(mut r: Response) -> Response {
    *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    r
}

pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

pub(super) fn status_badge(s: &str) -> Markup {
    html! { span class={"status " (s)} { (s.replace('_', " ")) } }
}

/// How a shipment's versions came in, e.g. `webhook + poll`.
pub(super) fn sources(s: &[Source]) -> String {
    s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" + ")
}

#[derive(Deserialize, Default)]
pub(super) struct Flash {
    pub(super) saved: Option<String>,
    pub(super) error: Option<String>,
}

/// A list's search box and status filter (and the flash after a bulk
/// action), as the Shipments and Orders lists take them.
#[derive(Deserialize, Default)]
pub(super) struct Search {
    pub(super) status: Option<String>,
    pub(super) q: Option<String>,
    pub(super) saved: Option<String>,
    pub(super) error: Option<String>,
}

pub(super) fn flash(f: &Flash) -> Markup {
    html! {
        @if let Some(m) = &f.saved { div.flash role="status" { (m) } }
        @if let Some(m) = &f.error { div.error-box role="alert" { (m) } }
    }
}

/// The message of an invalid-field error when it names `field` (shown
/// under that field).
pub(super) fn field_error(error: Option<&ApiError>, field: &str) -> Markup {
    let message = error
        .filter(|e| e.code == "invalid_field")
        .and_then(|e| e.message.split_once(": "))
        .filter(|(f, _)| *f == field)
        .map(|(_, why)| why);
    html! {
        @if let Some(why) = message { p.field-error { (why) } }
    }
}

pub(super) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A value of an API document as text: "—" for none.
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// The items of an API document's array (none when it is not one).
pub(super) fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// The activity of an order or a shipment, as the API lists it.
pub(super) fn activity(items: &Value) -> Markup {
    html! {
        div.card { h2 { "Activity" }
            table { tbody { @for a in list(items) { tr { td { (at(&a["at"])) } td { (text(&a["kind"])) } td { (text(&a["message"])) } } } } } }
    }
}
