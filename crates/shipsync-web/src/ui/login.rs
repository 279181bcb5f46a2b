//! Signing in and out.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{Flash, Page, document, flash, see_other};
use super::session::{self, Form, LOGIN_COOKIE, Ui, checked_form, set_cookie, ui_cookie};
use crate::AppState;
use crate::client::Client;
use crate::error::ApiError;

pub(super) async fn login_page(State(s): State<AppState>, Query(f): Query<Flash>) -> Response {
    login_form(&s, &f, None)
}

/// The sign-in page; `refused` shows why sign-in is refused for now.
fn login_form(s: &AppState, f: &Flash, refused: Option<&ApiError>) -> Response {
    let token = shipsync_engine::secrets::random_token("lgn");
    let body = html! {
        div.login.card {
            h1 { "Sign in to shipsync" }
            (flash(f))
            @if let Some(e) = refused {
                div.error-box role="alert" data-code=(e.code) { (e.message) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                div.actions { button.primary type="submit" { "Sign in" } }
            }
            p.hint { "No account yet? An administrator creates users; the first one with "
                code { "shipsync users create --admin EMAIL" } "." }
        }
    };
    (
        [(
            header::SET_COOKIE,
            set_cookie(s, LOGIN_COOKIE, &token, 3600),
        )],
        Html(document("Sign in", body).into_string()),
    )
        .into_response()
}

/// A sign-in refused for now (429 `too_many_attempts`, or 503 while every
/// core is busy checking others): the sign-in page with the reason, or the
/// API's JSON error to a client that asks for JSON; `Retry-After` either way.
fn login_refused(s: &AppState, headers: &axum::http::HeaderMap, e: ApiError) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return e.into_response();
    }
    let mut r = login_form(s, &Flash::default(), Some(&e));
    *r.status_mut() = e.status;
    if let Some(secs) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    r
}

/// Failed sign-ins are throttled per client address and per email
/// ([`crate::throttle`]): the same 429 for known and unknown emails.
pub(super) async fn login(
    State(s): State<AppState>,
    Client(client): Client,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Page {
    let f = Form::parse(&body);
    let expected = ui_cookie(&s, &headers, LOGIN_COOKIE).unwrap_or_default();
    if !f.csrf_ok(&expected) {
        return Err(session::csrf_refused());
    }
    let attempt = s
        .throttle
        .sign_in(client, f.get("email"))
        .map_err(|t| login_refused(&s, &headers, ApiError::too_many_attempts(t)))?;
    let user = match s.engine.sign_in(f.get("email"), f.get("password")).await {
        Ok(user) => user,
        Err(e) => {
            attempt.abandoned();
            return Err(login_refused(&s, &headers, ApiError::from(e)));
        }
    };
    let Some(user) = user else {
        drop(attempt);
        return Ok(see_other("/login?error=Wrong+email+or+password."));
    };
    attempt.succeeded();
    let (token, _) = s
        .engine
        .start_session(&user.id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let max_age = shipsync_engine::users::SESSION_MICROS / 1_000_000;
    let mut r = see_other("/");
    let h = r.headers_mut();
    for c in [
        set_cookie(&s, session::COOKIE, &token, max_age),
        set_cookie(&s, LOGIN_COOKIE, "", 0),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

pub(super) async fn logout(
    State(s): State<AppState>,
    ui: Ui,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Page {
    checked_form(&ui, &body)?;
    if let Some(token) = ui_cookie(&s, &headers, session::COOKIE) {
        let _ = s.engine.end_session(&token).await;
    }
    Ok((
        [(header::SET_COOKIE, set_cookie(&s, session::COOKIE, "", 0))],
        Redirect::to("/login?saved=Signed+out."),
    )
        .into_response())
}
