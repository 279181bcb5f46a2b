//! Merchants: the warehouse side and the shipment-webhook settings. A
//! merchant document (the API's body, or a form turned into one) is checked
//! here, its warehouse secrets and shared secret sealed, and saved; an
//! endpoint change clears the secrets not given again (and switches off the
//! connections that needed them).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use shipsync_core::ledger::KitPolicy;
use shipsync_db::merchants::{self, MerchantRow};
use shipsync_db::{DbError, connections, now_micros};

use crate::Engine;
use crate::edit::{Caller, EditError, EditResult, forbid_scoped, gives, merge_patch};
use crate::secrets::{hash_token, random_token};

mod doc;
mod key_cache;

pub use doc::{MIN_SHARED_SECRET_BYTES, SECRET_FIELDS, missing_secret};
use doc::{
    OLD_KEY_GRACE_MICROS, apply, check_targets, defaults, endpoint_changes, stored_secret_keys,
    strip_read_only, to_doc, validate,
};
pub(crate) use key_cache::KeyCache;

impl Engine {
    /// One merchant by id (whoever may see it: the caller checks).
    pub async fn merchant(&self, id: &str) -> Result<Option<MerchantRow>, DbError> {
        merchants::get(self.db().pool(), id).await
    }

    /// The merchants `caller` sees after `cursor` (by id), at most `limit`.
    pub async fn visible_merchants(
        &self,
        caller: Caller<'_>,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MerchantRow>, DbError> {
        let Some(ids) = caller.scope else {
            return merchants::list(self.db().pool(), cursor, limit).await;
        };
        // A limited caller's few merchants, in the list's order (by id).
        let mut ids: Vec<&String> = ids
            .iter()
            .filter(|id| cursor.is_none_or(|c| id.as_str() > c))
            .collect();
        ids.sort();
        let mut rows = Vec::new();
        for id in ids {
            if rows.len() as i64 >= limit {
                break;
            }
            rows.extend(merchants::get(self.db().pool(), id).await?);
        }
        Ok(rows)
    }

    /// The merchant whose webhook URL carries `key` (any state), as read at
    /// most a second ago (see [`key_cache`]).
    pub async fn merchant_by_webhook_key(
        &self,
        key: &str,
    ) -> Result<Option<Arc<MerchantRow>>, DbError> {
        let hash = hash_token(key);
        let cache = &self.inner.webhook_keys;
        if let Some(m) = cache.get(&hash) {
            return Ok(Some(m));
        }
        let generation = cache.generation();
        let Some(m) = merchants::by_key_hash(self.db().pool(), &hash).await? else {
            return Ok(None);
        };
        let m = Arc::new(m);
        cache.put(hash, m.clone(), generation);
        Ok(Some(m))
    }

    /// A merchant, connection or mapping was written: the webhook endpoint
    /// reads merchants afresh from now on (on this node; others within
    /// [`key_cache::TTL`]).
    pub fn webhook_targets_changed(&self) {
        self.inner.webhook_keys.clear();
    }

    /// Creates a merchant from a JSON document (see [`Self::draft_merchant`]).
    pub async fn create_merchant(&self, patch: Value) -> EditResult<MerchantRow> {
        let m = self.draft_merchant(patch).await?;
        merchants::insert(self.db().pool(), &m).await?;
        self.webhook_targets_changed();
        Ok(m)
    }

    /// A new merchant from a JSON document, checked and sealed but not saved
    /// (the connection wizard tests its credentials first).
    pub async fn draft_merchant(&self, mut patch: Value) -> EditResult<MerchantRow> {
        strip_read_only(&mut patch);
        let mut doc = defaults();
        merge_patch(&mut doc, &patch);
        let parts = validate(&doc, &[])?;
        let every = endpoint_changes("{}", &parts.warehouse_json);
        check_targets(self, &parts.warehouse_json, &every).await?;
        let key = random_token("whk");
        let now = now_micros();
        let mut m = MerchantRow {
            id: shipsync_db::new_id("mer"),
            name: String::new(),
            warehouse_json: String::new(),
            warehouse_secrets: None,
            webhooks_enabled: false,
            shared_secret: None,
            webhook_key: self.secrets().seal_str(&key),
            webhook_key_hash: hash_token(&key),
            kit_policy: KitPolicy::default(),
            carrier_overrides: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        };
        apply(self.secrets(), &mut m, parts);
        Ok(m)
    }

