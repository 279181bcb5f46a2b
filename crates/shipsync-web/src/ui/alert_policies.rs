//! The Alert policies pages (Administrators only): the list, adding a
//! policy (event checkboxes, channels, merchants, grouping and thresholds)
//! and editing one, with how sending to each of its channels went.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde_json::{Value, json};
use shipsync_core::states::AlertEvent;

use super::layout::{
    Flash, Page, csrf, enc, fail, field_error, flash, list, page, see_other, text, unprocessable,
};
use super::merchants::merchant_names;
use super::session::{Form, Ui, checked_form};
use super::time::at;
use crate::AppState;
use crate::api::alert_policies::render;
use crate::api::notification_channels::require_admin;
use crate::error::ApiError;

const WHAT: &str = "alert policies";

/// The numbers a policy form has, with their labels.
const NUMBERS: [(&str, &str); 4] = [
    (
        "group_minutes",
        "At most one message per channel every (minutes)",
    ),
    (
        "webhooks_stopped_hours",
        "webhooks.stopped: no webhook for (hours)",
    ),
    (
        "latency_p99_seconds",
        "latency.high: p99 ship-to-store above (seconds)",
    ),
    (
        "latency_window_minutes",
        "latency.high: over the last (minutes)",
    ),
];

fn doc_of(f: &Form) -> Value {
    let mut doc = json!({
        "name": f.get("name").trim(),
        "events": f.all("events"),
        "merchant_ids": f.all("merchant_ids"),
        "channel_ids": f.all("channel_ids"),
        "notify_resolved": f.has("notify_resolved"),
        "enabled": f.has("enabled"),
    });
    for (k, _) in NUMBERS {
        let v = f.get(k).trim();
        doc[k] = v
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.into());
    }
    doc
}

