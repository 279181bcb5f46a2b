//! Scenario `pull`: the scheduled shipment pull against the Deposco rate limit.
//!
//! Acceptance: "a pull of 10,000 shipments from the sandbox limited to
//! 4 req/s at page size 100 takes at most 1.1× (requests actually made ÷
//! 4 req/s), with memory flat; report both figures and peak RSS".
//!
//! For each size (N/10 first, then N) the bench, in this process, starts a
//! fresh Deposco sandbox with the rate limit and N shipments (1–3 lines,
//! 1–2 packages, varied deterministically); starts `shipsync serve` on a
//! fresh SQLite database, creates the merchant (warehouse = the sandbox) and
//! a **disabled** connection through the JSON API, and stops it; then runs
//! `shipsync sync shipments --connection … --since 2000-01-01T00:00:00Z` as a
//! child process on that database, timed from spawn to exit, its
//! `/proc/<pid>/status` read every 50 ms. The connection stays disabled so
//! nothing is sent to a store: the measurement is the pull itself.
//!
//! The bound is the sandbox's count of requests actually received during the
//! pull (429s included) ÷ the rate limit; `pages ÷ rate` is the floor no
//! client can beat (apart from the bucket's initial burst of 4).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::json;
use shipsync_sandbox_deposco::{
    DeposcoSandbox, LineSpec, PackageSpec, SandboxConfig, ShipmentSpec,
};

use crate::process::{self, Instance};
use crate::table::{Table, num, verdict_at_most};
use crate::{init_tls, kib_to_mb};

/// Target: wall time ≤ 1.1 × (requests ÷ rate).
pub const TARGET_RATIO: f64 = 1.1;
/// Target: peak RSS ≤ 150 MB whatever the count.
pub const TARGET_PEAK_RSS_MB: f64 = 150.0;
/// "Memory flat", as this bench reads it: peak RSS at N ≤ 1.25 × peak RSS at
/// N/10 (ten times the shipments; memory growing with the count would show
/// as a factor approaching 10).
pub const TARGET_FLAT_RATIO: f64 = 1.25;
/// Readings of the comparison run below which "memory flat" is not judged.
pub const MIN_SAMPLES_FOR_FLAT: usize = 20;
/// The page size shipsync's Deposco client asks for (Deposco's maximum).
pub const PAGE_SIZE: usize = 100;

#[derive(Debug, Clone)]
pub struct Options {
    /// The `shipsync` binary measured.
    pub shipsync: PathBuf,
    /// N: shipments in the measured pull.
    pub shipments: usize,
    /// The sandbox's rate limit (requests/s, burst 4); 0 disables it.
    pub rate_limit_per_sec: f64,
    /// Also pull N / divisor shipments first, for the memory comparison
    /// (0 or 1: no comparison run).
    pub baseline_divisor: usize,
    /// Progress lines on stderr.
    pub verbose: bool,
}

impl Options {
    /// The acceptance run: 10,000 shipments at 4 req/s, compared with 1,000.
    pub fn full(shipsync: PathBuf) -> Self {
        Self {
            shipsync,
            shipments: 10_000,
            rate_limit_per_sec: 4.0,
            baseline_divisor: 10,
            verbose: true,
        }
    }

    /// The smoke run (`--quick`, CI): 300 shipments, no rate limit, seconds.
    pub fn quick(shipsync: PathBuf) -> Self {
        Self {
            shipsync,
            shipments: 300,
            rate_limit_per_sec: 0.0,
            baseline_divisor: 10,
            verbose: false,
        }
    }

