//! The Connections pages: the list with its filters and switches, a
//! connection's page (store sign-in, "Test connection", "Connect to
//! Shopify") and its channels' control panels with the schedule dialog.
//! Adding a connection is the wizard ([`super::wizard`]).

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use shipsync_core::order_rules::{FINANCIAL_STATUSES, MAX_HOLD_MINUTES, OrderRules};
use shipsync_core::states::{Channel, StoreStatus};
use shipsync_engine::users::Role;

use super::layout::{
    Flash, Page, csrf, document, enc, fail, field_error, flash, page, see_other, status_badge,
    unprocessable,
};
use super::session::{Form, Ui, checked_form};
use super::time::{at, at_in};
use crate::AppState;
use crate::api::{connections, merchants};
use crate::error::ApiError;

#[derive(Deserialize, Default)]
pub(super) struct ConnectionQuery {
    status: Option<String>,
    merchant_id: Option<String>,
    store: Option<String>,
    warehouse: Option<String>,
    saved: Option<String>,
    error: Option<String>,
}

/// The platform named in a stored store or warehouse document.
fn platform(doc: &str, default: &str) -> String {
    serde_json::from_str::<Value>(doc)
        .ok()
        .and_then(|v| v["platform"].as_str().map(str::to_string))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn platform_label(p: &str) -> String {
    match p {
        "shopify" => "Shopify".into(),
        "deposco" => "Deposco".into(),
        other => other.to_string(),
    }
}

pub(super) async fn connection_list(
    State(s): State<AppState>,
    ui: Ui,
    Query(q): Query<ConnectionQuery>,
) -> Page {
    let all = connections::visible(&s, &ui.principal, None, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?;
    let ms = merchants::visible(&s, &ui.principal, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?;
    let pick = |v: &Option<String>| v.clone().filter(|x| !x.is_empty());
    let (status, merchant, store, warehouse) = (
        pick(&q.status),
        pick(&q.merchant_id),
        pick(&q.store),
        pick(&q.warehouse),
    );
    let warehouse_of = |merchant_id: &str| {
        ms.iter()
            .find(|m| m.id == merchant_id)
            .map(|m| platform(&m.warehouse_json, "deposco"))
            .unwrap_or_else(|| "deposco".into())
    };
    let mut stores: Vec<String> = all
        .iter()
        .map(|c| platform(&c.store_json, "shopify"))
        .collect();
    stores.sort();
    stores.dedup();
    let mut warehouses: Vec<String> = ms
        .iter()
        .map(|m| platform(&m.warehouse_json, "deposco"))
        .collect();
    warehouses.sort();
    warehouses.dedup();
    let rows: Vec<_> = all
        .iter()
        .filter(|c| match status.as_deref() {
            Some("enabled") => c.enabled,
            Some("disabled") => !c.enabled,
            _ => true,
        })
        .filter(|c| merchant.as_ref().is_none_or(|m| *m == c.merchant_id))
        .filter(|c| {
            store
                .as_ref()
                .is_none_or(|p| *p == platform(&c.store_json, "shopify"))
        })
        .filter(|c| {
            warehouse
                .as_ref()
                .is_none_or(|p| *p == warehouse_of(&c.merchant_id))
        })
        .collect();
    let back = format!(
        "/connections?status={}&merchant_id={}&store={}&warehouse={}",
        enc(status.as_deref().unwrap_or("")),
        enc(merchant.as_deref().unwrap_or("")),
        enc(store.as_deref().unwrap_or("")),
        enc(warehouse.as_deref().unwrap_or(""))
    );
    let f = Flash {
        saved: q.saved,
        error: q.error,
    };
    Ok(page(
        &ui,
        "Connections",
        "Connections",
        html! {
            div.row { h1 { "Connections" } a.button.primary href="/connections/new" { "Add connection" } }
            (flash(&f))
            form.filters method="get" action="/connections" {
                div { label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "Any" }
                        @for (v, l) in [("enabled", "Enabled"), ("disabled", "Disabled")] { option value=(v) selected[status.as_deref() == Some(v)] { (l) } }
                    } }
                div { label for="merchant_id" { "Merchant" }
                    select #merchant_id name="merchant_id" {
                        option value="" { "Any" }
                        @for m in &ms { option value=(m.id) selected[merchant.as_deref() == Some(m.id.as_str())] { (m.name) } }
                    } }
                div { label for="store" { "Store platform" }
                    select #store name="store" {
                        option value="" { "Any" }
                        @for p in &stores { option value=(p) selected[store.as_deref() == Some(p.as_str())] { (platform_label(p)) } }
                    } }
                div { label for="warehouse" { "Warehouse platform" }
                    select #warehouse name="warehouse" {
                        option value="" { "Any" }
                        @for p in &warehouses { option value=(p) selected[warehouse.as_deref() == Some(p.as_str())] { (platform_label(p)) } }
                    } }
                button type="submit" { "Filter" }
            }
            table #connections { thead { tr { th { "Name" } th { "Merchant" } th { "Store" } th { "Warehouse" } th { "Enabled" } } }
                tbody { @for c in &rows {
                    @let st: Value = serde_json::from_str(&c.store_json).unwrap_or_default();
                    @let on = c.enabled;
                    tr {
                        td { a href={"/connections/" (c.id)} { (c.name) } }
                        td { (ms.iter().find(|m| m.id == c.merchant_id).map(|m| m.name.as_str()).unwrap_or("")) }
                        td { (platform_label(&platform(&c.store_json, "shopify"))) " · " (st["shop_url"].as_str().unwrap_or("")) }
                        td { (platform_label(&warehouse_of(&c.merchant_id))) }
                        td {
                            form.switch method="post" action={"/connections/" (c.id) "/enabled"} {
                                (csrf(&ui))
                                input type="hidden" name="enabled" value=(if on { "0" } else { "1" });
                                input type="hidden" name="back" value=(back);
                                button.toggle type="submit" role="switch" aria-checked=(if on { "true" } else { "false" })
                                    aria-label={ (if on { "Disable " } else { "Enable " }) (c.name) } {
                                    span.knob {} (if on { "On" } else { "Off" })
                                }
                            }
                        }
                    }
                } } }
            @if rows.is_empty() { p.hint { "No connection matches these filters." } }
        },
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct Tab {
    tab: Option<String>,
    saved: Option<String>,
    error: Option<String>,
}

