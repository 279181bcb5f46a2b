//! Merging tracking numbers of one store fulfillment. Pure.
//!
//! A list is `(package key, tracking number)` pairs in the order the store
//! should show them. Rules (`docs/kits-and-partials.md`):
//!
//! - A package (same container number / LPN) that comes back with a new
//!   number replaces its old number, in place.
//! - Numbers of packages not in `incoming` stay.
//! - New packages are appended, in incoming order.
//! - No number appears twice: the first occurrence is kept (so a number moved
//!   from one package to another is listed once, at its first place).
//! - Empty (blank) incoming numbers are ignored: a package that lost its
//!   number keeps the one the store has. Numbers are otherwise kept verbatim.
//! - If `incoming` names a package twice, the last number wins.

/// Merges `incoming` package numbers into `existing` ones.
pub fn merge(
    existing: &[(String, String)],
    incoming: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = existing.to_vec();
    for (key, number) in incoming {
        if number.trim().is_empty() {
            continue;
        }
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = number.clone(),
            None => out.push((key.clone(), number.clone())),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|(_, n)| seen.insert(n.clone()));
    out
}

/// The numbers of a list, in order, without duplicates or blanks.
pub fn numbers(list: &[(String, String)]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    list.iter()
        .filter(|(_, n)| !n.trim().is_empty())
        .filter(|(_, n)| seen.insert(n.clone()))
        .map(|(_, n)| n.clone())
        .collect()
}

/// The tracking URL (base) of a warehouse report that may be passed on to
/// the store: only an `https` URL, and only from a report whose origin is
/// authenticated (`signed`: a webhook delivery whose signature was verified,
/// or the Deposco API). Anything else is left out, and the store derives
/// the link from the carrier and number: an unsigned delivery must not put
/// a link of the sender's choosing into customers' shipping emails.
pub fn trusted_url(url: Option<&str>, signed: bool) -> Option<String> {
    let url = url?.trim();
    let rest = url
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])?;
    let host_present = rest
        .chars()
        .next()
        .is_some_and(|c| !matches!(c, '/' | '?' | '#'));
    let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
    (signed && host_present && clean).then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_url_table() {
        let cases: &[(&str, Option<&str>, bool, Option<&str>)] = &[
            (
                "https and signed",
                Some("https://track.example/?n="),
                true,
                Some("https://track.example/?n="),
            ),
            (
                "https but unsigned",
                Some("https://track.example/?n="),
                false,
                None,
            ),
            (
                "http and signed",
                Some("http://track.example/?n="),
                true,
                None,
            ),
            (
                "http and unsigned",
                Some("http://track.example/?n="),
                false,
                None,
            ),
            ("none", None, true, None),
            ("blank", Some("  "), true, None),
            (
                "scheme in capitals",
                Some("HTTPS://track.example/"),
                true,
                Some("HTTPS://track.example/"),
            ),
            (
                "surrounding spaces trimmed",
                Some(" https://t.example/ "),
                true,
                Some("https://t.example/"),
            ),
            ("javascript", Some("javascript:alert(1)"), true, None),
            ("no host", Some("https:///path"), true, None),
            ("scheme only", Some("https://"), true, None),
            (
                "whitespace inside",
                Some("https://t.example/a b"),
                true,
                None,
            ),
            (
                "control character",
                Some("https://t.example/\u{7}"),
                true,
                None,
            ),
            ("protocol-relative", Some("//t.example/"), true, None),
            ("short", Some("https"), true, None),
        ];
        for (name, url, signed, want) in cases {
            assert_eq!(trusted_url(*url, *signed).as_deref(), *want, "{name}");
        }
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn merge_table() {
        type P = &'static [(&'static str, &'static str)];
        let cases: &[(&str, P, P, P)] = &[
            (
                "scenario 8: same package, new number replaces",
                &[("C1", "T1")],
                &[("C1", "T9")],
                &[("C1", "T9")],
            ),
            (
                "first report",
                &[],
                &[("C1", "T1"), ("C2", "T2")],
                &[("C1", "T1"), ("C2", "T2")],
            ),
            (
                "repeat changes nothing",
                &[("C1", "T1")],
                &[("C1", "T1")],
                &[("C1", "T1")],
            ),
            (
                "other packages keep their numbers, in place",
                &[("C1", "T1"), ("C2", "T2"), ("C3", "T3")],
                &[("C2", "T8")],
                &[("C1", "T1"), ("C2", "T8"), ("C3", "T3")],
            ),
            (
                "new package appended",
                &[("C1", "T1")],
                &[("C2", "T2")],
                &[("C1", "T1"), ("C2", "T2")],
            ),
            (
                "number moved to another package listed once",
                &[("C1", "T1")],
                &[("C2", "T1")],
                &[("C1", "T1")],
            ),
            (
                "blank incoming number ignored",
                &[("C1", "T1")],
                &[("C1", " ")],
                &[("C1", "T1")],
            ),
            (
                "incoming names a package twice: last wins",
                &[],
                &[("C1", "T1"), ("C1", "T2")],
                &[("C1", "T2")],
            ),
        ];
        for (name, existing, incoming, want) in cases {
            assert_eq!(merge(&l(existing), &l(incoming)), l(want), "{name}");
        }
    }

    #[test]
    fn numbers_unique_in_order() {
        let list = l(&[("C1", "T2"), ("C2", "T1"), ("C3", "T2"), ("C4", "")]);
        assert_eq!(numbers(&list), vec!["T2".to_string(), "T1".to_string()]);
    }
}
