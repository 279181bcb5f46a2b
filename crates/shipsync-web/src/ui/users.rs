//! The Users pages (Administrators only): the list, adding a user, and
//! changing a user's role and merchants — a Merchant user's one merchant, or
//! a Staff user's "All merchants" box, or the merchants they are limited to
//! (checkboxes; none checked and "All merchants" off: none).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use shipsync_db::users::UserRow;
use shipsync_engine::users::Role;

use super::layout::{
    Flash, Page, csrf, enc, fail, field_error, flash, page, see_other, unprocessable,
};
use super::merchants::merchant_names;
use super::session::{Form, Ui, checked_form};
use crate::AppState;
use crate::api::users::merchants;
use crate::error::ApiError;

/// What the user form shows: the entered (or stored) values, never the
/// password.
struct Values {
    email: String,
    role: Role,
    /// A Merchant user's merchant.
    merchant_id: String,
    /// A Staff user's merchants.
    merchant_ids: Vec<String>,
    /// A Staff user sees every merchant.
    all_merchants: bool,
}

impl Values {
    fn of(u: &UserRow) -> Self {
        let role = u.role;
        Self {
            email: u.email.clone(),
            role,
            merchant_id: u.merchant_id.clone().unwrap_or_default(),
            merchant_ids: if role == Role::Staff {
                merchants(u)
            } else {
                Vec::new()
            },
            all_merchants: role == Role::Staff && u.all_merchants,
        }
    }

    fn from_form(f: &Form) -> Self {
        Self {
            email: f.get("email").trim().to_string(),
            role: f.get("role").parse().unwrap_or(Role::Staff),
            merchant_id: f.get("merchant_id").to_string(),
            merchant_ids: f.all("merchant_ids").to_vec(),
            all_merchants: f.has("all_merchants"),
        }
    }

    /// `all_merchants` as the engine takes it: the box, for Staff.
    fn all_merchants(&self) -> Option<bool> {
        (self.role == Role::Staff).then_some(self.all_merchants)
    }

    /// The merchants the engine takes for the chosen role (the other
    /// role's field is ignored, as the form shows both).
    fn merchants(&self) -> Vec<String> {
        match self.role {
            Role::Merchant => vec![self.merchant_id.clone()],
            Role::Staff => self.merchant_ids.clone(),
            Role::Admin => Vec::new(),
        }
    }
}

/// Role and merchants, shared by the add and edit forms.
fn access_fields(v: &Values, names: &[(String, String)], error: Option<&ApiError>) -> Markup {
    html! {
        label for="role" { "Role" }
        select #role name="role" {
            @for r in [Role::Staff, Role::Merchant, Role::Admin] {
                option value=(r.as_str()) selected[v.role == r] { (r.label()) }
            }
        }
        label for="merchant_id" { "Merchant (for a Merchant user)" }
        select #merchant_id name="merchant_id" {
            option value="" { "—" }
            @for (id, n) in names { option value=(id) selected[v.merchant_id == *id] { (n) } }
        }
        (field_error(error, "merchant_id"))
        fieldset #staff-merchants {
            legend { "Staff sees" }
            label.inline for="all_merchants" {
                input #all_merchants type="checkbox" name="all_merchants" value="on" checked[v.all_merchants];
                "All merchants"
            }
            p.hint { "Or only the merchants checked below (with none checked, none)." }
            @for (id, n) in names {
                label.inline for={"m-" (id)} {
                    input id={"m-" (id)} type="checkbox" name="merchant_ids" value=(id) checked[v.merchant_ids.contains(id)];
                    (n)
                }
                br;
            }
            @if names.is_empty() { p.hint { "No merchant yet." } }
        }
        (field_error(error, "merchant_ids"))
        (field_error(error, "all_merchants"))
    }
}

