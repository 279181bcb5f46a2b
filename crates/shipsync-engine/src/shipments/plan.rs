//! The plan of one sync run, free of I/O: given this shipment's share of its
//! order (the ledger), the store fulfillments already recorded for it and,
//! when an attempt's outcome is unknown, what the store shows — what is
//! settled, what is still unknown, what to create and what to correct.

use std::collections::{BTreeMap, BTreeSet};

use shipsync_core::landed::{self, Attempt, Landed};
use shipsync_core::ledger::{self, LineShare};
use shipsync_core::states::FulfillmentState;
use shipsync_core::{ShipmentVersion, tracking};
use shipsync_db::fulfillments::StoreFulfillmentRow;

/// What a run knows when it plans.
pub(super) struct Inputs<'a> {
    /// This shipment's share of its order's lines.
    pub shares: &'a [LineShare],
    /// The version the run works on.
    pub version: &'a ShipmentVersion,
    /// The store fulfillments recorded for this shipment (`pending`: sent
    /// or about to be, outcome unknown; `done`: acknowledged).
    pub recorded: Vec<StoreFulfillmentRow>,
    /// The store's fulfillments of the order (read only when an attempt is
    /// pending).
    pub shown: &'a [Landed],
    /// Store fulfillments already claimed by a record of this connection.
    pub adopted: &'a BTreeSet<String>,
    /// Now and how long an unknown attempt may still land (µs).
    pub now: i64,
    pub hold: i64,
}

/// A tracking correction on a fulfillment the store has.
#[derive(Debug, Clone)]
pub(super) struct Correction {
    pub row: StoreFulfillmentRow,
    pub fulfillment_id: String,
    /// The merged `(package key, tracking number)` list it gets.
    pub tracking: Vec<(String, String)>,
}

/// What a run does, in order: adopt and forget settled attempts; if one is
/// still undecided, nothing else (look again); otherwise create what the
/// store lacks, then correct tracking.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Attempts found in the store: the record, now `done` with the store's id.
    pub adopt: Vec<StoreFulfillmentRow>,
    /// Attempts not found whose time to show up has passed: not made.
    pub forget: Vec<StoreFulfillmentRow>,
    /// The earliest time (µs) an attempt not found may still show up; while
    /// set, nothing below is planned.
    pub undecided_until: Option<i64>,
    /// What the store still lacks.
    pub create: Vec<LineShare>,
    /// Packages the store already has on this shipment's fulfillments.
    pub told: BTreeSet<String>,
    pub correct: Vec<Correction>,
}

/// Plans one run (see [`Plan`]).
pub(super) fn plan(input: Inputs<'_>) -> Plan {
    let mut out = Plan::default();
    let mut known = Vec::new();
    for mut r in input.recorded {
        if r.state != FulfillmentState::Pending {
            known.push(r);
            continue;
        }
        let attempt = Attempt {
            lines: r.lines.clone(),
            tracking_numbers: r.tracking.iter().map(|(_, n)| n.clone()).collect(),
        };
        match landed::find_landed(&attempt, input.shown, input.adopted) {
            Some(fid) => {
                r.store_fulfillment_id = Some(fid.to_string());
                r.state = FulfillmentState::Done;
                out.adopt.push(r.clone());
                known.push(r);
            }
            None => {
                // The store may show an applied create only later: the
                // record is kept until its send time (when it was recorded)
                // plus the request timeout plus a margin has passed.
                let until = r.created_at.saturating_add(input.hold);
                if input.now < until {
                    out.undecided_until = Some(out.undecided_until.map_or(until, |u| u.min(until)));
                } else {
                    out.forget.push(r);
                }
            }
        }
    }
    if out.undecided_until.is_some() {
        return out;
    }
    let mut sent: ledger::Sent = BTreeMap::new();
    for r in &known {
        for (line, q) in &r.lines {
            *sent.entry(line.clone()).or_default() += q;
        }
    }
    out.create = ledger::still_to_send(input.shares, &sent);
    out.told = known
        .iter()
        .flat_map(|r| r.tracking.iter())
        .map(|(k, _)| k.clone())
        .collect();
    out.correct = corrections(input.version, known);
    out
}

