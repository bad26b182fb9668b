//! Calibration: a few measured engine runs at a scenario's geometry and format on the present
//! adapter, fitted to a [`CostModel`] that predicts how long any scale of the scenario takes.
//!
//! Five short synthetic runs go through the real engine (the same executor, kernels, host
//! work and fence waits a scenario run has): two dominated by prefill chunks (small steps and
//! steps of the run's size), short decodes over one layer and over two, and long-context
//! decodes, so the per-step, per-layer, per-token and per-key costs can be told apart. Each step's wall time comes from the run's
//! own clock and its work from a dry run of the same plans ([`super::simulate`]); the model
//! is their non-negative least-squares fit. The spot-check cost is measured on the CPU
//! directly.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::check::expected_row;
use super::cost::CostModel;
use super::run::{EngineError, RunConfig, run_scenario};
use super::simulate::{StepWork, dry_run};
use super::workload::build_requests;
use crate::cache::ModelGeometry;
use crate::scenario::ScaledScenario;

/// One calibration run: `requests` requests of `prompt + generation` tokens over `layers`
/// layers, with at most `step_tokens` tokens per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalibrationRun {
    /// Requests (each its own stream, no shared prefix).
    pub requests: u32,
    /// Prompt tokens per request.
    pub prompt: u32,
    /// Decode steps per request.
    pub generation: u32,
    /// Layers run.
    pub layers: u32,
    /// Step token budget; 0 uses the run's own.
    pub step_tokens: u32,
}

/// The calibration runs for an adapter and geometry: prefill chunks over many small steps
/// and over a few steps of the run's own size, short
/// decodes over one and two layers (per-step against per-layer costs), and long-context
/// decodes (per-key against per-token costs). Small on CPU adapters, where every key costs
/// nanoseconds; larger on GPUs, so fixed launch costs do not hide the per-key cost. Fewer
/// requests for wider geometries keep the calibration's own time about the same.
pub fn calibration_runs(cpu: bool, geometry: &ModelGeometry) -> Vec<CalibrationRun> {
    let width = (geometry.q_heads * geometry.head_dim).max(1);
    // 896 = Qwen2.5-0.5B's 14 query heads x 64.
    let narrow = |requests: u32| (requests * 896 / width).clamp(2, requests);
    let run = |requests, prompt, generation, layers, step_tokens| CalibrationRun {
        requests: narrow(requests),
        prompt,
        generation,
        layers,
        step_tokens,
    };
    // A step budget of 0 means the run's own (`--max-step-tokens`).
    if cpu {
        vec![
            run(8, 384, 2, 1, 256),
            run(16, 256, 2, 1, 0),
            run(8, 96, 32, 1, 2048),
            run(8, 96, 32, 2, 2048),
            run(12, 1024, 32, 1, 2048),
        ]
    } else {
        // Prefill is quadratic: a few thousand tokens of prompt already cost milliseconds
        // per step on a GPU, and the long-context run stays under a second of prefill there.
        vec![
            run(32, 2048, 2, 1, 2048),
            run(32, 1024, 2, 1, 0),
            run(64, 1024, 64, 1, 8192),
            run(64, 1024, 64, 2, 8192),
            run(8, 8192, 64, 1, 8192),
        ]
    }
}

/// A fitted model with what it was fitted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The fitted costs.
    pub model: CostModel,
    /// Steps measured.
    pub steps: usize,
    /// Wall seconds the calibration took, pipeline creation included.
    pub seconds: f64,
    /// Measured over predicted time of the calibration runs' steps, summed (1.0 is a perfect
    /// fit; it says how linear the adapter's costs are over these sizes).
    pub fit_ratio: f64,
}

