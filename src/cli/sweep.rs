//! `pagekv sweep`: one scenario run at a series of demand % values (the same requests, a
//! smaller pool each time), printed as throughput against utilization beside the CUDA
//! reference report's bands, with the knee of the measured curve.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use pagekv::report::ScenarioResult;
use pagekv::report::suite::SuiteObserver;
use pagekv::report::sweep::{DemandPlan, Spacing};
use pagekv::report::sweep_html::sweep_html;
use pagekv::report::sweep_run::run_sweep;
use pagekv::report::sweep_table;
use pagekv::scenario::{ScaledScenario, load_dir};

use super::run::{PreemptionArg, RunArgs, options, scenarios_dir, select};
use super::{CliError, GlobalArgs};

/// How `--demand A..B` is spaced, as a flag value.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum SpacingArg {
    /// Equal ratios between neighbouring points.
    #[default]
    Geometric,
    /// Equal steps between neighbouring points.
    Linear,
}

/// Flags of `pagekv sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// The scenario: its number (as in scenarios/) or a scenario file.
    #[arg(long, value_name = "ID|FILE")]
    pub scenario: String,
    /// Demand % values: a range `20..400` (with --points) or a list `20,50,80,100,150`.
    #[arg(long, value_name = "A..B|LIST", allow_hyphen_values = true)]
    pub demand: String,
    /// Points of a range (default 12).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub points: Option<u32>,
    /// How the points of a range are spaced.
    #[arg(long, value_enum, default_value_t = SpacingArg::Geometric)]
    pub spacing: SpacingArg,
    /// Scale preset: ci, default, long or full; the scenario is scaled once with it.
    #[arg(long, default_value = "default", value_name = "PRESET")]
    pub scale: String,
    /// Directory of scenario files and models.toml.
    #[arg(long, value_name = "DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// Store the KV cache in this format instead of the file's `kv_dtype`.
    #[arg(long, value_name = "FORMAT")]
    pub kv_dtype: Option<String>,
    /// How a running request is preempted when the pool runs dry.
    #[arg(long, value_enum, default_value_t = PreemptionArg::Recompute)]
    pub preemption: PreemptionArg,
    /// Write every point here (JSON, rewritten atomically after every point).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write a self-contained HTML page charting the sweep.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Print only the table and the knee lines.
    #[arg(long)]
    pub quiet: bool,
}

/// One line per finished point on stderr.
struct Lines;

impl SuiteObserver for Lines {
    fn scenario_started(&mut self, s: &ScaledScenario, index: usize, total: usize) {
        eprintln!(
            "[{}/{total}] {:.1}% demand: {} blocks",
            index + 1,
            s.demand_pct(),
            s.num_blocks()
        );
    }

    fn scenario_finished(&mut self, r: &ScenarioResult) {
        match &r.measured {
            Some(m) => eprintln!(
                "      peak use {:.1}%, {:.2} req/s, {} preemptions, {}",
                m.peak_use_pct, m.requests_per_s, m.preemptions, r.verdict
            ),
            None => eprintln!("      {}", r.error.as_deref().unwrap_or("not run")),
        }
    }
}

impl SweepArgs {
    /// The `run` flags that select and configure the scenario.
    fn run_args(&self) -> Result<RunArgs, CliError> {
        if self.scale == "auto" {
            return Err(CliError::input(
                "--scale auto is not for sweep: every point must run the same scale; use a \
                 preset (ci, default, long or full)",
            ));
        }
        let mut args = RunArgs {
            scenarios_dir: self.scenarios_dir.clone(),
            scale: Some(self.scale.clone()),
            preemption: self.preemption,
            kv_dtype: self.kv_dtype.clone(),
            out: self.out.clone(),
            ..RunArgs::default()
        };
        match self.scenario.trim().parse::<u32>() {
            Ok(id) => {
                let dir = scenarios_dir(self.scenarios_dir.as_deref());
                let all = load_dir(&dir).map_err(|e| CliError::input(e.to_string()))?;
                if !all.iter().any(|s| s.id == id) {
                    let ids: Vec<String> = all.iter().map(|s| s.id.to_string()).collect();
                    return Err(CliError::input(format!(
                        "--scenario {id}: there is no scenario {id} in {} (have {})",
                        dir.display(),
                        ids.join(", ")
                    )));
                }
                args.only = Some(id.to_string());
            }
            Err(_) => {
                let path = PathBuf::from(&self.scenario);
                if !path.is_file() {
                    return Err(CliError::input(format!(
                        "--scenario '{}' is neither a scenario number nor a file",
                        self.scenario
                    )));
                }
                args.scenario = vec![path];
            }
        }
        Ok(args)
    }
}

/// Validates everything, runs the sweep, prints the table and writes the files.
pub fn run(global: &GlobalArgs, args: &SweepArgs) -> Result<(), CliError> {
    let spacing = match args.spacing {
        SpacingArg::Geometric => Spacing::Geometric,
        SpacingArg::Linear => Spacing::Linear,
    };
    let plan = DemandPlan::parse(&args.demand, args.points, spacing).map_err(|e| {
        let value = match e.flag() {
            "--points" => args.points.map_or(String::new(), |n| format!(" {n}")),
            _ => format!(" '{}'", args.demand),
        };
        CliError::input(format!("{}{value}: {e}", e.flag()))
    })?;
    let run_args = args.run_args()?;
    let options = options(&run_args)?;
    let scenario = select(&run_args)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::input("--scenario selected nothing"))?;
    for (flag, path) in [("--out", &args.out), ("--html", &args.html)] {
        if let Some(path) = path {
            pagekv::report::file::check_destination(path)
                .map_err(|e| CliError::input(format!("{flag} {e}")))?;
        }
    }
    let ctx = global.open()?;
    if !args.quiet {
        eprintln!(
            "pagekv sweep: scenario {:02} at preset `{}`, {}, on {}",
            scenario.id,
            options.preset.name,
            plan.describe(),
            ctx.describe()
        );
    }
    let mut quiet = pagekv::report::suite::Quiet;
    let mut lines = Lines;
    let observer: &mut dyn SuiteObserver = if args.quiet { &mut quiet } else { &mut lines };
    let sweep = run_sweep(&ctx, &scenario, &plan, &options, observer)
        .map_err(|e| CliError::input(e.to_string()))?;
    println!("{}\n", sweep_table::header(&sweep));
    println!("{}", sweep_table::table(&sweep));
    for line in sweep_table::notes(&sweep) {
        println!("{line}");
    }
    if let Some(out) = &args.out {
        println!("sweep written to {}", out.display());
    }
    if let Some(path) = &args.html {
        super::report::write_html(path, &sweep_html(&sweep), "--html")?;
        println!("report written to {}", path.display());
    }
    let broken: Vec<String> = sweep
        .points
        .iter()
        .filter(|p| p.is_broken())
        .map(|p| format!("{:.1}%", p.demand_pct_planned))
        .collect();
    if !broken.is_empty() {
        return Err(CliError::failed(format!(
            "the point(s) at {} demand lost, rejected or miscomputed requests or stopped with \
             an error",
            broken.join(", ")
        )));
    }
    let refused: Vec<String> = sweep
        .points
        .iter()
        .filter(|p| p.result.refused)
        .map(|p| format!("{:.1}%", p.demand_pct_planned))
        .collect();
    if !refused.is_empty() {
        return Err(CliError::input(format!(
            "the point(s) at {} demand were refused by this adapter's limits; use a smaller \
             --scale",
            refused.join(", ")
        )));
    }
    Ok(())
}
