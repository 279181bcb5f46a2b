//! What Deposco lets a client do with a sales order once it exists: the
//! `orderStatus` words, which status changes, cancellations and updates each
//! status allows, and how lines follow.
//!
//! The rule book is `shared/docs/orders-lifecycle.md` § "Deposco sales
//! orders" (from Deposco's REST API 2.0 as published in its SDKs). Every
//! rule of this sandbox about the order lifecycle lives here; lines marked
//! **assumption** are not in the rule book and are the sandbox's reading of
//! it, so that shipsync's client has something definite to agree with.

use std::collections::HashSet;

use serde_json::Value;

use crate::orders::{SalesOrderLine, SalesOrderRecord, ValidOrder, order_lines_json};

/// Every `orderStatus` word, in the order an order moves through them.
pub(crate) const STATUSES: &[&str] = &[
    "Draft",
    "New",
    "Hold",
    "Ready for Fulfillment",
    "Wave Built",
    "Back Ordered",
    "Partially Released",
    "Released",
    "Picking",
    "Pick Complete",
    "Partially Staged",
    "Staged",
    "Partially Loaded",
    "Loaded",
    "Partially Shipped",
    "Ship Complete",
    CANCELED,
];

/// Deposco spells it with one "l".
pub(crate) const CANCELED: &str = "Canceled";
const PARTIALLY_RELEASED: &str = "Partially Released";
const DRAFT: &str = "Draft";

/// Statuses in which the order can be changed through create-or-update
/// (address, ship via, lines added, quantities raised).
const EDITABLE: &[&str] = &[
    DRAFT,
    "New",
    "Hold",
    "Ready for Fulfillment",
    "Wave Built",
    "Back Ordered",
];

/// Statuses in which whole orders, lines and parts of lines can be cancelled
/// (Draft: the whole order only; Partially Released: back-ordered units only).
const CANCELLABLE: &[&str] = &[
    "New",
    "Hold",
    "Ready for Fulfillment",
    "Wave Built",
    "Back Ordered",
];

/// `POST …/status?value=`: the values the call takes.
const SETTABLE: &[&str] = &["New", "Hold", CANCELED];

/// The known status word `raw` names, as Deposco spells it.
pub(crate) fn status_word(raw: &str) -> Option<&'static str> {
    STATUSES.iter().copied().find(|s| *s == raw.trim())
}

/// The status a new order starts in: `New` unless the body asks for `Hold`.
/// Deposco: "New orders should be created with a status of either New or Hold".
pub(crate) fn initial_status(requested: Option<&str>) -> Result<&'static str, String> {
    match requested.map(str::trim) {
        None | Some("") | Some("New") => Ok("New"),
        Some("Hold") => Ok("Hold"),
        Some(other) => Err(format!(
            "orderStatus {other} is not allowed for a new sales order; create it as New or Hold"
        )),
    }
}

/// `POST /orders/salesOrders/{id}/status?value=`: Draft → New/Hold/Canceled;
/// New → Hold/Canceled; Hold → New/Canceled; Ready for Fulfillment, Wave
/// Built, Back Ordered → New/Hold/Canceled; nothing moves back from Released
/// or later.
pub(crate) fn change_status(
    order: &mut SalesOrderRecord,
    value: Option<&str>,
) -> Result<(), String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Err("value is required: New, Hold or Canceled".to_owned());
    };
    let Some(to) = SETTABLE.iter().copied().find(|s| *s == value) else {
        return Err(format!(
            "Invalid status {value}: the status of a sales order can be updated to New, Hold or Canceled"
        ));
    };
    let from = order.status.as_str();
    let allowed = match from {
        DRAFT | "Ready for Fulfillment" | "Wave Built" | "Back Ordered" => true,
        "New" => to != "New",
        "Hold" => to != "Hold",
        _ => false,
    };
    if !allowed {
        return Err(format!(
            "Sales order {} cannot be updated from {from} to {to}",
            order.number
        ));
    }
    if to == CANCELED {
        cancel_everything(order);
    }
    order.status = to.to_owned();
    refresh_lines(order);
    Ok(())
}

