//! What shipsync's integration tests (`crates/shipsync/tests`), the
//! benchmark (`shipsync-bench`) and the fault suite (`shipsync-faults`)
//! share, and the product does not need:
//!
//! - [`Harness`]: the demo's world (shipsync and both sandboxes on loopback,
//!   a merchant and its store connection) with the helpers only tests use:
//!   waiting for a shipment, restarting the server on the same database,
//!   one secret key per database in a process;
//! - [`TestDb`]: a throwaway SQLite or PostgreSQL database, gone when its
//!   value is dropped, also when the test holding it panics; and
//!   [`TempDir`], a directory likewise.
//!
//! # Why a crate of its own
//!
//! `shipsync demo` runs the same world as the tests, so the world itself
//! lives in the binary's crate (`shipsync::demo::world`): there it holds
//! only what the demo uses (start, the JSON API, orders, shipments, runs,
//! the install flow with its browser [`Session`]). Everything else that the
//! tests need is here, so the binary's public API carries no test helper,
//! and the binary never depends on this crate: the graph stays acyclic
//! (`shipsync-testkit` → `shipsync`; `shipsync`'s tests, the bench and the
//! fault suite → `shipsync-testkit`). Settings a test changes (body limit,
//! timeouts, trusted proxies, …) are the server's own
//! [`Settings`](shipsync::config::Settings), in
//! [`Options::settings`], not a copy of them.
//!
//! The bench and the fault suite run shipsync as child processes; they use
//! only the throwaway databases (and temp directories) from here.

mod db;
mod harness;

pub use db::{POSTGRES_ENV, TempDir, TestDb, postgres_server};
pub use harness::Harness;
pub use shipsync::demo::session::{Hop, Session, csrf_of};
pub use shipsync::demo::world::{
    APP_CLIENT_ID, APP_CLIENT_SECRET, ApiAnswer, Options, SHOPIFY_TOKEN, World, fast_engine,
};
