//! `pagekv report FILE [FILE] --html OUT`: a self-contained HTML report with charts of a
//! run's results, a bench report or a demand sweep; two results files or two bench reports
//! are overlaid.

use std::path::{Path, PathBuf};

use clap::Args;
use pagekv::report::file::{self, AnyFile, write_atomic};
use pagekv::report::html::{bench_html, results_html};
use pagekv::report::sweep_html::sweep_html;

use super::CliError;

/// Flags of `pagekv report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A results file (`run --out`), a bench report (`bench --json`) or a demand sweep
    /// (`sweep --out`); a second results file or bench report is overlaid on the first.
    #[arg(num_args = 1..=2, required = true)]
    pub files: Vec<PathBuf>,
    /// Where to write the HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
}

/// Writes `html` to `path` atomically, refusing a destination that cannot be written.
pub fn write_html(path: &Path, html: &str, flag: &str) -> Result<(), CliError> {
    file::check_destination(path).map_err(|e| CliError::input(format!("{flag} {e}")))?;
    write_atomic(path, html.as_bytes())
        .map_err(|e| CliError::input(format!("{flag} {}: cannot write it ({e})", path.display())))
}

/// Reads the files, renders the report and writes it.
pub fn run(args: &ReportArgs) -> Result<(), CliError> {
    file::check_destination(&args.html).map_err(|e| CliError::input(format!("--html {e}")))?;
    let label = |p: &PathBuf| {
        p.file_stem().map_or_else(
            || p.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    let mut results = Vec::new();
    let mut benches = Vec::new();
    let mut sweeps = Vec::new();
    for path in &args.files {
        match file::read_any(path).map_err(|e| CliError::input(e.to_string()))? {
            AnyFile::Results(r) => results.push((label(path), r)),
            AnyFile::Bench(b) => benches.push((label(path), b)),
            AnyFile::Sweep(s) => sweeps.push(s),
        }
    }
    if !sweeps.is_empty() {
        let [sweep] = &sweeps[..] else {
            return Err(CliError::input(
                "report charts one demand sweep at a time; give a single sweep file",
            ));
        };
        if !results.is_empty() || !benches.is_empty() {
            return Err(CliError::input(
                "report got a demand sweep and another kind of file; give files of the same kind",
            ));
        }
        write_html(&args.html, &sweep_html(sweep), "--html")?;
        println!("report written to {}", args.html.display());
        return Ok(());
    }
    let html = match (results.is_empty(), benches.is_empty()) {
        (false, true) => {
            let runs: Vec<_> = results
                .iter()
                .map(|(l, r)| (l.clone(), r.as_ref()))
                .collect();
            results_html(&runs)
        }
        (true, false) => {
            let runs: Vec<_> = benches
                .iter()
                .map(|(l, b)| (l.clone(), b.as_ref()))
                .collect();
            bench_html(&runs)
        }
        _ => {
            return Err(CliError::input(
                "report got a run's results and a bench report; give files of the same kind",
            ));
        }
    };
    write_html(&args.html, &html, "--html")?;
    println!("report written to {}", args.html.display());
    Ok(())
}
