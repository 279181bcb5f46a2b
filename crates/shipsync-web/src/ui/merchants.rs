//! The Merchants pages: the list, adding a merchant, its warehouse
//! credentials, shipment webhooks and webhook key.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};
use shipsync_core::ledger::KitPolicy;
use shipsync_db::merchants::MerchantRow;

use super::layout::{Flash, Page, csrf, enc, fail, flash, page, see_other, status_badge};
use super::session::{Form, Ui, checked_form};
use crate::AppState;
use crate::api::merchants;

/// Whether a merchant takes shipment webhooks without a shared secret.
pub(super) fn receives_unsigned(m: &MerchantRow) -> bool {
    m.webhooks_enabled && m.shared_secret.is_none()
}

/// "signed" or "unsigned": whether the merchant's webhooks must be signed.
pub(super) fn signed_badge(m: &MerchantRow) -> Markup {
    if m.shared_secret.is_some() {
        html! { span.status.signed { "signed" } }
    } else {
        html! { span.status.unsigned title="No shared secret: deliveries are not authenticated" { "unsigned" } }
    }
}

pub(super) async fn merchant_names(
    s: &AppState,
    ui: &Ui,
) -> Result<Vec<(String, String)>, Response> {
    Ok(merchants::visible(s, &ui.principal, None, 500)
        .await
        .map_err(|e| fail(ui, e))?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect())
}

pub(super) async fn merchant_list(
    State(s): State<AppState>,
    ui: Ui,
    Query(f): Query<Flash>,
) -> Page {
    let rows = merchants::visible(&s, &ui.principal, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?;
    Ok(page(
        &ui,
        "Merchants",
        "Merchants",
        html! {
            div.row { h1 { "Merchants" }
                @if ui.principal.scope().is_none() { a.button.primary href="/merchants/new" { "Add merchant" } } }
            (flash(&f))
            table { thead { tr { th { "Name" } th { "Warehouse" } th { "Shipment webhooks" } } }
                tbody { @for m in &rows {
                    @let w: Value = serde_json::from_str(&m.warehouse_json).unwrap_or_default();
                    tr {
                        td { a href={"/merchants/" (m.id)} { (m.name) } }
                        td { "Deposco · " (w["business_unit"].as_str().unwrap_or("")) }
                        td { @if m.webhooks_enabled { (status_badge("on")) " " (signed_badge(m)) } @else { "off" } }
                    }
                } } }
        },
    ))
}

/// The warehouse fields shared by the create and edit pages.
/// `locked`: the user may not change where the credentials go (API URL,
/// business unit): shown read-only.
fn warehouse_fields(w: &Value, locked: bool) -> Markup {
    let auth = &w["auth"];
    html! {
        label for="name" { "Name" }
        input #name type="text" name="name" required value=(w["_name"].as_str().unwrap_or(""));
        label for="api_url" { "Deposco API URL" }
        input #api_url type="url" name="api_url" required readonly[locked] value=(w["api_url"].as_str().unwrap_or("https://api.deposco.com/latest"));
        label for="business_unit" { "Business unit" }
        input #business_unit type="text" name="business_unit" readonly[locked] value=(w["business_unit"].as_str().unwrap_or(""));
        @if locked { p.hint { "Only an Administrator can change where the credentials are sent." } }
        label for="username" { "API username" }
        input #username type="text" name="username" autocomplete="off" value=(auth["username"].as_str().unwrap_or(""));
        label for="password" { "API password" }
        input #password type="password" name="password" autocomplete="new-password";
        p.hint { @if auth["password_set"] == true { "A password is stored; leave blank to keep it. Changing the API URL or business unit clears it unless you type it again." } @else { "Write-only: never shown again once saved." } }
        label for="kit_policy" { "Kit policy" }
        select #kit_policy name="kit_policy" {
            @let first = w["_kit_policy"] == KitPolicy::FirstComponent.as_str();
            option value=(KitPolicy::CompleteKits) selected[!first] { "Complete kits only" }
            option value=(KitPolicy::FirstComponent) selected[first] { "First component ships the kit" }
        }
    }
}

/// The warehouse part of a merchant document from the form.
fn warehouse_patch(f: &Form, keep_password: bool) -> Value {
    let mut w = json!({"platform": "deposco", "api_url": f.get("api_url").trim(), "business_unit": f.get("business_unit").trim()});
    let user = f.get("username").trim();
    if !user.is_empty() {
        let mut auth = json!({"type": "basic", "username": user});
        if !f.get("password").is_empty() {
            auth["password"] = json!(f.get("password"));
        } else if !keep_password {
            auth["password"] = json!("");
        }
        w["auth"] = auth;
    }
    w
}

pub(super) async fn merchant_new(ui: Ui) -> Page {
    ui.principal
        .require_unscoped("create merchants")
        .map_err(|e| fail(&ui, e))?;
    Ok(page(
        &ui,
        "Add merchant",
        "Merchants",
        html! {
            h1 { "Add merchant" }
            div.notice { "Shipment webhooks can only be configured for existing merchants: save this merchant first, then edit it to check " b { "Use webhooks for shipments" } " and copy its Deposco URL." }
            form.card method="post" action="/merchants" {
                (csrf(&ui))
                (warehouse_fields(&json!({}), false))
                div.actions { button.primary type="submit" { "Save" } a.button href="/merchants" { "Cancel" } }
            }
        },
    ))
}

