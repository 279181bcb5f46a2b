//! The JSON file of a run: the scenario's report inside an envelope saying
//! when, where and on what it was measured.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::machine::Machine;

#[derive(Debug, Serialize)]
pub struct Envelope<'a, R: Serialize> {
    pub scenario: &'a str,
    pub quick: bool,
    /// RFC 3339, UTC.
    pub measured_at: String,
    /// `git rev-parse HEAD` of the working tree, when available (`+dirty` if modified).
    pub git_commit: Option<String>,
    /// The bench's own build profile (`release` or `debug`).
    pub profile: &'static str,
    pub command: Vec<String>,
    pub machine: Machine,
    pub report: &'a R,
}

impl<'a, R: Serialize> Envelope<'a, R> {
    pub fn new(scenario: &'a str, quick: bool, report: &'a R) -> Self {
        Self {
            scenario,
            quick,
            measured_at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
            git_commit: git_commit(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            command: std::env::args().collect(),
            machine: Machine::detect(),
            report,
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// `bench-results/<scenario>.json`.
pub fn default_path(scenario: &str) -> PathBuf {
    PathBuf::from("bench-results").join(format!("{scenario}.json"))
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty {
        format!("{commit}+dirty")
    } else {
        commit
    })
}
