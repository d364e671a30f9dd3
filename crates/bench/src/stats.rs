//! Latency summaries: percentiles over every recorded sample (no histogram buckets, no sampling),
//! so a p99 is the 99th percentile of what was actually measured.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A latency distribution in milliseconds (fractional), as written to the result files.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Summary {
    /// Summarises samples given in milliseconds; an empty set gives all zeros with `count: 0`.
    pub fn of_ms(mut samples: Vec<f64>) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        Summary {
            count: samples.len(),
            p50_ms: percentile(&samples, 50.0),
            p99_ms: percentile(&samples, 99.0),
            max_ms: samples[samples.len() - 1],
            mean_ms: mean,
        }
    }

    /// Summarises durations.
    pub fn of(samples: &[Duration]) -> Summary {
        Summary::of_ms(samples.iter().map(|d| ms(*d)).collect())
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in fractional milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let sum = Summary::of_ms(s);
        assert_eq!(sum.count, 100);
        assert_eq!(sum.p50_ms, 50.0);
        assert_eq!(sum.p99_ms, 99.0);
        assert_eq!(sum.max_ms, 100.0);
        assert_eq!(Summary::of_ms(vec![]).count, 0);
        assert_eq!(Summary::of_ms(vec![7.0]).p99_ms, 7.0);
    }
}
