//! What to do with a store order when shipsync learns it changed (an order
//! webhook, a pull, a hold period ending): pure rules, no I/O.
//!
//! The store's latest view of the order ([`StoreFacts`], read again after
//! every webhook: deliveries only say *which* order changed), the
//! connection's [`OrderRules`] and what shipsync already did with it
//! ([`Known`]) give a [`Decision`] and the plan of every line
//! ([`LinePlan`]: how many units the warehouse should get, or why none).
//!
//! Before an order is released to the warehouse it is simply planned again
//! from the store's latest view, so a cancellation or an edit during a hold
//! period costs nothing in the warehouse. After release, a store change
//! becomes a warehouse change ([`Decision::CancelInWarehouse`],
//! [`Decision::Amend`]) that the engine applies while Deposco allows it.

use std::collections::BTreeMap;

use crate::order_rules::OrderRules;
use crate::states::OrderStatus;

/// A store line as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLine {
    pub id: String,
    pub sku: Option<String>,
    /// `currentQuantity`: after edits, removals and refunds.
    pub current_quantity: u64,
    pub requires_shipping: bool,
    /// `unfulfilledQuantity`, when the store gave it.
    pub unfulfilled: Option<u64>,
}

/// A fulfillment order: where (and whether) its lines are to be fulfilled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFulfillmentOrder {
    /// OPEN, IN_PROGRESS, ON_HOLD, SCHEDULED, INCOMPLETE, CLOSED, CANCELLED.
    pub status: String,
    pub location_id: Option<String>,
    /// Its fulfillment holds' reasons (with notes), when on hold.
    pub holds: Vec<String>,
    /// `(line item id, remaining quantity)`.
    pub lines: Vec<(String, u64)>,
}

/// The store's view of an order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreFacts {
    pub cancelled: bool,
    pub cancel_reason: Option<String>,
    /// `displayFinancialStatus`.
    pub financial_status: Option<String>,
    /// `displayFulfillmentStatus`.
    pub fulfillment_status: Option<String>,
    pub tags: Vec<String>,
    pub lines: Vec<StoreLine>,
    /// Empty when the store gave none (an order read before shipsync read
    /// fulfillment orders): lines then count by their own quantities.
    pub fulfillment_orders: Vec<StoreFulfillmentOrder>,
}

/// Why a line sends nothing to the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Gift cards, tips, digital goods.
    DoesNotRequireShipping,
    /// Assigned to a location that is not the connection's.
    OtherLocation,
    /// Its fulfillment order is on hold in Shopify.
    FulfillmentHold,
    /// Removed by an edit (current quantity 0).
    Removed,
    /// Nothing left to fulfill (fulfilled elsewhere, or by another app).
    Fulfilled,
}

impl Skip {
    pub const ALL: [Skip; 5] = [
        Skip::DoesNotRequireShipping,
        Skip::OtherLocation,
        Skip::FulfillmentHold,
        Skip::Removed,
        Skip::Fulfilled,
    ];

    /// The word shown in the API (`lines[].skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::DoesNotRequireShipping => "does_not_require_shipping",
            Skip::OtherLocation => "other_location",
            Skip::FulfillmentHold => "fulfillment_hold",
            Skip::Removed => "removed",
            Skip::Fulfilled => "fulfilled",
        }
    }

    pub fn parse(s: &str) -> Option<Skip> {
        Skip::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One store line's plan: units for the warehouse, or why none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePlan {
    pub id: String,
    pub quantity: u64,
    pub skipped: Option<Skip>,
}

/// What shipsync did with one line so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLine {
    pub id: String,
    /// Units the warehouse has for it (0: not sent).
    pub sent: u64,
    /// The store's current quantity when shipsync last applied it.
    pub store_quantity: u64,
    /// Units the warehouse reported shipped.
    pub shipped: u64,
}