pub(super) async fn connection_show(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    Query(q): Query<Tab>,
) -> Page {
    let channel = match q.tab.as_deref().map(str::parse) {
        Some(Ok(Channel::SalesOrders)) => Channel::SalesOrders,
        _ => Channel::Shipments,
    };
    let f = Flash {
        saved: q.saved,
        error: q.error,
    };
    connection_view(&s, &ui, &id, channel, &f, None).await
}

/// A form of the Sales Orders tab that the engine refused (422): shown
/// again with the error next to it.
enum Refused {
    /// The import rules as typed.
    Rules(RulesForm, ApiError),
    /// The API secret key (never shown again, even when refused).
    ApiSecret(ApiError),
}

/// A connection's page on one channel's tab; `refused`: a Sales Orders
/// form to show again with its error.
async fn connection_view(
    s: &AppState,
    ui: &Ui,
    id: &str,
    channel: Channel,
    f: &Flash,
    refused: Option<Refused>,
) -> Page {
    let p = &ui.principal;
    let c = connections::load(s, p, id).await.map_err(|e| fail(ui, e))?;
    let m = merchants::load(s, p, &c.merchant_id)
        .await
        .map_err(|e| fail(ui, e))?;
    let shown = connections::render(&c, &s.config.public_url);
    let store = shown["store"].clone();
    let ch = connections::load_channel(s, p, id, channel.as_str())
        .await
        .map_err(|e| fail(ui, e))?;
    let rules = shipsync_core::schedule::parse_schedules(&ch.schedules).unwrap_or_default();
    // The card's times are in the schedule's zone, the one its rules read.
    let zone = rules
        .first()
        .map_or(jiff::tz::TimeZone::UTC, |r| r.time_zone.clone());
    let last_run = s
        .engine
        .last_run(id, channel)
        .await
        .map_err(|e| fail(ui, e.into()))?;
    let recommend = channel == Channel::Shipments
        && m.webhooks_enabled
        && shipsync_core::schedule::runs_more_often_than_daily(&rules);
    let label = if channel == Channel::Shipments {
        "order status import"
    } else {
        "sales order export"
    };
    let base = format!("/connections/{id}/channels/{channel}");
    let orders_tab = (channel == Channel::SalesOrders).then(|| {
        let (typed, rules_error, secret_error) = match refused {
            Some(Refused::Rules(typed, e)) => (typed, Some(e), None),
            Some(Refused::ApiSecret(e)) => (RulesForm::of(&c.order_rules), None, Some(e)),
            None => (RulesForm::of(&c.order_rules), None, None),
        };
        html! {
            (rules_card(ui, id, &typed, rules_error.as_ref()))
            (order_webhooks_card(ui, id, &shown, secret_error.as_ref()))
        }
    });
    Ok(page(
        ui,
        &c.name,
        "Connections",
        html! {
            h1 { (c.name) }
            (flash(f))
            div.card {
                dl.facts {
                    dt { "Merchant" } dd { a href={"/merchants/" (m.id)} { (m.name) } }
                    dt { "Connection" } dd { @if c.enabled { (status_badge("on")) " enabled" } @else { "disabled" } }
                    dt { "Store" } dd #store-auth { (store_auth_facts(&store)) }
                    @if c.store_status == StoreStatus::ReconnectNeeded {
                        dt { "Store status" } dd #store-status { (status_badge(c.store_status.as_str())) " " (c.store_error.as_deref().unwrap_or("")) }
                    }
                    @if let Some(missing) = store["auth"]["missing_scopes"].as_array().filter(|m| !m.is_empty()) {
                        dt { "Missing scopes" } dd #missing-scopes {
                            @for (i, m) in missing.iter().enumerate() { @if i > 0 { ", " } code { (m.as_str().unwrap_or("")) } }
                            " — add them to the app's scopes and install it again"
                        }
                    }
                }
                div.actions {
                    @if store["auth"]["type"] == "authorization_code" {
                        form method="post" action={"/connections/" (id) "/authorize"} {
                            (csrf(ui))
                            button.primary #connect-shopify type="submit" { @if store["auth"]["connected"] == true { "Reconnect to Shopify" } @else { "Connect to Shopify" } }
                        }
                    }
                    form method="post" action={"/connections/" (id) "/enabled"} {
                        (csrf(ui))
                        input type="hidden" name="enabled" value=(if c.enabled { "0" } else { "1" });
                        button type="submit" { @if c.enabled { "Disable connection" } @else { "Enable connection" } }
                    }
                    form method="post" action={"/connections/" (id) "/test"} {
                        (csrf(ui))
                        button type="submit" { "Test connection" }
                    }
                }
            }
            nav.tabs aria-label="Channels" {
                a href={"/connections/" (id) "?tab=" (Channel::SalesOrders)} class=[(channel == Channel::SalesOrders).then_some("active")] { "Sales Orders" }
                a href={"/connections/" (id) "?tab=" (Channel::Shipments)} class=[(channel == Channel::Shipments).then_some("active")] { "Shipments" }
            }
            div.card #channel {
                h2 { (if channel == Channel::Shipments { "Shipments" } else { "Sales Orders" }) " · Control Panel" }
                dl.facts {
                    dt { "Status" } dd #channel-status { @if ch.enabled { (status_badge("on")) " enabled" } @else { "disabled" } }
                    dt { "Recurrence" } dd #recurrence {
                        @if rules.is_empty() { "no schedule" }
                        @for (i, r) in rules.iter().enumerate() { @if i > 0 { "; " } (shipsync_core::schedule::describe(r)) }
                    }
                    dt { "Last completed" } dd { (at_in(ch.last_completed_at, &zone)) }
                    dt { "Next update" } dd { @if ch.enabled { (at_in(ch.next_run_at, &zone)) } @else { "— (disabled)" } }
                    dt { "Last run" } dd { @if let Some(r) = &last_run { (status_badge(r.status.as_str())) " " (at_in(r.started_at.unwrap_or(r.created_at), &zone)) } @else { "—" } }
                }
                @if recommend {
                    div.notice #recommendation { "Shipment webhooks are on for " (m.name) ": we recommend one daily run during off hours (for example every day at 12:00 am) as the fallback, instead of this more frequent schedule." }
                }
                div.actions {
                    form method="post" action={(base) "/enabled"} {
                        (csrf(ui))
                        input type="hidden" name="enabled" value=(if ch.enabled { "0" } else { "1" });
                        button type="submit" { @if ch.enabled { "Disable " (label) } @else { "Enable " (label) } }
                    }
                    form method="post" action={(base) "/run"} {
                        (csrf(ui))
                        button type="submit" { "Run now" }
                    }
                    button type="button" data-open="schedule-dialog" { "Edit schedule" }
                }
            }
            @if let Some(tab) = orders_tab { (tab) }
            (schedule_dialog(ui, &base, &rules))
        },
    ))
}

