//! Dry runs: the scheduler plans a scenario's every step without a GPU, and each step's work
//! is counted, so a run's cost can be predicted before it is made.
//!
//! The scheduler is deterministic and never looks at attention outputs, so the plans of a dry
//! run are exactly those a measured run executes (same pool, same limits, same preemptions).

use serde::{Deserialize, Serialize};

use super::check::SpotCheckPlan;
use super::request::{SchedulerStats, StepPlan};
use super::run::{EngineError, RunConfig, pick_captures, submitted};
use crate::scenario::ScaledScenario;

/// The work of one engine step, per layer: what its cost grows with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepWork {
    /// Tokens computed (prefill chunk tokens plus decode tokens): each is generated, appended
    /// and attends once.
    pub tokens: u64,
    /// Keys read by prefill queries, summed over queries (causal: query `i` reads `i + 1`
    /// keys, or the window's).
    pub prefill_keys: u64,
    /// Keys read by decode queries, summed over queries.
    pub decode_keys: u64,
    /// Keys the CPU reference reads for this step's spot checks, per layer (their cost is
    /// host time outside the step's clock).
    pub check_keys: u64,
}

impl StepWork {
    /// Counts the work of `plan` for attention over at most `window` newest keys.
    pub fn of(plan: &StepPlan, window: Option<u32>) -> Self {
        let seen = |context: u64| window.map_or(context, |w| context.min(w as u64));
        let prefill_keys = plan
            .prefill
            .iter()
            .map(|c| {
                let end = c.context_len as u64;
                let start = end - c.tokens.len() as u64;
                (start + 1..=end).map(seen).sum::<u64>()
            })
            .sum();
        let decode_keys = plan.decode.iter().map(|d| seen(d.context_len as u64)).sum();
        Self {
            tokens: plan.num_tokens() as u64,
            prefill_keys,
            decode_keys,
            check_keys: 0,
        }
    }
}

/// Plans `scenario` with `config` as a measured run would, without a GPU, and returns each
/// step's work in order. `keep_going` sees the work so far after every step; returning false
/// stops the dry run early (the result is then a prefix of the run's steps), which bounds
/// the cost of asking about a scale far too large to run.
pub fn dry_run(
    scenario: &ScaledScenario,
    config: &RunConfig,
    keep_going: &mut dyn FnMut(&[StepWork]) -> bool,
) -> Result<DryRun, EngineError> {
    let (mut scheduler, specs, ids) = submitted(scenario, config)?;
    // The same sampler as the measured run, so the same rows are checked.
    let mut sampler = SpotCheckPlan::new(
        ids.len() as u64,
        config.spot_check_requests as u64,
        config.spot_check_preempted,
    );
    let window = scenario.sliding_window;
    let mut steps = Vec::new();
    while !scheduler.is_done() {
        let plan = scheduler.schedule()?;
        let (_, pending) = pick_captures(&plan, &scheduler, &specs, &mut sampler);
        let mut work = StepWork::of(&plan, window);
        work.check_keys = pending
            .iter()
            .map(|p| {
                let keys = p.position as u64 + 1;
                window.map_or(keys, |w| keys.min(w as u64))
            })
            .sum();
        steps.push(work);
        scheduler.complete(&plan);
        if !keep_going(&steps) {
            return Ok(DryRun {
                steps,
                complete: false,
                stats: scheduler.stats(),
            });
        }
    }
    Ok(DryRun {
        steps,
        complete: true,
        stats: scheduler.stats(),
    })
}

/// The steps a dry run planned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DryRun {
    /// Each step's work, in order.
    pub steps: Vec<StepWork>,
    /// False when the caller stopped it before every request finished.
    pub complete: bool,
    /// The scheduler's counters at the end: a complete dry run's equal a measured run's.
    pub stats: SchedulerStats,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::{DecodeItem, PrefillChunk};

    fn chunk(first: u32, len: u32) -> PrefillChunk {
        PrefillChunk {
            request: 0,
            seed: 0,
            first_position: first,
            tokens: vec![0; len as usize],
            slots: vec![0; len as usize],
            block_table: Vec::new(),
            context_len: first + len,
            completes_prompt: false,
        }
    }

    fn decode(context_len: u32) -> DecodeItem {
        DecodeItem {
            request: 1,
            seed: 0,
            position: context_len - 1,
            token: 0,
            slot: 0,
            block_table: Vec::new(),
            context_len,
        }
    }

    #[test]
    fn counts_causal_prefill_keys_and_decode_keys() {
        let plan = StepPlan {
            // Positions 4..8: queries read 5, 6, 7, 8 keys.
            prefill: vec![chunk(4, 4)],
            decode: vec![decode(10), decode(3)],
            ..StepPlan::default()
        };
        let work = StepWork::of(&plan, None);
        assert_eq!(work.tokens, 6);
        assert_eq!(work.prefill_keys, 5 + 6 + 7 + 8);
        assert_eq!(work.decode_keys, 13);
        // A window of 6 caps every query at 6 keys.
        let windowed = StepWork::of(&plan, Some(6));
        assert_eq!(windowed.prefill_keys, 5 + 6 + 6 + 6);
        assert_eq!(windowed.decode_keys, 6 + 3);
    }
}
