//! `pagekv shaders`: the generated WGSL variants as files and as a portability report.
//!
//! `--emit` exists so someone chasing a vendor shader-compiler bug can feed the exact kernel
//! pagekv builds to their own tools; `--check` runs the same naga validation and SPIR-V / MSL /
//! HLSL / GLSL translation as the portability test, so Metal or DX12 breakage shows up on a
//! machine that has neither.

use super::CliError;
use clap::Args;
use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use pagekv::kernels::WgslModule;
use pagekv::kernels::portability::{self, TARGETS};
use std::path::PathBuf;

/// Flags of `pagekv shaders`. With none, `--list` is implied.
#[derive(Debug, Clone, Default, Args)]
pub struct ShadersArgs {
    /// Write every variant as DIR/<name>.wgsl: complete, standalone WGSL with all constants
    /// resolved (the directory is created if needed).
    #[arg(long, value_name = "DIR")]
    pub emit: Option<PathBuf>,
    /// Validate every variant with naga and translate it to SPIR-V, MSL, HLSL and GLSL;
    /// exit status 1 if any translation fails.
    #[arg(long)]
    pub check: bool,
    /// Print the name of every variant.
    #[arg(long)]
    pub list: bool,
}

/// Runs the requested actions in the order list, emit, check.
pub fn run(args: &ShadersArgs) -> Result<(), CliError> {
    let variants = pagekv::tool_kernels::all_modules();
    if args.list || (args.emit.is_none() && !args.check) {
        for v in &variants {
            println!("{}", v.name);
        }
    }
    if let Some(dir) = &args.emit {
        emit(dir, &variants)?;
    }
    if args.check {
        check(&variants)?;
    }
    Ok(())
}

fn emit(dir: &std::path::Path, variants: &[WgslModule]) -> Result<(), CliError> {
    let fail = |e: std::io::Error| {
        CliError::input(format!(
            "cannot write --emit directory {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    for v in variants {
        std::fs::write(dir.join(format!("{}.wgsl", v.name)), &v.source).map_err(fail)?;
    }
    println!(
        "wrote {} WGSL variants to {}",
        variants.len(),
        dir.display()
    );
    Ok(())
}

fn check(variants: &[WgslModule]) -> Result<(), CliError> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("variant")];
    header.extend(TARGETS.iter().map(Cell::new));
    table.set_header(header);
    let mut failures: Vec<String> = Vec::new();
    let mut not_applicable = 0;
    for v in variants {
        let name = v.name.clone();
        let report = match portability::check(v) {
            Ok(r) => r,
            Err(e) => {
                let mut row = vec![Cell::new(&name)];
                row.extend(TARGETS.iter().map(|_| Cell::new("invalid WGSL")));
                table.add_row(row);
                failures.push(e);
                continue;
            }
        };
        let mut row = vec![Cell::new(&name)];
        for target in TARGETS {
            let results: Vec<&Result<usize, String>> = report
                .targets
                .iter()
                .filter(|(t, _)| *t == target)
                .map(|(_, r)| r)
                .collect();
            let mut cell = Vec::new();
            for r in &results {
                match r {
                    Ok(_) => cell.push("ok"),
                    Err(e) if e.starts_with("not applicable") => {
                        not_applicable += 1;
                        cell.push("n/a")
                    }
                    Err(e) => {
                        failures.push(format!("{name} -> {target}: {e}"));
                        cell.push("error")
                    }
                }
            }
            cell.dedup();
            let mut text = cell.join(", ");
            if results.len() > 1 && cell.len() == 1 {
                text = format!("{text} ({} entry points)", results.len());
            }
            row.push(Cell::new(text));
        }
        table.add_row(row);
    }
    println!("{table}");
    if not_applicable > 0 {
        println!(
            "n/a: native-f16 variants have no GLSL form in wgpu's GL backend; GL runs the f16packed variant instead"
        );
    }
    for f in &failures {
        eprintln!("{f}");
    }
    if failures.is_empty() {
        println!(
            "{} variants valid and translated to {}",
            variants.len(),
            TARGETS.join(", ")
        );
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "{} shader check(s) failed across {} variants (details above)",
            failures.len(),
            variants.len()
        )))
    }
}
