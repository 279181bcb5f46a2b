//! `shipsync-faults [ROW ...] [--quick]`: runs the fault suite's rows and
//! prints their table (see RESILIENCE.md).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use shipsync_bench::report::Envelope;
use shipsync_faults::rows::{self, Options};
use shipsync_faults::world::Backend;

#[derive(Parser)]
#[command(
    name = "shipsync-faults",
    about = "shipsync's fault suite: real processes, load over HTTP, faults injected; prints a table (see RESILIENCE.md)",
    after_help = "Rows: kill9, repeat3, drop20, store-faults, deposco-faults, two-nodes, db-outage (default: all).\ntwo-nodes and db-outage need PostgreSQL (SHIPSYNC_TEST_POSTGRES_URL, a server URL with its port; a throwaway database is created and dropped)."
)]
struct Cli {
    /// Rows to run (default: all, in order).
    rows: Vec<String>,
    /// The small, fast sizes (what CI runs).
    #[arg(long)]
    quick: bool,
    /// Backend of the rows that can run on either.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Where to write the JSON [default: bench-results/faults.json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// The shipsync binary [default: the one next to this executable,
    /// rebuilt first in the same profile unless --no-build].
    #[arg(long)]
    shipsync: Option<PathBuf>,
    #[arg(long)]
    no_build: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let bin = shipsync_bench::process::locate_shipsync(cli.shipsync.clone(), !cli.no_build)?;
    let opts = Options {
        bin,
        quick: cli.quick,
        backend: match cli.backend {
            BackendArg::Sqlite => Backend::Sqlite,
            BackendArg::Postgres => Backend::Postgres,
        },
    };
    let wanted: Vec<String> = if cli.rows.is_empty() {
        rows::ROWS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        cli.rows.clone()
    };
    for w in &wanted {
        if !rows::ROWS.contains(&w.as_str()) {
            anyhow::bail!("unknown row {w:?}; rows: {}", rows::ROWS.join(", "));
        }
    }
    let mut results = Vec::new();
    for w in &wanted {
        eprintln!("== {w}: {}", rows::describe(w));
        let r = rows::run(w, &opts).await;
        eprintln!(
            "   {} in {:.0} s{}",
            if r.passed { "pass" } else { "FAIL" },
            r.seconds,
            r.failure
                .as_deref()
                .map(|f| format!(" — {f}"))
                .unwrap_or_default()
        );
        if let Some(l) = &r.logs {
            eprintln!("   node logs kept in {l}");
        }
        results.push(r);
    }
    println!("{}", shipsync_faults::table(&results));
    let path = cli
        .json
        .unwrap_or_else(|| shipsync_bench::report::default_path("faults"));
    Envelope::new("faults", cli.quick, &results).write(&path)?;
    eprintln!("JSON: {}", path.display());
    if results.iter().any(|r| !r.passed) {
        std::process::exit(1);
    }
    Ok(())
}
