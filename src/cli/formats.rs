//! `pagekv formats`: what each KV format costs and buys from the real geometry, the
//! reference report's quantization claims checked, and (with `--study`) the CPU study of the
//! scale layouts pagekv chose between.

use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use pagekv::report::formats::{
    SCENARIO3_TOKENS, STUDY_SHAPE, accuracy_claim, format_rows, memory_claims, study,
};
use pagekv::scenario::BYTES_PER_GB;

use super::CliError;

/// Flags of `pagekv formats`.
#[derive(Debug, Clone, Args)]
pub struct FormatsArgs {
    /// KV budget in GiB for the capacity columns (the reference's card: 24).
    #[arg(
        long,
        default_value_t = 24.0,
        value_name = "GIB",
        allow_negative_numbers = true
    )]
    pub budget: f64,
    /// Also run the scale-layout study on the CPU (a few seconds) and check the FP8
    /// accuracy claim against it.
    #[arg(long)]
    pub study: bool,
}

fn right(table: &mut Table, columns: std::ops::Range<usize>) {
    for i in columns {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Prints the tables.
pub fn run(args: &FormatsArgs) -> Result<(), CliError> {
    if !(args.budget.is_finite() && args.budget > 0.0 && args.budget < 1e6) {
        return Err(CliError::input(format!(
            "--budget {} is not a size in GiB; give a positive number like 24",
            args.budget
        )));
    }
    let budget = (args.budget * BYTES_PER_GB as f64) as u64;
    let rows = format_rows(budget);
    let f16 = rows[1].bytes_per_token;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "format",
        "bits/value",
        "scales",
        "0.5B bytes/token",
        "7B bytes/token",
        "vs f16",
        "scale share",
        &format!("7B tokens in {} GiB", args.budget),
        "scenario-3 requests at once",
    ]);
    for r in &rows {
        let f = r.format;
        let scales = match f.scale_group(128) {
            None => "-".to_string(),
            Some(128) => "f32 per row".into(),
            Some(g) => format!("f32 per {g} values"),
        };
        table.add_row(vec![
            Cell::new(f.name()),
            Cell::new(f.layout().value_bits),
            Cell::new(scales),
            Cell::new(r.bytes_per_token[0]),
            Cell::new(r.bytes_per_token[1]),
            Cell::new(format!(
                "{:.1}%",
                100.0 * r.bytes_per_token[1] as f64 / f16[1] as f64
            )),
            Cell::new(format!("{:.1}%", 100.0 * r.scale_share[1])),
            Cell::new(r.tokens_7b),
            Cell::new(r.scenario3_requests),
        ]);
    }
    right(&mut table, 3..9);
    println!(
        "KV formats: bytes per token from the real geometry (all layers, K and V, scales included; \
         blocks of 16 tokens); a scenario-3 request is Qwen2.5-0.5B with {SCENARIO3_TOKENS} tokens"
    );
    println!("{table}");

    let mut claims = memory_claims(&rows);
    let studied = args.study.then(study);
    if let Some(studied) = &studied {
        claims.push(accuracy_claim(studied));
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "the report claims",
        "pagekv finds",
        "verdict",
    ]);
    for c in &claims {
        table.add_row(vec![
            Cell::new(c.claim),
            Cell::new(&c.measured),
            Cell::new(c.holds.to_string()),
        ]);
    }
    println!("{table}");

    if let Some(studied) = studied {
        let (hd, qh, kvh, keys) = STUDY_SHAPE;
        println!(
            "scale-layout study on the CPU: head dim {hd}, {qh} query heads per KV head, {keys} keys, \
             5 seeds; attention outputs against the unquantized inputs (the CPU quantizer stores \
             what the GPU's append stores, bit for bit); `*` = shipped"
        );
        let _ = kvh;
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "layout",
            "bytes/row",
            "uniform: mean rel",
            "min cos",
            "outlier K: mean rel",
            "min cos",
        ]);
        for r in &studied {
            table.add_row(vec![
                Cell::new(format!(
                    "{}{}",
                    r.candidate.name,
                    if r.candidate.shipped { " *" } else { "" }
                )),
                Cell::new(r.row_bytes),
                Cell::new(format!("{:.2e}", r.uniform.mean_rel)),
                Cell::new(format!("{:.5}", r.uniform.min_cosine)),
                Cell::new(format!("{:.2e}", r.outlier_k.mean_rel)),
                Cell::new(format!("{:.5}", r.outlier_k.min_cosine)),
            ]);
        }
        right(&mut table, 1..6);
        println!("{table}");
    }
    Ok(())
}
