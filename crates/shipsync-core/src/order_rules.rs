//! A connection's import rules for store orders (`order_rules`): which
//! orders the Sales Orders channel sends to the warehouse, and when.
//!
//! Defaults (the contract's): only `PAID` orders, not partially fulfilled
//! ones, no hold period, the tag `HOLD` holds an order, no tag excludes one,
//! every location.

use serde::{Deserialize, Serialize};

/// Shopify's `OrderDisplayFinancialStatus` values (Admin API 2026-10).
pub const FINANCIAL_STATUSES: [&str; 8] = [
    "AUTHORIZED",
    "EXPIRED",
    "PAID",
    "PARTIALLY_PAID",
    "PARTIALLY_REFUNDED",
    "PENDING",
    "REFUNDED",
    "VOIDED",
];

/// The longest hold period accepted: one week.
pub const MAX_HOLD_MINUTES: u32 = 7 * 24 * 60;

/// The import rules of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderRules {
    /// Financial statuses an order must have to be sent (upper case, as
    /// Shopify spells them).
    pub financial_statuses: Vec<String>,
    /// Send orders that are already partly fulfilled (only what is still
    /// unfulfilled goes to the warehouse).
    pub include_partially_fulfilled: bool,
    /// Minutes an order waits after shipsync first sees it before it goes
    /// to the warehouse; a cancellation or edit meanwhile is applied
    /// locally and costs nothing in the warehouse.
    pub hold_minutes: u32,
    /// An order carrying one of these tags waits until the tag is removed.
    pub hold_tags: Vec<String>,
    /// An order carrying one of these tags is never sent.
    pub exclude_tags: Vec<String>,
    /// Only lines assigned to these Shopify locations (GIDs) are sent;
    /// empty: every location.
    pub location_ids: Vec<String>,
}

impl Default for OrderRules {
    fn default() -> Self {
        Self {
            financial_statuses: vec!["PAID".into()],
            include_partially_fulfilled: false,
            hold_minutes: 0,
            hold_tags: vec!["HOLD".into()],
            exclude_tags: Vec::new(),
            location_ids: Vec::new(),
        }
    }
}

impl OrderRules {
    /// Checks and normalises the rules: financial statuses upper case and
    /// known, tags trimmed and non-empty, locations as GIDs (a bare number
    /// becomes `gid://shopify/Location/N`), duplicates removed. `Err` names
    /// the field and what is wrong.
    pub fn normalized(mut self) -> Result<Self, (String, String)> {
        let mut statuses = Vec::new();
        for s in &self.financial_statuses {
            let up = s.trim().to_ascii_uppercase();
            if !FINANCIAL_STATUSES.contains(&up.as_str()) {
                return Err((
                    "order_rules.financial_statuses".into(),
                    format!(
                        "unknown financial status {s:?}; use any of {}",
                        FINANCIAL_STATUSES.join(", ")
                    ),
                ));
            }
            if !statuses.contains(&up) {
                statuses.push(up);
            }
        }
        if statuses.is_empty() {
            return Err((
                "order_rules.financial_statuses".into(),
                "name at least one financial status (e.g. PAID); otherwise switch the Sales Orders channel off".into(),
            ));
        }
        self.financial_statuses = statuses;
        if self.hold_minutes > MAX_HOLD_MINUTES {
            return Err((
                "order_rules.hold_minutes".into(),
                format!("at most {MAX_HOLD_MINUTES} minutes (one week)"),
            ));
        }
        for (field, tags) in [
            ("order_rules.hold_tags", &mut self.hold_tags),
            ("order_rules.exclude_tags", &mut self.exclude_tags),
        ] {
            let mut clean: Vec<String> = Vec::new();
            for t in tags.iter() {
                let t = t.trim();
                if t.is_empty() || t.contains(',') {
                    return Err((
                        field.into(),
                        format!("{t:?} is not a tag (empty, or contains a comma)"),
                    ));
                }
                if !clean.iter().any(|c| c.eq_ignore_ascii_case(t)) {
                    clean.push(t.to_string());
                }
            }
            *tags = clean;
        }
        let mut locations = Vec::new();
        for l in &self.location_ids {
            let l = l.trim();
            let gid = if !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()) {
                format!("gid://shopify/Location/{l}")
            } else if l
                .strip_prefix("gid://shopify/Location/")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            {
                l.to_string()
            } else {
                return Err((
                    "order_rules.location_ids".into(),
                    format!("{l:?} is not a Shopify location id (gid://shopify/Location/N or N)"),
                ));
            };
            if !locations.contains(&gid) {
                locations.push(gid);
            }
        }
        self.location_ids = locations;
        Ok(self)
    }

    /// Whether an order with this financial status (Shopify's word, any
    /// case; `None` when Shopify gives none) may be sent.
    pub fn imports_financial_status(&self, status: Option<&str>) -> bool {
        status.is_some_and(|s| {
            self.financial_statuses
                .iter()
                .any(|f| f.eq_ignore_ascii_case(s))
        })
    }

    /// The first of `tags` that holds an order, if any (case-insensitive,
    /// as Shopify compares tags).
    pub fn hold_tag<'a>(&self, tags: &'a [String]) -> Option<&'a str> {
        first_match(&self.hold_tags, tags)
    }

    /// The first of `tags` that excludes an order, if any.
    pub fn exclude_tag<'a>(&self, tags: &'a [String]) -> Option<&'a str> {
        first_match(&self.exclude_tags, tags)
    }

    /// Whether lines at this location are the connection's (`None`: a
    /// fulfillment order whose location Shopify does not name — kept only
    /// when every location is).
    pub fn covers_location(&self, location_id: Option<&str>) -> bool {
        self.location_ids.is_empty()
            || location_id.is_some_and(|l| self.location_ids.iter().any(|x| x == l))
    }
}

