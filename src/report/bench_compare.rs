//! Bench reports side by side (two or more vendors, drivers, machines). Each figure is
//! shown with its ratio to its own adapter's roofline, which is what compares across
//! vendors: a kernel at 90% of a Radeon's copy speed and at 60% of an Arc's is better tuned
//! for the Radeon whatever the two cards' raw bandwidths. B / A (C / A, ...) is the raw
//! speed-up. A figure its own run doubted (a wide spread, a slowed machine) keeps its mark
//! here, so a speed-up is not read off a bad sample; long-context reports compare curve by
//! curve.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::compare::label;
use crate::bench::machine_check::{doubt_legend, doubt_marks, is_doubted};
use crate::bench::{BenchReport, Figure, LongCurve, LongPoint, Section};
use crate::gpu::KvBacking;

/// The line above the table that says what report `label` is.
pub fn describe_bench(label: &str, r: &BenchReport) -> String {
    let drift = r.copy_end_bytes_per_s.map_or(String::new(), |end| {
        format!(
            " ({:+.0}% by the end)",
            100.0 * (end / r.copy_bytes_per_s - 1.0)
        )
    });
    // Bounds from different readings are not the same yardstick: say which each file used.
    let reads = r
        .bound_read_rates()
        .map_or(String::new(), |(buffer, texture)| {
            let matmul = match r.matmul_end_flops {
                Some(_) => format!(" and matmul {:.2} GFLOP/s", r.bound_matmul_rate() / 1e9),
                None => String::new(),
            };
            format!(
                ", bounds at reads {:.2} / {:.2} GB/s{matmul} ({})",
                buffer / 1e9,
                texture / 1e9,
                if r.bounds_use_faster_read {
                    "the faster of start and end"
                } else {
                    "start"
                }
            )
        });
    // Files whose small cases were bounded at cache-sized working sets say so: their ratios
    // for those cases are stricter than a file's whose bounds used streaming rates only.
    let working_sets = match (r.working_sets.first(), r.working_sets.last()) {
        (Some(first), Some(last)) => format!(
            ", cases up to {} bounded at their working set's rates (from {})",
            crate::gpu::human_bytes(last.bytes),
            crate::gpu::human_bytes(first.bytes)
        ),
        _ => String::new(),
    };
    format!(
        "{label}: {}, {} grid, {}, copy {:.2} GB/s{drift}, matmul {:.2} GFLOP/s{reads}{working_sets}, kv pools in {}{}",
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
        Some(f) => f.value.map_or("-".into(), |v| {
            let marks = doubt_marks(f.spread, f.machine_speed);
            format!("{v:.2} {}{marks}", f.unit)
        }),
    }
}

