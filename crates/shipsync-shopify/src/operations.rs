//! Every GraphQL document shipsync sends to Shopify, in one place.
//!
//! Data travels only in variables, never interpolated into a document. Each
//! document is validated against Shopify's real Admin schema (2026-10) in
//! `tests/it/schema.rs`, which also recomputes the requested cost below.
//!
//! Requested cost, by Shopify's documented rules: scalar/enum 0, object 1,
//! connection 2 + `first` × (cost of one node), a list field with `first`
//! `first` × (cost of one item), mutation 10. `pageInfo` is counted as an
//! object (1) to stay on the safe side. Shopify refuses a single query whose
//! requested cost exceeds 1,000, so nested connections cannot all be 250 wide
//! at once (fulfillment orders 50 × their line items 250 alone would be
//! ~25,000): an order is read in a few documents, each paged, each under 1,000.

/// `shop { name }` — "Test connection". Cost: 1.
pub const SHOP_NAME: &str = r#"query ShopName {
  shop {
    name
  }
}"#;

/// The scopes the store granted the app's token. Cost: 1 + 1.
pub const ACCESS_SCOPES: &str = r#"query AccessScopes {
  currentAppInstallation {
    accessScopes {
      handle
    }
  }
}"#;

/// Order ids and names matching a search such as `name:"#1001"`; the client
/// keeps only exact matches. Cost: 2 + 10 × 1 = 12.
pub const FIND_ORDERS_BY_NAME: &str = r#"query FindOrdersByName($query: String!) {
  orders(first: 10, query: $query) {
    nodes {
      id
      name
    }
  }
}"#;

/// What fulfilling an order reads of it, in one selection shared by
/// [`ORDER_TO_FULFILL`] and [`ORDERS_TO_FULFILL_BY_NAME`]: the header
/// (cancellation), the first 10 line items and the first 2 fulfillment
/// orders with their first 10 lines — the whole order in one request for
/// the common case; longer lists are completed with [`ORDER`] (line items),
/// [`ORDER_FULFILLMENT_ORDERS`] and [`FULFILLMENT_ORDER_LINE_ITEMS`]. Only
/// the fields fulfilling uses: Shopify prices by fields and page sizes.
/// Cost of one order: Order 1 + lineItems (2 + pageInfo 1 + 10 × (LineItem
/// 1 + variant 1 + lineItemGroup 1)) = 33 + fulfillmentOrders (2 + pageInfo
/// 1 + 2 × (FulfillmentOrder 1 + assignedLocation 1 + location 1 +
/// lineItems 2 + pageInfo 1 + 10 × (line item 1 + lineItem 1))) = 55; 89.
macro_rules! order_to_fulfill_fields {
    () => {
        r#"id
    name
    updatedAt
    cancelledAt
    lineItems(first: 10) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        sku
        name
        quantity
        currentQuantity
        requiresShipping
        unfulfilledQuantity
        variant {
          sku
        }
        lineItemGroup {
          title
        }
      }
    }
    fulfillmentOrders(first: 2) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        status
        assignedLocation {
          location {
            id
          }
        }
        lineItems(first: 10) {
          pageInfo {
            hasNextPage
            endCursor
          }
          nodes {
            id
            totalQuantity
            remainingQuantity
            lineItem {
              id
            }
          }
        }
      }
    }"#
    };
}

/// One order as fulfilling reads it (see `order_to_fulfill_fields`).
/// Cost: 89.
pub const ORDER_TO_FULFILL: &str = concat!(
    "query OrderToFulfill($id: ID!) {\n  order(id: $id) {\n    ",
    order_to_fulfill_fields!(),
    "\n  }\n}"
);

/// The orders a name search such as `name:"#1001"` finds, each read as
/// [`ORDER_TO_FULFILL`] reads one, so that matching a shipment to its order
/// and reading the order take one request. Only the first: Shopify asks a
/// query's whole requested cost to be in the bucket before it runs it, and
/// a second order would double it for the rare name two orders share. The
/// client keeps an exact match only; when there are more (`hasNextPage`),
/// it lists the exact matches with [`FIND_ORDERS_BY_NAME`] and reads the
/// others. Cost: orders 2 + pageInfo 1 + 89 = 92.
pub const ORDERS_TO_FULFILL_BY_NAME: &str = concat!(
    "query OrdersToFulfillByName($query: String!) {\n  orders(first: 1, query: $query) {\n    pageInfo {\n      hasNextPage\n      endCursor\n    }\n    nodes {\n    ",
    order_to_fulfill_fields!(),
    "\n    }\n  }\n}"
);