fn first_match<'a>(rule: &[String], tags: &'a [String]) -> Option<&'a str> {
    tags.iter()
        .map(|t| t.trim())
        .find(|t| rule.iter().any(|r| r.eq_ignore_ascii_case(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts() {
        let d = OrderRules::default();
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"financial_statuses": ["PAID"], "include_partially_fulfilled": false,
                "hold_minutes": 0, "hold_tags": ["HOLD"], "exclude_tags": [], "location_ids": []})
        );
        // An empty document is the defaults; a partial one keeps the rest.
        let parsed: OrderRules = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, d);
        let parsed: OrderRules = serde_json::from_str(r#"{"hold_minutes": 30}"#).unwrap();
        assert_eq!(parsed.hold_minutes, 30);
        assert_eq!(parsed.hold_tags, vec!["HOLD".to_string()]);
        assert!(serde_json::from_str::<OrderRules>(r#"{"hold_minute": 30}"#).is_err());
    }

    #[test]
    fn normalizing_checks_each_field() {
        let ok = |r: OrderRules| r.normalized().unwrap();
        let bad = |r: OrderRules| r.normalized().unwrap_err().0;
        let base = OrderRules::default;
        let r = ok(OrderRules {
            financial_statuses: vec!["paid".into(), " Authorized ".into(), "PAID".into()],
            hold_tags: vec![" hold ".into(), "HOLD".into(), "Fraud-check".into()],
            location_ids: vec!["12".into(), "gid://shopify/Location/12".into()],
            ..base()
        });
        assert_eq!(r.financial_statuses, ["PAID", "AUTHORIZED"]);
        assert_eq!(r.hold_tags, ["hold", "Fraud-check"]);
        assert_eq!(r.location_ids, ["gid://shopify/Location/12"]);
        let cases: Vec<(OrderRules, &str)> = vec![
            (
                OrderRules {
                    financial_statuses: vec!["CAPTURED".into()],
                    ..base()
                },
                "order_rules.financial_statuses",
            ),
            (
                OrderRules {
                    financial_statuses: vec![],
                    ..base()
                },
                "order_rules.financial_statuses",
            ),
            (
                OrderRules {
                    hold_minutes: MAX_HOLD_MINUTES + 1,
                    ..base()
                },
                "order_rules.hold_minutes",
            ),
            (
                OrderRules {
                    hold_tags: vec!["a,b".into()],
                    ..base()
                },
                "order_rules.hold_tags",
            ),
            (
                OrderRules {
                    exclude_tags: vec!["  ".into()],
                    ..base()
                },
                "order_rules.exclude_tags",
            ),
            (
                OrderRules {
                    location_ids: vec!["gid://shopify/Order/1".into()],
                    ..base()
                },
                "order_rules.location_ids",
            ),
        ];
        for (rules, field) in cases {
            assert_eq!(bad(rules), field);
        }
    }

    #[test]
    fn matching() {
        let r = OrderRules {
            exclude_tags: vec!["wholesale".into()],
            location_ids: vec!["gid://shopify/Location/1".into()],
            ..OrderRules::default()
        };
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(r.imports_financial_status(Some("paid")));
        assert!(!r.imports_financial_status(Some("AUTHORIZED")));
        assert!(!r.imports_financial_status(None));
        assert_eq!(r.hold_tag(&tags(&["vip", "hold"])), Some("hold"));
        assert_eq!(r.hold_tag(&tags(&["vip"])), None);
        assert_eq!(r.exclude_tag(&tags(&["Wholesale"])), Some("Wholesale"));
        assert!(r.covers_location(Some("gid://shopify/Location/1")));
        assert!(!r.covers_location(Some("gid://shopify/Location/2")));
        assert!(!r.covers_location(None));
        assert!(OrderRules::default().covers_location(None));
    }
}
