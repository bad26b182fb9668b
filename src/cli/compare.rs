//! `pagekv compare A.json B.json`: two results files side by side with B / A ratios.

use std::path::PathBuf;

use clap::Args;
use pagekv::report::compare::{compare_table, describe, incompatibility};
use pagekv::report::file;

use super::CliError;

/// Flags of `pagekv compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline results file (A).
    pub a: PathBuf,
    /// The results file compared with it (B).
    pub b: PathBuf,
    /// Compare even when the files were made at different presets or budgets.
    #[arg(long)]
    pub force: bool,
}

/// Loads both files, refuses mismatched presets unless `--force`, prints the table.
pub fn run(args: &CompareArgs) -> Result<(), CliError> {
    let read = |p: &PathBuf| file::read(p).map_err(|e| CliError::input(e.to_string()));
    let (a, b) = (read(&args.a)?, read(&args.b)?);
    if let Some(why) = incompatibility(&a, &b) {
        if !args.force {
            return Err(CliError::input(format!(
                "{} and {} were made with {why}; pass --force to compare anyway",
                args.a.display(),
                args.b.display()
            )));
        }
        println!("warning (--force): {why}");
    }
    println!("{}", describe("A", &a));
    println!("{}", describe("B", &b));
    println!("{}", compare_table(&a, &b));
    Ok(())
}
