//! Integration tests: the real server over HTTP against both sandboxes, on
//! SQLite always and on PostgreSQL when `SHIPSYNC_TEST_POSTGRES_URL` is set
//! (each test in its own throwaway database).

#[macro_use]
mod support;

mod abuse;
mod accounts;
mod alerts;
mod api;
mod browser;
mod crash;
mod edges;
mod events_out;
mod lifecycle;
mod logs;
mod mappings;
mod mappings_preview;
mod nodes;
mod openapi;
mod orders;
mod outbound;
mod proxies;
mod pull;
mod roles;
mod rules;
mod scenarios;
mod schedules;
mod smoke;
mod storage;
mod store_auth;
mod store_budget;
mod ui;
mod webhook;
mod webhook_limit;
