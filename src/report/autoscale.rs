//! Device-scaled runs (`--scale auto`, `--time`): per scenario, the largest scale whose
//! predicted run time fits its share of a time budget on the present adapter.
//!
//! Candidate scales form a ladder of presets, each twice the last along one axis: tokens per
//! request and requests alternate, from the `ci` preset's caps up to the full scenario, and
//! only then layers (more layers repeat the same work; longer and more requests change what
//! the cache goes through). Every rung is an ordinary [`ScalePreset`], so demand % is exactly
//! the full scenario's at every rung, and its time is predicted by a dry run of the
//! scheduler ([`crate::engine::simulate`]) priced with the adapter's calibrated
//! [`CostModel`]. Shares are water-filled: a scenario whose full size needs less than an
//! equal share takes only what it needs and leaves the rest to the others.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::engine::calibrate::{Calibration, calibrate, calibration_runs};
use crate::engine::cost::CostModel;
use crate::engine::simulate::{StepWork, dry_run};
use crate::engine::{EngineError, RunConfig};
use crate::gpu::GpuContext;
use crate::scenario::{LoadedScenario, ScaleFactors, ScalePreset, ScaledScenario};

/// The name results files and tables give an auto-chosen scale.
pub const AUTO: &str = "auto";

/// Requests and tokens caps of the first rung (the `ci` preset's), and the floor of finished
/// requests every rung's pool keeps (the `default` preset's).
const FIRST_RUNG: (u32, u32) = (16, 128);
const MIN_RESIDENT: u32 = 4;

/// One candidate scale of one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The caps this rung scales with.
    pub preset: ScalePreset,
    /// The factors they give this scenario.
    pub factors: ScaleFactors,
    /// Predicted wall seconds of the run, or `None` when the dry run was stopped past the
    /// limit it was asked about.
    pub predicted_s: Option<f64>,
}

/// The ladder of caps, smallest first; the last rung is the full scenario.
pub fn ladder(max_layers: u32) -> Vec<ScalePreset> {
    let rung = |requests: u32, tokens: u32, layers: u32| ScalePreset {
        name: AUTO.into(),
        max_requests: requests,
        max_tokens_per_sequence: tokens,
        layers_run: layers,
        min_resident: MIN_RESIDENT,
    };
    let (mut requests, mut tokens) = FIRST_RUNG;
    let mut out = vec![rung(requests, tokens, 1)];
    // 2^20 tokens or requests is past every scenario a 24-80 GB card is asked about; u32::MAX
    // then means "no cap".
    let uncapped = |x: u32| if x >= 1 << 20 { u32::MAX } else { x };
    let mut grow_tokens = true;
    while requests != u32::MAX || tokens != u32::MAX {
        if (grow_tokens && tokens != u32::MAX) || requests == u32::MAX {
            tokens = uncapped(tokens * 2);
        } else {
            requests = uncapped(requests * 2);
        }
        grow_tokens = !grow_tokens;
        out.push(rung(requests, tokens, 1));
    }
    let mut layers = 1;
    while layers < max_layers {
        layers = (layers * 2).min(max_layers);
        out.push(rung(requests, tokens, layers));
    }
    out
}

/// The candidates of `scenario` (after any format or window override) under a full-size
/// budget, smallest first, each distinct in its factors, up to the first whose predicted time
/// passes `limit_s` (that one is kept with `predicted_s: None`) or the full scenario.
pub fn candidates(
    scenario: &LoadedScenario,
    full_budget_bytes: u64,
    model: &CostModel,
    config: &RunConfig,
    limit_s: f64,
) -> Result<Vec<Candidate>, EngineError> {
    let mut out: Vec<Candidate> = Vec::new();
    for preset in ladder(scenario.geometry.layers) {
        let scaled = scenario.scale_with_budget(&preset, full_budget_bytes);
        if out.last().is_some_and(|c| c.factors == scaled.factors) {
            continue;
        }
        let predicted_s = predict(&scaled, model, config, limit_s)?;
        let over = predicted_s.is_none();
        out.push(Candidate {
            factors: scaled.factors,
            preset,
            predicted_s,
        });
        if over || scaled.factors.is_full() {
            break;
        }
    }
    Ok(out)
}