pub(super) async fn merchant_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    let doc = json!({"name": f.get("name"), "warehouse": warehouse_patch(&f, false), "kit_policy": f.get("kit_policy")});
    match merchants::create_merchant(&s, &ui.principal, doc).await {
        Ok(m) => Ok(see_other(&format!(
            "/merchants?saved={}",
            enc(&format!("Merchant {} saved.", m.name))
        ))),
        Err(e) => Err(fail(&ui, e)),
    }
}

pub(super) async fn merchant_edit(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Page {
    let m = merchants::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let r = merchants::render(&s, &m);
    let mut w = r["warehouse"].clone();
    w["_name"] = r["name"].clone();
    w["_kit_policy"] = r["kit_policy"].clone();
    let hooks = &r["shipment_webhooks"];
    Ok(page(
        &ui,
        &m.name,
        "Merchants",
        html! {
            div.row { h1 { (m.name) } a.button #mappings-link href={"/merchants/" (m.id) "/mappings"} { "Mappings" } a.button #events-link href={"/merchants/" (m.id) "/event-subscriptions"} { "Event subscriptions" } }
            (flash(&f))
            form method="post" action={"/merchants/" (m.id)} {
                (csrf(&ui))
                div.card {
                    h2 { "Warehouse" }
                    (warehouse_fields(&w, ui.principal.scope().is_some()))
                }
                div.card #shipment-webhooks {
                    h2 { "Shipment webhooks " (signed_badge(&m)) }
                    @if receives_unsigned(&m) {
                        div.error-box role="alert" { "Deliveries are accepted without a signature: anyone who learns the Deposco URL can post shipments. Set a shared secret (at least 16 bytes) here and in Deposco." }
                    }
                    label.inline for="webhooks_enabled" {
                        input #webhooks_enabled type="checkbox" name="webhooks_enabled" value="1" checked[hooks["enabled"] == true];
                        "Use webhooks for shipments"
                    }
                    label for="shared_secret" { "Webhook Shared Secret" }
                    input #shared_secret type="password" name="shared_secret" autocomplete="new-password";
                    p.hint { "Optional. Blank: deliveries are accepted without a signature. "
                        @if hooks["shared_secret_set"] == true { "A secret is set; leave blank to keep it." } }
                    @if hooks["shared_secret_set"] == true {
                        label.inline for="clear_secret" { input #clear_secret type="checkbox" name="clear_secret" value="1"; "Remove the shared secret" }
                    }
                    label for="deposco_url" { "Deposco URL" }
                    div.row {
                        input #deposco_url type="text" readonly value=(hooks["url"].as_str().unwrap_or(""));
                        button type="button" data-copy="deposco_url" { "Copy" }
                    }
                    p.hint { "Configure this URL as the shipment webhook in Deposco." }
                }
                div.actions { button.primary type="submit" { "Save Changes" } }
            }
            form.card method="post" action={"/merchants/" (m.id) "/rotate"} {
                (csrf(&ui))
                h2 { "Webhook key" }
                p { "Rotating issues a new Deposco URL; the current one keeps working for 24 hours." }
                label.inline for="revoke_old" { input #revoke_old type="checkbox" name="revoke_old" value="1"; "Stop the current URL at once (it leaked, say)" }
                button type="submit" { "Rotate webhook key" }
            }
        },
    ))
}

pub(super) async fn merchant_save(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let mut hooks = json!({"enabled": f.has("webhooks_enabled")});
    if f.has("clear_secret") {
        hooks["shared_secret"] = Value::Null;
    } else if !f.get("shared_secret").trim().is_empty() {
        hooks["shared_secret"] = json!(f.get("shared_secret"));
    }
    let patch = json!({
        "name": f.get("name"),
        "warehouse": warehouse_patch(&f, true),
        "shipment_webhooks": hooks,
        "kit_policy": f.get("kit_policy"),
    });
    match merchants::update_merchant(&s, &ui.principal, &id, patch).await {
        Ok(_) => Ok(see_other(&format!("/merchants/{id}?saved=Changes+saved."))),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => Ok(see_other(&format!(
            "/merchants/{id}?error={}",
            enc(&e.message)
        ))),
        Err(e) => Err(fail(&ui, e)),
    }
}

pub(super) async fn merchant_rotate(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let revoke_old = f.has("revoke_old");
    merchants::rotate_key(&s, &ui.principal, &id, revoke_old)
        .await
        .map_err(|e| fail(&ui, e))?;
    let message = if revoke_old {
        "New Deposco URL issued: configure it in Deposco (the old one no longer works)."
    } else {
        "New Deposco URL issued: configure it in Deposco (the old one works for 24 hours)."
    };
    Ok(see_other(&format!(
        "/merchants/{id}?saved={}",
        enc(message)
    )))
}
