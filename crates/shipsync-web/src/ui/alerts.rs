//! The Alerts page (Administrators and Staff): open, acknowledged and
//! closed alerts in tabs, each with its records linked to their pages and,
//! while open, an Acknowledge button.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use maud::html;
use serde::Deserialize;
use shipsync_core::states::AlertStatus;

use super::layout::{
    Flash, Page, csrf, enc, fail, flash, list, page, see_other, status_badge, text,
};
use super::session::{Ui, checked_form};
use super::time::at;
use crate::AppState;
use crate::api::alerts::{render, require_staff};
use crate::api::mappings::who;

#[derive(Deserialize, Default)]
pub struct AlertsQuery {
    status: Option<String>,
    saved: Option<String>,
    error: Option<String>,
}

pub async fn alert_list(State(s): State<AppState>, ui: Ui, Query(q): Query<AlertsQuery>) -> Page {
    require_staff(&ui.principal).map_err(|e| fail(&ui, e))?;
    let status: AlertStatus = q
        .status
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(AlertStatus::Open);
    let rows = s
        .engine
        .alerts(ui.principal.caller(), Some(status), None, 200)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let f = Flash {
        saved: q.saved,
        error: q.error,
    };
    Ok(page(
        &ui,
        "Alerts",
        "Alerts",
        html! {
            h1 { "Alerts" }
            (flash(&f))
            p.hint { "An alert closes by itself when none of its records is in its condition any more. Policies and channels: "
                a href="/alert-policies" { "Alert policies" } ", " a href="/notification-channels" { "Notification channels" } "." }
            nav.tabs aria-label="Alert status" {
                @for st in AlertStatus::ALL {
                    a href={"/alerts?status=" (st)} class=[(*st == status).then_some("active")] { (st.as_str()) }
                }
            }
            @if rows.is_empty() {
                p { "No " (status.as_str()) " alert." }
            } @else {
                table {
                    thead { tr { th { "Opened" } th { "Event" } th { "What" } th { "Records" } th { "Status" } th {} } }
                    tbody {
                        @for row in &rows {
                            @let a = render(row);
                            tr id={"alert-" (row.id)} {
                                td { (at(&a["opened_at"])) }
                                td { code { (text(&a["event"])) } }
                                td { (text(&a["summary"])) }
                                td {
                                    @for sub in list(&a["subjects"]).iter().take(20) {
                                        @if let Some(path) = sub["path"].as_str() {
                                            a href=(path) { (text(&sub["label"])) } br;
                                        } @else {
                                            (text(&sub["label"])) br;
                                        }
                                    }
                                    @if row.subjects.len() > 20 { "… and " (row.subjects.len() - 20) " more" }
                                }
                                td { (status_badge(row.status.as_str()))
                                    @if let Some(by) = &row.acknowledged_by { br; small { "by " (by) } } }
                                td {
                                    @if row.status == AlertStatus::Open {
                                        form method="post" action={"/alerts/" (row.id) "/acknowledge"} {
                                            (csrf(&ui))
                                            button type="submit" { "Acknowledge" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn alert_acknowledge(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    require_staff(&ui.principal).map_err(|e| fail(&ui, e))?;
    let by = who(&ui.principal);
    Ok(
        match s
            .engine
            .acknowledge_alert(ui.principal.caller(), &id, &by)
            .await
        {
            Ok(_) => see_other(&format!("/alerts?saved={}", enc("Alert acknowledged."))),
            Err(e) => {
                let e = crate::error::ApiError::from(e);
                see_other(&format!("/alerts?status=closed&error={}", enc(&e.message)))
            }
        },
    )
}
