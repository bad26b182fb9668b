//! `pagekv run`: the 11 scenarios (or a selection) measured on one adapter, printed beside the
//! CUDA reference, optionally written to a results file.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use pagekv::KvFormat;
use pagekv::engine::RunConfig;
use pagekv::engine::alerts::AlertRules;
use pagekv::engine::request::PreemptionMode;
use pagekv::gpu::{GpuContext, backend_name};
use pagekv::report::suite::{SuiteOptions, run_suite};
use pagekv::report::{ResultsFile, ScenarioResult, table};
use pagekv::scenario::{
    Budget, LoadedScenario, ModelPresets, load_dir, load_dir_with, load_scenario,
};

use std::io::IsTerminal;

use super::auto_scale::{self, Scaling};
use super::dashboard::Dashboard;
use super::metrics_server::{self, MetricsServer};
pub(super) use super::run_display::Bars;
use super::run_display::{Display, Observers};
use super::{CliError, GlobalArgs, comma_list};
use pagekv::report::live_metrics::LiveMetrics;

/// Preemption mode as a flag value.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum PreemptionArg {
    /// Free the blocks and prefill again later.
    #[default]
    Recompute,
    /// Copy the blocks to host memory and back.
    Swap,
}

/// A named set of scenario files under the scenarios directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ScenarioSet {
    /// The report's 11 stress scenarios (`NN-slug.toml` in the directory itself).
    #[default]
    Report,
    /// The report's production configurations A-D (`production/`).
    Production,
}

impl ScenarioSet {
    /// Loads the set from the scenarios directory `dir`; every set uses `dir/models.toml`.
    pub fn load(self, dir: &Path) -> Result<Vec<LoadedScenario>, CliError> {
        let input = |e: pagekv::scenario::ScenarioError| CliError::input(e.to_string());
        match self {
            ScenarioSet::Report => load_dir(dir).map_err(input),
            ScenarioSet::Production => {
                let presets = ModelPresets::load(dir.join("models.toml")).map_err(input)?;
                load_dir_with(dir.join("production"), &presets).map_err(input)
            }
        }
    }
}

