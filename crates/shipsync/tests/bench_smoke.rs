//! The quick (`--quick`) run of each `shipsync-bench` scenario, in-process,
//! against this crate's binary:
//! the benchmark harness keeps working. Completeness only — no timings
//! (docs/quality.md: never a timed assertion in the test suite).

use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_pull_report_is_complete() {
    let opts = shipsync_bench::pull::Options::quick(PathBuf::from(env!("CARGO_BIN_EXE_shipsync")));
    let n = opts.shipments;
    let report = shipsync_bench::pull::run(&opts)
        .await
        .expect("pull scenario");
    report.check_complete().expect("complete report");
    let main = report.main();
    assert_eq!(main.shipments, n);
    assert_eq!(main.imported, n as u64, "{}", main.summary_line);
    assert_eq!(report.runs.len(), 2, "the N/10 comparison run too");
    assert_eq!(report.runs[0].imported, (n / 10) as u64);
    assert!(main.requests >= main.pages && main.pages >= (n / 100) as u64);
    // The table and the JSON render.
    let table = report.table();
    assert!(table.contains("peak RSS"), "{table}");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["runs"][1]["imported"], n as u64);
}

fn shipsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shipsync"))
}

/// `shipsync-bench ingest --quick`: every handler answered, every 202 stored
/// (PostgreSQL too when SHIPSYNC_TEST_POSTGRES_URL is set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_ingest_report_is_complete() {
    let opts = shipsync_bench::ingest::Options::quick(shipsync_bin());
    let report = shipsync_bench::ingest::run(&opts)
        .await
        .expect("ingest scenario");
    report.check_complete().expect("complete report");
    let expected_backends = if opts.postgres.is_some() { 2 } else { 1 };
    assert_eq!(report.backends.len(), expected_backends);
    for b in &report.backends {
        for handler in ["bare", "naive", "shipsync"] {
            assert!(
                b.closed
                    .iter()
                    .any(|l| l.handler == handler && l.outcome.ok > 0),
                "{} {handler}: {:?}",
                b.backend,
                b.closed
            );
        }
        assert!(b.open_for("shipsync").is_some_and(|o| o.ok > 0));
        assert!(b.durability.accepted_answers > 0);
        assert!(b.durability.accepted_events >= b.durability.accepted_answers as i64);
    }
    assert!(report.fsync.samples > 0);
    let table = report.table();
    assert!(table.contains("shipsync ÷ bare"), "{table}");
    serde_json::to_value(&report).expect("json");
}

/// `shipsync-bench ship-to-store --quick`: every shipment sent reached both
/// stores (the fast one and the throttled one) as a fulfillment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_ship_to_store_report_is_complete() {
    let opts = shipsync_bench::ship_to_store::Options::quick(shipsync_bin());
    let report = shipsync_bench::ship_to_store::run(&opts)
        .await
        .expect("ship-to-store scenario");
    report.check_complete().expect("complete report");
    assert_eq!(report.phases.len(), opts.rates.len() + 2);
    for p in &report.phases {
        assert!(p.shipments > 0 && p.fulfilled == p.shipments, "{p:?}");
        assert_eq!(p.latency.n, p.shipments);
        assert!(
            p.exactly_once.ok(),
            "{}: {}",
            p.label,
            p.exactly_once.summary()
        );
        assert_eq!(p.repeated_creates, 0, "{p:?}");
        // Every shipment cost the store at least its mutation.
        assert!(p.store_requests >= p.shipments as u64, "{p:?}");
    }
    let table = report.table();
    assert!(table.contains("throttled store"), "{table}");
    assert!(table.contains("shipsync CPU ms per shipment"), "{table}");
    assert!(table.contains("duplicate fulfillments"), "{table}");
    serde_json::to_value(&report).expect("json");
}

/// `shipsync-bench wave --quick`: both variants (orders only in the store;
/// orders sent to Deposco by shipsync first), every shipment fulfilled
/// exactly once, the drain set against its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_wave_report_is_complete() {
    let opts = shipsync_bench::wave::Options::quick(shipsync_bin());
    let report = shipsync_bench::wave::run(&opts)
        .await
        .expect("wave scenario");
    report.check_complete().expect("complete report");
    assert_eq!(report.runs.len(), 2);
    for r in &report.runs {
        assert_eq!(r.fulfilled, opts.shipments, "{r:?}");
        assert_eq!(r.exactly_once.fulfilled_once, opts.shipments, "{r:?}");
        assert_eq!(r.duplicates(), 0, "{r:?}");
        assert!(r.ratio().is_some(), "{r:?}");
        assert!(r.store_requests >= opts.shipments as u64, "{r:?}");
    }
    let table = report.table();
    assert!(table.contains("drain ÷ bound, variant a"), "{table}");
    assert!(table.contains("drain ÷ bound, variant b"), "{table}");
    serde_json::to_value(&report).expect("json");
}

/// `shipsync-bench scale-out --quick`: two `serve` nodes on one PostgreSQL
/// database, every shipment fulfilled exactly once. Skipped, with a notice,
/// without SHIPSYNC_TEST_POSTGRES_URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_scale_out_report_is_complete() {
    let Some(url) = shipsync_testkit::postgres_server() else {
        eprintln!(
            "skipped scale-out: it needs PostgreSQL ({} is not set)",
            shipsync_testkit::POSTGRES_ENV
        );
        return;
    };
    let opts = shipsync_bench::scale_out::Options::quick(shipsync_bin(), url);
    let report = shipsync_bench::scale_out::run(&opts)
        .await
        .expect("scale-out scenario");
    report.check_complete().expect("complete report");
    assert_eq!(report.runs.len(), opts.nodes.len());
    for r in &report.runs {
        assert_eq!(r.per_node.len(), r.nodes);
        assert_eq!(r.fulfilled, opts.shipments, "{r:?}");
        assert!(r.exactly_once.ok(), "{}", r.exactly_once.summary());
        assert_eq!(r.duplicates(), 0, "{r:?}");
        // Round robin: every node was sent its share.
        assert!(r.per_node.iter().all(|n| n.webhooks_accepted > 0), "{r:?}");
    }
    let table = report.table();
    assert!(table.contains("THIS ONE MACHINE"), "{table}");
    serde_json::to_value(&report).expect("json");
}

/// `shipsync-bench footprint --quick`: starts, readiness and RSS measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_footprint_report_is_complete() {
    let opts = shipsync_bench::footprint::Options::quick(shipsync_bin());
    let report = shipsync_bench::footprint::run(&opts)
        .await
        .expect("footprint scenario");
    report.check_complete().expect("complete report");
    assert_eq!(report.starts.len(), opts.starts);
    let table = report.table();
    assert!(table.contains("idle RSS"), "{table}");
}

/// `shipsync-bench order-latency --quick`: every order reaches Deposco by
/// the path measured (webhooks, then the pull), both reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_order_latency_report_is_complete() {
    let opts = shipsync_bench::order_latency::Options::quick(shipsync_bin());
    let report = shipsync_bench::order_latency::run(&opts)
        .await
        .expect("order-latency scenario");
    report.check_complete().expect("complete report");
    assert_eq!(report.phases.len(), 2);
    for p in &report.phases {
        assert_eq!(p.latency.n, opts.orders, "{p:?}");
    }
    let table = report.table();
    assert!(table.contains("pull every"), "{table}");
    serde_json::to_value(&report).expect("json");
}
