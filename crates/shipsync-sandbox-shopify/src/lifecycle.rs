//! What happens to an order after it was placed: cancellation, edits, tags,
//! payment status, fulfillment holds. The controls of [`ShopifySandbox`]
//! call these, as a merchant working in the Shopify admin (or another app)
//! would; each bumps `Order.updatedAt` and queues the webhooks Shopify sends
//! for it (bodies and delivery in `webhooks.rs`).
//!
//! # What Shopify does, and where that comes from
//!
//! From the project's notes (`shared/docs/orders-lifecycle.md`, sections
//! "Shopify order webhooks" and "Shopify order fields to read"), Shopify's
//! GraphQL Admin reference for 2026-10 and Shopify's help center:
//!
//! - `LineItem.quantity` counts every unit ordered, removed and refunded ones
//!   included; `currentQuantity` excludes removed and refunded units
//!   (shopify.dev, `LineItem`; changelog "Addition of LineItem
//!   current_quantity", 2024-01). `unfulfilledQuantity` is what is left to
//!   fulfil.
//! - A cancellation sets `cancelledAt` and `cancelReason` (`CUSTOMER`,
//!   `DECLINED`, `FRAUD`, `INVENTORY`, `OTHER`, `STAFF`). An order can be
//!   cancelled only while nothing of it was fulfilled (help center,
//!   "Canceling an order": "You've collected payment for the order, but no
//!   items have been fulfilled"); afterwards its payment status is `REFUNDED`
//!   when the payment was captured, `VOIDED` when it was not (same page).
//! - An order edit that lowers a quantity leaves `quantity` and lowers
//!   `currentQuantity`; it cannot remove units that were already fulfilled.
//!   The order's `edited` becomes true. Fulfillment order line items follow
//!   (`remainingQuantity`, `totalQuantity`).
//! - Fulfillment order statuses: OPEN, IN_PROGRESS, ON_HOLD, SCHEDULED,
//!   INCOMPLETE, CLOSED, CANCELLED; a hold has a `reason`
//!   (`FulfillmentHoldReason`) and optional `reasonNotes`, and a fulfillment
//!   order on hold cannot be fulfilled.
//! - The `orders` query, unlike REST's `GET /orders.json` (which defaults to
//!   `status=open`), has no default status filter: cancelled and closed
//!   orders are listed unless `query` says `status:open` (shopify.dev,
//!   `orders` query: `status` is one filter among others, with no default).
//!
//! # Assumptions
//!
//! Where the documentation is silent the sandbox does the following. Each is
//! marked **Assumption** here and nowhere else.
//!
//! - **Assumption**: a cancellation refunds every unit: each line's
//!   `currentQuantity` (and so `unfulfilledQuantity`) drops to 0, and every
//!   fulfillment order that is not CLOSED becomes CANCELLED with its line
//!   items' `remainingQuantity` 0 (`totalQuantity` kept) and its holds
//!   dropped. An order with any fulfillment is refused with
//!   "Cannot cancel an order that has fulfillments." (cancel the fulfillment
//!   first, as the admin asks). A cancelled order cannot be cancelled again
//!   ("Order has already been cancelled.") nor edited ("Cannot edit a
//!   cancelled order.").
//! - **Assumption**: raising a quantity adds units: `quantity` and
//!   `currentQuantity` both grow by the difference. The added units go to a
//!   fulfillment order of the line that is OPEN, ON_HOLD, SCHEDULED or
//!   IN_PROGRESS, else to a new OPEN fulfillment order at the location of the
//!   line's first one. A new line goes to the order's first OPEN fulfillment
//!   order, else to a new OPEN one at [`DEFAULT_LOCATION_ID`]
//!   (Shopify's order routing decides this in reality).
//! - **Assumption**: lowering a quantity takes the units from the line's
//!   unfulfilled fulfillment order lines (their `totalQuantity` and
//!   `remainingQuantity` both drop); a fulfillment order left with nothing
//!   to fulfil becomes CLOSED.
//! - **Assumption**: `displayFulfillmentStatus` is ON_HOLD when nothing was
//!   fulfilled and every fulfillment order still workable is on hold.
//! - **Assumption**: placing a hold and releasing one bump the order's
//!   `updatedAt` (its fulfillment status shows them) and so send
//!   `orders/updated`. Holding is allowed while the fulfillment order is
//!   OPEN, IN_PROGRESS or ON_HOLD (another hold is added); releasing needs
//!   ON_HOLD, removes every hold and goes back to OPEN, or IN_PROGRESS when
//!   part of it was fulfilled.
//! - **Assumption**: setting the financial status to PAID (a capture) sends
//!   `orders/paid` as well as `orders/updated`.
//!
//! [`ShopifySandbox`]: crate::ShopifySandbox
//! [`DEFAULT_LOCATION_ID`]: crate::DEFAULT_LOCATION_ID

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::SandboxError;
use crate::model::{
    DEFAULT_LOCATION_ID, FoLine, FulfillmentOrder, Hold, Line, State, gid, now_seconds, parse_gid,
};
use crate::webhooks::{EditChange, OrderEditBody};

