//! `pagekv scenarios`: the scenario files with their configuration and full-size demand.

use std::path::PathBuf;

use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use pagekv::gpu::human_bytes;

use super::CliError;
use super::run::{ScenarioSet, scenarios_dir};

/// Flags of `pagekv scenarios`.
#[derive(Debug, Clone, Default, Args)]
pub struct ScenariosArgs {
    /// Directory of scenario files and models.toml.
    #[arg(long, value_name = "DIR")]
    pub scenarios_dir: Option<PathBuf>,
    /// Which set to list: `report` (the 11 stress scenarios) or `production` (A-D).
    #[arg(long, value_enum, value_name = "SET", default_value_t = ScenarioSet::Report)]
    pub set: ScenarioSet,
}

/// Loads and lists every scenario.
pub fn run(args: &ScenariosArgs) -> Result<(), CliError> {
    let dir = scenarios_dir(args.scenarios_dir.as_deref());
    let scenarios = args.set.load(&dir)?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "#",
        "file",
        "model",
        "batch",
        "seq len",
        "concurrency",
        "gen len",
        "shared prefix",
        "block, dtype[, window]",
        "requests",
        "demand (full size)",
        "demand %",
        "reference util %",
    ]);
    for s in &scenarios {
        let c = &s.scenario;
        let file = s
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        table.add_row(vec![
            Cell::new(format!("{:02}", s.id)),
            Cell::new(file),
            Cell::new(&c.model),
            Cell::new(c.batch_size),
            Cell::new(c.sequence_length),
            Cell::new(c.concurrency),
            Cell::new(c.generation_length),
            Cell::new(c.shared_prefix_tokens),
            Cell::new(format!(
                "{}, {}{}",
                c.cache.block_size,
                c.cache.kv_dtype.name(),
                c.cache
                    .sliding_window
                    .map_or(String::new(), |w| format!(", window {w}"))
            )),
            Cell::new(c.requests()),
            Cell::new(human_bytes(s.demand_bytes())),
            Cell::new(format!("{:.1}", s.demand_pct())),
            Cell::new(format!("{:.1}", c.reference.utilization_pct)),
        ]);
    }
    for i in [3, 4, 5, 6, 7, 9, 10, 11, 12] {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!(
        "scenarios in {}{} (demand against each scenario's reference budget):",
        dir.display(),
        match args.set {
            ScenarioSet::Report => "",
            ScenarioSet::Production => "/production",
        }
    );
    println!("{table}");
    Ok(())
}