/// The import rules form's fields as typed (lists as comma-separated
/// text), so that a refused form shows what the person wrote.
struct RulesForm {
    financial_statuses: Vec<String>,
    include_partially_fulfilled: bool,
    hold_minutes: String,
    hold_tags: String,
    exclude_tags: String,
    location_ids: String,
}

impl RulesForm {
    fn of(r: &OrderRules) -> Self {
        Self {
            financial_statuses: r.financial_statuses.clone(),
            include_partially_fulfilled: r.include_partially_fulfilled,
            hold_minutes: r.hold_minutes.to_string(),
            hold_tags: r.hold_tags.join(", "),
            exclude_tags: r.exclude_tags.join(", "),
            location_ids: r.location_ids.join(", "),
        }
    }

    fn from_form(f: &Form) -> Self {
        Self {
            financial_statuses: f.all("financial_statuses").to_vec(),
            include_partially_fulfilled: f.has("include_partially_fulfilled"),
            hold_minutes: f.get("hold_minutes").trim().to_string(),
            hold_tags: f.get("hold_tags").to_string(),
            exclude_tags: f.get("exclude_tags").to_string(),
            location_ids: f.get("location_ids").to_string(),
        }
    }

    /// The whole `order_rules` document, for the engine to check: a hold
    /// period that is not a whole number goes as typed, and is refused
    /// there like any other bad value.
    fn patch(&self) -> Value {
        let items = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        };
        let hold = match self.hold_minutes.as_str() {
            "" => json!(0),
            typed => typed
                .parse::<i64>()
                .map_or_else(|_| json!(typed), |n| json!(n)),
        };
        json!({
            "financial_statuses": self.financial_statuses,
            "include_partially_fulfilled": self.include_partially_fulfilled,
            "hold_minutes": hold,
            "hold_tags": items(&self.hold_tags),
            "exclude_tags": items(&self.exclude_tags),
            "location_ids": items(&self.location_ids),
        })
    }
}

