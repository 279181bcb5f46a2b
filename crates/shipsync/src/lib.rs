//! The shipsync binary's pieces: configuration, logging, server start-up,
//! the commands, and the demo (with the world it runs: shipsync and both
//! sandboxes on loopback, which `shipsync-testkit` builds the tests on).

pub mod config;
pub mod connections;
pub mod demo;
pub mod listener;
pub mod logging;
pub mod mappings;
pub mod server;
pub mod sync;
pub mod users;
