//! The Orders pages: the list with its search, and an order's page.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use maud::html;
use serde_json::Value;

use super::layout::{Flash, Page, csrf, enc, fail, flash, page, see_other, status_badge};
use super::session::{Ui, checked_form};
use super::shipments::ShipmentQuery;
use crate::AppState;
use crate::api::{orders, shipments};
use crate::error::ApiError;
use crate::json::time;

pub(super) async fn order_list(
    State(s): State<AppState>,
    ui: Ui,
    Query(q): Query<ShipmentQuery>,
) -> Page {
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

pub(super) async fn order_show(
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

pub(super) async fn order_act(
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
