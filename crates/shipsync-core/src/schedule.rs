//! Channel schedules: parsing and validating the contract's JSON list, the
//! next fire time, the catch-up slot after downtime, and descriptions for
//! people. Pure: no I/O, no clock — callers pass the instants.
//!
//! Semantics (`docs/contract.md`, "Schedule semantics"):
//!
//! - Every rule is evaluated in **local wall-clock time** of its IANA zone.
//!   "Every N" counts from local midnight: each local date has a list of
//!   local slots (every 15 minutes → 00:00, 00:15, …, 23:45; every 4 hours
//!   at minute 10 → 00:10, 04:10, …, 20:10). Flexible rules have slots only
//!   on their weekdays, from `start_hour` (inclusive) every `every_minutes`
//!   up to `end_hour` (exclusive).
//! - Each local slot maps to the **first instant at which the wall clock
//!   shows that time or later**:
//!   - a time that does not exist (spring forward) fires at the instant the
//!     clock jumps, i.e. the transition itself: 02:30 on 2026-03-08 in
//!     America/New_York fires at 03:00 EDT (07:00 UTC) — not at 03:30 EDT
//!     (which jiff's "compatible" disambiguation would give);
//!   - a time that exists twice (fall back) fires once, at its first
//!     occurrence: 01:30 on 2026-11-01 in America/New_York fires at
//!     01:30 EDT (05:30 UTC); the repeated 01:30 EST does not fire.
//!
//!   Slots that map to the same instant are one fire (every 15 minutes over
//!   the spring-forward gap: 02:00, 02:15, 02:30, 02:45 and 03:00 all fire
//!   once, at 03:00 EDT). So a daily rule fires exactly once on every local
//!   date, and "every hour" across the fall-back night fires at the local
//!   labels 00:00, 01:00 (EDT), 02:00 (EST): the repeated hour fires once.
//! - Rules stack: the set fires whenever any rule fires; rules firing at the
//!   same instant are one fire.

use std::collections::BTreeSet;
use std::fmt;

use jiff::civil::{self, Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

const NANOS_PER_MINUTE: i64 = 60_000_000_000;
const MINUTES_PER_DAY: u32 = 1440;
const NANOS_PER_DAY: i64 = MINUTES_PER_DAY as i64 * NANOS_PER_MINUTE;

/// The largest `every` of a minutely rule and `every_minutes` of a flexible
/// one (a day).
pub const MAX_EVERY_MINUTES: u32 = MINUTES_PER_DAY;
/// The largest `every` of an hourly rule.
pub const MAX_EVERY_HOURS: u32 = 24;

/// A day of the week, as the contract spells it (`"mon"` … `"sun"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// `"mon"` … `"sun"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// `"mon"` … `"sun"`, in any letter case.
    pub fn parse(s: &str) -> Option<Weekday> {
        Weekday::ALL
            .into_iter()
            .find(|w| w.as_str().eq_ignore_ascii_case(s))
    }

    fn title(self) -> &'static str {
        match self {
            Weekday::Mon => "Mon",
            Weekday::Tue => "Tue",
            Weekday::Wed => "Wed",
            Weekday::Thu => "Thu",
            Weekday::Fri => "Fri",
            Weekday::Sat => "Sat",
            Weekday::Sun => "Sun",
        }
    }
}

impl From<civil::Weekday> for Weekday {
    fn from(w: civil::Weekday) -> Weekday {
        match w {
            civil::Weekday::Monday => Weekday::Mon,
            civil::Weekday::Tuesday => Weekday::Tue,
            civil::Weekday::Wednesday => Weekday::Wed,
            civil::Weekday::Thursday => Weekday::Thu,
            civil::Weekday::Friday => Weekday::Fri,
            civil::Weekday::Saturday => Weekday::Sat,
            civil::Weekday::Sunday => Weekday::Sun,
        }
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a schedule fires, in local wall-clock time (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every `every` minutes (1..=1440), counted from local midnight:
    /// every 15 → :00 :15 :30 :45. A count that does not divide the day
    /// restarts at midnight (every 7 → …, 23:48, 23:55, 00:00).
    Minutely { every: u32 },
    /// Every `every` hours (1..=24) at `minute` (0..=59), counted from local
    /// midnight: every 4 at 10 → 00:10 04:10 … 20:10.
    Hourly { every: u32, minute: u32 },
    /// Once a day at `at` ("HH:MM", 00:00..=23:59).
    Daily { at: Time },
    /// On the chosen weekdays, from `start_hour` (inclusive, 0..=23) to
    /// `end_hour` (exclusive, 1..=24), every `every_minutes` (1..=1440)
    /// counted from `start_hour`.
    Flexible {
        weekdays: BTreeSet<Weekday>,
        start_hour: u8,
        end_hour: u8,
        every_minutes: u32,
    },
}

impl Rule {
    /// The contract's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::Minutely { .. } => "minutely",
            Rule::Hourly { .. } => "hourly",
            Rule::Daily { .. } => "daily",
            Rule::Flexible { .. } => "flexible",
        }
    }

    /// Checks the ranges; the error names the field (without prefix).
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let err = |field: &str, message: &str| Err(ScheduleError::new(field, message));
        match self {
            Rule::Minutely { every } => {
                if !(1..=MAX_EVERY_MINUTES).contains(every) {
                    return err("every", "must be between 1 and 1440 (minutes)");
                }
            }
            Rule::Hourly { every, minute } => {
                if !(1..=MAX_EVERY_HOURS).contains(every) {
                    return err("every", "must be between 1 and 24 (hours)");
                }
                if *minute > 59 {
                    return err("minute", "must be between 0 and 59");
                }
            }
            Rule::Daily { at } => {
                if at.second() != 0 || at.subsec_nanosecond() != 0 {
                    return err("at", "must be a whole minute \"HH:MM\"");
                }
            }
            Rule::Flexible {
                weekdays,
                start_hour,
                end_hour,
                every_minutes,
            } => {
                if weekdays.is_empty() {
                    return err("weekdays", "must name at least one weekday");
                }
                if *start_hour > 23 {
                    return err("start_hour", "must be between 0 and 23");
                }
                if !(1..=24).contains(end_hour) {
                    return err("end_hour", "must be between 1 and 24");
                }
                if start_hour >= end_hour {
                    return err("end_hour", "must be greater than start_hour");
                }
                if !(1..=MAX_EVERY_MINUTES).contains(every_minutes) {
                    return err("every_minutes", "must be between 1 and 1440 (minutes)");
                }
            }
        }
        Ok(())
    }

    /// The local slots on `date`: an arithmetic progression of nanoseconds
    /// since local midnight. `None` when the rule has no slot that day (or
    /// its numbers are nonsense — a hand-built rule is never trusted to
    /// terminate a loop).
    fn progression(&self, date: Date) -> Option<Progression> {
        let minute = |m: u32| i64::from(m) * NANOS_PER_MINUTE;
        let p = match self {
            Rule::Minutely { every } => Progression {
                first: 0,
                step: minute(*every),
                end: NANOS_PER_DAY,
            },
            Rule::Hourly { every, minute: m } => Progression {
                first: minute(*m),
                step: minute(every.saturating_mul(60)),
                end: NANOS_PER_DAY,
            },
            Rule::Daily { at } => {
                let first = time_nanos(*at);
                Progression {
                    first,
                    step: NANOS_PER_DAY,
                    end: first + 1,
                }
            }
            Rule::Flexible {
                weekdays,
                start_hour,
                end_hour,
                every_minutes,
            } => {
                if !weekdays.contains(&Weekday::from(date.weekday())) {
                    return None;
                }
                Progression {
                    first: minute(u32::from(*start_hour) * 60),
                    step: minute(*every_minutes),
                    end: minute(u32::from(*end_hour) * 60).min(NANOS_PER_DAY),
                }
            }
        };
        (p.step > 0 && 0 <= p.first && p.first < p.end && p.first < NANOS_PER_DAY).then_some(p)
    }
}

