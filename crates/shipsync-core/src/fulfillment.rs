//! Picking the store's fulfillment orders for quantities to fulfil. Pure.
//!
//! Rules (`docs/kits-and-partials.md`, `docs/shopify.md`):
//!
//! - Only fulfillment orders in status `OPEN` or `IN_PROGRESS` are used (the
//!   status compares case-insensitively), and, when a `location_id` is given,
//!   only those assigned to it (a fulfillment order without a known location
//!   is then not used).
//! - Each need (store line, units) takes from the line items holding that
//!   store line (`line_item_id`, compared exactly or by the trailing `/`
//!   segment), in fulfillment-order order then line-item order, up to their
//!   `remaining_quantity`. Needs for the same line share what is left.
//! - One [`FoAssignment`] per fulfillment order touched, in fulfillment-order
//!   order; its items and store lines are summed and listed in first-use order.
//! - If a need cannot be covered: when some other fulfillment order holds
//!   that line with units remaining but is in another non-final status
//!   (`ON_HOLD`, `SCHEDULED`, …) or at another location → [`FoProblem::Waiting`]
//!   (the store may release it; retry later, then error naming the reason).
//!   Final statuses (`CLOSED`, `CANCELLED`, `INCOMPLETE`) never cause waiting.
//!   Otherwise → [`FoProblem::Impossible`]. Nothing is assigned partially.

use serde::{Deserialize, Serialize};

/// A store fulfillment order as far as fulfilling it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentOrderView {
    pub id: String,
    /// `OPEN`, `IN_PROGRESS`, `ON_HOLD`, `SCHEDULED`, `CLOSED`, …
    pub status: String,
    /// Assigned location id (`gid://shopify/Location/…`).
    pub location_id: Option<String>,
    pub line_items: Vec<FoLineItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoLineItem {
    /// Fulfillment order line item id.
    pub id: String,
    /// The order's line item (store line) id.
    pub line_item_id: String,
    pub remaining_quantity: u64,
}

/// What to fulfil on one fulfillment order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoAssignment {
    pub fulfillment_order_id: String,
    pub location_id: Option<String>,
    /// (fulfillment order line item id, units).
    pub items: Vec<(String, u64)>,
    /// (store line id, units): the same units, by store line.
    pub store_lines: Vec<(String, u64)>,
}

/// Why the needs cannot be assigned now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FoProblem {
    /// A fulfillment order holding the line is not usable yet (status or
    /// location); retry later, then error with this reason.
    Waiting(String),
    /// More to fulfil than the store has left on usable fulfillment orders.
    Impossible(String),
}

impl std::fmt::Display for FoProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FoProblem::Waiting(m) | FoProblem::Impossible(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FoProblem {}

const USABLE: [&str; 2] = ["OPEN", "IN_PROGRESS"];
const FINAL: [&str; 3] = ["CLOSED", "CANCELLED", "INCOMPLETE"];

fn status_is(status: &str, set: &[&str]) -> bool {
    let s = status.trim();
    set.iter().any(|x| x.eq_ignore_ascii_case(s))
}

fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if a == b {
        return true;
    }
    let tail = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    !a.is_empty() && !b.is_empty() && tail(a) == tail(b) && (a.contains('/') != b.contains('/'))
}

/// Whether a fulfillment order may be fulfilled for this connection.
pub fn usable(fo: &FulfillmentOrderView, location_id: Option<&str>) -> bool {
    status_is(&fo.status, &USABLE) && at_location(fo, location_id)
}

fn at_location(fo: &FulfillmentOrderView, location_id: Option<&str>) -> bool {
    match location_id {
        None => true,
        Some(want) => fo.location_id.as_deref().is_some_and(|l| same_id(l, want)),
    }
}

/// Assigns store-line quantities to fulfillment order line items.
pub fn assign(
    needs: &[(String, u64)],
    fos: &[FulfillmentOrderView],
    location_id: Option<&str>,
) -> Result<Vec<FoAssignment>, FoProblem> {
    // Remaining per (fo index, line item index), consumed as we go.
    let mut left: Vec<Vec<u64>> = fos
        .iter()
        .map(|fo| fo.line_items.iter().map(|li| li.remaining_quantity).collect())
        .collect();
    let mut out: Vec<Option<FoAssignment>> = vec![None; fos.len()];

    for (line_id, want) in needs {
        let mut need = *want;
        if need == 0 {
            continue;
        }
        for (fi, fo) in fos.iter().enumerate() {
            if need == 0 {
                break;
            }
            if !usable(fo, location_id) {
                continue;
            }
            for (ii, item) in fo.line_items.iter().enumerate() {
                if need == 0 {
                    break;
                }
                if !same_id(&item.line_item_id, line_id) {
                    continue;
                }
                let t = left[fi][ii].min(need);
                if t == 0 {
                    continue;
                }
                left[fi][ii] -= t;
                need -= t;
                let a = out[fi].get_or_insert_with(|| FoAssignment {
                    fulfillment_order_id: fo.id.clone(),
                    location_id: fo.location_id.clone(),
                    items: Vec::new(),
                    store_lines: Vec::new(),
                });
                add(&mut a.items, &item.id, t);
                add(&mut a.store_lines, line_id, t);
            }
        }
        if need > 0 {
            return Err(shortfall(line_id, *want, need, fos, location_id));
        }
    }
    Ok(out.into_iter().flatten().collect())
}

fn add(list: &mut Vec<(String, u64)>, key: &str, n: u64) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(e) => e.1 += n,
        None => list.push((key.to_string(), n)),
    }
}

fn shortfall(
    line_id: &str,
    want: u64,
    missing: u64,
    fos: &[FulfillmentOrderView],
    location_id: Option<&str>,
) -> FoProblem {
    let holds = |fo: &FulfillmentOrderView| {
        fo.line_items
            .iter()
            .any(|li| same_id(&li.line_item_id, line_id) && li.remaining_quantity > 0)
    };
    let mut waits = Vec::new();
    for fo in fos.iter().filter(|fo| holds(fo)) {
        if usable(fo, location_id) || status_is(&fo.status, &FINAL) {
            continue;
        }
        if !status_is(&fo.status, &USABLE) {
            waits.push(format!("fulfillment order {} is {}", fo.id, fo.status.trim()));
        } else {
            waits.push(format!(
                "fulfillment order {} is at location {}, not {}",
                fo.id,
                fo.location_id.as_deref().unwrap_or("(unknown)"),
                location_id.unwrap_or("(any)")
            ));
        }
    }
    let have = want - missing;
    if !waits.is_empty() {
        return FoProblem::Waiting(format!(
            "line {line_id}: {want} to fulfil, {have} available now; {}",
            waits.join("; ")
        ));
    }
    let closed: Vec<String> = fos
        .iter()
        .filter(|fo| fo.line_items.iter().any(|li| same_id(&li.line_item_id, line_id)))
        .filter(|fo| !usable(fo, location_id))
        .map(|fo| format!("{} ({})", fo.id, fo.status.trim()))
        .collect();
    let mut msg = format!(
        "line {line_id}: {want} to fulfil but the store has only {have} left to fulfil"
    );
    if have == 0 && !fos.iter().any(|fo| fo.line_items.iter().any(|li| same_id(&li.line_item_id, line_id))) {
        msg = format!("line {line_id}: {want} to fulfil but no fulfillment order holds this line");
    } else if !closed.is_empty() {
        msg.push_str(&format!(
            " (other fulfillment orders holding it: {})",
            closed.join(", ")
        ));
    }
    FoProblem::Impossible(msg)
}