    fn rate(&self) -> Option<f64> {
        (self.rate_limit_per_sec.is_finite() && self.rate_limit_per_sec > 0.0)
            .then_some(self.rate_limit_per_sec)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    pub ratio_max: f64,
    pub peak_rss_mb_max: f64,
    pub memory_flat_ratio_max: f64,
}

/// One pull, one child process.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub label: String,
    /// Shipments stored in the sandbox.
    pub shipments: usize,
    /// Shipments new to shipsync after the pull (from the CLI's summary line).
    pub imported: u64,
    pub fetched: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub pages: u64,
    pub run_id: String,
    /// REST requests the sandbox received during the pull (429s included).
    pub requests: u64,
    /// `requests ÷ rate` (None without a rate limit).
    pub bound_secs: Option<f64>,
    /// `pages ÷ rate`: the floor for any client.
    pub floor_secs: Option<f64>,
    /// The child process, spawn to exit.
    pub wall_secs: f64,
    /// `wall ÷ bound`.
    pub ratio: Option<f64>,
    /// CPU seconds (user + system) of the `shipsync` child.
    pub shipsync_cpu_secs: f64,
    /// CPU seconds of the bench process during the pull: the in-process
    /// Deposco sandbox answering (it shares the 2 cores with shipsync).
    pub sandbox_cpu_secs: Option<f64>,
    /// Largest `VmHWM` of the child.
    pub peak_rss_kib: u64,
    pub peak_rss_mb: f64,
    /// Largest sampled `VmRSS`.
    pub max_sampled_rss_kib: u64,
    /// Mean `VmRSS` over the first and the last quarter of the run.
    pub rss_first_quarter_kib: Option<u64>,
    pub rss_last_quarter_kib: Option<u64>,
    /// Time spent preparing (sandbox data, serve, API calls): not measured.
    pub setup_secs: f64,
    pub summary_line: String,
    /// Readings of `/proc/<pid>/status` taken.
    pub rss_samples: usize,
    /// `(seconds, VmRSS KiB)`, at most 200 readings.
    pub rss_series: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shipments: usize,
    pub rate_limit_per_sec: Option<f64>,
    pub rate_limit_burst: f64,
    pub page_size: usize,
    pub shipsync_binary: String,
    pub targets: Targets,
    /// The comparison run (N / divisor) first, then the measured one.
    pub runs: Vec<Run>,
    /// Of the measured run.
    pub ratio: Option<f64>,
    pub peak_rss_mb: f64,
    /// Peak RSS at N ÷ peak RSS at N / divisor.
    pub memory_flat_ratio: Option<f64>,
    pub verdicts: Verdicts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdicts {
    pub time: String,
    pub peak_rss: String,
    pub memory_flat: String,
}

impl Report {
    /// The measured (largest) run.
    pub fn main(&self) -> &Run {
        self.runs.last().expect("a report has at least one run")
    }