/// What shipsync already did with an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub status: OrderStatus,
    /// Deposco has it.
    pub sent: bool,
    pub lines: Vec<KnownLine>,
}

/// A line's units at the warehouse before and after a store edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    pub line_id: String,
    pub sku: Option<String>,
    pub before: u64,
    pub after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new order that is not to be recorded: why.
    Ignore(String),
    /// Wait: until a time (the hold period, microseconds) and/or for a
    /// store change (a hold tag, a Shopify hold, a payment).
    Hold { until: Option<i64>, reason: String },
    /// Send it to the warehouse now.
    Release,
    /// Cancelled in the store before it was sent: never send it.
    Cancel { reason: String },
    /// Cancelled in the store after it was sent: cancel it in the
    /// warehouse while the warehouse allows it.
    CancelInWarehouse { reason: String },
    /// Edited in the store after it was sent: change these lines in the
    /// warehouse while it allows it.
    Amend(Vec<LineChange>),
    /// Every line fulfilled or cancelled in the store.
    Close,
    /// Nothing to do.
    Keep,
}

/// Fulfillment order statuses whose remaining units are to be fulfilled now.
const WORKING: [&str; 2] = ["OPEN", "IN_PROGRESS"];

/// Every line's plan under `rules`.
pub fn plan_lines(facts: &StoreFacts, rules: &OrderRules) -> Vec<LinePlan> {
    facts
        .lines
        .iter()
        .map(|l| {
            let (quantity, skipped) = plan_line(facts, rules, l);
            LinePlan {
                id: l.id.clone(),
                quantity,
                skipped,
            }
        })
        .collect()
}

fn plan_line(facts: &StoreFacts, rules: &OrderRules, l: &StoreLine) -> (u64, Option<Skip>) {
    if !l.requires_shipping {
        return (0, Some(Skip::DoesNotRequireShipping));
    }
    if l.current_quantity == 0 {
        return (0, Some(Skip::Removed));
    }
    let (mut here, mut held, mut elsewhere, mut listed) = (0u64, 0u64, 0u64, false);
    for fo in &facts.fulfillment_orders {
        for (id, remaining) in &fo.lines {
            if *id != l.id {
                continue;
            }
            listed = true;
            let ours = rules.covers_location(fo.location_id.as_deref());
            if WORKING.contains(&fo.status.as_str()) {
                if ours {
                    here += remaining;
                } else {
                    elsewhere += remaining;
                }
            } else if fo.status == "ON_HOLD" && ours {
                held += remaining;
            }
        }
    }
    let quantity = if listed {
        here
    } else {
        l.unfulfilled.unwrap_or(l.current_quantity)
    }
    .min(l.current_quantity);
    if quantity > 0 {
        return (quantity, None);
    }
    let why = if held > 0 {
        Skip::FulfillmentHold
    } else if elsewhere > 0 {
        Skip::OtherLocation
    } else {
        Skip::Fulfilled
    };
    (0, Some(why))
}

/// Whether some units of the order were fulfilled already.
fn partly_fulfilled(facts: &StoreFacts) -> bool {
    facts
        .fulfillment_status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("PARTIALLY_FULFILLED"))
        || facts
            .lines
            .iter()
            .any(|l| l.requires_shipping && l.unfulfilled.is_some_and(|u| u < l.current_quantity))
}

/// Whether every line that ships is fulfilled (or removed) in the store.
fn all_fulfilled(facts: &StoreFacts) -> bool {
    if facts
        .fulfillment_status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("FULFILLED"))
    {
        return true;
    }
    let shipping: Vec<&StoreLine> = facts.lines.iter().filter(|l| l.requires_shipping).collect();
    !shipping.is_empty()
        && shipping.iter().any(|l| l.current_quantity > 0)
        && shipping
            .iter()
            .all(|l| l.current_quantity == 0 || l.unfulfilled == Some(0))
}