/// Shopify's financial status word as its admin writes it ("Partially
/// paid").
fn financial_label(word: &str) -> String {
    let lower = word.to_ascii_lowercase().replace('_', " ");
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The Sales Orders "Import rules" form (`order_rules`).
fn rules_card(ui: &Ui, id: &str, v: &RulesForm, error: Option<&ApiError>) -> Markup {
    html! {
        form.card #order-rules method="post" action={"/connections/" (id) "/order-rules"} {
            (csrf(ui))
            h2 { "Import rules" }
            p.hint { "Which store orders go to Deposco, and when. Defaults: paid orders only, no hold period, the tag HOLD holds an order, every location." }
            @if let Some(e) = error { div.error-box role="alert" { "Not saved: " (e.message) } }
            fieldset { legend { "Financial statuses to import" }
                @for fs in FINANCIAL_STATUSES {
                    label.inline for={"fs-" (fs)} {
                        input id={"fs-" (fs)} type="checkbox" name="financial_statuses" value=(fs) checked[v.financial_statuses.iter().any(|x| x.eq_ignore_ascii_case(fs))];
                        (financial_label(fs))
                    }
                    " "
                }
                p.hint { "Shopify's payment status of the order. Authorized: the payment is approved but not yet captured." }
            }
            (field_error(error, "order_rules.financial_statuses"))
            label.inline for="include_partially_fulfilled" {
                input #include_partially_fulfilled type="checkbox" name="include_partially_fulfilled" value="1" checked[v.include_partially_fulfilled];
                "Import partially fulfilled orders (only what is still unfulfilled is sent)"
            }
            label for="hold_minutes" { "Hold period (minutes)" }
            input #hold_minutes type="number" name="hold_minutes" min="0" max=(MAX_HOLD_MINUTES) value=(v.hold_minutes);
            p.hint { "An order waits this long before it goes to Deposco; a cancellation or edit meanwhile costs nothing in the warehouse. 0: send at once." }
            (field_error(error, "order_rules.hold_minutes"))
            @for (name, label, value, example, hint) in [
                ("hold_tags", "Hold tags", &v.hold_tags, "HOLD", "An order with one of these tags waits until the tag is removed."),
                ("exclude_tags", "Exclude tags", &v.exclude_tags, "wholesale, pickup", "An order with one of these tags is never sent."),
                ("location_ids", "Locations", &v.location_ids, "gid://shopify/Location/123",
                    "Shopify location ids (gid://shopify/Location/N, or N). Only lines assigned to these go to Deposco; empty: every location."),
            ] {
                label for=(name) { (label) }
                input id=(name) type="text" name=(name) value=(value) placeholder=(example);
                p.hint { "Comma-separated. " (hint) }
                (field_error(error, &format!("order_rules.{name}")))
            }
            div.actions { button.primary type="submit" { "Save import rules" } }
        }
    }
}

