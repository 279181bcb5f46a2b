//! The `shipsync` binary as child processes: finding (and building) it, a
//! throwaway database and a log directory, `serve` with the JSON API, and
//! one-shot commands timed and sampled for RSS.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use shipsync_testkit::{TempDir, TestDb};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::rss::{self, Samples};

/// How often a sampled child's `/proc/<pid>/status` is read.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);
/// The interval during the first [`FAST_SAMPLING_FOR`] of a child's life.
pub const FAST_SAMPLE_INTERVAL: Duration = Duration::from_millis(5);
pub const FAST_SAMPLING_FOR: Duration = Duration::from_secs(2);

/// The `shipsync` binary to measure.
///
/// `explicit` wins. Otherwise the binary next to the running executable
/// (`target/<profile>/shipsync` for `target/<profile>/shipsync-bench`); when
/// `build` is set it is first (re)built with `cargo build [--release] -p
/// shipsync` in the same profile as this executable, so it is never stale.
pub fn locate_shipsync(explicit: Option<PathBuf>, build: bool) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--shipsync {}: no such file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("cannot find the bench executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("the bench executable has no directory"))?;
    let bin = dir.join(format!("shipsync{}", std::env::consts::EXE_SUFFIX));
    if build {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "shipsync", "--bin", "shipsync"]);
        if release {
            cmd.arg("--release");
        }
        eprintln!(
            "building the shipsync binary: cargo build{} -p shipsync --bin shipsync",
            if release { " --release" } else { "" }
        );
        let status = cmd
            .status()
            .context("cannot run cargo (use --shipsync PATH or --no-build)")?;
        if !status.success() {
            bail!("cargo build -p shipsync failed ({status})");
        }
    }
    if !bin.is_file() {
        bail!(
            "no shipsync binary at {}: run `cargo build --release -p shipsync` first, or pass --shipsync PATH",
            bin.display()
        );
    }
    Ok(bin)
}

/// A free loopback port (bound, then released).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One shipsync installation: a binary and a fresh database with its
/// secret key and admin token, shared by every process started from it.
#[derive(Debug)]
pub struct Instance {
    pub bin: PathBuf,
    pub database_url: String,
    pub admin_token: String,
    pub secret_key: String,
    /// The processes' logs.
    pub dir: TempDir,
    /// Dropped (database and all) with the instance.
    _db: TestDb,
}

impl Instance {
    /// An installation on a new SQLite database.
    pub fn sqlite(bin: &Path, label: &str) -> Result<Self> {
        Self::on(bin, label, TestDb::sqlite()?)
    }

    /// An installation on `db` (e.g. a throwaway PostgreSQL database);
    /// `label` names its temp dir (logs).
    pub fn on(bin: &Path, label: &str, db: TestDb) -> Result<Self> {
        Ok(Self {
            bin: bin.to_path_buf(),
            database_url: db.url.clone(),
            admin_token: "adm_shipsync_bench_token_0123456789abcdef".into(),
            secret_key: (0u8..32).map(|i| format!("{:02x}", i * 7 + 3)).collect(),
            dir: TempDir::new(label)?,
            _db: db,
        })
    }

    /// `shipsync <args>` with this instance's environment.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("SHIPSYNC_DATABASE_URL", &self.database_url)
            .env("SHIPSYNC_ADMIN_TOKEN", &self.admin_token)
            .env("SHIPSYNC_SECRET_KEY", &self.secret_key)
            .env("SHIPSYNC_LOG_FORMAT", "json")
            // The sandboxes listen on loopback.
            .env("SHIPSYNC_ALLOW_PRIVATE_TARGETS", "true")
            // The load comes from this one address, standing for many
            // senders: the per-client connection cap would refuse it (the
            // global cap, 4,096, still applies).
            .env("SHIPSYNC_MAX_CONNECTIONS_PER_CLIENT", "4096")
            .env_remove("SHIPSYNC_PUBLIC_URL")
            .env_remove("SHIPSYNC_LISTEN")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Starts `shipsync serve` on a free port and waits for `/healthz`.
    pub async fn serve(&self) -> Result<Serve> {
        self.serve_logged("serve.log").await
    }

    /// Node `n` of several `serve` processes on this installation's
    /// (PostgreSQL) database, with its own log `serve-<n>.log`.
    pub async fn serve_node(&self, n: usize) -> Result<Serve> {
        self.serve_logged(&format!("serve-{n}.log")).await
    }

