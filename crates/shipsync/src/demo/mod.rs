//! `shipsync demo`: shipsync plus both sandboxes on loopback. Places orders
//! in the Shopify sandbox, ships them in the Deposco sandbox (kits, partial
//! shipments, several packages, every webhook shape), lets Deposco push the
//! webhooks, and checks that every shipped unit reached the store once. On
//! the order side, the store's order webhooks bring two more orders, one
//! then cancelled and one edited in the store, and the demo checks that
//! Deposco followed both.

pub mod lifecycle;
pub mod session;
pub mod world;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use shipsync_sandbox_deposco::{KitSpec, LineSpec, PackageSpec, Shape, ShipmentSpec};

pub use lifecycle::Followed;
use lifecycle::follow_the_store;
use world::{Options, World};

const SHAPES: [Shape; 5] = [
    Shape::Current,
    Shape::Wrapped,
    Shape::DataList,
    Shape::Xml,
    Shape::Mirror,
];

/// What an order should end with in the store: store line id → units.
type Expected = BTreeMap<String, u32>;

/// Runs the demo; returns whether every shipped unit reached the store
/// exactly once and the store's cancellation and edit reached Deposco.
pub async fn run(orders: u32, exit: bool) -> Result<bool> {
    let dir = std::env::temp_dir().join(format!("shipsync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut h = World::start(options(&dir)).await?;
    let summary = play(&mut h, orders).await?;
    for line in &summary.lines {
        println!("{line}");
    }
    // A throwaway administrator for the demo's web UI.
    let password = shipsync_engine::secrets::random_token("demo");
    let signed_in = match h.engine() {
        Some(engine) => engine
            .create_user(
                "demo@example.com",
                &password,
                shipsync_engine::users::Role::Admin,
                &[],
            )
            .await
            .is_ok(),
        None => false,
    };
    println!("  web UI:                   {}/", h.url());
    if signed_in {
        println!("                            sign in as demo@example.com / {password}");
    }
    println!(
        "  API:                      {}/api/v1 (Authorization: Bearer {})",
        h.url(),
        h.token
    );

    if !exit {
        eprintln!("\nshipsync keeps running for you to explore; press Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
    }
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(summary.ok)
}

/// The demo's world: a SQLite database in `dir`, patient retries, and the
/// store delivering its order webhooks to shipsync.
fn options(dir: &std::path::Path) -> Options {
    let db = dir.join("demo.db");
    let mut opts = Options::new(format!("sqlite://{}", db.display()));
    opts.engine.backoff_base = Duration::from_millis(200);
    opts.engine.backoff_max = Duration::from_secs(5);
    opts.engine.max_attempts = 10;
    opts.order_webhooks = true;
    opts
}

/// What the demo found: whether it all worked, and the summary's lines.
#[derive(Debug, Clone)]
pub struct Summary {
    pub ok: bool,
    /// The order cancelled in the store, and the one edited there.
    pub cancelled: Followed,
    pub edited: Followed,
    /// The summary as printed (without the web UI and API lines).
    pub lines: Vec<String>,
}

/// The demo's run in a started world: everything but the web UI's user
/// and the wait for Ctrl-C. Progress goes to stderr.
pub async fn play(h: &mut World, orders: u32) -> Result<Summary> {
    eprintln!(
        "shipsync demo: shipsync on {}, Deposco sandbox on {}, Shopify sandbox on {}",
        h.url(),
        h.deposco.url,
        h.shopify.url
    );
    eprintln!(
        "merchant {} — Deposco URL (signed webhooks): {}",
        h.merchant_id, h.webhook_url
    );

    // The store is connected as a merchant would since 2026: the app's
    // install link, approved in the (sandbox) store, back to shipsync.
    h.register_app(86_399, None);
    let installed = h.connect_by_install().await?;
    if installed.status != 303 {
        anyhow::bail!(
            "connecting the store by the install flow failed: HTTP {} {}",
            installed.status,
            installed.body
        );
    }
    let shown = h
        .api(
            "GET",
            &format!("/api/v1/connections/{}", h.connection_id),
            None,
        )
        .await?
        .ok(200)?;
    eprintln!(
        "store connected with the install flow (Connect to Shopify); granted scopes: {}",
        shown["store"]["auth"]["scopes"]
    );

    let started = Instant::now();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    let mut plans = Vec::new();
    for i in 0..orders {
        let plan = plan_order(h, i);
        let want = expected.entry(plan.name.clone()).or_default();
        for (line, q) in &plan.store_units {
            *want.entry(line.clone()).or_default() += q;
        }
        plans.push(plan);
    }
    eprintln!("placed {orders} paid orders in the Shopify sandbox");

    // The Sales Orders channel sends them to the warehouse.
    let channel = format!(
        "/api/v1/connections/{}/channels/sales_orders",
        h.connection_id
    );
    h.api(
        "PATCH",
        &channel,
        Some(serde_json::json!({"enabled": true})),
    )
    .await?
    .ok(200)?;
    let orders_run = h
        .run_channel("sales_orders", Duration::from_secs(120))
        .await?;
    let sent = h.deposco.sandbox.sales_orders().len();
    eprintln!("sales orders in Deposco: {sent}");
    let (cancelled, edited) = follow_the_store(h).await?;

    let mut numbers = Vec::new();
    let mut shipped_units = 0u32;
    for (i, plan) in plans.into_iter().enumerate() {
        let shape = SHAPES[i % SHAPES.len()];
        // Every fifth order's webhooks never arrive: only the scheduled
        // shipment sync (the fallback) can find them.
        let pull_only = i % 5 == 4;
        for spec in plan.shipments {
            shipped_units += spec.lines.iter().map(|l| l.shipped).sum::<u32>();
            if pull_only {
                numbers.push(h.deposco.sandbox.add_shipment(spec).number);
                continue;
            }
            let (number, status) = h.ship(spec, shape).await?;
            if status != 202 {
                eprintln!("  webhook for {number} answered {status}");
            }
            numbers.push(number);
        }
        eprint!("\rshipped {}/{orders} orders", i + 1);
    }
    eprintln!();

    // Wait for every shipment to settle.
    let deadline = Instant::now() + Duration::from_secs(60 + u64::from(orders) / 5);
    loop {
        let done = h.idle().await?;
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The fallback: one run of the connection's Shipments channel (what the
    // daily off-hours schedule does), here started at once.
    eprintln!("running the fallback shipment sync…");
    let run = h
        .run_channel(
            "shipments",
            deadline.saturating_duration_since(Instant::now()),
        )
        .await?;
    let elapsed = started.elapsed();

    // Summary from shipsync's API and the store's own state.
    let list = h
        .api(
            "GET",
            &format!("/api/v1/shipments?merchant_id={}&limit=500", h.merchant_id),
            None,
        )
        .await?
        .ok(200)?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    for s in &items {
        *by_status
            .entry(s["status"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        let sources: Vec<&str> = s["sources"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        *by_source.entry(sources.join("+")).or_default() += 1;
    }
    let mut fulfillments = 0usize;
    let mut missing = 0u32;
    let mut duplicates = 0u32;
    for (name, want) in &expected {
        let Some(order) = h.shopify.sandbox.order(name) else {
            missing += want.values().sum::<u32>();
            continue;
        };
        fulfillments += order.fulfillments.len();
        for line in &order.lines {
            let w = want.get(&line.id).copied().unwrap_or(0);
            if line.fulfilled_quantity > w {
                duplicates += line.fulfilled_quantity - w;
            } else {
                missing += w - line.fulfilled_quantity;
            }
        }
    }
    let latency = h
        .engine()
        .and_then(|e| e.metrics().ship_to_store_percentiles());
    let ok = missing == 0
        && duplicates == 0
        && run["status"] == "succeeded"
        && sent == orders as usize
        && by_status.get("error").copied().unwrap_or(0) == 0
        && cancelled.ok
        && edited.ok;

    let mut lines = vec![
        "shipsync demo summary".to_string(),
        format!("  orders placed:            {orders}"),
        format!(
            "  sent to Deposco:          {sent} sales orders (run {}: {} new)",
            orders_run["status"].as_str().unwrap_or("?"),
            orders_run["counts"]["new"]
        ),
        format!("  cancelled in the store:   {}", cancelled.line),
        format!("  edited in the store:      {}", edited.line),
        format!(
            "  warehouse shipments:      {} ({} units shipped)",
            numbers.len(),
            shipped_units
        ),
        format!("  shipments by source:      {}", fmt_map(&by_source)),
        format!("  shipments by status:      {}", fmt_map(&by_status)),
        format!(
            "  found by fallback (poll): {}",
            items
                .iter()
                .filter(|s| s["first_seen_via"] == "poll")
                .count()
        ),
        format!(
            "  fallback sync run:        {} ({} fetched, {} new, {} unchanged)",
            run["status"].as_str().unwrap_or("?"),
            run["counts"]["fetched"],
            run["counts"]["new"],
            run["counts"]["unchanged"]
        ),
        format!("  store fulfillments:       {fulfillments}"),
        format!("  units missing in store:   {missing}"),
        format!("  duplicate units in store: {duplicates}"),
    ];
    lines.push(match latency {
        Some((p50, p99, n)) => format!(
            "  ship-to-store latency:    p50 {:.1} ms, p99 {:.1} ms over {n} shipments",
            p50 * 1e3,
            p99 * 1e3
        ),
        None => "  ship-to-store latency:    no shipment completed".to_string(),
    });
    lines.push(format!(
        "  wall time:                {:.2} s",
        elapsed.as_secs_f64()
    ));
    lines.push(format!(
        "  result:                   {}",
        if ok {
            "OK — every shipped unit reached the store exactly once; the cancellation and the edit reached Deposco"
        } else {
            "FAILED"
        }
    ));
    Ok(Summary {
        ok,
        cancelled,
        edited,
        lines,
    })
}

fn fmt_map(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Plan {
    name: String,
    store_units: Vec<(String, u32)>,
    shipments: Vec<ShipmentSpec>,
}

/// Four kinds of orders in turn: a kit, two lines over two packages, a
/// partial order shipped in two shipments, a plain one.
fn plan_order(h: &mut World, i: u32) -> Plan {
    let tracking = |n: u32| format!("1Z999AA1{:010}", i * 10 + n);
    match i % 4 {
        0 => {
            let (name, ids) = h.place_order(&[("KIT-1", 2)]);
            let kit = KitSpec {
                kit_line_number: 1,
                kit_sku: "KIT-1".into(),
                kit_ordered: 2,
                kit_customer_line_number: Some(ids[0].clone()),
            };
            let spec = ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(2, "COMP-A", 2).kit(kit.clone()))
                .line(LineSpec::new(3, "COMP-B", 4).kit(kit))
                .package(PackageSpec::new("C1", tracking(1)).line(2, 2).line(3, 4));
            Plan {
                name,
                store_units: vec![(ids[0].clone(), 2)],
                shipments: vec![spec],
            }
        }
        1 => {
            let (name, ids) = h.place_order(&[("TENT-2P", 1), ("STOVE", 2)]);
            let spec = ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(1, "TENT-2P", 1).customer_line(ids[0].clone()))
                .line(LineSpec::new(2, "STOVE", 2).customer_line(ids[1].clone()))
                .package(PackageSpec::new("C1", tracking(1)).line(1, 1).line(2, 1))
                .package(PackageSpec::new("C2", tracking(2)).line(2, 1));
            Plan {
                name,
                store_units: vec![(ids[0].clone(), 1), (ids[1].clone(), 2)],
                shipments: vec![spec],
            }
        }
        2 => {
            let (name, ids) = h.place_order(&[("BOOTS", 1), ("SOCKS", 3)]);
            let first = ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(1, "BOOTS", 1).customer_line(ids[0].clone()))
                .package(PackageSpec::new("C1", tracking(1)).line(1, 1));
            let second = ShipmentSpec::new(name.trim_start_matches('#'))
                .carrier("FedEx", "FedEx Ground")
                .line(LineSpec::new(2, "SOCKS", 3).customer_line(ids[1].clone()))
                .package(PackageSpec::new("C2", tracking(2)).line(2, 3));
            Plan {
                name,
                store_units: vec![(ids[0].clone(), 1), (ids[1].clone(), 3)],
                shipments: vec![first, second],
            }
        }
        _ => {
            let (name, ids) = h.place_order(&[("LANTERN", 2)]);
            let spec = ShipmentSpec::new(name.trim_start_matches('#'))
                .line(LineSpec::new(1, "LANTERN", 2))
                .package(PackageSpec::new("C1", tracking(1)).line(1, 2));
            Plan {
                name,
                store_units: vec![(ids[0].clone(), 2)],
                shipments: vec![spec],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo, small, end to end: every shipped unit in the store once,
    /// and the order cancelled and the one edited in the store followed in
    /// Deposco, as its summary says.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_follows_a_cancellation_and_an_edit() {
        let dir = std::env::temp_dir().join(format!(
            "shipsync-demo-test-{}-{}",
            std::process::id(),
            shipsync_engine::secrets::random_token("t")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut h = World::start(options(&dir)).await.expect("world");
        let summary = play(&mut h, 5).await.expect("the demo ran");
        h.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        let text = summary.lines.join("\n");
        assert!(summary.ok, "{text}");

        let c = &summary.cancelled;
        assert_eq!(c.status, "cancelled", "{text}");
        assert_eq!(c.deposco_status.as_deref(), Some("Canceled"), "{text}");
        let number = c.name.trim_start_matches('#');
        assert!(
            text.contains(&format!(
                "  cancelled in the store:   {} cancelled by the customer → shipsync: cancelled; Deposco {number}: Canceled\n",
                c.name
            )),
            "{text}"
        );

        let e = &summary.edited;
        assert_eq!(e.status, "open", "{text}");
        assert_eq!(
            e.deposco_units,
            vec![("TENT-2P".to_string(), 3.0)],
            "{text}"
        );
        let number = e.name.trim_start_matches('#');
        assert!(
            text.contains(&format!(
                "  edited in the store:      {} TENT-2P raised 1 → 3 → shipsync: open; Deposco {number}: New, TENT-2P × 3\n",
                e.name
            )),
            "{text}"
        );
    }
}
