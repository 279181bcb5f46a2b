//! A merchant's event subscriptions (issue 16), over the same engine
//! functions as `/api/v1/merchants/{id}/event-subscriptions`: the list with
//! each one's status, a form to subscribe (the secret shown once, with a
//! copy button), and per subscription its settings, a new secret, and its
//! deliveries with their attempts and a Replay button.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use serde_json::{Value, json};
use shipsync_core::states::{EventType, SubscriptionStatus};
use shipsync_db::event_subscriptions::SubscriptionRow;
use shipsync_engine::events_out::DeliveryView;

use super::layout::{
    Flash, Page, csrf, enc, fail, field_error, flash, page, see_other, status_badge, unprocessable,
};
use super::session::{Form, Ui, checked_form};
use super::time::{ago, at};
use crate::AppState;
use crate::api::merchants;
use crate::error::ApiError;

/// Deliveries shown on a subscription's page.
const DELIVERIES_SHOWN: i64 = 50;

/// What a page shows besides the stored subscriptions.
#[derive(Default)]
struct Shown<'a> {
    flash: Flash,
    /// A secret just issued (shown this once).
    secret: Option<&'a str>,
    /// The form as typed (after a refusal); `None`: as stored.
    typed: Option<&'a Value>,
    error: Option<&'a ApiError>,
}

fn base(merchant_id: &str) -> String {
    format!("/merchants/{merchant_id}/event-subscriptions")
}

/// The request a form describes: URL, checked events, enabled.
fn from_form(f: &Form) -> Value {
    json!({
        "url": f.get("url").trim(),
        "events": f.all("events"),
        "enabled": f.has("enabled"),
    })
}

fn status(r: &SubscriptionRow) -> Markup {
    match (r.enabled, r.status) {
        (false, _) => status_badge("disabled"),
        (true, SubscriptionStatus::Failing) => status_badge("failing"),
        (true, SubscriptionStatus::Active) => status_badge("active"),
    }
}

/// URL, events and `enabled`, as typed (`typed`) or as stored.
fn fields(typed: &Value, error: Option<&ApiError>) -> Markup {
    let checked = |e: EventType| {
        typed["events"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == e.as_str()))
    };
    html! {
        label for="url" { "URL" }
        input #url type="url" name="url" required value=(typed["url"].as_str().unwrap_or(""));
        p.hint { "Events are posted here as JSON, signed per Standard Webhooks. https only (plain http where SHIPSYNC_ALLOW_PRIVATE_TARGETS is set); private addresses only where that setting allows them." }
        (field_error(error, "url"))
        fieldset {
            legend { "Events" }
            @for e in EventType::ALL {
                label.inline {
                    input type="checkbox" name="events" value=(e.as_str()) checked[checked(*e)];
                    (e.as_str())
                }
            }
        }
        (field_error(error, "events"))
        label.inline for="enabled" {
            input #enabled type="checkbox" name="enabled" value="1" checked[typed["enabled"] != false];
            "Enabled"
        }
    }
}

/// The secret, shown once, with a copy button.
fn secret_box(secret: &str) -> Markup {
    html! {
        div.card #new-secret {
            h2 { "Signing secret" }
            div.row {
                input #secret type="text" readonly value=(secret);
                button type="button" data-copy="secret" { "Copy" }
            }
            p.hint { "Copy it now: it is not shown again. Your endpoint verifies each delivery's webhook-signature with it (Standard Webhooks)." }
        }
    }
}

fn list_page(
    ui: &Ui,
    merchant_id: &str,
    name: &str,
    subs: &[SubscriptionRow],
    shown: &Shown<'_>,
) -> axum::response::Response {
    let base = base(merchant_id);
    let fresh = json!({"events": ["shipment.completed"], "enabled": true});
    let typed = shown.typed.unwrap_or(&fresh);
    let (f, secret, error) = (&shown.flash, shown.secret, shown.error);
    page(
        ui,
        &format!("Event subscriptions · {name}"),
        "Merchants",
        html! {
            div.row { h1 { "Event subscriptions · " (name) } a.button href={"/merchants/" (merchant_id)} { "Back to merchant" } }
            (flash(f))
            @if let Some(s) = secret { (secret_box(s)) }
            @if let Some(e) = error { div.error-box role="alert" { "Not saved: " (e.message) } }
            @if subs.is_empty() {
                p.hint { "No subscription yet: the merchant's systems are told nothing." }
            } @else {
                table #subscriptions { thead { tr { th { "URL" } th { "Events" } th { "Status" } th { "Failing since" } } }
                  tbody { @for r in subs { tr {
                    td { a href={(base) "/" (r.id)} { (r.url) } }
                    td { (r.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) }
                    td { (status(r)) }
                    td { (ago(r.failing_since)) }
                  } } } }
            }
            form.card method="post" action=(base) {
                h2 { "Subscribe" }
                (csrf(ui))
                (fields(typed, error))
                div.actions { button.primary type="submit" { "Subscribe" } }
            }
            (catalogue())
        },
    )
}

