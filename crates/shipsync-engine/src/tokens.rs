//! The Admin API token a connection's store client sends, and its upkeep:
//! a legacy token as given; an app's token (client credentials, or the
//! install's authorization code) read from `store_tokens`, obtained when
//! none is held, refreshed ahead of its expiry and once more on a 401 —
//! by one worker on one node at a time (an in-process lock, then a lease
//! row in the database that the other nodes see), the others using the
//! token still valid or waiting for the new one.
//!
//! When the store refuses the credentials themselves (a revoked token, a
//! wrong client secret, a used refresh token) the connection is marked
//! `reconnect_needed` with the reason: the shipments for it wait instead of
//! failing, and go out when a person reconnects it.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use shipsync_core::states::StoreStatus;
use shipsync_db::store_auth::{self, StoreTokenRow};
use shipsync_db::{Db, connections, now_micros};
use shipsync_shopify::auth::{self, AppCredentials, Grant};
use shipsync_shopify::{AccessTokens, ShopifyError, TokenFuture};

use crate::secrets::SecretBox;

/// Longest a refresh may hold the lease (the token endpoint's answer
/// comes within the HTTP timeout).
const LEASE: Duration = Duration::from_secs(30);
/// How often a worker waiting for another's refresh looks again.
const POLL: Duration = Duration::from_millis(200);
/// The most of a token's remaining life spent refreshing ahead.
const MAX_AHEAD: i64 = 5 * 60 * 1_000_000;

/// How a connection's store authenticates, without its secrets (kept in
/// `store_json` as `auth`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StoreAuth {
    /// A legacy admin-created app's token (`store.access_token`).
    AccessToken,
    /// Client credentials grant.
    ClientCredentials { client_id: String },
    /// The install (authorization code) flow; `scopes` asked for, when not
    /// shipsync's default set.
    AuthorizationCode {
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scopes: Option<Vec<String>>,
    },
}

impl StoreAuth {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::ClientCredentials { .. } => "client_credentials",
            Self::AuthorizationCode { .. } => "authorization_code",
        }
    }

    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::AccessToken => None,
            Self::ClientCredentials { client_id } | Self::AuthorizationCode { client_id, .. } => {
                Some(client_id)
            }
        }
    }
}

/// When a token of this life should be replaced: when less than a tenth
/// of its lifetime (at most 5 minutes) remains. `None`: never.
pub fn refresh_from(obtained_at: Option<i64>, expires_at: Option<i64>) -> Option<i64> {
    let expires_at = expires_at?;
    let lifetime = expires_at - obtained_at.unwrap_or(expires_at);
    Some(expires_at - (lifetime / 10).clamp(0, MAX_AHEAD))
}

/// The row to store for a grant obtained at `now`.
pub fn token_row(
    connection_id: &str,
    grant: &Grant,
    secrets: &SecretBox,
    now: i64,
) -> StoreTokenRow {
    let micros = |d: Duration| now + i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2);
    StoreTokenRow {
        connection_id: connection_id.to_owned(),
        access_token: Some(secrets.seal_str(grant.access_token.expose_secret())),
        obtained_at: Some(now),
        expires_at: grant.expires_in.map(micros),
        refresh_token: grant
            .refresh_token
            .as_ref()
            .map(|t| secrets.seal_str(t.expose_secret())),
        refresh_expires_at: grant.refresh_token_expires_in.map(micros),
        scopes: Some(grant.scopes.join(",")),
        refreshing_until: None,
        generation: 0,
    }
}

/// The token a connection's client sends; see the module's doc.
pub(crate) struct KeptTokens {
    pub(crate) db: Db,
    pub(crate) secrets: SecretBox,
    pub(crate) http: reqwest::Client,
    pub(crate) connection_id: String,
    pub(crate) shop_url: String,
    pub(crate) source: Source,
    /// Whether the connection is saved: a draft's tokens (a "Test
    /// connection" in the wizard) are obtained but not stored.
    pub(crate) saved: bool,
    /// The token last used, with its generation and when to replace it;
    /// locked while a worker of this node obtains one.
    cached: tokio::sync::Mutex<Option<Held>>,
}

pub(crate) enum Source {
    /// A legacy token: nothing to refresh.
    Fixed(SecretString),
    /// Client credentials: a new token whenever needed.
    ClientCredentials(AppCredentials),
    /// The install's token: refreshed with its refresh token when it
    /// expires; the install itself is a person's step.
    AuthorizationCode(AppCredentials),
}

#[derive(Clone)]
struct Held {
    token: SecretString,
    refresh_at: Option<i64>,
    expires_at: Option<i64>,
}

