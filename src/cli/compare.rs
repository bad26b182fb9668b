//! `pagekv compare A.json B.json [C.json ...]`: two or more results files, or bench reports,
//! side by side with each file's ratio to the first.

use std::path::{Path, PathBuf};

use clap::Args;
use pagekv::bench::BenchReport;
use pagekv::report::ResultsFile;
use pagekv::report::bench_compare::{
    bench_compare_table, describe_bench, doubt_note, long_context_compare_table,
};
use pagekv::report::compare::{MAX_FILES, compare_table, describe, incompatibility, label};
use pagekv::report::file::{self, AnyFile};

use super::CliError;

/// Flags of `pagekv compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The files: results files (`run --out`) or bench reports (`bench --json`), all of one
    /// kind. The first (A) is the baseline every ratio is taken against.
    #[arg(value_name = "FILE", num_args = 2.., required = true)]
    pub files: Vec<PathBuf>,
    /// Compare results files even when they were made at different presets or budgets.
    #[arg(long)]
    pub force: bool,
}

/// Loads the files, refuses mixed kinds, and settings that differ from A's unless `--force`,
/// then prints the table.
pub fn run(args: &CompareArgs) -> Result<(), CliError> {
    print_comparison(&args.files, args.force, "warning (--force)")
}

fn kind(f: &AnyFile) -> &'static str {
    f.kind()
}

/// Prints the N-way comparison of `paths`. Results files made at a preset or budget other
/// than A's are refused unless `force`, which prints the reason after `prefix` instead.
pub fn print_comparison(paths: &[PathBuf], force: bool, prefix: &str) -> Result<(), CliError> {
    if paths.len() < 2 || paths.len() > MAX_FILES {
        return Err(CliError::input(format!(
            "compare takes 2 to {MAX_FILES} files, not {}",
            paths.len()
        )));
    }
    let read = |p: &PathBuf| file::read_any(p).map_err(|e| CliError::input(e.to_string()));
    let files = paths.iter().map(read).collect::<Result<Vec<_>, _>>()?;
    let show = |p: &Path| p.display().to_string();
    if let Some((path, _)) = paths
        .iter()
        .zip(&files)
        .find(|(_, f)| matches!(f, AnyFile::Sweep(_)))
    {
        return Err(CliError::input(format!(
            "{} is a demand sweep, which compare does not read; chart it with \
             `pagekv report FILE --html OUT`",
            show(path)
        )));
    }
    for (path, f) in paths.iter().zip(&files).skip(1) {
        if std::mem::discriminant(f) != std::mem::discriminant(&files[0]) {
            return Err(CliError::input(format!(
                "{} is {} and {} is {}; compare files of the same kind",
                show(&paths[0]),
                kind(&files[0]),
                show(path),
                kind(f)
            )));
        }
    }
    let results: Vec<&ResultsFile> = files
        .iter()
        .filter_map(|f| match f {
            AnyFile::Results(r) => Some(r.as_ref()),
            AnyFile::Bench(_) | AnyFile::Sweep(_) => None,
        })
        .collect();
    let benches: Vec<&BenchReport> = files
        .iter()
        .filter_map(|f| match f {
            AnyFile::Bench(b) => Some(b.as_ref()),
            AnyFile::Results(_) | AnyFile::Sweep(_) => None,
        })
        .collect();
    if !results.is_empty() {
        for (path, r) in paths.iter().zip(&results).skip(1) {
            let Some(why) = incompatibility(results[0], r) else {
                continue;
            };
            if !force {
                return Err(CliError::input(format!(
                    "{} and {} were made with {why}; pass --force to compare anyway",
                    show(&paths[0]),
                    show(path)
                )));
            }
            println!("{prefix}: {}: {why}", show(path));
        }
        for (i, r) in results.iter().enumerate() {
            println!("{}", describe(&label(i), r));
        }
        println!("{}", compare_table(&results));
    } else {
        for (i, b) in benches.iter().enumerate() {
            println!("{}", describe_bench(&label(i), b));
        }
        println!("{}", bench_compare_table(&benches));
        if let Some(table) = long_context_compare_table(&benches) {
            println!(
                "long context: decode kernel time per KV position per layer at 4K and at each curve's longest context; longest / 4K from those two timed again in rounds, or from the sweep's points where a file has no such pair (sweep); B / A is A's time over B's (higher is faster in B)"
            );
            println!("{table}");
        }
        if let Some(note) = doubt_note(&benches) {
            println!("{note}");
        }
    }
    Ok(())
}