    /// Every field filled in and every shipment imported.
    pub fn check_complete(&self) -> Result<()> {
        for r in &self.runs {
            if r.imported != r.shipments as u64 || r.fetched != r.shipments as u64 {
                bail!(
                    "{}: {} shipment(s) in the sandbox, {} fetched, {} imported",
                    r.label,
                    r.shipments,
                    r.fetched,
                    r.imported
                );
            }
            if r.failed != 0 || r.pages == 0 || r.requests < r.pages || r.peak_rss_kib == 0 {
                bail!("{}: incomplete figures: {r:?}", r.label);
            }
            if r.run_id.is_empty() || r.wall_secs <= 0.0 {
                bail!("{}: no run id or wall time", r.label);
            }
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "pull: {} shipments, Deposco sandbox {}, page size {}, connection disabled\n\n",
            self.shipments,
            match self.rate_limit_per_sec {
                Some(r) => format!("limited to {r} req/s (burst {})", self.rate_limit_burst),
                None => "without a rate limit".into(),
            },
            self.page_size
        );
        let mut t = Table::new([
            "run",
            "shipments",
            "imported",
            "pages",
            "requests",
            "bound = requests ÷ rate (s)",
            "wall (s)",
            "wall ÷ bound",
            "peak RSS (MB)",
        ]);
        for r in &self.runs {
            t.row([
                r.label.clone(),
                r.shipments.to_string(),
                r.imported.to_string(),
                r.pages.to_string(),
                r.requests.to_string(),
                num(r.bound_secs, 2),
                format!("{:.2}", r.wall_secs),
                num(r.ratio, 3),
                format!("{:.1}", r.peak_rss_mb),
            ]);
        }
        out.push_str(&t.render());
        out.push('\n');
        let main = self.main();
        let mut v = Table::new(["figure", "value", "target", "verdict"]);
        v.row([
            "wall ÷ (requests ÷ rate)".to_string(),
            num(self.ratio, 3),
            format!("≤ {TARGET_RATIO}"),
            self.verdicts.time.clone(),
        ]);
        v.row([
            format!("peak RSS at {}", main.shipments),
            format!("{:.1} MB", self.peak_rss_mb),
            format!("≤ {TARGET_PEAK_RSS_MB} MB"),
            self.verdicts.peak_rss.clone(),
        ]);
        if let (true, Some(base)) = (self.runs.len() > 1, self.runs.first()) {
            v.row([
                format!(
                    "memory flat: peak RSS {} ÷ {}",
                    main.shipments, base.shipments
                ),
                num(self.memory_flat_ratio, 3),
                format!("≤ {TARGET_FLAT_RATIO}"),
                self.verdicts.memory_flat.clone(),
            ]);
        }
        if let (Some(a), Some(b)) = (main.rss_first_quarter_kib, main.rss_last_quarter_kib) {
            v.row([
                format!("RSS first → last quarter of the {} pull", main.shipments),
                format!("{:.1} → {:.1} MB", kib_to_mb(a), kib_to_mb(b)),
                "—".into(),
                "—".into(),
            ]);
        }
        v.row([
            format!("CPU during the {} pull: shipsync / sandbox", main.shipments),
            format!(
                "{:.1} s / {} s",
                main.shipsync_cpu_secs,
                num(main.sandbox_cpu_secs, 1)
            ),
            "—".into(),
            format!(
                "{:.1} ms of shipsync CPU per page",
                main.shipsync_cpu_secs * 1000.0 / main.pages.max(1) as f64
            ),
        ]);
        if let Some(floor) = main.floor_secs {
            v.row([
                "wall ÷ (pages ÷ rate)".to_string(),
                format!("{:.3}", main.wall_secs / floor),
                "—".into(),
                format!(
                    "{} extra request(s) beyond one per page",
                    main.requests - main.pages
                ),
            ]);
        }
        out.push_str(&v.render());
        out
    }
}

/// The `i`-th benchmark shipment (1-based): order `B<i>`, 1–3 lines, 1–2 packages.
pub fn shipment_spec(i: usize) -> ShipmentSpec {
    let lines = 1 + i % 3;
    let packages = 1 + (i / 3) % 2;
    let mut spec = ShipmentSpec::new(format!("B{i:07}")).tracking(format!("1ZBENCH{i:010}"));
    let qty = |l: usize| -> u32 {
        if lines == 1 && packages == 2 {
            2 // one unit in each box
        } else {
            1 + ((i + l) % 3) as u32
        }
    };
    for l in 1..=lines {
        spec = spec.line(LineSpec::new(
            l as u32,
            format!("SKU-{:03}", (i * 7 + l) % 200),
            qty(l),
        ));
    }
    let mut first = PackageSpec::new(format!("LPN{i:08}A"), format!("1ZBENCH{i:010}"));
    if packages == 1 {
        for l in 1..=lines {
            first = first.line(l as u32, qty(l));
        }
        spec.package(first)
    } else {
        let mut second = PackageSpec::new(format!("LPN{i:08}B"), format!("1ZBENCH{i:010}B"));
        if lines == 1 {
            first = first.line(1, 1);
            second = second.line(1, 1);
        } else {
            first = first.line(1, qty(1));
            for l in 2..=lines {
                second = second.line(l as u32, qty(l));
            }
        }
        spec.package(first).package(second)
    }
}

/// Counts from `run run_… succeeded: P page(s), F shipment(s) fetched — N new
/// (found by this pull), U updated, X unchanged, E failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub run_id: String,
    pub pages: u64,
    pub fetched: u64,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub line: String,
}

pub fn parse_summary(stdout: &str) -> Option<Summary> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("run ") && l.contains(" succeeded: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |marker: &str| -> Option<u64> {
        let i = words
            .iter()
            .position(|w| w.trim_end_matches(',') == marker)?;
        words.get(i.checked_sub(1)?)?.parse().ok()
    };
    Some(Summary {
        run_id: words.get(1)?.to_string(),
        pages: before("page(s)")?,
        fetched: before("shipment(s)")?,
        new: before("new")?,
        updated: before("updated")?,
        unchanged: before("unchanged")?,
        failed: before("failed")?,
        line: line.to_owned(),
    })
}

