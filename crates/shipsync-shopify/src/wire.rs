//! The `data` shapes of the documents in `operations`, as Shopify sends them.
//! Quantities are `u64`: a negative number is a malformed answer.

use serde::Deserialize;

use crate::model::{
    ShippingAddress, StoreFulfillmentOrder, StoreFulfillmentOrderLineItem, StoreLineItem,
    StoreTracking, WarehouseFulfillmentOrder, WebhookSubscription,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    pub page_info: PageInfo,
    pub nodes: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdOnly {
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShopData {
    pub shop: Shop,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Shop {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessScopesData {
    pub current_app_installation: AppInstallation,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppInstallation {
    pub access_scopes: Vec<AccessScope>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AccessScope {
    pub handle: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrderSearchData {
    pub orders: Nodes<OrderRef>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Nodes<T> {
    pub nodes: Vec<T>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrderRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrdersForWarehouseData {
    pub orders: Page<WarehouseOrder>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrderForWarehouseData {
    pub order: Option<WarehouseOrder>,
}

/// An order as `OrderForWarehouse` and `OrdersForWarehouse` select it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WarehouseOrder {
    pub id: String,
    pub name: String,
    pub updated_at: Option<String>,
    pub email: Option<String>,
    pub cancelled_at: Option<String>,
    pub cancel_reason: Option<String>,
    pub display_financial_status: Option<String>,
    /// Non-null in the schema; read leniently, it is shown, not decided on.
    pub display_fulfillment_status: Option<String>,
    pub tags: Vec<String>,
    pub edited: bool,
    pub shipping_address: Option<MailingAddress>,
    pub shipping_line: Option<ShippingLine>,
    pub line_items: Page<LineItem>,
    pub fulfillment_orders: Page<FulfillmentOrderForWarehouse>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WarehouseFulfillmentOrdersData {
    pub order: Option<OrderWarehouseFulfillmentOrders>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderWarehouseFulfillmentOrders {
    pub fulfillment_orders: Page<FulfillmentOrderForWarehouse>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentOrderForWarehouse {
    id: String,
    status: String,
    assigned_location: Option<AssignedLocation>,
    fulfillment_holds: Vec<FulfillmentHold>,
    line_items: Page<FulfillmentOrderLineItem>,
}

impl FulfillmentOrderForWarehouse {
    /// The fulfillment order with the line items of this first page.
    pub(crate) fn into_model(self) -> (WarehouseFulfillmentOrder, PageInfo) {
        let fo = WarehouseFulfillmentOrder {
            id: self.id,
            status: self.status,
            location_id: self
                .assigned_location
                .and_then(|a| a.location)
                .map(|l| l.id),
            holds: self
                .fulfillment_holds
                .into_iter()
                .map(FulfillmentHold::describe)
                .collect(),
            lines: self
                .line_items
                .nodes
                .into_iter()
                .map(|l| StoreFulfillmentOrderLineItem::from(l).into())
                .collect(),
        };
        (fo, self.line_items.page_info)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FulfillmentHold {
    reason: String,
    reason_notes: Option<String>,
}

impl FulfillmentHold {
    /// `REASON`, or `REASON: notes` when the hold has notes.
    fn describe(self) -> String {
        match non_blank(self.reason_notes) {
            Some(notes) => format!("{}: {}", self.reason, notes.trim()),
            None => self.reason,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShippingLine {
    pub title: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub carrier_identifier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MailingAddress {
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    province: Option<String>,
    province_code: Option<String>,
    zip: Option<String>,
    country: Option<String>,
    country_code_v2: Option<String>,
    phone: Option<String>,
}

impl From<MailingAddress> for ShippingAddress {
    fn from(a: MailingAddress) -> Self {
        Self {
            name: non_blank(a.name),
            first_name: non_blank(a.first_name),
            last_name: non_blank(a.last_name),
            company: non_blank(a.company),
            address1: non_blank(a.address1),
            address2: non_blank(a.address2),
            city: non_blank(a.city),
            province: non_blank(a.province),
            province_code: non_blank(a.province_code),
            zip: non_blank(a.zip),
            country: non_blank(a.country),
            country_code: non_blank(a.country_code_v2),
            phone: non_blank(a.phone),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrderData {
    pub order: Option<Order>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Order {
    pub id: String,
    pub name: String,
    pub updated_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub line_items: Page<LineItem>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrderToFulfillData {
    pub order: Option<OrderToFulfill>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrdersToFulfillData {
    pub orders: Page<OrderToFulfill>,
}

/// An order as `order_to_fulfill_fields` selects it: the first page of its
/// line items and of its fulfillment orders.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderToFulfill {
    pub id: String,
    pub name: String,
    pub updated_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub line_items: Page<LineItem>,
    pub fulfillment_orders: Page<FulfillmentOrder>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LineItem {
    id: String,
    sku: Option<String>,
    name: String,
    quantity: u64,
    current_quantity: Option<u64>,
    requires_shipping: bool,
    unfulfilled_quantity: Option<u64>,
    variant: Option<Variant>,
    line_item_group: Option<LineItemGroup>,
}

#[derive(Debug, Deserialize)]
struct Variant {
    sku: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LineItemGroup {
    title: String,
}

fn non_blank(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl From<LineItem> for StoreLineItem {
    fn from(l: LineItem) -> Self {
        Self {
            id: l.id,
            sku: non_blank(l.sku).or_else(|| non_blank(l.variant.and_then(|v| v.sku))),
            name: l.name,
            quantity: l.current_quantity.unwrap_or(l.quantity),
            ordered_quantity: l.quantity,
            requires_shipping: l.requires_shipping,
            unfulfilled_quantity: l.unfulfilled_quantity,
            group: l.line_item_group.map(|g| g.title),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct FulfillmentOrdersData {
    pub order: Option<OrderFulfillmentOrders>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderFulfillmentOrders {
    pub fulfillment_orders: Page<FulfillmentOrder>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentOrder {
    pub id: String,
    pub status: String,
    pub assigned_location: Option<AssignedLocation>,
    pub line_items: Page<FulfillmentOrderLineItem>,
}

impl FulfillmentOrder {
    /// The fulfillment order with the line items of this first page.
    pub(crate) fn into_store(self) -> (StoreFulfillmentOrder, PageInfo) {
        let fo = StoreFulfillmentOrder {
            id: self.id,
            status: self.status,
            location_id: self
                .assigned_location
                .and_then(|a| a.location)
                .map(|l| l.id),
            line_items: self.line_items.nodes.into_iter().map(Into::into).collect(),
        };
        (fo, self.line_items.page_info)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssignedLocation {
    location: Option<IdOnly>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentOrderLineItem {
    id: String,
    total_quantity: u64,
    remaining_quantity: u64,
    line_item: IdOnly,
}

impl From<FulfillmentOrderLineItem> for StoreFulfillmentOrderLineItem {
    fn from(l: FulfillmentOrderLineItem) -> Self {
        Self {
            id: l.id,
            line_item_id: l.line_item.id,
            total_quantity: l.total_quantity,
            remaining_quantity: l.remaining_quantity,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentOrderLinesData {
    pub fulfillment_order: Option<FulfillmentOrderLines>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentOrderLines {
    pub line_items: Page<FulfillmentOrderLineItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentOrderFulfillmentsData {
    pub fulfillment_order: Option<FulfillmentOrderFulfillments>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FulfillmentOrderFulfillments {
    pub fulfillments: Page<FulfillmentHead>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentHead {
    pub id: String,
    pub status: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FulfillmentData {
    pub fulfillment: Option<Fulfillment>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Fulfillment {
    pub tracking_info: Vec<TrackingInfo>,
    pub fulfillment_line_items: Page<FulfillmentLineItem>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TrackingInfo {
    company: Option<String>,
    number: Option<String>,
    url: Option<String>,
}

impl From<TrackingInfo> for StoreTracking {
    fn from(t: TrackingInfo) -> Self {
        Self {
            company: t.company,
            number: t.number,
            url: t.url,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentLineItem {
    /// Nullable in the schema; a fulfillment line without a quantity
    /// fulfilled nothing we can count.
    quantity: Option<u64>,
    line_item: IdOnly,
}

impl From<FulfillmentLineItem> for (String, u64) {
    fn from(l: FulfillmentLineItem) -> Self {
        (l.line_item.id, l.quantity.unwrap_or(0))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentCreateData {
    pub fulfillment_create: Option<Payload<CreatedFulfillment>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CreatedFulfillment {
    pub id: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrackingUpdateData {
    pub fulfillment_tracking_info_update: Option<Payload<IdOnly>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Payload<F> {
    pub fulfillment: Option<F>,
    #[serde(default)]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookSubscriptionsData {
    pub webhook_subscriptions: Page<WebhookSubscriptionNode>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WebhookSubscriptionNode {
    id: String,
    topic: String,
    uri: String,
}

impl From<WebhookSubscriptionNode> for WebhookSubscription {
    fn from(s: WebhookSubscriptionNode) -> Self {
        Self {
            id: s.id,
            topic: s.topic,
            uri: s.uri,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookSubscriptionCreateData {
    pub webhook_subscription_create: Option<WebhookSubscriptionCreatePayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookSubscriptionCreatePayload {
    pub webhook_subscription: Option<WebhookSubscriptionNode>,
    #[serde(default)]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookSubscriptionDeleteData {
    pub webhook_subscription_delete: Option<WebhookSubscriptionDeletePayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookSubscriptionDeletePayload {
    pub deleted_webhook_subscription_id: Option<String>,
    #[serde(default)]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserError {
    field: Option<Vec<String>>,
    message: String,
}

impl UserError {
    pub(crate) fn describe(&self) -> String {
        match self.field.as_deref() {
            Some(field) if !field.is_empty() => format!("{}: {}", field.join("."), self.message),
            _ => self.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WarehouseFulfillmentOrderLine;

    fn line(json: serde_json::Value) -> StoreLineItem {
        serde_json::from_value::<LineItem>(json)
            .expect("a LineItem")
            .into()
    }

    #[test]
    fn a_line_item_keeps_both_quantities_and_whether_it_ships() {
        let edited = line(serde_json::json!({
            "id": "gid://shopify/LineItem/1", "sku": "  ", "name": "Widget",
            "quantity": 3, "currentQuantity": 1, "requiresShipping": true,
            "unfulfilledQuantity": 1, "variant": { "sku": "W-1" },
            "lineItemGroup": { "title": "Gift box" },
        }));
        assert_eq!(
            edited,
            StoreLineItem {
                id: "gid://shopify/LineItem/1".into(),
                sku: Some("W-1".into()),
                name: "Widget".into(),
                quantity: 1,
                ordered_quantity: 3,
                requires_shipping: true,
                unfulfilled_quantity: Some(1),
                group: Some("Gift box".into()),
            }
        );
        // A tip: no SKU, nothing to ship; no current quantity means as ordered.
        let tip = line(serde_json::json!({
            "id": "gid://shopify/LineItem/2", "sku": null, "name": "Tip",
            "quantity": 1, "requiresShipping": false, "variant": null, "lineItemGroup": null,
        }));
        assert_eq!(
            (
                tip.sku,
                tip.quantity,
                tip.ordered_quantity,
                tip.requires_shipping,
                tip.unfulfilled_quantity
            ),
            (None, 1, 1, false, None)
        );
        // `requiresShipping` is non-null in the schema: an answer without it
        // is malformed, not "ships".
        assert!(
            serde_json::from_value::<LineItem>(serde_json::json!({
                "id": "x", "sku": null, "name": "n", "quantity": 1,
            }))
            .is_err()
        );
    }

    #[test]
    fn a_fulfillment_order_keeps_location_holds_and_lines() {
        let fo: FulfillmentOrderForWarehouse = serde_json::from_value(serde_json::json!({
            "id": "gid://shopify/FulfillmentOrder/1",
            "status": "ON_HOLD",
            "assignedLocation": { "location": null },
            "fulfillmentHolds": [
                { "reason": "HIGH_RISK_OF_FRAUD", "reasonNotes": "  review  " },
                { "reason": "OTHER", "reasonNotes": "   " },
            ],
            "lineItems": {
                "pageInfo": { "hasNextPage": true, "endCursor": "c-1" },
                "nodes": [{ "id": "gid://shopify/FulfillmentOrderLineItem/5", "totalQuantity": 4,
                            "remainingQuantity": 3, "lineItem": { "id": "gid://shopify/LineItem/9" } }],
            },
        }))
        .expect("a fulfillment order");
        let (fo, lines_page) = fo.into_model();
        assert_eq!(
            fo,
            WarehouseFulfillmentOrder {
                id: "gid://shopify/FulfillmentOrder/1".into(),
                status: "ON_HOLD".into(),
                location_id: None,
                holds: vec!["HIGH_RISK_OF_FRAUD: review".into(), "OTHER".into()],
                lines: vec![WarehouseFulfillmentOrderLine {
                    id: Some("gid://shopify/FulfillmentOrderLineItem/5".into()),
                    line_item_id: "gid://shopify/LineItem/9".into(),
                    remaining_quantity: 3,
                }],
            }
        );
        assert!(lines_page.has_next_page);
        assert_eq!(lines_page.end_cursor.as_deref(), Some("c-1"));
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenFulfillmentOrdersData {
    pub fulfillment_orders: Page<OpenFulfillmentOrderNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenFulfillmentOrderNode {
    id: String,
    status: String,
    updated_at: String,
    order_id: String,
    order_name: String,
    line_items: Page<OpenFulfillmentOrderLine>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenFulfillmentOrderLine {
    id: String,
    total_quantity: u64,
    remaining_quantity: u64,
    /// The variant's SKU: the order line's when it has none.
    sku: Option<String>,
    line_item: LineItem,
}

impl OpenFulfillmentOrderNode {
    pub(crate) fn into_model(self) -> crate::model::OpenFulfillmentOrder {
        let complete = !self.line_items.page_info.has_next_page;
        let lines = complete.then(|| {
            self.line_items
                .nodes
                .into_iter()
                .map(|l| {
                    let fo_line = StoreFulfillmentOrderLineItem {
                        id: l.id,
                        line_item_id: l.line_item.id.clone(),
                        total_quantity: l.total_quantity,
                        remaining_quantity: l.remaining_quantity,
                    };
                    let mut line = StoreLineItem::from(l.line_item);
                    if line.sku.is_none() {
                        line.sku = non_blank(l.sku);
                    }
                    (fo_line, line)
                })
                .collect()
        });
        crate::model::OpenFulfillmentOrder {
            id: self.id,
            status: self.status,
            updated_at: self.updated_at,
            order_id: self.order_id,
            order_name: self.order_name,
            lines,
        }
    }
}