async fn merchant_name(
    s: &AppState,
    ui: &Ui,
    id: &str,
) -> Result<String, axum::response::Response> {
    merchants::load(s, &ui.principal, id)
        .await
        .map(|m| m.name)
        .map_err(|e| fail(ui, e))
}

pub(super) async fn subscriptions_page(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let name = merchant_name(&s, &ui, &id).await?;
    let subs = s
        .engine
        .event_subscriptions(&id)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let shown = Shown {
        flash: f,
        ..Shown::default()
    };
    Ok(list_page(&ui, &id, &name, &subs, &shown))
}

pub(super) async fn subscription_create(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let name = merchant_name(&s, &ui, &id).await?;
    let typed = from_form(&f);
    let created = s.engine.create_event_subscription(&id, &typed).await;
    let subs = s
        .engine
        .event_subscriptions(&id)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    match created {
        Ok((_, secret)) => {
            let shown = Shown {
                flash: Flash {
                    saved: Some("Subscribed.".into()),
                    error: None,
                },
                secret: Some(&secret),
                ..Shown::default()
            };
            Ok(list_page(&ui, &id, &name, &subs, &shown))
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.status != axum::http::StatusCode::UNPROCESSABLE_ENTITY {
                return Err(fail(&ui, e));
            }
            let shown = Shown {
                typed: Some(&typed),
                error: Some(&e),
                ..Shown::default()
            };
            Ok(unprocessable(list_page(&ui, &id, &name, &subs, &shown)))
        }
    }
}

fn deliveries_table(ui: &Ui, base: &str, sid: &str, deliveries: &[DeliveryView]) -> Markup {
    html! {
        @if deliveries.is_empty() {
            p.hint { "No delivery yet." }
        } @else {
            table #deliveries { thead { tr { th { "Event" } th { "Type" } th { "State" } th { "Attempts" } th { "Next attempt" } th {} } }
              tbody { @for v in deliveries {
                @let d = &v.delivery;
                tr {
                    td { code { (d.event_id) } br; span.hint { (d.subject_id) } }
                    td { (v.event.as_ref().map(|e| e.kind.as_str()).unwrap_or("—")) }
                    td { (status_badge(d.state.as_str())) }
                    td {
                        @if v.attempts.is_empty() { "—" }
                        ul.attempts { @for a in &v.attempts { li {
                            (at(a.at)) " · "
                            @match a.status_code { Some(c) => { "HTTP " (c) }, None => { "no answer" } }
                            " · " (a.latency_ms) " ms"
                            @if let Some(e) = &a.error { " · " (e) }
                            @if let Some(x) = a.excerpt.as_ref().filter(|x| !x.is_empty()) { br; span.hint { (x) } }
                        } } }
                    }
                    td { (at(d.next_attempt_at)) }
                    td {
                        form method="post" action={(base) "/" (sid) "/deliveries/" (d.id) "/replay"} {
                            (csrf(ui)) button type="submit" { "Replay" }
                        }
                    }
                }
              } } }
        }
    }
}

async fn show(s: &AppState, ui: &Ui, id: &str, sid: &str, shown: &Shown<'_>) -> Page {
    let (f, secret, typed, error) = (&shown.flash, shown.secret, shown.typed, shown.error);
    let name = merchant_name(s, ui, id).await?;
    let r = s
        .engine
        .event_subscription(id, sid)
        .await
        .map_err(|e| fail(ui, ApiError::from_engine(e, "event subscription")))?;
    let deliveries = s
        .engine
        .event_deliveries(id, sid, None, DELIVERIES_SHOWN)
        .await
        .map_err(|e| fail(ui, e.into()))?;
    let stored = json!({"url": r.url, "events": r.events, "enabled": r.enabled});
    let typed = typed.unwrap_or(&stored);
    let base = base(id);
    let now = shipsync_db::now_micros();
    Ok(page(
        ui,
        &format!("Event subscription · {name}"),
        "Merchants",
        html! {
            div.row { h1 { "Event subscription " (status(&r)) } a.button href=(base) { "All subscriptions" } }
            (flash(f))
            @if let Some(s) = secret { (secret_box(s)) }
            @if let Some(e) = error { div.error-box role="alert" { "Not saved: " (e.message) } }
            @if r.status == SubscriptionStatus::Failing {
                div.error-box role="alert" { "Deliveries have been failing since " (at(r.failing_since)) ": a delivery used up its retries. Fix the endpoint, then replay the failed deliveries." }
            }
            form.card method="post" action={(base) "/" (r.id)} {
                h2 { "Settings" }
                (csrf(ui))
                input type="hidden" name="action" value="save";
                (fields(typed, error))
                div.actions { button.primary type="submit" { "Save Changes" } }
            }
            form.card method="post" action={(base) "/" (r.id)} {
                h2 { "Secret" }
                (csrf(ui))
                input type="hidden" name="action" value="rotate";
                p.hint { "A new secret is shown once; the current one keeps signing deliveries beside it for 24 hours."
                    @if let Some(until) = r.previous_until.filter(|&u| u > now) { " The previous secret signs until " (at(until)) "." } }
                button type="submit" { "Rotate secret" }
            }
            h2 { "Deliveries" }
            (deliveries_table(ui, &base, &r.id, &deliveries))
            form.card method="post" action={(base) "/" (r.id)} {
                (csrf(ui))
                input type="hidden" name="action" value="delete";
                button.danger type="submit" { "Delete subscription" }
            }
        },
    ))
}