/// Predicted seconds of `scaled`, or `None` once a partial dry run already passes `limit_s`.
pub fn predict(
    scaled: &ScaledScenario,
    model: &CostModel,
    config: &RunConfig,
    limit_s: f64,
) -> Result<Option<f64>, EngineError> {
    let layers = scaled.layers_run;
    let mut total = model.scenario_s;
    let mut seen = 0;
    let run = dry_run(scaled, config, &mut |steps: &[StepWork]| {
        for w in &steps[seen..] {
            total += model.step_seconds(w, layers) + model.check_seconds(w, layers);
        }
        seen = steps.len();
        total <= limit_s
    })?;
    Ok(run.complete.then_some(total))
}

/// Water-fills `total_s` over the scenarios' candidate lists and returns the index of the
/// chosen candidate of each: every scenario whose largest candidate fits an equal share of
/// what is left takes it, and the rest split the remainder equally, each taking its largest
/// candidate under its share (or its smallest, when even that is over).
pub fn allocate(lists: &[Vec<Candidate>], total_s: f64) -> Vec<usize> {
    let largest_fitting = |list: &[Candidate], share: f64| {
        list.iter()
            .rposition(|c| c.predicted_s.is_some_and(|t| t <= share))
    };
    let mut chosen: Vec<Option<usize>> = vec![None; lists.len()];
    let mut remaining = total_s;
    loop {
        let open: Vec<usize> = (0..lists.len()).filter(|&i| chosen[i].is_none()).collect();
        if open.is_empty() {
            break;
        }
        let share = remaining / open.len() as f64;
        let mut settled = false;
        for &i in &open {
            let list = &lists[i];
            let top = list.iter().rposition(|c| c.predicted_s.is_some());
            if let Some(top) = top
                && list[top].factors.is_full()
                && list[top].predicted_s.is_some_and(|t| t <= share)
            {
                chosen[i] = Some(top);
                remaining -= list[top].predicted_s.unwrap_or(0.0);
                settled = true;
            }
        }
        if !settled {
            for i in open {
                chosen[i] = Some(largest_fitting(&lists[i], share).unwrap_or(0));
            }
        }
    }
    chosen.into_iter().map(|c| c.unwrap_or(0)).collect()
}

/// The scale one scenario runs at, and the time predicted for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoChoice {
    /// The rung chosen.
    pub preset: ScalePreset,
    /// Predicted wall seconds of the scenario at that scale.
    pub predicted_s: f64,
    /// True when even the smallest rung is predicted past the scenario's share.
    pub over_share: bool,
}

/// A device-scaled suite: the calibrations made and each scenario's choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoPlan {
    /// The whole run's time budget, seconds (calibration included).
    pub time_budget_s: f64,
    /// One calibration per distinct KV layout (model geometry, block size, format, window),
    /// labelled like `qwen2.5-0.5b f16 bs16`.
    pub calibrations: Vec<(String, Calibration)>,
    /// Seconds spent calibrating and planning (dry runs included).
    pub planning_s: f64,
    /// One choice per scenario, in the suite's order.
    pub choices: Vec<AutoChoice>,
}

