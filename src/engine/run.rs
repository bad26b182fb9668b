//! One measured scenario run: the scheduler plans, the executor runs each plan on the GPU,
//! and the loop times steps, audits that nothing was lost and spot-checks outputs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::alerts::{AlertMonitor, AlertRules, Level};
use super::check::{CheckKind, SpotCheck, SpotCheckPlan, compare_row, expected_row};
use super::executor::{Capture, Group, StepExecutor};
use super::metrics::{Measurement, Percentiles, TimingSource};
use super::request::{
    FinishStatus, PreemptionMode, PrefillChunk, RequestSpec, SchedulerConfig, StepPlan,
};
use super::scheduler::{Scheduler, SchedulerError};
use super::series::{Sample, TimeSeries};
use super::workload::{build_requests, total_shareable_tokens};
use crate::cache::{CacheError, KvCacheManager};
use crate::gpu::{GpuContext, GpuError};
use crate::scenario::ScaledScenario;

/// Engine knobs a run is made with; recorded in the results so runs compare like for like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Tokens one step may compute (vLLM's `max_num_batched_tokens`).
    pub max_step_tokens: u32,
    /// Most requests holding blocks at once (vLLM's `max_num_seqs`).
    pub max_running: u32,
    /// Recompute or swap.
    pub preemption: PreemptionMode,
    /// Evenly spread requests whose outputs are spot-checked.
    pub spot_check_requests: u32,
    /// Extra spot-checked outputs of preempted requests.
    pub spot_check_preempted: u32,
}

impl Default for RunConfig {
    /// vLLM's defaults for the batch limits, recompute preemption, 8 + 8 spot checks.
    fn default() -> Self {
        Self {
            max_step_tokens: 2048,
            max_running: 256,
            preemption: PreemptionMode::Recompute,
            spot_check_requests: 8,
            spot_check_preempted: 8,
        }
    }
}

/// Why a scenario run stopped before measuring (a wrong result is not an error: it is a
/// measured FAIL).
#[derive(Debug, Error)]
pub enum EngineError {
    /// The device failed or cannot hold the run.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// The scheduler refused to plan (a configuration or bookkeeping bug).
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// The cache could not be built for the scaled layout.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Progress of a running scenario after one step, for progress displays and live metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Requests reported finished so far.
    pub finished: u64,
    /// Requests in the scenario.
    pub requests: u64,
    /// Steps run.
    pub steps: u64,
    /// Preemptions so far.
    pub preemptions: u64,
    /// The engine's state after the step (the time series' sample).
    pub sample: Sample,
    /// The alert level each metric is at now, in [`super::alerts::Metric::ALL`] order;
    /// `None` where nothing fires.
    pub alerts: [Option<Level>; 4],
    /// Time to first token of each request whose prompt completed in this step, seconds.
    pub first_token_seconds: Vec<f64>,
    /// Time since the same request's previous token for each decode token of this step.
    pub inter_token_seconds: Vec<f64>,
    /// The longest sequence (cached tokens) of any request in this step.
    pub max_sequence_len: u32,
}

/// Per-request timeline and audit state.
#[derive(Default)]
struct Track {
    first_token: Option<Duration>,
    /// When its latest token (first or decoded) came out, for inter-token latency.
    last_token: Option<Duration>,
    finished: Option<Duration>,
    decodes: u32,
    reports: u32,
    completed: bool,
}

/// A capture requested this step, with what to compare it against later.
pub(crate) struct Pending {
    request: u64,
    pub(crate) position: u32,
    kind: CheckKind,
    preempted: u32,
}

