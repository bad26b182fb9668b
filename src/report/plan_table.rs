//! The `pagekv plan` tables: the batch table per sequence length and the concurrency table,
//! each with the reference report's number and the ratio beside pagekv's, and where the
//! production configurations land.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::plan::{Fit, Plan};
use crate::gpu::human_bytes;
use crate::scenario::BYTES_PER_GB;

fn fit_cell(fit: Option<Fit>) -> String {
    fit.map_or("-".into(), |f| format!("{} ({:.1}%)", f.count, f.use_pct))
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("x{r:.2}"))
}

fn right_align(table: &mut Table, from: usize) {
    let columns = table.column_count();
    for i in from..columns {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn new_table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// What the plan is for, in one paragraph: model, format, block size, window, generation,
/// budget and the per-token and per-block bytes everything follows from.
pub fn header(plan: &Plan) -> String {
    let i = &plan.input;
    let g = &i.geometry;
    let window = i.window.map_or("full attention".to_string(), |w| {
        format!("sliding window {w}")
    });
    format!(
        "{} ({} layers, {} KV heads x {} dims), {} KV, blocks of {} tokens, {window}; \
         budget {:.1} GiB = {} blocks of {}; {} bytes per token (scales included)\n\
         a request holds whole blocks for its prompt plus {} generated tokens; batch = requests \
         resident at once; computed, not measured",
        g.name,
        g.layers,
        g.kv_heads,
        g.head_dim,
        i.format.name(),
        i.block_size,
        plan.budget_gib(),
        plan.pool_blocks,
        human_bytes(plan.block_bytes),
        plan.bytes_per_token,
        i.generation,
    )
}

/// Largest batch per sequence length under 60/80/100% of the budget, the report's safe max
/// and recommended batches beside the 100% and 60% ones, and the configurations on each row.
pub fn batch_table(plan: &Plan) -> Table {
    let mut table = new_table(vec![
        "seq len",
        "KV per request",
        "batch <=60%",
        "batch <=80%",
        "batch <=100%",
        "reference safe max",
        "100% / ref",
        "reference recommended",
        "60% / ref",
        "configs",
    ]);
    for row in &plan.batch {
        let (safe, rec) = row.reference.map_or(("-".into(), "-".into()), |(s, r)| {
            (s.to_string(), r.to_string())
        });
        let configs: Vec<String> = plan
            .markers
            .iter()
            .filter(|m| m.row == Some(row.seq_len))
            .map(|m| {
                let within = m
                    .within_pct
                    .map_or(">100%".to_string(), |t| format!("<={t}%"));
                format!("{} {within}", marker_letter(&m.input.label))
            })
            .collect();
        table.add_row(vec![
            Cell::new(row.seq_len),
            Cell::new(human_bytes(row.bytes_per_request)),
            Cell::new(fit_cell(row.fit(60))),
            Cell::new(fit_cell(row.fit(80))),
            Cell::new(fit_cell(row.fit(100))),
            Cell::new(safe),
            Cell::new(ratio(row.safe_ratio())),
            Cell::new(rec),
            Cell::new(ratio(row.recommended_ratio())),
            Cell::new(configs.join(", ")),
        ]);
    }
    right_align(&mut table, 0);
    table
}

/// Largest concurrency (streams of `batch` requests) per batch size at the plan's concurrency
/// sequence length, the report's beside it, and what the report's concurrency would hold.
pub fn concurrency_table(plan: &Plan) -> Table {
    let mut table = new_table(vec![
        "batch",
        "streams <=60%",
        "streams <=80%",
        "streams <=100%",
        "reference",
        "100% / ref",
        "reference's KV (% of budget)",
    ]);
    for row in &plan.concurrency {
        let held = row.reference_bytes as f64;
        table.add_row(vec![
            Cell::new(row.batch),
            Cell::new(fit_cell(row.fit(60))),
            Cell::new(fit_cell(row.fit(80))),
            Cell::new(fit_cell(row.fit(100))),
            Cell::new(row.reference),
            Cell::new(ratio(row.ratio())),
            Cell::new(format!(
                "{:.1} GiB ({:.0}%)",
                held / BYTES_PER_GB as f64,
                100.0 * held / plan.input.budget_bytes as f64
            )),
        ]);
    }
    right_align(&mut table, 0);
    table
}

/// The first word of a configuration label (`A` of `A Low Latency`).
fn marker_letter(label: &str) -> String {
    label.split_whitespace().next().unwrap_or(label).to_string()
}

/// One line per placed configuration: its row, its share of this budget and the threshold it
/// stays within.
pub fn marker_notes(plan: &Plan) -> Vec<String> {
    let budget = plan.budget_gib();
    plan.markers
        .iter()
        .map(|m| {
            let i = &m.input;
            let row = m.row.map_or_else(
                || format!("no row at {} tokens", i.seq_len),
                |r| format!("row {r}"),
            );
            let within = m.within_pct.map_or_else(
                || "past the budget".to_string(),
                |t| format!("fits under {t}%"),
            );
            let own = match (i.budget_bytes, m.own_budget_use_pct) {
                (Some(b), Some(pct)) if b != plan.input.budget_bytes => format!(
                    "; the report sizes it for {:.0} GiB: {pct:.1}% of that",
                    b as f64 / BYTES_PER_GB as f64
                ),
                _ => String::new(),
            };
            format!(
                "{}: {} x {} = {} requests of {} + {} tokens -> {row}: {:.1}% of {budget:.1} GiB, \
                 {within}{own}",
                i.label,
                i.batch,
                i.concurrency,
                i.batch as u64 * i.concurrency as u64,
                i.seq_len,
                i.generation,
                m.use_pct,
            )
        })
        .collect()
}