/// Runs the scenario.
pub async fn run(opts: &Options) -> Result<Report> {
    init_tls();
    if opts.shipments == 0 {
        bail!("--shipments must be at least 1");
    }
    let mut sizes = Vec::new();
    if opts.baseline_divisor > 1 {
        let base = (opts.shipments / opts.baseline_divisor).max(1);
        if base < opts.shipments {
            sizes.push((format!("pull N/{}", opts.baseline_divisor), base));
        }
    }
    sizes.push(("pull N".to_string(), opts.shipments));
    let mut runs = Vec::new();
    for (label, n) in sizes {
        runs.push(pull_once(opts, &label, n).await?);
    }
    let main = runs.last().expect("one run").clone();
    // The comparison needs a comparison run long enough to be sampled.
    let memory_flat_ratio = (runs.len() > 1 && runs[0].rss_samples >= MIN_SAMPLES_FOR_FLAT)
        .then(|| main.peak_rss_kib as f64 / runs[0].peak_rss_kib.max(1) as f64);
    let verdicts = Verdicts {
        time: match main.ratio {
            Some(_) => verdict_at_most(main.ratio, TARGET_RATIO, "×"),
            None => "n/a (no rate limit)".into(),
        },
        peak_rss: verdict_at_most(Some(main.peak_rss_mb), TARGET_PEAK_RSS_MB, " MB"),
        memory_flat: match (memory_flat_ratio, runs.len()) {
            (None, 2..) => format!(
                "not measured: the comparison run was read only {} time(s) (under {MIN_SAMPLES_FOR_FLAT})",
                runs[0].rss_samples
            ),
            (flat, _) => verdict_at_most(flat, TARGET_FLAT_RATIO, "×"),
        },
    };
    Ok(Report {
        shipments: opts.shipments,
        rate_limit_per_sec: opts.rate(),
        rate_limit_burst: SandboxConfig::default().rate_limit_burst,
        page_size: PAGE_SIZE,
        shipsync_binary: opts.shipsync.display().to_string(),
        targets: Targets {
            ratio_max: TARGET_RATIO,
            peak_rss_mb_max: TARGET_PEAK_RSS_MB,
            memory_flat_ratio_max: TARGET_FLAT_RATIO,
        },
        ratio: main.ratio,
        peak_rss_mb: main.peak_rss_mb,
        runs,
        memory_flat_ratio,
        verdicts,
    })
}