/// Flags of `pagekv run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Which scenario set to run: `report` (the 11 stress scenarios) or `production` (the
    /// report's recommended configurations A-D, scenarios/production/).
    #[arg(long, value_enum, value_name = "SET", conflicts_with_all = ["only", "scenario"])]
    pub set: Option<ScenarioSet>,
    /// Run only these scenario numbers, e.g. `3,5`.
    #[arg(long, value_name = "IDS", conflicts_with = "scenario")]
    pub only: Option<String>,
    /// Run these scenario files instead of the directory (model presets come from a
    /// models.toml beside each file, else from the scenarios directory).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub scenario: Vec<PathBuf>,
    /// Directory of scenario files and models.toml.
    #[arg(long, value_name = "DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// Scale: auto (the largest scales whose predicted time fits --time on this adapter), or
    /// a fixed preset: ci, default, long or full. Without it: auto on GPUs, `default` on CPU
    /// adapters.
    #[arg(long, value_name = "PRESET")]
    pub scale: Option<String>,
    /// Time budget of an auto-scaled run, calibration included, e.g. 60s, 5m or 1h
    /// (implies --scale auto; default 5m).
    #[arg(long, value_name = "DURATION")]
    pub time: Option<String>,
    /// Full-size KV budget before scaling: a size in GiB, or `device` for the memory the
    /// memory probe finds usable on the adapter (default: each scenario's reference card, 24).
    #[arg(long, value_name = "GIB|device", allow_negative_numbers = true)]
    pub budget: Option<Budget>,
    /// How a running request is preempted when the pool runs dry.
    #[arg(long, value_enum, default_value_t = PreemptionArg::Recompute)]
    pub preemption: PreemptionArg,
    /// Tokens one engine step may compute (prefill chunks plus decodes).
    #[arg(long, default_value_t = RunConfig::default().max_step_tokens, value_name = "N")]
    pub max_step_tokens: u32,
    /// Most requests holding cache blocks at once.
    #[arg(long, default_value_t = RunConfig::default().max_running, value_name = "N")]
    pub max_running: u32,
    /// Write the results here (JSON, rewritten atomically after every scenario).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Run the suite on every adapter the filters allow, one after another, writing one
    /// results file each and comparing them at the end.
    #[arg(
        long,
        conflicts_with_all = ["out", "html", "metrics_listen", "metrics_file"]
    )]
    pub all_adapters: bool,
    /// Where --all-adapters writes its results files
    /// (`results-<adapter>-<backend>.json`).
    #[arg(long, value_name = "DIR", requires = "all_adapters")]
    pub out_dir: Option<PathBuf>,
    /// Store every scenario's KV cache in this format instead of its file's `kv_dtype`:
    /// f32, f16, int8, int4, fp8-e4m3 or fp8-e5m2.
    #[arg(long, value_name = "FORMAT")]
    pub kv_dtype: Option<String>,
    /// Run every scenario with sliding-window attention over this many newest keys (full
    /// size; scaled like every token count), instead of its file's `sliding_window`.
    #[arg(long, value_name = "TOKENS")]
    pub window: Option<u32>,
    /// Alert thresholds (TOML) instead of the reference report's; see docs/metrics.md.
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts (e.g.
    /// 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Allow --metrics-listen on an address other machines can reach.
    #[arg(long)]
    pub metrics_allow_remote: bool,
    /// Write the same metrics to FILE (atomically, every second), for node-exporter's
    /// textfile collector.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Print only the final table: no dashboard, progress bars or per-scenario lines.
    #[arg(long)]
    pub quiet: bool,
    /// Also write a self-contained HTML report with charts of this run.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl Default for RunArgs {
    /// The main job: every report scenario, auto-scaled on GPUs and at the `default` preset
    /// on CPU adapters.
    fn default() -> Self {
        Self {
            set: None,
            only: None,
            scenario: Vec::new(),
            scenarios_dir: None,
            scale: None,
            time: None,
            budget: None,
            preemption: PreemptionArg::Recompute,
            max_step_tokens: RunConfig::default().max_step_tokens,
            max_running: RunConfig::default().max_running,
            out: None,
            all_adapters: false,
            out_dir: None,
            kv_dtype: None,
            window: None,
            alerts: None,
            metrics_listen: None,
            metrics_allow_remote: false,
            metrics_file: None,
            quiet: false,
            html: None,
        }
    }
}

/// The scenarios directory: `--scenarios-dir`, else `./scenarios`, else the one this binary
/// was built from.
pub fn scenarios_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    let local = PathBuf::from("scenarios");
    if local.join("models.toml").is_file() {
        local
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
    }
}

/// Loads what `--only` / `--scenario` / `--scenarios-dir` select, in the `--kv-dtype` format
/// and with the `--window` when given.
pub fn select(args: &RunArgs) -> Result<Vec<LoadedScenario>, CliError> {
    let format = match &args.kv_dtype {
        None => None,
        Some(name) => Some(KvFormat::parse(&name.to_ascii_lowercase()).ok_or_else(|| {
            CliError::input(format!(
                "--kv-dtype '{name}' is not a KV format; use one of {}",
                KvFormat::names()
            ))
        })?),
    };
    let mut selected = select_files(args)?;
    for s in &mut selected {
        if let Some(format) = format {
            s.scenario.cache.kv_dtype = format;
        }
        if let Some(window) = args.window {
            s.set_sliding_window(Some(window))
                .map_err(|problem| CliError::input(format!("--window {problem}")))?;
        }
    }
    Ok(selected)
}

fn select_files(args: &RunArgs) -> Result<Vec<LoadedScenario>, CliError> {
    let dir = scenarios_dir(args.scenarios_dir.as_deref());
    let input = |e: pagekv::scenario::ScenarioError| CliError::input(e.to_string());
    if !args.scenario.is_empty() {
        let mut out = Vec::new();
        for path in &args.scenario {
            let beside = path.parent().map(|p| p.join("models.toml"));
            let models = match beside {
                Some(m) if m.is_file() => m,
                _ => dir.join("models.toml"),
            };
            let presets = ModelPresets::load(&models).map_err(input)?;
            out.push(load_scenario(path, &presets).map_err(input)?);
        }
        return Ok(out);
    }
    let all = args.set.unwrap_or_default().load(&dir)?;
    let Some(only) = &args.only else {
        return Ok(all);
    };
    let mut out = Vec::new();
    for item in comma_list("--only", only)? {
        let id: u32 = item.parse().map_err(|_| {
            CliError::input(format!(
                "--only '{only}': '{item}' is not a scenario number"
            ))
        })?;
        let found = all.iter().find(|s| s.id == id).ok_or_else(|| {
            let ids: Vec<String> = all.iter().map(|s| s.id.to_string()).collect();
            CliError::input(format!(
                "--only '{only}': there is no scenario {id} in {} (have {})",
                dir.display(),
                ids.join(", ")
            ))
        })?;
        out.push(found.clone());
    }
    Ok(out)
}

