//! `pagekv whatif`: the report's failing scenarios rerun with each of its remedies at one
//! scale, a table per scenario, and the report's remedy claims checked.

use std::path::PathBuf;

use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, ContentArrangement, Table};
use pagekv::report::claims::remedy_claims;
use pagekv::report::remedies::{
    REPORT_WINDOW, Remedy, RemedyError, fragmentation_table, run_remedies, scenario_table,
    scenario_title,
};
use pagekv::report::suite::SuiteObserver;
use pagekv::scenario::{BYTES_PER_GB, Budget};

use super::run::{Bars, PreemptionArg, RunArgs, options, select};
use super::{CliError, GlobalArgs};

/// Flags of `pagekv whatif`.
#[derive(Debug, Clone, Args)]
pub struct WhatifArgs {
    /// Scenario numbers to rerun (default: the five the report diagnoses as failing).
    #[arg(long, value_name = "IDS", default_value = "4,5,6,8,11")]
    pub only: String,
    /// Directory of scenario files and models.toml.
    #[arg(long, value_name = "DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// Scale preset: ci, default, long or full. `long` keeps sequences long enough that the
    /// scaled window still spans several blocks.
    #[arg(long, default_value = "long", value_name = "PRESET")]
    pub scale: String,
    /// Full-size KV budget in GiB before scaling (default: the reference card, 24).
    #[arg(long, value_name = "GIB", allow_negative_numbers = true)]
    pub budget: Option<f64>,
    /// The sliding window of the window remedies, in full-size tokens.
    #[arg(long, default_value_t = REPORT_WINDOW, value_name = "TOKENS")]
    pub window: u32,
    /// How a running request is preempted when the pool runs dry.
    #[arg(long, value_enum, default_value_t = PreemptionArg::Recompute)]
    pub preemption: PreemptionArg,
    /// Where each remedy's results file goes (`whatif-<remedy>.json`).
    #[arg(long, value_name = "DIR", default_value = "whatif-results")]
    pub out_dir: PathBuf,
    /// Print only the claims table from the full-size arithmetic; runs nothing.
    #[arg(long)]
    pub claims_only: bool,
}

impl WhatifArgs {
    /// The `run` flags each remedy's run is made with.
    fn run_args(&self) -> RunArgs {
        RunArgs {
            only: Some(self.only.clone()),
            scenarios_dir: self.scenarios_dir.clone(),
            scale: Some(self.scale.clone()),
            budget: self.budget.map(Budget::Gib),
            preemption: self.preemption,
            ..RunArgs::default()
        }
    }
}

/// Runs the sweep (unless `--claims-only`) and prints the tables and the claims.
pub fn run(global: &GlobalArgs, args: &WhatifArgs) -> Result<(), CliError> {
    if args.scale == "auto" {
        return Err(CliError::input(
            "--scale auto is not for whatif: every remedy must run the same scale; use a preset \
             (ci, default, long or full)",
        ));
    }
    let run_args = args.run_args();
    let options = options(&run_args)?;
    let scenarios = select(&run_args)?;
    let remedies = Remedy::standard(args.window);
    for s in &scenarios {
        for r in &remedies {
            r.apply(s).map_err(|problem| {
                CliError::input(format!("--window {problem} (scenario {:02})", s.id))
            })?;
        }
    }
    let budget = options.full_budget_bytes.unwrap_or_else(|| {
        scenarios
            .first()
            .map_or(24 * BYTES_PER_GB, |s| s.budget_bytes())
    });
    let mut runs = Vec::new();
    if !args.claims_only {
        std::fs::create_dir_all(&args.out_dir).map_err(|e| {
            CliError::input(format!(
                "--out-dir {}: cannot create it ({e})",
                args.out_dir.display()
            ))
        })?;
        let ctx = global.open()?;
        let c = options.config;
        eprintln!(
            "pagekv whatif: {} scenarios x {} remedies at preset `{}` on {}",
            scenarios.len(),
            remedies.len(),
            options.preset.name,
            ctx.describe()
        );
        let mut observer = |r: &Remedy| -> Box<dyn SuiteObserver> {
            eprintln!("== {}", r.label());
            Box::new(Bars::default())
        };
        runs = run_remedies(
            &ctx,
            &scenarios,
            &remedies,
            &options,
            &args.out_dir,
            &mut observer,
        )
        .map_err(|e| match e {
            RemedyError::Inapplicable { .. } => CliError::input(e.to_string()),
            RemedyError::File(e) => CliError::input(e.to_string()),
        })?;
        println!(
            "adapter: {}\nscale: preset `{}`; every remedy runs the same scaled workload; \
             {} tokens per step, {} running at most, preemption by {}; time is wall clock \
             per step (fence-waited)\n",
            ctx.describe(),
            options.preset.name,
            c.max_step_tokens,
            c.max_running,
            c.preemption.name()
        );
        for s in &scenarios {
            if let Some(title) = scenario_title(s.id, &runs) {
                println!("{title}");
            }
            println!("{}\n", scenario_table(s.id, &runs));
        }
        if let Some(table) = fragmentation_table(&runs) {
            println!(
                "Fragmentation against contiguous allocation ({} runs: slots allocated but \
                 holding no token, % of the slots allocated or reserved, mean and peak over \
                 steps)",
                remedies[0].label()
            );
            println!("{table}\n");
        }
        for r in &runs {
            println!("{}: {}", r.remedy.label(), r.path.display());
        }
        println!();
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(160)
        .set_header(vec![
            "the report claims",
            "full-size arithmetic (real geometry)",
            "measured (scaled sweep)",
            "verdict",
        ]);
    for c in remedy_claims(&scenarios, &runs, budget) {
        table.add_row(vec![
            Cell::new(c.claim),
            Cell::new(c.arithmetic),
            Cell::new(c.measured),
            Cell::new(c.holds.to_string()),
        ]);
    }
    println!("{table}");
    let failed: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.results.scenarios.iter().filter_map(move |s| {
                let broken = s.error.is_some()
                    || s.measured.as_ref().is_some_and(|m| !m.problems.is_empty());
                broken.then(|| format!("{:02} ({})", s.id, r.remedy.label()))
            })
        })
        .collect();
    if !failed.is_empty() {
        return Err(CliError::failed(format!(
            "scenario(s) {} lost, miscomputed or stopped with an error (see the results files)",
            failed.join(", ")
        )));
    }
    Ok(())
}
