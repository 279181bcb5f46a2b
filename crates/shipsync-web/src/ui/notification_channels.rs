//! The Notification channels pages (Administrators only): the list with
//! "Send test", adding a channel (email over SMTP or a webhook) and editing
//! one. The SMTP password is never shown: left empty, it is kept.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::layout::{
    Flash, Page, csrf, enc, fail, field_error, flash, page, see_other, text, unprocessable,
};
use super::session::{Form, Ui, checked_form};
use crate::AppState;
use crate::api::notification_channels::{render, require_admin};
use crate::error::ApiError;

const WHAT: &str = "notification channels";

/// The channel document a form describes.
fn doc_of(f: &Form) -> Value {
    let number = |k: &str| {
        let v = f.get(k).trim();
        v.parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.into())
    };
    if f.get("kind") == "webhook" {
        return json!({"name": f.get("name").trim(), "kind": "webhook",
                      "url": f.get("url").trim(), "format": f.get("format")});
    }
    let mut smtp = json!({"host": f.get("host").trim(), "port": number("port"),
                          "tls": f.get("tls"), "from": f.get("from").trim()});
    let user = f.get("username").trim();
    smtp["username"] = if user.is_empty() {
        Value::Null
    } else {
        user.into()
    };
    if !f.get("password").is_empty() {
        smtp["password"] = f.get("password").into();
    }
    let to: Vec<&str> = f
        .get("to")
        .split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    json!({"name": f.get("name").trim(), "kind": "email", "smtp": smtp, "to": to})
}

/// The add/edit form, filled with `v` (an API document).
fn form(ui: &Ui, action: &str, v: &Value, error: Option<&ApiError>) -> Markup {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let kind = if s("/kind").is_empty() {
        "email".to_string()
    } else {
        s("/kind")
    };
    let to = v["to"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let port = v
        .pointer("/smtp/port")
        .map(text)
        .filter(|p| p != "—")
        .unwrap_or_else(|| "587".into());
    html! {
        form method="post" action=(action) {
            (csrf(ui))
            @if let Some(e) = error.filter(|e| e.code != "invalid_field") { div.error-box role="alert" { (e.message) } }
            label for="name" { "Name" }
            input #name name="name" value=(s("/name")) required;
            (field_error(error, "name"))
            label for="kind" { "Kind" }
            select #kind name="kind" {
                option value="email" selected[kind == "email"] { "Email (SMTP)" }
                option value="webhook" selected[kind == "webhook"] { "Webhook (Slack or JSON)" }
            }
            (field_error(error, "kind"))
            fieldset { legend { "Email" }
                label for="host" { "SMTP host" } input #host name="host" value=(s("/smtp/host"));
                (field_error(error, "smtp.host"))
                label for="port" { "Port" } input #port name="port" value=(port);
                (field_error(error, "smtp.port"))
                label for="tls" { "Security" }
                select #tls name="tls" {
                    @for (t, label) in [("starttls", "STARTTLS (587)"), ("tls", "TLS (465)"), ("none", "None (trusted relay only)")] {
                        option value=(t) selected[s("/smtp/tls") == t] { (label) }
                    }
                }
                (field_error(error, "smtp.tls"))
                label for="username" { "User" } input #username name="username" value=(s("/smtp/username")) autocomplete="off";
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="new-password"
                    placeholder=(if v.pointer("/smtp/password_set") == Some(&Value::Bool(true)) { "(set: leave empty to keep)" } else { "" });
                (field_error(error, "smtp.password"))
                label for="from" { "From" } input #from name="from" value=(s("/smtp/from")) placeholder="shipsync@example.com";
                (field_error(error, "smtp.from"))
                label for="to" { "To (comma-separated)" } input #to name="to" value=(to);
                (field_error(error, "to"))
            }
            fieldset { legend { "Webhook" }
                label for="url" { "URL" } input #url name="url" value=(s("/url")) placeholder="https://hooks.slack.com/services/…";
                (field_error(error, "url"))
                label for="format" { "Format" }
                select #format name="format" {
                    option value="slack" selected[s("/format") != "json"] { "Slack (incoming webhook)" }
                    option value="json" selected[s("/format") == "json"] { "JSON" }
                }
                (field_error(error, "format"))
            }
            button type="submit" { "Save" }
        }
    }
}