fn cancel_reason(facts: &StoreFacts) -> String {
    match facts.cancel_reason.as_deref() {
        Some(r) => format!(
            "cancelled in the store (reason: {})",
            r.to_ascii_lowercase()
        ),
        None => "cancelled in the store".to_string(),
    }
}

/// The decision on an order and the plan of its lines. `first_seen_at`
/// and `now` are microseconds (the hold period counts from the first time
/// shipsync saw the order).
pub fn decide(
    facts: &StoreFacts,
    rules: &OrderRules,
    known: Option<&Known>,
    first_seen_at: i64,
    now: i64,
) -> (Decision, Vec<LinePlan>) {
    let plan = plan_lines(facts, rules);
    let decision = match known {
        Some(k) if k.sent => after_release(facts, k, &plan),
        _ => before_release(facts, rules, known, &plan, first_seen_at, now),
    };
    (decision, plan)
}

fn before_release(
    facts: &StoreFacts,
    rules: &OrderRules,
    known: Option<&Known>,
    plan: &[LinePlan],
    first_seen_at: i64,
    now: i64,
) -> Decision {
    let status = known.map(|k| k.status);
    if matches!(
        status,
        Some(OrderStatus::Cancelled | OrderStatus::Closed | OrderStatus::Archived)
    ) {
        return Decision::Keep;
    }
    if matches!(
        status,
        Some(
            OrderStatus::Open
                | OrderStatus::PartiallyShipped
                | OrderStatus::Shipped
                | OrderStatus::NeedsAttention
        )
    ) {
        // Known from its shipments, but not sent by shipsync: the order
        // reached the warehouse another way; sending it could make a second.
        return Decision::Keep;
    }
    // Not imported, or no longer: a new order is not recorded, a known one
    // waits (its record and activity stay visible).
    let refuse = |why: String| match known {
        None => Decision::Ignore(why),
        Some(_) => Decision::Hold {
            until: None,
            reason: why,
        },
    };
    if facts.cancelled {
        return match known {
            None => Decision::Ignore(cancel_reason(facts)),
            Some(_) => Decision::Cancel {
                reason: cancel_reason(facts),
            },
        };
    }
    if status == Some(OrderStatus::Error) {
        // Waits for a person (reprocess); the store's data is kept fresh.
        return Decision::Keep;
    }
    if let Some(tag) = rules.exclude_tag(&facts.tags) {
        return refuse(format!(
            "excluded by the tag {tag:?} (order_rules.exclude_tags)"
        ));
    }
    if !rules.imports_financial_status(facts.financial_status.as_deref()) {
        return refuse(format!(
            "financial status {} is not imported (order_rules.financial_statuses: {})",
            facts.financial_status.as_deref().unwrap_or("unknown"),
            rules.financial_statuses.join(", ")
        ));
    }
    if !rules.include_partially_fulfilled && partly_fulfilled(facts) {
        return refuse(
            "partly fulfilled already (order_rules.include_partially_fulfilled is off)".into(),
        );
    }
    if plan.iter().all(|l| l.quantity == 0) {
        if plan
            .iter()
            .any(|l| l.skipped == Some(Skip::FulfillmentHold))
        {
            let holds: Vec<&str> = facts
                .fulfillment_orders
                .iter()
                .filter(|fo| fo.status == "ON_HOLD")
                .flat_map(|fo| fo.holds.iter().map(String::as_str))
                .collect();
            return Decision::Hold {
                until: None,
                reason: if holds.is_empty() {
                    "on hold in Shopify".to_string()
                } else {
                    format!("on hold in Shopify: {}", holds.join("; "))
                },
            };
        }
        return match known {
            None => Decision::Ignore("nothing to ship: every line is skipped".into()),
            Some(_) => Decision::Close,
        };
    }
    if let Some(tag) = rules.hold_tag(&facts.tags) {
        return Decision::Hold {
            until: None,
            reason: format!(
                "tagged {tag:?} (order_rules.hold_tags): released when the tag is removed"
            ),
        };
    }
    if rules.hold_minutes > 0 {
        let until = first_seen_at.saturating_add(i64::from(rules.hold_minutes) * 60_000_000);
        if now < until {
            return Decision::Hold {
                until: Some(until),
                reason: format!(
                    "hold period of {} minute(s) (order_rules.hold_minutes)",
                    rules.hold_minutes
                ),
            };
        }
    }
    if status == Some(OrderStatus::Queued) {
        // Already on its way: the push sends the latest plan.
        return Decision::Keep;
    }
    Decision::Release
}

