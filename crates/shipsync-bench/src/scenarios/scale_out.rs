//! Scenario `scale-out`: ship-to-store on PostgreSQL with 1, 2, … `shipsync
//! serve` nodes on one database, so a 3PL can size a deployment.
//!
//! For each node count: a throwaway PostgreSQL database on the server of
//! `--database-url` (default `SHIPSYNC_TEST_POSTGRES_URL`), created and
//! dropped by the bench; N `serve` processes started on it, **all on this
//! machine** (they share its cores with each other, the database server,
//! the load generator and the store sandbox — the table says so). A store
//! that answers at once (the recorder of [`crate::store`]) and one merchant.
//! Shipments (one order, one line, one package each) are sent open loop at
//! a rate meant to saturate, spread evenly over the nodes (node i gets
//! every N-th shipment, at rate ÷ N), as a round-robin load balancer would.
//! Measured from outside: latency = fulfillment acknowledged − scheduled
//! send; throughput = shipments ÷ (first send → last acknowledgement); CPU
//! of each node from `/proc/<pid>/stat` over the same window, per shipment
//! (a node's CPU ÷ all shipments: any node may take any shipment's job) and
//! in total; and the exactly-once check read from the store's orders.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shipsync_sandbox_deposco::{DeposcoSandbox, SandboxConfig};
use shipsync_sandbox_shopify::ThrottleConfig;
use shipsync_testkit::TestDb;

use crate::process::{Instance, Serve};
use crate::stats::{Percentiles, percentiles};
use crate::store::{
    ExactlyOnce, connect_store, cpu_ms_per, prepare, send_open_loop, start_fast_store, start_store,
};
use crate::table::{Table, num};
use crate::{init_tls, rss};

#[derive(Debug, Clone)]
pub struct Options {
    pub shipsync: PathBuf,
    /// A PostgreSQL server URL (its database name is not used).
    pub database_url: String,
    pub nodes: Vec<usize>,
    pub shipments: usize,
    /// Offered shipments/s over all nodes.
    pub rate: f64,
    /// How long to wait for the last fulfillments after sending.
    pub settle: Duration,
    /// The store's cost bucket; `None`: a store that answers at once (no
    /// cost limit to speak of). With one, the figure to read is how much
    /// of the store's budget the nodes used ([`Run::budget_use`]).
    pub budget: Option<ThrottleConfig>,
    pub verbose: bool,
}

impl Options {
    pub fn full(shipsync: PathBuf, database_url: String) -> Self {
        Self {
            shipsync,
            database_url,
            nodes: vec![1, 2],
            shipments: 3000,
            rate: 1000.0,
            settle: Duration::from_secs(300),
            budget: None,
            verbose: true,
        }
    }

