//! The subset of Shopify's search syntax that `orders(query:)` supports here.
//!
//! Terms are separated by spaces and combined with AND (the explicit `AND`
//! keyword is accepted). Supported fields: `name`, `id`, `created_at`,
//! `updated_at`, `processed_at`, `financial_status`, `fulfillment_status`,
//! `status`. Unknown fields are ignored, as Shopify ignores them (it only
//! warns). `OR`, parentheses and negation are refused so a test never
//! silently gets a different result set from real Shopify.
//!
//! Values as Shopify's `orders` query documents them: `financial_status:`
//! `authorized`, `expired`, `paid`, `partially_paid`, `partially_refunded`,
//! `pending`, `refunded`, `voided` (and `any`); `fulfillment_status:`
//! `shipped`/`fulfilled`, `partial`, `unshipped`, `unfulfilled` (unshipped
//! and partial), `on_hold`, `any`; `status:` `open` (neither closed nor
//! cancelled), `closed`, `cancelled`, `not_closed`, `any`. No `status:` term
//! means every order: the GraphQL `orders` query, unlike REST's, has no
//! default status filter (see `lifecycle.rs`).

use jiff::Timestamp;

use crate::model::Order;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug)]
enum Term {
    Name(String),
    NamePrefix(String),
    Id(Cmp, u64),
    Time(TimeField, Cmp, Timestamp),
    FinancialStatus(String),
    FulfillmentStatus(String),
    Status(String),
    Text(String),
}

#[derive(Debug, Clone, Copy)]
enum TimeField {
    Created,
    Updated,
}

pub(crate) struct OrderQuery(Vec<Term>);

impl OrderQuery {
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for token in tokens(query)? {
            if token == "AND" {
                continue;
            }
            refuse_connective(&token)?;
            let Some((field, value)) = token.split_once(':') else {
                terms.push(Term::Text(unquote(&token).to_lowercase()));
                continue;
            };
            let (cmp, value) = comparator(value);
            let value = unquote(value);
            let term = match field {
                "name" => match value.strip_suffix('*') {
                    Some(prefix) => Term::NamePrefix(prefix.trim_start_matches('#').to_lowercase()),
                    None => Term::Name(value.trim_start_matches('#').to_lowercase()),
                },
                "id" => {
                    let id = value
                        .rsplit('/')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| format!("invalid id in search query: {value}"))?;
                    Term::Id(cmp, id)
                }
                "created_at" | "processed_at" => {
                    Term::Time(TimeField::Created, cmp, parse_time(value)?)
                }
                "updated_at" => Term::Time(TimeField::Updated, cmp, parse_time(value)?),
                "financial_status" => Term::FinancialStatus(value.to_lowercase()),
                "fulfillment_status" => Term::FulfillmentStatus(value.to_lowercase()),
                "status" => Term::Status(value.to_lowercase()),
                _ => continue,
            };
            terms.push(term);
        }
        Ok(OrderQuery(terms))
    }

    pub fn matches(&self, order: &Order) -> bool {
        self.0.iter().all(|t| term_matches(t, order))
    }
}

/// `fulfillmentOrders(query:)`, the root's and an order's: the documented
/// filters `status`, `assigned_location_id` and `id` (numbers), and
/// `updated_at` (comparators as for orders), ANDed. Other fields are
/// ignored as Shopify ignores them; `OR`, parentheses and negation are
/// refused as for orders, and so is free text (not modelled here).
pub(crate) struct FulfillmentOrderQuery(Vec<FoTerm>);

#[derive(Debug)]
enum FoTerm {
    Status(String),
    Location(u64),
    Updated(Cmp, Timestamp),
    Id(Cmp, u64),
}

/// What [`FulfillmentOrderQuery`] filters on, of one fulfillment order.
pub(crate) struct FoFacts<'a> {
    pub id: u64,
    pub status: &'a str,
    pub location_id: u64,
    pub updated_at: Timestamp,
}

impl FulfillmentOrderQuery {
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for token in tokens(query)? {
            if token == "AND" {
                continue;
            }
            refuse_connective(&token)?;
            let Some((field, value)) = token.split_once(':') else {
                return Err(format!(
                    "the Shopify sandbox does not support `{token}` in fulfillment order searches"
                ));
            };
            let (cmp, value) = comparator(value);
            let value = unquote(value);
            // The schema types these filters `id`: a number, as its
            // examples write it (`id:1234`); a GID is refused rather than
            // guessed at.
            let gid_number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("invalid id in search query (a number is expected): {v}"))
            };
            terms.push(match field {
                "status" => FoTerm::Status(value.to_lowercase()),
                "assigned_location_id" => FoTerm::Location(gid_number(value)?),
                "updated_at" => FoTerm::Updated(cmp, parse_time(value)?),
                "id" => FoTerm::Id(cmp, gid_number(value)?),
                _ => continue,
            });
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, fo: &FoFacts<'_>) -> bool {
        self.0.iter().all(|t| match t {
            FoTerm::Status(s) => s.eq_ignore_ascii_case(fo.status),
            FoTerm::Location(l) => *l == fo.location_id,
            FoTerm::Updated(cmp, t) => compare(fo.updated_at.cmp(t), *cmp),
            FoTerm::Id(cmp, id) => compare(fo.id.cmp(id), *cmp),
        })
    }
}