/// Validates the flags into suite options (a device-scaled run gets its scales once the
/// adapter is open: see [`super::auto_scale`]).
pub fn options(args: &RunArgs) -> Result<SuiteOptions, CliError> {
    let preset = match auto_scale::scaling(args)? {
        Scaling::Preset(preset) => preset,
        Scaling::Auto { .. } | Scaling::AdapterDefault { .. } => auto_scale::placeholder(),
    };
    // `device` is resolved per adapter, once it is open (see `with_device_budget`).
    let full_budget_bytes = match args.budget {
        None | Some(Budget::Device) => None,
        Some(Budget::Gib(gib)) => Some(Budget::gib_bytes(gib).ok_or_else(|| {
            CliError::input(format!(
                "--budget {gib} is not a size in GiB; give a positive number like 24 or 80, \
                 or `device`"
            ))
        })?),
    };
    for (flag, value) in [
        ("--max-step-tokens", args.max_step_tokens),
        ("--max-running", args.max_running),
    ] {
        if value == 0 {
            return Err(CliError::input(format!("{flag} must be at least 1")));
        }
    }
    let alerts = match &args.alerts {
        None => AlertRules::default(),
        Some(path) => {
            AlertRules::load(path).map_err(|e| CliError::input(format!("--alerts {e}")))?
        }
    };
    Ok(SuiteOptions {
        alerts,
        alerts_file: args.alerts.as_ref().map(|p| p.display().to_string()),
        preset,
        full_budget_bytes,
        budget_probe: None,
        config: RunConfig {
            max_step_tokens: args.max_step_tokens,
            max_running: args.max_running,
            preemption: match args.preemption {
                PreemptionArg::Recompute => PreemptionMode::Recompute,
                PreemptionArg::Swap => PreemptionMode::Swap,
            },
            ..RunConfig::default()
        },
        out: args.out.clone(),
        auto: None,
    })
}

/// With `--budget device`, probes `ctx` (default cap and step) and makes its usable bytes
/// the full-size budget; otherwise returns `options` as they are.
pub(super) fn with_device_budget(
    ctx: &GpuContext,
    args: &RunArgs,
    mut options: SuiteOptions,
) -> Result<SuiteOptions, CliError> {
    if args.budget != Some(Budget::Device) {
        return Ok(options);
    }
    if !args.quiet {
        eprintln!("probing the usable memory of {} ...", ctx.describe());
    }
    let plan = super::probe::plan(ctx, None, None)?;
    let found = super::probe::probe(ctx, &plan)?;
    if found.usable_bytes == 0 {
        return Err(CliError::input(format!(
            "--budget device: the memory probe could not allocate anything on {}",
            ctx.describe()
        )));
    }
    if !args.quiet {
        eprintln!("budget: {}", super::probe::summary(&found));
    }
    options.full_budget_bytes = Some(found.usable_bytes);
    options.budget_probe = Some(found);
    Ok(options)
}

