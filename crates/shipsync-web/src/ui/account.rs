//! The Account page: the signed-in user's API tokens.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use maud::html;

use super::layout::{Flash, Page, csrf, enc, fail, flash, page, see_other};
use super::session::{Ui, checked_form};
use super::time::ago;
use crate::AppState;
use crate::error::ApiError;

fn own_user_id(ui: &Ui) -> Result<&str, Response> {
    ui.principal
        .user
        .as_ref()
        .map(|u| u.id.as_str())
        .ok_or_else(|| {
            fail(
                ui,
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this session has no user",
                ),
            )
        })
}

async fn account_view(s: &AppState, ui: &Ui, f: &Flash, new_token: Option<&str>) -> Page {
    let uid = own_user_id(ui)?;
    let tokens = s
        .engine
        .user_tokens(uid)
        .await
        .map_err(|e| fail(ui, e.into()))?;
    Ok(page(
        ui,
        "Account",
        "",
        html! {
            h1 { "Account" }
            p { (ui.email) " · " (ui.principal.role.label()) }
            (flash(f))
            section.card {
                h2 { "API tokens" }
                p { "A token acts as you, with your role, on the API (" code { "Authorization: Bearer <token>" } " on /api/v1)." }
                @if let Some(t) = new_token {
                    div.flash role="status" {
                        p { "Your new token — copy it now, it is shown only once:" }
                        input #new-token type="text" readonly value=(t) aria-label="New API token";
                    }
                }
                @if tokens.is_empty() {
                    p { "No tokens yet." }
                } @else {
                    table { thead { tr { th { "Name" } th { "Starts with" } th { "Created" } th { "Last used" } th { "Expires" } th { span.sr-only { "Actions" } } } }
                        tbody { @for t in &tokens { tr {
                            td { (t.label) }
                            td { code { (t.prefix.as_deref().unwrap_or("—")) "…" } }
                            td { (ago(t.created_at)) }
                            td { @if let Some(used) = t.last_used_at { (ago(used)) } @else { "never" } }
                            td { @if let Some(expires) = t.expires_at { (ago(expires)) } @else { "never" } }
                            td { form method="post" action={"/account/tokens/" (t.id) "/revoke"} {
                                (csrf(ui))
                                button type="submit" aria-label={"Revoke " (t.label)} { "Revoke" }
                            } }
                        } } } }
                }
                form method="post" action="/account" {
                    (csrf(ui))
                    label for="label" { "Name" }
                    input #label type="text" name="label" maxlength="100" required;
                    label for="expires_in_days" { "Expires after (days; empty: never)" }
                    input #expires_in_days type="number" name="expires_in_days" min="1" max=(shipsync_engine::users::MAX_TOKEN_DAYS);
                    div.actions { button.primary type="submit" { "Create token" } }
                }
            }
        },
    ))
}

pub(super) async fn account_page(
    State(s): State<AppState>,
    ui: Ui,
    Query(f): Query<Flash>,
) -> Page {
    account_view(&s, &ui, &f, None).await
}

pub(super) async fn account_token_create(State(s): State<AppState>, ui: Ui, body: Bytes) -> Page {
    let f = checked_form(&ui, &body)?;
    let uid = own_user_id(&ui)?.to_string();
    let days = match f.get("expires_in_days").trim() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(d) => Some(d),
            Err(_) => {
                return Ok(see_other(
                    "/account?error=The+expiry+must+be+a+whole+number+of+days.",
                ));
            }
        },
    };
    match s
        .engine
        .issue_token(&uid, f.get("label"), days)
        .await
        .map(|(_, token)| token)
    {
        Ok(token) => {
            // The secret is on this page only: keep it out of caches.
            let mut r = account_view(&s, &ui, &Flash::default(), Some(&token)).await?;
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            Ok(r)
        }
        Err(e) => Ok(see_other(&format!(
            "/account?error={}",
            enc(&e.to_string())
        ))),
    }
}

pub(super) async fn account_token_revoke(
    State(s): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    let uid = own_user_id(&ui)?.to_string();
    if s.engine
        .revoke_token(&uid, &id)
        .await
        .map_err(|e| fail(&ui, e.into()))?
    {
        Ok(see_other("/account?saved=Token+revoked."))
    } else {
        Err(fail(&ui, ApiError::not_found("token")))
    }
}