/// Calibrates on `ctx` for scenarios shaped like `template` (its layout, block size, format
/// and window; its counts are ignored) with `runs` (see [`calibration_runs`]).
pub fn calibrate(
    ctx: &crate::gpu::GpuContext,
    template: &ScaledScenario,
    config: &RunConfig,
    runs: &[CalibrationRun],
) -> Result<Calibration, EngineError> {
    let started = Instant::now();
    let check_key_s = check_key_seconds(template);
    let mut samples: Vec<(StepWork, u32, f64)> = Vec::new();
    let mut scenario_s = f64::INFINITY;
    for &CalibrationRun {
        requests,
        prompt,
        generation,
        layers,
        step_tokens,
    } in runs
    {
        let scenario = synthetic(template, requests, prompt, generation, layers);
        // No spot checks: their cost is timed on the CPU once (`check_key_s`), and on a GPU
        // the reference's long rows would cost more than the steps being timed.
        let run_config = RunConfig {
            max_step_tokens: if step_tokens == 0 {
                config.max_step_tokens
            } else {
                step_tokens
            },
            spot_check_requests: 0,
            spot_check_preempted: 0,
            ..*config
        };
        let planned = dry_run(&scenario, &run_config, &mut |_| true)?.steps;
        let mut times = Vec::with_capacity(planned.len());
        let mut last = 0.0;
        let clock = Instant::now();
        run_scenario(ctx, &scenario, &run_config, &mut |p| {
            times.push(p.sample.seconds - last);
            last = p.sample.seconds;
        })?;
        let outside = clock.elapsed().as_secs_f64() - last;
        if times.len() != planned.len() {
            return Err(EngineError::Gpu(crate::gpu::GpuError::Device(format!(
                "calibration ran {} steps where its dry run planned {}",
                times.len(),
                planned.len()
            ))));
        }
        let checks: f64 = planned
            .iter()
            .map(|w| check_key_s * w.check_keys as f64 * layers as f64)
            .sum();
        // The first run also creates the pipelines; later scenarios find them compiled.
        scenario_s = scenario_s.min((outside - checks).max(0.0));
        samples.extend(planned.into_iter().zip(times).map(|(w, t)| (w, layers, t)));
    }
    let mut model = CostModel::fit(&samples);
    model.check_key_s = check_key_s;
    model.scenario_s = scenario_s;
    let measured: f64 = samples.iter().map(|s| s.2).sum();
    let predicted: f64 = samples
        .iter()
        .map(|(w, l, _)| model.step_seconds(w, *l))
        .sum();
    Ok(Calibration {
        model,
        steps: samples.len(),
        seconds: started.elapsed().as_secs_f64(),
        fit_ratio: if predicted > 0.0 {
            measured / predicted
        } else {
            1.0
        },
    })
}

/// A scenario with `template`'s layout over `layers` layers: `requests` requests of
/// `prompt + generation` tokens, no shared prefix, and a pool that holds them all.
fn synthetic(
    template: &ScaledScenario,
    requests: u32,
    prompt: u32,
    generation: u32,
    layers: u32,
) -> ScaledScenario {
    let g = &template.layout.geometry;
    let mut s = template.clone();
    s.name = format!("calibration ({prompt}+{generation} tokens, {layers} layers)");
    s.layout.geometry = ModelGeometry::new(&g.name, layers, g.q_heads, g.kv_heads, g.head_dim);
    s.layers_run = layers;
    s.prompt_tokens = prompt;
    s.generation_tokens = generation;
    s.shared_prefix_tokens = 0;
    s.streams = requests;
    s.requests_per_stream = 1;
    let blocks = s.layout.blocks_for_tokens((prompt + generation) as u64) + 1;
    s.budget_bytes = (requests as u64 + 2) * blocks * s.layout.block_bytes();
    s.max_context = s.max_context.max(prompt + generation);
    s
}

/// Seconds per key and layer the CPU reference takes for one spot-checked row, timed on a
/// row of a few hundred keys of the template's geometry.
fn check_key_seconds(template: &ScaledScenario) -> f64 {
    let probe = synthetic(template, 1, 255, 1, 1);
    let spec = &build_requests(&probe)[0];
    let keys = 256u32;
    let started = Instant::now();
    let mut rounds = 0u32;
    while rounds < 3 || (started.elapsed().as_secs_f64() < 0.05 && rounds < 100) {
        std::hint::black_box(expected_row(&probe.layout, spec, keys - 1, None));
        rounds += 1;
    }
    started.elapsed().as_secs_f64() / (rounds as f64 * keys as f64)
}
