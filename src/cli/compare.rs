//! `pagekv compare A.json B.json`: two results files, or two bench reports, side by side with
//! B / A ratios.

use std::path::PathBuf;

use clap::Args;
use pagekv::report::bench_compare::{bench_compare_table, describe_bench};
use pagekv::report::compare::{compare_table, describe, incompatibility};
use pagekv::report::file::{self, AnyFile};

use super::CliError;

/// Flags of `pagekv compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline file (A): a results file (`run --out`) or a bench report
    /// (`bench --json`).
    pub a: PathBuf,
    /// The file compared with it (B), of the same kind.
    pub b: PathBuf,
    /// Compare results files even when they were made at different presets or budgets.
    #[arg(long)]
    pub force: bool,
}

/// Loads both files, refuses mismatched kinds, and mismatched settings unless `--force`,
/// then prints the table.
pub fn run(args: &CompareArgs) -> Result<(), CliError> {
    let read = |p: &PathBuf| file::read_any(p).map_err(|e| CliError::input(e.to_string()));
    let (a, b) = (read(&args.a)?, read(&args.b)?);
    let (why, lines, table) = match (&a, &b) {
        (AnyFile::Results(a), AnyFile::Results(b)) => (
            incompatibility(a, b),
            [describe("A", a), describe("B", b)],
            compare_table(a, b),
        ),
        (AnyFile::Bench(a), AnyFile::Bench(b)) => (
            None,
            [describe_bench("A", a), describe_bench("B", b)],
            bench_compare_table(a, b),
        ),
        (AnyFile::Sweep(_), AnyFile::Sweep(_)) => {
            return Err(CliError::input(format!(
                "{} and {} are demand sweeps, which compare does not read; chart each with \
                 `pagekv report FILE --html OUT`",
                args.a.display(),
                args.b.display()
            )));
        }
        _ => {
            let kind = AnyFile::kind;
            return Err(CliError::input(format!(
                "{} is {} and {} is {}; compare two files of the same kind",
                args.a.display(),
                kind(&a),
                args.b.display(),
                kind(&b)
            )));
        }
    };
    if let Some(why) = why {
        if !args.force {
            return Err(CliError::input(format!(
                "{} and {} were made with {why}; pass --force to compare anyway",
                args.a.display(),
                args.b.display()
            )));
        }
        println!("warning (--force): {why}");
    }
    for line in lines {
        println!("{line}");
    }
    println!("{table}");
    Ok(())
}