/// The order webhooks' state and, for a legacy access token, the API
/// secret key that verifies them (write-only).
fn order_webhooks_card(ui: &Ui, id: &str, shown: &Value, error: Option<&ApiError>) -> Markup {
    let hooks = &shown["order_webhooks"];
    let store = &shown["store"];
    let legacy = store["auth"]["type"] == "access_token";
    let topics: Vec<&str> = hooks["topics"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        div.card #order-webhooks {
            h2 { "Order webhooks" }
            p.hint { "While the connection and its Sales Orders channel are on, shipsync subscribes the store to order changes (created, updated, cancelled, edited) so they reach Deposco at once; the scheduled pull finds what a lost webhook missed." }
            dl.facts {
                dt { "Status" } dd #order-webhooks-status {
                    @if hooks["subscribed"] == true { (status_badge("on")) " subscribed" } @else { "not subscribed" }
                }
                dt { "Topics" } dd {
                    @if topics.is_empty() { "—" }
                    @for (i, t) in topics.iter().enumerate() { @if i > 0 { ", " } code { (t) } }
                }
                dt { "Last checked" } dd { (at(&hooks["checked_at"])) }
                @if let Some(e) = hooks["error"].as_str() {
                    dt { "Problem" } dd #order-webhooks-error { span.field-error { (e) } }
                }
            }
            label for="order_webhook_url" { "Shopify delivers to" }
            div.row {
                input #order_webhook_url type="text" readonly value=(hooks["url"].as_str().unwrap_or(""));
                button type="button" data-copy="order_webhook_url" { "Copy" }
            }
            @if legacy {
                form #api-secret method="post" action={"/connections/" (id) "/api-secret"} {
                    (csrf(ui))
                    @if let Some(e) = error { div.error-box role="alert" { "Not saved: " (e.message) } }
                    label for="api_secret" { "API secret key" }
                    input #api_secret type="password" name="api_secret" autocomplete="new-password" required;
                    p.hint #api-secret-state {
                        @if store["api_secret_set"] == true { (status_badge("on")) " set — type a new one to replace it. " } @else { "not set — order webhooks cannot be verified until it is. " }
                        "Write-only: never shown again. Find it in the store's admin, on the app's " b { "API credentials → API secret key" } " (an app made in the Dev Dashboard signs with its client secret: connect it with that instead, nothing to enter here)."
                    }
                    (field_error(error, "store.api_secret"))
                    div.actions { button type="submit" { "Save API secret key" } }
                }
            } @else {
                p.hint #api-secret-state { "Signed with the app's client secret (Dev Dashboard → Settings), which this connection already has: nothing to enter." }
            }
        }
    }
}

