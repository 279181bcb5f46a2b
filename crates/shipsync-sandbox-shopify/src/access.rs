//! Which access scope each field the sandbox serves needs: the one place
//! where the rule lives.
//!
//! From Shopify's GraphQL Admin reference (object and mutation pages, "Requires
//! … access scope") and the access-scopes guide:
//!
//! - `Order` needs `read_orders` (the sandbox does not model the marketplace
//!   and buyer-membership alternatives). It guards `orders`, `order`,
//!   `FulfillmentOrder.order`, `Fulfillment.order`, and `node`/`nodes` that
//!   resolve to an order or a line item.
//! - `FulfillmentOrder` needs one of `read_assigned_fulfillment_orders`,
//!   `read_merchant_managed_fulfillment_orders`,
//!   `read_third_party_fulfillment_orders`,
//!   `read_marketplace_fulfillment_orders`; without any of them the field is
//!   denied. With some, a client "will only receive a subset of the
//!   fulfillment orders": those its scopes cover. Every sandbox location is
//!   merchant-managed, so only the merchant-managed scope shows them;
//!   otherwise connections leave them out and lookups answer null.
//! - `fulfillmentCreate` and `fulfillmentTrackingInfoUpdate` need one of the
//!   four `write_…_fulfillment_orders`; fulfilling one of the sandbox's
//!   (merchant-managed) fulfillment orders also needs the merchant-managed
//!   one, else the order is reported as not existing, as an invisible one is.
//! - `Fulfillment` (`fulfillment(id)`, `node`) is guarded by `read_orders`
//!   like the order it belongs to.
//! - A write scope grants read access to its resource.
//!
//! The guesses among these are listed with the others under "Assumptions"
//! in `auth.rs`.
//!
//! A denied field is a GraphQL error with `extensions.code = "ACCESS_DENIED"`
//! on HTTP 200, the field null (and the null propagated), as Shopify answers.

/// What a field needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Orders,
    ReadFulfillmentOrders,
    WriteFulfillmentOrders,
}

const FO_KINDS: [&str; 4] = ["assigned", "merchant_managed", "third_party", "marketplace"];

/// Whether `scopes` hold `handle`, a write scope standing for its read scope.
fn holds(scopes: &[String], handle: &str) -> bool {
    scopes.iter().any(|s| s == handle)
        || handle
            .strip_prefix("read_")
            .is_some_and(|rest| scopes.iter().any(|s| *s == format!("write_{rest}")))
}

/// The handles any one of which satisfies `need`.
fn alternatives(need: Need) -> Vec<String> {
    match need {
        Need::Orders => vec!["read_orders".into()],
        Need::ReadFulfillmentOrders => FO_KINDS
            .iter()
            .map(|k| format!("read_{k}_fulfillment_orders"))
            .collect(),
        Need::WriteFulfillmentOrders => FO_KINDS
            .iter()
            .map(|k| format!("write_{k}_fulfillment_orders"))
            .collect(),
    }
}

pub(crate) fn allows(scopes: &[String], need: Need) -> bool {
    alternatives(need).iter().any(|h| holds(scopes, h))
}

/// Whether the sandbox's (merchant-managed) fulfillment orders are visible.
pub(crate) fn sees_fulfillment_orders(scopes: &[String]) -> bool {
    holds(scopes, "read_merchant_managed_fulfillment_orders")
}

/// Whether the sandbox's fulfillment orders may be fulfilled.
pub(crate) fn fulfills_fulfillment_orders(scopes: &[String]) -> bool {
    holds(scopes, "write_merchant_managed_fulfillment_orders")
}

/// Shopify's `requiredAccess` text, e.g. "`read_orders` access scope.".
pub(crate) fn required_access(need: Need) -> String {
    let parts: Vec<String> = alternatives(need)
        .iter()
        .map(|h| format!("`{h}` access scope"))
        .collect();
    match parts.split_last() {
        Some((last, [])) => format!("{last}."),
        Some((last, rest)) => format!("{} or {last}.", rest.join(", ")),
        None => String::new(),
    }
}

/// The error message of a denied field, as Shopify words it.
pub(crate) fn denied_message(field: &str, need: Need) -> String {
    format!(
        "Access denied for {field} field. Required access: {}",
        required_access(need)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rule_table() {
        use Need::*;
        for (scopes, need, allowed) in [
            (s(&["read_orders"]), Orders, true),
            (s(&["write_orders"]), Orders, true),
            (s(&["read_products"]), Orders, false),
            (s(&[]), Orders, false),
            (
                s(&["read_third_party_fulfillment_orders"]),
                ReadFulfillmentOrders,
                true,
            ),
            (
                s(&["write_merchant_managed_fulfillment_orders"]),
                ReadFulfillmentOrders,
                true,
            ),
            (s(&["read_orders"]), ReadFulfillmentOrders, false),
            (
                s(&["read_merchant_managed_fulfillment_orders"]),
                WriteFulfillmentOrders,
                false,
            ),
            (
                s(&["write_third_party_fulfillment_orders"]),
                WriteFulfillmentOrders,
                true,
            ),
        ] {
            assert_eq!(allows(&scopes, need), allowed, "{scopes:?} {need:?}");
        }
        assert!(!sees_fulfillment_orders(&s(&[
            "read_third_party_fulfillment_orders"
        ])));
        assert!(sees_fulfillment_orders(&s(&[
            "write_merchant_managed_fulfillment_orders"
        ])));
        assert!(!fulfills_fulfillment_orders(&s(&[
            "read_merchant_managed_fulfillment_orders",
            "write_third_party_fulfillment_orders"
        ])));
    }

    #[test]
    fn messages_read_like_shopifys() {
        assert_eq!(
            denied_message("orders", Need::Orders),
            "Access denied for orders field. Required access: `read_orders` access scope."
        );
        assert!(
            required_access(Need::WriteFulfillmentOrders).ends_with(
                ", `write_third_party_fulfillment_orders` access scope or `write_marketplace_fulfillment_orders` access scope."
            )
        );
    }
}
