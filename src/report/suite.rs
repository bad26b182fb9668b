//! Runs a list of scenarios one after another on one device, keeping a results file current
//! after every scenario so a run that stops part-way loses nothing it measured.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::autoscale::AutoPlan;
use super::file::{self, ResultsFileError};
use super::status::{Verdict, verdict};
use super::{FORMAT, FORMAT_VERSION, ResultsFile, ScenarioResult, WGPU_VERSION};
use crate::engine::alerts::AlertRules;
use crate::engine::{EngineError, Progress, RunConfig, run_scenario_with};
use crate::gpu::{GpuContext, KvStorageMode, MemoryProbe};
use crate::scenario::{BYTES_PER_GB, LoadedScenario, ScalePreset, ScaledScenario};

/// What a suite run is made of.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Scale preset.
    pub preset: ScalePreset,
    /// Full-size KV budget in bytes; `None` uses each scenario's reference card (24 GiB).
    pub full_budget_bytes: Option<u64>,
    /// The memory probe `full_budget_bytes` came from, if it did; recorded in the results.
    pub budget_probe: Option<MemoryProbe>,
    /// Engine configuration.
    pub config: RunConfig,
    /// Results file kept current during the run, if any.
    pub out: Option<PathBuf>,
    /// Alert thresholds evaluated after every step.
    pub alerts: AlertRules,
    /// The file they came from (`None`: the report's defaults), recorded in the results.
    pub alerts_file: Option<String>,
    /// A device-scaled run's choices, one per scenario in order (see
    /// [`super::autoscale::plan_suite`]); `None` scales every scenario with `preset`.
    pub auto: Option<AutoPlan>,
}

/// Hooks for progress display; the library prints nothing itself.
pub trait SuiteObserver {
    /// A scenario is about to build its pipelines and run.
    fn scenario_started(&mut self, _scaled: &ScaledScenario, _index: usize, _total: usize) {}
    /// A step of the running scenario finished.
    fn step(&mut self, _progress: Progress) {}
    /// A scenario finished (measured or stopped by an error).
    fn scenario_finished(&mut self, _result: &ScenarioResult) {}
}

/// An observer that shows nothing (tests, embedding).
pub struct Quiet;

impl SuiteObserver for Quiet {}

/// Scales and runs every scenario in order. A scenario that stops with an error is recorded
/// as FAIL with the error and the suite goes on. The results file (if any) is written before
/// the first scenario (so a bad `--out` is reported before any work) and after each one; it is
/// marked complete at the end. Only failing to write that file is an error.
pub fn run_suite(
    ctx: &GpuContext,
    scenarios: &[LoadedScenario],
    options: &SuiteOptions,
    observer: &mut dyn SuiteObserver,
) -> Result<ResultsFile, ResultsFileError> {
    let full_budget = options
        .full_budget_bytes
        .or_else(|| scenarios.first().map(LoadedScenario::budget_bytes))
        .unwrap_or(24 * BYTES_PER_GB);
    let mut results = ResultsFile {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        complete: false,
        pagekv_version: env!("CARGO_PKG_VERSION").into(),
        wgpu_version: WGPU_VERSION.into(),
        created_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        adapter: ctx.report(),
        preset: options.preset.name.clone(),
        full_budget_gb: full_budget as f64 / BYTES_PER_GB as f64,
        budget_probe: options.budget_probe.clone(),
        config: options.config,
        alert_rules: options.alerts.clone(),
        alert_rules_file: options.alerts_file.clone(),
        time_budget_s: options.auto.as_ref().map(|a| a.time_budget_s),
        scenarios: Vec::new(),
    };
    let save = |results: &ResultsFile| match &options.out {
        Some(path) => file::write(path, results),
        None => Ok(()),
    };
    save(&results)?;
    for (index, scenario) in scenarios.iter().enumerate() {
        let budget = options
            .full_budget_bytes
            .unwrap_or_else(|| scenario.budget_bytes());
        let choice = options.auto.as_ref().and_then(|a| a.choices.get(index));
        let preset = choice.map_or(&options.preset, |c| &c.preset);
        let scaled = scenario.scale_with_budget(preset, budget);
        observer.scenario_started(&scaled, index, scenarios.len());
        let mut result = run_scaled(ctx, scenario, scaled, options, observer);
        result.predicted_seconds = choice.map(|c| c.predicted_s);
        observer.scenario_finished(&result);
        results.scenarios.push(result);
        save(&results)?;
    }
    results.complete = true;
    save(&results)?;
    Ok(results)
}

/// Runs one scaled scenario and records it: its measurement and verdict, or the error that
/// stopped it as FAIL (marked `refused` when the device's limits refused it). Shared by
/// [`run_suite`] and the demand sweep, so both record a point the same way.
pub fn run_scaled(
    ctx: &GpuContext,
    scenario: &LoadedScenario,
    scaled: ScaledScenario,
    options: &SuiteOptions,
    observer: &mut dyn SuiteObserver,
) -> ScenarioResult {
    let started = Instant::now();
    let outcome = run_scenario_with(ctx, &scaled, &options.config, &options.alerts, &mut |p| {
        observer.step(p)
    });
    let refused = matches!(&outcome, Err(EngineError::Gpu(e)) if e.is_refusal());
    let (measured, error) = match outcome {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let (verdict, verdict_reasons) = match (&measured, &error) {
        (Some(m), _) => verdict(m),
        (None, e) => (Verdict::Fail, e.iter().cloned().collect()),
    };
    let storage = KvStorageMode::choose(scaled.layout.dtype, ctx.capabilities.shader_f16);
    ScenarioResult {
        id: scenario.id,
        file: scenario.path.display().to_string(),
        scenario: scenario.scenario.clone(),
        scaled,
        kv_storage: storage.name().into(),
        measured,
        error,
        refused,
        verdict,
        verdict_reasons,
        total_seconds: started.elapsed().as_secs_f64(),
        predicted_seconds: None,
    }
}