    pub fn quick(shipsync: PathBuf, database_url: String) -> Self {
        Self {
            nodes: vec![2],
            shipments: 40,
            rate: 40.0,
            settle: Duration::from_secs(60),
            verbose: false,
            ..Self::full(shipsync, database_url)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeCpu {
    pub node: usize,
    pub webhooks_sent: usize,
    pub webhooks_accepted: u64,
    pub cpu_secs: Option<f64>,
    pub peak_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub nodes: usize,
    pub rate: f64,
    pub shipments: usize,
    pub fulfilled: usize,
    /// First send → last fulfillment acknowledged, seconds.
    pub wall_secs: Option<f64>,
    /// Acknowledged − scheduled send, µs.
    pub latency: Percentiles,
    pub per_node: Vec<NodeCpu>,
    pub bench_cpu_secs: Option<f64>,
    pub store_requests: u64,
    pub store_cost_points: u64,
    pub store_throttled: u64,
    /// The store's cost bucket, when it had one.
    pub budget: Option<ThrottleConfig>,
    pub exactly_once: ExactlyOnce,
    pub repeated_creates: u64,
}

impl Run {
    pub fn throughput(&self) -> Option<f64> {
        self.wall_secs.map(|w| self.fulfilled as f64 / w.max(1e-9))
    }

    pub fn total_cpu_secs(&self) -> Option<f64> {
        self.per_node.iter().map(|n| n.cpu_secs).sum()
    }

    pub fn duplicates(&self) -> u64 {
        self.exactly_once.duplicates as u64 + self.repeated_creates
    }

    /// With a store budget: the points the store charged from the first
    /// send to the last fulfillment ÷ what its bucket held and restored
    /// meanwhile (1.0: every point used; below it, the store sat idle
    /// while points were available).
    pub fn budget_use(&self) -> Option<f64> {
        let b = self.budget?;
        let offered = b.maximum_available + b.restore_rate * self.wall_secs?;
        Some(self.store_cost_points as f64 / offered.max(1e-9))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub shipsync_binary: String,
    /// Always true today: the nodes, PostgreSQL and the bench share one machine.
    pub same_machine: bool,
    pub runs: Vec<Run>,
}

impl Report {
    pub fn check_complete(&self) -> Result<()> {
        if self.runs.is_empty() {
            bail!("no run");
        }
        for r in &self.runs {
            let accepted: u64 = r.per_node.iter().map(|n| n.webhooks_accepted).sum();
            if accepted != r.shipments as u64 || r.fulfilled != r.shipments {
                bail!(
                    "{} node(s): {} shipments, {} webhooks accepted, {} fulfilled",
                    r.nodes,
                    r.shipments,
                    accepted,
                    r.fulfilled
                );
            }
            if !r.exactly_once.ok() || r.repeated_creates > 0 {
                bail!(
                    "{} node(s): {}; {} fulfillmentCreate for a shipment already fulfilled",
                    r.nodes,
                    r.exactly_once.summary(),
                    r.repeated_creates
                );
            }
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = String::from(
            "scale-out: ship-to-store on PostgreSQL with N `shipsync serve` nodes on one database, webhooks spread round robin, open loop; the nodes, PostgreSQL, the load generator and the store sandbox all run on THIS ONE MACHINE (they share its cores)\n\n",
        );
        let mut t = Table::new([
            "nodes",
            "offered (/s)",
            "shipments",
            "fulfilled",
            "throughput (fulfillments/s)",
            "p50 (ms)",
            "p99 (ms)",
            "shipsync CPU ms per shipment, total",
            "per node (ms per shipment)",
            "CPU s: nodes / bench+sandbox",
            "store requests / points per shipment",
            "duplicates",
        ]);
        for r in &self.runs {
            let n = r.shipments.max(1) as f64;
            t.row([
                r.nodes.to_string(),
                format!("{:.0}", r.rate),
                r.shipments.to_string(),
                r.fulfilled.to_string(),
                num(r.throughput(), 1),
                format!("{:.1}", r.latency.p50_ms()),
                format!("{:.1}", r.latency.p99_ms()),
                num(cpu_ms_per(r.total_cpu_secs(), r.shipments), 2),
                r.per_node
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c.node,
                            num(cpu_ms_per(c.cpu_secs, r.shipments), 2)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                format!(
                    "{} / {}",
                    num(r.total_cpu_secs(), 1),
                    num(r.bench_cpu_secs, 1)
                ),
                format!(
                    "{:.2} / {:.1}",
                    r.store_requests as f64 / n,
                    r.store_cost_points as f64 / n
                ),
                r.duplicates().to_string(),
            ]);
        }
        out.push_str(&t.render());
        for r in &self.runs {
            if let (Some(b), Some(used)) = (r.budget, r.budget_use()) {
                out.push_str(&format!(
                    "\n{} node(s), store budget {:.0} points restoring {:.0}/s: {:.0} points charged from the first send to the last fulfillment ÷ {:.0} held and restored meanwhile = {used:.2} of the budget used ({} THROTTLED)",
                    r.nodes,
                    b.maximum_available,
                    b.restore_rate,
                    r.store_cost_points,
                    b.maximum_available + b.restore_rate * r.wall_secs.unwrap_or(0.0),
                    r.store_throttled
                ));
            }
        }
        if self.runs.iter().any(|r| r.budget.is_some()) {
            out.push('\n');
        }
        if let (Some(one), Some(more)) = (
            self.runs.iter().find(|r| r.nodes == 1),
            self.runs
                .iter()
                .filter(|r| r.nodes > 1)
                .max_by_key(|r| r.nodes),
        ) && let (Some(a), Some(b)) = (one.throughput(), more.throughput())
        {
            out.push_str(&format!(
                "\nthroughput, {} nodes ÷ 1 node: {b:.1} ÷ {a:.1} = {:.2} (same machine: the nodes compete for its cores)\n",
                more.nodes,
                b / a.max(1e-9)
            ));
        }
        out
    }
}

async fn run_nodes(opts: &Options, nodes: usize, first_id: u64) -> Result<Run> {
    let say = |m: String| {
        if opts.verbose {
            eprintln!("[scale-out] {m}");
        }
    };
    let db = TestDb::postgres_on(&opts.database_url).await?;
    let instance = Instance::on(&opts.shipsync, "scale-out", db)?;
    let deposco = DeposcoSandbox::new(SandboxConfig::default());
    let running = deposco
        .clone()
        .start("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the Deposco sandbox")?;
    let store = match opts.budget {
        Some(b) => start_store(b).await?,
        None => start_fast_store().await?,
    };
    // The first node migrates; the others start on the migrated database.
    let mut serves: Vec<Serve> = vec![instance.serve_node(1).await?];
    for n in 2..=nodes {
        serves.push(instance.serve_node(n).await?);
    }
    let result = async {
        let (path, _) = connect_store(&serves[0], &running.url, &store, "Bench Scale").await?;
        let items = prepare(&store, &deposco, first_id, opts.shipments);
        let ids: Vec<u64> = items.iter().map(|(id, _)| *id).collect();
        let mut shares: Vec<Vec<(u64, bytes::Bytes)>> = vec![Vec::new(); nodes];
        for (k, item) in items.into_iter().enumerate() {
            shares[k % nodes].push(item);
        }
        let pids: Vec<u32> = serves
            .iter()
            .map(|s| s.pid().context("no pid"))
            .collect::<Result<_>>()?;
        let addrs: Vec<_> = serves.iter().map(Serve::addr).collect::<Result<_>>()?;
        let sent_counts: Vec<usize> = shares.iter().map(Vec::len).collect();
        say(format!(
            "{nodes} node(s): {} shipments at {}/s",
            opts.shipments, opts.rate
        ));
        let before = store.rec.counters();
        let cpu_before: Vec<Option<f64>> = pids.iter().map(|p| rss::cpu_secs(*p)).collect();
        let bench_before = rss::own_cpu_secs();
        let t0 = Instant::now();
        let rate = opts.rate / nodes as f64;
        let tasks: Vec<_> = shares
            .into_iter()
            .zip(&addrs)
            .map(|(share, addr)| {
                let (addr, path) = (*addr, path.clone());
                tokio::spawn(async move { send_open_loop(addr, &path, share, rate).await })
            })
            .collect();
        let mut sent = Vec::with_capacity(nodes);
        for t in tasks {
            sent.push(t.await.context("a sender panicked")??);
        }
        let deadline = Instant::now() + opts.settle;
        while store.rec.count(&ids) < ids.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let cpu_after: Vec<Option<f64>> = pids.iter().map(|p| rss::cpu_secs(*p)).collect();
        let bench_after = rss::own_cpu_secs();
        let counted = store.rec.counters().since(before);
        let mut lat = Vec::new();
        let mut last: Option<Instant> = None;
        for s in &sent {
            let at = s.at.lock().unwrap_or_else(|p| p.into_inner());
            for (id, sent_at) in at.iter() {
                if let Some(a) = store.rec.get(*id) {
                    lat.push(a.saturating_duration_since(*sent_at).as_micros() as u64);
                    last = Some(last.map_or(a, |l: Instant| l.max(a)));
                }
            }
        }
        let fulfilled = lat.len();
        let per_node = (0..nodes)
            .map(|i| NodeCpu {
                node: i + 1,
                webhooks_sent: sent_counts[i],
                webhooks_accepted: sent[i].outcome.accepted_total,
                cpu_secs: cpu_after[i].zip(cpu_before[i]).map(|(a, b)| a - b),
                peak_rss_kib: rss::read(pids[i]).map_or(0, |r| r.hwm_kib),
            })
            .collect();
        let run = Run {
            nodes,
            rate: opts.rate,
            shipments: ids.len(),
            fulfilled,
            wall_secs: last
                .filter(|_| fulfilled == ids.len())
                .map(|l| l.saturating_duration_since(t0).as_secs_f64()),
            latency: percentiles(&mut lat),
            per_node,
            bench_cpu_secs: bench_after.zip(bench_before).map(|(a, b)| a - b),
            store_requests: counted.requests,
            store_cost_points: counted.cost,
            store_throttled: counted.throttled,
            budget: opts.budget,
            exactly_once: ExactlyOnce::check(&store, &ids),
            repeated_creates: counted.repeats,
        };
        say(format!(
            "{nodes} node(s): {}/{} fulfilled, {} fulfillments/s, p50 {:.1} ms, p99 {:.1} ms, {} CPU ms per shipment in total; {}",
            run.fulfilled,
            run.shipments,
            num(run.throughput(), 1),
            run.latency.p50_ms(),
            run.latency.p99_ms(),
            num(cpu_ms_per(run.total_cpu_secs(), run.shipments), 2),
            run.exactly_once.summary()
        ));
        Ok::<_, anyhow::Error>(run)
    }
    .await;
    let mut stopped = Ok(());
    for s in serves {
        if let Err(e) = s.stop().await {
            stopped = Err(e);
        }
    }
    running.shutdown().await;
    let run = result?;
    stopped?;
    Ok(run)
}

pub async fn run(opts: &Options) -> Result<Report> {
    init_tls();
    if opts.nodes.is_empty() || opts.nodes.contains(&0) || opts.shipments == 0 {
        bail!("scale-out needs node counts of at least 1 and shipments");
    }
    let mut runs = Vec::new();
    for (k, &n) in opts.nodes.iter().enumerate() {
        runs.push(run_nodes(opts, n, 700_001 + k as u64 * 100_000).await?);
    }
    Ok(Report {
        shipsync_binary: opts.shipsync.display().to_string(),
        same_machine: true,
        runs,
    })
}