/// The order name without `#`, lower case — borrowed when it already is
/// (the usual `#1001`), so scanning every order for a name allocates nothing.
fn bare_name(o: &Order) -> std::borrow::Cow<'_, str> {
    let name = o.name.trim_start_matches('#');
    if name.is_ascii() && !name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(name.to_lowercase())
    }
}

fn term_matches(term: &Term, o: &Order) -> bool {
    match term {
        Term::Name(n) => bare_name(o) == n.as_str(),
        Term::NamePrefix(p) => bare_name(o).starts_with(p.as_str()),
        Term::Id(cmp, id) => compare(o.id.cmp(id), *cmp),
        Term::Time(field, cmp, t) => {
            let v = match field {
                TimeField::Created => o.created_at,
                TimeField::Updated => o.updated_at,
            };
            compare(v.cmp(t), *cmp)
        }
        Term::FinancialStatus(s) => s == "any" || *s == o.financial_status.to_lowercase(),
        Term::FulfillmentStatus(s) => {
            let status = o.display_fulfillment_status();
            match s.as_str() {
                "any" => true,
                // Shopify's "unfulfilled" includes partially fulfilled orders.
                "unfulfilled" => status != "FULFILLED",
                "unshipped" => status == "UNFULFILLED" || status == "ON_HOLD",
                "partial" => status == "PARTIALLY_FULFILLED",
                "shipped" | "fulfilled" => status == "FULFILLED",
                "on_hold" => status == "ON_HOLD",
                _ => false,
            }
        }
        // Sandbox orders are never closed (archived); they may be cancelled.
        Term::Status(s) => match s.as_str() {
            "open" => o.cancelled_at.is_none(),
            "cancelled" => o.cancelled_at.is_some(),
            "not_closed" | "any" => true,
            _ => false,
        },
        Term::Text(t) => {
            bare_name(o).contains(t.trim_start_matches('#'))
                || o.email.to_lowercase().contains(t.as_str())
                || o.lines.iter().any(|l| l.sku.to_lowercase() == *t)
        }
    }
}

/// `OR`, parentheses and negation are refused, so that a test never
/// silently gets a different result set from real Shopify.
fn refuse_connective(token: &str) -> Result<(), String> {
    if token == "OR" || token.starts_with('(') || token.starts_with('-') || token.starts_with("NOT")
    {
        return Err(format!(
            "the Shopify sandbox does not support `{token}` in search queries"
        ));
    }
    Ok(())
}

fn compare(ord: std::cmp::Ordering, cmp: Cmp) -> bool {
    use std::cmp::Ordering::*;
    match cmp {
        Cmp::Eq => ord == Equal,
        Cmp::Gt => ord == Greater,
        Cmp::Ge => ord != Less,
        Cmp::Lt => ord == Less,
        Cmp::Le => ord != Greater,
    }
}

fn comparator(value: &str) -> (Cmp, &str) {
    for (prefix, cmp) in [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
    ] {
        if let Some(rest) = value.strip_prefix(prefix) {
            return (cmp, rest);
        }
    }
    (Cmp::Eq, value)
}

fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Splits on spaces outside quotes; quotes stay in the token (stripped later).
fn tokens(query: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in query.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in search query: {query}"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Shopify accepts RFC 3339 timestamps, and dates or local date-times that it
/// reads in the shop's time zone (UTC in the sandbox).
fn parse_time(value: &str) -> Result<Timestamp, String> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(dt) = value.parse::<jiff::civil::DateTime>()
        && let Ok(z) = dt.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp());
    }
    if let Ok(d) = value.parse::<jiff::civil::Date>()
        && let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp());
    }
    Err(format!("invalid date in search query: {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_respect_quotes() {
        assert_eq!(
            tokens("name:'#1001' updated_at:>\"2026-11-01T00:00:00Z\"").unwrap(),
            vec!["name:'#1001'", "updated_at:>\"2026-11-01T00:00:00Z\""]
        );
    }

    #[test]
    fn parses_supported_terms() {
        let q = OrderQuery::parse(
            "name:#1001 AND updated_at:>2026-11-01T00:00:00Z created_at:>=2026-10-01 financial_status:paid fulfillment_status:unfulfilled foo:bar",
        )
        .unwrap();
        assert_eq!(q.0.len(), 5);
        assert!(OrderQuery::parse("name:1 OR name:2").is_err());
        assert!(OrderQuery::parse("updated_at:>yesterday").is_err());
    }

    #[test]
    fn fulfillment_order_terms() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let fo = FoFacts {
            id: 7,
            status: "OPEN",
            location_id: 3,
            updated_at: t("2026-12-01T10:00:00Z"),
        };
        let yes = [
            "",
            "status:open",
            "status:OPEN assigned_location_id:3",
            "updated_at:>='2026-12-01T10:00:00Z'",
            "updated_at:>2026-12-01T09:59:59Z AND id:>6",
            "unknown_field:x",
        ];
        for q in yes {
            assert!(FulfillmentOrderQuery::parse(q).unwrap().matches(&fo), "{q}");
        }
        let no = [
            "status:closed",
            "assigned_location_id:4",
            "updated_at:>'2026-12-01T10:00:00Z'",
            "id:<7",
        ];
        for q in no {
            assert!(
                !FulfillmentOrderQuery::parse(q).unwrap().matches(&fo),
                "{q}"
            );
        }
        for bad in [
            "hoodie",
            "status:open OR status:closed",
            "-status:open",
            "updated_at:>soon",
        ] {
            assert!(FulfillmentOrderQuery::parse(bad).is_err(), "{bad}");
        }
    }
}
