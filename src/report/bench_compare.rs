//! Bench reports side by side (two or more vendors, drivers, machines). Each figure is
//! shown with its ratio to its own adapter's roofline, which is what compares across
//! vendors: a kernel at 90% of a Radeon's copy speed and at 60% of an Arc's is better tuned
//! for the Radeon whatever the two cards' raw bandwidths. B / A (C / A, ...) is the raw
//! speed-up.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::compare::label;
use crate::bench::{BenchReport, Figure, Section};
use crate::gpu::KvBacking;

/// The line above the table that says what report `label` is.
pub fn describe_bench(label: &str, r: &BenchReport) -> String {
    let drift = r.copy_end_bytes_per_s.map_or(String::new(), |end| {
        format!(
            " ({:+.0}% by the end)",
            100.0 * (end / r.copy_bytes_per_s - 1.0)
        )
    });
    format!(
        "{label}: {}, {} grid, {}, copy {:.2} GB/s{drift}, matmul {:.2} GFLOP/s, kv pools in {}{}",
        r.adapter.identity(),
        if r.quick { "quick" } else { "full" },
        r.clock.short_name(),
        r.copy_bytes_per_s / 1e9,
        r.matmul_flops / 1e9,
        r.kv_backing.unwrap_or(KvBacking::Buffers).name(),
        if r.complete { "" } else { ", INCOMPLETE" }
    )
}

fn value(f: Option<&Figure>) -> String {
    match f {
        None => "-".into(),
        Some(f) if f.skipped.is_some() => "skipped".into(),
        Some(f) => f.value.map_or("-".into(), |v| format!("{v:.2} {}", f.unit)),
    }
}

/// The ratio to the copy or matmul roofline, and the share of the case's own roofline bound
/// where the file has one (version 2).
fn of_roofline(f: Option<&Figure>) -> String {
    let ratio = f
        .and_then(|f| f.ratio)
        .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r));
    match f.and_then(|f| Some((f.of_bound?, f.binding?))) {
        Some((share, binding)) => format!(
            "{ratio} ({:.0}% of {} bound)",
            100.0 * share,
            binding.name()
        ),
        None => ratio,
    }
}

/// B / A speed: higher is faster in B (rates compare directly, times inversely).
fn speedup(a: Option<&Figure>, b: Option<&Figure>) -> String {
    match (a.and_then(|f| f.value), b.and_then(|f| f.value)) {
        (Some(a), Some(b)) if a > 0.0 => format!("x{:.2}", b / a),
        _ => "-".into(),
    }
}

/// Every case in any report, in A's order then the others' extras: each report's figure and
/// its ratio of that report's own roofline, then each later report's speed against A's
/// (`B / A`, `C / A`, ...). A quick and a full grid pair on the cases they share (the full
/// grid holds every quick decode case); the others show `-` where a report lacks the case.
pub fn bench_compare_table(reports: &[&BenchReport]) -> Table {
    let mut table = Table::new();
    let mut header = vec!["section".to_string(), "case".to_string()];
    for i in 0..reports.len() {
        let l = label(i);
        header.push(l.clone());
        header.push(format!("{l} of roofline"));
    }
    header.extend((1..reports.len()).map(|i| format!("{} / A", label(i))));
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    let key = |f: &Figure| (f.section, f.case.clone());
    let mut keys: Vec<(Section, String)> = Vec::new();
    for k in reports.iter().flat_map(|r| r.figures.iter().map(key)) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let find = |r: &'_ BenchReport, (section, case): &(Section, String)| -> Option<Figure> {
        r.figures
            .iter()
            .find(|f| f.section == *section && &f.case == case)
            .cloned()
    };
    for k in &keys {
        let figures: Vec<Option<Figure>> = reports.iter().map(|r| find(r, k)).collect();
        let mut cells = vec![Cell::new(k.0), Cell::new(&k.1)];
        for f in &figures {
            cells.push(Cell::new(value(f.as_ref())));
            cells.push(Cell::new(of_roofline(f.as_ref())));
        }
        for f in figures.iter().skip(1) {
            cells.push(Cell::new(speedup(figures[0].as_ref(), f.as_ref())));
        }
        table.add_row(cells);
    }
    for i in 2..2 + 3 * reports.len() {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Clock;
    use crate::gpu::AdapterReport;

    fn figure(section: Section, case: &str, value: f64, ratio: f64) -> Figure {
        let mut f = Figure::blank(section, case, crate::bench::Unit::Gigabytes);
        f.seconds = Some(1.0 / value);
        f.value = Some(value);
        f.ratio = Some(ratio);
        f
    }

    fn report(name: &str, figures: Vec<Figure>) -> BenchReport {
        let adapter = AdapterReport {
            name: name.into(),
            ..AdapterReport::default()
        };
        BenchReport {
            version: 1,
            copy_bytes_per_s: 1e9,
            copy_end_bytes_per_s: Some(1.1e9),
            complete: true,
            matmul_flops: 1e9,
            kv_backing: Some(KvBacking::Textures),
            figures,
            ..BenchReport::new(adapter, Clock::GpuTimestamps, true)
        }
    }

    #[test]
    fn rows_pair_cases_and_show_each_roofline_ratio_and_the_speedup() {
        let a = report(
            "lavapipe",
            vec![
                figure(Section::Decode, "x batch 1", 0.5, 0.5),
                figure(Section::Decode, "only in a", 1.0, 0.9),
            ],
        );
        let b = report(
            "radeon",
            vec![
                figure(Section::Decode, "x batch 1", 400.0, 0.8),
                figure(Section::Decode, "only in b", 2.0, 0.1),
            ],
        );
        let text = bench_compare_table(&[&a, &b]).to_string();
        let row = |case: &str| {
            text.lines()
                .find(|l| l.contains(case))
                .unwrap_or_else(|| panic!("no row for {case}: {text}"))
                .to_string()
        };
        let both = row("x batch 1");
        for cell in ["0.50 GB/s", "50%", "400.00 GB/s", "80%", "x800.00"] {
            assert!(both.contains(cell), "{cell} missing: {both}");
        }
        assert!(row("only in a").contains("90%"));
        assert!(row("only in b").contains("10%"));
        let described = describe_bench("A", &a);
        assert!(described.contains("(+10% by the end)"), "{described}");
        assert!(
            described.contains("quick grid, GPU timestamps"),
            "{described}"
        );
        assert!(described.contains("kv pools in textures"), "{described}");
    }

    #[test]
    fn three_reports_get_a_column_pair_each_and_ratios_against_the_first() {
        let a = report("a", vec![figure(Section::Decode, "x batch 1", 1.0, 0.5)]);
        let b = report("b", vec![figure(Section::Decode, "x batch 1", 2.0, 0.6)]);
        let c = report("c", vec![figure(Section::Decode, "x batch 1", 4.0, 0.7)]);
        let text = bench_compare_table(&[&a, &b, &c]).to_string();
        let header = text.lines().nth(1).unwrap();
        for title in ["C of roofline", "B / A", "C / A"] {
            assert!(header.contains(title), "{title} missing: {header}");
        }
        let row = text.lines().find(|l| l.contains("x batch 1")).unwrap();
        let ratios: Vec<&str> = row
            .split_whitespace()
            .filter(|w| w.starts_with('x') && w.contains('.'))
            .collect();
        assert_eq!(ratios, ["x2.00", "x4.00"], "{row}");
    }
}
