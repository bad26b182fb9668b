//! What one measured scenario run reports: the metrics of docs/metrics.md, the "nothing lost" audit and
//! the spot checks. Serialized as-is into the results JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alerts::AlertEvent;
use super::series::TimeSeries;

use super::check::SpotCheck;
use super::request::SchedulerStats;

/// A latency distribution's p50 and p99 (nearest rank), in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Samples behind them.
    pub samples: u64,
}

impl Percentiles {
    /// Nearest-rank p50 and p99 of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = (p * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        Some(Self {
            p50: rank(0.50),
            p99: rank(0.99),
            samples: sorted.len() as u64,
        })
    }
}

/// How kernel and step times were measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimingSource {
    /// Per-pass GPU timestamp queries (per-family GPU times present); throughput and
    /// latencies are still wall clock, as a user sees them.
    GpuTimestamps,
    /// Wall clock around submit and fence wait only (no per-family GPU times).
    WallClock,
}

/// Every figure of one scenario run. Percentages are 0-100.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Requests submitted.
    pub requests: u64,
    /// Requests that generated all their tokens.
    pub completed: u64,
    /// Requests refused as unservable (each one makes the scenario FAIL).
    pub rejected: u64,
    /// Why requests were refused, one line each (the pool cannot hold them even empty).
    pub rejections: Vec<String>,
    /// Why the run is not correct, one sentence each (empty when nothing was lost, duplicated,
    /// cut short or wrong). Rejections are listed apart: they are the budget's verdict, not a
    /// defect.
    pub problems: Vec<String>,
    /// Demand / budget (the reference's "utilization"), from the scaled run's real geometry.
    pub demand_pct: f64,
    /// Most blocks in use x block bytes / budget.
    pub peak_use_pct: f64,
    /// Mean over steps of slots allocated but not holding a token, over slots allocated.
    pub fragmentation_pct: f64,
    /// Most slots allocated but not holding a token in any step, over the pool's slots.
    pub peak_fragmentation_pct: f64,
    /// Prompt tokens served from the prefix cache / prompt tokens looked up.
    pub hit_rate_pct: Option<f64>,
    /// The best hit rate the workload allows (shareable prompt tokens / looked up).
    pub possible_hit_rate_pct: Option<f64>,
    /// Blocks that lost their contents while still needed / blocks allocated.
    pub evictions_pct: Option<f64>,
    /// Preemptions (by recompute or swap).
    pub preemptions: u64,
    /// Engine steps run.
    pub steps: u64,
    /// Seconds of the measured loop (pipeline creation, warm-up and CPU-side spot-check
    /// arithmetic excluded).
    pub wall_seconds: f64,
    /// Completed requests per second.
    pub requests_per_s: f64,
    /// Prompt tokens of completed requests per second.
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second.
    pub generated_tokens_per_s: f64,
    /// Time to first token (all requests arrive at the start, so queueing is included).
    pub ttft: Option<Percentiles>,
    /// Time per output token after the first.
    pub tpot: Option<Percentiles>,
    /// How times were measured.
    pub timing: TimingSource,
    /// GPU seconds per kernel family (timestamp queries only).
    pub gpu_seconds: BTreeMap<String, f64>,
    /// Outputs compared with the CPU reference.
    pub spot_checks: Vec<SpotCheck>,
    /// Every scheduler counter, for readers who want more than the headline figures.
    pub scheduler: SchedulerStats,
    /// The engine's state after every step, thinned to at most 512 points
    /// ([`super::series`]). Empty in version-1 results files.
    #[serde(default)]
    pub series: TimeSeries,
    /// Alerts that fired and cleared during the run ([`super::alerts`]); never a failure.
    #[serde(default)]
    pub alerts: Vec<AlertEvent>,
    /// Alert events past the recorded maximum, counted only.
    #[serde(default)]
    pub alerts_dropped: u64,
    /// The token rate throughput alerts compared against (the scenario's second window of
    /// steps), if the run was long enough to measure one.
    #[serde(default)]
    pub throughput_baseline_tokens_per_s: Option<f64>,
}

impl Measurement {
    /// Spot checks of requests that had been preempted before the checked output.
    pub fn preempted_checks(&self) -> usize {
        self.spot_checks.iter().filter(|c| c.preempted > 0).count()
    }

    /// Largest absolute error over all spot checks.
    pub fn max_check_error(&self) -> f64 {
        self.spot_checks
            .iter()
            .map(|c| c.max_abs_error)
            .fold(0.0, f64::max)
    }

    /// True when every request completed correctly and every spot check passed.
    pub fn is_correct(&self) -> bool {
        self.problems.is_empty() && self.rejected == 0 && self.completed == self.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&values).unwrap();
        assert_eq!((p.p50, p.p99, p.samples), (50.0, 99.0, 100));
        let one = Percentiles::of(&[3.0]).unwrap();
        assert_eq!((one.p50, one.p99), (3.0, 3.0));
        assert!(Percentiles::of(&[]).is_none());
    }
}