/// The line to print under the comparison when any figure or long-context point of
/// `reports` carries a doubt mark; `None` when none does.
pub fn doubt_note(reports: &[&BenchReport]) -> Option<String> {
    let figures = reports
        .iter()
        .flat_map(|r| &r.figures)
        .map(|f| (f.spread, f.machine_speed));
    let points = reports
        .iter()
        .filter_map(|r| r.long_context.as_ref())
        .flat_map(|l| &l.curves)
        .flat_map(|c| &c.points)
        .map(|p| (p.spread, p.machine_speed));
    figures
        .chain(points)
        .any(|(spread, speed)| is_doubted(spread, speed))
        .then(doubt_legend)
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

/// A curve's point at `context`, if there is the curve and it reached that context.
fn point_at(curve: Option<&LongCurve>, context: u32) -> Option<&LongPoint> {
    curve?.points.iter().find(|p| p.context == context)
}

/// ns per position per layer of `p`, with its doubt marks.
fn ns_cell(p: Option<&LongPoint>) -> String {
    p.map_or("-".into(), |p| {
        format!(
            "{:.1}{}",
            p.ns_per_position,
            doubt_marks(p.spread, p.machine_speed)
        )
    })
}

/// The long-context curves of every report that has them, side by side: for each curve, each
/// report's ns per position per layer at 4K and at its longest context (which it names),
/// and its flatness; then each later report's speed against A's at 4K and at the longest
/// context both reached (`B / A`: higher is faster in B). `None` when no report has curves.
pub fn long_context_compare_table(reports: &[&BenchReport]) -> Option<Table> {
    use crate::bench::long_context::FLATNESS_REFERENCE;
    let curves: Vec<Option<&[LongCurve]>> = reports
        .iter()
        .map(|r| r.long_context.as_ref().map(|l| l.curves.as_slice()))
        .collect();
    if curves.iter().all(Option::is_none) {
        return None;
    }
    let mut labels: Vec<String> = Vec::new();
    for c in curves.iter().flatten().flat_map(|c| c.iter()) {
        if !labels.contains(&c.label()) {
            labels.push(c.label());
        }
    }
    let mut header = vec!["curve (ns per position per layer)".to_string()];
    for i in 0..reports.len() {
        let l = label(i);
        header.extend([
            format!("{l} 4K"),
            format!("{l} longest"),
            format!("{l} longest / 4K"),
        ]);
    }
    for i in 1..reports.len() {
        let l = label(i);
        header.extend([format!("{l} / A at 4K"), format!("{l} / A at longest both")]);
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    // A's time over the other's: higher is faster in the other.
    let speed = |a: Option<&LongPoint>, b: Option<&LongPoint>| match (a, b) {
        (Some(a), Some(b)) if b.ns_per_position > 0.0 => {
            format!("x{:.2}", a.ns_per_position / b.ns_per_position)
        }
        _ => "-".into(),
    };
    for curve_label in &labels {
        let found: Vec<Option<&LongCurve>> = curves
            .iter()
            .map(|c| c.and_then(|c| c.iter().find(|c| &c.label() == curve_label)))
            .collect();
        let mut cells = vec![Cell::new(curve_label)];
        for curve in &found {
            let longest = curve.and_then(|c| c.points.iter().max_by_key(|p| p.context));
            let at_ref = point_at(*curve, FLATNESS_REFERENCE);
            let longest_cell = longest.map_or("-".into(), |p| {
                format!("{} @ {}K", ns_cell(Some(p)), p.context / 1024)
            });
            // A file from an older build has no pair timed again: its flatness is the
            // sweep's, and says so.
            let flatness = curve
                .and_then(|c| Some((c.flatness()?, c.flatness_pair.is_none())))
                .map_or("-".into(), |(f, sweep)| match sweep {
                    true => format!("{f:.2}x (sweep)"),
                    false => format!("{f:.2}x"),
                });
            cells.extend([
                Cell::new(ns_cell(at_ref)),
                Cell::new(longest_cell),
                Cell::new(flatness),
            ]);
        }
        let a = found[0];
        for &b in found.iter().skip(1) {
            // The longest context both curves reached.
            let shared = a.into_iter().flat_map(|a| &a.points).map(|p| p.context);
            let shared = shared.filter(|&ctx| point_at(b, ctx).is_some()).max();
            let reference = |c| point_at(c, FLATNESS_REFERENCE);
            let longest = |c| shared.and_then(|s| point_at(c, s));
            cells.extend([
                Cell::new(speed(reference(a), reference(b))),
                Cell::new(speed(longest(a), longest(b))),
            ]);
        }
        table.add_row(cells);
    }
    for i in 1..table.column_count() {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    Some(table)
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
        // A file without read rooflines names no read rates.
        assert!(!described.contains("bounds at reads"), "{described}");
    }

    #[test]
    fn each_file_says_which_read_rates_its_bounds_used() {
        let reads = |faster: bool| BenchReport {
            buffer_read_bytes_per_s: Some(8e9),
            buffer_read_end_bytes_per_s: Some(9e9),
            texture_read_bytes_per_s: Some(12e9),
            texture_read_end_bytes_per_s: Some(11e9),
            bounds_use_faster_read: faster,
            ..report("a", Vec::new())
        };
        let restated = describe_bench("A", &reads(true));
        assert!(
            restated.contains("bounds at reads 9.00 / 12.00 GB/s (the faster of start and end)"),
            "{restated}"
        );
        let start = describe_bench("B", &reads(false));
        assert!(
            start.contains("bounds at reads 8.00 / 12.00 GB/s (start)"),
            "{start}"
        );
        assert!(!start.contains("working set"), "{start}");
        // A file that timed the yardstick again names the matmul rate its bounds used.
        let matmul = BenchReport {
            matmul_flops: 5e10,
            matmul_end_flops: Some(6e10),
            ..reads(true)
        };
        let described = describe_bench("D", &matmul);
        assert!(
            described.contains(
                "bounds at reads 9.00 / 12.00 GB/s and matmul 60.00 GFLOP/s (the faster of start and end)"
            ),
            "{described}"
        );
        let rung = |bytes| crate::bench::WorkingSetRates {
            bytes,
            buffer_read: 1e10,
            texture_read: 2e10,
            buffer_write: 1e10,
            texture_write: 1e10,
        };
        let ladder = BenchReport {
            working_sets: vec![rung(8 << 20), rung(16 << 20), rung(64 << 20)],
            ..reads(true)
        };
        let described = describe_bench("C", &ladder);
        assert!(
            described.contains(
                "(the faster of start and end), cases up to 64.0 MiB bounded at their working set's rates (from 8.0 MiB), kv pools"
            ),
            "{described}"
        );
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

    #[test]
    fn a_doubted_figure_keeps_its_mark_and_the_legend_is_printed() {
        let mut noisy = figure(Section::Decode, "noisy", 1.0, 0.5);
        noisy.spread = Some(0.3);
        let mut slowed = figure(Section::Decode, "slowed", 1.0, 0.5);
        slowed.spread = Some(0.02);
        slowed.machine_speed = Some(0.6);
        let mut steady = figure(Section::Decode, "steady", 1.0, 0.5);
        steady.spread = Some(0.02);
        steady.machine_speed = Some(0.97);
        let a = report("a", vec![noisy, slowed, steady.clone()]);
        let text = bench_compare_table(&[&a, &a]).to_string();
        let row = |case: &str| text.lines().find(|l| l.contains(case)).unwrap().to_string();
        assert!(row("noisy").contains("1.00 GB/s ~"), "{text}");
        assert!(row("slowed").contains("1.00 GB/s *"), "{text}");
        assert!(!row("steady").contains('~') && !row("steady").contains('*'));
        assert_eq!(doubt_note(&[&a, &a]), Some(doubt_legend()));
        let quiet = report("q", vec![steady]);
        assert_eq!(doubt_note(&[&quiet, &quiet]), None);
    }

    #[test]
    fn long_context_curves_compare_at_4k_and_at_the_longest_context_both_reached() {
        use crate::bench::{Binding, LongContext};
        use crate::cache::KvFormat;
        let point = |context: u32, ns: f64| LongPoint {
            context,
            seconds: ns * context as f64 * 1e-9,
            spread: Some(0.02),
            ns_per_position: ns,
            of_bound: 0.5,
            binding: Binding::Compute,
            flops: 1e6,
            machine_speed: Some(0.99),
        };
        let curve = |format: KvFormat, points: Vec<LongPoint>| LongCurve {
            model: "m".into(),
            format,
            batch: 1,
            points,
            stopped: None,
            flatness_pair: None,
        };
        let with_curves = |name: &str, curves: Vec<LongCurve>| BenchReport {
            long_context: Some(LongContext {
                contexts: vec![1024, 4096, 16384, 65536],
                curves,
            }),
            ..report(name, Vec::new())
        };
        // A timed its 4K and 64K points again (1.20x, as its sweep reads too).
        let mut timed_again = curve(
            KvFormat::F16,
            vec![point(4096, 100.0), point(16384, 110.0), point(65536, 120.0)],
        );
        timed_again.flatness_pair = Some(crate::bench::FlatnessPair {
            seconds: [1e-3, 19.2e-3],
            spreads: [0.01, 0.01],
            machine_speed: Some(1.0),
        });
        let a = with_curves(
            "a",
            vec![timed_again, curve(KvFormat::Int8, vec![point(4096, 80.0)])],
        );
        // B is twice as fast at 4K and stopped at 16K, where it is 1.1x as fast.
        let mut slowed = point(16384, 100.0);
        slowed.machine_speed = Some(0.5);
        let b = with_curves(
            "b",
            vec![curve(KvFormat::F16, vec![point(4096, 50.0), slowed])],
        );
        assert!(long_context_compare_table(&[&report("x", Vec::new()); 2]).is_none());
        let text = long_context_compare_table(&[&a, &b]).unwrap().to_string();
        let cells = |case: &str| -> Vec<String> {
            let row = text.lines().find(|l| l.contains(case)).unwrap();
            row.split(['│', '┆'])
                .map(|c| c.trim().to_string())
                .collect()
        };
        // Cells after the leading border and the label.
        assert_eq!(
            cells("m f16 batch 1")[2..10],
            [
                "100.0",
                "120.0 @ 64K",
                "1.20x",
                "50.0",
                "100.0 * @ 16K",
                "2.00x (sweep)",
                "x2.00",
                "x1.10"
            ],
            "{text}"
        );
        // A curve only A measured, and too short for a flatness: the rest is blank.
        assert_eq!(
            cells("m int8 batch 1")[2..10],
            ["80.0", "80.0 @ 4K", "-", "-", "-", "-", "-", "-"],
            "{text}"
        );
        assert_eq!(doubt_note(&[&a, &b]), Some(doubt_legend()));
    }
}
