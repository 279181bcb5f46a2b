//! Store writes whose outcome is unknown (the request went out, the answer
//! was lost): how to recognise one that reached the store anyway.

use std::collections::{BTreeMap, BTreeSet};

/// A store write as it was recorded before it was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    /// Store line id → units.
    pub lines: BTreeMap<String, u64>,
    /// Tracking numbers it carried.
    pub tracking_numbers: BTreeSet<String>,
}

/// A fulfillment the store shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Landed {
    pub id: String,
    /// (store line id, units); a line may appear more than once.
    pub line_items: Vec<(String, u64)>,
    pub tracking_numbers: Vec<String>,
}

/// The store fulfillment matching `attempt`: the same units per line and the
/// same tracking numbers, not yet claimed by another attempt (`adopted`).
/// The first such one, in the store's order.
pub fn find_landed<'a>(
    attempt: &Attempt,
    shown: &'a [Landed],
    adopted: &BTreeSet<String>,
) -> Option<&'a str> {
    shown
        .iter()
        .filter(|f| !adopted.contains(&f.id))
        .find(|f| {
            let mut lines: BTreeMap<String, u64> = BTreeMap::new();
            for (id, q) in &f.line_items {
                *lines.entry(id.clone()).or_default() += q;
            }
            let numbers: BTreeSet<String> = f.tracking_numbers.iter().cloned().collect();
            lines == attempt.lines && numbers == attempt.tracking_numbers
        })
        .map(|f| f.id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(lines: &[(&str, u64)], numbers: &[&str]) -> Attempt {
        Attempt {
            lines: lines.iter().map(|(l, q)| (l.to_string(), *q)).collect(),
            tracking_numbers: numbers.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn shown(id: &str, lines: &[(&str, u64)], numbers: &[&str]) -> Landed {
        Landed {
            id: id.into(),
            line_items: lines.iter().map(|(l, q)| (l.to_string(), *q)).collect(),
            tracking_numbers: numbers.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn an_attempt_is_found_by_its_lines_and_tracking_numbers() {
        let store = vec![
            shown("f1", &[("L1", 1)], &["T1"]),
            shown("f2", &[("L1", 2), ("L2", 1)], &["T2", "T3"]),
            shown("f3", &[("L1", 1), ("L1", 1)], &["T4"]),
            shown("f4", &[("L1", 1)], &["T1"]),
        ];
        let cases: Vec<(Attempt, &[&str], Option<&str>)> = vec![
            (attempt(&[("L1", 1)], &["T1"]), &[], Some("f1")),
            // Already claimed by another attempt: the next one that matches.
            (attempt(&[("L1", 1)], &["T1"]), &["f1"], Some("f4")),
            (attempt(&[("L1", 1)], &["T1"]), &["f1", "f4"], None),
            // Numbers are a set; lines are summed per line.
            (
                attempt(&[("L1", 2), ("L2", 1)], &["T3", "T2"]),
                &[],
                Some("f2"),
            ),
            (attempt(&[("L1", 2)], &["T4"]), &[], Some("f3")),
            // Different units, or a number missing or extra: not it.
            (attempt(&[("L1", 2), ("L2", 1)], &["T2"]), &[], None),
            (attempt(&[("L1", 2)], &["T2", "T3"]), &[], None),
            (attempt(&[("L1", 1)], &[]), &[], None),
            (attempt(&[("L1", 1)], &["T1", "T9"]), &[], None),
        ];
        for (a, adopted, want) in cases {
            let adopted: BTreeSet<String> = adopted.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                find_landed(&a, &store, &adopted),
                want,
                "{a:?} / {adopted:?}"
            );
        }
    }

    #[test]
    fn nothing_in_the_store_finds_nothing() {
        assert_eq!(find_landed(&attempt(&[], &[]), &[], &BTreeSet::new()), None);
        // An empty attempt matches an empty fulfillment (as before).
        let store = vec![shown("f0", &[], &[])];
        assert_eq!(
            find_landed(&attempt(&[], &[]), &store, &BTreeSet::new()),
            Some("f0")
        );
    }
}