fn merchant_list(u: &UserRow, names: &[(String, String)]) -> String {
    let ids = merchants(u);
    if u.role == Role::Staff && u.all_merchants {
        return "all".into();
    }
    if ids.is_empty() {
        return if u.role == Role::Staff { "none" } else { "—" }.into();
    }
    ids.iter()
        .map(|m| {
            names
                .iter()
                .find(|(i, _)| i == m)
                .map_or(m.clone(), |(_, n)| n.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn list_view(s: &AppState, ui: &Ui, f: &Flash, v: &Values, error: Option<&ApiError>) -> Page {
    ui.principal.require_admin().map_err(|e| fail(ui, e))?;
    let users = s.engine.users().await.map_err(|e| fail(ui, e.into()))?;
    let names = merchant_names(s, ui).await?;
    Ok(page(
        ui,
        "Users",
        "Users",
        html! {
            h1 { "Users" }
            (flash(f))
            table { thead { tr { th { "Email" } th { "Role" } th { "Merchants" } th { span.sr-only { "Actions" } } } }
                tbody { @for u in &users { tr {
                    td { (u.email) }
                    td { (u.role.label()) }
                    td { (merchant_list(u, &names)) }
                    td { a href={"/users/" (u.id)} { "Edit" } }
                } } } }
            form.card method="post" action="/users" {
                (csrf(ui))
                h2 { "Add user" }
                @if let Some(e) = error { div.error-box role="alert" { (e.message) } }
                label for="email" { "Email" } input #email type="email" name="email" required value=(v.email);
                (field_error(error, "email"))
                label for="password" { "Password" } input #password type="password" name="password" autocomplete="new-password" required;
                (field_error(error, "password"))
                (access_fields(v, &names, error))
                div.actions { button.primary type="submit" { "Add user" } }
            }
        },
    ))
}

pub async fn user_list(State(s): State<AppState>, ui: Ui, Query(f): Query<Flash>) -> Page {
    let blank = Values {
        email: String::new(),
        role: Role::Staff,
        merchant_id: String::new(),
        merchant_ids: Vec::new(),
        all_merchants: true,
    };
    list_view(&s, &ui, &f, &blank, None).await
}

pub async fn user_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    ui.principal.require_admin().map_err(|e| fail(&ui, e))?;
    let v = Values::from_form(&f);
    match s
        .engine
        .add_user(
            &v.email,
            f.get("password"),
            v.role,
            &v.merchants(),
            v.all_merchants(),
        )
        .await
    {
        Ok(u) => Ok(see_other(&format!(
            "/users?saved={}",
            enc(&format!("User {} created.", u.email))
        ))),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status != StatusCode::UNPROCESSABLE_ENTITY {
                return Err(fail(&ui, e));
            }
            let r = list_view(&s, &ui, &Flash::default(), &v, Some(&e)).await?;
            Ok(unprocessable(r))
        }
    }
}

async fn edit_view(
    s: &AppState,
    ui: &Ui,
    u: &UserRow,
    v: &Values,
    error: Option<&ApiError>,
) -> Page {
    let names = merchant_names(s, ui).await?;
    Ok(page(
        ui,
        &u.email,
        "Users",
        html! {
            h1 { (u.email) }
            form.card method="post" action={"/users/" (u.id)} {
                (csrf(ui))
                @if let Some(e) = error { div.error-box role="alert" { (e.message) } }
                (access_fields(v, &names, error))
                p.hint { "Signed-in sessions and API tokens of this user act with the new rights at once." }
                div.actions { button.primary type="submit" { "Save Changes" } a.button href="/users" { "Cancel" } }
            }
        },
    ))
}

async fn load(s: &AppState, ui: &Ui, id: &str) -> Result<UserRow, Response> {
    ui.principal.require_admin().map_err(|e| fail(ui, e))?;
    s.engine
        .user(id)
        .await
        .map_err(|e| fail(ui, e.into()))?
        .ok_or_else(|| fail(ui, ApiError::not_found("user")))
}

pub async fn user_edit(State(s): State<AppState>, ui: Ui, Path(id): Path<String>) -> Page {
    let u = load(&s, &ui, &id).await?;
    edit_view(&s, &ui, &u, &Values::of(&u), None).await
}

pub async fn user_save(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    let f = checked_form(&ui, &body)?;
    let u = load(&s, &ui, &id).await?;
    let mut v = Values::from_form(&f);
    v.email = u.email.clone();
    match s
        .engine
        .update_user_access(&id, v.role, &v.merchants(), v.all_merchants())
        .await
    {
        Ok(u) => Ok(see_other(&format!(
            "/users?saved={}",
            enc(&format!("User {} saved.", u.email))
        ))),
        Err(e) => {
            let e = ApiError::from_engine(e, "user");
            if e.status != StatusCode::UNPROCESSABLE_ENTITY {
                return Err(fail(&ui, e));
            }
            let r = edit_view(&s, &ui, &u, &v, Some(&e)).await?;
            Ok(unprocessable(r))
        }
    }
}
