//! The shipsync binary's pieces: configuration, logging, server start-up,
//! the demo, and the harness that runs shipsync against both sandboxes.

pub mod config;
pub mod connections;
pub mod demo;
pub mod harness;
pub mod listener;
pub mod logging;
pub mod server;
pub mod sync;
pub mod users;
