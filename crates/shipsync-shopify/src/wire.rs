//! The `data` shapes of the documents in `operations`, as Shopify sends them.
//! Quantities are `u64`: a negative number is a malformed answer.

use serde::Deserialize;

use crate::model::{
    ShippingAddress, StoreFulfillmentOrder, StoreFulfillmentOrderLineItem, StoreLineItem,
    StoreTracking,
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
#[serde(rename_all = "camelCase")]
pub(crate) struct WarehouseOrder {
    pub id: String,
    pub name: String,
    pub updated_at: Option<String>,
    pub email: Option<String>,
    pub shipping_address: Option<MailingAddress>,
    pub shipping_line: Option<ShippingLine>,
    pub line_items: Page<LineItem>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShippingLine {
    pub title: Option<String>,
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
    pub line_items: Page<LineItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LineItem {
    id: String,
    sku: Option<String>,
    name: String,
    quantity: u64,
    current_quantity: Option<u64>,
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