/// Tracking the store's fulfillments of this shipment lack: numbers the
/// version gives their packages that they do not carry yet.
fn corrections(version: &ShipmentVersion, known: Vec<StoreFulfillmentRow>) -> Vec<Correction> {
    let mut out = Vec::new();
    for r in known {
        let Some(fid) = r.store_fulfillment_id.clone() else {
            continue;
        };
        let existing = r.tracking.clone();
        let incoming: Vec<(String, String)> = version
            .packages
            .iter()
            .filter(|p| existing.iter().any(|(k, _)| k == &p.key))
            .filter_map(|p| p.tracking_number.clone().map(|t| (p.key.clone(), t)))
            .collect();
        let merged = tracking::merge(&existing, &incoming);
        if merged != existing {
            out.push(Correction {
                row: r,
                fulfillment_id: fid,
                tracking: merged,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use FulfillmentState::{Done, Pending};
    use shipsync_core::{Package, WarehouseStatus};

    const HOLD: i64 = 50_000_000;
    const NOW: i64 = 1_000_000_000;

    fn version(packages: &[(&str, Option<&str>)]) -> ShipmentVersion {
        ShipmentVersion {
            number: "S1".into(),
            warehouse_id: None,
            status: WarehouseStatus::Shipped,
            order_refs: vec!["#1001".into()],
            carrier: None,
            service: None,
            tracking_url: None,
            shipped_at: None,
            updated_at: None,
            lines: Vec::new(),
            packages: packages
                .iter()
                .map(|(key, number)| Package {
                    key: key.to_string(),
                    tracking_number: number.map(str::to_string),
                    carrier: None,
                    service: None,
                    lines: Vec::new(),
                })
                .collect(),
        }
    }

    fn share(line: &str, quantity: u64, packages: &[&str]) -> LineShare {
        LineShare {
            store_line_id: line.into(),
            quantity,
            carrier: None,
            package_keys: packages.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// A recorded fulfillment: `id`, its state, the store's id when known,
    /// its lines, its tracking and when it was recorded.
    fn row(
        id: &str,
        state: FulfillmentState,
        fid: Option<&str>,
        lines: &[(&str, u64)],
        tracking: &[(&str, &str)],
        created_at: i64,
    ) -> StoreFulfillmentRow {
        StoreFulfillmentRow {
            id: id.into(),
            shipment_id: "shp_1".into(),
            connection_id: "con_1".into(),
            store_order_id: "gid://shopify/Order/1".into(),
            fulfillment_order_id: "gid://shopify/FulfillmentOrder/1".into(),
            store_fulfillment_id: fid.map(str::to_string),
            carrier: None,
            lines: lines.iter().map(|(l, q)| (l.to_string(), *q)).collect(),
            items: BTreeMap::new(),
            tracking: tracking
                .iter()
                .map(|(k, n)| (k.to_string(), n.to_string()))
                .collect(),
            state,
            created_at,
            updated_at: created_at,
        }
    }

    fn landed(id: &str, lines: &[(&str, u64)], numbers: &[&str]) -> Landed {
        Landed {
            id: id.into(),
            line_items: lines.iter().map(|(l, q)| (l.to_string(), *q)).collect(),
            tracking_numbers: numbers.iter().map(|n| n.to_string()).collect(),
        }
    }

    struct Case {
        name: &'static str,
        shares: Vec<LineShare>,
        packages: Vec<(&'static str, Option<&'static str>)>,
        recorded: Vec<StoreFulfillmentRow>,
        shown: Vec<Landed>,
        adopted: Vec<&'static str>,
        // Expected:
        adopt: Vec<(&'static str, &'static str)>,
        forget: Vec<&'static str>,
        undecided_until: Option<i64>,
        create: Vec<(&'static str, u64)>,
        told: Vec<&'static str>,
        correct: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
    }

    fn base(name: &'static str) -> Case {
        Case {
            name,
            shares: vec![share("L1", 2, &["P1"]), share("L2", 1, &["P2"])],
            packages: vec![("P1", Some("T1")), ("P2", Some("T2"))],
            recorded: Vec::new(),
            shown: Vec::new(),
            adopted: Vec::new(),
            adopt: Vec::new(),
            forget: Vec::new(),
            undecided_until: None,
            create: Vec::new(),
            told: Vec::new(),
            correct: Vec::new(),
        }
    }

    #[test]
    fn plans_by_table() {
        let cases = vec![
            Case {
                create: vec![("L1", 2), ("L2", 1)],
                ..base("nothing sent yet: everything is created")
            },
            Case {
                recorded: vec![row(
                    "r1",
                    Done,
                    Some("F1"),
                    &[("L1", 2)],
                    &[("P1", "T1")],
                    0,
                )],
                create: vec![("L2", 1)],
                told: vec!["P1"],
                ..base("part sent: the rest is created, its package is known")
            },
            Case {
                recorded: vec![
                    row("r1", Done, Some("F1"), &[("L1", 2)], &[("P1", "T1")], 0),
                    row("r2", Done, Some("F2"), &[("L2", 1)], &[("P2", "T2")], 0),
                ],
                told: vec!["P1", "P2"],
                ..base("all sent, tracking as the store has it: nothing to do")
            },
            Case {
                packages: vec![("P1", Some("T1-new")), ("P2", Some("T2"))],
                recorded: vec![
                    row("r1", Done, Some("F1"), &[("L1", 2)], &[("P1", "T1")], 0),
                    row("r2", Done, Some("F2"), &[("L2", 1)], &[("P2", "T2")], 0),
                ],
                told: vec!["P1", "P2"],
                correct: vec![("r1", vec![("P1", "T1-new")])],
                ..base("a package's number changed: that fulfillment is corrected")
            },
            Case {
                packages: vec![("P1", Some("T1")), ("P2", None)],
                recorded: vec![
                    row("r1", Done, Some("F1"), &[("L1", 2)], &[("P1", "T1")], 0),
                    row("r2", Done, Some("F2"), &[("L2", 1)], &[("P2", "")], 0),
                    row("r3", Done, None, &[], &[("P9", "T9")], 0),
                ],
                told: vec!["P1", "P2", "P9"],
                ..base("no number given, or no store id: no correction")
            },
            Case {
                packages: vec![("P1", Some("T1")), ("P2", Some("T2"))],
                recorded: vec![row("r2", Done, Some("F2"), &[("L2", 1)], &[("P2", "")], 0)],
                create: vec![("L1", 2)],
                told: vec!["P2"],
                correct: vec![("r2", vec![("P2", "T2")])],
                ..base("a number arrives later: added to the fulfillment that lacked it")
            },
            Case {
                recorded: vec![row(
                    "r1",
                    Pending,
                    None,
                    &[("L1", 2)],
                    &[("P1", "T1")],
                    NOW - 1,
                )],
                shown: vec![landed("F1", &[("L1", 2)], &["T1"])],
                adopt: vec![("r1", "F1")],
                create: vec![("L2", 1)],
                told: vec!["P1"],
                ..base("an unknown attempt found in the store is adopted")
            },
            Case {
                recorded: vec![row(
                    "r1",
                    Pending,
                    None,
                    &[("L1", 2)],
                    &[("P1", "T1")],
                    NOW - 1,
                )],
                shown: vec![landed("F1", &[("L1", 2)], &["T1"])],
                adopted: vec!["F1"],
                undecided_until: Some(NOW - 1 + HOLD),
                ..base("a store fulfillment another record claimed is not adopted")
            },
            Case {
                recorded: vec![
                    row("r1", Pending, None, &[("L1", 2)], &[("P1", "T1")], NOW - 10),
                    row("r2", Pending, None, &[("L2", 1)], &[("P2", "T2")], NOW - 20),
                    row("r3", Done, Some("F3"), &[("L9", 1)], &[], 0),
                ],
                undecided_until: Some(NOW - 20 + HOLD),
                ..base("attempts not shown yet, still in time: nothing is planned")
            },
            Case {
                recorded: vec![
                    row(
                        "r1",
                        Pending,
                        None,
                        &[("L1", 2)],
                        &[("P1", "T1")],
                        NOW - HOLD,
                    ),
                    row("r2", Pending, None, &[("L2", 1)], &[("P2", "T2")], NOW - 1),
                ],
                shown: vec![landed("F2", &[("L2", 1)], &["T2"])],
                adopt: vec![("r2", "F2")],
                forget: vec!["r1"],
                create: vec![("L1", 2)],
                told: vec!["P2"],
                ..base("an attempt past its time is forgotten: sent again")
            },
            Case {
                recorded: vec![row(
                    "r1",
                    Pending,
                    None,
                    &[("L1", 2)],
                    &[("P1", "T1")],
                    NOW - HOLD - 1,
                )],
                shown: vec![landed("F1", &[("L1", 1)], &["T1"])],
                forget: vec!["r1"],
                create: vec![("L1", 2), ("L2", 1)],
                ..base("a store fulfillment with other units is not the attempt")
            },
        ];
        for c in cases {
            let v = version(&c.packages);
            let adopted: BTreeSet<String> = c.adopted.iter().map(|s| s.to_string()).collect();
            let p = plan(Inputs {
                shares: &c.shares,
                version: &v,
                recorded: c.recorded,
                shown: &c.shown,
                adopted: &adopted,
                now: NOW,
                hold: HOLD,
            });
            let adopt: Vec<(&str, &str)> = p
                .adopt
                .iter()
                .map(|r| {
                    assert_eq!(r.state, Done, "{}", c.name);

                    (
                        r.id.as_str(),
                        r.store_fulfillment_id.as_deref().unwrap_or("?"),
                    )
                })
                .collect();
            assert_eq!(adopt, c.adopt, "{}: adopted", c.name);
            let forget: Vec<&str> = p.forget.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(forget, c.forget, "{}: forgotten", c.name);
            assert_eq!(
                p.undecided_until, c.undecided_until,
                "{}: undecided",
                c.name
            );
            let create: Vec<(&str, u64)> = p
                .create
                .iter()
                .map(|s| (s.store_line_id.as_str(), s.quantity))
                .collect();
            assert_eq!(create, c.create, "{}: created", c.name);
            let told: Vec<&str> = p.told.iter().map(String::as_str).collect();
            assert_eq!(told, c.told, "{}: told", c.name);
            let correct: Vec<(&str, Vec<(&str, &str)>)> = p
                .correct
                .iter()
                .map(|k| {
                    assert_eq!(k.row.store_fulfillment_id.as_ref(), Some(&k.fulfillment_id));
                    (
                        k.row.id.as_str(),
                        k.tracking
                            .iter()
                            .map(|(a, b)| (a.as_str(), b.as_str()))
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(correct, c.correct, "{}: corrected", c.name);
        }
    }
}
