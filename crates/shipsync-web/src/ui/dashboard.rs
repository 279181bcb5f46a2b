//! The dashboard: shipments by state, the share found by the fallback
//! pull, ship-to-store latency, and the error queue.

use axum::extract::State;
use maud::{Markup, html};
use shipsync_core::states::{ShipmentStatus, Source};
use shipsync_db::{merchants::MerchantRow, shipments::ShipmentFilter};

use super::layout::{Page, fail, page, status_badge};
use super::merchants::receives_unsigned;
use super::session::Ui;
use crate::AppState;
use crate::api::merchants;

pub(super) async fn dashboard(State(s): State<AppState>, ui: Ui) -> Page {
    let p = &ui.principal;
    let now = shipsync_db::now_micros();
    let hour_start = now - now.rem_euclid(HOUR);
    let since = hour_start - 23 * HOUR;
    let scope = p.scope();
    let stored = s
        .engine
        .dashboard_counts(scope, since)
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let counts = stored.by_status;
    let errors = s
        .engine
        .shipments(
            &ShipmentFilter {
                merchant_ids: p.narrow(None),
                status: Some(ShipmentStatus::Error),
                ..Default::default()
            },
            None,
            20,
        )
        .await
        .map_err(|e| fail(&ui, e.into()))?;
    let latency = s.engine.metrics().ship_to_store_percentiles();
    let by_first_seen = stored.by_first_seen;
    let total: i64 = by_first_seen.iter().map(|(_, n)| n).sum();
    let by_poll: i64 = by_first_seen
        .iter()
        .filter(|(via, _)| *via == Source::Poll)
        .map(|(_, n)| n)
        .sum();
    let orders_total: i64 = stored.orders_by_first_seen.iter().map(|(_, n)| n).sum();
    let orders_by_poll: i64 = stored
        .orders_by_first_seen
        .iter()
        .filter(|(via, _)| *via == Source::Poll)
        .map(|(_, n)| n)
        .sum();
    let done = stored.completions;
    let buckets = latency_buckets(since, &done);
    let unsigned: Vec<MerchantRow> = merchants::visible(&s, p, None, 500)
        .await
        .map_err(|e| fail(&ui, e))?
        .into_iter()
        .filter(receives_unsigned)
        .collect();
    Ok(page(
        &ui,
        "Dashboard",
        "Dashboard",
        html! {
            h1 { "Dashboard" }
            @if !unsigned.is_empty() {
                div.error-box #unsigned-webhooks role="alert" {
                    b { "Unsigned shipment webhooks. " }
                    "These merchants accept shipment webhooks without a signature, so anyone who learns their URL can post shipments: "
                    @for (i, m) in unsigned.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href={"/merchants/" (m.id)} { (m.name) }
                    }
                    ". Set a Webhook Shared Secret on each (and the same in Deposco)."
                }
            }
            @if !counts.is_empty() {
                h2 { "Shipments by state" }
                div.bars.card {
                    @for (st, n) in &counts {
                        div.kpi { div { (status_badge(st.as_str())) } div.n { (n) } }
                    }
                }
            }
            div.card #fallback-share {
                h2 { "Found by fallback" }
                @if total == 0 { p { "No shipment yet." } } @else {
                    p { span.n { (format!("{:.0}%", by_poll as f64 * 100.0 / total as f64)) } " of shipments were found by the scheduled pull rather than a webhook ("
                        (by_poll) " of " (total) ")." }
                }
            }
            @if orders_total > 0 {
                div.card #orders-fallback-share {
                    h2 { "Orders found by the pull" }
                    p { span.n { (format!("{:.0}%", orders_by_poll as f64 * 100.0 / orders_total as f64)) } " of store orders reached shipsync through the scheduled pull rather than an order webhook ("
                        (orders_by_poll) " of " (orders_total) ")." }
                }
            }
            div.card #latency-chart {
                h2 { "Ship-to-store latency, last 24 hours" }
                p.hint { "Per hour of completion (UTC): p50 and p99 of the time from receiving a shipment to completing it in the store." }
                (latency_chart(&buckets))
            }
            @if let Some((p50, p99, n)) = latency {
                div.card { h2 { "Ship-to-store latency" }
                    p { "p50 " (format!("{:.0} ms", p50 * 1000.0)) ", p99 " (format!("{:.0} ms", p99 * 1000.0)) " over the last " (n) " shipments (since this server started)." } }
            }
            h2 { "Error queue" }
            @if errors.is_empty() { p { "No shipment is in error." } } @else {
                table { thead { tr { th { "Shipment" } th { "Order" } th { "Reason" } } }
                    tbody { @for sh in &errors { tr {
                        td { a href={"/shipments/" (sh.id)} { (sh.number) } }
                        td { (sh.order_name) }
                        td { (sh.error.as_deref().unwrap_or("")) }
                    } } } }
            }
        },
    ))
}

