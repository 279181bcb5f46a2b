//! Webhook key → merchant, kept for a second: the webhook endpoint looks a
//! merchant up on every delivery, and merchants change rarely.
//!
//! Every write of a merchant, a connection or mappings on this node clears
//! it at once ([`crate::Engine::webhook_targets_changed`]), so a disabled
//! merchant, a revoked key or a new shared secret applies at once on the
//! node that saved it, and within [`TTL`] on the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shipsync_db::merchants::MerchantRow;

/// How long a looked-up merchant is used without reading it again.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries kept at most; past it the cache starts afresh (only known keys
/// are kept, so only many merchants fill it).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every clear: a lookup that started before a change does
    /// not store what it read.
    generation: u64,
    /// Key hash → (when read, the merchant).
    entries: HashMap<String, (Instant, Arc<MerchantRow>)>,
}

impl KeyCache {
    /// The merchant of `key_hash` read less than [`TTL`] ago, if any.
    pub fn get(&self, key_hash: &str) -> Option<Arc<MerchantRow>> {
        let inner = self.inner.lock().ok()?;
        let (at, m) = inner.entries.get(key_hash)?;
        (at.elapsed() < TTL).then(|| m.clone())
    }

    /// The generation to hand to [`Self::put`] after reading the database.
    pub fn generation(&self) -> u64 {
        self.inner.lock().map_or(0, |i| i.generation)
    }

    /// Keeps `m` for `key_hash`, read at `generation`, unless something
    /// changed since.
    pub fn put(&self, key_hash: String, m: Arc<MerchantRow>, generation: u64) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(key_hash, (Instant::now(), m));
    }

    /// Forgets everything (a merchant, connection or mapping was written).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.generation += 1;
            inner.entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merchant(id: &str) -> MerchantRow {
        MerchantRow {
            id: id.into(),
            name: String::new(),
            warehouse_json: String::new(),
            warehouse_secrets: None,
            webhooks_enabled: true,
            shared_secret: None,
            webhook_key: Vec::new(),
            webhook_key_hash: String::new(),
            kit_policy: Default::default(),
            carrier_overrides: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_lookup_older_than_a_change_is_not_kept() {
        let cache = KeyCache::default();
        let g = cache.generation();
        cache.put("h1".into(), Arc::new(merchant("mer_1")), g);
        assert_eq!(cache.get("h1").map(|m| m.id.clone()), Some("mer_1".into()));
        // A lookup reads the old row, a change clears, then the lookup
        // stores what it read: it must not be kept.
        let before = cache.generation();
        cache.clear();
        assert!(cache.get("h1").is_none());
        cache.put("h1".into(), Arc::new(merchant("mer_old")), before);
        assert!(cache.get("h1").is_none());
        cache.put(
            "h1".into(),
            Arc::new(merchant("mer_new")),
            cache.generation(),
        );
        assert_eq!(
            cache.get("h1").map(|m| m.id.clone()),
            Some("mer_new".into())
        );
    }
}
