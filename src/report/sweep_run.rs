//! The demand sweep's run and file: one scenario scaled once, then run at a series of pool
//! sizes so every point serves exactly the same requests and tokens and only the budget (and
//! so demand %) changes; the file ([`SweepFile`], `format: "pagekv-sweep"`) is rewritten
//! atomically after every point so a sweep that stops part-way keeps what it measured.
//!
//! # Sweep file format (version 1)
//!
//! One JSON object: `format` (`"pagekv-sweep"`), `version` (1), `complete`, `pagekv_version`,
//! `wgpu_version`, `created_unix_s`, `adapter`, `preset`, `full_budget_gb` (the full-size
//! budget the scale factors were chosen for), `config`, `alert_rules`, the sweep's parameters
//! (`scenario_id`, `scenario_file`, `plan`: the planned demand % values and their spacing,
//! `demand_bytes`: the scaled demand every point runs), and `points`: one [`SweepPoint`] each,
//! in run order (lowest demand first), holding a full [`ScenarioResult`].

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::file::{self, ResultsFileError};
use super::suite::{SuiteObserver, SuiteOptions, run_scaled};
use super::sweep::{CurvePoint, DemandPlan};
use super::{ScenarioResult, Verdict, WGPU_VERSION};
use crate::engine::RunConfig;
use crate::engine::alerts::AlertRules;
use crate::gpu::{AdapterReport, GpuContext, KvStorageMode};
use crate::scenario::{BYTES_PER_GB, LoadedScenario, ScaledScenario};

/// The `format` tag of sweep files.
pub const SWEEP_FORMAT: &str = "pagekv-sweep";
/// The sweep format version this build writes and the newest it reads.
pub const SWEEP_FORMAT_VERSION: u32 = 1;

/// Everything one `pagekv sweep` measured. See the module docs for the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepFile {
    /// Always [`SWEEP_FORMAT`].
    pub format: String,
    /// [`SWEEP_FORMAT_VERSION`] at writing.
    pub version: u32,
    /// Whether every planned point was attempted.
    pub complete: bool,
    /// pagekv's crate version.
    pub pagekv_version: String,
    /// wgpu's version.
    pub wgpu_version: String,
    /// When the sweep started (seconds since the Unix epoch).
    pub created_unix_s: u64,
    /// The adapter that ran it.
    pub adapter: AdapterReport,
    /// Scale preset name.
    pub preset: String,
    /// Full-size KV budget in GiB the scale factors were chosen for (each point then sets its
    /// own scaled budget from its demand %).
    pub full_budget_gb: f64,
    /// Engine configuration, the same for every point.
    pub config: RunConfig,
    /// The alert thresholds every point evaluated.
    pub alert_rules: AlertRules,
    /// The scenario's number.
    pub scenario_id: u32,
    /// The scenario's file.
    pub scenario_file: String,
    /// The demand % values planned and how they were spaced.
    pub plan: DemandPlan,
    /// Scaled demand in bytes, the same at every point.
    pub demand_bytes: u64,
    /// One entry per point attempted, lowest demand first.
    pub points: Vec<SweepPoint>,
}

/// One point of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Demand % as planned (the scaled budget is demand bytes / (this / 100), rounded).
    pub demand_pct_planned: f64,
    /// Why the point was not run: its pool cannot hold one request (`None` when it ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unservable: Option<String>,
    /// The run, as `pagekv run` records a scenario.
    pub result: ScenarioResult,
}

impl SweepPoint {
    /// The figures the curve analysis reads.
    pub fn curve(&self) -> CurvePoint {
        let m = self.result.measured.as_ref();
        CurvePoint {
            demand_pct: self.demand_pct_planned,
            peak_use_pct: m.map(|m| m.peak_use_pct),
            requests_per_s: m.map(|m| m.requests_per_s),
            preemptions: m.map(|m| m.preemptions),
        }
    }

    /// True when the point ran and lost, rejected or miscomputed a request, or stopped with
    /// an error other than a refusal by the device's limits: a failure of the work.
    pub fn is_broken(&self) -> bool {
        if self.unservable.is_some() || self.result.refused {
            return false;
        }
        match &self.result.measured {
            Some(m) => !m.is_correct(),
            None => true,
        }
    }
}

impl SweepFile {
    /// Every point's figures for the curve analysis.
    pub fn curve(&self) -> Vec<CurvePoint> {
        self.points.iter().map(SweepPoint::curve).collect()
    }
}

/// The scaled budget that puts `demand_bytes` at `demand_pct` %.
pub fn budget_for(demand_bytes: u64, demand_pct: f64) -> u64 {
    (demand_bytes as f64 * 100.0 / demand_pct).round() as u64
}

/// `base` with its budget set for `demand_pct`, or why its pool cannot hold one request.
pub fn point_scenario(base: &ScaledScenario, demand_pct: f64) -> (ScaledScenario, Option<String>) {
    let mut scaled = base.clone();
    scaled.budget_bytes = budget_for(base.demand_bytes(), demand_pct);
    let unservable = (scaled.sequences_that_fit() == 0).then(|| {
        let per_request = scaled.layout.blocks_for_tokens(scaled.tokens_per_request());
        format!(
            "the pool has {} blocks and one request needs {}",
            scaled.num_blocks(),
            per_request
        )
    });
    (scaled, unservable)
}

