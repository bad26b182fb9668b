//! The `pagekv` command line: clap definitions, dispatch and the one error type every
//! subcommand returns.
//!
//! Adding a subcommand means one variant in [`Command`] and one module with an `Args` struct
//! and a `run` function; [`dispatch`] maps the variant to the handler. Handlers return
//! [`CliError`], so every failure ends in one sentence on stderr and a fixed exit status:
//! 2 for bad input (flags, files, no usable adapter), 1 for work that ran and failed (a
//! verification past tolerance, a shader that does not translate).

mod algorithm;
mod auto_scale;
mod bench;
mod compare;
mod dashboard;
mod devices;
mod formats;
mod metrics_server;
mod plan;
mod probe;
mod report;
mod run;
mod run_all;
mod run_display;
mod scenarios;
mod shaders;
mod sweep;
mod verify;
mod verify_dump;
mod whatif;

use clap::{Args, Parser, Subcommand};
use pagekv::gpu::{AdapterFilter, GpuContext, GpuError};
use std::process::ExitCode;

/// Vendor-neutral paged KV cache and paged attention in WGSL on wgpu.
///
/// With no subcommand, pagekv runs its main job: `pagekv run`, all 11 scenarios at the
/// `default` preset on the best adapter, printed beside the CUDA reference.
#[derive(Debug, Parser)]
#[command(name = "pagekv", version)]
pub struct Cli {
    /// Options every subcommand understands.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do; none runs [`default_main`].
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Adapter selection shared by every subcommand that touches a GPU.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Use only adapters of this backend: vulkan, metal, dx12 or gl.
    #[arg(
        long,
        global = true,
        value_name = "BACKEND",
        help_heading = "Adapter selection"
    )]
    pub backend: Option<String>,
    /// Use only adapters whose name contains this text (case-insensitive).
    #[arg(
        long,
        global = true,
        value_name = "SUBSTRING",
        help_heading = "Adapter selection"
    )]
    pub adapter: Option<String>,
}

impl GlobalArgs {
    /// Turns the flags into the library's filter, rejecting unknown backend names here so the
    /// user hears about the typo rather than about "no matching adapter".
    pub fn filter(&self) -> Result<AdapterFilter, CliError> {
        let backend = match &self.backend {
            None => None,
            Some(text) => Some(AdapterFilter::parse_backend(text).ok_or_else(|| {
                CliError::input(format!(
                    "--backend '{text}' is not a backend; use vulkan, metal, dx12 or gl"
                ))
            })?),
        };
        Ok(AdapterFilter {
            backend,
            name: self.adapter.clone(),
        })
    }

    /// The filter as the user typed it, for "no adapter matches" messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = &self.backend {
            parts.push(format!("--backend {b}"));
        }
        if let Some(a) = &self.adapter {
            parts.push(format!("--adapter '{a}'"));
        }
        if parts.is_empty() {
            "any adapter".into()
        } else {
            parts.join(" ")
        }
    }

    /// Opens the best adapter matching the flags, as every GPU subcommand does.
    pub fn open(&self) -> Result<GpuContext, CliError> {
        let filter = self.filter()?;
        GpuContext::new(&filter).map_err(|e| self.gpu_error(e))
    }

    /// Maps a GPU error to a CLI error, naming the flags when no adapter matched them.
    pub fn gpu_error(&self, e: GpuError) -> CliError {
        match e {
            GpuError::NoMatchingAdapter { seen, .. } => CliError::input(format!(
                "no adapter matches {}; adapters present: {seen}",
                self.describe()
            )),
            other => other.into(),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stress scenarios on one adapter and print them beside the CUDA reference.
    Run(run::RunArgs),
    /// Print two or more results files (or bench reports) side by side with ratios to the
    /// first.
    Compare(compare::CompareArgs),
    /// List the scenario files with their configuration and full-size demand.
    Scenarios(scenarios::ScenariosArgs),
    /// Measure the kernels against the same adapter's copy and matmul rooflines.
    Bench(bench::BenchArgs),
    /// List every GPU adapter with the limits and features pagekv sizes its work from, or
    /// (--probe-memory) measure how much memory each can really allocate.
    Devices(devices::DevicesArgs),
    /// Run prefill and decode on the GPU and compare with the f64 CPU reference.
    Verify(verify::VerifyArgs),
    /// Emit, list or cross-compile every generated WGSL shader variant.
    Shaders(shaders::ShadersArgs),
    /// Bytes per token and capacity of every KV format, the report's quantization claims
    /// checked, and (--study) the scale-layout study.
    Formats(formats::FormatsArgs),
    /// Write a self-contained HTML report with charts of a results file, a bench report
    /// (two files of the same kind are overlaid) or a demand sweep.
    Report(report::ReportArgs),
    /// Rerun the report's failing scenarios with each remedy it recommends (quantized KV, a
    /// sliding window, both) and check its remedy claims.
    Whatif(whatif::WhatifArgs),
    /// Capacity planning: the largest batch per sequence length and the largest concurrency
    /// per batch under 60/80/100% of a KV budget, beside the report's tables; --validate runs
    /// one row's boundary on the GPU.
    Plan(plan::PlanArgs),
    /// Run one scenario at a series of demand % values (the same requests, a smaller pool
    /// each time) and print throughput against utilization beside the report's bands.
    Sweep(sweep::SweepArgs),
}

/// Why a command did not succeed. The message is one sentence naming the flag or file at fault.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or files, or nothing to run on: exit status 2.
    Input(String),
    /// The work ran and failed (past tolerance, shader translation error): exit status 1.
    Failed(String),
}