/// The store's open fulfillment orders matching `$query` (e.g.
/// `status:open assigned_location_id:… updated_at:>='…'`), oldest change
/// first, with what fulfilling one needs: its first 10 lines, each with
/// its order line's quantities, SKU and bundle — how shipsync reads ahead
/// the orders a location is to ship, so that a shipment of an order only
/// in the store needs no search at the peak. `orderId` and `orderName` are
/// scalars (free); the order's own fields are not read. A fulfillment
/// order with more lines (`hasNextPage`) is not used from this read.
/// Cost: fulfillmentOrders 2 + pageInfo 1 + 10 × (FulfillmentOrder 1 +
/// lineItems 2 + pageInfo 1 + 10 × (line item 1 + lineItem 1 +
/// lineItemGroup 1)) = 343 — Shopify wants a query's whole requested cost
/// in the bucket before it runs it, and a page this size leaves a small
/// store's bucket room for fulfillments; an answer costs 2 + 5 per
/// one-line fulfillment order (no bundle), the rest refunded.
pub const OPEN_FULFILLMENT_ORDERS: &str = r#"query OpenFulfillmentOrders($query: String!, $after: String) {
  fulfillmentOrders(first: 10, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo {
      hasNextPage
      endCursor
    }
    nodes {
      id
      status
      updatedAt
      orderId
      orderName
      lineItems(first: 10) {
        pageInfo {
          hasNextPage
        }
        nodes {
          id
          totalQuantity
          remainingQuantity
          sku
          lineItem {
            id
            sku
            name
            quantity
            currentQuantity
            requiresShipping
            unfulfilledQuantity
            lineItemGroup {
              title
            }
          }
        }
      }
    }
  }
}"#;

/// An order's header and line items, paged by `$lineItemsAfter`; also how
/// [`ORDER_FOR_WAREHOUSE`] and [`ORDERS_FOR_WAREHOUSE`] read the line items
/// beyond their first page (same line selection).
/// Cost: order 1 + lineItems 2 + pageInfo 1 + 20 × (LineItem 1 +
/// variant 1 + lineItemGroup 1) = 64 (`cancelledAt` and the line scalars
/// cost nothing). Kept small: every sync reads the order, and the store's
/// bucket refills at 100 points/s on a standard plan.
pub const ORDER: &str = r#"query Order($id: ID!, $lineItemsAfter: String) {
  order(id: $id) {
    id
    name
    updatedAt
    cancelledAt
    lineItems(first: 20, after: $lineItemsAfter) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        sku
        name
        quantity
        currentQuantity
        requiresShipping
        unfulfilledQuantity
        variant {
          sku
        }
        lineItemGroup {
          title
        }
      }
    }
  }
}"#;

/// An order's fulfillment orders with the first 10 of their line items,
/// paged by `$after`; a fulfillment order with more lines is completed with
/// [`FULFILLMENT_ORDER_LINE_ITEMS`]. Cost: order 1 + fulfillmentOrders 2 +
/// pageInfo 1 + 3 × (FulfillmentOrder 1 + assignedLocation 1 + location 1 +
/// lineItems 2 + pageInfo 1 + 10 × (line item 1 + lineItem 1)) = 82.
pub const ORDER_FULFILLMENT_ORDERS: &str = r#"query OrderFulfillmentOrders($id: ID!, $after: String) {
  order(id: $id) {
    fulfillmentOrders(first: 3, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        status
        assignedLocation {
          location {
            id
          }
        }
        lineItems(first: 10) {
          pageInfo {
            hasNextPage
            endCursor
          }
          nodes {
            id
            totalQuantity
            remainingQuantity
            lineItem {
              id
            }
          }
        }
      }
    }
  }
}"#;

