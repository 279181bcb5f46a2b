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
mod recipes;
mod sync;

use shipsync_db::connections::ConnectionRow;

pub use actions::ShipmentAction;
pub use merge::MergeOutcome;
pub(crate) use merge::{Claim, merged_whole, save_recipes_seen, with_trusted_tracking};
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