/// "Save import rules": the same merge patch as the API's
/// `PATCH /connections/{id}` with `order_rules`.
pub(super) async fn order_rules_save(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let typed = RulesForm::from_form(&f);
    let patch = json!({"order_rules": typed.patch()});
    let saved = connections::update_connection(&s, &ui.principal, &id, patch).await;
    after_save(&s, &ui, &id, saved, "Import rules saved.", |e| {
        Refused::Rules(typed, e)
    })
    .await
}

/// "Save API secret key": `store.api_secret` (write-only). A blank field
/// is refused here: the engine would read it as "remove the key".
pub(super) async fn api_secret_save(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let secret = f.get("api_secret").trim();
    let saved = if secret.is_empty() {
        Err(ApiError::invalid(
            "store.api_secret",
            "type the app's API secret key to save it",
        ))
    } else {
        let patch = json!({"store": {"api_secret": secret}});
        connections::update_connection(&s, &ui.principal, &id, patch).await
    };
    after_save(
        &s,
        &ui,
        &id,
        saved,
        "API secret key saved.",
        Refused::ApiSecret,
    )
    .await
}

/// After a Sales Orders form: back to the tab saying `done`, or for bad
/// input (422) the page again with the form `refused`.
async fn after_save<T>(
    s: &AppState,
    ui: &Ui,
    id: &str,
    saved: Result<T, ApiError>,
    done: &str,
    refused: impl FnOnce(ApiError) -> Refused,
) -> Page {
    match saved {
        Ok(_) => Ok(see_other(&format!(
            "/connections/{id}?tab={}&saved={}",
            Channel::SalesOrders,
            enc(done)
        ))),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let (f, again) = (Flash::default(), Some(refused(e)));
            let r = connection_view(s, ui, id, Channel::SalesOrders, &f, again).await?;
            Ok(unprocessable(r))
        }
        Err(e) => Err(fail(ui, e)),
    }
}

fn schedule_dialog(ui: &Ui, base: &str, rules: &[shipsync_core::schedule::Schedule]) -> Markup {
    let json = shipsync_core::schedule::to_json(rules);
    let items = json.as_array().cloned().unwrap_or_default();
    html! {
        dialog #schedule-dialog aria-labelledby="schedule-title" {
            form method="post" action={(base) "/schedules"} {
                (csrf(ui))
                h2 #schedule-title { "Edit schedule" }
                table #rules { tbody {
                    @for (r, item) in rules.iter().zip(items.iter()) { tr {
                        td { (shipsync_core::schedule::describe(r)) input type="hidden" name="rule" value=(item.to_string()); }
                        td { button.danger type="button" data-delete-rule { "Delete" } }
                    } }
                } }
                button type="button" data-add-schedule="new-rule" { "Add schedule" }
                fieldset #new-rule hidden {
                    legend { "New schedule" }
                    label for="new_kind" { "Repeats" }
                    select #new_kind name="new_kind" disabled {
                        option value="minutely" { "Every N minutes" }
                        option value="hourly" { "Every N hours" }
                        option value="daily" selected { "Every day" }
                        option value="flexible" { "Flexible" }
                    }
                    div data-kind="minutely hourly" { label for="new_every" { "Every" } input #new_every type="number" name="new_every" min="1" value="4" disabled; }
                    div data-kind="hourly" { label for="new_minute" { "At minute" } input #new_minute type="number" name="new_minute" min="0" max="59" value="0" disabled; }
                    div data-kind="daily" { label for="new_at" { "Time" } input #new_at type="time" name="new_at" value="00:00" disabled; }
                    div data-kind="flexible" {
                        fieldset { legend { "Weekdays" }
                            @for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
                                label.inline { input type="checkbox" name="new_weekdays" value=(d) checked[d != "sat" && d != "sun"] disabled; (d) }
                            }
                        }
                        label for="new_start" { "From hour" } input #new_start type="number" name="new_start" min="0" max="23" value="8" disabled;
                        label for="new_end" { "Until hour" } input #new_end type="number" name="new_end" min="1" max="24" value="18" disabled;
                        label for="new_every_minutes" { "Every (minutes)" } input #new_every_minutes type="number" name="new_every_minutes" min="1" value="30" disabled;
                    }
                    label for="new_tz" { "Time zone" }
                    input #new_tz type="text" name="new_tz" value="UTC" disabled;
                    p.hint { "An IANA time zone such as America/New_York." }
                }
                div.actions {
                    button.primary type="submit" { "Save changes" }
                    button type="button" data-close { "Cancel" }
                }
            }
        }
    }
}