/// `OrderDisplayFinancialStatus` values.
pub(crate) const FINANCIAL_STATUSES: &[&str] = &[
    "AUTHORIZED",
    "EXPIRED",
    "PAID",
    "PARTIALLY_PAID",
    "PARTIALLY_REFUNDED",
    "PENDING",
    "REFUNDED",
    "VOIDED",
];

/// `OrderCancelReason` values.
pub(crate) const CANCEL_REASONS: &[&str] = &[
    "CUSTOMER",
    "DECLINED",
    "FRAUD",
    "INVENTORY",
    "OTHER",
    "STAFF",
];

/// `FulfillmentHoldReason` values.
pub(crate) const HOLD_REASONS: &[&str] = &[
    "AWAITING_PAYMENT",
    "AWAITING_RETURN_ITEMS",
    "HIGH_RISK_OF_FRAUD",
    "INCORRECT_ADDRESS",
    "INVENTORY_OUT_OF_STOCK",
    "ONLINE_STORE_POST_PURCHASE_CROSS_SELL",
    "OTHER",
    "UNKNOWN_DELIVERY_DATE",
];

/// `FulfillmentHold.displayReason` for a reason.
pub(crate) fn hold_display_reason(reason: &str) -> &'static str {
    match reason {
        "AWAITING_PAYMENT" => "Awaiting payment",
        "AWAITING_RETURN_ITEMS" => "Awaiting return items",
        "HIGH_RISK_OF_FRAUD" => "High risk of fraud",
        "INCORRECT_ADDRESS" => "Incorrect address",
        "INVENTORY_OUT_OF_STOCK" => "Inventory out of stock",
        "ONLINE_STORE_POST_PURCHASE_CROSS_SELL" => "Post-purchase cross-sell",
        "UNKNOWN_DELIVERY_DATE" => "Unknown delivery date",
        _ => "Other",
    }
}

/// One change of an order edit ([`ShopifySandbox::edit_order`]).
///
/// [`ShopifySandbox::edit_order`]: crate::ShopifySandbox::edit_order
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LineEdit {
    /// Sets a line's current quantity: higher adds units, lower removes
    /// them, 0 removes the line.
    SetQuantity {
        /// A `LineItem` GID, or a SKU that names exactly one line.
        line: String,
        quantity: u32,
    },
    /// Adds a new line.
    Add {
        sku: String,
        quantity: u32,
        /// Defaults to true.
        #[serde(default)]
        requires_shipping: Option<bool>,
    },
}

/// What an order edit did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditedOrder {
    /// The edit's numeric id (`order_edit.id` of the `orders/edited` body).
    pub edit_id: u64,
    /// The `LineItem` GIDs of the lines [`LineEdit::Add`] created, in order.
    pub added_line_item_ids: Vec<String>,
}

fn refused(message: impl Into<String>) -> SandboxError {
    SandboxError::Refused(message.into())
}

impl State {
    /// The order named `name` (with or without `#`).
    fn order_index(&self, name: &str) -> Result<usize, SandboxError> {
        self.find_order_by_name(name)
            .ok_or_else(|| SandboxError::NotFound(format!("order {name}")))
    }

