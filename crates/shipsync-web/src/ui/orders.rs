//! The Orders pages: the list with its search, and an order's page.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use shipsync_core::order_lifecycle::Skip;
use shipsync_core::states::{OrderStatus, Source};

use super::layout::{
    Flash, Page, Search, activity, csrf, enc, fail, flash, list, page, see_other, sources,
    status_badge, text,
};
use super::session::{Ui, checked_form};
use super::time::{ago, at};
use crate::AppState;
use crate::api::{connections, orders, shipments};
use crate::error::ApiError;

pub(super) async fn order_list(State(s): State<AppState>, ui: Ui, Query(q): Query<Search>) -> Page {
    let search = q.q.clone().unwrap_or_default();
    let status = q.status.clone().and_then(|x| x.parse::<OrderStatus>().ok());
    let rows = orders::search(&s, &ui.principal, status, &search, 200)
        .await
        .map_err(|e| fail(&ui, e))?;
    let attention = rows
        .iter()
        .filter(|o| o.status == OrderStatus::NeedsAttention)
        .count();
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
                        @for st in OrderStatus::ALL { option value=(st) selected[status == Some(*st)] { (st.as_str().replace('_', " ")) } }
                    } }
                div { label for="q" { "Order name or tracking number" } input #q type="search" name="q" value=(search) placeholder="#1001 or 1Z…"; }
                button type="submit" { "Search" }
            }
            @if attention > 0 && status != Some(OrderStatus::NeedsAttention) {
                div.notice #needs-attention role="status" {
                    b { "Needs attention: " (attention) " order(s) below." } " Each says what a person must do. "
                    a href="/orders?status=needs_attention" { "Show only those" }
                }
            }
            table #orders { thead { tr { th { "Order" } th { "Status" } th { "Deposco number" } th { "Problem" } th { "Updated" } } }
                tbody { @for o in &rows {
                    @let flagged = o.status == OrderStatus::NeedsAttention;
                    tr class=[flagged.then_some("attention")] {
                        td { @if flagged { span.flag title="Needs attention" aria-hidden="true" { "⚠" } " " } a href={"/orders/" (o.id)} { (o.name) } }
                        td { (status_badge(o.status.as_str())) }
                        td { (o.warehouse_number.as_deref().unwrap_or("—")) }
                        td { @if flagged { b { "Needs attention: " } } (o.error.as_deref().unwrap_or("")) } td { (ago(o.updated_at)) }
                    }
                } } }
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
    let store = store_of(&s, &ui, d["connection_id"].as_str()).await?;
    let mut ships = Vec::new();
    for sid in list(&d["shipments"]) {
        if let Some(sid) = sid.as_str()
            && let Ok(sh) = shipments::load(&s, &ui.principal, sid).await
        {
            ships.push(sh);
        }
    }
    let status = d["status"].as_str().unwrap_or("");
    let held = status == OrderStatus::Held.as_str();
    let lines = list(&d["lines"]);
    Ok(page(
        &ui,
        "Order",
        "Orders",
        html! {
            h1 { "Order " (text(&d["name"])) " " span #order-status { (status_badge(status)) } }
            @if let Some(err) = d["error"].as_str() {
                div.error-box #order-problem role="alert" { b { (problem_title(status)) } " " (err) }
            }
            @if held || d["hold_reason"].is_string() {
                div.notice #order-hold {
                    b { "Held: " } (d["hold_reason"].as_str().unwrap_or("waiting"))
                    @if d["hold_until"].is_string() { ". Goes to Deposco " span #hold-until { (at(&d["hold_until"])) } " unless the store cancels it first; edits meanwhile cost nothing in the warehouse." }
                    @else { ". Goes to Deposco when the reason goes away." }
                }
            }
            (flash(&f))
            div.sides {
                div.card #store-side { h2 { "In the store" } dl.facts {
                    dt { "Store order" } dd #store-order { (store_order(&store, d["store_order_id"].as_str().unwrap_or(""))) }
                    dt { "First seen via" } dd #first-seen { (first_seen(&d["first_seen_via"])) }
                    dt { "Created" } dd { (at(&d["created_at"])) }
                    dt { "Updated" } dd { (at(&d["updated_at"])) }
                } }
                div.card #warehouse-side { h2 { "In the warehouse (Deposco)" } dl.facts {
                    dt { "Deposco order number" } dd #deposco-number { (text(&d["warehouse_order_number"])) }
                    dt { "Sent to Deposco" } dd { (at(&d["sent_at"])) }
                    dt { "Shipments" } dd { (ships.len()) }
                } }
            }
            div.actions { @for (a, label) in [("reprocess", "Reprocess"), ("archive", "Archive")] {
                form method="post" action={"/orders/" (id) "/" (a)} { (csrf(&ui)) button type="submit" { (label) } }
            } }
            div.card { h2 { "Lines" }
                p.hint { "The store's view on the left, the warehouse's on the right. A skipped line is never sent to Deposco." }
                table #order-lines {
                    thead {
                        tr { td colspan="2" {} th.side colspan="3" scope="colgroup" { "In the store" } th.side colspan="2" scope="colgroup" { "In the warehouse" } }
                        tr { th { "SKU" } th { "Name" } th { "Ordered" } th { "Not sent because" } th { "Fulfilled in the store" } th { "Sent to Deposco" } th { "Shipped" } }
                    }
                    tbody { @for row in grouped(&lines) {
                        @match row {
                            Row::Group(title) => tr.group { th colspan="7" scope="rowgroup" { span.status.bundle { "bundle" } " " (title) } },
                            Row::Line(l) => tr class=[line_class(l)] {
                                td { (text(&l["sku"])) @if l["kit"].is_object() { " " span.status { "kit" } } }
                                td { (text(&l["name"])) }
                                td.qty-ordered { (text(&l["quantity"])) }
                                td.skipped { (l["skipped"].as_str().map(skip_words).unwrap_or_default()) }
                                td.qty-fulfilled { (text(&l["fulfilled_quantity"])) }
                                td.qty-sent { (text(&l["sent_quantity"])) }
                                td.qty-shipped { (text(&l["shipped_quantity"])) }
                            },
                        }
                    } }
                } }
            div.card { h2 { "Shipments" }
                @if ships.is_empty() { p { "No shipment yet." } } @else {
                    table { thead { tr { th { "Shipment" } th { "Status" } th { "Source" } th { "Received" } } }
                        tbody { @for sh in &ships { tr {
                            td { a href={"/shipments/" (sh.id)} { (sh.number) } }
                            td { (status_badge(sh.status.as_str())) }
                            td { (sources(&sh.sources)) }
                            td { (at(sh.received_at)) }
                        } } } }
                }
            }
            (activity(&d["activity"]))
        },
    ))
}