/// Runs `scenario` on `ctx` and measures it, with the report's alert thresholds. `progress`
/// is called after every step.
pub fn run_scenario(
    ctx: &GpuContext,
    scenario: &ScaledScenario,
    config: &RunConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<Measurement, EngineError> {
    run_scenario_with(ctx, scenario, config, &AlertRules::default(), progress)
}

/// [`run_scenario`] with alerts evaluated on `rules` after every step.
pub fn run_scenario_with(
    ctx: &GpuContext,
    scenario: &ScaledScenario,
    config: &RunConfig,
    rules: &AlertRules,
    progress: &mut dyn FnMut(Progress),
) -> Result<Measurement, EngineError> {
    let layout = &scenario.layout;
    let num_blocks = scenario.num_blocks();
    let mut executor = StepExecutor::new(ctx, layout, num_blocks, scenario.sliding_window)?;
    warm_up(&mut executor)?;
    let (mut scheduler, specs, ids) = submitted(scenario, config)?;
    let mut tracks: HashMap<u64, Track> = ids.iter().map(|&id| (id, Track::default())).collect();
    let mut sampler = SpotCheckPlan::new(
        ids.len() as u64,
        config.spot_check_requests as u64,
        config.spot_check_preempted,
    );
    let mut checks = Vec::new();
    let mut rejections = Vec::new();
    let mut unknown = Vec::new();
    let mut excluded = Duration::ZERO;
    let mut series = TimeSeries::new();
    let mut monitor = AlertMonitor::new(rules.clone());
    let (mut tokens, mut batch_items) = (0u64, 0u64);
    let start = Instant::now();
    while !scheduler.is_done() {
        let plan = scheduler.schedule()?;
        // The step's working set: what it holds while it runs (finishing requests free
        // their blocks at `complete`).
        let used_blocks = scheduler.cache().num_used_blocks();
        let (captures, pending) = pick_captures(&plan, &scheduler, &specs, &mut sampler);
        let rows = executor.execute(&plan, &captures)?;
        let now = start.elapsed() - excluded;
        let (mut first_token_seconds, mut inter_token_seconds) = (Vec::new(), Vec::new());
        for chunk in plan.prefill.iter().filter(|c| c.completes_prompt) {
            if let Some(t) = tracks.get_mut(&chunk.request)
                && t.first_token.is_none()
            {
                first_token_seconds.push(now.as_secs_f64());
                t.first_token = Some(now);
                t.last_token = Some(now);
            }
        }
        for item in &plan.decode {
            if let Some(t) = tracks.get_mut(&item.request) {
                t.decodes += 1;
                if let Some(last) = t.last_token.replace(now) {
                    inter_token_seconds.push((now - last).as_secs_f64());
                }
            }
        }
        let max_sequence_len = plan
            .prefill
            .iter()
            .map(|c| c.context_len)
            .chain(plan.decode.iter().map(|d| d.context_len))
            .max()
            .unwrap_or(0);
        for done in scheduler.complete(&plan) {
            let Some(t) = tracks.get_mut(&done.request) else {
                unknown.push(done.request);
                continue;
            };
            t.reports += 1;
            t.finished = Some(now);
            match done.status {
                FinishStatus::Completed => t.completed = true,
                FinishStatus::Rejected { reason } => {
                    rejections.push(format!("request {}: {reason}", done.request));
                }
            }
        }
        let checking = Instant::now();
        for (p, got) in pending.iter().zip(&rows) {
            let want = expected_row(
                layout,
                &specs[&p.request],
                p.position,
                scenario.sliding_window,
            );
            let (max_abs_error, passed) = compare_row(layout, got, &want);
            checks.push(SpotCheck {
                request: p.request,
                position: p.position,
                kind: p.kind,
                preempted: p.preempted,
                max_abs_error,
                passed,
            });
        }
        excluded += checking.elapsed();
        let stats = scheduler.stats();
        tokens += plan.num_tokens() as u64;
        batch_items += (plan.prefill.len() + plan.decode.len()) as u64;
        let sample = Sample {
            step: stats.steps,
            seconds: now.as_secs_f64(),
            kv_use_pct: 100.0 * used_blocks as f64 * layout.block_bytes() as f64
                / scenario.budget_bytes as f64,
            running: scheduler.num_running() as u32,
            waiting: (scheduler.num_waiting() + scheduler.num_swapped()) as u32,
            preemptions: stats.preemptions,
            evicted_blocks: stats.evicted_blocks,
            blocks_allocated: stats.blocks_allocated,
            prefix_hit_tokens: stats.prefix_hit_tokens,
            prefix_lookup_tokens: stats.prefix_lookup_tokens,
            tokens,
            batch_items,
            ..Sample::default()
        };
        monitor.observe(&sample);
        series.push(sample);
        progress(Progress {
            finished: tracks.values().filter(|t| t.reports > 0).count() as u64,
            requests: ids.len() as u64,
            steps: stats.steps,
            preemptions: stats.preemptions,
            sample,
            alerts: monitor.levels(),
            first_token_seconds,
            inter_token_seconds,
            max_sequence_len,
        });
    }
    let wall = (start.elapsed() - excluded).as_secs_f64();
    let mut measurement = measure(
        scenario, &scheduler, &executor, &specs, &tracks, rejections, checks, wall,
    );
    for id in unknown {
        (measurement.problems).push(format!("request {id} finished but was never submitted"));
    }
    measurement.series = series.finish();
    measurement.throughput_baseline_tokens_per_s = monitor.baseline_tokens_per_s();
    measurement.alerts = monitor.events;
    measurement.alerts_dropped = monitor.dropped;
    Ok(measurement)
}

/// The scheduler a run of `scenario` plans with: its pool, the run's batch limits and
/// preemption mode, a 1% watermark, and the scenario's window. The one place this is built,
/// so a dry run (see [`super::simulate`]) plans exactly the steps a measured run executes.
pub(crate) fn scheduler_for(
    scenario: &ScaledScenario,
    config: &RunConfig,
) -> Result<Scheduler, EngineError> {
    let num_blocks = scenario.num_blocks();
    let cache = KvCacheManager::new(scenario.layout.clone(), num_blocks, true)?;
    let mut scheduler = Scheduler::new(
        cache,
        SchedulerConfig {
            max_step_tokens: config.max_step_tokens,
            max_running: config.max_running,
            preemption: config.preemption,
            watermark_blocks: num_blocks / 100,
            sliding_window: scenario.sliding_window,
            max_context: scenario.max_context,
        },
    )?;
    scheduler.set_shareable_tokens(total_shareable_tokens(scenario));
    Ok(scheduler)
}

/// A scheduler for `scenario` (see [`scheduler_for`]) with every request of its workload
/// submitted in id order, the requests by id, and the ids in order.
pub(crate) type Submitted = (Scheduler, HashMap<u64, RequestSpec>, Vec<u64>);

/// Builds the scheduler and submits the workload, as every run and dry run starts.
pub(crate) fn submitted(
    scenario: &ScaledScenario,
    config: &RunConfig,
) -> Result<Submitted, EngineError> {
    let mut scheduler = scheduler_for(scenario, config)?;
    let specs: HashMap<u64, RequestSpec> = build_requests(scenario)
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut ids: Vec<u64> = specs.keys().copied().collect();
    ids.sort_unstable();
    for id in &ids {
        scheduler.submit(specs[id].clone());
    }
    Ok((scheduler, specs, ids))
}

/// One tiny step through every kernel so driver-side compilation happens before the clock
/// starts. Block 0's contents are garbage afterwards, which is harmless: attention only reads
/// slots a sequence wrote itself.
fn warm_up(executor: &mut StepExecutor) -> Result<(), GpuError> {
    // Two prompt tokens and one decode token in block 0 (every block size holds three).
    let plan = StepPlan {
        prefill: vec![PrefillChunk {
            request: u64::MAX,
            seed: 0,
            first_position: 0,
            tokens: vec![1, 2],
            slots: vec![0, 1],
            block_table: vec![0],
            context_len: 2,
            completes_prompt: true,
        }],
        decode: vec![super::request::DecodeItem {
            request: u64::MAX - 1,
            seed: 0,
            position: 2,
            token: 3,
            slot: 2,
            block_table: vec![0],
            context_len: 3,
        }],
        ..StepPlan::default()
    };
    executor.execute(&plan, &[])?;
    executor.gpu_times.clear();
    Ok(())
}

/// Chooses this step's captured rows: the last prompt token of a chunk that completes a
/// (re)prefill, and a request's final decode, for requests the sampler picks.
pub(crate) fn pick_captures(
    plan: &StepPlan,
    scheduler: &Scheduler,
    specs: &HashMap<u64, RequestSpec>,
    sampler: &mut SpotCheckPlan,
) -> (Vec<Capture>, Vec<Pending>) {
    let mut captures = Vec::new();
    let mut pending = Vec::new();
    let mut row = 0u32;
    for chunk in &plan.prefill {
        let n = chunk.tokens.len() as u32;
        let preempted = scheduler.times_preempted(chunk.request).unwrap_or(0);
        if chunk.completes_prompt && n > 0 && sampler.wants(chunk.request, preempted) {
            captures.push(Capture {
                group: Group::Prefill,
                row: row + n - 1,
            });
            pending.push(Pending {
                request: chunk.request,
                position: chunk.context_len - 1,
                kind: CheckKind::PromptEnd,
                preempted,
            });
        }
        row += n;
    }
    for (i, item) in plan.decode.iter().enumerate() {
        let last = specs
            .get(&item.request)
            .is_some_and(|s| item.position as u64 + 1 == s.final_len());
        let preempted = scheduler.times_preempted(item.request).unwrap_or(0);
        if last && sampler.wants(item.request, preempted) {
            captures.push(Capture {
                group: Group::Decode,
                row: i as u32,
            });
            pending.push(Pending {
                request: item.request,
                position: item.position,
                kind: CheckKind::FinalDecode,
                preempted,
            });
        }
    }
    (captures, pending)
}

/// Turns the run's counters into the reported figures and the "nothing lost" audit.
#[allow(clippy::too_many_arguments)]
fn measure(
    scenario: &ScaledScenario,
    scheduler: &Scheduler,
    executor: &StepExecutor,
    specs: &HashMap<u64, RequestSpec>,
    tracks: &HashMap<u64, Track>,
    rejections: Vec<String>,
    checks: Vec<SpotCheck>,
    wall: f64,
) -> Measurement {
    let mut problems = Vec::new();
    let stats = scheduler.stats();
    let layout = &scenario.layout;
    let (mut ttft, mut tpot) = (Vec::new(), Vec::new());
    let (mut completed, mut prompt_tokens, mut generated) = (0u64, 0u64, 0u64);
    let mut lost = 0;
    for (id, t) in tracks {
        let spec = &specs[id];
        match t.reports {
            0 => lost += 1,
            1 => {}
            n => problems.push(format!("request {id} was reported finished {n} times")),
        }
        let Some((first, end)) = t.first_token.zip(t.finished).filter(|_| t.completed) else {
            continue;
        };
        if t.decodes != spec.generation_len {
            problems.push(format!(
                "request {id} decoded {} tokens instead of {}",
                t.decodes, spec.generation_len
            ));
            continue;
        }
        completed += 1;
        prompt_tokens += spec.prompt.len() as u64;
        generated += t.decodes as u64;
        ttft.push(first.as_secs_f64());
        tpot.push((end - first).as_secs_f64() / t.decodes.max(1) as f64);
    }
    if lost > 0 {
        problems.push(format!("{lost} requests never finished"));
    }
    if executor.swapped_requests() > 0 {
        problems.push(format!(
            "{} swapped-out requests were never swapped back",
            executor.swapped_requests()
        ));
    }
    for c in checks.iter().filter(|c| !c.passed) {
        problems.push(format!(
            "request {} at position {} differs from the CPU reference (max abs error {:.3e})",
            c.request, c.position, c.max_abs_error
        ));
    }
    let budget = scenario.budget_bytes as f64;
    let pool_slots = scenario.num_blocks() as f64 * layout.block_size as f64;
    let pct = |x: Option<f64>| x.map(|v| 100.0 * v);
    let per_s = |n: u64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    Measurement {
        requests: specs.len() as u64,
        completed,
        rejected: stats.rejected,
        rejections,
        problems,
        demand_pct: scenario.demand_pct(),
        peak_use_pct: 100.0 * stats.peak_used_blocks as f64 * layout.block_bytes() as f64 / budget,
        fragmentation_pct: 100.0 * stats.mean_fragmentation_fraction,
        peak_fragmentation_pct: 100.0 * stats.peak_fragmentation_slots as f64 / pool_slots.max(1.0),
        hit_rate_pct: pct(stats.hit_rate()),
        possible_hit_rate_pct: pct(stats.possible_hit_rate()),
        evictions_pct: pct(stats.eviction_rate()),
        preemptions: stats.preemptions,
        steps: stats.steps,
        wall_seconds: wall,
        requests_per_s: per_s(completed),
        prompt_tokens_per_s: per_s(prompt_tokens),
        generated_tokens_per_s: per_s(generated),
        ttft: Percentiles::of(&ttft),
        tpot: Percentiles::of(&tpot),
        timing: if executor.has_timestamps() {
            TimingSource::GpuTimestamps
        } else {
            TimingSource::WallClock
        },
        gpu_seconds: executor
            .gpu_times
            .iter()
            .map(|(family, s)| (family.name().to_string(), *s))
            .collect(),
        spot_checks: checks,
        scheduler: stats,
        series: TimeSeries::default(),
        alerts: Vec::new(),
        alerts_dropped: 0,
        throughput_baseline_tokens_per_s: None,
    }
}
