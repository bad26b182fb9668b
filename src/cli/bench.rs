//! `pagekv bench`: kernel speeds as shares of each case's roofline bound and as ratios to the
//! same adapter's copy and matmul rooflines; `--long-context` charts decode cost per position
//! against context.

use std::path::PathBuf;

use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use pagekv::bench::machine_check::{SLOW_MACHINE, doubt_legend, doubt_marks};
use pagekv::bench::{
    BenchEvent, BenchOptions, BenchReport, Clock, FLATNESS_ROUNDS, LongContext, LongContextOptions,
    Section, plan, run_bench,
};
use pagekv::kernels::{AttentionOptions, HalfDecode};
use pagekv::report::file::{check_destination, write_atomic};
use pagekv::scenario::BYTES_PER_GB;

use super::algorithm::{AlgorithmChoice, HalfDecodeChoice, ReductionsChoice};
use super::{CliError, GlobalArgs};

/// Flags of `pagekv bench`.
#[derive(Debug, Clone, Default, Args)]
pub struct BenchArgs {
    /// The small grid (under a minute on lavapipe): batch 1 and 8, contexts 512 and 4K, f16.
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Skip cases whose KV pool is larger than this (default 4 GiB, 1 GiB with --quick).
    #[arg(long, value_name = "GIB")]
    pub max_pool_gib: Option<f64>,
    /// Instead of the grid, decode time per KV position per layer from 1K to 128K context
    /// (doubling) for both models, f16/int8/int4/fp8-e4m3, batch 1 and 8, and each curve's
    /// flatness; with --quick, 1K to 16K, f16, batch 1.
    #[arg(long, conflicts_with = "only")]
    pub long_context: bool,
    /// Measure only these sections (decode, formats, prefill, append, host), comma-separated; the copy
    /// and matmul rooflines are always measured.
    #[arg(long, value_name = "SECTIONS", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Measure only the cases whose label contains this text (repeatable), e.g.
    /// `--case "batch 128"` or `--case "7b f16 batch 8 ctx 4096"`; with --long-context, only
    /// the curves whose label contains it, e.g. `--case "0.5b int4 batch 8"`; rooflines
    /// always run.
    #[arg(long = "case", value_name = "TEXT")]
    pub cases: Vec<String>,
    /// Attention kernels for the decode, formats and prefill cases: tiled (workgroup memory,
    /// what GPUs get), flat (no barriers, what CPU adapters get) or auto (by adapter class).
    #[arg(long, value_enum, value_name = "ALGORITHM", default_value_t = AlgorithmChoice::Auto)]
    pub algorithm: AlgorithmChoice,
    /// How the tiled kernels reduce across threads: subgroup (shuffles and subgroup
    /// reductions), serial (one thread per row, the fallback) or auto (subgroups where the
    /// adapter has them). The flat kernels have no cross-thread reductions.
    #[arg(long, value_enum, value_name = "FORM", default_value_t = ReductionsChoice::Auto)]
    pub reductions: ReductionsChoice,
    /// How the attention kernels convert f16 halves (f16 and FP8 pools) to f32: builtin
    /// (`unpack2x16float`), integer (the same conversion in integer code) or auto (integer
    /// code on llvmpipe's GL, the built-in elsewhere).
    #[arg(long, value_enum, value_name = "FORM", default_value_t = HalfDecodeChoice::Auto)]
    pub half_decode: HalfDecodeChoice,
}