/// What the problem box of an order says before its `error` (which says
/// what a person must do).
fn problem_title(status: &str) -> &'static str {
    match status.parse::<OrderStatus>() {
        Ok(OrderStatus::NeedsAttention) => "Needs attention. What to do:",
        Ok(OrderStatus::Error) => "Error. What to do:",
        _ => "Last problem:",
    }
}

/// How shipsync first learned of the order (`first_seen_via`).
fn first_seen(via: &Value) -> &'static str {
    match via.as_str().map(str::parse::<Source>) {
        Some(Ok(Source::Webhook)) => "order webhook",
        Some(Ok(Source::Poll)) => "scheduled pull (the fallback: no webhook brought it)",
        _ => "—",
    }
}

/// Why a line is not sent to Deposco (`lines[].skipped`), in words; an
/// unknown word is shown as it is.
fn skip_words(word: &str) -> String {
    match Skip::parse(word) {
        Some(Skip::DoesNotRequireShipping) => "does not require shipping".into(),
        Some(Skip::OtherLocation) => "another location".into(),
        Some(Skip::FulfillmentHold) => "on hold in Shopify".into(),
        Some(Skip::Removed) => "removed in the store".into(),
        Some(Skip::Fulfilled) => "fulfilled elsewhere".into(),
        None => word.replace('_', " "),
    }
}

fn line_class(l: &Value) -> Option<&'static str> {
    match (l["group"].is_string(), l["skipped"].is_string()) {
        (true, true) => Some("in-group skipped-line"),
        (true, false) => Some("in-group"),
        (false, true) => Some("skipped-line"),
        (false, false) => None,
    }
}

