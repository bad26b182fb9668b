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
/// With no subcommand, pagekv runs its main job, `pagekv run`: all 11 scenarios on the best
/// adapter (scaled to a 5-minute run on a GPU, the `default` preset on a CPU adapter), printed
/// beside the CUDA reference. The flags of `run` work without the subcommand too.
#[derive(Debug, Parser)]
#[command(name = "pagekv", version)]
pub struct Cli {
    /// Options every subcommand understands.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// `run`'s flags, for the main job with no subcommand (`pagekv --quiet` is
    /// `pagekv run --quiet`): `run` is what pagekv does by default, so its flags should not
    /// need the word.
    #[command(flatten, next_help_heading = "Options of `run`, the default command")]
    pub run: run::RunArgs,
    /// What to do; none runs the main job with [`Cli::run`]'s flags.
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
    /// Measure the kernels as shares of each case's roofline bound (the same run's read
    /// bandwidth and matmul rate), with long-context decode curves.
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
    let cli = match parse(std::env::args_os()) {
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

/// Parses the command line. `run`'s flags sit at the top level for the main job; given
/// before another subcommand they would be ignored silently, so that is refused, naming the
/// flag. (clap's `args_conflicts_with_subcommands` would refuse the global adapter flags too.)
fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    if let Some(name) = matches.subcommand_name() {
        let run_flags = run::RunArgs::augment_args(clap::Command::new("run"));
        let given = run_flags.get_arguments().find(|arg| {
            matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        });
        if let Some(arg) = given {
            let flag = arg.get_long().unwrap_or(arg.get_id().as_str());
            return Err(command.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--{flag} is a flag of `run`, not of `{name}`; give it after `run`, or with no subcommand"),
            ));
        }
    }
    Ok(cli)
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
        None => run::run(&cli.global, &cli.run),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        super::parse(std::iter::once("pagekv").chain(args.iter().copied()))
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_is_the_main_job_with_run_defaults() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        // `sweep` and `whatif` build on `RunArgs::default()`: it must be what clap gives.
        assert_eq!(
            format!("{:?}", cli.run),
            format!("{:?}", run::RunArgs::default())
        );
    }

    #[test]
    fn run_flags_work_without_the_subcommand() {
        let cli = parse(&["--quiet", "--only", "1,7", "--backend", "gl"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.run.quiet);
        assert_eq!(cli.run.only.as_deref(), Some("1,7"));
        assert_eq!(cli.global.backend.as_deref(), Some("gl"));
        match parse(&["run", "--quiet"]).unwrap().command {
            Some(Command::Run(args)) => assert!(args.quiet),
            other => panic!("`run --quiet` parsed as {other:?}"),
        }
        // Adapter selection stays global to every subcommand.
        let bench = parse(&["--backend", "vulkan", "bench", "--quick"]).unwrap();
        assert!(matches!(bench.command, Some(Command::Bench(_))));
        assert_eq!(bench.global.backend.as_deref(), Some("vulkan"));
    }

    #[test]
    fn run_flags_before_another_subcommand_are_refused() {
        let err = parse(&["--quiet", "bench"]).unwrap_err().to_string();
        assert!(
            err.contains("--quiet is a flag of `run`, not of `bench`"),
            "{err}"
        );
        let err = parse(&["--out", "r.json", "verify"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--out is a flag of `run`"), "{err}");
    }
}