    /// Applies a JSON merge patch to merchant `m` (as the caller loaded it)
    /// and saves it; a limited caller may not move its endpoints.
    pub async fn update_merchant(
        &self,
        mut m: MerchantRow,
        mut patch: Value,
        caller: Caller<'_>,
    ) -> EditResult<MerchantRow> {
        let secrets = self.secrets();
        strip_read_only(&mut patch);
        let mut doc = to_doc(secrets, &m)?;
        // Switching the auth type replaces the whole auth object.
        let mut missing_ok: Vec<&str> = {
            let held = stored_secret_keys(secrets, &m);
            SECRET_FIELDS
                .into_iter()
                .filter(|k| !held.iter().any(|h| h == k))
                .collect()
        };
        if let (Some(new_type), Some(old_type)) = (
            patch
                .pointer("/warehouse/auth/type")
                .and_then(Value::as_str),
            doc.pointer("/warehouse/auth/type").and_then(Value::as_str),
        ) && new_type != old_type
            && let Some(w) = doc.get_mut("warehouse").and_then(Value::as_object_mut)
        {
            w.remove("auth");
            missing_ok.clear();
        }
        merge_patch(&mut doc, &patch);
        let mut parts = validate(&doc, &missing_ok)?;
        let changed = endpoint_changes(&m.warehouse_json, &parts.warehouse_json);
        forbid_scoped(caller, &changed)?;
        check_targets(self, &parts.warehouse_json, &changed).await?;
        // Stored secrets never follow a new endpoint: only those given again
        // in this request are kept.
        let mut cleared = false;
        if !changed.is_empty()
            && let Some(plain) = &parts.warehouse_secrets
        {
            let mut held: Map<String, Value> = serde_json::from_str(plain).unwrap_or_default();
            let before = held.len();
            held.retain(|k, _| gives(&patch, &format!("/warehouse/auth/{k}")));
            cleared = held.len() < before;
            parts.warehouse_secrets = (!held.is_empty()).then(|| Value::Object(held).to_string());
        }
        apply(secrets, &mut m, parts);
        m.updated_at = now_micros();
        // The mappings' carriers follow the older carrier_overrides field,
        // checked before anything is saved, saved with the merchant.
        let carriers = match patch.get("carrier_overrides") {
            Some(_) => {
                self.carriers_from_overrides(&m.id, &m.carrier_overrides)
                    .await?
            }
            None => None,
        };
        let mut tx = self.db().begin().await?;
        merchants::update(&mut *tx, &m).await?;
        if let Some((before, row)) = &carriers {
            crate::mappings::save_carriers(&mut tx, before, row).await?;
        }
        tx.commit().await.map_err(DbError::from)?;
        self.webhook_targets_changed();
        if cleared {
            self.switch_off_connections(&m.id).await?;
        }
        Ok(m)
    }

    /// Switches off the merchant's enabled connections (its warehouse
    /// credentials were cleared: they cannot run until given again).
    async fn switch_off_connections(&self, merchant_id: &str) -> Result<(), DbError> {
        let db = self.db();
        let ids = [merchant_id.to_string()];
        let mut after: Option<String> = None;
        loop {
            let page = connections::list(db.pool(), Some(&ids), after.as_deref(), 500).await?;
            for mut c in page.iter().filter(|c| c.enabled).cloned() {
                c.enabled = false;
                c.updated_at = now_micros();
                connections::update(db.pool(), &c).await?;
                self.webhook_targets_changed();
                self.connection_changed(&c.id);
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.id.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// Deletes a merchant; `Conflict` while it still has connections.
    pub async fn delete_merchant(&self, id: &str) -> EditResult<()> {
        let deleted = merchants::delete(self.db(), id).await?;
        self.webhook_targets_changed();
        if deleted {
            Ok(())
        } else {
            Err(EditError::Conflict {
                code: "has_connections",
                message: "this merchant still has connections: delete them first".into(),
            })
        }
    }

    /// Issues a new webhook key; the old one keeps working for 24 h, or
    /// stops at once with `revoke_old` (with any key still in its grace
    /// period). Returns the merchant as saved.
    pub async fn rotate_webhook_key(&self, id: &str, revoke_old: bool) -> EditResult<MerchantRow> {
        let key = random_token("whk");
        let old_expires_at = if revoke_old {
            None
        } else {
            Some(now_micros() + OLD_KEY_GRACE_MICROS)
        };
        merchants::rotate_webhook_key(
            self.db(),
            id,
            &self.secrets().seal_str(&key),
            &hash_token(&key),
            old_expires_at,
        )
        .await?;
        self.webhook_targets_changed();

        self.merchant(id)
            .await?
            .ok_or(EditError::NotFound("merchant"))
    }
}
