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
            line_items: Vec::new(),
            fulfillment_orders: Vec::new(),
            fulfillments: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreLineItem {
    pub id: String,
    /// The line's SKU, else its variant's current SKU.
    pub sku: Option<String>,
    pub name: String,
    /// `currentQuantity` (after removals and edits) when Shopify gives it.
    pub quantity: u64,
    /// Title of the Shopify bundle (line item group) this line belongs to.
    pub group: Option<String>,
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

/// One page of [`crate::ShopifyClient::orders_changed_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersPage {
    pub orders: Vec<StoreOrderForWarehouse>,
    /// Cursor of the next page; `None` on the last one.
    pub next: Option<String>,
}

/// A paid, unfulfilled store order with what the warehouse needs to ship it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreOrderForWarehouse {
    /// Shopify GID, `gid://shopify/Order/…`.
    pub id: String,
    /// As shown to the merchant, e.g. `#1001`.
    pub name: String,
    /// RFC 3339, to the second.
    pub updated_at: Option<String>,
    pub email: Option<String>,
    /// `None` for orders that need no shipping.
    pub shipping_address: Option<ShippingAddress>,
    /// Title of the shipping line (the method the customer chose).
    pub shipping_method: Option<String>,
    pub line_items: Vec<StoreLineItem>,
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
