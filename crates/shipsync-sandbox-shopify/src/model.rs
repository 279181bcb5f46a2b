//! The sandbox's store: orders, fulfillment orders, fulfillments, and the
//! rules Shopify applies when they change. Nothing here knows GraphQL or HTTP.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// The location used when an order spec does not split its lines.
pub const DEFAULT_LOCATION_ID: &str = "gid://shopify/Location/1";

/// An order to place in the sandbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderSpec {
    /// Order name as Shopify shows it, e.g. `#1001`.
    pub name: String,
    pub lines: Vec<LineSpec>,
    /// How the lines are split over fulfillment orders. Empty: one OPEN
    /// fulfillment order at [`DEFAULT_LOCATION_ID`] holding every line.
    pub fulfillment_orders: Vec<FoSpec>,
    /// Defaults to `customer@example.com`.
    pub email: Option<String>,
    /// Defaults to a fixed US address.
    pub shipping_address: Option<Address>,
    /// Title of the order's shipping line (the method the customer chose),
    /// e.g. `Standard`; none when the order has no shipping line.
    pub shipping_line: Option<String>,
    /// `ShippingLine.code` (REST `code`); defaults to the title, as Shopify's
    /// own rates have it.
    pub shipping_line_code: Option<String>,
    /// `ShippingLine.source` (REST `source`); defaults to `shopify`.
    pub shipping_line_source: Option<String>,
    /// Defaults to now. Lets tests place orders "in the past" for
    /// `created_at:`/`updated_at:` searches.
    pub created_at: Option<Timestamp>,
    /// `displayFinancialStatus` (`OrderDisplayFinancialStatus`, e.g.
    /// `AUTHORIZED`, `PENDING`); defaults to `PAID`.
    pub financial_status: Option<String>,
    /// The order's tags, as `Order.tags` lists them.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LineSpec {
    pub sku: String,
    pub quantity: u32,
    /// Store-side bundle: the `lineItemGroup` title shared by component lines.
    pub group: Option<String>,
    /// `lineItemGroup.quantity` (bundles sold); defaults to 1.
    pub group_quantity: Option<u32>,
    /// Line title; defaults to the SKU.
    pub name: Option<String>,
    /// `LineItem.requiresShipping`; defaults to true. Gift cards, tips and
    /// digital goods are `false`: shipsync must not send them to a warehouse.
    pub requires_shipping: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoSpec {
    /// Location GID, e.g. `gid://shopify/Location/2`.
    pub location_id: String,
    /// Indexes into [`OrderSpec::lines`]; each line belongs to exactly one
    /// fulfillment order.
    pub lines: Vec<usize>,
    /// `FulfillmentOrderStatus`; defaults to OPEN.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
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

impl Address {
    fn sample() -> Self {
        Address {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            company: None,
            address1: Some("1 Main Street".into()),
            address2: None,
            city: Some("Springfield".into()),
            province: Some("Oregon".into()),
            province_code: Some("OR".into()),
            zip: Some("97477".into()),
            country: Some("United States".into()),
            country_code: Some("US".into()),
            phone: None,
        }
    }
}

/// The ids Shopify assigned to a new order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedOrder {
    pub order_id: String,
    pub name: String,
    /// In the order of [`OrderSpec::lines`].
    pub line_item_ids: Vec<String>,
    pub fulfillment_order_ids: Vec<String>,
    /// Per fulfillment order, its line items' ids in the order of its lines.
    pub fulfillment_order_line_item_ids: Vec<Vec<String>>,
}

