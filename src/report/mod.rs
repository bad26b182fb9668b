//! Results: the versioned JSON file a run writes, the status verdicts, the side-by-side table
//! with the CUDA reference, and comparisons of two result files.
//!
//! # Results file format (version 2)
//!
//! One JSON object ([`ResultsFile`]):
//!
//! - `format`: always `"pagekv-results"`; `version`: 2 (version 1 files, without time
//!   series and alerts, are still read). A reader refuses other formats and newer versions
//!   rather than misreading them.
//! - `complete`: `false` while a run is in progress or when it stopped early (the file is
//!   rewritten atomically after every scenario, so whatever was measured survives a crash);
//!   `true` once every selected scenario was attempted.
//! - `pagekv_version`, `wgpu_version`, `created_unix_s`.
//! - `adapter`: name, vendor id, backend, device type, driver, and the limits and features
//!   granted ([`crate::gpu::AdapterReport`]).
//! - `preset`, `full_budget_gb` (the full-size budget scaled down per scenario) and `config`
//!   (step token budget, running limit, preemption mode, spot-check counts).
//! - `budget_probe` (absent unless `run --budget device`): the memory probe whose usable
//!   bytes became `full_budget_gb` ([`crate::gpu::MemoryProbe`]).
//! - `scenarios`: one [`ScenarioResult`] each, holding the scenario as its file states it
//!   (including the report's `[reference]` numbers), the scaled counts and factors actually
//!   run, the [`crate::engine::Measurement`] or the error that stopped it, and the verdict.
//!   Since version 2 a measurement holds its time series (`series`: one sample per step,
//!   thinned to at most 512) and its alert events (`alerts`), and the file holds the
//!   `alert_rules` they were evaluated with.
//!
//! Times are seconds, percentages 0-100, sizes bytes. Fields are only ever added within a
//! version; a change of meaning bumps the version.

pub mod autoscale;
pub mod bench_compare;
pub mod charts;
pub mod claims;
pub mod compare;
pub mod file;
pub mod formats;
pub mod html;
pub mod live_metrics;
pub mod plan;
pub mod plan_table;
pub mod plan_validate;
pub mod remedies;
pub mod status;
pub mod suite;
pub mod sweep;
pub mod sweep_html;
pub mod sweep_run;
pub mod sweep_table;
pub mod table;

use serde::{Deserialize, Serialize};

use crate::engine::alerts::AlertRules;
use crate::engine::{Measurement, RunConfig};
use crate::gpu::{AdapterReport, MemoryProbe};
use crate::scenario::{ScaledScenario, Scenario};
pub use status::{Band, Verdict};

/// The `format` tag of results files.
pub const FORMAT: &str = "pagekv-results";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 2;
/// The wgpu release pagekv is built against (a test keeps it equal to Cargo.lock's).
pub const WGPU_VERSION: &str = "30.0.2";

/// Everything one `pagekv run` measured. See the module docs for the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] at writing.
    pub version: u32,
    /// Whether every selected scenario was attempted.
    pub complete: bool,
    /// pagekv's crate version.
    pub pagekv_version: String,
    /// wgpu's version.
    pub wgpu_version: String,
    /// When the run started (seconds since the Unix epoch).
    pub created_unix_s: u64,
    /// The adapter that ran it.
    pub adapter: AdapterReport,
    /// Scale preset name.
    pub preset: String,
    /// Full-size KV budget in GiB before scaling (the reference card's 24 unless `--budget`).
    pub full_budget_gb: f64,
    /// Present when `full_budget_gb` is the usable memory the probe measured on this adapter
    /// (`run --budget device`) rather than a size someone chose: the probe's step, cap and
    /// why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_probe: Option<MemoryProbe>,
    /// Engine configuration.
    pub config: RunConfig,
    /// The alert thresholds the run evaluated (the report's unless `--alerts`).
    #[serde(default)]
    pub alert_rules: AlertRules,
    /// Where they came from: `None` for the report's defaults, else the `--alerts` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_rules_file: Option<String>,
    /// The time budget of a device-scaled run (`--scale auto`), seconds; each scenario's
    /// scale was chosen so its predicted time fits its share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_budget_s: Option<f64>,
    /// One entry per scenario attempted, in run order.
    pub scenarios: Vec<ScenarioResult>,
}

/// One scenario's configuration, scaling, measurement and verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// The report's scenario number.
    pub id: u32,
    /// The file it came from.
    pub file: String,
    /// The scenario as its file states it, reference numbers included.
    pub scenario: Scenario,
    /// What was actually run: scaled counts, factors, layout, budget.
    pub scaled: ScaledScenario,
    /// KV storage encoding used (`f32`, `f16` or `f16-packed`).
    pub kv_storage: String,
    /// The measurement, absent when the run stopped with an error.
    pub measured: Option<Measurement>,
    /// Why the run stopped, one sentence.
    pub error: Option<String>,
    /// True when the device's limits refused the scenario before it ran (a pool it cannot
    /// hold, a tile it cannot fit): an explained refusal, not a failure of the work.
    #[serde(default)]
    pub refused: bool,
    /// pagekv's verdict under the reference's thresholds.
    pub verdict: Verdict,
    /// Why the verdict is not a plain PASS (bands out of the safe range, problems found).
    pub verdict_reasons: Vec<String>,
    /// Seconds spent on the scenario including pipeline creation and warm-up.
    pub total_seconds: f64,
    /// The calibrated prediction of `total_seconds` a device-scaled run chose its scale by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_seconds: Option<f64>,
}

impl ResultsFile {
    /// The scenario with report number `id`, if it ran.
    pub fn scenario(&self, id: u32) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.id == id)
    }

    /// Measured req/s of scenario 1 in this file, the normalisation base of throughput.
    pub fn baseline_requests_per_s(&self) -> Option<f64> {
        self.scenario(1)
            .and_then(|s| s.measured.as_ref())
            .map(|m| m.requests_per_s)
            .filter(|&r| r > 0.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wgpu_version_matches_the_lock_file() {
        let lock = include_str!("../../Cargo.lock");
        let entry = format!("name = \"wgpu\"\nversion = \"{}\"", super::WGPU_VERSION);
        assert!(
            lock.contains(&entry),
            "update WGPU_VERSION to Cargo.lock's wgpu"
        );
    }
}