#[derive(Clone, Copy, Debug)]
struct Progression {
    first: i64,
    step: i64,
    end: i64,
}

impl Progression {
    /// The first slot strictly after `t` (nanoseconds since midnight).
    fn after(self, t: i64) -> Option<i64> {
        let v = if t < self.first {
            self.first
        } else {
            self.first + ((t - self.first) / self.step + 1) * self.step
        };
        (v < self.end).then_some(v)
    }

    /// The last slot at or before `t`.
    fn at_or_before(self, t: i64) -> Option<i64> {
        if t < self.first {
            return None;
        }
        let t = t.min(self.end - 1);
        Some(self.first + (t - self.first) / self.step * self.step)
    }

    fn len(self) -> i64 {
        (self.end - 1 - self.first) / self.step + 1
    }
}

/// One schedule of a channel.
///
/// `time_zone` and `time_zone_name` must agree; [`Schedule::new`] and
/// [`parse_schedules`] make sure they do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// `sch_…`; empty until the caller assigns one (omitted from JSON then).
    pub id: String,
    pub rule: Rule,
    pub time_zone: TimeZone,
    /// The IANA name, as serialised (`"America/New_York"`, `"UTC"`).
    pub time_zone_name: String,
}

impl Schedule {
    /// A validated schedule; errors name the field (`every`, `time_zone`, …).
    pub fn new(
        id: impl Into<String>,
        rule: Rule,
        time_zone: &str,
    ) -> Result<Schedule, ScheduleError> {
        rule.validate()?;
        let (time_zone, time_zone_name) = zone(time_zone)
            .ok_or_else(|| ScheduleError::new("time_zone", "unknown IANA time zone"))?;
        Ok(Schedule {
            id: id.into(),
            rule,
            time_zone,
            time_zone_name,
        })
    }

    /// The default schedule of a new connection's shipments channel: every
    /// 4 hours (at minute 0, UTC), without an id.
    pub fn default_shipments() -> Schedule {
        Schedule::new(
            "",
            Rule::Hourly {
                every: 4,
                minute: 0,
            },
            "UTC",
        )
        .expect("the default schedule is valid")
    }

    /// The contract's JSON object.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        if !self.id.is_empty() {
            o.insert("id".into(), Value::from(self.id.clone()));
        }
        o.insert("kind".into(), Value::from(self.rule.kind()));
        match &self.rule {
            Rule::Minutely { every } => {
                o.insert("every".into(), Value::from(*every));
            }
            Rule::Hourly { every, minute } => {
                o.insert("every".into(), Value::from(*every));
                o.insert("minute".into(), Value::from(*minute));
            }
            Rule::Daily { at } => {
                o.insert(
                    "at".into(),
                    Value::from(format!("{:02}:{:02}", at.hour(), at.minute())),
                );
            }
            Rule::Flexible {
                weekdays,
                start_hour,
                end_hour,
                every_minutes,
            } => {
                o.insert(
                    "weekdays".into(),
                    Value::from(weekdays.iter().map(|w| w.as_str()).collect::<Vec<_>>()),
                );
                o.insert("start_hour".into(), Value::from(*start_hour));
                o.insert("end_hour".into(), Value::from(*end_hour));
                o.insert("every_minutes".into(), Value::from(*every_minutes));
            }
        }
        o.insert("time_zone".into(), Value::from(self.time_zone_name.clone()));
        Value::Object(o)
    }

    /// The first fire strictly after `after`.
    pub fn next_fire(&self, after: Timestamp) -> Option<Timestamp> {
        // Every slot at or before the local time of `after` fires at or
        // before `after`; slots after it fire after `after` except the ones
        // whose first occurrence was before a fall-back that `after` is in
        // the repeat of — at most a fold's worth, skipped here.
        let mut local = self.time_zone.to_datetime(after);
        loop {
            let slot = next_slot_after(&self.rule, local)?;
            let at = first_instant(&self.time_zone, slot)?;
            if at > after {
                return Some(at);
            }
            local = slot;
        }
    }

    /// The last fire at or before `now`.
    pub fn previous_fire(&self, now: Timestamp) -> Option<Timestamp> {
        // The last slot at or before the local time fired at or before
        // `now`; in the repeat of a fall-back, later slots may have fired
        // too (their first occurrence), so walk forward from it.
        let local = self.time_zone.to_datetime(now);
        let slot = previous_slot_at_or_before(&self.rule, local)?;
        let mut last = first_instant(&self.time_zone, slot)?;
        while let Some(next) = self.next_fire(last) {
            if next > now {
                break;
            }
            last = next;
        }
        (last <= now).then_some(last)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self))
    }
}

/// A validation error; `field` is a path like `schedules[1].every`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError {
    pub field: String,
    pub message: String,
}

impl ScheduleError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> ScheduleError {
        ScheduleError {
            field: field.into(),
            message: message.into(),
        }
    }

    fn under(self, prefix: &str) -> ScheduleError {
        let field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        ScheduleError {
            field,
            message: self.message,
        }
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ScheduleError {}

fn zone(name: &str) -> Option<(TimeZone, String)> {
    let tz = TimeZone::get(name).ok()?;
    let name = tz.iana_name().unwrap_or(name).to_string();
    Some((tz, name))
}

/// Parses and validates the contract's list of schedules
/// (`[{"id"?, "kind", …, "time_zone"}, …]`). An `id` is kept when given
/// (`null` or `""` = none; assigning ids is the caller's job); ids must be
/// unique. The errors name the field: `schedules`, `schedules[2]`,
/// `schedules[0].kind`, `schedules[1].every`, `schedules[3].weekdays[1]`, …
pub fn parse_schedules(value: &Value) -> Result<Vec<Schedule>, ScheduleError> {
    let items = value
        .as_array()
        .ok_or_else(|| ScheduleError::new("schedules", "must be a list"))?;
    let mut out: Vec<Schedule> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("schedules[{i}]");
        let s = parse_schedule(item).map_err(|e| e.under(&prefix))?;
        if !s.id.is_empty() && out.iter().any(|o| o.id == s.id) {
            return Err(ScheduleError::new(format!("{prefix}.id"), "duplicate id"));
        }
        out.push(s);
    }
    Ok(out)
}

/// The contract's list; round-trips with [`parse_schedules`].
pub fn to_json(schedules: &[Schedule]) -> Value {
    Value::Array(schedules.iter().map(Schedule::to_json).collect())
}