/// Scales `scenario` once with `options.preset` (for `options.full_budget_bytes`, else its
/// reference card) and runs it at every demand % of `plan`, lowest first. `options.out`, if
/// set, is written before the first point (so a bad path fails before any work) and after
/// each one. A point whose pool cannot hold one request is recorded as unservable without
/// running; a point that fails is recorded and the sweep goes on. Only failing to write the
/// file is an error.
pub fn run_sweep(
    ctx: &GpuContext,
    scenario: &LoadedScenario,
    plan: &DemandPlan,
    options: &SuiteOptions,
    observer: &mut dyn SuiteObserver,
) -> Result<SweepFile, ResultsFileError> {
    let full_budget = options
        .full_budget_bytes
        .unwrap_or_else(|| scenario.budget_bytes());
    let base = scenario.scale_with_budget(&options.preset, full_budget);
    let mut sweep = SweepFile {
        format: SWEEP_FORMAT.into(),
        version: SWEEP_FORMAT_VERSION,
        complete: false,
        pagekv_version: env!("CARGO_PKG_VERSION").into(),
        wgpu_version: WGPU_VERSION.into(),
        created_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        adapter: ctx.report(),
        preset: options.preset.name.clone(),
        full_budget_gb: full_budget as f64 / BYTES_PER_GB as f64,
        config: options.config,
        alert_rules: options.alerts.clone(),
        scenario_id: scenario.id,
        scenario_file: scenario.path.display().to_string(),
        plan: plan.clone(),
        demand_bytes: base.demand_bytes(),
        points: Vec::new(),
    };
    let save = |sweep: &SweepFile| match &options.out {
        Some(path) => file::write_json(path, sweep),
        None => Ok(()),
    };
    save(&sweep)?;
    let total = plan.demands_pct.len();
    for (index, &demand_pct) in plan.demands_pct.iter().enumerate() {
        let (scaled, unservable) = point_scenario(&base, demand_pct);
        observer.scenario_started(&scaled, index, total);
        let result = match &unservable {
            None => run_scaled(ctx, scenario, scaled, options, observer),
            Some(reason) => unservable_result(ctx, scenario, scaled, reason),
        };
        observer.scenario_finished(&result);
        sweep.points.push(SweepPoint {
            demand_pct_planned: demand_pct,
            unservable,
            result,
        });
        save(&sweep)?;
    }
    sweep.complete = true;
    save(&sweep)?;
    Ok(sweep)
}

/// The record of a point that was not run because its pool cannot hold one request.
fn unservable_result(
    ctx: &GpuContext,
    scenario: &LoadedScenario,
    scaled: ScaledScenario,
    reason: &str,
) -> ScenarioResult {
    let storage = KvStorageMode::choose(scaled.layout.dtype, ctx.capabilities.shader_f16);
    ScenarioResult {
        id: scenario.id,
        file: scenario.path.display().to_string(),
        scenario: scenario.scenario.clone(),
        scaled,
        kv_storage: storage.name().into(),
        measured: None,
        error: Some(format!("unservable: {reason}")),
        refused: false,
        verdict: Verdict::Fail,
        verdict_reasons: vec![reason.to_string()],
        total_seconds: 0.0,
        predicted_seconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ScalePreset, load_dir};

    fn scenario_3() -> ScaledScenario {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let all = load_dir(&dir).unwrap();
        let s = all.iter().find(|s| s.id == 3).unwrap();
        s.scale(&ScalePreset::by_name("ci").unwrap())
    }

    #[test]
    fn every_point_runs_the_same_work_at_its_planned_demand() {
        let base = scenario_3();
        for pct in [20.0, 61.3, 100.0, 250.0, 400.0] {
            let (scaled, unservable) = point_scenario(&base, pct);
            assert!(unservable.is_none(), "{pct}: {unservable:?}");
            assert!((scaled.demand_pct() - pct).abs() < 1e-3 * pct, "{pct}");
            assert_eq!(scaled.demand_bytes(), base.demand_bytes());
            assert_eq!(
                (
                    scaled.requests(),
                    scaled.tokens_per_request(),
                    &scaled.layout
                ),
                (base.requests(), base.tokens_per_request(), &base.layout)
            );
            assert!(scaled.sequences_that_fit() >= 1);
        }
        // Lower demand buys a bigger pool.
        let (low, _) = point_scenario(&base, 20.0);
        let (high, _) = point_scenario(&base, 400.0);
        assert!(low.num_blocks() > high.num_blocks());
    }

    #[test]
    fn a_pool_smaller_than_one_request_is_unservable_not_a_crash() {
        let base = scenario_3();
        let pct = 100.0 * base.requests() as f64 * 4.0;
        let (scaled, unservable) = point_scenario(&base, pct);
        assert_eq!(scaled.sequences_that_fit(), 0);
        let why = unservable.expect("unservable");
        assert!(why.contains("blocks and one request needs"), "{why}");
    }
}