/// Calibrates `ctx` once per distinct layout among `scenarios` and picks every scenario's
/// scale so the whole run, calibration included, fits `time_budget_s`. `budget_for` gives each
/// scenario's full-size KV budget (the reference card's, or `--budget`).
pub fn plan_suite(
    ctx: &GpuContext,
    scenarios: &[LoadedScenario],
    budget_for: &dyn Fn(&LoadedScenario) -> u64,
    config: &RunConfig,
    time_budget_s: f64,
) -> Result<AutoPlan, EngineError> {
    let started = Instant::now();
    let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
    let first = ladder(1).remove(0);
    let mut calibrations: Vec<(String, Calibration)> = Vec::new();
    let mut model_of = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let template = scenario.scale_with_budget(&first, budget_for(scenario));
        let label = layout_label(&template);
        let index = match calibrations.iter().position(|(l, _)| *l == label) {
            Some(i) => i,
            None => {
                let runs = calibration_runs(cpu, &template.layout.geometry);
                calibrations.push((label, calibrate(ctx, &template, config, &runs)?));
                calibrations.len() - 1
            }
        };
        model_of.push(index);
    }
    // A rung predicted past a few equal shares is never chosen unless most scenarios are
    // tiny; stopping there bounds the dry runs (a dry run costs CPU time in proportion to the
    // steps it plans).
    let limit = (4.0 * time_budget_s / scenarios.len().max(1) as f64)
        .min(time_budget_s)
        .max(1.0);
    let mut lists = Vec::with_capacity(scenarios.len());
    for (scenario, &m) in scenarios.iter().zip(&model_of) {
        let model = &calibrations[m].1.model;
        lists.push(candidates(
            scenario,
            budget_for(scenario),
            model,
            config,
            limit,
        )?);
    }
    let planning_s = started.elapsed().as_secs_f64();
    let left = (time_budget_s - planning_s).max(0.0);
    let chosen = allocate(&lists, left);
    let share = left / scenarios.len().max(1) as f64;
    let choices = lists
        .iter()
        .zip(chosen)
        .map(|(list, i)| {
            let c = &list[i];
            // A smallest rung stopped past the limit is predicted at least the limit.
            let predicted_s = c.predicted_s.unwrap_or(limit);
            AutoChoice {
                preset: c.preset.clone(),
                predicted_s,
                over_share: i == 0 && predicted_s > share,
            }
        })
        .collect();
    Ok(AutoPlan {
        time_budget_s,
        calibrations,
        planning_s,
        choices,
    })
}

/// What a calibration is specific to: geometry (heads, head dim), block size, format, and
/// whether a window limits the keys.
fn layout_label(s: &ScaledScenario) -> String {
    let g = &s.layout.geometry;
    let window = if s.sliding_window.is_some() {
        " windowed"
    } else {
        ""
    };
    format!(
        "{} {} bs{}{window}",
        g.name,
        s.layout.dtype.name(),
        s.layout.block_size
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_doubles_one_axis_at_a_time_and_ends_at_full_size() {
        let rungs = ladder(24);
        assert_eq!(
            (rungs[0].max_requests, rungs[0].max_tokens_per_sequence),
            (16, 128)
        );
        for pair in rungs.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let grew = [
                b.max_requests != a.max_requests,
                b.max_tokens_per_sequence != a.max_tokens_per_sequence,
                b.layers_run != a.layers_run,
            ];
            assert_eq!(grew.iter().filter(|g| **g).count(), 1, "{a:?} -> {b:?}");
        }
        let last = rungs.last().unwrap();
        assert_eq!(
            (
                last.max_requests,
                last.max_tokens_per_sequence,
                last.layers_run
            ),
            (u32::MAX, u32::MAX, 24)
        );
        // Layers grow only once tokens and requests are uncapped.
        let first_layer_step = rungs.iter().position(|r| r.layers_run > 1).unwrap();
        assert!(
            rungs[..first_layer_step]
                .iter()
                .any(|r| r.max_requests == u32::MAX)
        );
        assert_eq!(
            rungs[first_layer_step - 1].max_tokens_per_sequence,
            u32::MAX
        );
    }

    fn candidate(full: bool, predicted_s: Option<f64>) -> Candidate {
        Candidate {
            preset: ladder(1)[0].clone(),
            factors: ScaleFactors {
                tokens: if full { 1 } else { 2 },
                requests: 1,
                layers: (1, 1),
            },
            predicted_s,
        }
    }

    #[test]
    fn a_small_scenario_leaves_its_unused_share_to_the_others() {
        let small = vec![candidate(false, Some(1.0)), candidate(true, Some(2.0))];
        let big = vec![
            candidate(false, Some(5.0)),
            candidate(false, Some(15.0)),
            candidate(false, Some(30.0)),
            candidate(false, None),
        ];
        // 36 s: equal shares of 18 would leave the big one at 15 s; the small one needs 2 at
        // full size, so the big one gets 34 and takes its 30 s rung.
        assert_eq!(allocate(&[small.clone(), big.clone()], 36.0), vec![1, 2]);
        // With too little time everyone takes their smallest rung.
        assert_eq!(allocate(&[small, big], 1.0), vec![0, 0]);
    }
}