/// Parses one schedule object; error fields are relative (`every`, `kind`,
/// or `""` for the object itself).
fn parse_schedule(item: &Value) -> Result<Schedule, ScheduleError> {
    let obj = item.as_object().ok_or_else(|| ScheduleError {
        field: String::new(),
        message: "must be an object".into(),
    })?;
    let kind = match obj.get("kind") {
        None => return Err(ScheduleError::new("kind", "is required")),
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err(ScheduleError::new("kind", "must be a string")),
    };
    let fields: &[&str] = match kind {
        "minutely" => &["every"],
        "hourly" => &["every", "minute"],
        "daily" => &["at"],
        "flexible" => &["weekdays", "start_hour", "end_hour", "every_minutes"],
        _ => {
            return Err(ScheduleError::new(
                "kind",
                "must be one of minutely, hourly, daily, flexible",
            ));
        }
    };
    if let Some(unknown) = obj.keys().find(|k| {
        !["id", "kind", "time_zone"].contains(&k.as_str()) && !fields.contains(&k.as_str())
    }) {
        return Err(ScheduleError::new(
            unknown.as_str(),
            format!("unknown field for kind {kind}"),
        ));
    }
    let id = match obj.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ScheduleError::new("id", "must be a string")),
    };
    let tz_name = match obj.get("time_zone") {
        None => return Err(ScheduleError::new("time_zone", "is required")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ScheduleError::new("time_zone", "must be a string")),
    };
    let (time_zone, time_zone_name) =
        zone(tz_name).ok_or_else(|| ScheduleError::new("time_zone", "unknown IANA time zone"))?;

    let rule = match kind {
        "minutely" => Rule::Minutely {
            every: uint(obj, "every")?,
        },
        "hourly" => Rule::Hourly {
            every: uint(obj, "every")?,
            minute: match obj.get("minute") {
                None => 0,
                Some(_) => uint(obj, "minute")?,
            },
        },
        "daily" => Rule::Daily {
            at: match obj.get("at") {
                None => return Err(ScheduleError::new("at", "is required")),
                Some(Value::String(s)) => parse_hh_mm(s)?,
                Some(_) => return Err(ScheduleError::new("at", "must be a string \"HH:MM\"")),
            },
        },
        _ => {
            let weekdays = match obj.get("weekdays") {
                None => return Err(ScheduleError::new("weekdays", "is required")),
                Some(Value::Array(days)) => days
                    .iter()
                    .enumerate()
                    .map(|(j, d)| {
                        d.as_str().and_then(Weekday::parse).ok_or_else(|| {
                            ScheduleError::new(
                                format!("weekdays[{j}]"),
                                "must be one of mon, tue, wed, thu, fri, sat, sun",
                            )
                        })
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?,
                Some(_) => return Err(ScheduleError::new("weekdays", "must be a list")),
            };
            let start_hour: u32 = uint(obj, "start_hour")?;
            if start_hour > 23 {
                return Err(ScheduleError::new("start_hour", "must be between 0 and 23"));
            }
            let end_hour: u32 = uint(obj, "end_hour")?;
            if end_hour > 24 {
                return Err(ScheduleError::new("end_hour", "must be between 1 and 24"));
            }
            Rule::Flexible {
                weekdays,
                start_hour: start_hour as u8,
                end_hour: end_hour as u8,
                every_minutes: uint(obj, "every_minutes")?,
            }
        }
    };
    rule.validate()?;
    Ok(Schedule {
        id,
        rule,
        time_zone,
        time_zone_name,
    })
}

/// A required non-negative whole number (larger than `u32` → `u32::MAX`,
/// which every range check rejects).
fn uint(obj: &Map<String, Value>, key: &str) -> Result<u32, ScheduleError> {
    match obj.get(key) {
        None => Err(ScheduleError::new(key, "is required")),
        Some(v) => v
            .as_u64()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .ok_or_else(|| ScheduleError::new(key, "must be a non-negative whole number")),
    }
}

/// `"HH:MM"`, 00:00..=23:59, two digits each.
fn parse_hh_mm(s: &str) -> Result<Time, ScheduleError> {
    let b = s.as_bytes();
    let malformed = || ScheduleError::new("at", "must be a time \"HH:MM\"");
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return Err(malformed());
    }
    let hour = (b[0] - b'0') * 10 + (b[1] - b'0');
    let minute = (b[3] - b'0') * 10 + (b[4] - b'0');
    if hour > 23 || minute > 59 {
        return Err(ScheduleError::new("at", "must be between 00:00 and 23:59"));
    }
    Time::new(hour as i8, minute as i8, 0, 0).map_err(|_| malformed())
}

fn time_nanos(t: Time) -> i64 {
    ((i64::from(t.hour()) * 60 + i64::from(t.minute())) * 60 + i64::from(t.second()))
        * 1_000_000_000
        + i64::from(t.subsec_nanosecond())
}

fn nanos_time(ns: i64) -> Time {
    let secs = ns / 1_000_000_000;
    Time::new(
        (secs / 3600) as i8,
        (secs / 60 % 60) as i8,
        (secs % 60) as i8,
        (ns % 1_000_000_000) as i32,
    )
    .expect("nanoseconds within a day")
}

/// Days to look ahead/back for a slot: a flexible rule with one weekday has
/// one a week.
const DAYS_TO_SEARCH: usize = 8;

/// The first local slot strictly after `local`.
fn next_slot_after(rule: &Rule, local: DateTime) -> Option<DateTime> {
    let mut date = local.date();
    let mut t = time_nanos(local.time());
    for _ in 0..DAYS_TO_SEARCH {
        if let Some(v) = rule.progression(date).and_then(|p| p.after(t)) {
            return Some(date.to_datetime(nanos_time(v)));
        }
        date = date.tomorrow().ok()?;
        t = -1;
    }
    None
}

/// The last local slot at or before `local`.
fn previous_slot_at_or_before(rule: &Rule, local: DateTime) -> Option<DateTime> {
    let mut date = local.date();
    let mut t = time_nanos(local.time());
    for _ in 0..DAYS_TO_SEARCH {
        if let Some(v) = rule.progression(date).and_then(|p| p.at_or_before(t)) {
            return Some(date.to_datetime(nanos_time(v)));
        }
        date = date.yesterday().ok()?;
        t = NANOS_PER_DAY - 1;
    }
    None
}

/// The first instant at which the wall clock of `tz` shows `local` or later:
/// the instant itself when unambiguous, the first occurrence in a fold, the
/// transition (the instant the clock jumps over it) in a gap.
fn first_instant(tz: &TimeZone, local: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, after } => {
            let a = before.to_timestamp(local).ok()?;
            let b = after.to_timestamp(local).ok()?;
            Some(a.min(b))
        }
        AmbiguousOffset::Gap { before, after } => {
            // With the later offset, `local` names an instant just before
            // the transition; with the earlier one, an instant at or after
            // it. The transition is the first into `after` following the
            // former.
            let lo = after.to_timestamp(local).ok()?;
            let hi = before.to_timestamp(local).ok()?;
            tz.following(lo)
                .take_while(|t| t.timestamp() <= hi)
                .find(|t| t.offset() == after)
                .map(|t| t.timestamp())
                .or(Some(hi))
        }
    }
}

/// The first fire time strictly after `after` over all schedules (rules
/// stack; fires at the same instant are one). `None` for an empty set.
pub fn next_fire(schedules: &[Schedule], after: Timestamp) -> Option<Timestamp> {
    schedules.iter().filter_map(|s| s.next_fire(after)).min()
}

/// Whether at least one slot fell in `(last, now]`: after downtime the
/// missed slots collapse into one catch-up run. Returns the latest missed
/// slot.
pub fn missed_slot(schedules: &[Schedule], last: Timestamp, now: Timestamp) -> Option<Timestamp> {
    if now <= last {
        return None;
    }
    schedules
        .iter()
        .filter_map(|s| s.previous_fire(now))
        .max()
        .filter(|at| *at > last)
}