/// The remaining line items of one fulfillment order.
/// Cost: fulfillmentOrder 1 + lineItems 2 + pageInfo 1 + 100 × 2 = 204.
pub const FULFILLMENT_ORDER_LINE_ITEMS: &str = r#"query FulfillmentOrderLineItems($id: ID!, $after: String) {
  fulfillmentOrder(id: $id) {
    lineItems(first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        totalQuantity
        remainingQuantity
        lineItem {
          id
        }
      }
    }
  }
}"#;

/// The fulfillments of one fulfillment order, paged by `$after`. An
/// order's fulfillments are read through its fulfillment orders: the
/// order's own `fulfillments` is a plain list that cannot be paged, so an
/// order with more than one page of fulfillments would hide some. Their
/// tracking and lines come from [`FULFILLMENT`]. Cost: fulfillmentOrder 1 +
/// fulfillments 2 + pageInfo 1 + 50 × Fulfillment 1 = 54.
pub const FULFILLMENT_ORDER_FULFILLMENTS: &str = r#"query FulfillmentOrderFulfillments($id: ID!, $after: String) {
  fulfillmentOrder(id: $id) {
    fulfillments(first: 50, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        status
        createdAt
      }
    }
  }
}"#;

/// One fulfillment's tracking and line items, the line items paged by
/// `$lineItemsAfter`. Cost: fulfillment 1 + trackingInfo 20 × 1 +
/// fulfillmentLineItems 2 + pageInfo 1 + 50 × (line item 1 + lineItem 1) = 124.
pub const FULFILLMENT: &str = r#"query Fulfillment($id: ID!, $lineItemsAfter: String) {
  fulfillment(id: $id) {
    id
    trackingInfo(first: 20) {
      company
      number
      url
    }
    fulfillmentLineItems(first: 50, after: $lineItemsAfter) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        quantity
        lineItem {
          id
        }
      }
    }
  }
}"#;

/// Creates one fulfillment. Not idempotent: after an unknown outcome, re-read
/// the order before retrying. Cost: 10.
pub const FULFILLMENT_CREATE: &str = r#"mutation FulfillmentCreate($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment {
      id
      status
    }
    userErrors {
      field
      message
    }
  }
}"#;

/// Replaces the tracking of an existing fulfillment (the caller passes the
/// merged list of numbers). Cost: 10.
pub const FULFILLMENT_TRACKING_INFO_UPDATE: &str = r#"mutation FulfillmentTrackingInfoUpdate($fulfillmentId: ID!, $trackingInfoInput: FulfillmentTrackingInput!, $notifyCustomer: Boolean) {
  fulfillmentTrackingInfoUpdate(fulfillmentId: $fulfillmentId, trackingInfoInput: $trackingInfoInput, notifyCustomer: $notifyCustomer) {
    fulfillment {
      id
    }
    userErrors {
      field
      message
    }
  }
}"#;

/// One order as the Sales Orders channel reads it after each order webhook:
/// header (cancellation, financial and fulfillment status, tags, edited),
/// ship-to and method, the first 20 line items, and the first 3
/// fulfillment orders with their holds and first 20 lines — the whole
/// order in this one request for the common case. Longer lists are
/// completed with [`ORDER`] (line items), [`WAREHOUSE_FULFILLMENT_ORDERS`]
/// (fulfillment orders) and [`FULFILLMENT_ORDER_LINE_ITEMS`] (a fulfillment
/// order's lines).
/// Cost: order 1 + shippingAddress 1 + shippingLine 1 + lineItems (2 +
/// pageInfo 1 + 20 × (LineItem 1 + variant 1 + lineItemGroup 1)) = 63 +
/// fulfillmentOrders (2 + pageInfo 1 + 3 × (FulfillmentOrder 1 +
/// assignedLocation 1 + location 1 + fulfillmentHolds 1 + lineItems 2 +
/// pageInfo 1 + 20 × (line item 1 + lineItem 1))) = 144; 210 in all.
pub const ORDER_FOR_WAREHOUSE: &str = r#"query OrderForWarehouse($id: ID!) {
  order(id: $id) {
    id
    name
    updatedAt
    email
    cancelledAt
    cancelReason
    displayFinancialStatus
    displayFulfillmentStatus
    tags
    edited
    shippingAddress {
      name
      firstName
      lastName
      company
      address1
      address2
      city
      province
      provinceCode
      zip
      country
      countryCodeV2
      phone
    }
    shippingLine {
      title
      code
      source
      carrierIdentifier
    }
    lineItems(first: 20) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        sku
        name
        quantity
        currentQuantity
        requiresShipping
        unfulfilledQuantity
        variant {
          sku
        }
        lineItemGroup {
          title
        }
      }
    }
    fulfillmentOrders(first: 3) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        status
        assignedLocation {
          location {
            id
          }
        }
        fulfillmentHolds {
          reason
          reasonNotes
        }
        lineItems(first: 20) {
          pageInfo {
            hasNextPage
            endCursor
          }
          nodes {
            id
            totalQuantity
            remainingQuantity
            lineItem {
              id
            }
          }
        }
      }
    }
  }
}"#;

