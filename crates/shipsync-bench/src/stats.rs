//! Percentiles of latency samples.

use serde::Serialize;

/// Percentiles of a set of samples (µs), nearest-rank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn p50_ms(&self) -> f64 {
        self.p50 as f64 / 1000.0
    }
    pub fn p95_ms(&self) -> f64 {
        self.p95 as f64 / 1000.0
    }
    pub fn p99_ms(&self) -> f64 {
        self.p99 as f64 / 1000.0
    }
    pub fn max_ms(&self) -> f64 {
        self.max as f64 / 1000.0
    }
    pub fn mean_ms(&self) -> f64 {
        self.mean / 1000.0
    }
}

/// Sorts `v` and reads its percentiles (all zero when empty).
pub fn percentiles(v: &mut [u64]) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        n: v.len(),
        p50: at(0.50),
        p90: at(0.90),
        p95: at(0.95),
        p99: at(0.99),
        max: v[v.len() - 1],
        mean: v.iter().sum::<u64>() as f64 / v.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let p = percentiles(&mut v);
        assert_eq!(
            (p.n, p.p50, p.p90, p.p95, p.p99, p.max),
            (100, 50, 90, 95, 99, 100)
        );
        assert_eq!(percentiles(&mut []).n, 0);
        assert_eq!(percentiles(&mut [7]).p99, 7);
    }
}