    async fn serve_logged(&self, log_name: &str) -> Result<Serve> {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let log = self.dir.path().join(log_name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = self
            .command(["serve"])
            .env("SHIPSYNC_LISTEN", &listen)
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("cannot start {} serve", self.bin.display()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut serve = Serve {
            child,
            url: format!("http://{listen}"),
            token: self.admin_token.clone(),
            http,
            log,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = serve.child.try_wait()? {
                bail!(
                    "shipsync serve exited at start-up ({status}):\n{}",
                    serve.log_tail()
                );
            }
            if let Ok(r) = serve
                .http
                .get(format!("{}/healthz", serve.url))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(serve);
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("shipsync serve not ready after 30 s:\n{}", serve.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A running `shipsync serve`.
pub struct Serve {
    pub child: Child,
    pub url: String,
    token: String,
    http: reqwest::Client,
    log: PathBuf,
}

impl Serve {
    /// Calls the JSON API as the administrator; fails unless the status is `expect`.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        expect: u16,
    ) -> Result<Value> {
        let (status, body) = self.api_answer(method, path, body).await?;
        if status != expect {
            bail!("{method} {path}: HTTP {status} (expected {expect}): {body}");
        }
        Ok(body)
    }

    /// Calls the JSON API as the administrator; (status, body) whatever
    /// the status (a body that is not JSON comes back as a string).
    pub async fn api_answer(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// The value of an unlabelled metric in `/metrics` (`None`: not there).
    pub async fn metric(&self, name: &str) -> Result<Option<f64>> {
        let (status, body) = self.api_answer("GET", "/metrics", None).await?;
        if status != 200 {
            bail!("GET /metrics: HTTP {status}");
        }
        Ok(body.as_str().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        }))
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after 15 s.
    pub async fn stop(mut self) -> Result<ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                bail!("shipsync serve ignored SIGTERM for 15 s; killed")
            }
        }
    }

    /// SIGKILL: no graceful shutdown, nothing flushed (the durability check).
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The listening address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> Result<std::net::SocketAddr> {
        Ok(self.url.trim_start_matches("http://").parse()?)
    }

    /// Creates a merchant whose Deposco webhooks are on and signed with
    /// `shared_secret`; returns (merchant id, webhook path `/webhooks/deposco/KEY`).
    pub async fn webhook_merchant(
        &self,
        name: &str,
        deposco_url: &str,
        shared_secret: &str,
    ) -> Result<(String, String)> {
        let m = self
            .api(
                "POST",
                "/api/v1/merchants",
                Some(&serde_json::json!({
                    "name": name,
                    "warehouse": {
                        "platform": "deposco",
                        "api_url": deposco_url,
                        "business_unit": "ACME",
                        "auth": {"type": "basic", "username": "sandbox", "password": "sandbox"},
                    },
                    "shipment_webhooks": {"enabled": true, "shared_secret": shared_secret},
                })),
                201,
            )
            .await?;
        let id = m["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no merchant id in {m}"))?
            .to_owned();
        let url = m["shipment_webhooks"]["url"]
            .as_str()
            .ok_or_else(|| anyhow!("no webhook URL in {m}"))?;
        let key = url
            .rsplit('/')
            .next()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| anyhow!("no key in the webhook URL {url}"))?;
        Ok((id, format!("/webhooks/deposco/{key}")))
    }

    pub fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 40)
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The first `n` lines of `text`.
pub fn head(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// A finished child: its output, wall time and memory.
#[derive(Debug, Clone)]
pub struct SampledRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Spawn to exit.
    pub wall: Duration,
    pub samples: Samples,
}

/// Spawns `cmd` (stdout and stderr captured) and reads its
/// `/proc/<pid>/status` every [`FAST_SAMPLE_INTERVAL`] for the first
/// [`FAST_SAMPLING_FOR`], then every [`SAMPLE_INTERVAL`], until it exits.
pub async fn run_sampled(mut cmd: Command) -> Result<SampledRun> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().context("cannot start the child process")?;
    let pid = child.id().ok_or_else(|| anyhow!("the child has no pid"))?;
    let mut out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut err = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let out_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s).await;
        s
    });
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });
    let mut samples = Samples::default();
    let status = loop {
        if let Some(r) = rss::read(pid) {
            samples.push(start.elapsed().as_secs_f64(), r);
        }
        if let Some(c) = rss::cpu_secs(pid) {
            samples.cpu_secs = c;
        }
        // Densely at first, so that short runs are sampled at all.
        let every = if start.elapsed() < FAST_SAMPLING_FOR {
            FAST_SAMPLE_INTERVAL
        } else {
            SAMPLE_INTERVAL
        };
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(every) => {}
        }
    };
    let wall = start.elapsed();
    Ok(SampledRun {
        status,
        stdout: out_task.await.unwrap_or_default(),
        stderr: err_task.await.unwrap_or_default(),
        wall,
        samples,
    })
}