/// "every 4 hours", "every day at 12:00 am (America/New_York)", … The zone
/// is named unless it is UTC.
pub fn describe(s: &Schedule) -> String {
    let what = match &s.rule {
        Rule::Minutely { every: 1 } => "every minute".to_string(),
        Rule::Minutely { every } => format!("every {every} minutes"),
        Rule::Hourly { every, minute } => {
            let mut d = if *every == 1 {
                "every hour".to_string()
            } else {
                format!("every {every} hours")
            };
            if *minute != 0 {
                d.push_str(&format!(" at minute {minute}"));
            }
            d
        }
        Rule::Daily { at } => format!("every day at {}", clock(*at)),
        Rule::Flexible {
            weekdays,
            start_hour,
            end_hour,
            every_minutes,
        } => {
            let every = if *every_minutes == 1 {
                "every minute".to_string()
            } else {
                format!("every {every_minutes} minutes")
            };
            let hour = |h: u8| match Time::new(h as i8, 0, 0, 0) {
                Ok(t) => clock(t),
                Err(_) => "midnight".to_string(),
            };
            format!(
                "{every} from {} to {}, {}",
                hour(*start_hour),
                if *end_hour == 24 {
                    "midnight".to_string()
                } else {
                    hour(*end_hour)
                },
                days(weekdays)
            )
        }
    };
    if s.time_zone_name == "UTC" {
        what
    } else {
        format!("{what} ({})", s.time_zone_name)
    }
}

/// `12:00 am`, `1:30 pm`.
fn clock(t: Time) -> String {
    let h = t.hour();
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    let ampm = if h < 12 { "am" } else { "pm" };
    format!("{h12}:{:02} {ampm}", t.minute())
}

/// "every day", "Mon–Fri", "Mon, Wed, Sat–Sun"… (runs of three or more
/// days as ranges).
fn days(weekdays: &BTreeSet<Weekday>) -> String {
    if weekdays.len() == 7 {
        return "every day".into();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut run: Vec<Weekday> = Vec::new();
    let flush = |run: &mut Vec<Weekday>, parts: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 | 2 => parts.extend(run.iter().map(|w| w.title().to_string())),
            _ => parts.push(format!("{}–{}", run[0].title(), run[run.len() - 1].title())),
        }
        run.clear();
    };
    for w in Weekday::ALL {
        if weekdays.contains(&w) {
            run.push(w);
        } else {
            flush(&mut run, &mut parts);
        }
    }
    flush(&mut run, &mut parts);
    parts.join(", ")
}

