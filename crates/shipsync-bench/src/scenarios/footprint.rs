//! Scenario `footprint`: start to ready on an existing database, idle RSS,
//! release binary size.
//!
//! Targets (docs/quality.md): idle RSS ≤ 40 MB; start to ready ≤ 0.5 s on
//! an existing database.
//!
//! A fresh SQLite database is created and migrated by one `shipsync serve`,
//! which also gets a merchant and a connection, and is stopped. Then
//! `shipsync serve` is started `starts` times on that existing database:
//! start to ready is spawn → the first `GET /healthz` answered 200 (polled
//! every 2 ms); idle RSS is `VmRSS` after `idle_wait` with no traffic (the
//! scheduler and workers running); then SIGTERM.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::json;

use crate::process::{Instance, free_port};
use crate::stats::percentiles;
use crate::table::{Table, verdict_at_most};
use crate::{init_tls, kib_to_mb, rss};

pub const TARGET_IDLE_RSS_MB: f64 = 40.0;
pub const TARGET_READY_SECS: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct Options {
    pub shipsync: PathBuf,
    pub starts: usize,
    pub idle_wait: Duration,
    pub verbose: bool,
}

impl Options {
    pub fn full(shipsync: PathBuf) -> Self {
        Self {
            shipsync,
            starts: 5,
            idle_wait: Duration::from_secs(5),
            verbose: true,
        }
    }

