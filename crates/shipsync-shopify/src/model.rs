//! What the client returns and accepts: Shopify's data in shipsync's terms.
//! The engine maps these to the domain; nothing here depends on it.

/// A store order with everything needed to fulfil it exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOrder {
    /// Shopify GID, `gid://shopify/Order/…`.
    pub id: String,
    /// As shown to the merchant, e.g. `#1001`.
    pub name: String,
    pub updated_at: Option<String>,
    /// When the store cancelled the order: a shipment for it must be
    /// refused, not fulfilled.
    pub cancelled_at: Option<String>,
    pub line_items: Vec<StoreLineItem>,
    pub fulfillment_orders: Vec<StoreFulfillmentOrder>,
    pub fulfillments: Vec<StoreFulfillment>,
}

impl StoreOrder {
    /// An order known only by its id and name (what a search returns), not
    /// read yet.
    pub fn named(id: String, name: String) -> Self {
        Self {
            id,
            name,
            updated_at: None,
            cancelled_at: None,
            line_items: Vec::new(),
            fulfillment_orders: Vec::new(),
            fulfillments: Vec::new(),
        }
    }
}

/// One line of a store order. Stored as JSON inside the order's row, so a
/// field added later must read rows written before it (see
/// `StoredLineItem`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "StoredLineItem")]
pub struct StoreLineItem {
    pub id: String,
    /// The line's SKU, else its variant's current SKU.
    pub sku: Option<String>,
    pub name: String,
    /// `currentQuantity`: what the customer still wants, after removals,
    /// edits and refunds.
    pub quantity: u64,
    /// `quantity` in Shopify's terms: as ordered, removed and refunded units
    /// included. `ordered_quantity - quantity` units were taken off the line.
    pub ordered_quantity: u64,
    /// False for gift cards, tips and digital goods: nothing to ship.
    pub requires_shipping: bool,
    /// Units not fulfilled yet, by anyone (`unfulfilledQuantity`); `None`
    /// when it was not read (rows stored before it was).
    pub unfulfilled_quantity: Option<u64>,
    /// Title of the Shopify bundle (line item group) this line belongs to.
    pub group: Option<String>,
}

/// How a [`StoreLineItem`] is read back from JSON: rows stored before
/// `ordered_quantity`, `requires_shipping` and `unfulfilled_quantity`
/// existed were lines as ordered (nothing removed), all to be shipped.
#[derive(serde::Deserialize)]
struct StoredLineItem {
    id: String,
    sku: Option<String>,
    name: String,
    quantity: u64,
    #[serde(default)]
    ordered_quantity: Option<u64>,
    #[serde(default = "shipped")]
    requires_shipping: bool,
    #[serde(default)]
    unfulfilled_quantity: Option<u64>,
    #[serde(default)]
    group: Option<String>,
}

fn shipped() -> bool {
    true
}