/// Whether the set can fire more than once a day: the shortest interval
/// between two fires over a week is under 24 hours — one rule with two
/// slots on some day, or two rules firing at different instants less than a
/// day apart. Daylight-saving shifts don't count (a daily run is not "more
/// often than daily" on the 23-hour day): rules are compared with the UTC
/// offsets their zones have at 24 reference instants through 2026, each
/// taken as fixed. Lets the UI recommend one daily run when webhooks are on.
pub fn runs_more_often_than_daily(schedules: &[Schedule]) -> bool {
    // A rule with two slots on one local day.
    let monday = civil::date(2026, 1, 5);
    for s in schedules {
        let mut date = monday;
        for _ in 0..7 {
            if s.rule.progression(date).is_some_and(|p| p.len() > 1) {
                return true;
            }
            date = date.tomorrow().expect("2026 has tomorrows");
        }
    }
    if schedules.len() < 2 {
        return false;
    }
    // Each rule fires at most once a local day: compare the instants.
    let day = SignedDuration::from_hours(24);
    let span = SignedDuration::from_hours(24 * 15);
    for month in 1..=12 {
        for day_of_month in [1, 15] {
            let reference = civil::date(2026, month, day_of_month)
                .at(12, 0, 0, 0)
                .to_zoned(TimeZone::UTC)
                .expect("2026 is in range")
                .timestamp();
            let fixed: Vec<Schedule> = schedules
                .iter()
                .map(|s| Schedule {
                    time_zone: TimeZone::fixed(s.time_zone.to_offset(reference)),
                    ..s.clone()
                })
                .collect();
            let end = reference + span;
            let mut previous: Option<Timestamp> = None;
            let mut t = reference;
            while let Some(at) = next_fire(&fixed, t).filter(|at| *at <= end) {
                if previous.is_some_and(|p| at.duration_since(p) < day) {
                    return true;
                }
                previous = Some(at);
                t = at;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn one(v: Value) -> Vec<Schedule> {
        parse_schedules(&json!([v])).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fires(schedules: &[Schedule], after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = after;
        for _ in 0..n {
            t = next_fire(schedules, t).expect("a next fire");
            out.push(t);
        }
        out
    }

    const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

    #[test]
    fn next_fire_of_each_kind_in_utc() {
        let cases: &[(Value, &str, &str)] = &[
            // every 15 minutes, from midnight
            (
                json!({"kind":"minutely","every":15,"time_zone":"UTC"}),
                "2026-01-01T10:07:00Z",
                "2026-01-01T10:15:00Z",
            ),
            (
                json!({"kind":"minutely","every":15,"time_zone":"UTC"}),
                "2026-01-01T10:15:00Z",
                "2026-01-01T10:30:00Z",
            ),
            (
                json!({"kind":"minutely","every":15,"time_zone":"UTC"}),
                "2026-01-01T10:14:59.999Z",
                "2026-01-01T10:15:00Z",
            ),
            (
                json!({"kind":"minutely","every":15,"time_zone":"UTC"}),
                "2026-01-01T23:50:00Z",
                "2026-01-02T00:00:00Z",
            ),
            (
                json!({"kind":"minutely","every":1,"time_zone":"UTC"}),
                "2026-01-01T23:59:00Z",
                "2026-01-02T00:00:00Z",
            ),
            // a count that does not divide the day restarts at midnight
            (
                json!({"kind":"minutely","every":7,"time_zone":"UTC"}),
                "2026-01-01T23:54:00Z",
                "2026-01-01T23:55:00Z",
            ),
            (
                json!({"kind":"minutely","every":7,"time_zone":"UTC"}),
                "2026-01-01T23:55:00Z",
                "2026-01-02T00:00:00Z",
            ),
            (
                json!({"kind":"minutely","every":1440,"time_zone":"UTC"}),
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
            ),
            // every 4 hours at minute 10
            (
                json!({"kind":"hourly","every":4,"minute":10,"time_zone":"UTC"}),
                "2026-01-01T00:00:00Z",
                "2026-01-01T00:10:00Z",
            ),
            (
                json!({"kind":"hourly","every":4,"minute":10,"time_zone":"UTC"}),
                "2026-01-01T00:10:00Z",
                "2026-01-01T04:10:00Z",
            ),
            (
                json!({"kind":"hourly","every":4,"minute":10,"time_zone":"UTC"}),
                "2026-01-01T20:10:00Z",
                "2026-01-02T00:10:00Z",
            ),
            (
                json!({"kind":"hourly","every":5,"time_zone":"UTC"}),
                "2026-01-01T20:00:00Z",
                "2026-01-02T00:00:00Z",
            ),
            (
                json!({"kind":"hourly","every":24,"minute":30,"time_zone":"UTC"}),
                "2026-01-01T00:30:00Z",
                "2026-01-02T00:30:00Z",
            ),
            // daily
            (
                json!({"kind":"daily","at":"00:00","time_zone":"UTC"}),
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
            ),
            (
                json!({"kind":"daily","at":"00:00","time_zone":"UTC"}),
                "2025-12-31T23:59:59.999Z",
                "2026-01-01T00:00:00Z",
            ),
            (
                json!({"kind":"daily","at":"23:59","time_zone":"UTC"}),
                "2026-01-01T12:00:00Z",
                "2026-01-01T23:59:00Z",
            ),
            // flexible mon–fri 8–18 every 30 (2026-01-09 is a Friday)
            (
                json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}),
                "2026-01-09T17:29:00Z",
                "2026-01-09T17:30:00Z",
            ),
            (
                json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}),
                "2026-01-09T17:30:00Z",
                "2026-01-12T08:00:00Z",
            ),
            (
                json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}),
                "2026-01-10T09:00:00Z",
                "2026-01-12T08:00:00Z",
            ),
            (
                json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}),
                "2026-01-07T18:00:00Z",
                "2026-01-08T08:00:00Z",
            ),
            (
                json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":45,"time_zone":"UTC"}),
                "2026-01-07T17:15:00Z",
                "2026-01-07T17:45:00Z",
            ),
            (
                json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":45,"time_zone":"UTC"}),
                "2026-01-07T17:45:00Z",
                "2026-01-08T08:00:00Z",
            ),
            // one weekday: a week ahead (2026-01-10 is a Saturday)
            (
                json!({"kind":"flexible","weekdays":["sat"],"start_hour":0,"end_hour":24,"every_minutes":1440,"time_zone":"UTC"}),
                "2026-01-10T00:00:00Z",
                "2026-01-17T00:00:00Z",
            ),
            (
                json!({"kind":"flexible","weekdays":["sat"],"start_hour":22,"end_hour":24,"every_minutes":60,"time_zone":"UTC"}),
                "2026-01-10T23:00:00Z",
                "2026-01-17T22:00:00Z",
            ),
        ];
        for (i, (rule, after, want)) in cases.iter().enumerate() {
            let s = one(rule.clone());
            assert_eq!(
                next_fire(&s, ts(after)),
                Some(ts(want)),
                "case {i}: {rule} after {after}"
            );
        }
    }

    #[test]
    fn next_fire_across_dst_changes_of_2026() {
        let ny = "America/New_York";
        let berlin = "Europe/Berlin";
        let daily = |at: &str, tz: &str| json!({"kind":"daily","at":at,"time_zone":tz});
        // (rule, after, the fires that follow)
        let cases: Vec<(Value, &str, Vec<&str>)> = vec![
            // New York, spring forward 2026-03-08 02:00 EST → 03:00 EDT (07:00Z)
            (
                daily("00:00", ny),
                "2026-03-07T05:00:00Z",
                vec!["2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"],
            ),
            (
                daily("12:00", ny),
                "2026-03-07T17:00:00Z",
                vec!["2026-03-08T16:00:00Z", "2026-03-09T16:00:00Z"],
            ),
            // 02:30 does not exist: fires at the jump, 03:00 EDT
            (
                daily("02:30", ny),
                "2026-03-07T07:30:00Z",
                vec!["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
            ),
            // New York, fall back 2026-11-01 02:00 EDT → 01:00 EST (06:00Z)
            (
                daily("00:00", ny),
                "2026-10-31T04:00:00Z",
                vec!["2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"],
            ),
            (
                daily("12:00", ny),
                "2026-10-31T16:00:00Z",
                vec!["2026-11-01T17:00:00Z", "2026-11-02T17:00:00Z"],
            ),
            // 01:30 exists twice: once, at the first (EDT)
            (
                daily("01:30", ny),
                "2026-10-31T05:30:00Z",
                vec!["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
            ),
            // … also when asked during the repeated hour (01:10 EST)
            (
                daily("01:30", ny),
                "2026-11-01T06:10:00Z",
                vec!["2026-11-02T06:30:00Z"],
            ),
            // Berlin, spring forward 2026-03-29 02:00 CET → 03:00 CEST (01:00Z)
            (
                daily("00:00", berlin),
                "2026-03-27T23:00:00Z",
                vec!["2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"],
            ),
            (
                daily("12:00", berlin),
                "2026-03-28T11:00:00Z",
                vec!["2026-03-29T10:00:00Z", "2026-03-30T10:00:00Z"],
            ),
            (
                daily("02:30", berlin),
                "2026-03-28T01:30:00Z",
                vec!["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            ),
            // Berlin, fall back 2026-10-25 03:00 CEST → 02:00 CET (01:00Z)
            (
                daily("00:00", berlin),
                "2026-10-23T22:00:00Z",
                vec!["2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"],
            ),
            (
                daily("12:00", berlin),
                "2026-10-24T10:00:00Z",
                vec!["2026-10-25T11:00:00Z", "2026-10-26T11:00:00Z"],
            ),
            (
                daily("02:30", berlin),
                "2026-10-24T00:30:00Z",
                vec!["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            ),
            (
                daily("02:30", berlin),
                "2026-10-25T01:00:00Z",
                vec!["2026-10-26T01:30:00Z"],
            ),
            // every hour across the fall-back night: local labels, the
            // repeated 01:00 fires once (at 01:00 EDT)
            (
                json!({"kind":"hourly","every":1,"time_zone":ny}),
                "2026-11-01T03:30:00Z",
                vec![
                    "2026-11-01T04:00:00Z",
                    "2026-11-01T05:00:00Z",
                    "2026-11-01T07:00:00Z",
                    "2026-11-01T08:00:00Z",
                ],
            ),
            // … and asked during the repeated hour
            (
                json!({"kind":"hourly","every":1,"time_zone":ny}),
                "2026-11-01T06:30:00Z",
                vec!["2026-11-01T07:00:00Z"],
            ),
            // every hour across spring forward: 02:00 → 03:00 EDT, once
            (
                json!({"kind":"hourly","every":1,"time_zone":ny}),
                "2026-03-08T05:30:00Z",
                vec![
                    "2026-03-08T06:00:00Z",
                    "2026-03-08T07:00:00Z",
                    "2026-03-08T08:00:00Z",
                ],
            ),
            // every 15 minutes: 02:00 … 02:45 and 03:00 collapse into 03:00 EDT
            (
                json!({"kind":"minutely","every":15,"time_zone":ny}),
                "2026-03-08T06:40:00Z",
                vec![
                    "2026-03-08T06:45:00Z",
                    "2026-03-08T07:00:00Z",
                    "2026-03-08T07:15:00Z",
                ],
            ),
            // every 15 minutes across fall back: 01:00 … 01:45 EDT, then 02:00 EST
            (
                json!({"kind":"minutely","every":15,"time_zone":ny}),
                "2026-11-01T05:40:00Z",
                vec!["2026-11-01T05:45:00Z", "2026-11-01T07:00:00Z"],
            ),
            // Santiago springs forward at midnight (2026-09-06 00:00 -04 →
            // 01:00 -03): the midnight run fires at 01:00, on its own date
            (
                daily("00:00", "America/Santiago"),
                "2026-09-05T12:00:00Z",
                vec!["2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"],
            ),
            // every 4 hours at minute 10 in Berlin on the spring-forward day
            (
                json!({"kind":"hourly","every":4,"minute":10,"time_zone":berlin}),
                "2026-03-28T20:00:00Z",
                vec![
                    "2026-03-28T23:10:00Z",
                    "2026-03-29T02:10:00Z",
                    "2026-03-29T06:10:00Z",
                ],
            ),
        ];
        for (i, (rule, after, want)) in cases.iter().enumerate() {
            let s = one(rule.clone());
            let want: Vec<Timestamp> = want.iter().map(|w| ts(w)).collect();
            assert_eq!(
                fires(&s, ts(after), want.len()),
                want,
                "case {i}: {rule} after {after}"
            );
        }
    }

    #[test]
    fn daily_fires_once_per_local_day_over_30_days_with_a_change() {
        // Santiago changes at midnight (April and September)
        for tz in ["America/New_York", "Europe/Berlin", "America/Santiago"] {
            for at in ["00:00", "12:00", "01:30", "02:30", "23:59"] {
                for start in [
                    civil::date(2026, 2, 20),
                    civil::date(2026, 3, 15),
                    civil::date(2026, 8, 25),
                    civil::date(2026, 10, 10),
                ] {
                    let s = one(json!({"kind":"daily","at":at,"time_zone":tz}));
                    let zone = TimeZone::get(tz).unwrap();
                    let begin = start.to_zoned(zone.clone()).unwrap().timestamp();
                    let end = (start + jiff::Span::new().days(30))
                        .to_zoned(zone.clone())
                        .unwrap()
                        .timestamp();
                    let mut dates = Vec::new();
                    let mut t = begin - SignedDuration::from_nanos(1);
                    while let Some(at) = next_fire(&s, t).filter(|at| *at < end) {
                        dates.push(zone.to_datetime(at).date());
                        t = at;
                    }
                    let want: Vec<Date> =
                        (0..30).map(|d| start + jiff::Span::new().days(d)).collect();
                    assert_eq!(dates, want, "{tz} daily {at} from {start}");
                }
            }
        }
    }

    #[test]
    fn flexible_weekdays_in_berlin() {
        let s = one(
            json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,
            "every_minutes":30,"time_zone":"Europe/Berlin"}),
        );
        // Friday 2026-03-27 17:30 CET → Monday 2026-03-30 08:00 CEST (over the change)
        assert_eq!(
            next_fire(&s, ts("2026-03-27T16:00:00Z")),
            Some(ts("2026-03-27T16:30:00Z"))
        );
        assert_eq!(
            next_fire(&s, ts("2026-03-27T16:30:00Z")),
            Some(ts("2026-03-30T06:00:00Z"))
        );
        // Friday 2026-06-12 17:30 CEST → Monday 08:00 CEST
        assert_eq!(
            next_fire(&s, ts("2026-06-12T15:30:00Z")),
            Some(ts("2026-06-15T06:00:00Z"))
        );
        // 20 runs a weekday: 08:00 … 17:30
        let day = fires(&s, ts("2026-06-15T05:00:00Z"), 21);
        assert_eq!(day[0], ts("2026-06-15T06:00:00Z"));
        assert_eq!(day[19], ts("2026-06-15T15:30:00Z"));
        assert_eq!(day[20], ts("2026-06-16T06:00:00Z"));
    }

    #[test]
    fn stacked_rules_that_coincide_fire_once() {
        let s = parse_schedules(&json!([
            {"kind":"daily","at":"00:00","time_zone":"UTC"},
            {"kind":"hourly","every":4,"time_zone":"UTC"},
            // 01:00 in Berlin in winter is 00:00 UTC
            {"kind":"daily","at":"01:00","time_zone":"Europe/Berlin"},
            {"kind":"minutely","every":240,"time_zone":"UTC"},
        ]))
        .unwrap();
        let day = fires(&s, ts("2026-01-01T23:00:00Z"), 7);
        let want: Vec<Timestamp> = [
            "2026-01-02T00:00:00Z",
            "2026-01-02T04:00:00Z",
            "2026-01-02T08:00:00Z",
            "2026-01-02T12:00:00Z",
            "2026-01-02T16:00:00Z",
            "2026-01-02T20:00:00Z",
            "2026-01-03T00:00:00Z",
        ]
        .iter()
        .map(|w| ts(w))
        .collect();
        assert_eq!(day, want);
        // different instants interleave
        let s = parse_schedules(&json!([
            {"kind":"daily","at":"12:00","time_zone":"UTC"},
            {"kind":"daily","at":"00:00","time_zone":"America/New_York"},
        ]))
        .unwrap();
        assert_eq!(
            fires(&s, ts("2026-01-01T00:00:00Z"), 3),
            vec![
                ts("2026-01-01T05:00:00Z"),
                ts("2026-01-01T12:00:00Z"),
                ts("2026-01-02T05:00:00Z")
            ]
        );
        assert_eq!(next_fire(&[], ts("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn missed_slot_collapses_downtime_into_the_latest_slot() {
        let every4 = one(json!({"kind":"hourly","every":4,"time_zone":"UTC"}));
        let nightly_ny = one(json!({"kind":"daily","at":"01:30","time_zone":"America/New_York"}));
        let spring = one(json!({"kind":"daily","at":"02:30","time_zone":"America/New_York"}));
        let saturdays = one(
            json!({"kind":"flexible","weekdays":["sat"],"start_hour":9,"end_hour":10,"every_minutes":60,"time_zone":"UTC"}),
        );
        let mut both = every4.clone();
        both.extend(one(json!({"kind":"daily","at":"01:00","time_zone":"UTC"})));
        // (schedules, last, now, want)
        let cases: Vec<(&[Schedule], &str, &str, Option<&str>)> = vec![
            // three days down: one slot, the latest
            (
                &every4,
                "2026-01-01T00:00:00Z",
                "2026-01-04T01:00:00Z",
                Some("2026-01-04T00:00:00Z"),
            ),
            (
                &every4,
                "2026-01-01T00:00:00Z",
                "2026-01-04T03:59:59Z",
                Some("2026-01-04T00:00:00Z"),
            ),
            // (last, now]: now is included, last is not
            (
                &every4,
                "2026-01-04T00:00:00Z",
                "2026-01-04T04:00:00Z",
                Some("2026-01-04T04:00:00Z"),
            ),
            (
                &every4,
                "2026-01-04T00:00:00Z",
                "2026-01-04T03:59:59Z",
                None,
            ),
            (
                &every4,
                "2026-01-04T00:00:00Z",
                "2026-01-04T00:00:00Z",
                None,
            ),
            (
                &every4,
                "2026-01-04T05:00:00Z",
                "2026-01-04T01:00:00Z",
                None,
            ),
            // the latest over the rules
            (
                &both,
                "2026-01-01T00:00:00Z",
                "2026-01-04T01:30:00Z",
                Some("2026-01-04T01:00:00Z"),
            ),
            (&both, "2026-01-04T01:00:00Z", "2026-01-04T02:00:00Z", None),
            // daily 01:30 NY fired at 01:30 EDT; at 01:10 EST (the repeat)
            // that is the latest slot even though 01:30 is "ahead" locally
            (
                &nightly_ny,
                "2026-10-31T12:00:00Z",
                "2026-11-01T06:10:00Z",
                Some("2026-11-01T05:30:00Z"),
            ),
            (
                &nightly_ny,
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:40:00Z",
                None,
            ),
            // spring forward: 02:30 fired at 03:00 EDT
            (
                &spring,
                "2026-03-05T00:00:00Z",
                "2026-03-08T07:00:00Z",
                Some("2026-03-08T07:00:00Z"),
            ),
            // one weekday, weeks of downtime
            (
                &saturdays,
                "2025-12-01T00:00:00Z",
                "2026-01-16T00:00:00Z",
                Some("2026-01-10T09:00:00Z"),
            ),
        ];
        for (i, (s, last, now, want)) in cases.iter().enumerate() {
            assert_eq!(
                missed_slot(s, ts(last), ts(now)),
                want.map(ts),
                "case {i}: ({last}, {now}]"
            );
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"kind":"daily"}), "schedules", "must be a list"),
            (json!(["daily"]), "schedules[0]", "must be an object"),
            (
                json!([{"at":"00:00","time_zone":"UTC"}]),
                "schedules[0].kind",
                "is required",
            ),
            (
                json!([{"kind":"weekly","time_zone":"UTC"}]),
                "schedules[0].kind",
                "must be one of",
            ),
            (
                json!([{"kind":7,"time_zone":"UTC"}]),
                "schedules[0].kind",
                "must be a string",
            ),
            (
                json!([{"kind":"daily","at":"00:00"}]),
                "schedules[0].time_zone",
                "is required",
            ),
            (
                json!([{"kind":"daily","at":"00:00","time_zone":"Mars/Olympus"}]),
                "schedules[0].time_zone",
                "unknown",
            ),
            (
                json!([{"kind":"daily","at":"00:00","time_zone":5}]),
                "schedules[0].time_zone",
                "must be a string",
            ),
            (
                json!([{"kind":"daily","at":"00:00","time_zone":"UTC","every":3}]),
                "schedules[0].every",
                "unknown field",
            ),
            (
                json!([{"kind":"daily","at":"00:00","time_zone":"UTC","colour":"red"}]),
                "schedules[0].colour",
                "unknown field",
            ),
            (
                json!([{"kind":"daily","at":"00:00","time_zone":"UTC","id":5}]),
                "schedules[0].id",
                "must be a string",
            ),
            (
                json!([{"kind":"daily","at":"00:00","time_zone":"UTC","id":"sch_1"},
                    {"kind":"daily","at":"01:00","time_zone":"UTC","id":"sch_1"}]),
                "schedules[1].id",
                "duplicate",
            ),
            (
                json!([{"kind":"daily","at":"00:00","time_zone":"UTC"},
                    {"kind":"minutely","every":0,"time_zone":"UTC"}]),
                "schedules[1].every",
                "between 1 and 1440",
            ),
            (
                json!([{"kind":"minutely","every":1441,"time_zone":"UTC"}]),
                "schedules[0].every",
                "between 1 and 1440",
            ),
            (
                json!([{"kind":"minutely","every":-5,"time_zone":"UTC"}]),
                "schedules[0].every",
                "whole number",
            ),
            (
                json!([{"kind":"minutely","every":2.5,"time_zone":"UTC"}]),
                "schedules[0].every",
                "whole number",
            ),
            (
                json!([{"kind":"minutely","every":"15","time_zone":"UTC"}]),
                "schedules[0].every",
                "whole number",
            ),
            (
                json!([{"kind":"minutely","time_zone":"UTC"}]),
                "schedules[0].every",
                "is required",
            ),
            (
                json!([{"kind":"minutely","every":4294967296u64,"time_zone":"UTC"}]),
                "schedules[0].every",
                "between 1 and 1440",
            ),
            (
                json!([{"kind":"hourly","every":0,"time_zone":"UTC"}]),
                "schedules[0].every",
                "between 1 and 24",
            ),
            (
                json!([{"kind":"hourly","every":25,"time_zone":"UTC"}]),
                "schedules[0].every",
                "between 1 and 24",
            ),
            (
                json!([{"kind":"hourly","every":4,"minute":60,"time_zone":"UTC"}]),
                "schedules[0].minute",
                "between 0 and 59",
            ),
            (
                json!([{"kind":"daily","at":"24:00","time_zone":"UTC"}]),
                "schedules[0].at",
                "between 00:00 and 23:59",
            ),
            (
                json!([{"kind":"daily","at":"12:60","time_zone":"UTC"}]),
                "schedules[0].at",
                "between 00:00 and 23:59",
            ),
            (
                json!([{"kind":"daily","at":"9:00","time_zone":"UTC"}]),
                "schedules[0].at",
                "HH:MM",
            ),
            (
                json!([{"kind":"daily","at":"09:00:00","time_zone":"UTC"}]),
                "schedules[0].at",
                "HH:MM",
            ),
            (
                json!([{"kind":"daily","at":"noon","time_zone":"UTC"}]),
                "schedules[0].at",
                "HH:MM",
            ),
            (
                json!([{"kind":"daily","at":900,"time_zone":"UTC"}]),
                "schedules[0].at",
                "HH:MM",
            ),
            (
                json!([{"kind":"daily","time_zone":"UTC"}]),
                "schedules[0].at",
                "is required",
            ),
            (
                json!([{"kind":"flexible","weekdays":[],"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}]),
                "schedules[0].weekdays",
                "at least one",
            ),
            (
                json!([{"kind":"flexible","weekdays":["mon","funday"],"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}]),
                "schedules[0].weekdays[1]",
                "must be one of mon",
            ),
            (
                json!([{"kind":"flexible","weekdays":"mon","start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}]),
                "schedules[0].weekdays",
                "must be a list",
            ),
            (
                json!([{"kind":"flexible","weekdays":["mon"],"start_hour":18,"end_hour":8,"every_minutes":30,"time_zone":"UTC"}]),
                "schedules[0].end_hour",
                "greater than start_hour",
            ),
            (
                json!([{"kind":"flexible","weekdays":["mon"],"start_hour":8,"end_hour":8,"every_minutes":30,"time_zone":"UTC"}]),
                "schedules[0].end_hour",
                "greater than start_hour",
            ),
            (
                json!([{"kind":"flexible","weekdays":["mon"],"start_hour":24,"end_hour":24,"every_minutes":30,"time_zone":"UTC"}]),
                "schedules[0].start_hour",
                "between 0 and 23",
            ),
            (
                json!([{"kind":"flexible","weekdays":["mon"],"start_hour":8,"end_hour":25,"every_minutes":30,"time_zone":"UTC"}]),
                "schedules[0].end_hour",
                "between 1 and 24",
            ),
            (
                json!([{"kind":"flexible","weekdays":["mon"],"start_hour":8,"end_hour":18,"every_minutes":0,"time_zone":"UTC"}]),
                "schedules[0].every_minutes",
                "between 1 and 1440",
            ),
            (
                json!([{"kind":"flexible","weekdays":["mon"],"start_hour":8,"end_hour":18,"time_zone":"UTC"}]),
                "schedules[0].every_minutes",
                "is required",
            ),
        ];
        for (input, field, message) in cases {
            let err = parse_schedules(&input).expect_err(&input.to_string());
            assert_eq!(err.field, field, "{input}: {err}");
            assert!(err.message.contains(message), "{input}: {err}");
        }
    }

    #[test]
    fn parse_accepts_and_round_trips() {
        let input = json!([
            {"id":"sch_a","kind":"daily","at":"00:00","time_zone":"America/New_York"},
            {"id":"sch_b","kind":"hourly","every":4,"minute":0,"time_zone":"UTC"},
            {"id":"sch_c","kind":"minutely","every":15,"time_zone":"UTC"},
            {"id":"sch_d","kind":"flexible","weekdays":["mon","tue","wed","thu","fri"],
             "start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"Europe/Berlin"},
        ]);
        let parsed = parse_schedules(&input).unwrap();
        assert_eq!(parsed[0].id, "sch_a");
        assert_eq!(
            parsed[0].rule,
            Rule::Daily {
                at: civil::time(0, 0, 0, 0)
            }
        );
        assert_eq!(to_json(&parsed), input);
        assert_eq!(parse_schedules(&to_json(&parsed)).unwrap(), parsed);

        // no id (or null / ""), minute defaults to 0, weekday case and
        // order and duplicates are normalised
        let loose = json!([
            {"kind":"hourly","every":4,"time_zone":"UTC"},
            {"id":null,"kind":"flexible","weekdays":["FRI","mon","Mon"],"start_hour":0,"end_hour":24,
             "every_minutes":1440,"time_zone":"Europe/Berlin"},
            {"id":"","kind":"daily","at":"23:59","time_zone":"Asia/Kolkata"},
        ]);
        let parsed = parse_schedules(&loose).unwrap();
        assert!(parsed.iter().all(|s| s.id.is_empty()));
        assert_eq!(parsed[0], Schedule::default_shipments());
        assert_eq!(
            to_json(&parsed),
            json!([
                {"kind":"hourly","every":4,"minute":0,"time_zone":"UTC"},
                {"kind":"flexible","weekdays":["mon","fri"],"start_hour":0,"end_hour":24,
                 "every_minutes":1440,"time_zone":"Europe/Berlin"},
                {"kind":"daily","at":"23:59","time_zone":"Asia/Kolkata"},
            ])
        );
        assert_eq!(parse_schedules(&json!([])).unwrap(), vec![]);
    }

    #[test]
    fn schedule_new_validates() {
        assert!(Schedule::new("x", Rule::Minutely { every: 5 }, "Europe/Berlin").is_ok());
        let e = Schedule::new("x", Rule::Minutely { every: 0 }, "UTC").unwrap_err();
        assert_eq!(e.field, "every");
        let e = Schedule::new("x", Rule::Minutely { every: 5 }, "Nowhere/Else").unwrap_err();
        assert_eq!(e.field, "time_zone");
        // a hand-built nonsense rule never fires (and never loops)
        let bad = Schedule {
            rule: Rule::Minutely { every: 0 },
            ..Schedule::default_shipments()
        };
        assert_eq!(
            next_fire(std::slice::from_ref(&bad), ts("2026-01-01T00:00:00Z")),
            None
        );
        assert_eq!(
            missed_slot(
                &[bad],
                ts("2026-01-01T00:00:00Z"),
                ts("2026-02-01T00:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn describes() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"kind":"minutely","every":1,"time_zone":"UTC"}),
                "every minute",
            ),
            (
                json!({"kind":"minutely","every":15,"time_zone":"UTC"}),
                "every 15 minutes",
            ),
            (
                json!({"kind":"hourly","every":4,"minute":0,"time_zone":"UTC"}),
                "every 4 hours",
            ),
            (
                json!({"kind":"hourly","every":1,"minute":0,"time_zone":"UTC"}),
                "every hour",
            ),
            (
                json!({"kind":"hourly","every":4,"minute":10,"time_zone":"Europe/Berlin"}),
                "every 4 hours at minute 10 (Europe/Berlin)",
            ),
            (
                json!({"kind":"daily","at":"00:00","time_zone":"America/New_York"}),
                "every day at 12:00 am (America/New_York)",
            ),
            (
                json!({"kind":"daily","at":"12:00","time_zone":"UTC"}),
                "every day at 12:00 pm",
            ),
            (
                json!({"kind":"daily","at":"13:05","time_zone":"UTC"}),
                "every day at 1:05 pm",
            ),
            (
                json!({"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"Europe/Berlin"}),
                "every 30 minutes from 8:00 am to 6:00 pm, Mon–Fri (Europe/Berlin)",
            ),
            (
                json!({"kind":"flexible","weekdays":["sat","sun","mon"],"start_hour":0,"end_hour":24,"every_minutes":60,"time_zone":"UTC"}),
                "every 60 minutes from 12:00 am to midnight, Mon, Sat, Sun",
            ),
            (
                json!({"kind":"flexible","weekdays":["mon","tue","wed","thu","fri","sat","sun"],"start_hour":9,"end_hour":10,"every_minutes":1,"time_zone":"UTC"}),
                "every minute from 9:00 am to 10:00 am, every day",
            ),
        ];
        for (rule, want) in cases {
            let s = one(rule.clone());
            assert_eq!(describe(&s[0]), want, "{rule}");
            assert_eq!(s[0].to_string(), want);
        }
    }

    #[test]
    fn more_often_than_daily() {
        let daily = |at: &str, tz: &str| json!({"kind":"daily","at":at,"time_zone":tz});
        let cases: Vec<(Value, bool)> = vec![
            (json!([]), false),
            (json!([daily("00:00", "America/New_York")]), false),
            (json!([{"kind":"hourly","every":4,"time_zone":"UTC"}]), true),
            (
                json!([{"kind":"hourly","every":24,"minute":5,"time_zone":"UTC"}]),
                false,
            ),
            (
                json!([{"kind":"minutely","every":1440,"time_zone":"UTC"}]),
                false,
            ),
            (
                json!([{"kind":"minutely","every":720,"time_zone":"UTC"}]),
                true,
            ),
            (
                json!([{"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":18,"every_minutes":30,"time_zone":"UTC"}]),
                true,
            ),
            (
                json!([{"kind":"flexible","weekdays":WEEKDAYS,"start_hour":8,"end_hour":9,"every_minutes":60,"time_zone":"UTC"}]),
                false,
            ),
            // two daily runs
            (json!([daily("00:00", "UTC"), daily("12:00", "UTC")]), true),
            // the same instant twice is one run
            (
                json!([daily("00:00", "UTC"), daily("00:00", "Etc/UTC")]),
                false,
            ),
            (json!([daily("00:00", "UTC"), daily("00:00", "UTC")]), false),
            // same instant in winter only (Berlin +1/+2, UTC fixed): two runs a day in summer
            (
                json!([daily("00:00", "UTC"), daily("01:00", "Europe/Berlin")]),
                true,
            ),
            // Mon 08:00 and Tue 08:00: a day apart
            (
                json!([
                    {"kind":"flexible","weekdays":["mon"],"start_hour":8,"end_hour":9,"every_minutes":60,"time_zone":"UTC"},
                    {"kind":"flexible","weekdays":["tue"],"start_hour":8,"end_hour":9,"every_minutes":60,"time_zone":"UTC"},
                ]),
                false,
            ),
            // Mon 08:00 and Tue 07:00: 23 hours
            (
                json!([
                    {"kind":"flexible","weekdays":["mon"],"start_hour":8,"end_hour":9,"every_minutes":60,"time_zone":"UTC"},
                    {"kind":"flexible","weekdays":["tue"],"start_hour":7,"end_hour":8,"every_minutes":60,"time_zone":"UTC"},
                ]),
                true,
            ),
        ];
        for (input, want) in cases {
            let s = parse_schedules(&input).unwrap();
            assert_eq!(runs_more_often_than_daily(&s), want, "{input}");
        }
    }

    #[test]
    fn next_fire_is_cheap() {
        // every minute for a year: arithmetic per call, not a minute walk
        let s = one(json!({"kind":"minutely","every":1,"time_zone":"America/New_York"}));
        let mut t = ts("2026-01-01T00:00:00Z");
        for _ in 0..(60 * 24 * 7) {
            t = next_fire(&s, t).unwrap();
        }
        assert_eq!(t, ts("2026-01-08T00:00:00Z"));
        // one weekday, a week ahead, far in the future
        let s = one(
            json!({"kind":"flexible","weekdays":["sun"],"start_hour":23,"end_hour":24,
            "every_minutes":1440,"time_zone":"Pacific/Auckland"}),
        );
        let at = next_fire(&s, ts("2099-01-05T00:00:00Z")).unwrap();
        let local = TimeZone::get("Pacific/Auckland").unwrap().to_datetime(at);
        assert_eq!(local.weekday(), civil::Weekday::Sunday);
        assert_eq!(local.time(), civil::time(23, 0, 0, 0));
    }
}