    pub fn quick(shipsync: PathBuf) -> Self {
        Self {
            starts: 2,
            idle_wait: Duration::from_millis(500),
            verbose: false,
            ..Self::full(shipsync)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Start {
    pub ready_secs: f64,
    pub rss_at_ready_kib: u64,
    pub idle_rss_kib: u64,
    pub idle_hwm_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shipsync_binary: String,
    pub binary_bytes: u64,
    pub idle_wait_secs: f64,
    pub starts: Vec<Start>,
    pub ready_median_secs: f64,
    pub ready_max_secs: f64,
    pub idle_rss_median_kib: u64,
    pub idle_rss_max_kib: u64,
    pub verdict_ready: String,
    pub verdict_idle_rss: String,
}

impl Report {
    pub fn check_complete(&self) -> Result<()> {
        if self.starts.is_empty()
            || self
                .starts
                .iter()
                .any(|s| s.ready_secs <= 0.0 || s.idle_rss_kib == 0)
            || self.binary_bytes == 0
        {
            bail!("incomplete footprint figures: {self:?}");
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "footprint: {} starts of `shipsync serve` on an existing SQLite database; idle RSS after {:.1} s without traffic\n\n",
            self.starts.len(),
            self.idle_wait_secs
        );
        let mut t = Table::new([
            "start",
            "start to ready (ms)",
            "RSS at ready (MB)",
            "idle RSS (MB)",
            "idle VmHWM (MB)",
        ]);
        for (i, s) in self.starts.iter().enumerate() {
            t.row([
                format!("#{}", i + 1),
                format!("{:.1}", s.ready_secs * 1000.0),
                format!("{:.1}", kib_to_mb(s.rss_at_ready_kib)),
                format!("{:.1}", kib_to_mb(s.idle_rss_kib)),
                format!("{:.1}", kib_to_mb(s.idle_hwm_kib)),
            ]);
        }
        out.push_str(&t.render());
        out.push('\n');
        let mut v = Table::new(["figure", "value", "target", "verdict"]);
        v.row([
            "start to ready (median / max)".to_string(),
            format!(
                "{:.0} / {:.0} ms",
                self.ready_median_secs * 1000.0,
                self.ready_max_secs * 1000.0
            ),
            format!("≤ {TARGET_READY_SECS} s"),
            self.verdict_ready.clone(),
        ]);
        v.row([
            "idle RSS (median / max)".to_string(),
            format!(
                "{:.1} / {:.1} MB",
                kib_to_mb(self.idle_rss_median_kib),
                kib_to_mb(self.idle_rss_max_kib)
            ),
            format!("≤ {TARGET_IDLE_RSS_MB} MB"),
            self.verdict_idle_rss.clone(),
        ]);
        v.row([
            "binary size".to_string(),
            format!("{:.1} MB", self.binary_bytes as f64 / 1e6),
            "—".into(),
            self.shipsync_binary.clone(),
        ]);
        out.push_str(&v.render());
        out
    }
}

pub async fn run(opts: &Options) -> Result<Report> {
    init_tls();
    let binary_bytes = std::fs::metadata(&opts.shipsync)
        .with_context(|| format!("cannot stat {}", opts.shipsync.display()))?
        .len();
    let instance = Instance::sqlite(&opts.shipsync, "footprint")?;
    // The existing database: migrated, with a merchant and a connection.
    let serve = instance.serve().await?;
    let seeded = async {
        let (merchant_id, _) = serve
            .webhook_merchant(
                "Bench Footprint",
                "http://127.0.0.1:9",
                crate::webhooks::SHARED_SECRET,
            )
            .await?;
        serve
            .api(
                "POST",
                "/api/v1/connections",
                Some(&json!({
                    "name": "Bench Shopify",
                    "merchant_id": merchant_id,
                    "enabled": false,
                    "store": {"platform": "shopify", "shop_url": "https://bench.myshopify.com", "access_token": "shpat_bench"},
                })),
                201,
            )
            .await
    }
    .await;
    serve.stop().await?;
    seeded?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut starts = Vec::new();
    for i in 0..opts.starts {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let health = format!("http://{listen}/healthz");
        let t0 = Instant::now();
        let mut child = instance
            .command(["serve"])
            .env("SHIPSYNC_LISTEN", &listen)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start shipsync serve")?;
        let pid = child.id().ok_or_else(|| anyhow!("no pid"))?;
        let ready = loop {
            if let Some(s) = child.try_wait()? {
                bail!("shipsync serve exited at start ({s})");
            }
            if let Ok(r) = http.get(&health).send().await
                && r.status().is_success()
            {
                break t0.elapsed();
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("shipsync serve not ready after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let at_ready = rss::read(pid).map_or(0, |r| r.rss_kib);
        tokio::time::sleep(opts.idle_wait).await;
        let idle = rss::read(pid).unwrap_or_default();
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .is_err()
        {
            child.kill().await?;
        }
        if opts.verbose {
            eprintln!(
                "[footprint] start {}: ready in {:.1} ms, RSS {:.1} MB at ready, {:.1} MB idle",
                i + 1,
                ready.as_secs_f64() * 1000.0,
                kib_to_mb(at_ready),
                kib_to_mb(idle.rss_kib)
            );
        }
        starts.push(Start {
            ready_secs: ready.as_secs_f64(),
            rss_at_ready_kib: at_ready,
            idle_rss_kib: idle.rss_kib,
            idle_hwm_kib: idle.hwm_kib,
        });
    }
    let mut ready_us: Vec<u64> = starts.iter().map(|s| (s.ready_secs * 1e6) as u64).collect();
    let ready = percentiles(&mut ready_us);
    let mut idle: Vec<u64> = starts.iter().map(|s| s.idle_rss_kib).collect();
    let idle_p = percentiles(&mut idle);
    let ready_median_secs = ready.p50 as f64 / 1e6;
    let ready_max_secs = ready.max as f64 / 1e6;
    Ok(Report {
        shipsync_binary: opts.shipsync.display().to_string(),
        binary_bytes,
        idle_wait_secs: opts.idle_wait.as_secs_f64(),
        verdict_ready: verdict_at_most(Some(ready_max_secs), TARGET_READY_SECS, " s"),
        verdict_idle_rss: verdict_at_most(Some(kib_to_mb(idle_p.max)), TARGET_IDLE_RSS_MB, " MB"),
        starts,
        ready_median_secs,
        ready_max_secs,
        idle_rss_median_kib: idle_p.p50,
        idle_rss_max_kib: idle_p.max,
    })
}