/// What `POST …/cancellations` asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Cancellation {
    /// Empty body, `{}`, or no lines (**assumption**: this cancels the whole order).
    WholeOrder,
    /// `(order line id, units)`; `None` (**assumption**): the line in full.
    Lines(Vec<(u64, Option<f64>)>),
}

/// Reads a cancellation body: `{"orderLines":[{"orderLine":{"id":…},"canceledPackQuantity":n}]}`.
pub(crate) fn parse_cancellation(body: &[u8]) -> Result<Cancellation, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Cancellation::WholeOrder);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|_| "Request body is not valid JSON".to_owned())?;
    let Value::Object(obj) = value else {
        return Err("Request body must be an OrderCancellation object".to_owned());
    };
    let rows = match obj.get("orderLines") {
        None | Some(Value::Null) => return Ok(Cancellation::WholeOrder),
        Some(Value::Array(rows)) if rows.is_empty() => return Ok(Cancellation::WholeOrder),
        Some(Value::Array(rows)) => rows,
        Some(_) => return Err("orderLines must be a list".to_owned()),
    };
    let mut lines = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let id = match row.pointer("/orderLine/id") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("orderLines[{i}].orderLine.id is required"))?;
        let quantity = match row.get("canceledPackQuantity") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_f64()),
            Some(Value::String(s)) => Some(s.trim().parse::<f64>().ok()),
            Some(_) => Some(None),
        };
        let quantity = match quantity {
            None => None,
            // The DTO's field is an integer.
            Some(Some(q)) if q.is_finite() && q >= 1.0 && q.fract() == 0.0 => Some(q),
            Some(_) => {
                return Err(format!(
                    "orderLines[{i}].canceledPackQuantity must be a whole number greater than 0"
                ));
            }
        };
        lines.push((id, quantity));
    }
    Ok(Cancellation::Lines(lines))
}

/// Applies a cancellation, all or nothing. Allowed while New, Hold, Ready for
/// Fulfillment, Wave Built or Back Ordered; Draft: the whole order only;
/// Partially Released: only a line's back-ordered units. Cancelling every
/// open unit of an order closes it (`Canceled`).
pub(crate) fn cancel(order: &mut SalesOrderRecord, request: Cancellation) -> Result<(), String> {
    let status = order.status.clone();
    let number = order.number.clone();
    let cancellable = CANCELLABLE.contains(&status.as_str());
    let too_late = || {
        if status == CANCELED {
            format!("Sales order {number} is already Canceled")
        } else {
            format!(
                "Sales order {number} is {status}: it can no longer be canceled (allowed while New, Hold, Ready for Fulfillment, Wave Built or Back Ordered)"
            )
        }
    };
    match request {
        Cancellation::WholeOrder => {
            if status == PARTIALLY_RELEASED {
                return Err(format!(
                    "Sales order {number} is Partially Released: only back-ordered quantities of its order lines can be canceled"
                ));
            }
            if !(cancellable || status == DRAFT) {
                return Err(too_late());
            }
            cancel_everything(order);
        }
        Cancellation::Lines(requested) => {
            if status == DRAFT {
                return Err(format!(
                    "Sales order {number} is Draft: only the whole order can be canceled"
                ));
            }
            let partially_released = status == PARTIALLY_RELEASED;
            if !(cancellable || partially_released) {
                return Err(too_late());
            }
            let mut seen = HashSet::new();
            let mut plan = Vec::with_capacity(requested.len());
            for (id, quantity) in requested {
                if !seen.insert(id) {
                    return Err(format!("Order line {id} is named twice"));
                }
                let Some(index) = order.lines.iter().position(|l| l.id == id) else {
                    return Err(format!("Order line {id} is not on sales order {number}"));
                };
                let line = &order.lines[index];
                let open = line.open();
                if open <= 0.0 {
                    return Err(format!(
                        "Order line {} has no open quantity left to cancel",
                        line.line_number
                    ));
                }
                let units = quantity.unwrap_or(open);
                let limit = if partially_released {
                    line.back_ordered.min(open)
                } else {
                    open
                };
                if units > limit {
                    let what = if partially_released {
                        "back-ordered"
                    } else {
                        "open"
                    };
                    return Err(format!(
                        "Cannot cancel {} of order line {}: only {} {what}",
                        fmt_qty(units),
                        line.line_number,
                        fmt_qty(limit)
                    ));
                }
                plan.push((index, units));
            }
            for (index, units) in plan {
                let line = &mut order.lines[index];
                line.canceled_quantity += units;
                line.back_ordered = (line.back_ordered - units).max(0.0);
            }
            close_if_done(order);
        }
    }
    refresh_lines(order);
    Ok(())
}

