//! Resident memory, CPU time, context switches and write calls of a
//! process, read from `/proc/<pid>/`.

use serde::Serialize;

/// One reading of `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Reading {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the kernel's high-water mark of `VmRSS` since the process started.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` once the process has exited
/// (a zombie has no `Vm*` lines) or on a system without `/proc`.
pub fn read(pid: u32) -> Option<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<Reading> {
    Some(Reading {
        rss_kib: field(status, "VmRSS:")?,
        hwm_kib: field(status, "VmHWM:")?,
    })
}

/// The number after `name` on its line of a `/proc` text of `name: value
/// [unit]` lines.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
}

/// CPU time (user + system, all threads) of `pid` so far, in seconds, from
/// `/proc/<pid>/stat` (clock ticks of `getconf CLK_TCK`, 100 on Linux).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat).map(|t| t as f64 / clock_ticks_per_sec())
}

/// CPU time of this process (the bench, with its in-process sandboxes).
pub fn own_cpu_secs() -> Option<f64> {
    cpu_secs(std::process::id())
}

fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// What a process asked of the kernel so far: context switches (of its
/// threads alive now, `/proc/<pid>/task/*/status`) and write calls with
/// their bytes (`syscw`, `wchar` of `/proc/<pid>/io`: `write`, `pwrite`,
/// `writev`…, to files and sockets alike, whether or not they reached a
/// disk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Calls {
    pub context_switches: u64,
    pub write_calls: u64,
    pub write_bytes: u64,
}

impl Calls {
    /// What happened between `before` and `self`.
    pub fn since(self, before: Calls) -> Calls {
        Calls {
            context_switches: self
                .context_switches
                .saturating_sub(before.context_switches),
            write_calls: self.write_calls.saturating_sub(before.write_calls),
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
        }
    }
}

/// [`Calls`] of `pid` so far; `None` when `/proc` does not tell (another
/// user's process, no `/proc`).
pub fn calls(pid: u32) -> Option<Calls> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let (write_calls, write_bytes) = parse_io(&io)?;
    let mut context_switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        // A thread that ended meanwhile has no status left to read.
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            context_switches += parse_switches(&status).unwrap_or(0);
        }
    }
    Some(Calls {
        context_switches,
        write_calls,
        write_bytes,
    })
}

/// `syscw` and `wchar` of a `/proc/<pid>/io`.
fn parse_io(io: &str) -> Option<(u64, u64)> {
    Some((field(io, "syscw:")?, field(io, "wchar:")?))
}

/// Voluntary plus involuntary context switches of a thread's `status`.
fn parse_switches(status: &str) -> Option<u64> {
    Some(field(status, "voluntary_ctxt_switches:")? + field(status, "nonvoluntary_ctxt_switches:")?)
}

fn clock_ticks_per_sec() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Readings taken during a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    /// `(seconds since start, VmRSS KiB)`, every reading.
    pub series: Vec<(f64, u64)>,
    /// Largest `VmHWM` seen: the peak RSS (exact up to the last reading,
    /// at most one interval before exit).
    pub peak_hwm_kib: u64,
    /// Largest `VmRSS` seen.
    pub max_rss_kib: u64,
    /// CPU seconds of the process at the last reading.
    pub cpu_secs: f64,
}

impl Samples {
    pub fn push(&mut self, at_secs: f64, r: Reading) {
        self.series.push((at_secs, r.rss_kib));
        self.peak_hwm_kib = self.peak_hwm_kib.max(r.hwm_kib);
        self.max_rss_kib = self.max_rss_kib.max(r.rss_kib);
    }

    /// At most `n` readings, evenly spaced (for the JSON file).
    pub fn thinned(&self, n: usize) -> Vec<(f64, u64)> {
        if self.series.len() <= n || n < 2 {
            return self.series.clone();
        }
        let step = (self.series.len() - 1) as f64 / (n - 1) as f64;
        (0..n)
            .map(|i| self.series[((i as f64 * step).round() as usize).min(self.series.len() - 1)])
            .collect()
    }

    /// Mean `VmRSS` (MB-free, KiB) over the first and the last quarter of
    /// the readings: equal when memory stays flat during the run.
    pub fn first_last_quarter_kib(&self) -> Option<(u64, u64)> {
        let n = self.series.len();
        if n < 8 {
            return None;
        }
        let q = n / 4;
        let mean = |s: &[(f64, u64)]| s.iter().map(|(_, v)| *v).sum::<u64>() / s.len() as u64;
        Some((mean(&self.series[..q]), mean(&self.series[n - q..])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tshipsync\nVmPeak:\t  100 kB\nVmHWM:\t   5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(
            parse_status(s),
            Some(Reading {
                rss_kib: 4096,
                hwm_kib: 5120
            })
        );
        assert_eq!(parse_status("Name:\tzombie\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn parses_proc_stat() {
        let s = "4242 (ship sync) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0";
        assert_eq!(parse_stat_cpu_ticks(s), Some(300));
        assert!(own_cpu_secs().is_none_or(|c| c >= 0.0));
    }

    #[test]
    fn parses_proc_io_and_switches() {
        let io = "rchar: 10\nwchar: 4096\nsyscr: 3\nsyscw: 7\nread_bytes: 0\nwrite_bytes: 0\n";
        assert_eq!(parse_io(io), Some((7, 4096)));
        assert_eq!(parse_io("rchar: 10\n"), None);
        let status =
            "Name:\tsqlite-units\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_switches(status), Some(123));
        assert_eq!(parse_switches("Name:\tx\n"), None);
        let (a, b) = (
            Calls {
                context_switches: 5,
                write_calls: 9,
                write_bytes: 100,
            },
            Calls {
                context_switches: 2,
                write_calls: 4,
                write_bytes: 40,
            },
        );
        assert_eq!(
            a.since(b),
            Calls {
                context_switches: 3,
                write_calls: 5,
                write_bytes: 60
            }
        );
    }

    #[test]
    fn reads_own_process() {
        if cfg!(target_os = "linux") {
            let r = read(std::process::id()).expect("own status");
            assert!(r.rss_kib > 0 && r.hwm_kib >= r.rss_kib);
            let before = calls(std::process::id()).expect("own io and tasks");
            let file = std::env::temp_dir().join(format!("rss-{}", std::process::id()));
            std::fs::write(&file, b"x").unwrap();
            let after = calls(std::process::id()).expect("own io and tasks");
            let _ = std::fs::remove_file(&file);
            assert!(after.since(before).write_calls >= 1, "{before:?} {after:?}");
        }
    }

    #[test]
    fn thins_evenly() {
        let mut s = Samples::default();
        for i in 0..1000 {
            s.push(
                i as f64,
                Reading {
                    rss_kib: i,
                    hwm_kib: i,
                },
            );
        }
        let t = s.thinned(11);
        assert_eq!(t.len(), 11);
        assert_eq!(t[0].1, 0);
        assert_eq!(t[10].1, 999);
        assert_eq!(s.peak_hwm_kib, 999);
    }
}
