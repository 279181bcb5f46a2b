//! `shipsync-bench pull --quick`, in-process, against this crate's binary:
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