const HOUR: i64 = 3_600_000_000;

/// One hour of the latency chart: its start (µs) and, when shipments
/// completed in it, (p50 s, p99 s, count).
type Bucket = (i64, Option<(f64, f64, usize)>);

/// 24 hourly buckets from `since` of `(received_at, completed_at)` pairs.
fn latency_buckets(since: i64, done: &[(i64, i64)]) -> Vec<Bucket> {
    (0..24)
        .map(|i| {
            let start = since + i * HOUR;
            let mut l: Vec<f64> = done
                .iter()
                .filter(|(_, c)| *c >= start && *c < start + HOUR)
                .map(|(r, c)| (c - r).max(0) as f64 / 1e6)
                .collect();
            l.sort_by(f64::total_cmp);
            let pick = |q: f64| l[((l.len() as f64 - 1.0) * q).round() as usize];
            (
                start,
                (!l.is_empty()).then(|| (pick(0.5), pick(0.99), l.len())),
            )
        })
        .collect()
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// The p50/p99 lines as an inline SVG (no script), with the numbers in a
/// table below for screen readers and exact values.
fn latency_chart(buckets: &[Bucket]) -> Markup {
    let (w, h, left, right, top, bottom) = (720.0, 220.0, 64.0, 12.0, 12.0, 28.0);
    let max = buckets
        .iter()
        .filter_map(|(_, v)| v.map(|(_, p99, _)| p99))
        .fold(0.0_f64, f64::max);
    let max = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let x = |i: usize| left + (w - left - right) * (i as f64 + 0.5) / buckets.len().max(1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let line = |pick: fn(&(f64, f64, usize)) -> f64| {
        buckets
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| v.as_ref().map(|v| format!("{:.1},{:.1}", x(i), y(pick(v)))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let hour = |start: i64| (start / HOUR).rem_euclid(24);
    let any = buckets.iter().any(|(_, v)| v.is_some());
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label="Ship-to-store latency p50 and p99 per hour, last 24 hours" {
            @for k in 0..=4 {
                @let v = max * k as f64 / 4.0;
                line x1=(left) x2=(w - right) y1=(y(v)) y2=(y(v)) stroke="#d8dee6" {}
                text x=(left - 6.0) y=(y(v) + 4.0) text-anchor="end" font-size="11" fill="#5b6675" { (secs(v)) }
            }
            @for (i, (start, _)) in buckets.iter().enumerate() {
                @if i % 4 == 0 {
                    text x=(x(i)) y=(h - 8.0) text-anchor="middle" font-size="11" fill="#5b6675" { (format!("{:02}:00", hour(*start))) }
                }
            }
            polyline points=(line(|v| v.1)) fill="none" stroke="#b42318" stroke-width="2" {}
            polyline points=(line(|v| v.0)) fill="none" stroke="#1f6feb" stroke-width="2" {}
            @for (i, (start, v)) in buckets.iter().enumerate() {
                @if let Some((p50, p99, n)) = v {
                    circle cx=(x(i)) cy=(y(*p99)) r="3" fill="#b42318" { title { (format!("{:02}:00 p99 {} ({n})", hour(*start), secs(*p99))) } }
                    circle cx=(x(i)) cy=(y(*p50)) r="3" fill="#1f6feb" { title { (format!("{:02}:00 p50 {} ({n})", hour(*start), secs(*p50))) } }
                }
            }
        }
        p.legend { span.swatch.p50 {} " p50 " span.swatch.p99 {} " p99" }
        @if !any { p.hint { "No shipment completed in the last 24 hours." } } @else {
            details { summary { "Hourly values" }
                table { thead { tr { th { "Hour (UTC)" } th { "Shipments" } th { "p50" } th { "p99" } } }
                    tbody { @for (start, v) in buckets { @if let Some((p50, p99, n)) = v { tr {
                        td { (format!("{:02}:00", hour(*start))) } td { (n) } td { (secs(*p50)) } td { (secs(*p99)) }
                    } } } } }
            }
        }
    }
}