pub(super) async fn connection_enabled(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    connections::update_connection(
        &s,
        &ui.principal,
        &id,
        json!({"enabled": f.get("enabled") == "1"}),
    )
    .await
    .map_err(|e| fail(&ui, e))?;
    // From the list's switch: back to the list with its filters (a local
    // path only).
    let back = f.get("back");
    if back.starts_with("/connections?") && !back.contains("//") {
        return Ok(see_other(back));
    }
    Ok(see_other(&format!("/connections/{id}")))
}

/// How the store signs in, as the connection page says it.
fn store_auth_facts(store: &Value) -> Markup {
    let auth = &store["auth"];
    let kind = match auth["type"].as_str().unwrap_or("") {
        "client_credentials" => "app client credentials",
        "authorization_code" => "installed app (Connect to Shopify)",
        _ => "Admin API access token",
    };
    html! {
        (store["shop_url"].as_str().unwrap_or("")) " · " (kind)
        @if let Some(id) = auth["client_id"].as_str() { " · client ID " code { (id) } }
        " · "
        @if auth["connected"] == true {
            (status_badge("on")) " connected"
            @if auth["expires_at"].is_string() { " (token until " (at(&auth["expires_at"])) ")" }
        } @else {
            @if auth["type"] == "client_credentials" { "a token is asked for when first needed" } @else { "not connected" }
        }
    }
}

/// "Connect to Shopify": to Shopify's install page for this connection.
pub(super) async fn connection_authorize(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    match connections::authorize_link(&s, &ui.principal, &id).await {
        Ok(url) => Ok(see_other(&url)),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(fail(&ui, e)),
        Err(e) => Ok(see_other(&format!(
            "/connections/{id}?error={}",
            enc(&e.message)
        ))),
    }
}

