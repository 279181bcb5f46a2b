//! Shopify Admin GraphQL client for shipsync: reads orders with their
//! fulfillment orders and fulfillments, creates fulfillments, updates
//! tracking, manages the order webhook subscriptions — with every document
//! in [`operations`] checked against Shopify's real schema, and a per-store
//! cost budget driven by `throttleStatus`. [`webhook`] reads the order
//! webhooks Shopify delivers.
//!
//! Errors are classified by what the caller must do next (see
//! [`ShopifyError`]); a mutation whose answer was lost is
//! [`ShopifyError::UnknownOutcome`], never a plain retryable error.

pub mod auth;
mod client;
mod error;
mod model;
pub mod operations;
mod throttle;
mod transport;
pub mod webhook;
mod wire;

pub use auth::{AccessTokens, AppCredentials, Grant, TokenFuture};
pub use client::ShopifyClient;
pub use error::ShopifyError;
pub use model::{
    CreatedFulfillment, FulfillmentRequest, OpenFulfillmentOrder, OpenFulfillmentOrdersPage,
    OrdersPage, ShippingAddress, StoreFulfillment, StoreFulfillmentOrder,
    StoreFulfillmentOrderLineItem, StoreLineItem, StoreOrder, StoreOrderForWarehouse,
    StoreTracking, SubscriptionReport, Tracking, WarehouseFulfillmentOrder,
    WarehouseFulfillmentOrderLine, WebhookSubscription,
};
pub use throttle::{
    BudgetFuture, CostBudget, LocalBudget, MAX_QUERY_COST, QueryCost, Reserved, ThrottleStatus,
    WAIT_SLOTS, job_scope,
};
pub use transport::{BeforeSend, Timeouts};
