//! A merchant's mappings page (issue 15): shipping-method rules (ordered,
//! with the default), SKU aliases, kit recipes and carriers as one form
//! over the same functions as `/api/v1/merchants/{id}/mappings`. *Preview*
//! posts the edited set to the preview and shows what it would change,
//! without saving; *Save* replaces the document (a refused rule is shown
//! next to its row, with the form as typed).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde_json::{Value, json};
use shipsync_core::mappings::{Mappings, RecipeSource};
use shipsync_engine::mappings::Preview;

use super::layout::{Flash, Page, csrf, enc, fail, flash, page, see_other, unprocessable};
use super::session::{Form, Ui, checked_form};
use crate::AppState;
use crate::api::mappings as api;
use crate::api::merchants;
use crate::error::ApiError;

/// Blank rows offered under each table, to add entries.
const NEW_ROWS: usize = 2;

/// What the page shows besides the document.
#[derive(Default)]
struct Shown {
    preview: Option<Preview>,
    /// The refused rule (`ship_methods.rules[1]`, …) and why.
    error: Option<(String, String)>,
}

fn opt(f: &Form, k: &str) -> Option<String> {
    let v = f.get(k).trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// `KIT = A x2, B` (one recipe a line) → recipes; a component without `x`
/// is one unit. Bad lines are passed on as they read, for the engine to
/// refuse naming the recipe.
fn parse_recipes(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (kit, rest) = l.split_once('=').unwrap_or((l, ""));
            let components: Vec<Value> = rest
                .split(',')
                .filter(|c| !c.trim().is_empty())
                .map(|c| {
                    let c = c.trim();
                    match c.rsplit_once(" x") {
                        Some((sku, n)) if n.trim().parse::<u64>().is_ok() => {
                            json!({"sku": sku.trim(), "quantity": n.trim().parse::<u64>().unwrap_or(0)})
                        }
                        _ => json!({"sku": c, "quantity": 1}),
                    }
                })
                .collect();
            json!({"kit_sku": kit.trim(), "components": components, "source": "person"})
        })
        .collect()
}