fn cancel_everything(order: &mut SalesOrderRecord) {
    for line in &mut order.lines {
        line.canceled_quantity += line.open().max(0.0);
        line.back_ordered = 0.0;
    }
    close_if_done(order);
}

/// Create-or-update by `number` on an existing order: while Draft, New, Hold,
/// Ready for Fulfillment, Wave Built or Back Ordered it changes the header,
/// adds lines and raises quantities (raised lines must be New or Back
/// Ordered). Lowering a quantity is a cancellation and is refused.
/// Lines are matched by `lineNumber`. **Assumptions**: the call does not
/// change `orderStatus`; a line left out of the body stays as it is (removing
/// units is a cancellation); an existing line cannot change its item;
/// `orderPackQuantity` is compared as stored (cancellations are counted in
/// `canceledPackQuantity`, they never lower it).
pub(crate) fn update(
    order: &mut SalesOrderRecord,
    valid: ValidOrder,
    max_lines: usize,
) -> Result<(), String> {
    let number = order.number.clone();
    if !EDITABLE.contains(&order.status.as_str()) {
        return Err(format!(
            "Sales order {number} is {}: it can no longer be updated (allowed while Draft, New, Hold, Ready for Fulfillment, Wave Built or Back Ordered)",
            order.status
        ));
    }
    let mut lines = order.lines.clone();
    let mut line_json: Vec<Value> = order_lines_json(order);
    let incoming_json = match valid.body.get("orderLines") {
        Some(Value::Array(rows)) => rows.clone(),
        _ => Vec::new(),
    };
    for (incoming, json) in valid.lines.into_iter().zip(incoming_json) {
        match lines
            .iter()
            .position(|l| l.line_number == incoming.line_number)
        {
            Some(i) => {
                let existing = &mut lines[i];
                if existing.sku != incoming.sku {
                    return Err(format!(
                        "Order line {} is item {}; the item of an order line cannot be changed (cancel the line and add a new one)",
                        existing.line_number, existing.sku
                    ));
                }
                if incoming.quantity < existing.quantity {
                    return Err(format!(
                        "Lowering orderPackQuantity of order line {} from {} to {} is a cancellation: use POST /orders/salesOrders/{}/cancellations",
                        existing.line_number,
                        fmt_qty(existing.quantity),
                        fmt_qty(incoming.quantity),
                        order.id
                    ));
                }
                if incoming.quantity > existing.quantity {
                    if !matches!(existing.status.as_str(), "New" | "Back Ordered") {
                        return Err(format!(
                            "Order line {} is {}: only New or Back Ordered order lines can be increased",
                            existing.line_number, existing.status
                        ));
                    }
                    existing.quantity = incoming.quantity;
                }
                if incoming.customer_line_number.is_some() {
                    existing.customer_line_number = incoming.customer_line_number;
                }
                if let Some(slot) = line_json.iter_mut().find(|j| {
                    j.get("lineNumber").and_then(Value::as_str) == Some(&incoming.line_number)
                }) {
                    *slot = json;
                }
            }
            None => {
                lines.push(incoming);
                line_json.push(json);
            }
        }
    }
    if lines.len() > max_lines {
        return Err(format!(
            "An order may have at most {max_lines} order lines; got {}",
            lines.len()
        ));
    }
    let mut body = valid.body;
    if let Some(obj) = body.as_object_mut() {
        // The status is not changed by an update (assumption above).
        obj.remove("orderStatus");
        obj.insert("orderLines".to_owned(), Value::Array(line_json));
    }
    order.customer_order_number = valid.customer_order_number;
    order.lines = lines;
    order.body = body;
    refresh_lines(order);
    Ok(())
}

