//! `shipsync demo`: shipsync plus both sandboxes on loopback. Places orders
//! in the Shopify sandbox, ships them in the Deposco sandbox (kits, partial
//! shipments, several packages, every webhook shape), lets Deposco push the
//! webhooks, and checks that every shipped unit reached the store once.

pub mod session;
pub mod world;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use shipsync_sandbox_deposco::{KitSpec, LineSpec, PackageSpec, Shape, ShipmentSpec};

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
/// exactly once.
pub async fn run(orders: u32, exit: bool) -> Result<bool> {
    let dir = std::env::temp_dir().join(format!("shipsync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("demo.db");
    let mut opts = Options::new(format!("sqlite://{}", db.display()));
    opts.engine.backoff_base = Duration::from_millis(200);
    opts.engine.backoff_max = Duration::from_secs(5);
    opts.engine.max_attempts = 10;
    let mut h = World::start(opts).await?;
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
        let plan = plan_order(&mut h, i);
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
        && by_status.get("error").copied().unwrap_or(0) == 0;

    println!("shipsync demo summary");
    println!("  orders placed:            {orders}");
    println!(
        "  sent to Deposco:          {sent} sales orders (run {}: {} new)",
        orders_run["status"].as_str().unwrap_or("?"),
        orders_run["counts"]["new"]
    );
    println!(
        "  warehouse shipments:      {} ({} units shipped)",
        numbers.len(),
        shipped_units
    );
    println!("  shipments by source:      {}", fmt_map(&by_source));
    println!("  shipments by status:      {}", fmt_map(&by_status));
    println!(
        "  found by fallback (poll): {}",
        items
            .iter()
            .filter(|s| s["first_seen_via"] == "poll")
            .count()
    );
    println!(
        "  fallback sync run:        {} ({} fetched, {} new, {} unchanged)",
        run["status"].as_str().unwrap_or("?"),
        run["counts"]["fetched"],
        run["counts"]["new"],
        run["counts"]["unchanged"]
    );
    println!("  store fulfillments:       {fulfillments}");
    println!("  units missing in store:   {missing}");
    println!("  duplicate units in store: {duplicates}");
    match latency {
        Some((p50, p99, n)) => println!(
            "  ship-to-store latency:    p50 {:.1} ms, p99 {:.1} ms over {n} shipments",
            p50 * 1e3,
            p99 * 1e3
        ),
        None => println!("  ship-to-store latency:    no shipment completed"),
    }
    println!("  wall time:                {:.2} s", elapsed.as_secs_f64());
    println!(
        "  result:                   {}",
        if ok {
            "OK — every shipped unit reached the store exactly once"
        } else {
            "FAILED"
        }
    );
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
    Ok(ok)
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