fn recipes_text(doc: &Mappings) -> String {
    doc.kit_recipes
        .iter()
        .filter(|k| k.source == RecipeSource::Person)
        .map(|k| {
            let parts: Vec<String> = k
                .components
                .iter()
                .map(|c| format!("{} x{}", c.sku, c.quantity))
                .collect();
            format!("{} = {}", k.kit_sku, parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The document the form describes. Rules are ordered by their `position`
/// field (ties keep the table's order); rows marked for deletion, and blank
/// new rows, are left out.
fn from_form(f: &Form) -> Value {
    let count = |k: &str| f.get(k).parse::<usize>().unwrap_or(0);
    let mut rules: Vec<(f64, usize, Value)> = Vec::new();
    for i in 0..count("rules") {
        let k = |n: &str| format!("rule{i}_{n}");
        if f.has(&k("delete")) || opt(f, &k("ship_via")).is_none() {
            continue;
        }
        let position = f
            .get(&k("position"))
            .trim()
            .parse::<f64>()
            .unwrap_or(i as f64 + 1.0);
        rules.push((
            position,
            i,
            json!({
                "match": {"title": opt(f, &k("title")), "code": opt(f, &k("code")),
                          "carrier_identifier": opt(f, &k("carrier_identifier")),
                          "source": opt(f, &k("source"))},
                "case_insensitive": f.has(&k("case_insensitive")),
                "ship_via": opt(f, &k("ship_via")),
                "carrier": opt(f, &k("carrier")),
                "service": opt(f, &k("service")),
            }),
        ));
    }
    rules.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let default = opt(f, "default_ship_via").map(|v| {
        json!({"ship_via": v, "carrier": opt(f, "default_carrier"), "service": opt(f, "default_service")})
    });
    let aliases: Vec<Value> = (0..count("aliases"))
        .filter(|i| !f.has(&format!("alias{i}_delete")))
        .filter_map(|i| {
            let (s, w) = (
                opt(f, &format!("alias{i}_store_sku")),
                opt(f, &format!("alias{i}_warehouse_item")),
            );
            (s.is_some() || w.is_some())
                .then(|| json!({"store_sku": s.unwrap_or_default(), "warehouse_item": w.unwrap_or_default()}))
        })
        .collect();
    let carriers: Vec<Value> = (0..count("carriers"))
        .filter(|i| !f.has(&format!("carrier{i}_delete")))
        .filter_map(|i| {
            let k = |n: &str| format!("carrier{i}_{n}");
            let (w, s) = (opt(f, &k("warehouse_carrier")), opt(f, &k("store_company")));
            (w.is_some() || s.is_some()).then(|| {
                json!({"warehouse_carrier": w.unwrap_or_default(), "store_company": s.unwrap_or_default(),
                       "tracking_url_template": opt(f, &k("tracking_url_template"))})
            })
        })
        .collect();
    json!({
        "ship_methods": {"rules": rules.into_iter().map(|r| r.2).collect::<Vec<_>>(), "default": default},
        "sku_aliases": aliases,
        "kit_recipes": parse_recipes(f.get("recipes")),
        "carriers": carriers,
    })
}

/// The error box of a row, when the refused rule is it (or inside it).
fn row_error(shown: &Shown, rule: &str) -> Markup {
    let why = shown.error.as_ref().filter(|(r, _)| {
        r == rule || r.starts_with(&format!("{rule}.")) || r.starts_with(&format!("{rule}["))
    });
    html! { @if let Some((_, why)) = why { tr.error-row { td colspan="12" { p.field-error role="alert" { (why) } } } } }
}

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn form(
    ui: &Ui,
    id: &str,
    doc: &Mappings,
    learned: &[&shipsync_core::mappings::KitRecipe],
    shown: &Shown,
) -> Markup {
    let rules = &doc.ship_methods.rules;
    let d = doc.ship_methods.default.as_ref();
    html! {
        form #mappings-form method="post" action={"/merchants/" (id) "/mappings"} {
            (csrf(ui))
            input type="hidden" name="rules" value=(rules.len() + NEW_ROWS);
            input type="hidden" name="aliases" value=(doc.sku_aliases.len() + NEW_ROWS);
            input type="hidden" name="carriers" value=(doc.carriers.len() + NEW_ROWS);
            div.card #ship-methods {
                h2 { "Shipping methods" }
                p.hint { "Rules match the store's shipping line in order; the first that matches wins. An empty match field matches anything. Change a rule's position to move it; leave Ship via empty on a new row to add nothing." }
                table {
                    thead { tr { th { "#" } th { "Title" } th { "Code" } th { "Carrier identifier" } th { "Source" } th { "Ignore case" }
                        th { "Ship via" } th { "Carrier" } th { "Service" } th { "Delete" } } }
                    tbody {
                        @for i in 0..(rules.len() + NEW_ROWS) {
                            @let r = rules.get(i);
                            @let k = |n: &str| format!("rule{i}_{n}");
                            tr data-rule=(i) {
                                td { input.narrow type="number" step="any" name=(k("position")) value=(i + 1) aria-label="Position"; }
                                td { input type="text" name=(k("title")) value=(r.map_or("", |r| s(&r.matches.title))); }
                                td { input type="text" name=(k("code")) value=(r.map_or("", |r| s(&r.matches.code))); }
                                td { input type="text" name=(k("carrier_identifier")) value=(r.map_or("", |r| s(&r.matches.carrier_identifier))); }
                                td { input type="text" name=(k("source")) value=(r.map_or("", |r| s(&r.matches.source))); }
                                td { input type="checkbox" name=(k("case_insensitive")) value="1" checked[r.is_none_or(|r| r.case_insensitive)]; }
                                td { input type="text" name=(k("ship_via")) value=(r.map_or("", |r| r.ship_via.as_str())); }
                                td { input type="text" name=(k("carrier")) value=(r.map_or("", |r| s(&r.carrier))); }
                                td { input type="text" name=(k("service")) value=(r.map_or("", |r| s(&r.service))); }
                                td { @if r.is_some() { input type="checkbox" name=(k("delete")) value="1" aria-label="Delete"; } }
                            }
                            (row_error(shown, &format!("ship_methods.rules[{i}]")))
                        }
                    }
                }
                h3 { "Default" }
                p.hint { "What an order whose method matches no rule gets. Empty: such an order waits in error until a rule exists." }
                div.row {
                    input type="text" name="default_ship_via" placeholder="Ship via" aria-label="Default ship via" value=(d.map_or("", |d| d.ship_via.as_str()));
                    input type="text" name="default_carrier" placeholder="Carrier" aria-label="Default carrier" value=(d.map_or("", |d| s(&d.carrier)));
                    input type="text" name="default_service" placeholder="Service" aria-label="Default service" value=(d.map_or("", |d| s(&d.service)));
                }
                table { tbody { (row_error(shown, "ship_methods.default")) } }
            }
            div.card #sku-aliases {
                h2 { "SKU aliases" }
                p.hint { "A store SKU the warehouse knows under another item number. Several store SKUs may be one item." }
                table {
                    thead { tr { th { "Store SKU" } th { "Warehouse item" } th { "Delete" } } }
                    tbody { @for i in 0..(doc.sku_aliases.len() + NEW_ROWS) {
                        @let a = doc.sku_aliases.get(i);
                        tr {
                            td { input type="text" name={"alias" (i) "_store_sku"} value=(a.map_or("", |a| a.store_sku.as_str())); }
                            td { input type="text" name={"alias" (i) "_warehouse_item"} value=(a.map_or("", |a| a.warehouse_item.as_str())); }
                            td { @if a.is_some() { input type="checkbox" name={"alias" (i) "_delete"} value="1" aria-label="Delete"; } }
                        }
                        (row_error(shown, &format!("sku_aliases[{i}]")))
                    } }
                }
            }
            div.card #kit-recipes {
                h2 { "Kit recipes" }
                p.hint { "Set by a person, one a line: " code { "KIT-SKU = COMPONENT x2, OTHER x1" } ". A person's recipe wins over a learned one for its kit." }
                textarea name="recipes" rows="4" { (recipes_text(doc)) }
                table { tbody { (row_error(shown, "kit_recipes")) } }
                @if !learned.is_empty() {
                    h3 { "Learned" }
                    p.hint { "Read from shipments and Deposco's items. To change one, write the kit above." }
                    table {
                        thead { tr { th { "Kit" } th { "Components" } th { "Source" } } }
                        tbody { @for k in learned {
                            tr { td { (k.kit_sku) } td { @for (n, c) in k.components.iter().enumerate() { @if n > 0 { ", " } (c.sku) " × " (c.quantity) } } td { (k.source.as_str()) } }
                        } }
                    }
                }
            }
            div.card #carriers {
                h2 { "Carriers" }
                p.hint { "The store's name for a warehouse carrier, and a tracking URL with " code { "{tracking_number}" } "." }
                table {
                    thead { tr { th { "Warehouse carrier" } th { "Store carrier" } th { "Tracking URL template" } th { "Delete" } } }
                    tbody { @for i in 0..(doc.carriers.len() + NEW_ROWS) {
                        @let c = doc.carriers.get(i);
                        tr {
                            td { input type="text" name={"carrier" (i) "_warehouse_carrier"} value=(c.map_or("", |c| c.warehouse_carrier.as_str())); }
                            td { input type="text" name={"carrier" (i) "_store_company"} value=(c.map_or("", |c| c.store_company.as_str())); }
                            td { input type="text" name={"carrier" (i) "_tracking_url_template"} value=(c.map_or("", |c| s(&c.tracking_url_template))); }
                            td { @if c.is_some() { input type="checkbox" name={"carrier" (i) "_delete"} value="1" aria-label="Delete"; } }
                        }
                        (row_error(shown, &format!("carriers[{i}]")))
                    } }
                }
            }
            div.actions {
                button #preview type="submit" name="action" value="preview" { "Preview" }
                button.primary #save type="submit" name="action" value="save" { "Save" }
            }
        }
    }
}

