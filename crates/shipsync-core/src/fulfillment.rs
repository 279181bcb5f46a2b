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
        .map(|fo| {
            fo.line_items
                .iter()
                .map(|li| li.remaining_quantity)
                .collect()
        })
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
            waits.push(format!(
                "fulfillment order {} is {}",
                fo.id,
                fo.status.trim()
            ));
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
        .filter(|fo| {
            fo.line_items
                .iter()
                .any(|li| same_id(&li.line_item_id, line_id))
        })
        .filter(|fo| !usable(fo, location_id))
        .map(|fo| format!("{} ({})", fo.id, fo.status.trim()))
        .collect();
    let mut msg =
        format!("line {line_id}: {want} to fulfil but the store has only {have} left to fulfil");
    if have == 0
        && !fos.iter().any(|fo| {
            fo.line_items
                .iter()
                .any(|li| same_id(&li.line_item_id, line_id))
        })
    {
        msg = format!("line {line_id}: {want} to fulfil but no fulfillment order holds this line");
    } else if !closed.is_empty() {
        msg.push_str(&format!(
            " (other fulfillment orders holding it: {})",
            closed.join(", ")
        ));
    }
    FoProblem::Impossible(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn li(n: u32) -> String {
        format!("gid://shopify/LineItem/{n}")
    }
    fn loc(n: u32) -> String {
        format!("gid://shopify/Location/{n}")
    }

    /// A fulfillment order: id n, status, location, (fo line item id, store line n, remaining).
    fn fo(
        n: u32,
        status: &str,
        location: Option<u32>,
        items: &[(&str, u32, u64)],
    ) -> FulfillmentOrderView {
        FulfillmentOrderView {
            id: format!("gid://shopify/FulfillmentOrder/{n}"),
            status: status.into(),
            location_id: location.map(loc),
            line_items: items
                .iter()
                .map(|(id, line, rem)| FoLineItem {
                    id: id.to_string(),
                    line_item_id: li(*line),
                    remaining_quantity: *rem,
                })
                .collect(),
        }
    }

    /// Expected assignment: (fo n, location, items, store lines by number).
    type A = (u32, Option<u32>, Vec<(&'static str, u64)>, Vec<(u32, u64)>);
    /// (name, needs by store line number, fulfillment orders, location, expected).
    type Case = (
        &'static str,
        Vec<(u32, u64)>,
        Vec<FulfillmentOrderView>,
        Option<u32>,
        X,
    );
    enum X {
        Ok(Vec<A>),
        Waiting(&'static [&'static str]),
        Impossible(&'static [&'static str]),
    }

    #[test]
    fn assign_table() {
        let cases: Vec<Case> = vec![
            (
                "one open FO covers everything",
                vec![(1, 2), (2, 1)],
                vec![fo(1, "OPEN", Some(1), &[("a", 1, 2), ("b", 2, 1)])],
                None,
                X::Ok(vec![(
                    1,
                    Some(1),
                    vec![("a", 2), ("b", 1)],
                    vec![(1, 2), (2, 1)],
                )]),
            ),
            (
                "two FOs at two locations, each line where it is",
                vec![(1, 1), (2, 1)],
                vec![
                    fo(1, "OPEN", Some(1), &[("a", 1, 1)]),
                    fo(2, "IN_PROGRESS", Some(2), &[("b", 2, 1)]),
                ],
                None,
                X::Ok(vec![
                    (1, Some(1), vec![("a", 1)], vec![(1, 1)]),
                    (2, Some(2), vec![("b", 1)], vec![(2, 1)]),
                ]),
            ),
            (
                "a line split over two FOs is taken in FO order",
                vec![(1, 3)],
                vec![
                    fo(1, "open", Some(1), &[("a", 1, 1)]),
                    fo(2, "OPEN", Some(2), &[("b", 1, 5)]),
                ],
                None,
                X::Ok(vec![
                    (1, Some(1), vec![("a", 1)], vec![(1, 1)]),
                    (2, Some(2), vec![("b", 2)], vec![(1, 2)]),
                ]),
            ),
            (
                "location filter uses only the FO at the connection's location",
                vec![(1, 1)],
                vec![
                    fo(1, "OPEN", Some(1), &[("a", 1, 1)]),
                    fo(2, "OPEN", Some(2), &[("b", 1, 1)]),
                ],
                Some(2),
                X::Ok(vec![(2, Some(2), vec![("b", 1)], vec![(1, 1)])]),
            ),
            (
                "line only at another location waits, naming it",
                vec![(1, 1)],
                vec![fo(1, "OPEN", Some(1), &[("a", 1, 1)])],
                Some(2),
                X::Waiting(&["FulfillmentOrder/1", "Location/1", "Location/2"]),
            ),
            (
                "ON_HOLD FO waits, naming the status",
                vec![(1, 1)],
                vec![fo(1, "ON_HOLD", Some(1), &[("a", 1, 1)])],
                None,
                X::Waiting(&["FulfillmentOrder/1 is ON_HOLD"]),
            ),
            (
                "SCHEDULED FO holding the rest waits",
                vec![(1, 2)],
                vec![
                    fo(1, "OPEN", Some(1), &[("a", 1, 1)]),
                    fo(2, "SCHEDULED", Some(1), &[("b", 1, 1)]),
                ],
                None,
                X::Waiting(&["is SCHEDULED", "2 to fulfil, 1 available"]),
            ),
            (
                "ON_HOLD FO is not needed when the open one suffices",
                vec![(1, 1)],
                vec![
                    fo(1, "ON_HOLD", Some(1), &[("a", 1, 1)]),
                    fo(2, "OPEN", Some(1), &[("b", 1, 1)]),
                ],
                None,
                X::Ok(vec![(2, Some(1), vec![("b", 1)], vec![(1, 1)])]),
            ),
            (
                "shortage is impossible",
                vec![(1, 3)],
                vec![fo(1, "OPEN", Some(1), &[("a", 1, 2)])],
                None,
                X::Impossible(&["3 to fulfil", "only 2 left"]),
            ),
            (
                "closed FO does not make it wait",
                vec![(1, 1)],
                vec![fo(1, "CLOSED", Some(1), &[("a", 1, 0)])],
                None,
                X::Impossible(&["only 0 left", "FulfillmentOrder/1 (CLOSED)"]),
            ),
            (
                "line on no FO at all",
                vec![(9, 1)],
                vec![fo(1, "OPEN", Some(1), &[("a", 1, 1)])],
                None,
                X::Impossible(&["LineItem/9", "no fulfillment order holds this line"]),
            ),
            (
                "needs for the same line share what is left",
                vec![(1, 1), (1, 1)],
                vec![fo(1, "OPEN", Some(1), &[("a", 1, 1)])],
                None,
                X::Impossible(&["only 0 left"]),
            ),
            (
                "zero needs assign nothing",
                vec![(1, 0)],
                vec![],
                None,
                X::Ok(vec![]),
            ),
        ];
        for (name, needs, fos, location, want) in cases {
            let needs: Vec<(String, u64)> = needs.into_iter().map(|(l, q)| (li(l), q)).collect();
            let location = location.map(loc);
            let got = assign(&needs, &fos, location.as_deref());
            match (want, got) {
                (X::Ok(want), Ok(got)) => {
                    let want: Vec<FoAssignment> = want
                        .into_iter()
                        .map(|(n, l, items, lines)| FoAssignment {
                            fulfillment_order_id: format!("gid://shopify/FulfillmentOrder/{n}"),
                            location_id: l.map(loc),
                            items: items.into_iter().map(|(i, q)| (i.to_string(), q)).collect(),
                            store_lines: lines.into_iter().map(|(l, q)| (li(l), q)).collect(),
                        })
                        .collect();
                    assert_eq!(got, want, "{name}");
                }
                (X::Waiting(parts), Err(FoProblem::Waiting(m)))
                | (X::Impossible(parts), Err(FoProblem::Impossible(m))) => {
                    for p in parts {
                        assert!(m.contains(p), "{name}: {m:?} lacks {p:?}");
                    }
                }
                (_, got) => panic!("{name}: unexpected {got:?}"),
            }
        }
    }

    /// The types carry serde derives (core has no serde_json to round-trip).
    #[test]
    fn serde_derives() {
        fn has_serde<T: Serialize + serde::de::DeserializeOwned>() {}
        has_serde::<FulfillmentOrderView>();
        has_serde::<FoLineItem>();
        has_serde::<FoAssignment>();
        has_serde::<FoProblem>();
    }
}