/// An order's fulfillment orders after `$after`, as
/// [`ORDER_FOR_WAREHOUSE`] selects them (holds included), 5 a page.
/// Cost: order 1 + fulfillmentOrders 2 + pageInfo 1 + 5 × 47 = 239.
pub const WAREHOUSE_FULFILLMENT_ORDERS: &str = r#"query WarehouseFulfillmentOrders($id: ID!, $after: String) {
  order(id: $id) {
    fulfillmentOrders(first: 5, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        status
        assignedLocation {
          location {
            id
          }
        }
        fulfillmentHolds {
          reason
          reasonNotes
        }
        lineItems(first: 20) {
          pageInfo {
            hasNextPage
            endCursor
          }
          nodes {
            id
            totalQuantity
            remainingQuantity
            lineItem {
              id
            }
          }
        }
      }
    }
  }
}"#;

/// Orders changed since a time, for the Sales Orders channel: `$query` is
/// built by the client (`updated_at:>='…'`, every status: the engine
/// decides what to import), oldest change first, paged by `$after`. Each
/// order is selected as in [`ORDER_FOR_WAREHOUSE`] but with its first 2
/// fulfillment orders, so that 5 orders fit in one request; longer lists
/// are completed the same way.
/// Cost: orders 2 + pageInfo 1 + 5 × (Order 1 + shippingAddress 1 +
/// shippingLine 1 + lineItems 63 + fulfillmentOrders (2 + pageInfo 1 +
/// 2 × 47)) = 3 + 5 × 163 = 818, under the 1,000 a query may request.
pub const ORDERS_FOR_WAREHOUSE: &str = r#"query OrdersForWarehouse($query: String!, $after: String) {
  orders(first: 5, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo {
      hasNextPage
      endCursor
    }
    nodes {
      id
      name
      updatedAt
      email
      cancelledAt
      cancelReason
      displayFinancialStatus
      displayFulfillmentStatus
      tags
      edited
      shippingAddress {
        name
        firstName
        lastName
        company
        address1
        address2
        city
        province
        provinceCode
        zip
        country
        countryCodeV2
        phone
      }
      shippingLine {
        title
        code
        source
        carrierIdentifier
      }
      lineItems(first: 20) {
        pageInfo {
          hasNextPage
          endCursor
        }
        nodes {
          id
          sku
          name
          quantity
          currentQuantity
          requiresShipping
          unfulfilledQuantity
          variant {
            sku
          }
          lineItemGroup {
            title
          }
        }
      }
      fulfillmentOrders(first: 2) {
        pageInfo {
          hasNextPage
          endCursor
        }
        nodes {
          id
          status
          assignedLocation {
            location {
              id
            }
          }
          fulfillmentHolds {
            reason
            reasonNotes
          }
          lineItems(first: 20) {
            pageInfo {
              hasNextPage
              endCursor
            }
            nodes {
              id
              totalQuantity
              remainingQuantity
              lineItem {
                id
              }
            }
          }
        }
      }
    }
  }
}"#;