/// Runs the bench and prints its table and targets.
pub fn run(global: &GlobalArgs, args: &BenchArgs) -> Result<(), CliError> {
    let gib = args
        .max_pool_gib
        .unwrap_or(if args.quick { 1.0 } else { 4.0 });
    if !(gib.is_finite() && gib > 0.0) {
        return Err(CliError::input(format!(
            "--max-pool-gib {gib} is not a size; give a positive number of GiB"
        )));
    }
    let sections = args
        .only
        .iter()
        .map(|name| {
            Section::selectable(name).ok_or_else(|| {
                let names: Vec<_> = Section::SELECTABLE.iter().map(|s| s.name()).collect();
                CliError::input(format!(
                    "--only {name} is not a bench section; choose from {}",
                    names.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &args.json {
        check_destination(path).map_err(|e| CliError::input(format!("--json {e}")))?;
    }
    let options = BenchOptions {
        quick: args.quick,
        max_pool_bytes: (gib * BYTES_PER_GB as f64) as u64,
        sections,
        cases: args.cases.clone(),
        kernels: AttentionOptions {
            algorithm: args.algorithm.forced(),
            reductions: args.reductions.forced(),
            half_decode: args.half_decode.forced(),
            ..Default::default()
        },
        long_context: args.long_context.then(|| LongContextOptions {
            curves: args.cases.clone(),
            ..if args.quick {
                LongContextOptions::quick()
            } else {
                LongContextOptions::full()
            }
        }),
    };
    if let Some(long) = &options.long_context {
        if long.curve_labels().is_empty() {
            return Err(CliError::input(format!(
                "--case {} matches no curve of the {} long-context sweep; labels look like \"qwen2.5-0.5b int4 batch 8\"",
                args.cases.join(", "),
                if args.quick { "quick" } else { "full" },
            )));
        }
    } else if !args.cases.is_empty() && plan(&options).is_empty() {
        return Err(CliError::input(format!(
            "--case {} matches no case of the {} grid{}; labels look like \"qwen2.5-7b f16 batch 8 ctx 4096\"",
            args.cases.join(", "),
            if args.quick { "quick" } else { "full" },
            if args.only.is_empty() {
                ""
            } else {
                " in the --only sections"
            },
        )));
    }
    let ctx = global.open()?;
    args.reductions.check(&ctx).map_err(CliError::input)?;
    eprintln!("pagekv bench on {}", ctx.describe());
    eprintln!("{}", args.algorithm.describe(&ctx));
    // The JSON file is rewritten after every figure, so a run that fails part-way keeps
    // what it measured (marked incomplete).
    let mut latest: Option<BenchReport> = None;
    let mut write_error: Option<String> = None;
    let mut observer = |event: BenchEvent<'_>| match event {
        BenchEvent::Starting(case) => eprintln!("  {case}"),
        BenchEvent::Measured(report) => {
            if let (Some(path), None) = (&args.json, &write_error)
                && let Err(e) = save(path, report)
            {
                write_error = Some(e);
            }
            latest = Some(report.clone());
        }
    };
    let outcome = run_bench(&ctx, &options, &mut observer);
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            if let Some(partial) = &latest {
                print!("{}", render(partial));
            }
            let kept = match (&args.json, &write_error, &latest) {
                (Some(path), None, Some(_)) => {
                    format!("; the figures above are in {}", path.display())
                }
                _ => String::new(),
            };
            return Err(CliError::failed(format!("the bench stopped: {e}{kept}")));
        }
    };
    print!("{}", render(&report));
    if let Some(path) = &args.json {
        if let Some(e) = write_error {
            return Err(CliError::input(e));
        }
        save(path, &report).map_err(CliError::input)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

fn save(path: &std::path::Path, report: &BenchReport) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| format!("cannot encode the bench report: {e}"))?;
    write_atomic(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// The table and the target lines.
pub fn render(report: &BenchReport) -> String {
    let clock = match report.clock {
        Clock::GpuTimestamps => "GPU timestamp queries around each kernel pass (median of runs)",
        Clock::WallClock => {
            "wall clock from submit to fence (no timestamp queries; includes submission)"
        }
    };
    let shortfall = report.yardstick_shortfall();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "section",
        "case",
        "ms",
        "spread",
        "figure",
        "of copy",
        "of bound",
        "binds",
        "flop/byte",
        "time vs f16",
    ]);
    for f in &report.figures {
        let mut spread = f
            .spread
            .map_or(String::new(), |s| format!("{:.0}%", 100.0 * s));
        if let Some(speed) = f.machine_speed.filter(|&s| s < SLOW_MACHINE) {
            spread += &format!(" slow {:.0}%", 100.0 * speed);
        }
        let (ms, value, ratio) = match &f.skipped {
            Some(why) => ("-".to_string(), format!("skipped: {why}"), "-".to_string()),
            None => (
                f.seconds.map_or("-".into(), |s| format!("{:.2}", s * 1e3)),
                f.value.map_or("-".into(), |v| format!("{v:.2} {}", f.unit)),
                f.ratio.map_or("-".into(), |r| format!("{:.0}%", 100.0 * r)),
            ),
        };
        // Above 100% the bound is not one: flagged, not hidden.
        let of_bound = f.of_bound.map_or(String::new(), |r| {
            format!("{:.0}%{}", 100.0 * r, if r > 1.0 { " (!)" } else { "" })
        });
        // A memory-bound case says which working set's rates bound it (streaming: none).
        let binds = match (f.binding, f.bound_working_set) {
            (Some(b @ pagekv::bench::Binding::Memory), Some(bytes)) => {
                format!("{} ({})", b.name(), pagekv::gpu::human_bytes(bytes))
            }
            (b, _) => b.map_or(String::new(), |b| b.name().to_string()),
        };
        let intensity = f.intensity.map_or(String::new(), |i| format!("{i:.2}"));
        let vs_f16 = f.time_vs_f16.map_or(String::new(), |r| format!("{r:.2}x"));
        table.add_row(vec![
            Cell::new(f.section),
            Cell::new(&f.case),
            Cell::new(ms),
            Cell::new(spread),
            Cell::new(value),
            Cell::new(ratio),
            Cell::new(of_bound),
            Cell::new(binds),
            Cell::new(intensity),
            Cell::new(vs_f16),
        ]);
    }
    for i in [2, 3, 4, 5, 6, 8, 9] {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    // Each path's faster order, where the file says (older builds read one way).
    let order = |o: Option<pagekv::tool_kernels::AccessOrder>| {
        o.map_or(String::new(), |o| format!(", {}", o.name()))
    };
    let reads = match (
        report.buffer_read_bytes_per_s,
        report.texture_read_bytes_per_s,
    ) {
        (Some(b), Some(t)) => format!(
            ", read {:.2} GB/s (buffer{}) / {:.2} GB/s (texture{})",
            b / 1e9,
            order(report.buffer_read_order),
            t / 1e9,
            order(report.texture_read_order)
        ),
        _ => String::new(),
    };
    let writes = match (
        report.buffer_write_bytes_per_s,
        report.texture_write_bytes_per_s,
    ) {
        (Some(b), Some(t)) => format!(
            ", write {:.2} GB/s (buffer{}) / {:.2} GB/s (texture{})",
            b / 1e9,
            order(report.buffer_write_order),
            t / 1e9,
            order(report.texture_write_order)
        ),
        _ => String::new(),
    };
    let mut out = format!(
        "adapter: {}\ntiming: {clock}\nrooflines: copy {:.2} GB/s (read + written){reads}{writes}, matmul {:.2} GFLOP/s{}\n",
        report.adapter.identity(),
        report.copy_bytes_per_s / 1e9,
        report.matmul_flops / 1e9,
        if report.quick { "; quick grid" } else { "" },
    );
    if let Some(algorithm) = report.attention {
        let why = if report.attention_forced {
            "forced by --algorithm"
        } else {
            "auto, by adapter class"
        };
        out += &format!("attention: {} ({why})", algorithm.name());
        if let Some(reductions) = report.reductions {
            let why = if report.reductions_forced {
                "forced by --reductions"
            } else {
                "auto: subgroups where the adapter has them"
            };
            out += &format!(", {} reductions ({why})", reductions.name());
        }
        if let Some(half_decode) = report.half_decode {
            let why = if report.half_decode_forced {
                "forced by --half-decode"
            } else if half_decode == HalfDecode::Integer {
                "auto: llvmpipe's GL"
            } else {
                "auto"
            };
            out += &format!(
                ", f16 halves converted by {} ({why})",
                super::algorithm::conversion(half_decode)
            );
        }
        if let Some(count) = report.concurrent_workgroups {
            out += &format!(
                "; decode splits sized to fill {count} concurrent workgroups (occupancy probe, wall clock)"
            );
        }
        out += "\n";
    }
    if !report.matmul_tries.is_empty() {
        let tries: Vec<String> = report
            .matmul_tries
            .iter()
            .map(|t| match (t.flops, &t.error) {
                (Some(f), _) => format!("{} {:.2}", t.kernel, f / 1e9),
                (None, e) => format!("{} failed ({})", t.kernel, e.as_deref().unwrap_or("?")),
            })
            .collect();
        out += &format!(
            "matmul shapes tried (GFLOP/s, this run; the fastest is the yardstick): {}\n",
            tries.join(", ")
        );
    }
    out += "spread: the interquartile range of a case's samples over their median (a noisy machine shows here first)\n";
    out += "bound: each case's bytes at the read rate of its KV path (texture or buffer; f32 Q and output at the buffer rate; append: f32 K/V at the buffer read rate plus the pool's bytes at its path's write rate) or its flops at the matmul rate, whichever is longer; \"of bound\" is bound time / measured time\n";
    if let Some(smallest) = report.working_sets.first() {
        out += &format!(
            "working sets: a case's bytes move at the rates of the smallest working set timed that holds them all ({} and up; \"memory (N MiB)\"), where a cache can serve them on every sample (cases timed in alternation count each other's bytes); larger cases at the streaming rates\n",
            pagekv::gpu::human_bytes(smallest.bytes)
        );
    }
    if report.adapter.device_type == wgpu::DeviceType::Cpu {
        out += "cpu adapter: texel fetches and arithmetic run on the same cores, so a case that needs both takes about their sum rather than the longer; where the two are close (decode at GQA 7, 7 flop/byte) the sum is about twice the bound\n";
    }
    if let Some(s) = shortfall {
        out += &format!(
            "WARNING: the matmul yardstick is weaker than the fastest attention case by {s:.2}x: compute-side bounds under-state this adapter, and cases above 100% of their bound are flagged (!)\n"
        );
    }
    let over = |f: &&pagekv::bench::Figure| {
        f.binding == Some(pagekv::bench::bound::Binding::Memory)
            && f.of_bound.is_some_and(|r| r > 1.0)
    };
    if let Some(example) = report.figures.iter().find(over) {
        out += &format!(
            "(!) marks a memory-bound case faster than its bound (e.g. {} {}): for it the rooflines under-state what its access paths allow, so its ratio says only that it runs at least at their rates{}\n",
            example.section.name(),
            example.case,
            match report.working_sets.first() {
                Some(smallest) if example.bound_working_set == Some(smallest.bytes) => format!(
                    " (its bytes fit the smallest working set timed, {}, and may fit a smaller, faster cache)",
                    pagekv::gpu::human_bytes(smallest.bytes)
                ),
                _ => String::new(),
            },
        );
    }
    if let Some(example) = report
        .figures
        .iter()
        .find(|f| f.machine_speed.is_some_and(|s| s < SLOW_MACHINE))
    {
        out += &format!(
            "slow N%: the run's matmul yardstick, timed again after every case, ran at N% of its fastest in this run around this case (e.g. {} {}): other work slowed the machine while it was measured, which its spread may not show; rerun it with --case\n",
            example.section.name(),
            example.case,
        );
    }
    if let Some(backing) = report.kv_backing {
        out += &format!("kv pools: {}", backing.name());
        if backing == pagekv::gpu::KvBacking::Textures {
            out += " (decode reads its values as read-only storage textures, and can beat the buffer copy; its bound uses the texture read rate, measured through the same path)";
        }
        out += "\n";
    }
    if let Some(end) = report.copy_end_bytes_per_s {
        out += &format!(
            "copy roofline again at the end: {:.2} GB/s ({:+.0}% drift over the run; ratios use the first)\n",
            end / 1e9,
            100.0 * (end / report.copy_bytes_per_s - 1.0)
        );
    }
    let drift = |start: Option<f64>, end: Option<f64>, path: &str| {
        let (start, end) = (start?, end?);
        Some(format!(
            "{:.2} GB/s ({path}, {:+.0}%)",
            end / 1e9,
            100.0 * (end / start - 1.0)
        ))
    };
    let reads = [
        drift(
            report.buffer_read_bytes_per_s,
            report.buffer_read_end_bytes_per_s,
            "buffer",
        ),
        drift(
            report.texture_read_bytes_per_s,
            report.texture_read_end_bytes_per_s,
            "texture",
        ),
    ];
    if let [Some(buffer), Some(texture)] = reads {
        let used = match report.bound_read_rates() {
            Some((buffer, texture)) if report.bounds_use_faster_read => format!(
                "every bound uses the faster reading of each ({:.2} / {:.2} GB/s)",
                buffer / 1e9,
                texture / 1e9
            ),
            _ => "bounds use the first".to_string(),
        };
        out += &format!("read rooflines again at the end: {buffer} / {texture}; {used}\n");
    }
    if let Some(end) = report.matmul_end_flops {
        let used = if report.bounds_use_faster_read {
            format!(
                "every compute bound uses the faster ({:.2} GFLOP/s)",
                report.bound_matmul_rate() / 1e9
            )
        } else {
            "bounds use the first".to_string()
        };
        out += &format!(
            "matmul yardstick again at the end: {:.2} GFLOP/s ({:+.0}%); {used}\n",
            end / 1e9,
            100.0 * (end / report.matmul_flops - 1.0)
        );
    }
    if let Some(line) = working_set_line(report) {
        out += &line;
    }
    if !report.complete {
        out += "incomplete: the run stopped before its last case\n";
    }
    out += &table.to_string();
    if let Some(long) = &report.long_context {
        out += "\n";
        out += &render_long(long);
    }
    out += "\ntargets (judged against this run's bound):\n";
    for t in &report.targets {
        let mark = match t.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        out += &format!("  [{mark}] {}: {}\n", t.target, t.measured);
    }
    out
}

/// The rooflines on each working set the bounds use, smallest first, then the streaming
/// ones as the bounds use them (`None` for files without working sets).
fn working_set_line(report: &BenchReport) -> Option<String> {
    let gbs = |r: f64| format!("{:.2}", r / 1e9);
    let rungs: Vec<String> = report
        .working_sets
        .iter()
        .map(|w| {
            format!(
                "{} {} / {} / {} / {}",
                pagekv::gpu::human_bytes(w.bytes),
                gbs(w.buffer_read),
                gbs(w.texture_read),
                gbs(w.buffer_write),
                gbs(w.texture_write)
            )
        })
        .collect();
    if rungs.is_empty() {
        return None;
    }
    // The streaming reads as the bounds use them (the faster reading where restated).
    let reads = report.bound_read_rates();
    let streaming = [
        reads.map(|r| r.0),
        reads.map(|r| r.1),
        report.buffer_write_bytes_per_s,
        report.texture_write_bytes_per_s,
    ]
    .map(|r| r.map_or("-".to_string(), gbs))
    .join(" / ");
    Some(format!(
        "rooflines by working set, GB/s (buffer read / texture read / buffer write / texture write): {}, streaming {streaming}\n",
        rungs.join(", ")
    ))
}

/// The long-context curves: ns per KV position per layer at each context, the share of the
/// bound at the longest point, the flatness, and where each curve stopped.
pub fn render_long(long: &LongContext) -> String {
    let mut table = Table::new();
    let mut header = vec!["curve (ns per position per layer)".to_string()];
    header.extend(long.contexts.iter().map(|c| {
        if c % 1024 == 0 {
            format!("{}K", c / 1024)
        } else {
            c.to_string()
        }
    }));
    header.extend(["longest of bound".into(), "longest / 4K".into()]);
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    let mut notes = String::new();
    for curve in &long.curves {
        let mut row = vec![curve.label()];
        for &c in &long.contexts {
            row.push(
                curve
                    .points
                    .iter()
                    .find(|p| p.context == c)
                    .map_or("-".into(), |p| {
                        let marks = doubt_marks(p.spread, p.machine_speed);
                        format!("{:.3}{marks}", p.ns_per_position)
                    }),
            );
        }
        row.push(curve.points.last().map_or("-".into(), |p| {
            let flag = if p.of_bound > 1.0 { " (!)" } else { "" };
            format!("{:.0}%{flag} {}", 100.0 * p.of_bound, p.binding.name())
        }));
        row.push(curve.flatness().map_or("-".into(), |f| format!("{f:.2}x")));
        table.add_row(row);
        if let Some(why) = &curve.stopped {
            notes += &format!("  {}: {why}\n", curve.label());
        }
    }
    for i in 1..=long.contexts.len() + 2 {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = format!(
        "long context: decode kernel time per KV position per layer (step time / (batch x context)), one layer allocated; {}\n",
        doubt_legend()
    );
    if long.curves.iter().any(|c| c.flatness_pair.is_some()) {
        out += &format!(
            "longest / 4K: the 4K and the longest point timed again once the curve was done, each in turn, up to {FLATNESS_ROUNDS} rounds, the median round of each (the sweep times them minutes apart, where one slow spell can land on one of them)\n"
        );
    }
    out += &table.to_string();
    out += "\n";
    // Where the sweep's own points say otherwise, by more than a tenth.
    let differ: Vec<String> = long
        .curves
        .iter()
        .filter_map(|c| {
            let (pair, sweep) = (c.flatness_pair.and(c.flatness())?, c.sweep_flatness()?);
            ((sweep / pair - 1.0).abs() > 0.1).then(|| {
                format!(
                    "  {}: {pair:.2}x from the rounds, {sweep:.2}x from the sweep's points\n",
                    c.label()
                )
            })
        })
        .collect();
    if !differ.is_empty() {
        out += "flatness from the rounds against the sweep's own points (timed minutes apart):\n";
        out += &differ.concat();
    }
    if !notes.is_empty() {
        out += "curves that stopped early:\n";
        out += &notes;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagekv::bench::{Binding, LongCurve, LongPoint};
    use pagekv::cache::KvFormat;

    #[test]
    fn long_context_cells_mark_noisy_and_slowed_points() {
        let point = |context: u32, spread: f64, speed: f64| LongPoint {
            context,
            seconds: 1e-3,
            spread: Some(spread),
            ns_per_position: 100.0,
            of_bound: 0.5,
            binding: Binding::Compute,
            flops: 1e6,
            machine_speed: Some(speed),
        };
        let long = LongContext {
            contexts: vec![1024, 2048, 4096, 8192],
            curves: vec![LongCurve {
                model: "m".into(),
                format: KvFormat::F16,
                batch: 1,
                points: vec![
                    point(1024, 0.02, 0.99),
                    point(2048, 0.30, 0.99),
                    point(4096, 0.02, 0.60),
                    point(8192, 0.30, 0.60),
                ],
                stopped: None,
                flatness_pair: None,
            }],
        };
        let out = render_long(&long);
        let row = out.lines().find(|l| l.contains("m f16 batch 1")).unwrap();
        let cells: Vec<&str> = row.split(['│', '┆']).map(str::trim).collect();
        assert_eq!(
            &cells[2..6],
            ["100.000", "100.000 ~", "100.000 *", "100.000 ~*"],
            "{row}"
        );
        assert!(out.contains(&doubt_legend()));
        assert_eq!(cells[cells.len() - 2], "1.00x", "{row}");
        assert!(!out.contains("rounds"), "{out}");
        // With the pair timed again in rounds, the flatness is the pair's, and the sweep's
        // different reading is stated beside it.
        let mut paired = long.clone();
        paired.curves[0].flatness_pair = Some(pagekv::bench::FlatnessPair {
            seconds: [1e-3, 3e-3],
            spreads: [0.01, 0.01],
            machine_speed: Some(1.0),
        });
        let out = render_long(&paired);
        let row = out.lines().find(|l| l.contains("m f16 batch 1")).unwrap();
        let cells: Vec<&str> = row.split(['│', '┆']).map(str::trim).collect();
        assert_eq!(cells[cells.len() - 2], "1.50x", "{row}");
        assert!(out.contains("longest / 4K: the 4K and the longest point timed again"));
        assert!(
            out.contains("  m f16 batch 1: 1.50x from the rounds, 1.00x from the sweep's points"),
            "{out}"
        );
    }

    /// A memory-bound case names the working set whose rates bound it, the working sets are
    /// listed with the streaming rates, and a case above its bound at the smallest working
    /// set is explained by a cache smaller still.
    #[test]
    fn memory_bound_cases_name_the_working_set_that_bound_them() {
        use pagekv::bench::{Figure, Section, Unit, WorkingSetRates};
        let case = |name: &str, of_bound: f64, working_set| {
            let mut f = Figure::blank(Section::Append, name, Unit::Gigabytes);
            f.seconds = Some(1e-3);
            f.value = Some(2.0);
            f.binding = Some(Binding::Memory);
            f.of_bound = Some(of_bound);
            f.bound_working_set = working_set;
            f
        };
        let report = BenchReport {
            buffer_read_bytes_per_s: Some(5e9),
            texture_read_bytes_per_s: Some(10e9),
            buffer_write_bytes_per_s: Some(4e9),
            texture_write_bytes_per_s: Some(2e9),
            working_sets: vec![WorkingSetRates {
                bytes: 8 << 20,
                buffer_read: 6e9,
                texture_read: 20e9,
                buffer_write: 5e9,
                texture_write: 3e9,
            }],
            figures: vec![case("small", 1.2, Some(8 << 20)), case("large", 0.7, None)],
            ..BenchReport::new(
                Default::default(),
                pagekv::bench::Clock::GpuTimestamps,
                true,
            )
        };
        let out = render(&report);
        let binds = |name: &str| {
            let row = out
                .lines()
                .find(|l| l.contains(&format!(" {name} ")))
                .unwrap();
            row.split(['│', '┆'])
                .map(str::trim)
                .nth(8)
                .unwrap()
                .to_string()
        };
        assert_eq!(binds("small"), "memory (8.0 MiB)", "{out}");
        assert_eq!(binds("large"), "memory", "{out}");
        assert!(
            out.contains("rooflines by working set, GB/s (buffer read / texture read / buffer write / texture write): 8.0 MiB 6.00 / 20.00 / 5.00 / 3.00, streaming 5.00 / 10.00 / 4.00 / 2.00\n"),
            "{out}"
        );
        assert!(out.contains("working sets: a case's bytes move at the rates of the smallest working set timed that holds them all (8.0 MiB and up"), "{out}");
        assert!(
            out.contains("(its bytes fit the smallest working set timed, 8.0 MiB, and may fit a smaller, faster cache)"),
            "{out}"
        );
    }
}
