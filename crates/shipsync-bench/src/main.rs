//! `shipsync-bench <scenario> [options]`: runs one benchmark scenario,
//! prints its table and writes its JSON (see BENCHMARKS.md).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use shipsync_bench::report::{Envelope, default_path};
use shipsync_bench::{machine::Machine, process, pull};

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
            let path = common.json.unwrap_or_else(|| default_path("pull"));
            Envelope::new("pull", common.quick, &report).write(&path)?;
            eprintln!("wrote {}", path.display());
            report.check_complete()?;
        }
    }
    Ok(())
}
