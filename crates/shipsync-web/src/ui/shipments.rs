//! The Shipments pages: the list with its search and bulk actions, and a
//! shipment's page.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use maud::html;
use shipsync_core::states::ShipmentStatus;
use shipsync_engine::ShipmentAction;

use super::layout::{
    Flash, Page, Search, activity, csrf, enc, fail, flash, list, page, see_other, sources,
    status_badge, text,
};
use super::orders::{store_of, store_order};
use super::session::{Ui, checked_form};
use super::time::{ago, at};
use crate::AppState;
use crate::api::shipments;
use crate::error::ApiError;

pub(super) async fn shipment_list(
    State(s): State<AppState>,
    ui: Ui,
    Query(q): Query<Search>,
) -> Page {
    let status = q
        .status
        .clone()
        .and_then(|x| x.parse::<ShipmentStatus>().ok());
    let search = q.q.clone().unwrap_or_default();
    let rows = shipments::search(&s, &ui.principal, status, &search, 200)
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
                        @for st in ShipmentStatus::ALL { option value=(st) selected[status == Some(*st)] { (st) } }
                    } }
                div { label for="q" { "Order name or tracking number" } input #q type="search" name="q" value=(search) placeholder="#1001 or 1Z…"; }
                button type="submit" { "Search" }
            }
            form #bulk method="post" action="/shipments" {
                (csrf(&ui))
                input type="hidden" name="status" value=(status.map_or("", ShipmentStatus::as_str));
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
                        td { (status_badge(sh.status.as_str())) }
                        td { (sources(&sh.sources)) }
                        td { (ago(sh.received_at)) }
                    } } } }
            }
        },
    ))
}

/// Bulk Reprocess / Reset / Archive of the checked shipments, each through
/// the same call as the API (a Merchant user's other-tenant ids fail as
/// not found and change nothing).
pub(super) async fn shipment_bulk(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
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

pub(super) async fn shipment_show(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let d = shipments::detail(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let store_order_id = d["store_order_id"].as_str();
    let store = store_of(&s, &ui, d["connection_id"].as_str()).await?;
    // The store order as sent to the warehouse by the Sales Orders channel,
    // if it was.
    let sent = match (d["connection_id"].as_str(), store_order_id) {
        (Some(c), Some(o)) => s
            .engine
            .order_of_store_order(c, o)
            .await
            .map_err(|e| fail(&ui, e.into()))?,
        _ => None,
    };
    Ok(page(
        &ui,
        "Shipment",
        "Shipments",
        html! {
            h1 { "Shipment " (text(&d["warehouse_shipment_number"])) " " span #shipment-status { (status_badge(d["status"].as_str().unwrap_or(""))) } }
            (flash(&f))
            @if let Some(err) = d["error"].as_str() { div.error-box role="alert" { (err) } }
            div.card { dl.facts {
                dt { "Order" } dd #shipment-order {
                    @if let Some(o) = &sent { a href={"/orders/" (o.id)} { (text(&d["order_name"])) } } @else { (text(&d["order_name"])) }
                    @if let Some(o) = store_order_id { " · " (store_order(&store, o)) }
                }
                @if let Some(n) = sent.as_ref().and_then(|o| o.warehouse_number.as_deref()) {
                    dt { "Deposco order number" } dd #deposco-order { (n) }
                }
                dt { "Sources" } dd { (list(&d["sources"]).iter().map(text).collect::<Vec<_>>().join(" + ")) " (first seen via " (text(&d["first_seen_via"])) ")" }
                dt { "Carrier" } dd { (text(&d["carrier"])) " " (text(&d["service"])) }
                dt { "Received" } dd { (at(&d["received_at"])) }
                dt { "Completed" } dd { (at(&d["completed_at"])) }
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
                        td { (list(&sf["tracking_numbers"]).iter().map(text).collect::<Vec<_>>().join(", ")) } td { (at(&sf["created_at"])) }
                    } } } } }
            (activity(&d["activity"]))
        },
    ))
}

pub(super) async fn shipment_act(
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
