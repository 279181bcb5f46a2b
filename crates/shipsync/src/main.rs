use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use secrecy::ExposeSecret;
use shipsync::config::{Flags, LogFormat, Settings, log_filter_from_env};
use shipsync::{logging, server};

/// mimalloc rather than glibc's malloc: the hot paths allocate many small,
/// short-lived values (JSON, rows, futures) across threads, where glibc's
/// arenas spent ≈ 7 % of shipsync's CPU in a profile of `ship-to-store`.
/// Built without transparent huge pages (`no_thp`): with them the idle
/// process held 52 MB instead of 34 MB (BENCHMARKS.md, footprint). Built to
/// `override` `malloc` too, so that SQLite's allocations (the C library's)
/// are mimalloc's as well: glibc's `malloc` and `free` were ≈ 4.5 % of the
/// CPU of a shipment (BENCHMARKS.md, the eleventh session).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// shipsync: warehouse shipments (Deposco) to stores (Shopify), by webhook,
/// exactly once.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server, workers and scheduler (migrates the schema first).
    Serve,
    /// Apply schema migrations and exit.
    Migrate,
    /// The whole loop on one machine against the sandboxes; no accounts needed.
    Demo {
        /// Orders to place.
        #[arg(long, default_value_t = 20)]
        orders: u32,
        /// Stop after the summary (exit code 0 only if every shipped unit
        /// reached the store exactly once).
        #[arg(long)]
        exit: bool,
    },
    /// Run a channel's import now, with a progress bar.
    Sync {
        #[command(subcommand)]
        what: SyncWhat,
    },
    /// Manage web-UI users.
    Users {
        #[command(subcommand)]
        what: UsersWhat,
    },
    /// A merchant's mappings as a TOML file (ship methods, SKU aliases, kit
    /// recipes, carriers), e.g. to keep them in version control.
    Mappings {
        #[command(subcommand)]
        what: MappingsWhat,
    },
    /// Run one sandbox alone, for trying shipsync without real accounts.
    Sandbox {
        #[arg(value_enum)]
        platform: SandboxPlatform,
        /// Address to listen on.
        #[arg(long = "listen", id = "sandbox_listen", default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum SyncWhat {
    /// Import shipments from Deposco now (the scheduled pull, run by hand).
    /// Shipments it imports go to the store through the running server's
    /// workers (or the next `serve`).
    Shipments {
        /// The connection whose merchant's shipments to import (con_…).
        #[arg(long)]
        connection: String,
        /// Import shipments updated since this time (RFC 3339) instead of
        /// since the channel's last completed pull.
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UsersWhat {
    /// Create a user. The password is prompted (twice, without echo) on a
    /// terminal, else read from the first line of stdin.
    #[command(group(clap::ArgGroup::new("role").required(true).args(["admin", "staff", "merchant"])))]
    Create {
        /// An Administrator: everything, including users.
        #[arg(long)]
        admin: bool,
        /// Staff: everything but users.
        #[arg(long)]
        staff: bool,
        /// With --staff: limit the user to this merchant (mer_…); repeat it
        /// for several. Without it Staff sees every merchant.
        #[arg(long = "only-merchant", value_name = "MERCHANT_ID", requires = "staff")]
        only_merchant: Vec<String>,
        /// A Merchant user: only this merchant's data (mer_…).
        #[arg(long, value_name = "MERCHANT_ID")]
        merchant: Option<String>,
        /// The user's email, used to sign in.
        email: String,
    },
    /// Print a new API token acting as the user (on stdout, one line, for
    /// scripts); list and revoke tokens on the Account page or
    /// /api/v1/account/tokens.
    Token {
        /// The user's email.
        email: String,
        /// The token's name, shown in token lists.
        #[arg(long, default_value = "created with shipsync users token")]
        name: String,
        /// Days until the token stops working (default: never).
        #[arg(long, value_name = "N")]
        expires_in_days: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
enum MappingsWhat {
    /// Print the merchant's mappings as TOML on stdout.
    Export {
        /// The merchant (mer_…).
        #[arg(long)]
        merchant: String,
    },
    /// Replace the merchant's mappings with a TOML file, all or nothing
    /// (the same checks as the API's PUT; on a refusal nothing changes and
    /// the exit code is 1).
    Import {
        /// The merchant (mer_…).
        #[arg(long)]
        merchant: String,
        /// The TOML file (as `export` writes it).
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SandboxPlatform {
    Deposco,
    Shopify,
}

fn main() {
    let cli = Cli::parse();
    // `serve` resolves its settings before the runtime, which it sizes by
    // them; a bad setting is reported by `run` as for any command.
    let serve = matches!(cli.command, Command::Serve).then(|| Settings::resolve(&cli.flags));
    let settings = serve.as_ref().and_then(|s| s.as_ref().ok());
    // One readable line (with its causes), never a backtrace: these errors
    // are for operators (bad configuration, a busy database, …).
    let done = runtime(settings)
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli, serve)));
    if let Err(e) = done {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

/// The async runtime. `serve` on SQLite runs its tasks on half the cores
/// (one at least): the other half is left to SQLite's connection threads,
/// to which every statement is handed and which do the database's work.
/// On 2 cores a second runtime thread cost 9–12 % more CPU per shipment
/// and four times the p50 latency at 200 shipments/s (BENCHMARKS.md):
/// the threads woke each other more than they worked side by side.
/// Elsewhere one thread per core. `TOKIO_WORKER_THREADS` overrides both.
/// `serve`: the settings of `serve`, when that is the command.
fn runtime(serve: Option<&Settings>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let sqlite_server = serve.is_some_and(|s| {
        shipsync_db::Backend::of_url(s.database_url.expose_secret())
            == Some(shipsync_db::Backend::Sqlite)
    });
    if sqlite_server && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        builder.worker_threads((cores / 2).max(1));
    }
    builder.build()
}

/// Runs the command; `serve`: its settings as resolved before the runtime.
async fn run(cli: Cli, serve: Option<Result<Settings>>) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve => {
            let settings = serve.unwrap_or_else(|| Settings::resolve(&cli.flags))?;
            logging::init(settings.log_format, settings.log_filter.as_deref());
            let running = server::start(&settings, settings.engine_config()).await?;
            tracing::info!(url = %running.url, database = %settings.database_url_redacted(), "shipsync is serving");
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            running.stop().await;
            Ok(())
        }
        Command::Migrate => {
            let settings = Settings::resolve(&cli.flags)?;
            logging::init(settings.log_format, settings.log_filter.as_deref());
            let db = shipsync_db::Db::open(settings.database_url.expose_secret())
                .await
                .with_context(|| format!("cannot migrate {}", settings.database_url_redacted()))?;
            db.close().await;
            eprintln!(
                "shipsync: the schema of {} is up to date",
                settings.database_url_redacted()
            );
            Ok(())
        }
        Command::Demo { orders, exit } => {
            if let Some(filter) = log_filter_from_env() {
                logging::init(LogFormat::Pretty, Some(&filter));
            }
            let ok = shipsync::demo::run(orders, exit).await?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Sync {
            what: SyncWhat::Shipments { connection, since },
        } => {
            let settings = Settings::resolve(&cli.flags)?;
            if settings.log_filter.is_some() {
                logging::init(settings.log_format, settings.log_filter.as_deref());
            }
            let since = since
                .map(|s| {
                    s.parse::<jiff::Timestamp>().with_context(|| {
                        format!(
                            "--since {s:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z"
                        )
                    })
                })
                .transpose()?;
            shipsync::sync::shipments(&settings, &connection, since).await
        }
        Command::Users {
            what:
                UsersWhat::Create {
                    admin,
                    staff,
                    only_merchant,
                    merchant,
                    email,
                },
        } => {
            let settings = Settings::resolve(&cli.flags)?;
            let (role, merchants) = match (admin, staff, merchant) {
                (true, _, _) => (shipsync_engine::users::Role::Admin, Vec::new()),
                (_, true, _) => (shipsync_engine::users::Role::Staff, only_merchant),
                (_, _, m) => (
                    shipsync_engine::users::Role::Merchant,
                    m.into_iter().collect(),
                ),
            };
            shipsync::users::create(&settings, role, &merchants, &email).await
        }
        Command::Users {
            what:
                UsersWhat::Token {
                    email,
                    name,
                    expires_in_days,
                },
        } => {
            let settings = Settings::resolve(&cli.flags)?;
            shipsync::users::token(&settings, &email, &name, expires_in_days).await
        }
        Command::Mappings {
            what: MappingsWhat::Export { merchant },
        } => {
            let settings = Settings::resolve(&cli.flags)?;
            shipsync::mappings::export(&settings, &merchant).await
        }
        Command::Mappings {
            what: MappingsWhat::Import { merchant, file },
        } => {
            let settings = Settings::resolve(&cli.flags)?;
            shipsync::mappings::import(&settings, &merchant, &file).await
        }
        Command::Sandbox { platform, listen } => {
            let settings = Settings::resolve(&cli.flags)?;
            logging::init(settings.log_format, settings.log_filter.as_deref());
            match platform {
                SandboxPlatform::Deposco => {
                    let running = shipsync_sandbox_deposco::DeposcoSandbox::new(Default::default())
                        .start(listen)
                        .await?;
                    eprintln!(
                        "Deposco sandbox on {} (Basic auth sandbox/sandbox; OAuth token at {}); control API under /_sandbox. It is on a private address: serve shipsync with SHIPSYNC_ALLOW_PRIVATE_TARGETS=true (--allow-private-targets) to reach it",
                        running.url,
                        running.token_url()
                    );
                    shutdown_signal().await;
                }
                SandboxPlatform::Shopify => {
                    let running = shipsync_sandbox_shopify::ShopifySandbox::new(Default::default())
                        .start(listen)
                        .await?;
                    eprintln!(
                        "Shopify sandbox on {} (GraphQL at {}, access token shpat_sandbox); control API under /_sandbox. It is on a private address: serve shipsync with SHIPSYNC_ALLOW_PRIVATE_TARGETS=true (--allow-private-targets) to reach it",
                        running.url,
                        running.graphql_url()
                    );
                    shutdown_signal().await;
                }
            }
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
