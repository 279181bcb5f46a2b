//! The operator web UI: server-rendered pages (maud: templates are Rust,
//! checked at compile time and embedded in the binary, with no template
//! files to ship) over the same functions the JSON API uses, so business
//! rules live in one place. Every asset is embedded; nothing is fetched.

// A page handler's error is itself a page (a `Response`), as large as the
// success; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod account;
mod alert_policies;
mod alerts;
mod connections;
mod dashboard;
mod event_subscriptions;
mod events;
mod layout;
mod login;
mod mappings;
mod merchants;
mod notification_channels;
mod orders;
mod session;
mod shipments;
mod time;
mod users;
mod wizard;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/assets/app.css", get(layout::css))
        .route("/assets/app.js", get(layout::js))
        .route(
            "/merchants",
            get(merchants::merchant_list).post(merchants::merchant_create),
        )
        .route("/merchants/new", get(merchants::merchant_new))
        .route(
            "/merchants/{id}",
            get(merchants::merchant_edit).post(merchants::merchant_save),
        )
        .route("/merchants/{id}/rotate", post(merchants::merchant_rotate))
        .route(
            "/merchants/{id}/mappings",
            get(mappings::mappings_page).post(mappings::mappings_post),
        )
        .route(
            "/merchants/{id}/event-subscriptions",
            get(event_subscriptions::subscriptions_page)
                .post(event_subscriptions::subscription_create),
        )
        .route(
            "/merchants/{id}/event-subscriptions/{sid}",
            get(event_subscriptions::subscription_page)
                .post(event_subscriptions::subscription_post),
        )
        .route(
            "/merchants/{id}/event-subscriptions/{sid}/deliveries/{did}/replay",
            post(event_subscriptions::delivery_replay),
        )
        .route(
            "/connections",
            get(connections::connection_list).post(wizard::connection_create),
        )
        .route("/connections/new", get(wizard::connection_new))
        .route("/connections/{id}", get(connections::connection_show))
        .route(
            "/connections/{id}/enabled",
            post(connections::connection_enabled),
        )
        .route("/connections/{id}/test", post(connections::connection_test))
        .route(
            "/connections/{id}/order-rules",
            post(connections::order_rules_save),
        )
        .route(
            "/connections/{id}/api-secret",
            post(connections::api_secret_save),
        )
        .route(
            "/connections/{id}/authorize",
            post(connections::connection_authorize),
        )
        .route(
            "/connect/shopify/callback",
            get(connections::shopify_callback),
        )
        .route(
            "/connections/{id}/channels/{channel}/enabled",
            post(connections::channel_enabled),
        )
        .route(
            "/connections/{id}/channels/{channel}/run",
            post(connections::channel_run),
        )
        .route(
            "/connections/{id}/channels/{channel}/schedules",
            post(connections::channel_schedules),
        )
        .route("/orders", get(orders::order_list))
        .route("/orders/{id}", get(orders::order_show))
        .route("/orders/{id}/{action}", post(orders::order_act))
        .route(
            "/shipments",
            get(shipments::shipment_list).post(shipments::shipment_bulk),
        )
        .route("/shipments/{id}", get(shipments::shipment_show))
        .route("/shipments/{id}/{action}", post(shipments::shipment_act))
        .route("/events", get(events::event_list))
        .route("/events/{id}", get(events::event_show))
        .route("/events/{id}/replay", post(events::event_replay))
        .route("/users", get(users::user_list).post(users::user_create))
        .route("/users/{id}", get(users::user_edit).post(users::user_save))
        .route(
            "/account",
            get(account::account_page).post(account::account_token_create),
        )
        .route(
            "/account/tokens/{id}/revoke",
            post(account::account_token_revoke),
        )
        .route("/alerts", get(alerts::alert_list))
        .route("/alerts/{id}/acknowledge", post(alerts::alert_acknowledge))
        .route(
            "/notification-channels",
            get(notification_channels::channel_list).post(notification_channels::channel_create),
        )
        .route(
            "/notification-channels/{id}",
            get(notification_channels::channel_edit).post(notification_channels::channel_save),
        )
        .route(
            "/notification-channels/{id}/test",
            post(notification_channels::channel_test),
        )
        .route(
            "/notification-channels/{id}/delete",
            post(notification_channels::channel_delete),
        )
        .route(
            "/alert-policies",
            get(alert_policies::policy_list).post(alert_policies::policy_create),
        )
        .route(
            "/alert-policies/{id}",
            get(alert_policies::policy_edit).post(alert_policies::policy_save),
        )
        .route(
            "/alert-policies/{id}/delete",
            post(alert_policies::policy_delete),
        )
}
