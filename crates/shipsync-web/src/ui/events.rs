//! The Events pages: inbound webhook deliveries, one's raw headers and
//! body, and replay.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use maud::html;
use shipsync_core::states::EventOutcome;

use super::layout::{Flash, Page, csrf, fail, flash, page, see_other, status_badge};
use super::session::{Ui, checked_form};
use super::time::ago;
use crate::AppState;
use crate::api::events;

pub(super) async fn event_list(State(s): State<AppState>, ui: Ui) -> Page {
    let rows = s
        .engine
        .events(
            &shipsync_db::events::EventFilter {
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
                    td { a href={"/events/" (e.id)} { (ago(e.received_at)) } }
                    td { (e.merchant_id) }
                    td { @if e.verified { "signed" } @else { "unsigned" } }
                    td { (status_badge(e.outcome.as_str())) }
                } } } }
        },
    ))
}

pub(super) async fn event_show(
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
            h1 { "Event " (e.id) " " (status_badge(e.outcome.as_str())) }
            (flash(&f))
            @if let Some(d) = &e.detail { div.notice { (d) } }
            form method="post" action={"/events/" (e.id) "/replay"} { (csrf(&ui)) button type="submit" { "Replay" } }
            h2 { "Headers (signatures redacted)" }
            pre { (serde_json::to_string_pretty(&raw["headers"]).unwrap_or_default()) }
            h2 { "Body" }
            @match raw["body"].as_str() {
                Some(body) => pre { (body) },
                None => p.hint { @if e.body_size > 0 && EventOutcome::COUNTED.contains(&e.outcome) { "Removed by retention (SHIPSYNC_RETAIN_EVENT_BODIES_DAYS)." } @else { "Not stored." } },
            }
        },
    ))
}

pub(super) async fn event_replay(
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
