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
    }
    let table = report.table();
    assert!(table.contains("throttled store"), "{table}");
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
