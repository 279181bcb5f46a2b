//! Times as people read them. Lists say how long ago ("2 min ago",
//! "3 h ago", "yesterday", then "3 Dec"); detail pages say when
//! ("3 Dec, 11:55 UTC", with the year when it is not this one). Both in a
//! `<time>` element whose `datetime` a machine reads and whose `title`
//! (shown on hover) is the exact RFC 3339 time the API gives.
//!
//! Times are shown in UTC unless the page knows a better zone (a channel's
//! schedule: its first rule's time zone).

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, TimestampRound, Unit, civil::Date};
use maud::{Markup, html};
use serde_json::Value;

/// Something a page shows as a time: the database's Unix microseconds or
/// the API's RFC 3339 text; none (or unreadable) shows as "—".
pub(super) trait Moment {
    fn timestamp(&self) -> Option<Timestamp>;
}

impl Moment for Timestamp {
    fn timestamp(&self) -> Option<Timestamp> {
        Some(*self)
    }
}

impl Moment for i64 {
    fn timestamp(&self) -> Option<Timestamp> {
        Timestamp::from_microsecond(*self).ok()
    }
}

impl Moment for Option<i64> {
    fn timestamp(&self) -> Option<Timestamp> {
        self.as_ref().and_then(Moment::timestamp)
    }
}

impl Moment for &Value {
    fn timestamp(&self) -> Option<Timestamp> {
        self.as_str()?.parse().ok()
    }
}

/// For a list: how long ago (or how soon), in UTC days.
pub(super) fn ago(t: impl Moment) -> Markup {
    element(t, |t| relative(t, Timestamp::now(), &TimeZone::UTC))
}

/// For a detail page: the date and time in UTC.
pub(super) fn at(t: impl Moment) -> Markup {
    at_in(t, &TimeZone::UTC)
}

/// For a detail page: the date and time in `tz`, named.
pub(super) fn at_in(t: impl Moment, tz: &TimeZone) -> Markup {
    element(t, |t| absolute(t, Timestamp::now(), tz))
}

fn element(t: impl Moment, text: impl Fn(Timestamp) -> String) -> Markup {
    match t.timestamp() {
        Some(t) => {
            html! { time datetime=(machine(t).to_string()) title=(t.to_string()) { (text(t)) } }
        }
        None => html! { "—" },
    }
}

/// `datetime` wants at most milliseconds (HTML's valid date-time string);
/// the exact time is in `title`.
fn machine(t: Timestamp) -> Timestamp {
    let ms = TimestampRound::new()
        .smallest(Unit::Millisecond)
        .mode(jiff::RoundMode::Trunc);
    t.round(ms).unwrap_or(t)
}

/// "just now", "2 min ago", "3 h ago", "yesterday", then "3 Dec" ("3 Dec
/// 2025" in another year than `now`'s); ahead of `now` alike: "in a
/// moment", "in 2 min", "in 3 h", "tomorrow", "5 Dec". Days are `tz`'s.
pub(super) fn relative(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let gap: SignedDuration = now.duration_since(t);
    let (past, secs) = (
        gap.is_positive() || gap.is_zero(),
        gap.as_secs().unsigned_abs(),
    );
    let span = |n: u64, unit: &str| {
        if past {
            format!("{n} {unit} ago")
        } else {
            format!("in {n} {unit}")
        }
    };
    match secs {
        0..60 if past => "just now".into(),
        0..60 => "in a moment".into(),
        60..3600 => span(secs / 60, "min"),
        3600..86400 => span(secs / 3600, "h"),
        _ => {
            let (day, today) = (
                t.to_zoned(tz.clone()).date(),
                now.to_zoned(tz.clone()).date(),
            );
            if today.yesterday().is_ok_and(|y| y == day) {
                "yesterday".into()
            } else if today.tomorrow().is_ok_and(|t| t == day) {
                "tomorrow".into()
            } else {
                short_date(day, today)
            }
        }
    }
}

/// "3 Dec, 11:55 UTC" ("3 Dec 2025, 11:55 UTC" in another year than
/// `now`'s), in `tz` and named by it ("4 Dec, 00:00 America/New_York").
pub(super) fn absolute(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let local = t.to_zoned(tz.clone());
    let today = now.to_zoned(tz.clone()).date();
    format!(
        "{}, {} {}",
        short_date(local.date(), today),
        local.strftime("%H:%M"),
        zone_name(tz, t)
    )
}

