//! One integration-test binary: schema checks of every document, and the
//! client against a small local stub of Shopify's GraphQL endpoint.

mod client;
mod schema;
mod stub;
