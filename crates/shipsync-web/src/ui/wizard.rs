//! "Add connection": one page in steps — name; the merchant (an existing
//! one, or a new one); the warehouse (a new merchant's Deposco
//! credentials); the store — with "Test connection", which calls the store
//! and the warehouse with the credentials typed in, before anything is
//! saved. "Save" creates the merchant (when new) and the connection, then
//! opens the connection's page.
//!
//! Entered values are shown again after a test or an error; secrets never
//! are: once typed, a secret travels in the form only sealed with the
//! server's key and bound to the session (see [`seal`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use maud::{Markup, html};
use serde_json::{Value, json};
use shipsync_db::{connections::ConnectionRow, merchants::MerchantRow};

use super::layout::{Page, csrf, enc, fail, field_error, page, see_other, unprocessable};
use super::merchants::merchant_names;
use super::session::{Form, Ui, checked_form};
use crate::AppState;
use crate::api::{connections, merchants};
use crate::error::{ApiError, ApiResult};

/// A secret sealed for the form's hidden `<field>_kept` input: only this
/// server can open it, and only in the same session (the session's CSRF
/// token is sealed with it).
fn seal(s: &AppState, ui: &Ui, value: &str) -> String {
    let sealed = s
        .engine
        .secrets()
        .seal_str(&format!("{}\n{value}", ui.csrf));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

fn unseal(s: &AppState, ui: &Ui, blob: &str) -> Option<String> {
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(blob)
        .ok()?;
    let plain = s.engine.secrets().open_string(&sealed).ok()?;
    let (session, value) = plain.split_once('\n')?;
    (session == ui.csrf).then(|| value.to_string())
}

/// The wizard's fields as entered.
#[derive(Default)]
struct Wizard {
    name: String,
    /// Create the merchant on the way (else use `merchant_id`).
    new_merchant: bool,
    merchant_id: String,
    merchant_name: String,
    api_url: String,
    business_unit: String,
    username: String,
    /// Typed now, or kept (sealed) from the previous submission.
    password: Option<String>,
    /// The Shopify shop domain (or a full URL).
    shop: String,
    /// How the store signs in: `access_token`, `client_credentials` or
    /// `authorization_code` (the install flow).
    store_auth: String,
    access_token: Option<String>,
    client_id: String,
    client_secret: Option<String>,
}

impl Wizard {
    fn from_form(s: &AppState, ui: &Ui, f: &Form) -> Self {
        let secret = |field: &str| {
            Some(f.get(field).trim().to_string())
                .filter(|v| !v.is_empty())
                .or_else(|| unseal(s, ui, f.get(&format!("{field}_kept"))))
        };
        let access_token = secret("access_token");
        Self {
            name: f.get("name").trim().into(),
            new_merchant: f.get("merchant") == "new",
            merchant_id: f.get("merchant_id").into(),
            merchant_name: f.get("merchant_name").trim().into(),
            api_url: f.get("api_url").trim().into(),
            business_unit: f.get("business_unit").trim().into(),
            username: f.get("username").trim().into(),
            password: secret("password"),
            shop: f.get("shop_url").trim().into(),
            // A form without the choice (an older page, a script) that
            // gives a token means the legacy way.
            store_auth: match f.get("store_auth") {
                "" if access_token.is_some() => "access_token".into(),
                "" => "authorization_code".into(),
                other => other.into(),
            },
            access_token,

            client_id: f.get("client_id").trim().into(),
            client_secret: secret("client_secret"),
        }
    }

    /// The new merchant as the API takes it.
    fn merchant_doc(&self) -> Value {
        let mut warehouse = json!({"platform": "deposco", "api_url": self.api_url, "business_unit": self.business_unit});
        if !self.username.is_empty() || self.password.is_some() {
            warehouse["auth"] =
                json!({"type": "basic", "username": self.username, "password": self.password});
        }
        json!({"name": self.merchant_name, "warehouse": warehouse})
    }

    /// The connection as the API takes it.
    fn connection_doc(&self, merchant_id: &str) -> Value {
        let mut store = json!({"platform": "shopify", "shop_url": shop_url(&self.shop)});
        if self.store_auth == "access_token" {
            store["access_token"] = json!(self.access_token);
        } else {
            store["auth"] = json!({
                "type": self.store_auth,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            });
        }
        json!({
            "name": self.name,
            "merchant_id": merchant_id,
            "store": store,
        })
    }
}

/// The ways a store signs in, as the wizard offers them.
const STORE_AUTH: [(&str, &str, &str); 3] = [
    (
        "authorization_code",
        "Install the app (Connect to Shopify)",
        "A Dev Dashboard app installed by the merchant from a link: for a 3PL serving several merchants. Add this server's /connect/shopify/callback as the app's redirect URL.",
    ),
    (
        "client_credentials",
        "App client credentials",
        "A Dev Dashboard app of your own organization, installed in your own store: shipsync gets and refreshes its tokens.",
    ),
    (
        "access_token",
        "Admin API access token",
        "A custom app created in the store's admin before 2026 (shpat_…).",
    ),
];

/// A shop domain as the store's base URL (a full URL is kept as it is).
fn shop_url(shop: &str) -> String {
    let shop = shop.trim().trim_end_matches('/');
    if shop.is_empty() || shop.contains("://") {
        shop.to_string()
    } else {
        format!("https://{shop}")
    }
}

/// An error of the new merchant's document, its field named as in the form
/// (`merchant.…`).
fn in_merchant(mut e: ApiError) -> ApiError {
    if e.code == "invalid_field" {
        e.message = format!("merchant.{}", e.message);
    }
    e
}

/// The connection (and the new merchant, when one is made on the way)
/// checked but not saved, and the merchant whose warehouse it uses.
async fn drafts(
    s: &AppState,
    ui: &Ui,
    w: &Wizard,
) -> ApiResult<(ConnectionRow, MerchantRow, bool)> {
    let p = &ui.principal;
    if w.new_merchant {
        let m = merchants::draft_merchant(s, p, w.merchant_doc())
            .await
            .map_err(in_merchant)?;
        let c = s
            .engine
            .draft_connection(w.connection_doc(&m.id), p.caller(), Some(&m))
            .await?;
        Ok((c, m, true))
    } else {
        let c = s
            .engine
            .draft_connection(w.connection_doc(&w.merchant_id), p.caller(), None)
            .await?;
        let m = merchants::load(s, p, &c.merchant_id).await?;
        Ok((c, m, false))
    }
}

/// What "Test connection" found: the report, and whether both sides answered.
type Tested = (String, bool);

fn secret_input(
    s: &AppState,
    ui: &Ui,
    field: &str,
    label: &str,
    value: Option<&str>,
    error: Option<&ApiError>,
    error_field: &str,
) -> Markup {
    html! {
        label for=(field) { (label) }
        input id=(field) type="password" name=(field) autocomplete="new-password";
        @if let Some(v) = value {
            input type="hidden" name={(field) "_kept"} value=(seal(s, ui, v));
            p.hint { "Entered (kept encrypted, not shown). Type a new value to replace it." }
        } @else {
            p.hint { "Write-only: never shown again once entered." }
        }
        (field_error(error, error_field))
    }
}

async fn view(
    s: &AppState,
    ui: &Ui,
    w: &Wizard,
    error: Option<&ApiError>,
    tested: Option<&Tested>,
) -> Page {
    let names = merchant_names(s, ui).await?;
    let may_create = ui.principal.scope().is_none();
    let new_merchant = may_create && (w.new_merchant || names.is_empty());
    Ok(page(
        ui,
        "Add connection",
        "Connections",
        html! {
            h1 { "Add connection" }
            @if let Some(e) = error { div.error-box role="alert" { (e.message) } }
            form #wizard method="post" action="/connections" {
                (csrf(ui))
                section.card {
                    h2 { "1. Name" }
                    label for="name" { "Connection name" }
                    input #name type="text" name="name" required value=(w.name) placeholder="Acme Shopify";
                    (field_error(error, "name"))
                }
                section.card {
                    h2 { "2. Merchant" }
                    label.inline for="merchant-existing" {
                        input #merchant-existing type="radio" name="merchant" value="existing" checked[!new_merchant] disabled[names.is_empty()];
                        "An existing merchant"
                    }
                    label for="merchant_id" { "Merchant" }
                    select #merchant_id name="merchant_id" {
                        @for (id, n) in &names { option value=(id) selected[w.merchant_id == *id] { (n) } }
                    }
                    (field_error(error, "merchant_id"))
                    @if may_create {
                        label.inline for="merchant-new" {
                            input #merchant-new type="radio" name="merchant" value="new" checked[new_merchant];
                            "A new merchant"
                        }
                        label for="merchant_name" { "New merchant's name" }
                        input #merchant_name type="text" name="merchant_name" value=(w.merchant_name) placeholder="Acme Outdoor";
                        (field_error(error, "merchant.name"))
                    }
                }
                section.card {
                    h2 { "3. Warehouse" }
                    p.hint { "An existing merchant's Deposco warehouse is used as saved (change it on the merchant's page). A new merchant needs its Deposco API credentials:" }
                    @if may_create {
                        label for="api_url" { "Deposco API URL" }
                        input #api_url type="url" name="api_url" value=(if w.api_url.is_empty() { "https://api.deposco.com/latest" } else { w.api_url.as_str() });
                        (field_error(error, "merchant.warehouse.api_url"))
                        label for="business_unit" { "Business unit" }
                        input #business_unit type="text" name="business_unit" value=(w.business_unit);
                        (field_error(error, "merchant.warehouse.business_unit"))
                        label for="username" { "API username" }
                        input #username type="text" name="username" autocomplete="off" value=(w.username);
                        (field_error(error, "merchant.warehouse.auth.username"))
                        (secret_input(s, ui, "password", "API password", w.password.as_deref(), error, "merchant.warehouse.auth.password"))
                    }
                }
                section.card {
                    h2 { "4. Store" }
                    label for="shop_url" { "Shopify shop domain" }
                    input #shop_url type="text" name="shop_url" required value=(w.shop) placeholder="acme.myshopify.com";
                    (field_error(error, "store.shop_url"))
                    fieldset #store-auth {
                        legend { "How shipsync signs in to the store" }
                        @for (value, label, hint) in STORE_AUTH {
                            label.inline for={"store-auth-" (value)} {
                                input id={"store-auth-" (value)} type="radio" name="store_auth" value=(value) checked[w.store_auth == value];
                                (label)
                            }
                            p.hint { (hint) }
                        }
                    }
                    (field_error(error, "store.auth.type"))
                    label for="client_id" { "App client ID" }
                    input #client_id type="text" name="client_id" autocomplete="off" value=(w.client_id);
                    (field_error(error, "store.auth.client_id"))
                    (secret_input(s, ui, "client_secret", "App client secret", w.client_secret.as_deref(), error, "store.auth.client_secret"))
                    p.hint { "For an app made in Shopify's Dev Dashboard (Settings shows its client ID and secret)." }
                    (secret_input(s, ui, "access_token", "Admin API access token", w.access_token.as_deref(), error, "store.access_token"))
                    p.hint { "Only for a legacy app created in the store's admin before 2026 (shpat_…)." }

                    div.actions {
                        button type="submit" name="action" value="test" { "Test connection" }
                    }
                    @if w.store_auth == "authorization_code" {
                        p.hint { "With the install flow, Test connection can check the warehouse only: the store gives its token when you Save and connect." }
                    }
                    @if let Some((report, ok)) = tested {
                        @if *ok {
                            div.flash #test-result role="status" { "Test passed. " (report) }
                        } @else {
                            div.error-box #test-result role="alert" { "Test failed. " (report) }
                        }
                    }
                }
                p.hint { "The connection and its channels start disabled; nothing is saved before Save." }
                div.actions {
                    button.primary type="submit" name="action" value="save" { "Save" }
                    button #save-connect type="submit" name="action" value="connect" { "Save and connect to Shopify" }
                    a.button href="/connections" { "Cancel" }
                }
            }
        },
    ))
}