pub(super) async fn subscription_page(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, sid)): Path<(String, String)>,
    Query(f): Query<Flash>,
) -> Page {
    let shown = Shown {
        flash: f,
        ..Shown::default()
    };
    show(&s, &ui, &id, &sid, &shown).await
}

pub(super) async fn subscription_post(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, sid)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    merchant_name(&s, &ui, &id).await?;
    let here = format!("{}/{sid}", base(&id));
    match f.get("action") {
        "rotate" => {
            let (_, secret) = s
                .engine
                .rotate_event_secret(&id, &sid)
                .await
                .map_err(|e| fail(&ui, ApiError::from_engine(e, "event subscription")))?;
            let shown = Shown {
                flash: Flash {
                    saved: Some("New secret issued.".into()),
                    error: None,
                },
                secret: Some(&secret),
                ..Shown::default()
            };
            show(&s, &ui, &id, &sid, &shown).await
        }
        "delete" => {
            s.engine
                .delete_event_subscription(&id, &sid)
                .await
                .map_err(|e| fail(&ui, ApiError::from_engine(e, "event subscription")))?;
            Ok(see_other(&format!(
                "{}?saved={}",
                base(&id),
                enc("Subscription deleted.")
            )))
        }
        _ => {
            let typed = from_form(&f);
            match s.engine.update_event_subscription(&id, &sid, &typed).await {
                Ok(_) => Ok(see_other(&format!("{here}?saved={}", enc("Saved.")))),
                Err(e) => {
                    let e = ApiError::from_engine(e, "event subscription");
                    if e.status != axum::http::StatusCode::UNPROCESSABLE_ENTITY {
                        return Err(fail(&ui, e));
                    }
                    let shown = Shown {
                        typed: Some(&typed),
                        error: Some(&e),
                        ..Shown::default()
                    };
                    show(&s, &ui, &id, &sid, &shown).await.map(unprocessable)
                }
            }
        }
    }
}

pub(super) async fn delivery_replay(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, sid, did)): Path<(String, String, String)>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    merchant_name(&s, &ui, &id).await?;
    s.engine
        .replay_event_delivery(&id, &sid, &did)
        .await
        .map_err(|e| fail(&ui, ApiError::from_engine(e, "event delivery")))?;
    Ok(see_other(&format!(
        "{}/{sid}?saved={}",
        base(&id),
        enc("Replay queued.")
    )))
}

/// What a subscriber receives, and when it is tried again: the events, the
/// body and the retry schedule (the README's catalogue has example bodies).
fn catalogue() -> Markup {
    html! {
        section #catalogue {
            h2 { "What is sent" }
            p.hint { "Each delivery is a POST of " code { "{\"type\", \"timestamp\", \"data\"}" } " with the headers "
                code { "webhook-id" } " (the same on every retry and replay: dedupe on it), " code { "webhook-timestamp" }
                " and " code { "webhook-signature" } ". Answer any 2xx within 15 s." }
            table { thead { tr { th { "Event" } th { "When" } th { "data" } } }
              tbody {
                tr { td { code { "shipment.completed" } } td { "the store has every package of a shipment" } td { "the shipment, its store order, packages with tracking, lines, the store fulfillment ids" } }
                tr { td { code { "shipment.error" } } td { "shipsync gave up on a shipment" } td { "the same, with " code { "error" } } }
                tr { td { code { "order.sent" } } td { "an order reached the warehouse" } td { "the order, its store order, the warehouse order number, the lines" } }
                tr { td { code { "order.error" } } td { "an order could not be sent" } td { "the same, with " code { "error" } } }
                tr { td { code { "order.cancelled" } } td { "an order was cancelled in the store" } td { "the same, with " code { "reason" } } }
              } }
            p.hint { "Not answered with a 2xx, a delivery is tried again after about 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h and 12 h (±20 %); then it is failed and the subscription failing (an alert, where a policy watches retries.exhausted) until a delivery succeeds again, e.g. a Replay. Deliveries of one shipment or order arrive in order." }
        }
    }
}