/// Shipped units per line changed (the warehouse shipped something): the
/// order becomes Partially Shipped, or Ship Complete once every line that is
/// not cancelled has shipped. A cancelled order stays cancelled.
pub(crate) fn shipped_changed(order: &mut SalesOrderRecord) {
    if order.status != CANCELED && order.lines.iter().any(|l| l.shipped_quantity > 0.0) {
        order.status = if order.lines.iter().all(|l| l.open() <= 0.0) {
            "Ship Complete"
        } else {
            "Partially Shipped"
        }
        .to_owned();
    }
    refresh_lines(order);
}

/// An order with nothing left open is closed: Canceled when nothing shipped.
fn close_if_done(order: &mut SalesOrderRecord) {
    if order.lines.iter().all(|l| l.open() <= 0.0) {
        let shipped = order.lines.iter().any(|l| l.shipped_quantity > 0.0);
        order.status = if shipped { "Ship Complete" } else { CANCELED }.to_owned();
    }
}

/// Recomputes every `orderLineStatus` (read-only in Deposco) from the order's
/// status and the line's quantities. The mapping of order statuses to line
/// statuses is the sandbox's approximation: the rule book lists the words only.
pub(crate) fn refresh_lines(order: &mut SalesOrderRecord) {
    let status = order.status.clone();
    for line in &mut order.lines {
        line.status = line_status(&status, line).to_owned();
    }
}

fn line_status(order_status: &str, line: &SalesOrderLine) -> &'static str {
    if line.open() <= 0.0 {
        return if line.shipped_quantity > 0.0 {
            "Complete"
        } else {
            CANCELED
        };
    }
    match order_status {
        CANCELED => CANCELED,
        "Back Ordered" => "Back Ordered",
        PARTIALLY_RELEASED if line.back_ordered >= line.open() => "Back Ordered",
        PARTIALLY_RELEASED if line.back_ordered > 0.0 => "Partial Released",
        "Picking" => "Picking",
        s if EDITABLE.contains(&s) => {
            if line.back_ordered > 0.0 {
                "Back Ordered"
            } else {
                "New"
            }
        }
        _ => "Released",
    }
}

/// `2` rather than `2.0` in messages.
pub(crate) fn fmt_qty(q: f64) -> String {
    if q.fract() == 0.0 && q.abs() < 1e15 {
        format!("{q:.0}")
    } else {
        q.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_statuses() {
        assert_eq!(initial_status(None), Ok("New"));
        assert_eq!(initial_status(Some("Hold")), Ok("Hold"));
        assert!(initial_status(Some("Released")).is_err());
        assert!(initial_status(Some("Draft")).is_err());
        assert!(initial_status(Some("new")).is_err());
    }

    #[test]
    fn cancellation_bodies() {
        assert_eq!(parse_cancellation(b""), Ok(Cancellation::WholeOrder));
        assert_eq!(parse_cancellation(b"{}"), Ok(Cancellation::WholeOrder));
        assert_eq!(
            parse_cancellation(br#"{"orderLines":[]}"#),
            Ok(Cancellation::WholeOrder)
        );
        assert_eq!(
            parse_cancellation(
                br#"{"orderLines":[{"orderLine":{"id":7},"canceledPackQuantity":2},{"orderLine":{"id":"8"}}]}"#
            ),
            Ok(Cancellation::Lines(vec![(7, Some(2.0)), (8, None)]))
        );
        assert!(parse_cancellation(br#"{"orderLines":[{"orderLine":{}}]}"#).is_err());
        assert!(
            parse_cancellation(
                br#"{"orderLines":[{"orderLine":{"id":7},"canceledPackQuantity":1.5}]}"#
            )
            .is_err()
        );
        assert!(
            parse_cancellation(
                br#"{"orderLines":[{"orderLine":{"id":7},"canceledPackQuantity":0}]}"#
            )
            .is_err()
        );
        assert!(parse_cancellation(b"[1]").is_err());
    }

    #[test]
    fn every_word_is_known_once() {
        let set: HashSet<&str> = STATUSES.iter().copied().collect();
        assert_eq!(set.len(), STATUSES.len());
        for s in EDITABLE.iter().chain(CANCELLABLE).chain(SETTABLE) {
            assert!(set.contains(s), "{s}");
        }
        assert_eq!(status_word(" Wave Built "), Some("Wave Built"));
        assert_eq!(status_word("Cancelled"), None);
    }
}