async fn list_view(
    s: &AppState,
    ui: &Ui,
    f: &Flash,
    draft: &Value,
    error: Option<&ApiError>,
) -> Page {
    require_admin(&ui.principal, WHAT).map_err(|e| fail(ui, e))?;
    let channels = s
        .engine
        .notification_channels()
        .await
        .map_err(|e| fail(ui, e.into()))?;
    Ok(page(
        ui,
        "Notification channels",
        "Notification channels",
        html! {
            h1 { "Notification channels" }
            (flash(f))
            p.hint { "Where alert policies send their messages: email over SMTP, or a webhook (a Slack incoming webhook, or JSON)." }
            details #how-to {
                summary { "How to set up email or Slack" }
                p { b { "Email: " } "your mail provider's SMTP host, port 587 with STARTTLS (or 465 with TLS), the user and password it gave you for sending, a From address it lets you send as, and the recipients. The password is sealed and never shown again. Save, then " i { "Send test" } ": “sent” means the server accepted the message." }
                p { b { "Slack: " } "in Slack, create an app (api.slack.com/apps) with " i { "Incoming Webhooks" } " switched on, " i { "Add New Webhook to Workspace" } ", pick the channel, copy the URL (https://hooks.slack.com/services/…) into a Webhook channel with the Slack format, save, then " i { "Send test" } "." }
                p { b { "JSON: " } "any HTTPS endpoint; it receives " code { "{\"type\": \"alerts\", \"policy\", \"opened\", \"updated\", \"resolved\"}" } "." }
            }
            table {
                thead { tr { th { "Name" } th { "Kind" } th { "Sends to" } th {} } }
                tbody {
                    @for c in &channels {
                        @let d = render(c);
                        tr {
                            td { a href={"/notification-channels/" (c.row.id)} { (c.row.name) } }
                            td { (text(&d["kind"])) }
                            td { @if d["kind"] == "email" { (d["to"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } @else { (text(&d["format"])) " webhook" } }
                            td { form method="post" action={"/notification-channels/" (c.row.id) "/test"} { (csrf(ui)) button type="submit" { "Send test" } } }
                        }
                    }
                }
            }
            h2 { "Add a channel" }
            (form(ui, "/notification-channels", draft, error))
        },
    ))
}

pub async fn channel_list(State(s): State<AppState>, ui: Ui, Query(f): Query<Flash>) -> Page {
    list_view(&s, &ui, &f, &Value::Null, None).await
}

fn refused(ui: &Ui, e: &ApiError) -> Option<Response> {
    (e.status != StatusCode::UNPROCESSABLE_ENTITY)
        .then(|| fail(ui, ApiError::new(e.status, e.code, e.message.clone())))
}

pub async fn channel_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    require_admin(&ui.principal, WHAT).map_err(|e| fail(&ui, e))?;
    let doc = doc_of(&f);
    match s.engine.create_notification_channel(doc.clone()).await {
        Ok(c) => Ok(see_other(&format!(
            "/notification-channels?saved={}",
            enc(&format!("Channel {} created.", c.row.name))
        ))),
        Err(e) => {
            let e = ApiError::from(e);
            if let Some(r) = refused(&ui, &e) {
                return Err(r);
            }
            Ok(unprocessable(
                list_view(&s, &ui, &Flash::default(), &doc, Some(&e)).await?,
            ))
        }
    }
}

async fn edit_view(
    s: &AppState,
    ui: &Ui,
    id: &str,
    draft: Option<&Value>,
    f: &Flash,
    error: Option<&ApiError>,
) -> Page {
    require_admin(&ui.principal, WHAT).map_err(|e| fail(ui, e))?;
    let c = s
        .engine
        .notification_channel(id)
        .await
        .map_err(|e| fail(ui, e.into()))?;
    let stored = render(&c);
    let v = draft.unwrap_or(&stored);
    Ok(page(
        ui,
        &c.row.name,
        "Notification channels",
        html! {
            h1 { (c.row.name) }
            (flash(f))
            form method="post" action={"/notification-channels/" (c.row.id) "/test"} { (csrf(ui)) button type="submit" { "Send test" } }
            (form(ui, &format!("/notification-channels/{}", c.row.id), v, error))
            form method="post" action={"/notification-channels/" (c.row.id) "/delete"} { (csrf(ui)) button.danger type="submit" { "Delete" } }
        },
    ))
}

pub async fn channel_edit(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    edit_view(&s, &ui, &id, None, &f, None).await
}

pub async fn channel_save(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    require_admin(&ui.principal, WHAT).map_err(|e| fail(&ui, e))?;
    let doc = doc_of(&f);
    match s.engine.patch_notification_channel(&id, doc.clone()).await {
        Ok(c) => Ok(see_other(&format!(
            "/notification-channels/{}?saved={}",
            c.row.id,
            enc("Saved.")
        ))),
        Err(e) => {
            let e = ApiError::from(e);
            if let Some(r) = refused(&ui, &e) {
                return Err(r);
            }
            Ok(unprocessable(
                edit_view(&s, &ui, &id, Some(&doc), &Flash::default(), Some(&e)).await?,
            ))
        }
    }
}

/// "Send test": the result is shown on the channel's page.
pub async fn channel_test(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    require_admin(&ui.principal, WHAT).map_err(|e| fail(&ui, e))?;
    let to = match s
        .engine
        .test_notification_channel(&id)
        .await
        .map_err(|e| fail(&ui, e.into()))?
    {
        Ok(()) => format!(
            "saved={}",
            enc("Test message sent: the server accepted it.")
        ),
        Err(e) => format!(
            "error={}",
            enc(&format!("The test message was not accepted: {e}"))
        ),
    };
    Ok(see_other(&format!("/notification-channels/{id}?{to}")))
}

pub async fn channel_delete(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    require_admin(&ui.principal, WHAT).map_err(|e| fail(&ui, e))?;
    Ok(match s.engine.delete_notification_channel(&id).await {
        Ok(()) => see_other(&format!(
            "/notification-channels?saved={}",
            enc("Channel deleted.")
        )),
        Err(e) => see_other(&format!(
            "/notification-channels/{id}?error={}",
            enc(&ApiError::from(e).message)
        )),
    })
}