async fn form(
    s: &AppState,
    ui: &Ui,
    action: &str,
    v: &Value,
    error: Option<&ApiError>,
) -> Result<Markup, axum::response::Response> {
    let channels = s
        .engine
        .notification_channels()
        .await
        .map_err(|e| fail(ui, e.into()))?;
    let merchants = merchant_names(s, ui).await?;
    let has = |k: &str, id: &str| v[k].as_array().is_some_and(|a| a.iter().any(|x| x == id));
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(true);
    Ok(html! {
        form method="post" action=(action) {
            (csrf(ui))
            @if let Some(e) = error.filter(|e| e.code != "invalid_field") { div.error-box role="alert" { (e.message) } }
            label for="name" { "Name" }
            input #name name="name" value=(v["name"].as_str().unwrap_or("")) required;
            (field_error(error, "name"))
            fieldset { legend { "Events" }
                @for e in AlertEvent::ALL {
                    label.inline for={"e-" (e)} {
                        input id={"e-" (e)} type="checkbox" name="events" value=(e.as_str()) checked[has("events", e.as_str())];
                        code { (e.as_str()) }
                    }
                    br;
                }
            }
            (field_error(error, "events"))
            fieldset { legend { "Send to" }
                @for c in &channels {
                    label.inline for={"c-" (c.row.id)} {
                        input id={"c-" (c.row.id)} type="checkbox" name="channel_ids" value=(c.row.id) checked[has("channel_ids", &c.row.id)];
                        (c.row.name)
                    }
                    br;
                }
                @if channels.is_empty() { p.hint { "No channel yet: " a href="/notification-channels" { "add one" } "." } }
            }
            (field_error(error, "channel_ids"))
            fieldset { legend { "Merchants (none checked: all)" }
                @for (id, n) in &merchants {
                    label.inline for={"m-" (id)} {
                        input id={"m-" (id)} type="checkbox" name="merchant_ids" value=(id) checked[has("merchant_ids", id)];
                        (n)
                    }
                    br;
                }
            }
            (field_error(error, "merchant_ids"))
            @for (k, label) in NUMBERS {
                label for=(k) { (label) }
                input id=(k) name=(k) value=(match &v[k] { Value::Null => default_of(k), other => text(other) });
                (field_error(error, k))
            }
            label.inline for="notify_resolved" { input #notify_resolved type="checkbox" name="notify_resolved" value="on" checked[flag("notify_resolved")]; "Send a message when an alert is resolved" }
            br;
            label.inline for="enabled" { input #enabled type="checkbox" name="enabled" value="on" checked[flag("enabled")]; "Enabled" }
            br;
            button type="submit" { "Save" }
        }
    })
}

fn default_of(k: &str) -> String {
    match k {
        "group_minutes" | "latency_window_minutes" => "15",
        "webhooks_stopped_hours" => "6",
        _ => "60",
    }
    .into()
}

async fn list_view(
    s: &AppState,
    ui: &Ui,
    f: &Flash,
    draft: &Value,
    error: Option<&ApiError>,
) -> Page {
    require_admin(&ui.principal, WHAT).map_err(|e| fail(ui, e))?;
    let policies = s
        .engine
        .alert_policies()
        .await
        .map_err(|e| fail(ui, e.into()))?;
    let new_form = form(s, ui, "/alert-policies", draft, error).await?;
    Ok(page(
        ui,
        "Alert policies",
        "Alert policies",
        html! {
            h1 { "Alert policies" }
            (flash(f))
            p.hint { "Which events alert, for which merchants, to which channels. A burst of changes goes in one message; then at most one message per channel per window." }
            table {
                thead { tr { th { "Name" } th { "Events" } th { "Window" } th { "Enabled" } } }
                tbody {
                    @for p in &policies {
                        tr {
                            td { a href={"/alert-policies/" (p.row.id)} { (p.row.doc.name) } }
                            td { (p.row.doc.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (p.row.doc.group_minutes) " min" }
                            td { @if p.row.doc.enabled { "yes" } @else { "no" } }
                        }
                    }
                }
            }
            h2 { "Add a policy" }
            (new_form)
        },
    ))
}

pub async fn policy_list(State(s): State<AppState>, ui: Ui, Query(f): Query<Flash>) -> Page {
    list_view(&s, &ui, &f, &Value::Null, None).await
}

pub async fn policy_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    require_admin(&ui.principal, WHAT).map_err(|e| fail(&ui, e))?;
    let doc = doc_of(&f);
    match s.engine.create_alert_policy(doc.clone()).await {
        Ok(p) => Ok(see_other(&format!(
            "/alert-policies?saved={}",
            enc(&format!("Policy {} created.", p.row.doc.name))
        ))),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status != StatusCode::UNPROCESSABLE_ENTITY {
                return Err(fail(&ui, e));
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
    let p = s
        .engine
        .alert_policy(id)
        .await
        .map_err(|e| fail(ui, e.into()))?;
    let stored = render(&p);
    let body = form(
        s,
        ui,
        &format!("/alert-policies/{id}"),
        draft.unwrap_or(&stored),
        error,
    )
    .await?;
    Ok(page(
        ui,
        &p.row.doc.name,
        "Alert policies",
        html! {
            h1 { (p.row.doc.name) }
            (flash(f))
            div.card { h2 { "Sending" }
                table {
                    thead { tr { th { "Channel" } th { "Last sent" } th { "Last error" } } }
                    tbody { @for c in list(&stored["channels"]) {
                        tr { td { a href={"/notification-channels/" (text(&c["channel_id"]))} { (text(&c["channel_id"])) } }
                             td { (at(&c["last_sent_at"])) } td { (text(&c["last_error"])) } }
                    } }
                }
            }
            (body)
            form method="post" action={"/alert-policies/" (id) "/delete"} { (csrf(ui)) button.danger type="submit" { "Delete" } }
        },
    ))
}

pub async fn policy_edit(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    edit_view(&s, &ui, &id, None, &f, None).await
}

pub async fn policy_save(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    require_admin(&ui.principal, WHAT).map_err(|e| fail(&ui, e))?;
    let doc = doc_of(&f);
    match s.engine.patch_alert_policy(&id, doc.clone()).await {
        Ok(_) => Ok(see_other(&format!(
            "/alert-policies/{id}?saved={}",
            enc("Saved.")
        ))),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status != StatusCode::UNPROCESSABLE_ENTITY {
                return Err(fail(&ui, e));
            }
            Ok(unprocessable(
                edit_view(&s, &ui, &id, Some(&doc), &Flash::default(), Some(&e)).await?,
            ))
        }
    }
}

pub async fn policy_delete(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    require_admin(&ui.principal, WHAT).map_err(|e| fail(&ui, e))?;
    Ok(match s.engine.delete_alert_policy(&id).await {
        Ok(()) => see_other(&format!("/alert-policies?saved={}", enc("Policy deleted."))),
        Err(e) => see_other(&format!(
            "/alert-policies/{id}?error={}",
            enc(&ApiError::from(e).message)
        )),
    })
}
