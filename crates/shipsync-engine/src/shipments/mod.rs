//! Shipments, by the path one takes: a warehouse report (webhook or pull)
//! is merged into its shipment ([`merge`]); a version that changes it queues
//! a sync run ([`sync`]), which matches the store order, takes the shipment's
//! share from the ledger, plans what the store lacks ([`plan`], pure) and
//! writes it to the store ([`notify`]). People act on shipments through
//! [`actions`]; kit recipes come from [`recipes`].

mod actions;
mod merge;
mod notify;
mod plan;
mod read_ahead;
mod recipes;
mod sync;

use std::collections::HashMap;

use shipsync_db::connections::{self, ConnectionRow};

use crate::Engine;
use crate::shutdown::Shutdown;

pub use actions::ShipmentAction;
pub use merge::MergeOutcome;
pub(crate) use merge::{Claim, merged_whole, save_recipes_seen, with_trusted_tracking};
pub(crate) use read_ahead::ReadAhead;
pub(crate) use sync::ledger_line;

/// What a shipment waiting for its store's reconnection says.
fn reconnect_wait(c: &ConnectionRow) -> String {
    format!(
        "waiting: connection {} needs reconnecting ({}); the shipment goes out when it is reconnected",
        c.name,
        c.store_error
            .as_deref()
            .unwrap_or("the store refused its credentials")
    )
}

/// Reads ahead, every [`read_ahead::BACKGROUND_EVERY`], the open
/// fulfillment orders of every connection that uses them (see
/// [`read_ahead::reads_ahead`]; only a merchant's one enabled connection:
/// with several, a shipment searches them all), each store at its own pace
/// and at most [`read_ahead::BACKGROUND_PAGES`] pages a round, until
/// `shutdown`.
pub(crate) async fn read_ahead_loop(engine: Engine, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(read_ahead::BACKGROUND_EVERY) => {}
        }
        let all = match connections::list(engine.db().pool(), None, None, 10_000).await {
            Ok(all) => all,
            Err(e) => {
                tracing::debug!(error = %e, "read-ahead: listing connections failed");
                continue;
            }
        };
        let mut enabled: HashMap<&str, usize> = HashMap::new();
        for c in all.iter().filter(|c| c.enabled) {
            *enabled.entry(c.merchant_id.as_str()).or_default() += 1;
        }
        let live: Vec<&ConnectionRow> = all
            .iter()
            .filter(|c| {
                read_ahead::reads_ahead(c) && enabled.get(c.merchant_id.as_str()) == Some(&1)
            })
            .collect();
        let ids: Vec<&str> = live.iter().map(|c| c.id.as_str()).collect();
        engine.inner.read_ahead.keep_only(&ids);
        let mut rounds = tokio::task::JoinSet::new();
        for c in live {
            let Ok((client, settings)) = engine.inner.stores.client(c, engine.secrets()) else {
                continue;
            };
            let (engine, id) = (engine.clone(), c.id.clone());
            rounds.spawn(async move {
                if let Err(e) = engine
                    .inner
                    .read_ahead
                    .refresh(
                        &id,
                        settings.location_id.as_deref(),
                        &client,
                        read_ahead::BACKGROUND_PAGES,
                    )
                    .await
                {
                    tracing::debug!(connection = %id, error = %e, "read-ahead of open fulfillment orders failed; shipments search meanwhile");
                }
            });
        }
        let work = async {
            while rounds.join_next().await.is_some() {
                engine
                    .metrics()
                    .set_read_ahead(engine.inner.read_ahead.held());
            }
            engine
                .metrics()
                .set_read_ahead(engine.inner.read_ahead.held());
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            () = work => {}
        }
    }
}