impl CliError {
    /// A bad-input error (exit 2).
    pub fn input(message: impl Into<String>) -> Self {
        CliError::Input(message.into())
    }

    /// A failure of the work itself (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError::Failed(message.into())
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failed(_) => 1,
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            CliError::Input(m) | CliError::Failed(m) => m,
        }
    }
}

impl From<GpuError> for CliError {
    /// Missing or unmatched adapters and device limits are things the user changes (install a
    /// driver, fix a filter, pick a smaller shape): exit 2. A device that errors while running
    /// is a failure of the work: exit 1.
    fn from(e: GpuError) -> Self {
        match e {
            GpuError::NoAdapter
            | GpuError::NoMatchingAdapter { .. }
            | GpuError::Limit(_)
            | GpuError::MissingFeature { .. }
            | GpuError::OutOfMemory { .. }
            | GpuError::InvalidInput { .. } => CliError::Input(e.to_string()),
            GpuError::RequestDevice(_) | GpuError::Device(_) => CliError::Failed(e.to_string()),
        }
    }
}

/// Entry point of the binary: parse, dispatch, map errors to one line and an exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagekv: {}", e.message());
            ExitCode::from(e.exit_code())
        }
    }
}

/// Help and version go to stdout with status 0 as usual; every usage error is reduced to
/// clap's first line (which names the flag and the problem) so bad input is one sentence.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // "the following required arguments were not provided:" names them on the lines
            // after it, up to the usage.
            let named: Vec<&str> = if first.ends_with(':') {
                lines.take_while(|l| !l.starts_with("Usage:")).collect()
            } else {
                Vec::new()
            };
            let first = match named.is_empty() {
                true => first.to_string(),
                false => format!("{first} {}", named.join(", ")),
            };
            eprintln!("pagekv: {first} (see `pagekv --help`)");
            ExitCode::from(2)
        }
    }
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => default_main(&cli.global),
        Some(Command::Run(args)) => run::run(&cli.global, &args),
        Some(Command::Compare(args)) => compare::run(&args),
        Some(Command::Scenarios(args)) => scenarios::run(&args),
        Some(Command::Bench(args)) => bench::run(&cli.global, &args),
        Some(Command::Devices(args)) => devices::run(&cli.global, &args),
        Some(Command::Verify(args)) => verify::run(&cli.global, &args),
        Some(Command::Shaders(args)) => shaders::run(&args),
        Some(Command::Formats(args)) => formats::run(&args),
        Some(Command::Whatif(args)) => whatif::run(&cli.global, &args),
        Some(Command::Report(args)) => report::run(&args),
        Some(Command::Plan(args)) => plan::run(&cli.global, &args),
        Some(Command::Sweep(args)) => sweep::run(&cli.global, &args),
    }
}

/// What `cargo run --release` (no arguments) does: the project's main job, every scenario at
/// the `default` preset on the best adapter. Keep this the only place that decides it.
pub fn default_main(global: &GlobalArgs) -> Result<(), CliError> {
    run::run(global, &run::RunArgs::default())
}

/// Splits a comma list, naming `flag` when an item is empty.
pub fn comma_list<'a>(flag: &str, text: &'a str) -> Result<Vec<&'a str>, CliError> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.iter().any(|s| s.is_empty()) {
        return Err(CliError::input(format!(
            "{flag} '{text}' has an empty item; give a comma list like 1,17,4096"
        )));
    }
    Ok(items)
}