/// Where Shopify sends the browser back after an install: checks
/// everything (see `Engine::complete_install`), keeps the token, and shows
/// the connection; or an error page, with nothing stored.
pub(super) async fn shopify_callback(
    State(s): State<AppState>,
    ui: Result<Ui, Response>,
    RawQuery(query): RawQuery,
) -> Response {
    let problem = |status: StatusCode, message: String| {
        let mut r = Html(
            document(
                "Could not connect the store",
                html! {
                    main.narrow {
                        h1 { "Could not connect the store" }
                        div.error-box role="alert" { (message) }
                        p { "Nothing was stored. " a href="/connections" { "Back to connections" } }
                    }
                },
            )
            .into_string(),
        )
        .into_response();
        *r.status_mut() = status;
        r
    };
    let Ok(ui) = ui else {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Sign in to shipsync in this browser (as the user who clicked Connect to Shopify), then open this link again.".into(),
        );
    };
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let user = ui.principal.user.as_ref().map(|u| u.id.as_str());
    let admin = ui.principal.role == Role::Admin;
    match s.engine.complete_install(&pairs, user, admin).await {
        Ok(c) => {
            let shown = connections::render(&c, &s.config.public_url);
            let granted = shown["store"]["auth"]["scopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let message = format!("Connected to Shopify (granted scopes: {granted}).");
            see_other(&format!("/connections/{}?saved={}", c.id, enc(&message)))
        }
        Err(shipsync_engine::InstallError::Engine(e)) => {
            let e = ApiError::from(e);
            problem(e.status, e.message)
        }
        Err(e @ shipsync_engine::InstallError::Exchange(_)) => {
            problem(StatusCode::BAD_GATEWAY, e.to_string())
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// What "Test connection" shows: the full report to an unlimited user, a
/// status and a classified reason — nothing the remote sent — to a user
/// limited to some merchants.
pub(super) fn shown_report(ui: &Ui, tested: &shipsync_engine::ConnectionTest) -> String {
    if ui.principal.scope().is_none() {
        tested.report()
    } else {
        tested.summary()
    }
}

/// "Test connection": calls the store and the warehouse with the stored
/// credentials and shows what they answered on the connection's page.
pub(super) async fn connection_test(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    connections::load(&s, &ui.principal, &id)
        .await
        .map_err(|e| fail(&ui, e))?;
    let tested = s
        .engine
        .test_connection(&id)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let report = shown_report(&ui, &tested);
    let to = if tested.passed() {
        format!("saved={}", enc(&report))
    } else {
        format!("error={}", enc(&report))
    };
    Ok(see_other(&format!("/connections/{id}?{to}")))
}

pub(super) async fn channel_enabled(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    connections::patch_channel(
        &s,
        &ui.principal,
        &id,
        &channel,
        &json!({"enabled": f.get("enabled") == "1"}),
    )
    .await
    .map_err(|e| fail(&ui, e))?;
    Ok(see_other(&format!("/connections/{id}?tab={channel}")))
}

pub(super) async fn channel_run(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    let to = match connections::queue_run(&s, &ui.principal, &id, &channel).await {
        Ok((run, _)) => format!(
            "/connections/{id}?tab={channel}&saved={}",
            enc(&format!("Run {run} queued."))
        ),
        Err(e) if e.status == StatusCode::CONFLICT => {
            format!("/connections/{id}?tab={channel}&error={}", enc(&e.message))
        }
        Err(e) => return Err(fail(&ui, e)),
    };
    Ok(see_other(&to))
}

/// The dialog's rules: the kept ones (JSON) plus the new one, if added.
fn schedules_from(f: &Form) -> Value {
    let mut list: Vec<Value> = f
        .all("rule")
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    let tz = if f.get("new_tz").trim().is_empty() {
        "UTC"
    } else {
        f.get("new_tz").trim()
    };
    let num = |k: &str| {
        f.get(k)
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(json!(f.get(k)))
    };
    let new = match f.get("new_kind") {
        "minutely" => Some(json!({"kind": "minutely", "every": num("new_every"), "time_zone": tz})),
        "hourly" => Some(
            json!({"kind": "hourly", "every": num("new_every"), "minute": num("new_minute"), "time_zone": tz}),
        ),
        "daily" => Some(json!({"kind": "daily", "at": f.get("new_at"), "time_zone": tz})),
        "flexible" => Some(
            json!({"kind": "flexible", "weekdays": f.all("new_weekdays"), "start_hour": num("new_start"),
            "end_hour": num("new_end"), "every_minutes": num("new_every_minutes"), "time_zone": tz}),
        ),
        _ => None,
    };
    list.extend(new);
    Value::Array(list)
}

pub(super) async fn channel_schedules(
    State(s): State<AppState>,
    ui: Ui,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let patch = json!({"schedules": schedules_from(&f)});
    let to = match connections::patch_channel(&s, &ui.principal, &id, &channel, &patch).await {
        Ok(_) => format!("/connections/{id}?tab={channel}&saved=Schedule+saved."),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            format!("/connections/{id}?tab={channel}&error={}", enc(&e.message))
        }
        Err(e) => return Err(fail(&ui, e)),
    };
    Ok(see_other(&to))
}
