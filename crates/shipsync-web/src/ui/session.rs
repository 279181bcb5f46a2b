//! The UI's sign-in state: a session cookie (HttpOnly, SameSite=Lax; when
//! the public URL is https, Secure and `__Host-`-prefixed, so that no other
//! host or path can set or shadow it) whose value is stored hashed, and a
//! per-session CSRF token that every form carries and every POST checks.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::Principal;

pub const COOKIE: &str = "shipsync_session";
/// The sign-in form's CSRF token (no session exists yet): a cookie whose
/// value the form must repeat.
pub const LOGIN_COOKIE: &str = "shipsync_login";

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn https(s: &AppState) -> bool {
    s.config
        .public_url
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
}

/// The cookie's name: `__Host-` before it when the public URL is https
/// (browsers then insist on Secure, Path=/ and no Domain).
fn cookie_name(s: &AppState, name: &str) -> String {
    if https(s) {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// The value of one of the UI's cookies (by its name without prefix).
pub fn ui_cookie(s: &AppState, headers: &HeaderMap, name: &str) -> Option<String> {
    cookie(headers, &cookie_name(s, name))
}

/// A `Set-Cookie` value; `max_age` 0 deletes it.
pub fn set_cookie(s: &AppState, name: &str, value: &str, max_age: i64) -> String {
    let secure = if https(s) { "; Secure" } else { "" };
    let name = cookie_name(s, name);
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// A signed-in user of the UI.
#[derive(Clone)]
pub struct Ui {
    pub principal: Principal,
    pub email: String,
    pub csrf: String,
}

impl FromRequestParts<AppState> for Ui {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let to_login = || Redirect::to("/login").into_response();
        let Some(token) = ui_cookie(s, &parts.headers, COOKIE) else {
            return Err(to_login());
        };
        match s.engine.session(&token).await {
            Ok(Some((user, csrf))) => Ok(Ui {
                email: user.email.clone(),
                principal: Principal::from_user(user),
                csrf,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => {
                tracing::error!(error = %e, "session lookup");
                Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; retry shortly",
                )
                    .into_response())
            }
        }
    }
}

/// A submitted form: every value of every field.
pub struct Form(HashMap<String, Vec<String>>);

impl Form {
    pub fn parse(body: &[u8]) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            m.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Form(m)
    }

    /// The first value of a field, or "".
    pub fn get(&self, k: &str) -> &str {
        self.0
            .get(k)
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }

    /// True when the `csrf` field equals `expected` (constant time).
    pub fn csrf_ok(&self, expected: &str) -> bool {
        let got = self.get("csrf");
        !expected.is_empty()
            && got.len() == expected.len()
            && bool::from(got.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// The form of a signed-in user's POST, or 403 when its CSRF token is
/// missing or wrong.
pub fn checked_form(ui: &Ui, body: &[u8]) -> Result<Form, Response> {
    let f = Form::parse(body);
    if f.csrf_ok(&ui.csrf) {
        Ok(f)
    } else {
        Err(csrf_refused())
    }
}

pub fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this form is missing its security token or is stale: reload the page and submit it again",
    )
        .into_response()
}