impl From<StoredLineItem> for StoreLineItem {
    fn from(l: StoredLineItem) -> Self {
        Self {
            id: l.id,
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            ordered_quantity: l.ordered_quantity.unwrap_or(l.quantity),
            requires_shipping: l.requires_shipping,
            unfulfilled_quantity: l.unfulfilled_quantity,
            group: l.group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFulfillmentOrder {
    pub id: String,
    /// OPEN, IN_PROGRESS, CLOSED, ON_HOLD, SCHEDULED, …
    pub status: String,
    /// GID of the assigned location, when it still exists.
    pub location_id: Option<String>,
    pub line_items: Vec<StoreFulfillmentOrderLineItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFulfillmentOrderLineItem {
    /// The fulfillment order line item's own id (what `fulfillmentCreate` takes).
    pub id: String,
    /// The order line item it stands for.
    pub line_item_id: String,
    pub total_quantity: u64,
    pub remaining_quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFulfillment {
    pub id: String,
    pub status: String,
    pub created_at: Option<String>,
    pub tracking: Vec<StoreTracking>,
    /// (order line item id, quantity).
    pub line_items: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTracking {
    pub company: Option<String>,
    pub number: Option<String>,
    pub url: Option<String>,
}

/// One `fulfillmentCreate` against one fulfillment order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentRequest {
    pub fulfillment_order_id: String,
    /// (fulfillment order line item id, quantity). Must not be empty: Shopify
    /// reads an empty list as "everything remaining".
    pub items: Vec<(String, u64)>,
    pub tracking: Tracking,
    pub notify_customer: bool,
}

/// Tracking for one fulfillment: one carrier, any number of packages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracking {
    /// Shopify's carrier name ("UPS", "FedEx", "USPS", "DHL Express", …) so
    /// Shopify builds the URL and follows delivery.
    pub company: Option<String>,
    pub numbers: Vec<String>,
    /// Only with numbers; Shopify builds them for known carriers.
    pub urls: Vec<String>,
}

impl Tracking {
    pub fn is_empty(&self) -> bool {
        self.company.is_none() && self.numbers.is_empty() && self.urls.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedFulfillment {
    pub id: String,
    pub status: String,
}

/// One open fulfillment order as [`crate::ShopifyClient::open_fulfillment_orders`]
/// reads it: whose order it is, and each of its lines with the order line
/// it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFulfillmentOrder {
    /// `gid://shopify/FulfillmentOrder/…`.
    pub id: String,
    pub status: String,
    /// RFC 3339, to the second.
    pub updated_at: String,
    pub order_id: String,
    pub order_name: String,
    /// Each line with its order line; `None` when the fulfillment order
    /// has more lines than the read holds (it is not to be used from it).
    pub lines: Option<Vec<(StoreFulfillmentOrderLineItem, StoreLineItem)>>,
}

/// One page of [`crate::ShopifyClient::open_fulfillment_orders`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFulfillmentOrdersPage {
    pub fulfillment_orders: Vec<OpenFulfillmentOrder>,
    /// Cursor of the next page; `None` on the last one.
    pub next: Option<String>,
}

/// One page of [`crate::ShopifyClient::orders_changed_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersPage {
    pub orders: Vec<StoreOrderForWarehouse>,
    /// Cursor of the next page; `None` on the last one.
    pub next: Option<String>,
}

/// A store order with what the Sales Orders channel needs to decide whether
/// to send it to the warehouse (cancelled, paid, tagged, held, fulfilled
/// elsewhere) and what to send: every line and every fulfillment order.
///
/// Stored as JSON in the order's row: every field added after the first
/// version has a serde default, so older rows still read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreOrderForWarehouse {
    /// Shopify GID, `gid://shopify/Order/…`.
    pub id: String,
    /// As shown to the merchant, e.g. `#1001`.
    pub name: String,
    /// RFC 3339, to the second. Decides which of two readings is newer
    /// (webhooks come late, twice and out of order).
    pub updated_at: Option<String>,
    pub email: Option<String>,
    /// `None` for orders that need no shipping.
    pub shipping_address: Option<ShippingAddress>,
    /// Title of the shipping line (the method the customer chose).
    pub shipping_method: Option<String>,
    /// The shipping line's `code`, `source` and `carrierIdentifier`, which
    /// a merchant's ship-method rules may match besides the title.
    #[serde(default)]
    pub shipping_code: Option<String>,
    #[serde(default)]
    pub shipping_source: Option<String>,
    #[serde(default)]
    pub shipping_carrier_identifier: Option<String>,
    pub line_items: Vec<StoreLineItem>,
    /// When the store cancelled the order (`cancelledAt`).
    #[serde(default)]
    pub cancelled_at: Option<String>,
    /// Shopify's `OrderCancelReason` (CUSTOMER, DECLINED, FRAUD, INVENTORY,
    /// OTHER, STAFF) when cancelled.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// `displayFinancialStatus`: PAID, AUTHORIZED, PARTIALLY_PAID, PENDING,
    /// … — `None` when Shopify has none to show.
    #[serde(default)]
    pub financial_status: Option<String>,
    /// `displayFulfillmentStatus`: UNFULFILLED, PARTIALLY_FULFILLED,
    /// FULFILLED, ON_HOLD, …
    #[serde(default)]
    pub fulfillment_status: Option<String>,
    /// The order's tags, as the merchant wrote them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether the order was edited after it was placed (lines added,
    /// removed or changed).
    #[serde(default)]
    pub edited: bool,
    /// Every fulfillment order: which location is to ship which lines, and
    /// whether Shopify holds them.
    #[serde(default)]
    pub fulfillment_orders: Vec<WarehouseFulfillmentOrder>,
}

impl StoreOrderForWarehouse {
    /// The order as fulfilling reads it (no fulfillments), from this view:
    /// `None` when the view lacks what a fulfillment needs (a fulfillment
    /// order line's own id, in views stored before it was kept).
    pub fn to_fulfill(&self) -> Option<StoreOrder> {
        let fulfillment_orders = self
            .fulfillment_orders
            .iter()
            .map(|fo| {
                let line_items = fo
                    .lines
                    .iter()
                    .map(|l| {
                        Some(StoreFulfillmentOrderLineItem {
                            id: l.id.clone()?,
                            line_item_id: l.line_item_id.clone(),
                            // Not kept; fulfilling uses what remains.
                            total_quantity: l.remaining_quantity,
                            remaining_quantity: l.remaining_quantity,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(StoreFulfillmentOrder {
                    id: fo.id.clone(),
                    status: fo.status.clone(),
                    location_id: fo.location_id.clone(),
                    line_items,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(StoreOrder {
            id: self.id.clone(),
            name: self.name.clone(),
            updated_at: self.updated_at.clone(),
            cancelled_at: self.cancelled_at.clone(),
            line_items: self.line_items.clone(),
            fulfillment_orders,
            fulfillments: Vec::new(),
        })
    }
}

/// A fulfillment order as the Sales Orders channel reads it: whose it is
/// (location), whether it may be shipped (status, holds), and what is left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WarehouseFulfillmentOrder {
    /// `gid://shopify/FulfillmentOrder/…`.
    pub id: String,
    /// OPEN, IN_PROGRESS, ON_HOLD, SCHEDULED, INCOMPLETE, CLOSED, CANCELLED.
    pub status: String,
    /// GID of the assigned location, when it still exists.
    pub location_id: Option<String>,
    /// One entry per fulfillment hold: its `reason` (e.g.
    /// `AWAITING_PAYMENT`), followed by `: ` and its `reasonNotes` when set.
    pub holds: Vec<String>,
    pub lines: Vec<WarehouseFulfillmentOrderLine>,
}

/// What one order line still needs from one fulfillment order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WarehouseFulfillmentOrderLine {
    /// The fulfillment order line item's own id (what `fulfillmentCreate`
    /// takes); `None` in rows stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The order line item (`gid://shopify/LineItem/…`).
    pub line_item_id: String,
    /// Units of it this fulfillment order has still to fulfil.
    pub remaining_quantity: u64,
}

impl From<StoreFulfillmentOrderLineItem> for WarehouseFulfillmentOrderLine {
    fn from(l: StoreFulfillmentOrderLineItem) -> Self {
        Self {
            id: Some(l.id),
            line_item_id: l.line_item_id,
            remaining_quantity: l.remaining_quantity,
        }
    }
}

/// A ship-to address as the store has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShippingAddress {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

/// A webhook subscription of this app in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// `gid://shopify/WebhookSubscription/…`.
    pub id: String,
    /// GraphQL topic, e.g. `ORDERS_CREATE`.
    pub topic: String,
    /// Where Shopify delivers it.
    pub uri: String,
}

/// What [`crate::ShopifyClient::ensure_order_webhooks`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionReport {
    /// Order topics that were already subscribed at the address.
    pub existing: Vec<WebhookSubscription>,
    /// Order topics subscribed now.
    pub created: Vec<WebhookSubscription>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An order row as the Sales Orders channel stored it before the order
    /// lifecycle fields existed.
    const STORED_BEFORE: &str = r##"{
        "id": "gid://shopify/Order/1", "name": "#1001", "updated_at": "2026-11-02T10:00:00Z",
        "email": "jo@example.com", "shipping_address": {"name": "Jo Doe", "first_name": "Jo",
        "last_name": "Doe", "company": null, "address1": "1 Main St", "address2": null,
        "city": "Springfield", "province": null, "province_code": "IL", "zip": "62701",
        "country": null, "country_code": "US", "phone": null},
        "shipping_method": "Express",
        "line_items": [
            {"id": "gid://shopify/LineItem/7", "sku": "A", "name": "A", "quantity": 2, "group": null},
            {"id": "gid://shopify/LineItem/8", "sku": null, "name": "B", "quantity": 1, "group": "Box"}
        ]
    }"##;

    #[test]
    fn rows_stored_before_the_lifecycle_fields_still_read() {
        let o: StoreOrderForWarehouse = serde_json::from_str(STORED_BEFORE).expect("old row reads");
        assert_eq!(o.name, "#1001");
        assert_eq!(
            (
                &o.cancelled_at,
                &o.cancel_reason,
                &o.financial_status,
                &o.fulfillment_status
            ),
            (&None, &None, &None, &None)
        );
        assert!(o.tags.is_empty() && !o.edited && o.fulfillment_orders.is_empty());
        assert_eq!(
            o.line_items[0],
            StoreLineItem {
                id: "gid://shopify/LineItem/7".into(),
                sku: Some("A".into()),
                name: "A".into(),
                quantity: 2,
                // As ordered, nothing removed, to be shipped.
                ordered_quantity: 2,
                requires_shipping: true,
                unfulfilled_quantity: None,
                group: None,
            }
        );
        assert_eq!(o.line_items[1].group.as_deref(), Some("Box"));
        assert_eq!(o.line_items[1].ordered_quantity, 1);
    }

    #[test]
    fn a_full_order_round_trips_through_json() {
        let mut o: StoreOrderForWarehouse = serde_json::from_str(STORED_BEFORE).expect("reads");
        o.cancelled_at = Some("2026-11-02T11:00:00Z".into());
        o.cancel_reason = Some("CUSTOMER".into());
        o.financial_status = Some("AUTHORIZED".into());
        o.fulfillment_status = Some("ON_HOLD".into());
        o.tags = vec!["HOLD".into()];
        o.edited = true;
        o.line_items[0].ordered_quantity = 5;
        o.line_items[0].unfulfilled_quantity = Some(0);
        o.line_items[1].requires_shipping = false;
        o.fulfillment_orders = vec![WarehouseFulfillmentOrder {
            id: "gid://shopify/FulfillmentOrder/3".into(),
            status: "ON_HOLD".into(),
            location_id: None,
            holds: vec!["OTHER: call first".into()],
            lines: vec![WarehouseFulfillmentOrderLine {
                id: Some("gid://shopify/FulfillmentOrderLineItem/4".into()),
                line_item_id: "gid://shopify/LineItem/7".into(),
                remaining_quantity: 2,
            }],
        }];
        let json = serde_json::to_string(&o).expect("writes");
        let back: StoreOrderForWarehouse = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, o);
    }

    #[test]
    fn a_view_fulfils_only_with_every_fulfillment_order_line_id() {
        let mut o: StoreOrderForWarehouse = serde_json::from_str(STORED_BEFORE).expect("reads");
        o.fulfillment_orders = vec![WarehouseFulfillmentOrder {
            id: "gid://shopify/FulfillmentOrder/3".into(),
            status: "OPEN".into(),
            location_id: Some("gid://shopify/Location/1".into()),
            holds: vec![],
            lines: vec![WarehouseFulfillmentOrderLine {
                id: Some("gid://shopify/FulfillmentOrderLineItem/4".into()),
                line_item_id: "gid://shopify/LineItem/7".into(),
                remaining_quantity: 2,
            }],
        }];
        let f = o.to_fulfill().expect("complete view");
        assert_eq!(
            (f.id.as_str(), f.name.as_str()),
            ("gid://shopify/Order/1", "#1001")
        );
        assert_eq!(f.line_items, o.line_items);
        assert_eq!(
            f.fulfillment_orders,
            vec![StoreFulfillmentOrder {
                id: "gid://shopify/FulfillmentOrder/3".into(),
                status: "OPEN".into(),
                location_id: Some("gid://shopify/Location/1".into()),
                line_items: vec![StoreFulfillmentOrderLineItem {
                    id: "gid://shopify/FulfillmentOrderLineItem/4".into(),
                    line_item_id: "gid://shopify/LineItem/7".into(),
                    total_quantity: 2,
                    remaining_quantity: 2,
                }],
            }]
        );
        assert!(f.fulfillments.is_empty());
        // A view stored before the line ids were kept cannot fulfil.
        o.fulfillment_orders[0].lines[0].id = None;
        assert_eq!(o.to_fulfill(), None);
    }

    #[test]
    fn a_line_without_its_required_fields_is_refused() {
        for bad in [
            r#"{"id": "x", "sku": null, "name": "n"}"#,
            r#"{"id": "x", "sku": null, "quantity": 1}"#,
            r#"{"id": "x", "sku": null, "name": "n", "quantity": -1}"#,
        ] {
            assert!(serde_json::from_str::<StoreLineItem>(bad).is_err(), "{bad}");
        }
    }
}