fn preview_table(p: &Preview) -> Markup {
    html! {
        div.card #preview-result {
            h2 { "Preview" }
            p.hint { "What these mappings would change in the latest orders and shipments. Nothing has been saved or sent." }
            @if p.items.is_empty() {
                p { "No order or shipment would change." }
            } @else {
                table {
                    thead { tr { th { "Record" } th { "Field" } th { "Before" } th { "After" } th { "State" } } }
                    tbody { @for item in &p.items {
                        @let href = if item.kind == "order" { format!("/orders/{}", item.id) } else { format!("/shipments/{}", item.id) };
                        @let state = if item.status_before == item.status_after { item.status_before.clone() } else { format!("{} → {}", item.status_before, item.status_after) };
                        @if item.changes.is_empty() {
                            tr { td { a href=(href) { (item.kind) " " (item.name) } } td {} td {} td {} td.state { (state) } }
                        }
                        @for c in &item.changes {
                            tr { td { a href=(href) { (item.kind) " " (item.name) } } td { code { (c.field) } } td { (shown_value(&c.before)) } td { (shown_value(&c.after)) } td.state { (state) } }
                        }
                    } }
                }
            }
        }
    }
}

fn shown_value(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render(
    ui: &Ui,
    id: &str,
    name: &str,
    doc: &Mappings,
    learned: &[&shipsync_core::mappings::KitRecipe],
    f: &Flash,
    shown: &Shown,
) -> axum::response::Response {
    page(
        ui,
        &format!("Mappings · {name}"),
        "Merchants",
        html! {
            div.row { h1 { "Mappings · " (name) } a.button href={"/merchants/" (id)} { "Back to merchant" } }
            (flash(f))
            @if let Some((rule, why)) = &shown.error { div.error-box role="alert" { "Not saved: " (rule) ": " (why) } }
            @if let Some(p) = &shown.preview { (preview_table(p)) }
            (form(ui, id, doc, learned, shown))
        },
    )
}

pub(super) async fn mappings_page(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let m = merchants::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let doc = api::mappings(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let learned: Vec<_> = doc
        .kit_recipes
        .iter()
        .filter(|k| k.source != RecipeSource::Person)
        .collect();
    Ok(render(
        &ui,
        &id,
        &m.name,
        &doc,
        &learned,
        &f,
        &Shown::default(),
    ))
}

/// The refused rule of a 422, and why.
fn refused(e: &ApiError) -> Option<(String, String)> {
    (e.status == StatusCode::UNPROCESSABLE_ENTITY).then(|| {
        let rule = e
            .extra
            .as_ref()
            .and_then(|x| x["rule"].as_str())
            .unwrap_or("mappings")
            .to_string();
        (rule, e.message.clone())
    })
}

pub(super) async fn mappings_post(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let m = merchants::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let edited = from_form(&f);
    let stored = api::mappings(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let learned: Vec<_> = stored
        .kit_recipes
        .iter()
        .filter(|k| k.source != RecipeSource::Person)
        .collect();
    // The form as typed, to show again (a document that does not read as
    // mappings is shown as stored, with the error).
    let typed: Mappings = serde_json::from_value(edited.clone()).unwrap_or_else(|_| stored.clone());
    let result = if f.get("action") == "preview" {
        api::preview_mappings(
            &s,
            &ui.principal,
            &id,
            Some(edited),
            shipsync_engine::mappings::DEFAULT_LIMIT,
        )
        .await
        .map(Some)
    } else {
        api::save_mappings(&s, &ui.principal, &id, edited, false)
            .await
            .map(|_| None)
    };
    match result {
        Ok(None) => Ok(see_other(&format!(
            "/merchants/{id}/mappings?saved={}",
            enc("Mappings saved.")
        ))),
        Ok(Some(preview)) => Ok(render(
            &ui,
            &id,
            &m.name,
            &typed,
            &learned,
            &Flash::default(),
            &Shown {
                preview: Some(preview),
                error: None,
            },
        )),
        Err(e) => match refused(&e) {
            Some(error) => Ok(unprocessable(render(
                &ui,
                &id,
                &m.name,
                &typed,
                &learned,
                &Flash::default(),
                &Shown {
                    preview: None,
                    error: Some(error),
                },
            ))),
            None => Err(fail(&ui, e)),
        },
    }
}