/// This app's webhook subscriptions, those at `$uri` only when it is given
/// (Shopify lists only subscriptions made through the API), paged by
/// `$after`. Cost: webhookSubscriptions 2 + pageInfo 1 + 50 × 1 = 53.
pub const WEBHOOK_SUBSCRIPTIONS: &str = r#"query WebhookSubscriptions($uri: String, $after: String) {
  webhookSubscriptions(first: 50, after: $after, uri: $uri) {
    pageInfo {
      hasNextPage
      endCursor
    }
    nodes {
      id
      topic
      uri
    }
  }
}"#;

/// Subscribes `$uri` to `$topic`, JSON bodies (`uri`, not the deprecated
/// `callbackUrl`). Cost: 10.
pub const WEBHOOK_SUBSCRIPTION_CREATE: &str = r#"mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription {
      id
      topic
      uri
    }
    userErrors {
      field
      message
    }
  }
}"#;

/// Deletes one webhook subscription. Cost: 10.
pub const WEBHOOK_SUBSCRIPTION_DELETE: &str = r#"mutation WebhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors {
      field
      message
    }
  }
}"#;

/// Every document with its operation name.
pub const ALL: &[(&str, &str)] = &[
    ("ShopName", SHOP_NAME),
    ("AccessScopes", ACCESS_SCOPES),
    ("FindOrdersByName", FIND_ORDERS_BY_NAME),
    ("OrderToFulfill", ORDER_TO_FULFILL),
    ("OrdersToFulfillByName", ORDERS_TO_FULFILL_BY_NAME),
    ("OpenFulfillmentOrders", OPEN_FULFILLMENT_ORDERS),
    ("OrdersForWarehouse", ORDERS_FOR_WAREHOUSE),
    ("OrderForWarehouse", ORDER_FOR_WAREHOUSE),
    ("WarehouseFulfillmentOrders", WAREHOUSE_FULFILLMENT_ORDERS),
    ("Order", ORDER),
    ("OrderFulfillmentOrders", ORDER_FULFILLMENT_ORDERS),
    ("FulfillmentOrderLineItems", FULFILLMENT_ORDER_LINE_ITEMS),
    (
        "FulfillmentOrderFulfillments",
        FULFILLMENT_ORDER_FULFILLMENTS,
    ),
    ("Fulfillment", FULFILLMENT),
    ("FulfillmentCreate", FULFILLMENT_CREATE),
    (
        "FulfillmentTrackingInfoUpdate",
        FULFILLMENT_TRACKING_INFO_UPDATE,
    ),
    ("WebhookSubscriptions", WEBHOOK_SUBSCRIPTIONS),
    ("WebhookSubscriptionCreate", WEBHOOK_SUBSCRIPTION_CREATE),
    ("WebhookSubscriptionDelete", WEBHOOK_SUBSCRIPTION_DELETE),
];

/// The requested cost of every document, by the rules above (as documented
/// beside each; `tests/it/schema.rs` recomputes them). Shopify reports an
/// operation's real requested cost with each answer; until then, this is
/// what a call of it reserves in the store's cost budget (an upper bound:
/// `pageInfo` is counted).
pub const COSTS: &[(&str, u64)] = &[
    ("ShopName", 1),
    ("AccessScopes", 2),
    ("FindOrdersByName", 12),
    ("OrderToFulfill", 89),
    ("OrdersToFulfillByName", 92),
    ("OpenFulfillmentOrders", 343),
    ("OrdersForWarehouse", 818),
    ("OrderForWarehouse", 210),
    ("WarehouseFulfillmentOrders", 239),
    ("Order", 64),
    ("OrderFulfillmentOrders", 82),
    ("FulfillmentOrderLineItems", 204),
    ("FulfillmentOrderFulfillments", 54),
    ("Fulfillment", 124),
    ("FulfillmentCreate", 10),
    ("FulfillmentTrackingInfoUpdate", 10),
    ("WebhookSubscriptions", 53),
    ("WebhookSubscriptionCreate", 10),
    ("WebhookSubscriptionDelete", 10),
];

/// The documented requested cost of operation `op` (see [`COSTS`]).
pub fn documented_cost(op: &str) -> Option<f64> {
    COSTS
        .iter()
        .find(|(name, _)| *name == op)
        .map(|(_, cost)| *cost as f64)
}