    fn fo_index(&self, fo_id: &str) -> Result<(usize, usize), SandboxError> {
        parse_gid(fo_id)
            .filter(|(k, _)| *k == "FulfillmentOrder")
            .and_then(|(_, id)| self.find_fo(id))
            .ok_or_else(|| SandboxError::NotFound(fo_id.to_string()))
    }

    /// Cancels an order (see the module's rules).
    pub fn cancel_order(&mut self, name: &str, reason: &str) -> Result<(), SandboxError> {
        if !CANCEL_REASONS.contains(&reason) {
            return Err(SandboxError::InvalidSpec(format!(
                "{reason} is not an OrderCancelReason ({})",
                CANCEL_REASONS.join(", ")
            )));
        }
        let oi = self.order_index(name)?;
        let now = now_seconds();
        let o = &mut self.orders[oi];
        if o.cancelled_at.is_some() {
            return Err(refused("Order has already been cancelled."));
        }
        if !o.fulfillments.is_empty() {
            return Err(refused("Cannot cancel an order that has fulfillments."));
        }
        o.cancelled_at = Some(now);
        o.cancel_reason = Some(reason.to_string());
        o.updated_at = now;
        for l in &mut o.lines {
            l.current_quantity = 0;
        }
        let mut cancelled_fos = Vec::new();
        for (fi, f) in o.fos.iter_mut().enumerate() {
            if f.status == "CLOSED" || f.status == "CANCELLED" {
                continue;
            }
            f.status = "CANCELLED".into();
            f.holds.clear();
            f.updated_at = now;
            for l in &mut f.lines {
                l.remaining = 0;
            }
            cancelled_fos.push(fi);
        }
        o.financial_status = match o.financial_status.as_str() {
            "PAID" | "PARTIALLY_PAID" | "PARTIALLY_REFUNDED" => "REFUNDED".into(),
            "AUTHORIZED" | "PENDING" | "EXPIRED" => "VOIDED".into(),
            other => other.to_string(),
        };
        self.order_event("orders/cancelled", oi);
        self.order_event("orders/updated", oi);
        for fi in cancelled_fos {
            self.fo_event("fulfillment_orders/cancelled", oi, fi, None);
        }
        Ok(())
    }

