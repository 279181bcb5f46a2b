//! `shipsync-bench <scenario> [options]`: runs one benchmark scenario,
//! prints its table and writes its JSON (see BENCHMARKS.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use shipsync_bench::report::{Envelope, default_path};
use shipsync_bench::{
    baseline, footprint, ingest, machine::Machine, order_latency, process, pull, scale_out,
    ship_to_store, wave,
};

#[derive(Parser)]
#[command(
    name = "shipsync-bench",
    about = "shipsync benchmarks (see BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// The scheduled shipment pull against the Deposco rate limit
    /// (N shipments at 4 req/s, page size 100, compared with N/10).
    Pull {
        #[command(flatten)]
        common: Common,
        /// Shipments in the measured pull [default: 10000; --quick: 300].
        #[arg(long)]
        shipments: Option<usize>,
        /// The sandbox's rate limit in requests/s, 0 = none [default: 4; --quick: 0].
        #[arg(long)]
        rate: Option<f64>,
        /// Skip the N/10 comparison run (no memory-flat figure).
        #[arg(long)]
        no_baseline: bool,
    },
    /// Durable webhook ingest vs a bare and a naive handler (SQLite, and
    /// PostgreSQL when SHIPSYNC_TEST_POSTGRES_URL is set), fsync reference,
    /// open-loop latency at 2,000/s, overload and durability checks.
    Ingest {
        #[command(flatten)]
        common: Common,
        /// Closed-loop concurrency levels [default: 1,8,32,128; --quick: 8].
        #[arg(long, value_delimiter = ',')]
        concurrency: Option<Vec<usize>>,
        /// Measured seconds per closed-loop level [default: 5].
        #[arg(long)]
        secs: Option<f64>,
        /// Open-loop rate, webhooks/s [default: 2000; --quick: 200].
        #[arg(long)]
        rate: Option<f64>,
        /// Skip PostgreSQL even if SHIPSYNC_TEST_POSTGRES_URL is set.
        #[arg(long)]
        no_postgres: bool,
    },
    /// Webhook received → store fulfillment acknowledged, open-loop at
    /// 50, 200 and 1,000 shipments/s; then a throttled store next to a fast one.
    ShipToStore {
        #[command(flatten)]
        common: Common,
        /// Rates in shipments/s [default: 50,200,1000; --quick: 20].
        #[arg(long, value_delimiter = ',')]
        rates: Option<Vec<f64>>,
        /// Seconds of sending per rate [default: 10].
        #[arg(long)]
        secs: Option<f64>,
        /// Skip the throttled-store phase.
        #[arg(long)]
        no_throttle: bool,
    },
    /// A wave of shipments for one store on the Standard plan's budget
    /// (bucket 1,000 points, 100/s), drained against shipments × 10 points
    /// ÷ the restore rate; variant a (orders only in the store) and b
    /// (orders sent to Deposco by shipsync first).
    Wave {
        #[command(flatten)]
        common: Common,
        /// Shipments [default: 2000; --quick: 40].
        #[arg(long)]
        shipments: Option<usize>,
        /// The store's cost bucket, points [default: 1000, --quick too].
        #[arg(long)]
        bucket: Option<f64>,
        /// The bucket's restore rate, points/s [default: 100].
        #[arg(long)]
        restore: Option<f64>,
        /// Variants to run, in order [default: a,b].
        #[arg(long, value_enum, value_delimiter = ',')]
        variant: Option<Vec<wave::Variant>>,
    },
    /// ship-to-store on PostgreSQL with 1, 2, … `serve` nodes on one
    /// database (same machine), open loop at a saturating rate.
    ScaleOut {
        #[command(flatten)]
        common: Common,
        /// PostgreSQL server URL [default: $SHIPSYNC_TEST_POSTGRES_URL];
        /// a throwaway database is created and dropped per node count.
        #[arg(long)]
        database_url: Option<String>,
        /// Node counts [default: 1,2; --quick: 2].
        #[arg(long, value_delimiter = ',')]
        nodes: Option<Vec<usize>>,
        /// Shipments per node count [default: 3000; --quick: 40].
        #[arg(long)]
        shipments: Option<usize>,
        /// Offered shipments/s over all nodes [default: 1000; --quick: 40].
        #[arg(long)]
        rate: Option<f64>,
        /// The store's cost bucket restores this many points/s (Shopify's
        /// Standard plan: 100) [default: a store that answers at once].
        #[arg(long)]
        restore: Option<f64>,
        /// With --restore: the bucket's size in points.
        #[arg(long, default_value_t = 1000.0, requires = "restore")]
        bucket: f64,
    },
    /// Store order created → Deposco sales order created, through Shopify's
    /// order webhooks (hold 0), next to the Sales Orders channel's pull run
    /// at a fixed interval.
    OrderLatency {
        #[command(flatten)]
        common: Common,
        /// Orders per path [default: 200; --quick: 10].
        #[arg(long)]
        orders: Option<usize>,
        /// Orders created per second [default: 1; --quick: 2].
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds between the pull path's runs, 0 = skip the pull path
        /// [default: 60; --quick: 1].
        #[arg(long)]
        pull_every: Option<f64>,
        /// The Deposco sandbox's limit in requests/s, 0 = none [default: 4].
        #[arg(long)]
        deposco_rate: Option<f64>,
    },
    /// Idle RSS, start to ready on an existing database, binary size.
    Footprint {
        #[command(flatten)]
        common: Common,
        /// Starts measured [default: 5; --quick: 2].
        #[arg(long)]
        starts: Option<usize>,
    },
    /// (internal) A reference handler for `ingest`, in its own process.
    #[command(hide = true)]
    Baseline {
        #[arg(long)]
        mode: baseline::Mode,
        #[arg(long)]
        listen: String,
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[derive(Args)]
struct Common {
    /// Smoke mode: small and fast (CI runs it so the harness cannot rot).
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON [default: bench-results/<scenario>.json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// The shipsync binary to measure [default: the one next to this
    /// executable, rebuilt first with `cargo build -p shipsync` in the same
    /// profile unless --no-build].
    #[arg(long)]
    shipsync: Option<PathBuf>,
    /// Do not run `cargo build -p shipsync` first.
    #[arg(long)]
    no_build: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Scenario::Baseline {
        mode,
        listen,
        database_url,
    } = &cli.scenario
    {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        return baseline::serve(*mode, listener, database_url.as_deref()).await;
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build of shipsync-bench, measuring a debug shipsync; use --release for real figures"
        );
    }
    match cli.scenario {
        Scenario::Pull {
            common,
            shipments,
            rate,
            no_baseline,
        } => {
            let bin = process::locate_shipsync(common.shipsync.clone(), !common.no_build)?;
            let mut opts = if common.quick {
                pull::Options::quick(bin)
            } else {
                pull::Options::full(bin)
            };
            if let Some(n) = shipments {
                opts.shipments = n;
            }
            if let Some(r) = rate {
                opts.rate_limit_per_sec = r;
            }
            if no_baseline {
                opts.baseline_divisor = 0;
            }
            opts.verbose = true;
            eprintln!("machine: {}", Machine::detect().one_line());
            let report = pull::run(&opts).await?;
            println!("{}", report.table());
            write("pull", &common, &report)?;
            report.check_complete()?;
        }
        Scenario::Ingest {
            common,
            concurrency,
            secs,
            rate,
            no_postgres,
        } => {
            let bin = process::locate_shipsync(common.shipsync.clone(), !common.no_build)?;
            let mut opts = if common.quick {
                ingest::Options::quick(bin)
            } else {
                ingest::Options::full(bin)
            };
            opts.baseline_exe = Some(std::env::current_exe()?);
            if let Some(c) = concurrency {
                opts.concurrency = c;
            }
            if let Some(s) = secs {
                opts.window = Duration::from_secs_f64(s);
            }
            if let Some(r) = rate {
                opts.open_rate = r;
            }
            if no_postgres {
                opts.postgres = None;
            }
            opts.verbose = true;
            eprintln!("machine: {}", Machine::detect().one_line());
            let report = ingest::run(&opts).await?;
            println!("{}", report.table());
            write("ingest", &common, &report)?;
            report.check_complete()?;
        }
        Scenario::ShipToStore {
            common,
            rates,
            secs,
            no_throttle,
        } => {
            let bin = process::locate_shipsync(common.shipsync.clone(), !common.no_build)?;
            let mut opts = if common.quick {
                ship_to_store::Options::quick(bin)
            } else {
                ship_to_store::Options::full(bin)
            };
            if let Some(r) = rates {
                opts.rates = r;
            }
            if let Some(s) = secs {
                opts.secs = Duration::from_secs_f64(s);
            }
            if no_throttle {
                opts.throttle = None;
            }
            opts.verbose = true;
            eprintln!("machine: {}", Machine::detect().one_line());
            let report = ship_to_store::run(&opts).await?;
            println!("{}", report.table());
            write("ship-to-store", &common, &report)?;
            report.check_complete()?;
        }
        Scenario::OrderLatency {
            common,
            orders,
            rate,
            pull_every,
            deposco_rate,
        } => {
            let bin = process::locate_shipsync(common.shipsync.clone(), !common.no_build)?;
            let mut opts = if common.quick {
                order_latency::Options::quick(bin)
            } else {
                order_latency::Options::full(bin)
            };
            if let Some(n) = orders {
                opts.orders = n;
            }
            if let Some(r) = rate {
                opts.rate = r;
            }
            if let Some(s) = pull_every {
                opts.pull_every = (s > 0.0).then(|| Duration::from_secs_f64(s));
            }
            if let Some(r) = deposco_rate {
                opts.deposco_rate = r;
            }
            opts.verbose = true;
            eprintln!("machine: {}", Machine::detect().one_line());
            let report = order_latency::run(&opts).await?;
            println!("{}", report.table());
            write("order-latency", &common, &report)?;
            report.check_complete()?;
        }
        Scenario::Wave {
            common,
            shipments,
            bucket,
            restore,
            variant,
        } => {
            let bin = process::locate_shipsync(common.shipsync.clone(), !common.no_build)?;
            let mut opts = if common.quick {
                wave::Options::quick(bin)
            } else {
                wave::Options::full(bin)
            };
            if let Some(n) = shipments {
                opts.shipments = n;
            }
            if let Some(b) = bucket {
                opts.bucket.maximum_available = b;
            }
            if let Some(r) = restore {
                opts.bucket.restore_rate = r;
            }
            if let Some(v) = variant {
                opts.variants = v;
            }
            opts.verbose = true;
            eprintln!("machine: {}", Machine::detect().one_line());
            let report = wave::run(&opts).await?;
            println!("{}", report.table());
            write("wave", &common, &report)?;
            report.check_complete()?;
        }
        Scenario::ScaleOut {
            common,
            database_url,
            nodes,
            shipments,
            rate,
            restore,
            bucket,
        } => {
            let Some(url) = database_url.or_else(shipsync_testkit::postgres_server) else {
                anyhow::bail!(
                    "scale-out needs PostgreSQL: pass --database-url or set SHIPSYNC_TEST_POSTGRES_URL"
                );
            };
            let bin = process::locate_shipsync(common.shipsync.clone(), !common.no_build)?;
            let mut opts = if common.quick {
                scale_out::Options::quick(bin, url)
            } else {
                scale_out::Options::full(bin, url)
            };
            if let Some(n) = nodes {
                opts.nodes = n;
            }
            if let Some(n) = shipments {
                opts.shipments = n;
            }
            if let Some(r) = rate {
                opts.rate = r;
            }
            opts.budget = restore.map(|restore_rate| shipsync_sandbox_shopify::ThrottleConfig {
                maximum_available: bucket,
                restore_rate,
            });
            opts.verbose = true;
            eprintln!("machine: {}", Machine::detect().one_line());
            let report = scale_out::run(&opts).await?;
            println!("{}", report.table());
            write("scale-out", &common, &report)?;
            report.check_complete()?;
        }
        Scenario::Footprint { common, starts } => {
            let bin = process::locate_shipsync(common.shipsync.clone(), !common.no_build)?;
            let mut opts = if common.quick {
                footprint::Options::quick(bin)
            } else {
                footprint::Options::full(bin)
            };
            if let Some(n) = starts {
                opts.starts = n;
            }
            opts.verbose = true;
            eprintln!("machine: {}", Machine::detect().one_line());
            let report = footprint::run(&opts).await?;
            println!("{}", report.table());
            write("footprint", &common, &report)?;
            report.check_complete()?;
        }
        Scenario::Baseline { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn write<R: serde::Serialize>(scenario: &str, common: &Common, report: &R) -> Result<()> {
    let path = common
        .json
        .clone()
        .unwrap_or_else(|| default_path(scenario));
    Envelope::new(scenario, common.quick, report).write(&path)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