async fn pull_once(opts: &Options, label: &str, n: usize) -> Result<Run> {
    let say = |msg: String| {
        if opts.verbose {
            eprintln!("[pull {n}] {msg}");
        }
    };
    let setup = Instant::now();
    let sandbox = DeposcoSandbox::new(SandboxConfig {
        rate_limit_per_sec: opts.rate().unwrap_or(0.0),
        ..SandboxConfig::default()
    });
    for i in 1..=n {
        sandbox.add_shipment(shipment_spec(i));
    }
    let deposco = sandbox
        .clone()
        .start("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the Deposco sandbox")?;
    say(format!("{n} shipments in the sandbox at {}", deposco.url));

    let instance = Instance::sqlite(&opts.shipsync, &format!("pull{n}"))?;
    let serve = instance.serve().await?;
    let configured = async {
        let merchant = serve
            .api(
                "POST",
                "/api/v1/merchants",
                Some(&json!({
                    "name": "Bench Outdoor",
                    "warehouse": {
                        "platform": "deposco",
                        "api_url": deposco.url,
                        "business_unit": "ACME",
                        "auth": {"type": "basic", "username": "sandbox", "password": "sandbox"},
                    },
                })),
                201,
            )
            .await?;
        let merchant_id = merchant["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no merchant id in {merchant}"))?
            .to_owned();
        let connection = serve
            .api(
                "POST",
                "/api/v1/connections",
                Some(&json!({
                    "name": "Bench Shopify",
                    "merchant_id": merchant_id,
                    "enabled": false,
                    "store": {
                        "platform": "shopify",
                        "shop_url": "https://bench-outdoor.myshopify.com",
                        "access_token": "shpat_bench",
                    },
                })),
                201,
            )
            .await?;
        connection["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no connection id in {connection}"))
    }
    .await;
    let stopped = serve.stop().await;
    let connection_id = configured?;
    stopped.context("stopping shipsync serve")?;
    let setup_secs = setup.elapsed().as_secs_f64();
    say(format!(
        "merchant and connection {connection_id} created; pulling…"
    ));

    let before = sandbox.request_count();
    let bench_cpu_before = crate::rss::own_cpu_secs();
    let child = process::run_sampled(instance.command([
        "sync",
        "shipments",
        "--connection",
        &connection_id,
        "--since",
        "2000-01-01T00:00:00Z",
    ]))
    .await?;
    let requests = sandbox.request_count() - before;
    let sandbox_cpu_secs = crate::rss::own_cpu_secs()
        .zip(bench_cpu_before)
        .map(|(after, before)| after - before);
    deposco.shutdown().await;
    if !child.status.success() {
        bail!(
            "shipsync sync shipments failed ({}):\n{}\n{}",
            child.status,
            process::tail(&child.stdout, 20),
            // The error comes first; a backtrace (RUST_BACKTRACE) may follow.
            process::head(&child.stderr, 40)
        );
    }
    let summary = parse_summary(&child.stdout).ok_or_else(|| {
        anyhow!(
            "no summary line in the output of shipsync sync shipments:\n{}\n{}",
            child.stdout,
            process::tail(&child.stderr, 20)
        )
    })?;
    let wall_secs = child.wall.as_secs_f64();
    let bound_secs = opts.rate().map(|r| requests as f64 / r);
    let floor_secs = opts.rate().map(|r| summary.pages as f64 / r);
    let quarters = child.samples.first_last_quarter_kib();
    let peak = child.samples.peak_hwm_kib;
    say(format!(
        "{} imported, {} requests, {wall_secs:.2} s, peak RSS {:.1} MB",
        summary.new,
        requests,
        kib_to_mb(peak)
    ));
    Ok(Run {
        label: label.to_owned(),
        shipments: n,
        imported: summary.new,
        fetched: summary.fetched,
        updated: summary.updated,
        unchanged: summary.unchanged,
        failed: summary.failed,
        pages: summary.pages,
        run_id: summary.run_id.clone(),
        requests,
        bound_secs,
        floor_secs,
        wall_secs,
        ratio: bound_secs.filter(|b| *b > 0.0).map(|b| wall_secs / b),
        shipsync_cpu_secs: child.samples.cpu_secs,
        sandbox_cpu_secs,
        peak_rss_kib: peak,
        peak_rss_mb: kib_to_mb(peak),
        max_sampled_rss_kib: child.samples.max_rss_kib,
        rss_first_quarter_kib: quarters.map(|q| q.0),
        rss_last_quarter_kib: quarters.map(|q| q.1),
        setup_secs,
        summary_line: summary.line,
        rss_samples: child.samples.series.len(),
        rss_series: child.samples.thinned(200),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cli_summary() {
        let out = "run run_01J9 succeeded: 101 page(s), 10000 shipment(s) fetched — 10000 new (found by this pull), 0 updated, 0 unchanged, 0 failed\n";
        let s = parse_summary(out).expect("summary");
        assert_eq!(s.run_id, "run_01J9");
        assert_eq!((s.pages, s.fetched, s.new), (101, 10_000, 10_000));
        assert_eq!((s.updated, s.unchanged, s.failed), (0, 0, 0));
        assert_eq!(parse_summary("nothing here"), None);
    }

    #[test]
    fn shipments_vary_and_balance() {
        let mut shapes = std::collections::BTreeSet::new();
        for i in 1..=60 {
            let s = shipment_spec(i);
            shapes.insert((s.lines.len(), s.packages.len()));
            for line in &s.lines {
                let packed: u32 = s
                    .packages
                    .iter()
                    .flat_map(|p| &p.lines)
                    .filter(|(l, _)| *l == line.line_number)
                    .map(|(_, q)| q)
                    .sum();
                assert_eq!(
                    packed, line.shipped,
                    "shipment {i} line {}",
                    line.line_number
                );
            }
        }
        assert_eq!(
            shapes.len(),
            6,
            "every lines × packages combination: {shapes:?}"
        );
    }
}