fn after_release(facts: &StoreFacts, known: &Known, plan: &[LinePlan]) -> Decision {
    if matches!(
        known.status,
        OrderStatus::Cancelled | OrderStatus::Closed | OrderStatus::Archived
    ) {
        return Decision::Keep;
    }
    if facts.cancelled {
        if known.status == OrderStatus::Shipped {
            // Everything left the warehouse: nothing there to cancel.
            return Decision::Keep;
        }
        return Decision::CancelInWarehouse {
            reason: cancel_reason(facts),
        };
    }
    if all_fulfilled(facts) {
        return Decision::Close;
    }
    if known.status == OrderStatus::Shipped {
        // Edits after everything shipped (returns, refunds) are the store's.
        return Decision::Keep;
    }
    let had: BTreeMap<&str, &KnownLine> = known.lines.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut changes = Vec::new();
    for (line, p) in facts.lines.iter().zip(plan) {
        match had.get(line.id.as_str()) {
            Some(k) => {
                if line.current_quantity == k.store_quantity {
                    continue;
                }
                let after = if line.current_quantity > k.store_quantity {
                    if p.skipped.is_some() && k.sent == 0 {
                        continue;
                    }
                    k.sent + (line.current_quantity - k.store_quantity)
                } else {
                    // Fewer wanted: cancel what is not shipped yet, at most.
                    let fewer = k.store_quantity - line.current_quantity;
                    k.sent - fewer.min(k.sent.saturating_sub(k.shipped))
                };
                if after != k.sent {
                    changes.push(LineChange {
                        line_id: line.id.clone(),
                        sku: line.sku.clone(),
                        before: k.sent,
                        after,
                    });
                }
            }
            None if p.quantity > 0 => changes.push(LineChange {
                line_id: line.id.clone(),
                sku: line.sku.clone(),
                before: 0,
                after: p.quantity,
            }),
            None => {}
        }
    }
    if changes.is_empty() {
        Decision::Keep
    } else {
        Decision::Amend(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn line(id: &str, q: u64) -> StoreLine {
        StoreLine {
            id: id.into(),
            sku: Some(format!("SKU-{id}")),
            current_quantity: q,
            requires_shipping: true,
            unfulfilled: Some(q),
        }
    }

    fn fo(status: &str, location: &str, lines: &[(&str, u64)]) -> StoreFulfillmentOrder {
        StoreFulfillmentOrder {
            status: status.into(),
            location_id: Some(format!("gid://shopify/Location/{location}")),
            holds: if status == "ON_HOLD" {
                vec!["AWAITING_PAYMENT".into()]
            } else {
                vec![]
            },
            lines: lines.iter().map(|(i, q)| (i.to_string(), *q)).collect(),
        }
    }

    fn paid(lines: Vec<StoreLine>) -> StoreFacts {
        let fos = vec![fo(
            "OPEN",
            "1",
            &lines
                .iter()
                .map(|l| (l.id.as_str(), l.current_quantity))
                .collect::<Vec<_>>(),
        )];
        StoreFacts {
            financial_status: Some("PAID".into()),
            fulfillment_status: Some("UNFULFILLED".into()),
            lines,
            fulfillment_orders: fos,
            ..StoreFacts::default()
        }
    }

    fn known(status: OrderStatus, sent: bool, lines: &[(&str, u64, u64, u64)]) -> Known {
        Known {
            status,
            sent,
            lines: lines
                .iter()
                .map(|(id, sent, store, shipped)| KnownLine {
                    id: id.to_string(),
                    sent: *sent,
                    store_quantity: *store,
                    shipped: *shipped,
                })
                .collect(),
        }
    }

    fn kind(d: &Decision) -> &'static str {
        match d {
            Decision::Ignore(_) => "ignore",
            Decision::Hold { .. } => "hold",
            Decision::Release => "release",
            Decision::Cancel { .. } => "cancel",
            Decision::CancelInWarehouse { .. } => "cancel_in_warehouse",
            Decision::Amend(_) => "amend",
            Decision::Close => "close",
            Decision::Keep => "keep",
        }
    }

    #[test]
    fn lines_are_planned_by_fulfillment_order_and_rule() {
        let mut gift = line("g", 1);
        gift.requires_shipping = false;
        let mut removed = line("r", 0);
        removed.unfulfilled = Some(0);
        let mut facts = paid(vec![
            line("a", 2),
            line("b", 3),
            line("c", 1),
            gift,
            removed,
        ]);
        facts.fulfillment_orders = vec![
            fo("OPEN", "1", &[("a", 2), ("g", 1)]),
            fo("OPEN", "2", &[("b", 3)]),
            fo("ON_HOLD", "1", &[("c", 1)]),
        ];
        let only_1 = OrderRules {
            location_ids: vec!["gid://shopify/Location/1".into()],
            ..OrderRules::default()
        };
        let plan = plan_lines(&facts, &only_1);
        let got: Vec<(&str, u64, Option<Skip>)> = plan
            .iter()
            .map(|p| (p.id.as_str(), p.quantity, p.skipped))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", 2, None),
                ("b", 0, Some(Skip::OtherLocation)),
                ("c", 0, Some(Skip::FulfillmentHold)),
                ("g", 0, Some(Skip::DoesNotRequireShipping)),
                ("r", 0, Some(Skip::Removed)),
            ]
        );
        // Every location: b is ours.
        let plan = plan_lines(&facts, &OrderRules::default());
        assert_eq!((plan[1].quantity, plan[1].skipped), (3, None));
        // Partly fulfilled: only the remaining units; none left = fulfilled.
        facts.fulfillment_orders = vec![
            fo("IN_PROGRESS", "1", &[("a", 1)]),
            fo("CLOSED", "1", &[("b", 0)]),
        ];
        let plan = plan_lines(&facts, &OrderRules::default());
        assert_eq!((plan[0].quantity, plan[0].skipped), (1, None));
        assert_eq!(
            (plan[1].quantity, plan[1].skipped),
            (0, Some(Skip::Fulfilled))
        );
        // No fulfillment orders read: the line's unfulfilled units.
        facts.fulfillment_orders.clear();
        let plan = plan_lines(&facts, &OrderRules::default());
        assert_eq!(plan[1].quantity, 3);
        for s in Skip::ALL {
            assert_eq!(Skip::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn before_release_table() {
        let rules = OrderRules::default();
        let held = OrderRules {
            hold_minutes: 30,
            ..OrderRules::default()
        };
        let authorized = OrderRules {
            financial_statuses: vec!["PAID".into(), "AUTHORIZED".into()],
            ..OrderRules::default()
        };
        let partial_ok = OrderRules {
            include_partially_fulfilled: true,
            ..OrderRules::default()
        };
        let excluding = OrderRules {
            exclude_tags: vec!["wholesale".into()],
            ..OrderRules::default()
        };
        let base = paid(vec![line("a", 2)]);
        let with = |f: &dyn Fn(&mut StoreFacts)| {
            let mut x = base.clone();
            f(&mut x);
            x
        };
        let queued = known(OrderStatus::Queued, false, &[("a", 0, 2, 0)]);
        let held_k = known(OrderStatus::Held, false, &[("a", 0, 2, 0)]);
        let errored = known(OrderStatus::Error, false, &[("a", 0, 2, 0)]);
        let cancelled_k = known(OrderStatus::Cancelled, false, &[("a", 0, 2, 0)]);
        let shipped_elsewhere = known(OrderStatus::PartiallyShipped, false, &[("a", 0, 2, 1)]);
        let cancelled = with(&|x| {
            x.cancelled = true;
            x.cancel_reason = Some("CUSTOMER".into());
        });
        let authorized_f = with(&|x| x.financial_status = Some("AUTHORIZED".into()));
        let pending = with(&|x| x.financial_status = Some("PENDING".into()));
        let tagged = with(&|x| x.tags = vec!["vip".into(), "HOLD".into()]);
        let wholesale = with(&|x| x.tags = vec!["Wholesale".into()]);
        let partial = with(&|x| {
            x.fulfillment_status = Some("PARTIALLY_FULFILLED".into());
            x.lines[0].unfulfilled = Some(1);
            x.fulfillment_orders = vec![fo("OPEN", "1", &[("a", 1)])];
        });
        let on_hold = with(&|x| x.fulfillment_orders = vec![fo("ON_HOLD", "1", &[("a", 2)])]);
        let all_gift = with(&|x| x.lines[0].requires_shipping = false);
        let t0 = 1_000 * MIN;
        #[rustfmt::skip]
        type Case<'a> = (&'a str, &'a StoreFacts, &'a OrderRules, Option<&'a Known>, i64, &'a str);
        let cases: Vec<Case<'_>> = vec![
            ("new paid order", &base, &rules, None, t0, "release"),
            (
                "new, cancelled already",
                &cancelled,
                &rules,
                None,
                t0,
                "ignore",
            ),
            (
                "queued, then cancelled",
                &cancelled,
                &rules,
                Some(&queued),
                t0,
                "cancel",
            ),
            (
                "held, then cancelled",
                &cancelled,
                &held,
                Some(&held_k),
                t0,
                "cancel",
            ),
            (
                "in error, then cancelled",
                &cancelled,
                &rules,
                Some(&errored),
                t0,
                "cancel",
            ),
            (
                "in error, edited: waits for a person",
                &base,
                &rules,
                Some(&errored),
                t0,
                "keep",
            ),
            (
                "cancelled stays cancelled",
                &base,
                &rules,
                Some(&cancelled_k),
                t0,
                "keep",
            ),
            (
                "authorized, not imported",
                &authorized_f,
                &rules,
                None,
                t0,
                "ignore",
            ),
            (
                "authorized, imported by rule",
                &authorized_f,
                &authorized,
                None,
                t0,
                "release",
            ),
            (
                "pending, known: waits",
                &pending,
                &rules,
                Some(&held_k),
                t0,
                "hold",
            ),
            ("hold tag", &tagged, &rules, None, t0, "hold"),
            (
                "hold tag removed",
                &base,
                &rules,
                Some(&held_k),
                t0,
                "release",
            ),
            (
                "excluded by tag",
                &wholesale,
                &excluding,
                None,
                t0,
                "ignore",
            ),
            (
                "partly fulfilled, rule off",
                &partial,
                &rules,
                None,
                t0,
                "ignore",
            ),
            (
                "partly fulfilled, rule on",
                &partial,
                &partial_ok,
                None,
                t0,
                "release",
            ),
            (
                "Shopify fulfillment hold",
                &on_hold,
                &rules,
                None,
                t0,
                "hold",
            ),
            ("only a gift card", &all_gift, &rules, None, t0, "ignore"),
            ("hold period running", &base, &held, None, t0, "hold"),
            (
                "hold period over",
                &base,
                &held,
                Some(&held_k),
                t0 + 31 * MIN,
                "release",
            ),
            ("already queued", &base, &rules, Some(&queued), t0, "keep"),
            (
                "shipped, but not sent by shipsync",
                &base,
                &rules,
                Some(&shipped_elsewhere),
                t0,
                "keep",
            ),
        ];
        for (name, facts, rules, k, now, want) in cases {
            let (d, _) = decide(facts, rules, k, t0, now);
            assert_eq!(kind(&d), want, "{name}: {d:?}");
        }
        let (d, _) = decide(&base, &held, None, t0, t0 + MIN);
        assert_eq!(
            d,
            Decision::Hold {
                until: Some(t0 + 30 * MIN),
                reason: "hold period of 30 minute(s) (order_rules.hold_minutes)".into()
            }
        );
        let (d, _) = decide(&on_hold, &rules, None, t0, t0);
        assert_eq!(
            d,
            Decision::Hold {
                until: None,
                reason: "on hold in Shopify: AWAITING_PAYMENT".into()
            }
        );
        let (d, plan) = decide(&partial, &partial_ok, None, t0, t0);
        assert_eq!((d, plan[0].quantity), (Decision::Release, 1));
    }

    #[test]
    fn after_release_table() {
        let rules = OrderRules::default();
        let base = paid(vec![line("a", 2), line("b", 1)]);
        let with = |f: &dyn Fn(&mut StoreFacts)| {
            let mut x = base.clone();
            f(&mut x);
            x
        };
        let open = known(OrderStatus::Open, true, &[("a", 2, 2, 0), ("b", 1, 1, 0)]);
        let part = known(
            OrderStatus::PartiallyShipped,
            true,
            &[("a", 2, 2, 2), ("b", 1, 1, 0)],
        );
        let shipped = known(
            OrderStatus::Shipped,
            true,
            &[("a", 2, 2, 2), ("b", 1, 1, 1)],
        );
        let cancelled = with(&|x| x.cancelled = true);
        let raised = with(&|x| x.lines[0].current_quantity = 5);
        let lowered = with(&|x| x.lines[0].current_quantity = 1);
        let removed = with(&|x| x.lines[1].current_quantity = 0);
        let added = with(&|x| {
            x.lines.push(line("c", 4));
            x.fulfillment_orders[0].lines.push(("c".into(), 4));
        });
        let fulfilled = with(&|x| {
            x.fulfillment_status = Some("FULFILLED".into());
        });
        let a = |before, after| LineChange {
            line_id: "a".into(),
            sku: Some("SKU-a".into()),
            before,
            after,
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, &StoreFacts, &Known, Decision)> = vec![
            ("unchanged", &base, &open, Decision::Keep),
            ("cancelled", &cancelled, &open, Decision::CancelInWarehouse { reason: "cancelled in the store".into() }),
            ("cancelled after partial shipment", &cancelled, &part, Decision::CancelInWarehouse { reason: "cancelled in the store".into() }),
            ("cancelled after full shipment", &cancelled, &shipped, Decision::Keep),
            ("raised", &raised, &open, Decision::Amend(vec![a(2, 5)])),
            ("lowered", &lowered, &open, Decision::Amend(vec![a(2, 1)])),
            ("lowered, but shipped already", &lowered, &part, Decision::Keep),
            ("line removed", &removed, &open, Decision::Amend(vec![LineChange { line_id: "b".into(), sku: Some("SKU-b".into()), before: 1, after: 0 }])),
            ("line added", &added, &open, Decision::Amend(vec![LineChange { line_id: "c".into(), sku: Some("SKU-c".into()), before: 0, after: 4 }])),
            ("fulfilled in the store", &fulfilled, &part, Decision::Close),
            ("edited after full shipment", &raised, &shipped, Decision::Keep),
        ];
        for (name, facts, k, want) in cases {
            let (d, _) = decide(facts, &rules, Some(k), 0, 0);
            assert_eq!(d, want, "{name}");
        }
    }
}