    /// Applies one order edit (several changes at once, as Shopify's
    /// `orderEditCommit` does). Nothing changes when any change is refused.
    pub fn edit_order(
        &mut self,
        name: &str,
        changes: &[LineEdit],
    ) -> Result<EditedOrder, SandboxError> {
        let oi = self.order_index(name)?;
        if self.orders[oi].cancelled_at.is_some() {
            return Err(refused("Cannot edit a cancelled order."));
        }
        if changes.is_empty() {
            return Err(SandboxError::InvalidSpec(
                "an order edit needs a change".into(),
            ));
        }
        // Work on a copy, so a refused change leaves the order untouched.
        let mut order = self.orders[oi].clone();
        let mut additions = Vec::new();
        let mut removals = Vec::new();
        let mut added_line_item_ids = Vec::new();
        let now = now_seconds();
        for change in changes {
            match change {
                LineEdit::SetQuantity { line, quantity } => {
                    let li = find_line(&order.lines, line)?;
                    let current = order.lines[li].current_quantity;
                    if *quantity > current {
                        let delta = quantity - current;
                        order.lines[li].quantity += delta;
                        order.lines[li].current_quantity += delta;
                        let open = order.fos.iter().position(|f| {
                            matches!(
                                f.status.as_str(),
                                "OPEN" | "ON_HOLD" | "SCHEDULED" | "IN_PROGRESS"
                            ) && f.lines.iter().any(|l| l.line == li)
                        });
                        match open {
                            Some(fi) => {
                                let f = &mut order.fos[fi];
                                if let Some(l) = f.lines.iter_mut().find(|l| l.line == li) {
                                    l.total += delta;
                                    l.remaining += delta;
                                }
                                f.updated_at = now;
                            }
                            None => {
                                let location = order
                                    .fos
                                    .iter()
                                    .find(|f| f.lines.iter().any(|l| l.line == li))
                                    .map(|f| f.location_id)
                                    .unwrap_or(1);
                                let fo = self.new_fo(location, li, delta, now);
                                order.fos.push(fo);
                            }
                        }
                        additions.push(EditChange {
                            id: order.lines[li].id,
                            delta,
                        });
                    } else if *quantity < current {
                        let delta = current - quantity;
                        let unfulfilled: u32 = order
                            .fos
                            .iter()
                            .filter(|f| f.status != "CANCELLED" && f.status != "CLOSED")
                            .flat_map(|f| &f.lines)
                            .filter(|l| l.line == li)
                            .map(|l| l.remaining)
                            .sum();
                        if delta > unfulfilled {
                            return Err(refused(format!(
                                "Cannot remove {delta} units of {}: only {unfulfilled} are unfulfilled.",
                                order.lines[li].sku
                            )));
                        }
                        order.lines[li].current_quantity -= delta;
                        let mut left = delta;
                        for f in order
                            .fos
                            .iter_mut()
                            .filter(|f| f.status != "CANCELLED" && f.status != "CLOSED")
                        {
                            for l in f.lines.iter_mut().filter(|l| l.line == li) {
                                let take = left.min(l.remaining);
                                l.remaining -= take;
                                l.total -= take;
                                left -= take;
                                if take > 0 {
                                    f.updated_at = now;
                                }
                            }
                            if f.lines.iter().all(|l| l.remaining == 0) {
                                f.status = "CLOSED".into();
                                f.holds.clear();
                            }
                        }
                        removals.push(EditChange {
                            id: order.lines[li].id,
                            delta,
                        });
                    }
                }
                LineEdit::Add {
                    sku,
                    quantity,
                    requires_shipping,
                } => {
                    if sku.is_empty() || *quantity == 0 {
                        return Err(SandboxError::InvalidSpec(
                            "an added line needs a SKU and a quantity above 0".into(),
                        ));
                    }
                    let id = self.next_id();
                    order.lines.push(Line {
                        id,
                        variant_id: self.next_id(),
                        sku: sku.clone(),
                        name: sku.clone(),
                        quantity: *quantity,
                        current_quantity: *quantity,
                        requires_shipping: requires_shipping.unwrap_or(true),
                        group: None,
                    });
                    let li = order.lines.len() - 1;
                    match order.fos.iter().position(|f| f.status == "OPEN") {
                        Some(fi) => {
                            let line_id = self.next_id();
                            let f = &mut order.fos[fi];
                            f.lines.push(FoLine {
                                id: line_id,
                                line: li,
                                total: *quantity,
                                remaining: *quantity,
                            });
                            f.updated_at = now;
                        }
                        None => {
                            let location = parse_gid(DEFAULT_LOCATION_ID).map_or(1, |(_, id)| id);
                            let fo = self.new_fo(location, li, *quantity, now);
                            order.fos.push(fo);
                        }
                    }
                    added_line_item_ids.push(gid("LineItem", id));
                    additions.push(EditChange {
                        id,
                        delta: *quantity,
                    });
                }
            }
        }
        if additions.is_empty() && removals.is_empty() {
            return Err(SandboxError::InvalidSpec(
                "the edit changes nothing (every quantity is already as asked)".into(),
            ));
        }
        for f in &order.fos {
            self.locations
                .entry(f.location_id)
                .or_insert_with(|| format!("Location {}", f.location_id));
        }
        order.edited = true;
        order.updated_at = now;
        let edit_id = self.next_id();
        let body = OrderEditBody {
            id: edit_id,
            order_id: order.id,
            created_at: now,
            additions,
            removals,
        };
        self.orders[oi] = order;
        self.edit_event(&body);
        self.order_event("orders/updated", oi);
        Ok(EditedOrder {
            edit_id,
            added_line_item_ids,
        })
    }

    /// A new OPEN fulfillment order at `location` holding `quantity` units
    /// of line `line`.
    fn new_fo(
        &mut self,
        location: u64,
        line: usize,
        quantity: u32,
        now: Timestamp,
    ) -> FulfillmentOrder {
        let line_id = self.next_id();
        FulfillmentOrder {
            id: self.next_id(),
            status: "OPEN".into(),
            location_id: location,
            created_at: now,
            updated_at: now,
            lines: vec![FoLine {
                id: line_id,
                line,
                total: quantity,
                remaining: quantity,
            }],
            holds: Vec::new(),
        }
    }

