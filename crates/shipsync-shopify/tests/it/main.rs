//! One integration-test binary: schema checks of every document, and the
//! client against a small local stub of Shopify's GraphQL endpoint (reads,
//! writes, the Sales Orders reads, webhook subscriptions).

mod client;
mod schema;
mod stub;
mod subscriptions;
mod warehouse;
