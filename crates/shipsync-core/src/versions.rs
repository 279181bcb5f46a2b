//! Which report of a shipment wins: the rules that decide whether a newly
//! reported version replaces the one kept. Merging a report and resetting a
//! shipment (which re-derives it from every stored report) both use them.

use crate::{ShipmentVersion, WarehouseStatus};

/// What a version is judged by: its warehouse status (unknown when the kept
/// version could not be read) and its `updatedDate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    pub status: Option<&'a WarehouseStatus>,
    pub updated_at: Option<&'a str>,
}

impl<'a> From<&'a ShipmentVersion> for Stamp<'a> {
    fn from(v: &'a ShipmentVersion) -> Self {
        Self {
            status: Some(&v.status),
            updated_at: v.updated_at.as_deref(),
        }
    }
}

/// The judgement on a new version against the kept one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// The new version replaces the kept one.
    Supersedes,
    /// It would move a shipped shipment back to an earlier status: kept.
    GoesBack,
    /// It is older by `updatedDate`: kept.
    Older,
}

/// True when `new` is older than `current` by their `updatedDate`s (RFC 3339
/// times, compared as text when either does not parse). Without both
/// dates, nothing is older.
pub fn is_older(new: Option<&str>, current: Option<&str>) -> bool {
    match (new, current) {
        (Some(n), Some(c)) => match (n.parse::<jiff::Timestamp>(), c.parse::<jiff::Timestamp>()) {
            (Ok(n), Ok(c)) => n < c,
            _ => n < c,
        },
        _ => false,
    }
}

/// True when `new` would move a shipped shipment (`current`) back to an
/// earlier warehouse status (`New`, `Shipping`): statuses only move forward,
/// so such a report changes nothing. (`Rolled Back` is not "back": it goes
/// through and becomes an error for a person.)
pub fn goes_back(current: &WarehouseStatus, new: &WarehouseStatus) -> bool {
    *current == WarehouseStatus::Shipped
        && matches!(new, WarehouseStatus::New | WarehouseStatus::Shipping)
}

/// Judges `new` against `current`: going back is checked before age.
pub fn judge(new: Stamp<'_>, current: Stamp<'_>) -> Judgement {
    let back = match (current.status, new.status) {
        (Some(c), Some(n)) => goes_back(c, n),
        _ => false,
    };
    if back {
        Judgement::GoesBack
    } else if is_older(new.updated_at, current.updated_at) {
        Judgement::Older
    } else {
        Judgement::Supersedes
    }
}

/// True when `new` replaces `current`: it neither goes back nor is older.
pub fn supersedes(new: &ShipmentVersion, current: &ShipmentVersion) -> bool {
    judge(new.into(), current.into()) == Judgement::Supersedes
}

#[cfg(test)]
mod tests {
    use super::*;
    use WarehouseStatus::{New, RolledBack, Shipped, Shipping};

    const T1: &str = "2026-03-01T10:00:00Z";
    const T2: &str = "2026-03-01T11:00:00Z";

    #[test]
    fn older_compares_times_and_falls_back_to_text() {
        let cases: [(Option<&str>, Option<&str>, bool); 8] = [
            (Some(T1), Some(T2), true),
            (Some(T2), Some(T1), false),
            (Some(T1), Some(T1), false),
            // The same instant in another offset is not older.
            (
                Some("2026-03-01T12:00:00+01:00"),
                Some("2026-03-01T11:00:00Z"),
                false,
            ),
            (
                Some("2026-03-01T11:59:00+01:00"),
                Some("2026-03-01T11:00:00Z"),
                true,
            ),
            // Unparseable: compared as text.
            (Some("a"), Some("b"), true),
            (None, Some(T2), false),
            (Some(T1), None, false),
        ];
        for (new, current, want) in cases {
            assert_eq!(is_older(new, current), want, "{new:?} vs {current:?}");
        }
    }

    #[test]
    fn only_new_or_shipping_after_shipped_goes_back() {
        let cases = [
            (Shipped, New, true),
            (Shipped, Shipping, true),
            (Shipped, Shipped, false),
            (Shipped, RolledBack, false),
            (Shipping, New, false),
            (New, Shipped, false),
            (RolledBack, New, false),
            (Shipped, WarehouseStatus::Other("Held".into()), false),
        ];
        for (current, new, want) in cases {
            assert_eq!(goes_back(&current, &new), want, "{current:?} → {new:?}");
        }
    }

    fn stamp<'a>(status: Option<&'a WarehouseStatus>, at: Option<&'a str>) -> Stamp<'a> {
        Stamp {
            status,
            updated_at: at,
        }
    }

    #[test]
    fn judgement_checks_going_back_before_age() {
        let cases = [
            // (new status, new time, current status, current time, judgement)
            (
                Shipped,
                Some(T2),
                Some(Shipped),
                Some(T1),
                Judgement::Supersedes,
            ),
            (Shipped, Some(T1), Some(Shipped), Some(T2), Judgement::Older),
            (
                Shipping,
                Some(T2),
                Some(Shipped),
                Some(T1),
                Judgement::GoesBack,
            ),
            (
                Shipping,
                Some(T1),
                Some(Shipped),
                Some(T2),
                Judgement::GoesBack,
            ),
            (
                RolledBack,
                Some(T2),
                Some(Shipped),
                Some(T1),
                Judgement::Supersedes,
            ),
            (
                Shipped,
                None,
                Some(Shipping),
                Some(T2),
                Judgement::Supersedes,
            ),
            // The kept version could not be read: only its time counts.
            (New, Some(T2), None, Some(T1), Judgement::Supersedes),
            (New, Some(T1), None, Some(T2), Judgement::Older),
        ];
        for (ns, nt, cs, ct, want) in cases {
            assert_eq!(
                judge(stamp(Some(&ns), nt), stamp(cs.as_ref(), ct)),
                want,
                "{ns:?}@{nt:?} vs {cs:?}@{ct:?}"
            );
        }
    }

    #[test]
    fn supersedes_is_the_judgement_on_whole_versions() {
        let v = |status: WarehouseStatus, at: &str| ShipmentVersion {
            number: "S1".into(),
            warehouse_id: None,
            status,
            order_refs: Vec::new(),
            carrier: None,
            service: None,
            tracking_url: None,
            shipped_at: None,
            updated_at: Some(at.to_string()),
            lines: Vec::new(),
            packages: Vec::new(),
        };
        assert!(supersedes(&v(Shipped, T2), &v(Shipping, T1)));
        assert!(!supersedes(&v(Shipped, T1), &v(Shipped, T2)));
        assert!(!supersedes(&v(Shipping, T2), &v(Shipped, T1)));
    }
}
