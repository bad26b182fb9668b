//! A scenario's time series: one sample per engine step, thinned to a bounded number of points
//! as the run goes so a long run costs the same memory and file size as a short one.
//!
//! Thinning keeps every `stride`-th step and doubles `stride` (dropping every other kept
//! sample) whenever the series would exceed [`MAX_POINTS`]; the last step is always kept.
//! Counters are cumulative, so nothing is lost by dropping a sample: the rates of a kept
//! sample (tokens per second, mean batch) are recomputed over the interval since the previous
//! kept one.

use serde::{Deserialize, Serialize};

/// Most samples a series keeps (thinning halves it when it would grow past this).
pub const MAX_POINTS: usize = 512;

/// The engine's state after one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Steps run so far (this sample is the state after step `step`).
    pub step: u64,
    /// Seconds since the scenario's clock started (spot-check time excluded).
    pub seconds: f64,
    /// KV blocks the step held while it ran, as a % of the budget (blocks freed by requests
    /// that finished in it count: peak use % is the largest of these).
    pub kv_use_pct: f64,
    /// Requests holding cache blocks.
    pub running: u32,
    /// Requests queued for (re)admission, swapped-out ones included.
    pub waiting: u32,
    /// Cumulative preemptions.
    pub preemptions: u64,
    /// Cumulative blocks evicted while still needed (the evictions % numerator).
    pub evicted_blocks: u64,
    /// Cumulative blocks allocated (the evictions % denominator).
    pub blocks_allocated: u64,
    /// Cumulative prompt tokens served from the prefix cache at first admission.
    pub prefix_hit_tokens: u64,
    /// Cumulative prompt tokens looked up at first admission.
    pub prefix_lookup_tokens: u64,
    /// Cumulative tokens computed (prefill plus decode).
    pub tokens: u64,
    /// Cumulative requests scheduled, summed over steps (each step's batch size).
    pub batch_items: u64,
    /// Tokens per second over the interval since the previous kept sample.
    pub tokens_per_s: f64,
    /// Requests per step over that interval.
    pub mean_batch: f64,
}

/// A bounded, thinned series of [`Sample`]s.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    /// Kept samples in step order.
    pub samples: Vec<Sample>,
    /// Steps between kept samples (a power of two).
    pub stride: u64,
    /// The sample of the latest step, kept aside until it falls on the stride (so the
    /// series always ends at the last step).
    #[serde(skip)]
    pending: Option<Sample>,
}

impl TimeSeries {
    /// An empty series keeping every step until it fills.
    pub fn new() -> Self {
        Self {
            samples: Vec::new(),
            stride: 1,
            pending: None,
        }
    }

    /// Records the state after a step; `tokens_per_s` and `mean_batch` are filled in here.
    pub fn push(&mut self, sample: Sample) {
        if sample.step.is_multiple_of(self.stride.max(1)) {
            self.pending = None;
            self.keep(sample);
        } else {
            self.pending = Some(sample);
        }
    }

    /// The series with the latest step included.
    pub fn finish(mut self) -> Self {
        if let Some(last) = self.pending.take() {
            self.keep(last);
        }
        self
    }

    fn keep(&mut self, mut sample: Sample) {
        rates(self.samples.last(), &mut sample);
        self.samples.push(sample);
        if self.samples.len() > MAX_POINTS {
            self.stride = self.stride.max(1) * 2;
            let stride = self.stride;
            self.samples.retain(|s| s.step.is_multiple_of(stride));
            let mut previous: Option<Sample> = None;
            for s in &mut self.samples {
                rates(previous.as_ref(), s);
                previous = Some(*s);
            }
        }
    }
}

/// Fills `sample`'s interval rates against the previous kept sample (or the run's start).
fn rates(previous: Option<&Sample>, sample: &mut Sample) {
    let start = Sample::default();
    let p = previous.unwrap_or(&start);
    let seconds = sample.seconds - p.seconds;
    let steps = sample.step.saturating_sub(p.step);
    sample.tokens_per_s = if seconds > 0.0 {
        sample.tokens.saturating_sub(p.tokens) as f64 / seconds
    } else {
        0.0
    };
    sample.mean_batch = if steps > 0 {
        sample.batch_items.saturating_sub(p.batch_items) as f64 / steps as f64
    } else {
        0.0
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(step: u64) -> Sample {
        Sample {
            step,
            seconds: step as f64 * 0.5,
            tokens: step * 10,
            batch_items: step * 2,
            ..Sample::default()
        }
    }

    #[test]
    fn a_long_run_is_thinned_to_the_bound_and_ends_at_its_last_step() {
        let mut series = TimeSeries::new();
        for step in 1..=10_001 {
            series.push(sample(step));
        }
        let series = series.finish();
        assert!(
            series.samples.len() <= MAX_POINTS + 1,
            "{}",
            series.samples.len()
        );
        assert!(series.samples.len() > MAX_POINTS / 2);
        assert_eq!(series.samples.last().unwrap().step, 10_001);
        assert!(series.stride.is_power_of_two() && series.stride > 1);
        // Rates are over each kept interval: 10 tokens per 0.5 s, 2 requests per step.
        for s in &series.samples {
            assert!((s.tokens_per_s - 20.0).abs() < 1e-9, "{s:?}");
            assert!((s.mean_batch - 2.0).abs() < 1e-9, "{s:?}");
        }
    }

    #[test]
    fn a_short_run_keeps_every_step() {
        let mut series = TimeSeries::new();
        for step in 1..=7 {
            series.push(sample(step));
        }
        let series = series.finish();
        let steps: Vec<u64> = series.samples.iter().map(|s| s.step).collect();
        assert_eq!(steps, [1, 2, 3, 4, 5, 6, 7]);
    }
}