pub async fn connection_new(State(s): State<AppState>, ui: Ui) -> Page {
    let w = Wizard {
        store_auth: "authorization_code".into(),
        ..Wizard::default()
    };
    view(&s, &ui, &w, None, None).await
}

/// The form again with its values and the error: 422 for bad input, the
/// error's own page otherwise.
async fn again(s: &AppState, ui: &Ui, w: &Wizard, e: ApiError) -> Page {
    if e.status != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(fail(ui, e));
    }
    Ok(unprocessable(view(s, ui, w, Some(&e), None).await?))
}

pub async fn connection_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    let w = Wizard::from_form(&s, &ui, &f);
    let (c, m, new_merchant) = match drafts(&s, &ui, &w).await {
        Ok(d) => d,
        Err(e) => return again(&s, &ui, &w, e).await,
    };
    if f.get("action") == "test" {
        let outcome = s.engine.test_credentials(&c, &m).await;
        let tested = (
            super::connections::shown_report(&ui, &outcome),
            outcome.passed(),
        );
        return view(&s, &ui, &w, None, Some(&tested)).await;
    }
    s.engine
        .save_connection(&c, new_merchant.then_some(&m))
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let saved = if new_merchant {
        format!("Merchant {} and connection {} saved.", m.name, c.name)
    } else {
        format!("Connection {} saved.", c.name)
    };
    if f.get("action") == "connect" {
        // One click: saved, then straight to Shopify's install page.
        return match connections::authorize_link(&s, &ui.principal, &c.id).await {
            Ok(url) => Ok(see_other(&url)),
            Err(e) => Ok(see_other(&format!(
                "/connections/{}?saved={}&error={}",
                c.id,
                enc(&saved),
                enc(&e.message)
            ))),
        };
    }
    Ok(see_other(&format!(
        "/connections/{}?saved={}",
        c.id,
        enc(&saved)
    )))
}
