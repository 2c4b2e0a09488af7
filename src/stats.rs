//! Latency samples per pipeline stage and their percentiles, for `vigil bench`.

use serde::Serialize;
use std::time::Duration;

/// The stages timed by the replay pipeline.
pub const STAGES: [&str; 5] = ["decode", "preprocess", "features", "scorer", "alert"];

/// Samples of one stage, in seconds.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }
    /// Nearest-rank percentile in milliseconds (`p` in 0..=100); 0 when empty.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1] * 1000.0
    }
    pub fn summary(&self, unit: &'static str) -> StageSummary {
        StageSummary {
            unit,
            count: self.0.len(),
            p50_ms: self.percentile_ms(50.0),
            p95_ms: self.percentile_ms(95.0),
            p99_ms: self.percentile_ms(99.0),
            mean_ms: if self.0.is_empty() { 0.0 } else { self.0.iter().sum::<f64>() / self.0.len() as f64 * 1000.0 },
        }
    }
}

/// Percentiles of one stage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageSummary {
    /// What one sample is: "frame", "snippet" or "batch".
    pub unit: &'static str,
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

/// Samples of every stage.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    pub decode: Samples,
    pub preprocess: Samples,
    pub features: Samples,
    pub scorer: Samples,
    pub alert: Samples,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert!((s.percentile_ms(50.0) - 50.0).abs() < 1e-9);
        assert!((s.percentile_ms(99.0) - 99.0).abs() < 1e-9);
        assert!((s.percentile_ms(100.0) - 100.0).abs() < 1e-9);
        assert_eq!(Samples::default().percentile_ms(50.0), 0.0);
    }
}
