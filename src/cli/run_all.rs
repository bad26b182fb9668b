//! `pagekv run --all-adapters`: the same suite on every adapter the filters allow, one after
//! another, one results file each, and their N-way comparison at the end.

use std::path::PathBuf;

use pagekv::gpu::{GpuContext, adapter_label, matching_adapters};
use pagekv::report::file::results_file_name;
use pagekv::report::suite::SuiteOptions;
use pagekv::report::table;
use pagekv::scenario::LoadedScenario;

use super::auto_scale::{self, Scaling};
use super::run::{RunArgs, execute, outcome, with_device_budget};
use super::{CliError, GlobalArgs};

/// Where the results files go when `--out-dir` is not given.
pub const DEFAULT_OUT_DIR: &str = "results";

/// Runs the suite on each adapter in turn. An adapter that cannot be opened, probed or run
/// gets one line and the others still run; the exit status is the worst adapter's.
pub fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    options: &SuiteOptions,
    scaling: &Scaling,
    scenarios: &[LoadedScenario],
) -> Result<(), CliError> {
    let adapters = matching_adapters(&global.filter()?);
    if adapters.is_empty() {
        // Names the flags and the adapters present.
        return global.open().map(|_| ());
    }
    let dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT_DIR));
    std::fs::create_dir_all(&dir).map_err(|e| {
        CliError::input(format!(
            "--out-dir {}: cannot create it ({e})",
            dir.display()
        ))
    })?;
    let mut written = Vec::new();
    let mut failures: Vec<(String, CliError)> = Vec::new();
    for (i, adapter) in adapters.iter().enumerate() {
        let info = adapter.get_info();
        let who = adapter_label(&info.name, info.backend);
        println!("== [{}/{}] {who}", i + 1, adapters.len());
        let attempt = GpuContext::from_adapter(adapter)
            .map_err(CliError::from)
            .and_then(|ctx| {
                let path = dir.join(results_file_name(&ctx.report()));
                let options = SuiteOptions {
                    out: Some(path.clone()),
                    ..options.clone()
                };
                let mut options = with_device_budget(&ctx, args, options)?;
                // Each adapter is calibrated and scaled on its own (the fixed presets are the
                // same everywhere).
                let note = auto_scale::resolve(&ctx, scenarios, &mut options, scaling, args.quiet)?;
                if !args.quiet {
                    eprintln!(
                        "pagekv run: {} scenarios at preset `{}` on {}{note}",
                        scenarios.len(),
                        options.preset.name,
                        ctx.describe()
                    );
                }
                let results = execute(&ctx, args, &options, scenarios, None)?;
                println!("{}", table::render(&results));
                if let Some(auto) = &options.auto {
                    let wall = results
                        .scenarios
                        .iter()
                        .map(|s| s.total_seconds)
                        .sum::<f64>()
                        + auto.planning_s;
                    println!(
                        "{}",
                        auto_scale::timing_table(&results, auto.planning_s, wall)
                    );
                }
                println!("results written to {}", path.display());
                written.push(path);
                outcome(&results)
            });
        if let Err(e) = attempt {
            println!("{who}: {}", e.message());
            failures.push((who, e));
        }
    }
    if written.len() >= 2 {
        println!("== comparison of the {} results files", written.len());
        super::compare::print_comparison(&written, true, "note")?;
    }
    let worst = failures.iter().map(|(_, e)| e.exit_code()).max();
    let Some(worst) = worst else {
        return Ok(());
    };
    let list: Vec<String> = failures
        .iter()
        .map(|(who, e)| format!("{who} ({})", e.message().trim_end_matches('.')))
        .collect();
    let message = format!(
        "{} of {} adapters did not run cleanly: {}",
        failures.len(),
        adapters.len(),
        list.join("; ")
    );
    Err(if worst >= 2 {
        CliError::input(message)
    } else {
        CliError::failed(message)
    })
}