/// A row of the lines table: a bundle's header, or a line.
enum Row<'a> {
    Group(&'a str),
    Line(&'a Value),
}

/// The lines in the store's order, except that the lines of a Shopify
/// bundle (line item group) follow its header, where its first line was.
fn grouped(lines: &[Value]) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for l in lines {
        match l["group"].as_str() {
            None => rows.push(Row::Line(l)),
            Some(g) if done.contains(&g) => {}
            Some(g) => {
                done.push(g);
                rows.push(Row::Group(g));
                rows.extend(
                    lines
                        .iter()
                        .filter(|x| x["group"].as_str() == Some(g))
                        .map(Row::Line),
                );
            }
        }
    }
    rows
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

/// The store settings of a connection as the API shows them (`store`: its
/// platform and shop URL), or null without a connection.
pub(super) async fn store_of(
    s: &AppState,
    ui: &Ui,
    connection_id: Option<&str>,
) -> Result<Value, Response> {
    let Some(id) = connection_id else {
        return Ok(Value::Null);
    };
    let c = connections::load(s, &ui.principal, id)
        .await
        .map_err(|e| fail(ui, e))?;
    Ok(connections::render(&c, &s.config.public_url)["store"].clone())
}

/// The page of a store order in the Shopify admin,
/// `{shop_url}/admin/orders/{id}` where the id is the tail of the order's
/// GID (`gid://shopify/Order/123`); none for another platform or id.
fn shopify_admin_url(store: &Value, store_order_id: &str) -> Option<String> {
    if store["platform"].as_str().is_some_and(|p| p != "shopify") {
        return None;
    }
    let shop = store["shop_url"].as_str()?.trim().trim_end_matches('/');
    let id = store_order_id
        .strip_prefix("gid://shopify/Order/")?
        .split('?')
        .next()?;
    (!shop.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{shop}/admin/orders/{id}"))
}

/// A store order: a link to its page in the store's admin, opened in a new
/// tab (the GID on hover), or the bare id when there is no such page.
pub(super) fn store_order(store: &Value, store_order_id: &str) -> Markup {
    html! {
        @match shopify_admin_url(store, store_order_id) {
            Some(href) => a.external href=(href) target="_blank" rel="noopener noreferrer" title=(store_order_id) {
                "Open in Shopify admin" span.sr-only { " (opens in a new tab)" }
            },
            None => (store_order_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn store_orders_link_to_the_shopify_admin() {
        let shop = json!({"platform": "shopify", "shop_url": "https://acme.myshopify.com/"});
        let cases = [
            (
                &shop,
                "gid://shopify/Order/123",
                Some("https://acme.myshopify.com/admin/orders/123"),
            ),
            (
                &shop,
                "gid://shopify/Order/123?x=1",
                Some("https://acme.myshopify.com/admin/orders/123"),
            ),
            (&shop, "gid://shopify/DraftOrder/123", None),
            (&shop, "gid://shopify/Order/", None),
            (&shop, "gid://shopify/Order/12a", None),
            (&shop, "123", None),
            (
                &json!({"shop_url": "https://b.example"}),
                "gid://shopify/Order/9",
                Some("https://b.example/admin/orders/9"),
            ),
            (
                &json!({"platform": "woocommerce", "shop_url": "https://w.example"}),
                "gid://shopify/Order/9",
                None,
            ),
            (
                &json!({"platform": "shopify"}),
                "gid://shopify/Order/9",
                None,
            ),
            (&Value::Null, "gid://shopify/Order/9", None),
        ];
        for (store, id, want) in cases {
            assert_eq!(
                shopify_admin_url(store, id).as_deref(),
                want,
                "{store} {id}"
            );
        }
        let link = store_order(&shop, "gid://shopify/Order/123").into_string();
        assert!(
            link.contains("href=\"https://acme.myshopify.com/admin/orders/123\"")
                && link.contains("target=\"_blank\" rel=\"noopener noreferrer\""),
            "{link}"
        );
        assert_eq!(store_order(&shop, "123").into_string(), "123");
    }

    #[test]
    fn skipped_lines_say_why_in_words() {
        let words: Vec<String> = Skip::ALL.iter().map(|k| skip_words(k.as_str())).collect();
        assert_eq!(
            words,
            [
                "does not require shipping",
                "another location",
                "on hold in Shopify",
                "removed in the store",
                "fulfilled elsewhere"
            ]
        );
        assert_eq!(skip_words("some_new_reason"), "some new reason");
    }

    #[test]
    fn a_bundles_lines_follow_its_header() {
        let lines = vec![
            json!({"sku": "TENT", "group": "Camping"}),
            json!({"sku": "SOCKS", "group": null}),
            json!({"sku": "POLES", "group": "Camping"}),
            json!({"sku": "GIFT"}),
        ];
        let shown: Vec<String> = grouped(&lines)
            .into_iter()
            .map(|r| match r {
                Row::Group(g) => format!("[{g}]"),
                Row::Line(l) => l["sku"].as_str().unwrap_or("").to_string(),
            })
            .collect();
        assert_eq!(shown, ["[Camping]", "TENT", "POLES", "SOCKS", "GIFT"]);
    }
}