/// "3 Dec", with the year when it is not `today`'s.
fn short_date(day: Date, today: Date) -> String {
    if day.year() == today.year() {
        day.strftime("%-d %b").to_string()
    } else {
        day.strftime("%-d %b %Y").to_string()
    }
}

/// The IANA name of `tz`, or its offset at `t` when it has none.
fn zone_name(tz: &TimeZone, t: Timestamp) -> String {
    tz.iana_name()
        .map(str::to_string)
        .unwrap_or_else(|| t.to_zoned(tz.clone()).strftime("%:z").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect(s)
    }

    const NOW: &str = "2026-12-03T11:55:54.896786Z";

    #[test]
    fn relative_times() {
        let utc = TimeZone::UTC;
        let ny = TimeZone::get("America/New_York").expect("tzdb");
        let cases: &[(&str, &TimeZone, &str)] = &[
            (NOW, &utc, "just now"),
            ("2026-12-03T11:55:00Z", &utc, "just now"),
            ("2026-12-03T11:54:54.896786Z", &utc, "1 min ago"),
            ("2026-12-03T11:53:30Z", &utc, "2 min ago"),
            ("2026-12-03T10:55:55Z", &utc, "59 min ago"),
            ("2026-12-03T10:55:54Z", &utc, "1 h ago"),
            ("2026-12-03T08:30:00Z", &utc, "3 h ago"),
            ("2026-12-02T11:56:00Z", &utc, "23 h ago"),
            ("2026-12-02T11:55:00Z", &utc, "yesterday"),
            ("2026-12-02T00:00:00Z", &utc, "yesterday"),
            ("2026-12-01T23:59:59Z", &utc, "1 Dec"),
            ("2026-01-01T00:00:00Z", &utc, "1 Jan"),
            ("2025-12-31T23:59:59Z", &utc, "31 Dec 2025"),
            // Days are the zone's: 01:00 UTC on the 2nd is still the 1st in
            // New York, two days before its 3rd.
            ("2026-12-02T01:00:00Z", &ny, "1 Dec"),
            ("2026-12-02T06:00:00Z", &ny, "yesterday"),
            // Ahead of now.
            ("2026-12-03T11:56:30Z", &utc, "in a moment"),
            ("2026-12-03T12:05:55Z", &utc, "in 10 min"),
            ("2026-12-03T23:59:00Z", &utc, "in 12 h"),
            ("2026-12-04T12:00:00Z", &utc, "tomorrow"),
            ("2026-12-05T12:00:00Z", &utc, "5 Dec"),
            ("2027-03-01T00:00:00Z", &utc, "1 Mar 2027"),
        ];
        for (t, tz, want) in cases {
            assert_eq!(relative(ts(t), ts(NOW), tz), *want, "{t}");
        }
    }

    #[test]
    fn absolute_times() {
        let utc = TimeZone::UTC;
        let ny = TimeZone::get("America/New_York").expect("tzdb");
        let plus = TimeZone::fixed(jiff::tz::offset(5));
        let cases: &[(&str, &TimeZone, &str)] = &[
            (NOW, &utc, "3 Dec, 11:55 UTC"),
            ("2026-01-09T07:05:00Z", &utc, "9 Jan, 07:05 UTC"),
            ("2025-12-03T11:55:54Z", &utc, "3 Dec 2025, 11:55 UTC"),
            ("2027-01-01T00:00:00Z", &utc, "1 Jan 2027, 00:00 UTC"),
            ("2026-12-04T05:00:00Z", &ny, "4 Dec, 00:00 America/New_York"),
            // New Year in New York is still the old year there.
            (
                "2027-01-01T03:00:00Z",
                &ny,
                "31 Dec, 22:00 America/New_York",
            ),
            ("2026-12-03T20:00:00Z", &plus, "4 Dec, 01:00 +05:00"),
        ];
        for (t, tz, want) in cases {
            assert_eq!(absolute(ts(t), ts(NOW), tz), *want, "{t}");
        }
    }

    #[test]
    fn the_element_has_the_exact_time_on_hover() {
        let exact = "2026-12-03T11:55:54.896786Z";
        let micros = ts(exact).as_microsecond();
        let v = json!(exact);
        for shown in [ago(micros), at(micros), at(&v), ago(Some(micros))] {
            let html = shown.into_string();
            assert!(
                html.starts_with("<time datetime=\"2026-12-03T11:55:54.896Z\"")
                    && html.contains(&format!("title=\"{exact}\"")),
                "{html}"
            );
        }
        for none in [ago(None::<i64>), at(&Value::Null), at(&json!("soon"))] {
            assert_eq!(none.into_string(), "—");
        }
    }
}