impl Held {
    fn fresh(&self, now: i64) -> bool {
        self.refresh_at.is_none_or(|at| now < at)
    }

    fn valid(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

impl KeptTokens {
    pub(crate) fn new(
        db: Db,
        secrets: SecretBox,
        http: reqwest::Client,
        connection_id: String,
        shop_url: String,
        source: Source,
        saved: bool,
    ) -> Self {
        Self {
            db,
            secrets,
            http,
            connection_id,
            shop_url,
            source,
            saved,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    fn internal(e: impl std::fmt::Display) -> ShopifyError {
        ShopifyError::Transient {
            reason: format!("could not read the store's token: {e}"),
            retry_after: None,
        }
    }

    /// The stored token, opened.
    async fn stored(&self) -> Result<(Option<Held>, StoreTokenRow), ShopifyError> {
        let row = store_auth::token(self.db.pool(), &self.connection_id)
            .await
            .map_err(Self::internal)?
            .unwrap_or_else(|| StoreTokenRow {
                connection_id: self.connection_id.clone(),
                ..StoreTokenRow::default()
            });
        let held = match &row.access_token {
            Some(sealed) => Some(Held {
                token: SecretString::from(
                    self.secrets.open_string(sealed).map_err(Self::internal)?,
                ),
                refresh_at: refresh_from(row.obtained_at, row.expires_at),
                expires_at: row.expires_at,
            }),
            None => None,
        };
        Ok((held, row))
    }

    /// Marks the connection `reconnect_needed` and returns the error that
    /// says so.
    async fn refused_for_good(&self, why: String) -> ShopifyError {
        let message = format!(
            "{why}; reconnect the store (give its credentials again, or use Connect to Shopify)"
        );
        if !self.saved {
            return ShopifyError::Unauthorized(message);
        }
        if let Err(e) = connections::set_store_status(
            self.db.pool(),
            &self.connection_id,
            StoreStatus::ReconnectNeeded,
            Some(&message),
        )
        .await
        {
            tracing::warn!(connection = %self.connection_id, error = %e, "could not record reconnect_needed");
        }
        tracing::warn!(connection = %self.connection_id, reason = %message, "store credentials refused: reconnect needed");
        ShopifyError::Unauthorized(message)
    }

    /// A token to send: the cached one while fresh, else the stored one
    /// while fresh, else a new one (`force`: even when the stored one is
    /// fresh, because it was refused — unless it is no longer `refused`).
    async fn obtain(&self, refused: Option<&SecretString>) -> Result<SecretString, ShopifyError> {
        // A fixed token is not `refreshable`: the client never reports its
        // refusal here, only through `failed`.
        if let Source::Fixed(token) = &self.source {
            return Ok(token.clone());
        }

        let mut cached = self.cached.lock().await;
        let now = now_micros();
        if refused.is_none()
            && let Some(h) = cached.as_ref().filter(|h| h.fresh(now))
        {
            return Ok(h.token.clone());
        }
        if !self.saved {
            let grant = self
                .grant(&StoreTokenRow::default(), None, refused.is_some())
                .await?;
            let new = token_row(&self.connection_id, &grant, &self.secrets, now);
            *cached = Some(Held {
                token: grant.access_token.clone(),
                refresh_at: refresh_from(new.obtained_at, new.expires_at),
                expires_at: new.expires_at,
            });
            return Ok(grant.access_token);
        }
        let deadline = now + i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX) + 5_000_000;
        loop {
            let now = now_micros();
            let (held, row) = self.stored().await?;
            let is_refused =
                |h: &Held| refused.is_some_and(|r| r.expose_secret() == h.token.expose_secret());
            if let Some(h) = held.as_ref().filter(|h| h.fresh(now) && !is_refused(h)) {
                *cached = Some(h.clone());
                return Ok(h.token.clone());
            }
            // A new token is needed: ours to get, if nobody on any node is
            // getting one.
            let until = now + i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX / 2);
            let mine = store_auth::take_refresh_lease(
                &self.db,
                &self.connection_id,
                row.generation,
                now,
                until,
            )
            .await
            .map_err(Self::internal)?;
            if mine {
                let outcome = self.grant(&row, held.as_ref(), refused.is_some()).await;
                return match outcome {
                    Ok(grant) => {
                        let new =
                            token_row(&self.connection_id, &grant, &self.secrets, now_micros());
                        let saved = store_auth::save_token(&self.db, &new).await;
                        if let Err(e) = saved {
                            let _ = store_auth::release_refresh_lease(
                                self.db.pool(),
                                &self.connection_id,
                            )
                            .await;
                            return Err(Self::internal(e));
                        }
                        tracing::info!(connection = %self.connection_id, expires_in = ?grant.expires_in, "obtained a store token");
                        let h = Held {
                            token: grant.access_token.clone(),
                            refresh_at: refresh_from(new.obtained_at, new.expires_at),
                            expires_at: new.expires_at,
                        };
                        *cached = Some(h);
                        Ok(grant.access_token)
                    }
                    Err(e) => {
                        let _ =
                            store_auth::release_refresh_lease(self.db.pool(), &self.connection_id)
                                .await;
                        match e {
                            ShopifyError::Unauthorized(why) => {
                                Err(self.refused_for_good(why).await)
                            }
                            // Refreshing ahead failed: the old token still works.
                            other => match held.filter(|h| h.valid(now) && !is_refused(h)) {
                                Some(h) => {
                                    tracing::warn!(connection = %self.connection_id, error = %other, "could not refresh the store token ahead of time; using the current one");
                                    Ok(h.token)
                                }
                                None => Err(other),
                            },
                        }
                    }
                };
            }
            // Another worker is refreshing: the current token while it
            // still works, else wait for theirs.
            if let Some(h) = held.as_ref().filter(|h| h.valid(now) && !is_refused(h)) {
                return Ok(h.token.clone());
            }
            if now > deadline {
                return Err(ShopifyError::Transient {
                    reason: "another worker's refresh of the store token did not finish".into(),
                    retry_after: None,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks Shopify for a new token.
    async fn grant(
        &self,
        row: &StoreTokenRow,
        held: Option<&Held>,
        refused: bool,
    ) -> Result<Grant, ShopifyError> {
        match &self.source {
            Source::Fixed(_) => Err(ShopifyError::Permanent(
                "a fixed token is not refreshed".into(),
            )),
            Source::ClientCredentials(app) => {
                auth::client_credentials(&self.http, &self.shop_url, app).await
            }
            Source::AuthorizationCode(app) => {
                let refresh = match &row.refresh_token {
                    Some(sealed) => Some(SecretString::from(
                        self.secrets.open_string(sealed).map_err(Self::internal)?,
                    )),
                    None => None,
                };
                match (refresh, held) {
                    (Some(refresh), _) => {
                        auth::refresh(&self.http, &self.shop_url, app, &refresh).await
                    }
                    (None, None) => Err(ShopifyError::Unauthorized(
                        "the store is not connected yet: use Connect to Shopify".into(),
                    )),
                    (None, Some(_)) if refused => Err(ShopifyError::Unauthorized(
                        "Shopify refused the installed app's token (HTTP 401): the app was uninstalled or its token revoked".into(),
                    )),
                    (None, Some(_)) => Err(ShopifyError::Unauthorized(
                        "the installed app's token expired and Shopify gave no refresh token".into(),
                    )),
                }
            }
        }
    }
}

impl AccessTokens for KeptTokens {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(self.obtain(None))
    }

    fn refreshable(&self) -> bool {
        !matches!(self.source, Source::Fixed(_))
    }

    fn refused<'a>(&'a self, refused: &'a SecretString) -> TokenFuture<'a> {
        Box::pin(self.obtain(Some(refused)))
    }

    fn failed<'a>(
        &'a self,
        reason: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            self.refused_for_good(reason.to_owned()).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshed_when_a_tenth_of_the_life_remains_at_most_five_minutes() {
        const S: i64 = 1_000_000;
        // (obtained, expires, refresh from)
        let cases = [
            (Some(0), Some(86_400 * S), Some(86_400 * S - 300 * S)),
            (Some(0), Some(600 * S), Some(540 * S)),
            (Some(0), Some(10 * S), Some(9 * S)),
            (None, Some(10 * S), Some(10 * S)),
            (Some(0), None, None),
        ];
        for (obtained, expires, want) in cases {
            assert_eq!(
                refresh_from(obtained, expires),
                want,
                "{obtained:?} {expires:?}"
            );
        }
    }

    #[test]
    fn auth_kinds_round_trip() {
        for (auth, text) in [
            (StoreAuth::AccessToken, r#"{"type":"access_token"}"#),
            (
                StoreAuth::ClientCredentials {
                    client_id: "c".into(),
                },
                r#"{"type":"client_credentials","client_id":"c"}"#,
            ),
            (
                StoreAuth::AuthorizationCode {
                    client_id: "c".into(),
                    scopes: None,
                },
                r#"{"type":"authorization_code","client_id":"c"}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&auth).expect("json"), text);
            assert_eq!(
                serde_json::from_str::<StoreAuth>(text).expect("parse"),
                auth
            );
        }
    }
}
