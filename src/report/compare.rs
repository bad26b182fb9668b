//! Results files side by side (two or more vendors, drivers, scales or budgets), one column
//! per file and each file's ratio to the first (A).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::{ResultsFile, ScenarioResult};

/// Why two files should not be compared without `--force`.
pub fn incompatibility(a: &ResultsFile, b: &ResultsFile) -> Option<String> {
    if a.preset != b.preset {
        return Some(format!(
            "preset `{}` against `{}`: scaled scenarios differ in size, so their figures do \
             not compare",
            a.preset, b.preset
        ));
    }
    if (a.full_budget_gb - b.full_budget_gb).abs() > 1e-9 {
        return Some(format!(
            "full-size budgets {:.1} GiB against {:.1} GiB: the pools differ",
            a.full_budget_gb, b.full_budget_gb
        ));
    }
    // Device-scaled runs choose each scenario's factors per adapter.
    let differing: Vec<String> = a
        .scenarios
        .iter()
        .filter_map(|x| {
            let y = b.scenario(x.id)?;
            (x.scaled.factors != y.scaled.factors).then(|| {
                format!(
                    "{:02} ({} against {})",
                    x.id, x.scaled.factors, y.scaled.factors
                )
            })
        })
        .collect();
    if !differing.is_empty() {
        return Some(format!(
            "different scales for scenario(s) {}",
            differing.join(", ")
        ));
    }
    None
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("x{:.2}", b / a),
        _ => "-".into(),
    }
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// Most files one comparison takes: they are labelled A to Z.
pub const MAX_FILES: usize = 26;

/// The label of the `index`-th file of a comparison: A, B, C, ...
pub fn label(index: usize) -> String {
    char::from(b'A' + (index % MAX_FILES) as u8).to_string()
}

/// The header of an N-way table: `fixed` columns, one column per file (`A`, `B`, ...), then
/// one ratio column per file after the first (`B / A`, `C / A`, ...).
pub(super) fn header(fixed: &[&str], files: usize) -> Vec<String> {
    let mut header: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    header.extend((0..files).map(label));
    header.extend((1..files).map(|i| format!("{} / A", label(i))));
    header
}

/// One row: the fixed cells, each file's value, then each later file's ratio to the first
/// (blank when `ratios` is false).
fn row(fixed: [String; 2], values: &[Option<f64>], digits: usize, ratios: bool) -> Vec<Cell> {
    let mut cells: Vec<Cell> = fixed.into_iter().map(Cell::new).collect();
    cells.extend(values.iter().map(|v| Cell::new(num(*v, digits))));
    cells.extend(values.iter().skip(1).map(|v| {
        Cell::new(if ratios {
            ratio(values[0], *v)
        } else {
            String::new()
        })
    }));
    cells
}

fn text_row(fixed: [String; 2], texts: Vec<String>) -> Vec<Cell> {
    let files = texts.len();
    let mut cells: Vec<Cell> = fixed.into_iter().map(Cell::new).collect();
    cells.extend(texts.into_iter().map(Cell::new));
    cells.extend((1..files).map(|_| Cell::new("")));
    cells
}

/// The comparison table of two or more files: per scenario present in any file, one column
/// per file (A, B, C, ...) and each later file's ratio to A. Two files give the familiar
/// `# | metric | A | B | B / A`.
pub fn compare_table(files: &[&ResultsFile]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header(&["#", "metric"], files.len()));
    let mut ids: Vec<u32> = files
        .iter()
        .flat_map(|f| f.scenarios.iter().map(|s| s.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    type Getter = fn(&crate::engine::Measurement) -> Option<f64>;
    let metrics: [(&str, Getter, usize); 10] = [
        ("req/s", |m| Some(m.requests_per_s), 2),
        ("prompt tok/s", |m| Some(m.prompt_tokens_per_s), 0),
        ("generated tok/s", |m| Some(m.generated_tokens_per_s), 0),
        ("TTFT p50 ms", |m| m.ttft.map(|p| p.p50 * 1e3), 1),
        ("TPOT p50 ms", |m| m.tpot.map(|p| p.p50 * 1e3), 1),
        (
            "decode GPU ms",
            |m| m.gpu_seconds.get("decode").map(|s| s * 1e3),
            1,
        ),
        (
            "prefill GPU ms",
            |m| m.gpu_seconds.get("prefill").map(|s| s * 1e3),
            1,
        ),
        ("peak use %", |m| Some(m.peak_use_pct), 1),
        ("hit rate %", |m| m.hit_rate_pct, 1),
        ("evictions %", |m| m.evictions_pct, 1),
    ];
    let blank = String::new;
    for id in ids {
        let results: Vec<Option<&ScenarioResult>> = files.iter().map(|f| f.scenario(id)).collect();
        // What was run: the format, the scaled size and its demand, so that a before/after
        // of two formats (or two budgets) reads as one.
        let format = |s: &Option<&ScenarioResult>| {
            s.map_or("-".into(), |s| {
                let name = s.scaled.layout.dtype.name();
                match s.scenario.cache.sliding_window {
                    Some(w) => format!("{name}, window {w}"),
                    None => name.to_string(),
                }
            })
        };
        table.add_row(text_row(
            [format!("{id:02}"), "KV format".into()],
            results.iter().map(format).collect(),
        ));
        table.add_row(text_row(
            [blank(), "requests run".into()],
            results
                .iter()
                .map(|s| s.map_or("-".into(), |s| s.scaled.requests().to_string()))
                .collect(),
        ));
        let demand: Vec<Option<f64>> = results
            .iter()
            .map(|s| s.map(|s| s.scaled.demand_pct()))
            .collect();
        table.add_row(row([blank(), "demand %".into()], &demand, 1, true));
        let measured: Vec<Option<&crate::engine::Measurement>> = results
            .iter()
            .map(|s| s.and_then(|s| s.measured.as_ref()))
            .collect();
        for (name, get, digits) in &metrics {
            let values: Vec<Option<f64>> = measured.iter().map(|m| m.and_then(get)).collect();
            table.add_row(row([blank(), (*name).into()], &values, *digits, true));
        }
        table.add_row(text_row(
            [blank(), "status".into()],
            results
                .iter()
                .map(|s| s.map_or("-".into(), |s| s.verdict.to_string()))
                .collect(),
        ));
    }
    for i in 2..2 + 2 * files.len() {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// A budget in GiB as a person writes it: `24`, or `21.3` when it is not whole.
fn gib(x: f64) -> String {
    if (x - x.round()).abs() < 0.05 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The line above the table that says what file `label` is.
pub fn describe(label: &str, r: &ResultsFile) -> String {
    let mut formats: Vec<&str> = r
        .scenarios
        .iter()
        .map(|s| s.scaled.layout.dtype.name())
        .collect();
    formats.sort_unstable();
    formats.dedup();
    format!(
        "{label}: {}, KV {}, preset `{}`, {} GiB budget{}, preemption {}, \
         pagekv {}, wgpu {}{}",
        r.adapter.identity(),
        formats.join("+"),
        r.preset,
        gib(r.full_budget_gb),
        if r.budget_probe.is_some() {
            " (probed)"
        } else {
            ""
        },
        r.config.preemption.name(),
        r.pagekv_version,
        r.wgpu_version,
        if r.complete { "" } else { ", INCOMPLETE" }
    )
}
