//! Connecting a store: the install link of the authorization code flow and
//! its callback, the scopes a store granted against those the enabled
//! channels need, and the way back from `reconnect_needed`.

use secrecy::SecretString;
use shipsync_core::states::StoreStatus;
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::now_micros;
use shipsync_db::store_auth::{self, OauthStateRow};
use shipsync_shopify::auth::{self, AppCredentials};

use crate::Engine;
use crate::error::EngineError;
use crate::secrets::{hash_token, random_token};
use crate::stores::StoreSettings;
use crate::tokens::{StoreAuth, token_row};

/// How long an install link's `state` is good for.
pub const STATE_LIFETIME_SECS: i64 = 10 * 60;

/// Why an install callback was refused; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the link's state is unknown: start again with Connect to Shopify")]
    UnknownState,
    #[error("this install link was already used: start again with Connect to Shopify")]
    UsedState,
    #[error(
        "this install link expired (links last 10 minutes): start again with Connect to Shopify"
    )]
    ExpiredState,
    #[error("this install link was made for another user: sign in as that user, or start again")]
    OtherUser,
    #[error(
        "the callback's signature (hmac) is wrong: the request did not come from Shopify unchanged"
    )]
    BadHmac,
    #[error("the callback names shop {given:?}, but this connection's shop is {expected:?}")]
    OtherShop { given: String, expected: String },
    #[error("the callback has no {0}")]
    Missing(&'static str),
    #[error("the connection of this link was deleted or changed to another way of authenticating")]
    NotInstallable,
    #[error("Shopify did not give a token for the code: {0}")]
    Exchange(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<shipsync_db::DbError> for InstallError {
    fn from(e: shipsync_db::DbError) -> Self {
        Self::Engine(e.into())
    }
}

/// An authorization-code connection's settings, app credentials and the
/// scopes it asks for (`None`: shipsync's default set).
type Installable = (StoreSettings, AppCredentials, Option<Vec<String>>);

/// The app credentials of an authorization-code connection.
fn install_app(engine: &Engine, c: &ConnectionRow) -> Result<Option<Installable>, EngineError> {
    let settings = StoreSettings::parse(c)?;
    let StoreAuth::AuthorizationCode { client_id, scopes } = settings.auth() else {
        return Ok(None);
    };
    let Some(sealed) = &c.store_client_secret else {
        return Ok(None);
    };
    let secret = engine
        .secrets()
        .open_string(sealed)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(Some((
        settings,
        AppCredentials {
            client_id,
            client_secret: SecretString::from(secret),
        },
        scopes,
    )))
}

impl Engine {
    /// The install link for an authorization-code connection, with a new
    /// single-use `state` bound to it and to `user_id` (10 minutes).
    /// `Ok(None)` when the connection does not authenticate that way or has
    /// no client secret.
    pub async fn authorize_url(
        &self,
        c: &ConnectionRow,
        user_id: Option<&str>,
        redirect_uri: &str,
    ) -> Result<Option<String>, EngineError> {
        let Some((settings, app, scopes)) = install_app(self, c)? else {
            return Ok(None);
        };
        let state = random_token("st");
        let now = now_micros();
        store_auth::insert_oauth_state(
            self.db(),
            &OauthStateRow {
                state_hash: hash_token(&state),
                connection_id: c.id.clone(),
                user_id: user_id.map(str::to_owned),
                created_at: now,
                expires_at: now + STATE_LIFETIME_SECS * 1_000_000,
                used_at: None,
            },
        )
        .await?;
        let scopes = scopes.unwrap_or_else(auth::requested_scopes);
        let url = auth::authorize_url(
            &settings.shop_url,
            &app.client_id,
            &scopes,
            redirect_uri,
            &state,
        )
        .map_err(|e| EngineError::Permanent(e.to_string()))?;
        Ok(Some(url.to_string()))
    }

    /// The install callback (`query`: every parameter, decoded), for the
    /// signed-in `user_id` (`admin`: an Administrator): checks the `state`
    /// (a link asked for with the administrator token, bound to no user,
    /// is for any Administrator), the `hmac` and the `shop`, then exchanges
    /// the code and keeps the token. Returns the connection.
    pub async fn complete_install(
        &self,
        query: &[(String, String)],
        user_id: Option<&str>,
        admin: bool,
    ) -> Result<ConnectionRow, InstallError> {
        let param = |name: &'static str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
                .ok_or(InstallError::Missing(name))
        };
        let state = param("state")?;
        let hash = hash_token(state);
        let row = store_auth::oauth_state(self.db().pool(), &hash)
            .await?
            .ok_or(InstallError::UnknownState)?;
        let now = now_micros();
        if row.used_at.is_some() {
            return Err(InstallError::UsedState);
        }
        if row.expires_at < now {
            return Err(InstallError::ExpiredState);
        }
        let same_user = match row.user_id.as_deref() {
            Some(bound) => user_id == Some(bound),
            None => admin,
        };
        if !same_user {
            return Err(InstallError::OtherUser);
        }
        let c = connections::get(self.db().pool(), &row.connection_id)
            .await?
            .ok_or(InstallError::NotInstallable)?;
        let (settings, app, _) = install_app(self, &c)?.ok_or(InstallError::NotInstallable)?;
        if !auth::callback_hmac_valid(query, &app.client_secret) {
            return Err(InstallError::BadHmac);
        }
        let expected = auth::shop_host(&settings.shop_url)
            .map_err(|e| EngineError::Permanent(e.to_string()))?;
        let given = param("shop")?;
        if !given.eq_ignore_ascii_case(&expected) {
            return Err(InstallError::OtherShop {
                given: given.to_owned(),
                expected,
            });
        }
        let code = param("code")?;
        // Single use: of two callbacks with one state, only one goes on.
        if !store_auth::mark_oauth_state_used(self.db().pool(), &hash, now).await? {
            return Err(InstallError::UsedState);
        }
        let grant = auth::exchange_code(&self.inner.stores.http(), &settings.shop_url, &app, code)
            .await
            .map_err(|e| InstallError::Exchange(e.to_string()))?;
        store_auth::save_token(
            self.db(),
            &token_row(&c.id, &grant, self.secrets(), now_micros()),
        )
        .await?;
        self.store_reconnected(&c).await?;
        tracing::info!(connection = %c.id, scopes = %grant.scopes.join(","), "store connected by the install flow");
        let c = connections::get(self.db().pool(), &c.id)
            .await?
            .ok_or(InstallError::NotInstallable)?;
        Ok(c)
    }

    /// The connection's credentials work again (reconnected, or given
    /// again): clears `reconnect_needed` and sends what waited for it.
    pub async fn store_reconnected(&self, c: &ConnectionRow) -> Result<(), EngineError> {
        connections::set_store_status(self.db().pool(), &c.id, StoreStatus::Ok, None).await?;
        self.connection_changed(&c.id);
        if c.enabled {
            self.release_waiting(&c.merchant_id).await?;
        }
        Ok(())
    }

    /// The scopes the store granted, when known.
    pub fn granted_scopes(c: &ConnectionRow) -> Option<Vec<String>> {
        c.granted_scopes.as_deref().map(auth::split_scopes)
    }

    /// The scopes the enabled channels need and the store did not grant
    /// (`granted` comma-separated; `None` when not known yet). The
    /// third-party scopes are not counted: they matter only when another
    /// app manages the location, which shipsync does not look up.
    pub fn missing_scopes(c: &ConnectionRow) -> Option<Vec<String>> {
        Some(missing_for(c, &Self::granted_scopes(c)?))
    }
}

/// Of the scopes connection `c`'s enabled channels need, those `granted`
/// lacks (see [`Engine::missing_scopes`]).
pub(crate) fn missing_for(c: &ConnectionRow, granted: &[String]) -> Vec<String> {
    auth::missing_scopes(granted, c.shipments_on, c.sales_orders_on, false)
}