/// Runs the selection and prints the table.
pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<(), CliError> {
    let options = options(args)?;
    let scaling = auto_scale::scaling(args)?;
    let scenarios = select(args)?;
    if args.all_adapters {
        return super::run_all::run(global, args, &options, &scaling, &scenarios);
    }
    let listen = args
        .metrics_listen
        .as_deref()
        .map(|text| metrics_server::parse_listen(text, args.metrics_allow_remote))
        .transpose()?;
    for (flag, path) in [
        ("--out", &args.out),
        ("--html", &args.html),
        ("--metrics-file", &args.metrics_file),
    ] {
        if let Some(path) = path {
            pagekv::report::file::check_destination(path)
                .map_err(|e| CliError::input(format!("{flag} {e}")))?;
        }
    }
    let ctx = global.open()?;
    let mut options = with_device_budget(&ctx, args, options)?;
    let live = (listen.is_some() || args.metrics_file.is_some()).then(|| {
        let adapter = ctx.report();
        LiveMetrics::new(
            &adapter.name,
            backend_name(adapter.backend),
            options.config.preemption,
            args.metrics_file.clone(),
        )
    });
    // Bound before any work, so a port in use stops the run with nothing measured.
    let server = match (listen, &live) {
        (Some(addr), Some(live)) => Some(MetricsServer::start(addr, live.registry())?),
        _ => None,
    };
    let started = std::time::Instant::now();
    let scale_note = auto_scale::resolve(&ctx, &scenarios, &mut options, &scaling, args.quiet)?;
    if !args.quiet {
        eprintln!(
            "pagekv run: {} scenarios at preset `{}` on {}{scale_note}",
            scenarios.len(),
            options.preset.name,
            ctx.describe()
        );
    }
    if let Some(server) = &server {
        if !server.addr.ip().is_loopback() {
            eprintln!(
                "warning: serving metrics on {}, reachable from other machines",
                server.addr
            );
        }
        eprintln!("metrics: http://{}/metrics", server.addr);
    }
    let results = execute(&ctx, args, &options, &scenarios, live)?;
    drop(server);
    println!("{}", table::render(&results));
    if let Some(auto) = &options.auto {
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{}",
            auto_scale::timing_table(&results, auto.planning_s, wall)
        );
    }
    if let Some(out) = &args.out {
        println!("results written to {}", out.display());
    }
    if let Some(path) = &args.html {
        let html = pagekv::report::html::results_html(&[("this run".to_string(), &results)]);
        super::report::write_html(path, &html, "--html")?;
        println!("report written to {}", path.display());
    }
    outcome(&results)
}

/// Runs the suite on `ctx` with the display `--quiet` and the terminal call for, feeding
/// `metrics` when given.
pub(super) fn execute(
    ctx: &GpuContext,
    args: &RunArgs,
    options: &SuiteOptions,
    scenarios: &[LoadedScenario],
    metrics: Option<LiveMetrics>,
) -> Result<ResultsFile, CliError> {
    let display = if args.quiet {
        Display::Quiet
    } else if std::io::stdout().is_terminal() {
        Display::Dashboard(Dashboard::new(scenarios.len()))
    } else {
        Display::Lines(Bars::default())
    };
    let mut observers = Observers { display, metrics };
    let outcome = run_suite(ctx, scenarios, options, &mut observers);
    if let Display::Dashboard(d) = &observers.display {
        d.clear();
    }
    let results = outcome.map_err(|e| CliError::input(e.to_string()))?;
    if let Some(m) = &mut observers.metrics {
        m.finish();
        if let Some(e) = &m.file_error {
            eprintln!("warning: --metrics-file could not be written: {e}");
        }
    }
    Ok(results)
}

/// The run's exit status: 1 when a scenario lost, duplicated or miscomputed requests or
/// stopped with an error, 2 when the adapter's limits refused one, else success.
pub(super) fn outcome(results: &ResultsFile) -> Result<(), CliError> {
    let ids = |keep: &dyn Fn(&ScenarioResult) -> bool| -> Vec<String> {
        results
            .scenarios
            .iter()
            .filter(|s| keep(s))
            .map(|s| format!("{:02}", s.id))
            .collect()
    };
    let broken = ids(&|s| {
        (s.error.is_some() && !s.refused)
            || s.measured.as_ref().is_some_and(|m| !m.problems.is_empty())
    });
    let refused = ids(&|s| s.refused);
    if !broken.is_empty() {
        return Err(CliError::failed(format!(
            "scenario(s) {} lost, duplicated or miscomputed requests or stopped with an error",
            broken.join(", ")
        )));
    }
    if !refused.is_empty() {
        return Err(CliError::input(format!(
            "scenario(s) {} were refused by this adapter's limits (reasons in the table); \
             use a smaller --scale or --budget",
            refused.join(", ")
        )));
    }
    Ok(())
}
