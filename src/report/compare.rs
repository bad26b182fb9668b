//! Two results files side by side (two vendors, two drivers, two scales), with B / A ratios.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::ResultsFile;

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

/// The comparison table: per scenario present in either file, A and B and B / A.
pub fn compare_table(a: &ResultsFile, b: &ResultsFile) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["#", "metric", "A", "B", "B / A"]);
    let mut ids: Vec<u32> = a
        .scenarios
        .iter()
        .chain(&b.scenarios)
        .map(|s| s.id)
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
    let text_row = |table: &mut Table, id: Option<u32>, name: &str, a: String, b: String| {
        table.add_row(vec![
            Cell::new(id.map_or(String::new(), |id| format!("{id:02}"))),
            Cell::new(name),
            Cell::new(a),
            Cell::new(b),
            Cell::new(""),
        ]);
    };
    for id in ids {
        let (sa, sb) = (a.scenario(id), b.scenario(id));
        // What was run: the format, the scaled size and its demand, so that a before/after
        // of two formats (or two budgets) reads as one.
        let format = |s: Option<&super::ScenarioResult>| {
            s.map_or("-".into(), |s| {
                let name = s.scaled.layout.dtype.name();
                match s.scenario.cache.sliding_window {
                    Some(w) => format!("{name}, window {w}"),
                    None => name.to_string(),
                }
            })
        };
        text_row(&mut table, Some(id), "KV format", format(sa), format(sb));
        let requests = |s: Option<&super::ScenarioResult>| {
            s.map_or("-".into(), |s| s.scaled.requests().to_string())
        };
        text_row(&mut table, None, "requests run", requests(sa), requests(sb));
        let demand = |s: Option<&super::ScenarioResult>| s.map(|s| s.scaled.demand_pct());
        table.add_row(vec![
            Cell::new(""),
            Cell::new("demand %"),
            Cell::new(num(demand(sa), 1)),
            Cell::new(num(demand(sb), 1)),
            Cell::new(ratio(demand(sa), demand(sb))),
        ]);
        let (ma, mb) = (
            sa.and_then(|s| s.measured.as_ref()),
            sb.and_then(|s| s.measured.as_ref()),
        );
        for (name, get, digits) in &metrics {
            let (va, vb) = (ma.and_then(get), mb.and_then(get));
            table.add_row(vec![
                Cell::new(""),
                Cell::new(*name),
                Cell::new(num(va, *digits)),
                Cell::new(num(vb, *digits)),
                Cell::new(ratio(va, vb)),
            ]);
        }
        table.add_row(vec![
            Cell::new(""),
            Cell::new("status"),
            Cell::new(sa.map_or("-".into(), |s| s.verdict.to_string())),
            Cell::new(sb.map_or("-".into(), |s| s.verdict.to_string())),
            Cell::new(""),
        ]);
    }
    for i in [2, 3, 4] {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The lines above the table: what A and B are.
pub fn describe(label: &str, r: &ResultsFile) -> String {
    let mut formats: Vec<&str> = r
        .scenarios
        .iter()
        .map(|s| s.scaled.layout.dtype.name())
        .collect();
    formats.sort_unstable();
    formats.dedup();
    format!(
        "{label}: {} ({}, {} {}), KV {}, preset `{}`, {:.0} GiB budget, preemption {:?}, \
         pagekv {}, wgpu {}{}",
        r.adapter.name,
        r.adapter.backend,
        r.adapter.driver,
        r.adapter.driver_info,
        formats.join("+"),
        r.preset,
        r.full_budget_gb,
        r.config.preemption,
        r.pagekv_version,
        r.wgpu_version,
        if r.complete { "" } else { ", INCOMPLETE" }
    )
}
