//! The disk's fsync rate: the physical reference for durable ingest. One
//! write of 4 KiB appended to a file, then `fdatasync`, repeated; on the
//! filesystem that holds the SQLite database.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::stats::{Percentiles, percentiles};

#[derive(Debug, Clone, Serialize)]
pub struct FsyncProbe {
    pub dir: String,
    pub samples: usize,
    /// write + fdatasync, µs.
    pub latency: Percentiles,
    /// 1 ÷ mean latency: durable writes per second for one writer.
    pub per_sec: f64,
}

/// Appends 4 KiB + `fdatasync` up to `max_samples` times or for `max_time`.
pub fn probe(dir: &Path, max_samples: usize, max_time: Duration) -> Result<FsyncProbe> {
    let path = dir.join("fsync-probe.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = vec![0x5au8; 4096];
    let mut lat = Vec::with_capacity(max_samples);
    let start = Instant::now();
    while lat.len() < max_samples && (lat.len() < 10 || start.elapsed() < max_time) {
        let t0 = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        lat.push(t0.elapsed().as_micros() as u64);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    let latency = percentiles(&mut lat);
    Ok(FsyncProbe {
        dir: dir.display().to_string(),
        samples: latency.n,
        per_sec: if latency.mean > 0.0 {
            1e6 / latency.mean
        } else {
            0.0
        },
        latency,
    })
}