/// A snapshot of an order, for assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: String,
    pub name: String,
    pub display_fulfillment_status: String,
    /// `displayFinancialStatus`, e.g. `PAID`.
    pub display_financial_status: String,
    pub updated_at: Timestamp,
    pub cancelled_at: Option<Timestamp>,
    /// `OrderCancelReason`, e.g. `CUSTOMER`.
    pub cancel_reason: Option<String>,
    pub tags: Vec<String>,
    /// Whether the order was edited after it was placed.
    pub edited: bool,
    pub lines: Vec<LineView>,
    pub fulfillment_orders: Vec<FulfillmentOrderView>,
    pub fulfillments: Vec<FulfillmentView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    pub id: String,
    pub sku: String,
    /// As ordered, removed units included (`LineItem.quantity`).
    pub quantity: u32,
    /// After edits and cancellation (`LineItem.currentQuantity`).
    pub current_quantity: u32,
    pub requires_shipping: bool,
    pub fulfilled_quantity: u32,
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentOrderView {
    pub id: String,
    pub status: String,
    pub location_id: String,
    /// The reasons of its holds (`FulfillmentHoldReason`), oldest first.
    pub hold_reasons: Vec<String>,
    pub line_items: Vec<FoLineView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoLineView {
    pub id: String,
    pub line_item_id: String,
    pub sku: String,
    pub total_quantity: u32,
    pub remaining_quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentView {
    pub id: String,
    pub status: String,
    pub created_at: Timestamp,
    pub fulfillment_order_ids: Vec<String>,
    pub tracking_company: Option<String>,
    pub tracking_numbers: Vec<String>,
    /// Index-aligned with `tracking_numbers`; `None` where Shopify has no URL.
    pub tracking_urls: Vec<Option<String>>,
    pub line_items: Vec<FulfillmentLineView>,
    pub notify_customer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentLineView {
    pub id: String,
    pub line_item_id: String,
    pub sku: String,
    pub quantity: u32,
}

// ---------------------------------------------------------------------------
// Internal state

pub(crate) fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

/// `gid://shopify/Order/12` → `("Order", 12)`.
pub(crate) fn parse_gid(gid: &str) -> Option<(&str, u64)> {
    let rest = gid.strip_prefix("gid://shopify/")?;
    let (kind, id) = rest.split_once('/')?;
    // Shopify GIDs may carry a query string (`?...`); the id is before it.
    let id = id.split('?').next()?;
    Some((kind, id.parse().ok()?))
}

/// Shopify reports times to the second; searches compare at that precision.
pub(crate) fn now_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub shipping_address: Address,
    pub shipping_line: Option<ShippingLine>,
    pub lines: Vec<Line>,
    pub fos: Vec<FulfillmentOrder>,
    pub fulfillments: Vec<Fulfillment>,
    pub cancelled_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    /// `OrderDisplayFinancialStatus`.
    pub financial_status: String,
    pub tags: Vec<String>,
    pub edited: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ShippingLine {
    pub id: u64,
    pub title: String,
    pub code: String,
    pub source: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub id: u64,
    pub variant_id: u64,
    pub sku: String,
    pub name: String,
    /// As ordered; raised by edits that add units, never lowered.
    pub quantity: u32,
    /// `quantity` less removed and cancelled units.
    pub current_quantity: u32,
    pub requires_shipping: bool,
    pub group: Option<Group>,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: u64,
    pub title: String,
    pub quantity: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct FulfillmentOrder {
    pub id: u64,
    pub status: String,
    pub location_id: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub lines: Vec<FoLine>,
    pub holds: Vec<Hold>,
}

impl FulfillmentOrder {
    /// What a fulfillment order search filters on.
    pub(crate) fn facts(&self) -> crate::search::FoFacts<'_> {
        crate::search::FoFacts {
            id: self.id,
            status: &self.status,
            location_id: self.location_id,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Hold {
    pub id: u64,
    /// `FulfillmentHoldReason`.
    pub reason: String,
    pub reason_notes: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct FoLine {
    pub id: u64,
    /// Index into `Order::lines`.
    pub line: usize,
    pub total: u32,
    pub remaining: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Fulfillment {
    pub id: u64,
    pub status: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub location_id: u64,
    /// Indexes into `Order::fos`.
    pub fos: Vec<usize>,
    pub tracking: Tracking,
    pub lines: Vec<FulfillmentLine>,
    pub notify_customer: bool,
    /// Until then reads do not show it (see `Faults::fulfillments_visible_after_ms`).
    pub visible_at: Option<std::time::Instant>,
}

impl Fulfillment {
    /// Whether reads show it yet.
    pub fn visible(&self) -> bool {
        self.visible_at
            .is_none_or(|at| std::time::Instant::now() >= at)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Tracking {
    pub company: Option<String>,
    /// (number, url)
    pub entries: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct FulfillmentLine {
    pub id: u64,
    /// Index into `Order::lines`.
    pub line: usize,
    pub quantity: u32,
}

impl Order {
    pub fn fulfilled_quantity(&self, line: usize) -> u32 {
        self.fulfillments
            .iter()
            .flat_map(|f| &f.lines)
            .filter(|l| l.line == line)
            .map(|l| l.quantity)
            .sum()
    }

    /// Units of line `line` still to fulfil: current less fulfilled.
    pub fn unfulfilled_quantity(&self, line: usize) -> u32 {
        self.lines[line]
            .current_quantity
            .saturating_sub(self.fulfilled_quantity(line))
    }

    pub fn display_fulfillment_status(&self) -> &'static str {
        let total: u32 = self.lines.iter().map(|l| l.current_quantity).sum();
        let fulfilled: u32 = (0..self.lines.len())
            .map(|i| self.fulfilled_quantity(i))
            .sum();
        let held = self.fos.iter().any(|f| f.status == "ON_HOLD");
        let workable = self
            .fos
            .iter()
            .any(|f| matches!(f.status.as_str(), "OPEN" | "IN_PROGRESS"));
        if fulfilled == 0 && held && !workable {
            // See lifecycle.rs: every fulfillment order left is on hold.
            "ON_HOLD"
        } else if fulfilled == 0 {
            "UNFULFILLED"
        } else if fulfilled >= total {
            "FULFILLED"
        } else {
            "PARTIALLY_FULFILLED"
        }
    }
}

/// A user error as Shopify returns it in mutation payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserError {
    pub field: Option<Vec<String>>,
    pub message: String,
}

fn user_error(field: &[&str], message: impl Into<String>) -> UserError {
    UserError {
        field: Some(field.iter().map(|s| s.to_string()).collect()),
        message: message.into(),
    }
}

/// `FulfillmentInput`, decoded from the coerced GraphQL arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FulfillmentInput {
    pub line_items_by_fulfillment_order: Vec<FoLineItemsInput>,
    pub notify_customer: Option<bool>,
    pub tracking_info: Option<TrackingInput>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FoLineItemsInput {
    pub fulfillment_order_id: String,
    pub fulfillment_order_line_items: Option<Vec<FoLineItemInput>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FoLineItemInput {
    pub id: String,
    pub quantity: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TrackingInput {
    pub company: Option<String>,
    pub number: Option<String>,
    pub numbers: Option<Vec<String>>,
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    next_id: u64,
    pub orders: Vec<Order>,
    /// Location id → name.
    pub locations: HashMap<u64, String>,
    pub fulfillments_created: usize,
    /// How long a new fulfillment stays hidden from reads (set per request
    /// from the faults).
    pub visible_after: std::time::Duration,
    /// Webhook subscriptions of every app (see `webhooks.rs`).
    pub subscriptions: Vec<crate::webhooks::Subscription>,
    /// Events not yet handed to the webhook sender, oldest first.
    pub events: Vec<crate::webhooks::Event>,
}

impl State {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn location_name(&self, id: u64) -> String {
        self.locations
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("Location {id}"))
    }

    pub fn find_order_by_name(&self, name: &str) -> Option<usize> {
        let wanted = name.trim_start_matches('#');
        self.orders
            .iter()
            .position(|o| o.name.trim_start_matches('#') == wanted)
    }

    pub fn find_order(&self, id: u64) -> Option<usize> {
        self.orders.iter().position(|o| o.id == id)
    }

    pub fn find_fo(&self, id: u64) -> Option<(usize, usize)> {
        self.orders
            .iter()
            .enumerate()
            .find_map(|(oi, o)| o.fos.iter().position(|f| f.id == id).map(|fi| (oi, fi)))
    }

    pub fn find_fulfillment(&self, id: u64) -> Option<(usize, usize)> {
        self.orders.iter().enumerate().find_map(|(oi, o)| {
            o.fulfillments
                .iter()
                .position(|f| f.id == id)
                .map(|fi| (oi, fi))
        })
    }

    pub fn find_line(&self, id: u64) -> Option<(usize, usize)> {
        self.orders
            .iter()
            .enumerate()
            .find_map(|(oi, o)| o.lines.iter().position(|l| l.id == id).map(|li| (oi, li)))
    }

    pub fn create_order(&mut self, spec: OrderSpec) -> Result<CreatedOrder, SandboxError> {
        let invalid = |m: String| Err(SandboxError::InvalidSpec(m));
        if spec.name.trim_start_matches('#').is_empty() {
            return invalid("order name is empty".into());
        }
        if self.find_order_by_name(&spec.name).is_some() {
            return invalid(format!("an order named {} already exists", spec.name));
        }
        if spec.lines.is_empty() {
            return invalid("an order needs at least one line".into());
        }
        if let Some(l) = spec.lines.iter().find(|l| l.quantity == 0) {
            return invalid(format!("line {} has quantity 0", l.sku));
        }
        let fo_specs = if spec.fulfillment_orders.is_empty() {
            vec![FoSpec {
                location_id: DEFAULT_LOCATION_ID.into(),
                lines: (0..spec.lines.len()).collect(),
                status: None,
            }]
        } else {
            spec.fulfillment_orders.clone()
        };
        let mut owner = vec![None; spec.lines.len()];
        let mut locations = Vec::new();
        for (fi, fo) in fo_specs.iter().enumerate() {
            let Some(("Location", loc)) = parse_gid(&fo.location_id) else {
                return invalid(format!("{} is not a Location GID", fo.location_id));
            };
            locations.push(loc);
            for &li in &fo.lines {
                match owner.get_mut(li) {
                    None => {
                        return invalid(format!(
                            "fulfillment order {fi} names line {li}, which does not exist"
                        ));
                    }
                    Some(Some(_)) => {
                        return invalid(format!("line {li} is in two fulfillment orders"));
                    }
                    Some(slot) => *slot = Some(fi),
                }
            }
        }
        if let Some(li) = owner.iter().position(Option::is_none) {
            return invalid(format!("line {li} is in no fulfillment order"));
        }

        let financial_status = match &spec.financial_status {
            None => "PAID".to_string(),
            Some(s) if crate::lifecycle::FINANCIAL_STATUSES.contains(&s.as_str()) => s.clone(),
            Some(s) => return invalid(format!("{s} is not an OrderDisplayFinancialStatus")),
        };
        let created_at = spec.created_at.unwrap_or_else(now_seconds);
        let order_id = self.next_id();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut lines = Vec::new();
        for l in &spec.lines {
            let group = match &l.group {
                None => None,
                Some(title) => {
                    let g = match groups.get(title) {
                        Some(g) => g.clone(),
                        None => {
                            let g = Group {
                                id: self.next_id(),
                                title: title.clone(),
                                quantity: l.group_quantity.unwrap_or(1),
                            };
                            groups.insert(title.clone(), g.clone());
                            g
                        }
                    };
                    Some(g)
                }
            };
            lines.push(Line {
                id: self.next_id(),
                variant_id: self.next_id(),
                sku: l.sku.clone(),
                name: l.name.clone().unwrap_or_else(|| l.sku.clone()),
                quantity: l.quantity,
                current_quantity: l.quantity,
                requires_shipping: l.requires_shipping.unwrap_or(true),
                group,
            });
        }
        let mut fos = Vec::new();
        for (fo, loc) in fo_specs.iter().zip(locations) {
            self.locations
                .entry(loc)
                .or_insert_with(|| format!("Location {loc}"));
            let fo_lines = fo
                .lines
                .iter()
                .map(|&li| FoLine {
                    id: self.next_id(),
                    line: li,
                    total: lines[li].quantity,
                    remaining: lines[li].quantity,
                })
                .collect();
            fos.push(FulfillmentOrder {
                id: self.next_id(),
                status: fo.status.clone().unwrap_or_else(|| "OPEN".into()),
                location_id: loc,
                created_at,
                updated_at: created_at,
                lines: fo_lines,
                holds: Vec::new(),
            });
        }
        let order = Order {
            id: order_id,
            name: spec.name.clone(),
            email: spec
                .email
                .clone()
                .unwrap_or_else(|| "customer@example.com".into()),
            created_at,
            updated_at: created_at,
            shipping_address: spec
                .shipping_address
                .clone()
                .unwrap_or_else(Address::sample),
            shipping_line: match &spec.shipping_line {
                Some(title) => Some(ShippingLine {
                    id: self.next_id(),
                    title: title.clone(),
                    code: spec
                        .shipping_line_code
                        .clone()
                        .unwrap_or_else(|| title.clone()),
                    source: spec
                        .shipping_line_source
                        .clone()
                        .unwrap_or_else(|| "shopify".into()),
                }),
                None => None,
            },
            lines,
            fos,
            fulfillments: Vec::new(),
            cancelled_at: None,
            cancel_reason: None,
            financial_status,
            tags: spec.tags.clone(),
            edited: false,
        };
        let created = CreatedOrder {
            order_id: gid("Order", order.id),
            name: order.name.clone(),
            line_item_ids: order.lines.iter().map(|l| gid("LineItem", l.id)).collect(),
            fulfillment_order_ids: order
                .fos
                .iter()
                .map(|f| gid("FulfillmentOrder", f.id))
                .collect(),
            fulfillment_order_line_item_ids: order
                .fos
                .iter()
                .map(|f| {
                    f.lines
                        .iter()
                        .map(|l| gid("FulfillmentOrderLineItem", l.id))
                        .collect()
                })
                .collect(),
        };
        self.orders.push(order);
        self.order_event("orders/create", self.orders.len() - 1);
        Ok(created)
    }

    pub fn set_fo_status(&mut self, fo_id: &str, status: &str) -> Result<(), SandboxError> {
        let (oi, fi) = parse_gid(fo_id)
            .filter(|(k, _)| *k == "FulfillmentOrder")
            .and_then(|(_, id)| self.find_fo(id))
            .ok_or_else(|| SandboxError::NotFound(fo_id.to_string()))?;
        let fo = &mut self.orders[oi].fos[fi];
        fo.status = status.to_string();
        fo.updated_at = now_seconds();
        Ok(())
    }

    /// `fulfillmentCreate`: returns (order index, fulfillment index) or the
    /// user errors Shopify would report. Nothing changes when there are errors.
    pub fn fulfillment_create(
        &mut self,
        input: &FulfillmentInput,
    ) -> Result<(usize, usize), Vec<UserError>> {
        let field = ["fulfillment", "lineItemsByFulfillmentOrder"];
        if input.line_items_by_fulfillment_order.is_empty() {
            return Err(vec![user_error(
                &field,
                "Line items by fulfillment order must contain at least one fulfillment order.",
            )]);
        }
        let tracking = tracking_from_input(input.tracking_info.as_ref())
            .map_err(|m| vec![user_error(&["fulfillment", "trackingInfo"], m)])?;

        // Resolve every fulfillment order first: they must all exist and
        // share one order and one location.
        let mut targets: Vec<(usize, usize)> = Vec::new();
        for group in &input.line_items_by_fulfillment_order {
            let found = parse_gid(&group.fulfillment_order_id)
                .filter(|(k, _)| *k == "FulfillmentOrder")
                .and_then(|(_, id)| self.find_fo(id));
            let Some(t) = found else {
                return Err(vec![user_error(
                    &field,
                    format!(
                        "Fulfillment order {} does not exist.",
                        group.fulfillment_order_id
                    ),
                )]);
            };
            if targets.contains(&t) {
                return Err(vec![user_error(
                    &field,
                    format!(
                        "Fulfillment order {} is listed more than once.",
                        group.fulfillment_order_id
                    ),
                )]);
            }
            targets.push(t);
        }
        let oi = targets[0].0;
        if targets.iter().any(|t| t.0 != oi) {
            return Err(vec![user_error(
                &field,
                "All fulfillment orders must belong to the same order.",
            )]);
        }
        let order = &self.orders[oi];
        let location = order.fos[targets[0].1].location_id;
        if targets
            .iter()
            .any(|t| order.fos[t.1].location_id != location)
        {
            return Err(vec![user_error(
                &field,
                "All fulfillment orders must be assigned to the same location.",
            )]);
        }

        // (fo index, fo line index, quantity)
        let mut picks: Vec<(usize, usize, u32)> = Vec::new();
        for (group, &(_, fi)) in input.line_items_by_fulfillment_order.iter().zip(&targets) {
            let fo = &order.fos[fi];
            if fo.status != "OPEN" && fo.status != "IN_PROGRESS" {
                return Err(vec![user_error(
                    &field,
                    format!(
                        "Fulfillment order {} has an unfulfillable status= {}.",
                        gid("FulfillmentOrder", fo.id),
                        fo.status.to_lowercase()
                    ),
                )]);
            }
            match group.fulfillment_order_line_items.as_deref() {
                None | Some([]) => {
                    picks.extend(
                        fo.lines
                            .iter()
                            .enumerate()
                            .filter(|(_, l)| l.remaining > 0)
                            .map(|(li, l)| (fi, li, l.remaining)),
                    );
                }
                Some(items) => {
                    for item in items {
                        let li = parse_gid(&item.id)
                            .filter(|(k, _)| *k == "FulfillmentOrderLineItem")
                            .and_then(|(_, id)| fo.lines.iter().position(|l| l.id == id));
                        let Some(li) = li else {
                            return Err(vec![user_error(
                                &field,
                                format!(
                                    "Fulfillment order line item {} does not belong to fulfillment order {}.",
                                    item.id,
                                    gid("FulfillmentOrder", fo.id)
                                ),
                            )]);
                        };
                        if picks.iter().any(|p| p.0 == fi && p.1 == li) {
                            return Err(vec![user_error(
                                &field,
                                format!(
                                    "Fulfillment order line item {} is listed more than once.",
                                    item.id
                                ),
                            )]);
                        }
                        let remaining = fo.lines[li].remaining;
                        let quantity = u32::try_from(item.quantity)
                            .ok()
                            .filter(|q| (1..=remaining).contains(q));
                        let Some(quantity) = quantity else {
                            return Err(vec![user_error(
                                &field,
                                "Invalid fulfillment order line item quantity requested.",
                            )]);
                        };
                        picks.push((fi, li, quantity));
                    }
                }
            }
        }
        if picks.is_empty() {
            return Err(vec![user_error(
                &field,
                "The fulfillment orders have no remaining line items to fulfill.",
            )]);
        }

        let now = now_seconds();
        let fulfillment_id = self.next_id();
        let mut lines = Vec::new();
        for _ in &picks {
            lines.push(self.next_id());
        }
        let order = &mut self.orders[oi];
        let mut f_lines = Vec::new();
        for (&(fi, li, quantity), id) in picks.iter().zip(lines) {
            let fo_line = &mut order.fos[fi].lines[li];
            fo_line.remaining -= quantity;
            f_lines.push(FulfillmentLine {
                id,
                line: fo_line.line,
                quantity,
            });
        }
        for &(_, fi) in &targets {
            let fo = &mut order.fos[fi];
            fo.status = if fo.lines.iter().all(|l| l.remaining == 0) {
                "CLOSED".into()
            } else {
                "IN_PROGRESS".into()
            };
            fo.updated_at = now;
        }
        order.fulfillments.push(Fulfillment {
            id: fulfillment_id,
            status: "SUCCESS".into(),
            created_at: now,
            updated_at: now,
            location_id: location,
            fos: targets.iter().map(|t| t.1).collect(),
            tracking,
            lines: f_lines,
            notify_customer: input.notify_customer.unwrap_or(false),
            visible_at: (!self.visible_after.is_zero())
                .then(|| std::time::Instant::now() + self.visible_after),
        });
        order.updated_at = now;
        let fulfillment = order.fulfillments.len() - 1;
        let topic = match order.display_fulfillment_status() {
            "FULFILLED" => "orders/fulfilled",
            _ => "orders/partially_fulfilled",
        };
        self.fulfillments_created += 1;
        self.order_event("orders/updated", oi);
        self.order_event(topic, oi);
        Ok((oi, fulfillment))
    }

    /// `fulfillmentTrackingInfoUpdate`: replaces the fulfillment's tracking.
    pub fn tracking_update(
        &mut self,
        fulfillment_id: &str,
        input: &TrackingInput,
        notify_customer: Option<bool>,
    ) -> Result<(usize, usize), Vec<UserError>> {
        let found = parse_gid(fulfillment_id)
            .filter(|(k, _)| *k == "Fulfillment")
            .and_then(|(_, id)| self.find_fulfillment(id));
        let Some((oi, fi)) = found else {
            return Err(vec![user_error(
                &["fulfillmentId"],
                "Fulfillment does not exist.",
            )]);
        };
        let tracking = tracking_from_input(Some(input))
            .map_err(|m| vec![user_error(&["trackingInfoInput"], m)])?;
        let now = now_seconds();
        let order = &mut self.orders[oi];
        let f = &mut order.fulfillments[fi];
        if f.status == "CANCELLED" {
            return Err(vec![user_error(
                &["fulfillmentId"],
                "Cannot update tracking of a cancelled fulfillment.",
            )]);
        }
        f.tracking = tracking;
        f.updated_at = now;
        if let Some(n) = notify_customer {
            f.notify_customer = n;
        }
        order.updated_at = now;
        self.order_event("orders/updated", oi);
        Ok((oi, fi))
    }

    pub fn view(&self, oi: usize) -> OrderView {
        let o = &self.orders[oi];
        OrderView {
            id: gid("Order", o.id),
            name: o.name.clone(),
            display_fulfillment_status: o.display_fulfillment_status().into(),
            display_financial_status: o.financial_status.clone(),
            updated_at: o.updated_at,
            cancelled_at: o.cancelled_at,
            cancel_reason: o.cancel_reason.clone(),
            tags: o.tags.clone(),
            edited: o.edited,
            lines: o
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| LineView {
                    id: gid("LineItem", l.id),
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    current_quantity: l.current_quantity,
                    requires_shipping: l.requires_shipping,
                    fulfilled_quantity: o.fulfilled_quantity(i),
                    group: l.group.as_ref().map(|g| g.title.clone()),
                })
                .collect(),
            fulfillment_orders: o
                .fos
                .iter()
                .map(|f| FulfillmentOrderView {
                    id: gid("FulfillmentOrder", f.id),
                    status: f.status.clone(),
                    location_id: gid("Location", f.location_id),
                    hold_reasons: f.holds.iter().map(|h| h.reason.clone()).collect(),
                    line_items: f
                        .lines
                        .iter()
                        .map(|l| FoLineView {
                            id: gid("FulfillmentOrderLineItem", l.id),
                            line_item_id: gid("LineItem", o.lines[l.line].id),
                            sku: o.lines[l.line].sku.clone(),
                            total_quantity: l.total,
                            remaining_quantity: l.remaining,
                        })
                        .collect(),
                })
                .collect(),
            fulfillments: o
                .fulfillments
                .iter()
                .map(|f| FulfillmentView {
                    id: gid("Fulfillment", f.id),
                    status: f.status.clone(),
                    created_at: f.created_at,
                    fulfillment_order_ids: f
                        .fos
                        .iter()
                        .map(|&fi| gid("FulfillmentOrder", o.fos[fi].id))
                        .collect(),
                    tracking_company: f.tracking.company.clone(),
                    tracking_numbers: f.tracking.entries.iter().map(|e| e.0.clone()).collect(),
                    tracking_urls: f.tracking.entries.iter().map(|e| e.1.clone()).collect(),
                    line_items: f
                        .lines
                        .iter()
                        .map(|l| FulfillmentLineView {
                            id: gid("FulfillmentLineItem", l.id),
                            line_item_id: gid("LineItem", o.lines[l.line].id),
                            sku: o.lines[l.line].sku.clone(),
                            quantity: l.quantity,
                        })
                        .collect(),
                    notify_customer: f.notify_customer,
                })
                .collect(),
        }
    }
}

/// Applies Shopify's `FulfillmentTrackingInput` rules: `url` needs `number`,
/// `urls` needs `numbers`; `number` and `numbers` are combined (duplicates
/// dropped); carriers Shopify knows get a generated URL when none is given.
fn tracking_from_input(input: Option<&TrackingInput>) -> Result<Tracking, String> {
    let Some(input) = input else {
        return Ok(Tracking::default());
    };
    if input.url.is_some() && input.number.is_none() {
        return Err("Tracking number must be provided when a tracking URL is given.".into());
    }
    let numbers = input.numbers.clone().unwrap_or_default();
    let urls = input.urls.clone().unwrap_or_default();
    if !urls.is_empty() && numbers.is_empty() {
        return Err("Tracking numbers must be provided when tracking URLs are given.".into());
    }
    if urls.len() > numbers.len() {
        return Err("There are more tracking URLs than tracking numbers.".into());
    }
    for url in input.url.iter().chain(&urls) {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!("Tracking URL {url} is not a valid URL."));
        }
    }
    let mut entries: Vec<(String, Option<String>)> = Vec::new();
    if let Some(n) = &input.number {
        entries.push((n.clone(), input.url.clone()));
    }
    for (i, n) in numbers.iter().enumerate() {
        if !entries.iter().any(|e| &e.0 == n) {
            entries.push((n.clone(), urls.get(i).cloned()));
        }
    }
    if entries.iter().any(|e| e.0.trim().is_empty()) {
        return Err("Tracking number can't be blank.".into());
    }
    let company = input.company.clone();
    for e in &mut entries {
        if e.1.is_none() {
            e.1 = company.as_deref().and_then(|c| carrier_url(c, &e.0));
        }
    }
    Ok(Tracking { company, entries })
}

/// A few carriers from Shopify's list; the match is exact, as Shopify's is.
fn carrier_url(company: &str, number: &str) -> Option<String> {
    let base = match company {
        "UPS" => "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=",
        "FedEx" => "https://www.fedex.com/fedextrack/?trknbr=",
        "USPS" => "https://tools.usps.com/go/TrackConfirmAction?tLabels=",
        "DHL Express" => "https://www.dhl.com/en/express/tracking.html?AWB=",
        _ => return None,
    };
    Some(format!("{base}{number}"))
}
