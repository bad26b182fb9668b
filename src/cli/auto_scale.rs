//! `run --scale auto` / `--time`: the flags, the header lines and the predicted-against-actual
//! table of a device-scaled run. The choosing is the library's
//! ([`pagekv::report::autoscale`]).

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use pagekv::gpu::GpuContext;
use pagekv::report::ResultsFile;
use pagekv::report::autoscale::{AUTO, plan_suite};
use pagekv::report::suite::SuiteOptions;
use pagekv::scenario::{LoadedScenario, ScalePreset};

use super::CliError;
use super::run::RunArgs;

/// The time budget when `--scale auto` comes without `--time`.
pub const DEFAULT_TIME_S: f64 = 300.0;

/// How a run's scenarios are scaled.
#[derive(Clone, Debug, PartialEq)]
pub enum Scaling {
    /// One fixed preset for every scenario.
    Preset(ScalePreset),
    /// Per-scenario scales fitted to a time budget on the adapter.
    Auto {
        /// The budget, seconds.
        seconds: f64,
    },
    /// No `--scale`: auto on GPUs, the `default` preset on CPU adapters.
    AdapterDefault {
        /// The budget on GPUs, seconds.
        seconds: f64,
    },
}

/// Reads `--scale` and `--time`.
pub fn scaling(args: &RunArgs) -> Result<Scaling, CliError> {
    let seconds = match &args.time {
        None => None,
        Some(text) => Some(parse_time(text)?),
    };
    match (args.scale.as_deref(), seconds) {
        (None, None) => Ok(Scaling::AdapterDefault {
            seconds: DEFAULT_TIME_S,
        }),
        (None | Some(AUTO), Some(seconds)) => Ok(Scaling::Auto { seconds }),
        (Some(AUTO), None) => Ok(Scaling::Auto {
            seconds: DEFAULT_TIME_S,
        }),
        (Some(name), time) => {
            let preset = ScalePreset::by_name(name).ok_or_else(|| {
                let names: Vec<String> = ScalePreset::all().into_iter().map(|p| p.name).collect();
                CliError::input(format!(
                    "--scale '{name}' is not a preset; use auto or one of {}",
                    names.join(", ")
                ))
            })?;
            if time.is_some() {
                return Err(CliError::input(format!(
                    "--time sets the budget of --scale auto, but --scale is '{name}'; drop one"
                )));
            }
            Ok(Scaling::Preset(preset))
        }
    }
}

/// `60s`, `5m`, `1m30s`, `1h`, or plain seconds.
fn parse_time(text: &str) -> Result<f64, CliError> {
    let seconds = match text.trim().parse::<f64>() {
        Ok(s) => s,
        Err(_) => humantime::parse_duration(text.trim())
            .map(|d| d.as_secs_f64())
            .map_err(|e| {
                CliError::input(format!(
                    "--time '{text}' is not a duration ({e}); give one like 60s, 5m or 1h"
                ))
            })?,
    };
    if !(seconds.is_finite() && (1.0..=7.0 * 86_400.0).contains(&seconds)) {
        return Err(CliError::input(format!(
            "--time '{text}' is out of range; give between 1s and 7 days"
        )));
    }
    Ok(seconds)
}

/// The preset `SuiteOptions` carries in an auto run until the scales are chosen; its name is
/// what the results file records.
pub fn placeholder() -> ScalePreset {
    ScalePreset {
        name: AUTO.into(),
        ..pagekv::report::autoscale::ladder(1).remove(0)
    }
}

/// Settles `scaling` on the open adapter: calibrates and chooses scales for auto runs (into
/// `options.auto`), or falls back to the `default` preset on CPU adapters. Returns the note
/// the header line ends with.
pub fn resolve(
    ctx: &GpuContext,
    scenarios: &[LoadedScenario],
    options: &mut SuiteOptions,
    scaling: &Scaling,
    quiet: bool,
) -> Result<String, CliError> {
    let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
    let seconds = match *scaling {
        Scaling::Preset(_) => return Ok(String::new()),
        Scaling::AdapterDefault { .. } if cpu => {
            options.preset = ScalePreset::by_name("default").expect("the default preset exists");
            return Ok(" (a CPU adapter: the fixed `default` preset; --time scales to it)".into());
        }
        Scaling::Auto { seconds } | Scaling::AdapterDefault { seconds } => seconds,
    };
    if !quiet {
        eprintln!(
            "calibrating on {} for a {seconds:.0} s run (a few short engine runs per KV layout)",
            ctx.describe()
        );
    }
    let full = options.full_budget_bytes;
    let budget_for = |s: &LoadedScenario| full.unwrap_or_else(|| s.budget_bytes());
    let plan = plan_suite(ctx, scenarios, &budget_for, &options.config, seconds)
        .map_err(|e| CliError::failed(format!("calibration failed: {e}")))?;
    if !quiet {
        for (label, c) in &plan.calibrations {
            let m = &c.model;
            eprintln!(
                "  {label}: {} steps in {:.1} s; per step {:.2} ms + per layer {:.3} ms, \
                 per token-layer {:.2} us, per key-layer prefill {:.2} ns / decode {:.2} ns, \
                 scenario setup {:.2} s; fit: measured/predicted {:.2}",
                c.steps,
                c.seconds,
                m.step_s * 1e3,
                m.layer_s * 1e3,
                m.token_s * 1e6,
                m.prefill_key_s * 1e9,
                m.decode_key_s * 1e9,
                m.scenario_s,
                c.fit_ratio
            );
        }
        eprintln!("  calibration and planning took {:.1} s", plan.planning_s);
    }
    let note = format!(", scales fitted to {seconds:.0} s");
    options.auto = Some(plan);
    Ok(note)
}

/// Each scenario's factors, predicted and actual seconds, and the whole run's; `planning_s`
/// is the calibration's and planning's time, `wall_s` the whole run's.
pub fn timing_table(results: &ResultsFile, planning_s: f64, wall_s: f64) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "#",
        "scale (auto)",
        "demand %",
        "predicted s",
        "actual s",
        "actual / predicted",
    ]);
    let (mut predicted, mut actual) = (0.0, 0.0);
    for s in &results.scenarios {
        let p = s.predicted_seconds.unwrap_or(f64::NAN);
        predicted += p;
        actual += s.total_seconds;
        table.add_row(vec![
            Cell::new(format!("{:02}", s.id)),
            Cell::new(s.scaled.factors.to_string()),
            Cell::new(format!("{:.1}", s.scaled.demand_pct())).set_alignment(CellAlignment::Right),
            Cell::new(format!("{p:.1}")).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}", s.total_seconds)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}", s.total_seconds / p)).set_alignment(CellAlignment::Right),
        ]);
    }
    table.add_row(vec![
        Cell::new("all"),
        Cell::new(format!(
            "budget {:.0} s",
            results.time_budget_s.unwrap_or(f64::NAN)
        )),
        Cell::new(""),
        Cell::new(format!("{predicted:.1}")).set_alignment(CellAlignment::Right),
        Cell::new(format!("{actual:.1}")).set_alignment(CellAlignment::Right),
        Cell::new(format!("{:.2}", actual / predicted)).set_alignment(CellAlignment::Right),
    ]);
    format!(
        "device-scaled run: each scenario's scale was the largest whose calibrated prediction \
         fit its share of the time budget (wall clock, pipeline creation and spot checks \
         included)\n{table}\nwhole run: {wall_s:.1} s wall against a {:.0} s budget \
         (calibration and planning {planning_s:.1} s)",
        results.time_budget_s.unwrap_or(f64::NAN)
    )
}
