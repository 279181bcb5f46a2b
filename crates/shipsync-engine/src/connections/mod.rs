//! Connections (a store joined to a merchant's warehouse) and their
//! channels: a connection document is checked here, its store secrets
//! sealed, and saved with its channels; a new shop URL clears the secrets
//! not given again; new credentials forget the store's token.

use serde_json::{Value, json};
use shipsync_core::states::{Channel, StoreStatus};
use shipsync_db::channels::{self, ChannelRow};
use shipsync_db::connections::{self, ConnectionRow};
use shipsync_db::merchants::{self, MerchantRow};
use shipsync_db::runs::{self, RunRow};
use shipsync_db::{DbError, now_micros, store_auth};

use crate::Engine;
use crate::edit::{
    Caller, EditError, EditResult, forbid_scoped, gives, merge_patch, missing_credentials,
};

mod doc;

pub use doc::CHANNELS;
use doc::{
    Parts, credentials, default_schedules, defaults, missing_secret, set, shop_url,
    strip_read_only, to_doc, validate,
};

impl Engine {
    /// One connection by id (whoever may see it: the caller checks).
    pub async fn connection(&self, id: &str) -> Result<Option<ConnectionRow>, DbError> {
        connections::get(self.db().pool(), id).await
    }

    /// The connections of these merchants (None: all) after `cursor`.
    pub async fn connections_of(
        &self,
        merchant_ids: Option<&[String]>,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ConnectionRow>, DbError> {
        connections::list(self.db().pool(), merchant_ids, cursor, limit).await
    }

    /// Creates a connection from a JSON document, with its channels (off,
    /// default schedules).
    pub async fn create_connection(
        &self,
        patch: Value,
        caller: Caller<'_>,
    ) -> EditResult<ConnectionRow> {
        let c = self.draft_connection(patch, caller, None).await?;
        self.save_connection(&c, None).await?;
        Ok(c)
    }

    /// A new connection from a JSON document, checked but not saved. Its
    /// merchant must exist and be visible to `caller`, unless it is
    /// `new_merchant` (a merchant drafted with it, not saved yet either).
    pub async fn draft_connection(
        &self,
        mut patch: Value,
        caller: Caller<'_>,
        new_merchant: Option<&MerchantRow>,
    ) -> EditResult<ConnectionRow> {
        strip_read_only(&mut patch);
        let mut doc = defaults();
        merge_patch(&mut doc, &patch);
        let parts = validate(&doc)?;
        let url = shop_url(&parts.store_json);
        let now = now_micros();
        let mut c = ConnectionRow {
            id: shipsync_db::new_id("con"),
            name: String::new(),
            merchant_id: String::new(),
            enabled: false,
            order_prefix: String::new(),
            store_json: String::new(),
            store_token: None,
            store_client_secret: None,
            store_status: StoreStatus::Ok,
            store_error: None,
            order_rules: Default::default(),
            store_api_secret: None,
            order_webhooks: Default::default(),
            created_at: now,
            updated_at: now,
            token_held: false,
            token_expires_at: None,
            granted_scopes: None,
            shipments_on: false,
            sales_orders_on: false,
        };
        let merchant = match new_merchant {
            Some(m) if m.id == parts.merchant_id => {
                set(self.secrets(), &mut c, parts);
                m.clone()
            }
            _ => self.apply_connection(caller, &mut c, parts).await?,
        };
        self.check_public("store.shop_url", &url).await?;
        if c.enabled
            && let Some(missing) = missing_secret(self.secrets(), &c, &merchant)
        {
            return Err(missing_credentials(missing));
        }
        Ok(c)
    }

    /// Sets the connection from `p`; returns its merchant (which must
    /// exist and be visible to `caller`).
    async fn apply_connection(
        &self,
        caller: Caller<'_>,
        c: &mut ConnectionRow,
        p: Parts,
    ) -> EditResult<MerchantRow> {
        let merchant = if caller.sees(&p.merchant_id) {
            merchants::get(self.db().pool(), &p.merchant_id).await?
        } else {
            None
        };
        let Some(merchant) = merchant else {
            return Err(EditError::invalid(
                "merchant_id",
                "no merchant with this id",
            ));
        };
        set(self.secrets(), c, p);
        Ok(merchant)
    }

    /// Saves a drafted connection with its channels (off, default
    /// schedules); with `new_merchant`, saves that merchant first and
    /// removes it again when the connection cannot be saved (not half-made).
    pub async fn save_connection(
        &self,
        c: &ConnectionRow,
        new_merchant: Option<&MerchantRow>,
    ) -> Result<(), DbError> {
        if let Some(m) = new_merchant {
            merchants::insert(self.db().pool(), m).await?;
        }
        let channels: Vec<ChannelRow> = CHANNELS
            .iter()
            .map(|&ch| ChannelRow {
                connection_id: c.id.clone(),
                channel: ch,
                enabled: false,
                schedules: default_schedules(ch),
                last_completed_at: None,
                next_run_at: None,
            })
            .collect();
        if let Err(e) = connections::insert(self.db(), c, &channels).await {
            if let Some(m) = new_merchant {
                let _ = merchants::delete(self.db(), &m.id).await;
            }
            self.webhook_targets_changed();
            return Err(e);
        }
        self.webhook_targets_changed();
        Ok(())
    }

    /// Applies a JSON merge patch to connection `c` (as the caller loaded
    /// it) and saves it; a limited caller may not move its shop URL.
    pub async fn update_connection(
        &self,
        mut c: ConnectionRow,
        mut patch: Value,
        caller: Caller<'_>,
    ) -> EditResult<ConnectionRow> {
        let secrets = self.secrets();
        let was_enabled = c.enabled;
        strip_read_only(&mut patch);
        let mut doc = to_doc(secrets, &c)?;
        // A legacy token given alone switches back from an app's credentials.
        if gives(&patch, "/store/access_token")
            && patch.pointer("/store/auth").is_none()
            && let Some(st) = doc.get_mut("store").and_then(Value::as_object_mut)
        {
            st.remove("auth");
        }
        let before = credentials(secrets, &c)?;
        merge_patch(&mut doc, &patch);
        let mut parts = validate(&doc)?;
        let new_url = shop_url(&parts.store_json);
        // Stored secrets never follow a new shop URL: kept only when given
        // again in this request.
        let mut cleared = false;
        if new_url != shop_url(&c.store_json) {
            forbid_scoped(caller, &["store.shop_url"])?;
            self.check_public("store.shop_url", &new_url).await?;
            if !gives(&patch, "/store/access_token") && !gives(&patch, "/store/auth/access_token") {
                cleared |= parts.access_token.take().is_some();
            }
            if !gives(&patch, "/store/auth/client_secret") {
                cleared |= parts.client_secret.take().is_some();
            }
            if !gives(&patch, "/store/api_secret") {
                parts.api_secret = None;
            }
        }
        let merchant = self.apply_connection(caller, &mut c, parts).await?;
        // New credentials: the app's token (of the old ones) is forgotten, and
        // a store that refused the old ones is tried again.
        let renewed = credentials(secrets, &c)? != before;
        if renewed {
            store_auth::delete_token(self.db().pool(), &c.id).await?;
            c.token_held = false;
            c.token_expires_at = None;
            c.granted_scopes = None;
            c.store_status = StoreStatus::Ok;
            c.store_error = None;
        }
        if c.enabled
            && let Some(missing) = missing_secret(secrets, &c, &merchant)
        {
            if patch.get("enabled") == Some(&Value::Bool(true)) {
                return Err(missing_credentials(missing));
            }
            if cleared {
                // Its token was just cleared: it cannot run until given again.
                c.enabled = false;
            }
        }
        c.updated_at = now_micros();
        connections::update(self.db().pool(), &c).await?;
        self.connection_changed(&c.id);
        if (!was_enabled || renewed) && c.enabled {
            self.release_waiting(&c.merchant_id).await?;
        }
        // Subscribed or unsubscribed as it is now (switched on or off, new
        // credentials).
        self.queue_order_webhooks(&c.id).await?;
        Ok(c)
    }

    /// Deletes a connection (its channels, runs and store token with it).
    /// Its store's order webhooks are removed first, as far as the store
    /// answers (a store that cannot be reached keeps them: Shopify deletes
    /// subscriptions that keep failing).
    pub async fn delete_connection(&self, id: &str) -> Result<(), DbError> {
        if let Some(mut c) = connections::get(self.db().pool(), id).await?
            && (c.order_webhooks.subscribed || !c.order_webhooks.ids.is_empty())
        {
            c.enabled = false;
            if let Err(e) = self.ensure_order_webhooks(&c).await {
                tracing::warn!(connection = %id, error = %e, "order webhooks not removed");
            }
        }
        connections::delete(self.db(), id).await?;
        self.connection_changed(id);
        Ok(())
    }

    /// One channel of a connection; `NotFound` for a name other than
    /// [`CHANNELS`].
    pub async fn channel(&self, connection_id: &str, channel: &str) -> EditResult<ChannelRow> {
        let Ok(channel) = channel.parse::<Channel>() else {
            return Err(EditError::NotFound(
                "channel (use sales_orders or shipments)",
            ));
        };
        channels::get(self.db().pool(), connection_id, channel)
            .await?
            .ok_or(EditError::NotFound("channel"))
    }

    /// Applies `{"enabled"?, "schedules"?}` to a channel and saves it; a
    /// Shipments channel switched on releases its merchant's waiting work.
    pub async fn update_channel(
        &self,
        mut ch: ChannelRow,
        patch: &Value,
    ) -> EditResult<ChannelRow> {
        let was_enabled = ch.enabled;
        for (k, v) in patch.as_object().into_iter().flatten() {
            match k.as_str() {
                "enabled" => match v {
                    Value::Bool(b) => ch.enabled = *b,
                    _ => return Err(EditError::invalid("enabled", "must be true or false")),
                },
                "schedules" => {
                    let list = if v.is_null() { json!([]) } else { v.clone() };
                    let mut parsed = shipsync_core::schedule::parse_schedules(&list)
                        .map_err(|e| EditError::invalid(&e.field, &e.message))?;
                    for sch in &mut parsed {
                        if sch.id.is_empty() {
                            sch.id = shipsync_db::new_id("sch");
                        }
                    }
                    ch.schedules = shipsync_core::schedule::to_json(&parsed);
                    ch.next_run_at =
                        shipsync_core::schedule::next_fire(&parsed, jiff::Timestamp::now())
                            .map(|t| t.as_microsecond());
                }
                "channel" | "last_completed_at" | "next_run_at" | "last_run" => {}
                other => return Err(EditError::invalid(other, "unknown field")),
            }
        }
        if !was_enabled && ch.enabled {
            // Switched on: the schedule starts from now, without catching up
            // on slots that passed while the channel was off.
            let rules = shipsync_core::schedule::parse_schedules(&ch.schedules).unwrap_or_default();
            ch.next_run_at = shipsync_core::schedule::next_fire(&rules, jiff::Timestamp::now())
                .map(|t| t.as_microsecond());
        }
        channels::update(self.db().pool(), &ch).await?;
        if ch.channel == Channel::SalesOrders && was_enabled != ch.enabled {
            self.queue_order_webhooks(&ch.connection_id).await?;
        }
        if !was_enabled && ch.enabled && ch.channel == Channel::Shipments {
            let c = self
                .connection(&ch.connection_id)
                .await?
                .ok_or(EditError::NotFound("connection"))?;
            self.release_waiting(&c.merchant_id).await?;
        }
        Ok(ch)
    }

    /// The latest run of a channel, if any.
    pub async fn last_run(
        &self,
        connection_id: &str,
        channel: Channel,
    ) -> Result<Option<RunRow>, DbError> {
        runs::last(self.db().pool(), connection_id, channel).await
    }

    /// Run `run_id` when it belongs to this connection's channel.
    pub async fn channel_run(
        &self,
        connection_id: &str,
        channel: Channel,
        run_id: &str,
    ) -> Result<Option<RunRow>, DbError> {
        Ok(runs::get(self.db().pool(), run_id)
            .await?
            .filter(|r| r.connection_id == connection_id && r.channel == channel))
    }
}