    /// Replaces the order's tags.
    pub fn set_tags(&mut self, name: &str, tags: Vec<String>) -> Result<(), SandboxError> {
        let oi = self.order_index(name)?;
        let o = &mut self.orders[oi];
        o.tags = tags;
        o.updated_at = now_seconds();
        self.order_event("orders/updated", oi);
        Ok(())
    }

    /// Sets `displayFinancialStatus` (e.g. AUTHORIZED → PAID, a capture).
    pub fn set_financial_status(&mut self, name: &str, status: &str) -> Result<(), SandboxError> {
        if !FINANCIAL_STATUSES.contains(&status) {
            return Err(SandboxError::InvalidSpec(format!(
                "{status} is not an OrderDisplayFinancialStatus ({})",
                FINANCIAL_STATUSES.join(", ")
            )));
        }
        let oi = self.order_index(name)?;
        let o = &mut self.orders[oi];
        let was = std::mem::replace(&mut o.financial_status, status.to_string());
        o.updated_at = now_seconds();
        self.order_event("orders/updated", oi);
        if status == "PAID" && was != "PAID" {
            self.order_event("orders/paid", oi);
        }
        Ok(())
    }

    /// Puts a fulfillment order on hold; returns the hold's GID.
    pub fn hold_fo(
        &mut self,
        fo_id: &str,
        reason: &str,
        reason_notes: Option<String>,
    ) -> Result<String, SandboxError> {
        if !HOLD_REASONS.contains(&reason) {
            return Err(SandboxError::InvalidSpec(format!(
                "{reason} is not a FulfillmentHoldReason ({})",
                HOLD_REASONS.join(", ")
            )));
        }
        let (oi, fi) = self.fo_index(fo_id)?;
        let hold_id = self.next_id();
        let now = now_seconds();
        let o = &mut self.orders[oi];
        let f = &mut o.fos[fi];
        if !matches!(f.status.as_str(), "OPEN" | "IN_PROGRESS" | "ON_HOLD") {
            return Err(refused(format!(
                "The fulfillment order is {}: it cannot be put on hold.",
                f.status
            )));
        }
        f.status = "ON_HOLD".into();
        f.holds.push(Hold {
            id: hold_id,
            reason: reason.to_string(),
            reason_notes,
        });
        f.updated_at = now;
        o.updated_at = now;
        self.fo_event("fulfillment_orders/placed_on_hold", oi, fi, Some(hold_id));
        self.order_event("orders/updated", oi);
        Ok(gid("FulfillmentHold", hold_id))
    }

    /// Releases every hold of a fulfillment order.
    pub fn release_fo(&mut self, fo_id: &str) -> Result<(), SandboxError> {
        let (oi, fi) = self.fo_index(fo_id)?;
        let now = now_seconds();
        let o = &mut self.orders[oi];
        let started = o.fulfillments.iter().any(|ff| ff.fos.contains(&fi));
        let f = &mut o.fos[fi];
        if f.status != "ON_HOLD" {
            return Err(refused(format!(
                "The fulfillment order is {}, not on hold.",
                f.status
            )));
        }
        f.holds.clear();
        f.status = if started { "IN_PROGRESS" } else { "OPEN" }.into();
        f.updated_at = now;
        o.updated_at = now;
        self.fo_event("fulfillment_orders/hold_released", oi, fi, None);
        self.order_event("orders/updated", oi);
        Ok(())
    }
}

/// A line of the order by `LineItem` GID, or by a SKU that names one line.
fn find_line(lines: &[Line], wanted: &str) -> Result<usize, SandboxError> {
    if let Some(("LineItem", id)) = parse_gid(wanted) {
        return lines
            .iter()
            .position(|l| l.id == id)
            .ok_or_else(|| SandboxError::NotFound(wanted.to_string()));
    }
    let matching: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].sku == wanted)
        .collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(SandboxError::NotFound(format!("a line with SKU {wanted}"))),
        _ => Err(SandboxError::InvalidSpec(format!(
            "SKU {wanted} names several lines; use a LineItem GID"
        ))),
    }
}
