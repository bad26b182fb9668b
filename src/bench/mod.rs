//! `pagekv bench`: kernel speeds measured against the same adapter's own limits in the same
//! run, so figures compare across lavapipe, Radeon, Arc and M-series GPUs.
//!
//! - Copy roofline: a vec4 copy over the largest buffer a binding allows; bytes read plus
//!   written per second. Decode and append are stated as ratios to it.
//! - Read rooflines, beside it: the same bytes read once through a storage buffer and once
//!   through a texture. Where the texture path is faster (CPU adapters), pagekv keeps KV in
//!   textures and decode can beat the copy roofline; these rows say by how much it could.
//! - Decode: KV bytes read / kernel time over batch x context, for both model geometries and
//!   every KV dtype; plus the ggml comparison shape (8 KV heads, head dim 128, 8K context) at
//!   GQA 1 and GQA 4.
//! - Formats: decode of every KV format beside f16, each (model, batch, context) group timed
//!   in alternation, bytes counted on each format's real bytes (scales included), and its
//!   time relative to f16's in the same group.
//! - Prefill: causal attention FLOP/s beside a tiled matmul's FLOP/s.
//! - Append: bytes moved / kernel time, for f16 and for every quantized format (the append
//!   kernel quantizes).
//! - Host: block-pool allocate+free pairs, forks and prefix lookups per second.

pub mod host;
pub mod kernels;
pub mod stopwatch;
mod targets;

use serde::{Deserialize, Serialize};

use crate::cache::{CacheLayout, KvFormat, ModelGeometry};
use crate::gpu::{AdapterReport, GpuContext, GpuError, KvBacking};
use crate::kernels::AttentionAlgorithm;
use kernels::{AttentionCase, BenchSkip};
pub use stopwatch::{Clock, Stopwatch};

/// The `format` field of a bench JSON file.
pub const BENCH_FORMAT: &str = "pagekv-bench";

/// The bench JSON version this build writes and the newest it reads.
pub const BENCH_FORMAT_VERSION: u32 = 1;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The small grid that finishes in under a minute on lavapipe.
    pub quick: bool,
    /// Cases whose KV pool exceeds this many bytes are skipped with the reason.
    pub max_pool_bytes: u64,
    /// Sections to measure besides the two rooflines (always measured, since every ratio
    /// needs them); empty means all of [`SECTIONS`].
    pub sections: Vec<String>,
    /// Only cases whose label contains one of these substrings (e.g. `batch 128`,
    /// `7b f16 batch 8 ctx 4096`); empty means every case. Rerunning one row of the grid
    /// several times is how a noisy figure is told apart from a slow kernel.
    pub cases: Vec<String>,
    /// Force the tiled or flat attention kernels on every attention case; `None` runs what
    /// the adapter's class gets by default (flat on CPU adapters, tiled on GPUs).
    pub algorithm: Option<AttentionAlgorithm>,
}

/// The sections `--only` can pick.
pub const SECTIONS: [&str; 5] = ["decode", "formats", "prefill", "append", "host"];

impl BenchOptions {
    fn wants(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
    }

    fn wants_case(&self, label: &str) -> bool {
        self.cases.is_empty() || self.cases.iter().any(|c| label.contains(c.as_str()))
    }
}

/// One measured (or skipped) figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// `copy`, `matmul`, `decode`, `prefill`, `append` or `host`.
    pub section: String,
    /// The case, e.g. `qwen2.5-7b f16 batch 8 ctx 4096`.
    pub case: String,
    /// Median kernel seconds (GPU sections).
    pub seconds: Option<f64>,
    /// The figure in `unit`.
    pub value: Option<f64>,
    /// `GB/s`, `GFLOP/s` or `M/s`.
    pub unit: String,
    /// Ratio to the same run's roofline (copy for bandwidth, matmul for FLOP/s).
    pub ratio: Option<f64>,
    /// Formats section: this case's time over the f16 case's in the same group (below 1 is
    /// faster than f16).
    #[serde(default)]
    pub time_vs_f16: Option<f64>,
    /// Why the case was not measured.
    pub skipped: Option<String>,
}

/// A performance target and whether this run met it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is required.
    pub target: String,
    /// The measured value it was judged on, stated.
    pub measured: String,
    /// Met, missed, or `None` when the cases were not measured.
    pub met: Option<bool>,
}

/// Everything one bench run measured; `--json` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Always [`BENCH_FORMAT`].
    pub format: String,
    /// [`BENCH_FORMAT_VERSION`] at writing.
    pub version: u32,
    /// The adapter measured.
    pub adapter: AdapterReport,
    /// How kernel times were taken.
    pub clock: Clock,
    /// Quick grid or full.
    pub quick: bool,
    /// Copy roofline, bytes read + written per second, measured first; every bandwidth ratio
    /// is to this.
    pub copy_bytes_per_s: f64,
    /// The copy roofline measured again after the GPU sections. On a shared or thermally
    /// throttled machine the adapter's speed drifts during a run; the two copy figures bound
    /// how much of a ratio is noise. `None` in files from runs that stopped before the end.
    #[serde(default)]
    pub copy_end_bytes_per_s: Option<f64>,
    /// False in a file written part-way through a run (it is rewritten after every figure),
    /// so a run that stops early keeps what it measured and says it is incomplete.
    #[serde(default = "complete_by_default")]
    pub complete: bool,
    /// Matmul roofline, FLOP/s.
    pub matmul_flops: f64,
    /// Where the attention cases' KV pools lived (textures on CPU adapters, buffers on
    /// GPUs): decode reading textures can beat the buffer copy roofline. `None` in files
    /// from builds before texture-backed pools (buffers).
    #[serde(default)]
    pub kv_backing: Option<KvBacking>,
    /// The attention algorithm the decode and prefill cases ran (forced, or the adapter's
    /// default; a format the flat kernel cannot read still runs tiled, as in serving).
    /// `None` in files from builds before the choice was recorded.
    #[serde(default)]
    pub attention: Option<AttentionAlgorithm>,
    /// Whether `attention` was forced (`--algorithm`) rather than chosen by adapter class.
    #[serde(default)]
    pub attention_forced: bool,
    /// Every figure.
    pub figures: Vec<Figure>,
    /// The performance targets (docs/performance.md), judged on this run.
    pub targets: Vec<TargetCheck>,
}

fn complete_by_default() -> bool {
    true
}

fn geometries() -> [ModelGeometry; 2] {
    [ModelGeometry::qwen2_5_0_5b(), ModelGeometry::qwen2_5_7b()]
}

fn label(case: &AttentionCase) -> String {
    format!(
        "{} {} batch {} ctx {}",
        case.geometry.name,
        case.dtype.name(),
        case.batch,
        case.context
    )
}

/// Turns a case result into a figure: `amount / seconds` in units of 1e9 (`GB/s`,
/// `GFLOP/s`), with its ratio to `roofline` (same units per second, unscaled).
fn figure(
    planned: &PlannedCase,
    unit: &str,
    amount: f64,
    roofline: f64,
    result: Result<f64, BenchSkip>,
) -> Result<Figure, GpuError> {
    match result {
        Ok(seconds) => Ok(Figure {
            section: planned.section().into(),
            case: planned.label.clone(),
            seconds: Some(seconds),
            value: Some(amount / seconds / 1e9),
            unit: unit.into(),
            ratio: Some(amount / seconds / roofline),
            time_vs_f16: None,
            skipped: None,
        }),
        Err(BenchSkip::Skipped(reason)) => Ok(Figure {
            section: planned.section().into(),
            case: planned.label.clone(),
            seconds: None,
            value: None,
            unit: unit.into(),
            ratio: None,
            time_vs_f16: None,
            skipped: Some(reason),
        }),
        Err(BenchSkip::Failed(e)) => Err(e),
    }
}

/// What a bench run reports while it runs.
pub enum BenchEvent<'a> {
    /// A case is about to run (for progress display).
    Starting(&'a str),
    /// A figure was added. The report holds every figure so far, with the targets judged on
    /// them and `complete` false until the run ends: saving it keeps a failed run's figures.
    Measured(&'a BenchReport),
}

/// The report under construction and who hears about it.
struct Recorder<'o> {
    report: BenchReport,
    observer: &'o mut dyn FnMut(BenchEvent<'_>),
}

impl Recorder<'_> {
    fn starting(&mut self, case: &str) {
        (self.observer)(BenchEvent::Starting(case));
    }

    fn add(&mut self, figure: Figure) {
        self.report.figures.push(figure);
        self.report.targets = targets::judge(&self.report.figures);
        (self.observer)(BenchEvent::Measured(&self.report));
    }
}

/// What one planned case measures.
#[derive(Clone, Debug)]
pub enum Work {
    /// Decode attention bandwidth (KV bytes read / time), a ratio of the copy roofline.
    Decode(AttentionCase),
    /// Decode of one KV format, timed in alternation with the other formats of its group.
    Format(AttentionCase),
    /// Prefill FLOP/s, a ratio of the matmul roofline.
    Prefill(AttentionCase),
    /// Append bandwidth (bytes moved / time), a ratio of the copy roofline.
    Append(AttentionCase),
    /// Host bookkeeping operations per second (no GPU).
    Host(HostOp),
}

/// The host bookkeeping operations the bench rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOp {
    /// Block-pool allocate + free pairs.
    PoolPairs,
    /// Fork and free of a 64-block sequence.
    Forks,
    /// Prefix-cache lookups of a 1024-token prompt.
    PrefixLookups,
}

impl HostOp {
    fn label(self) -> &'static str {
        match self {
            HostOp::PoolPairs => "block pool allocate+free pairs",
            HostOp::Forks => "fork + free of a 64-block sequence",
            HostOp::PrefixLookups => "prefix lookup of a 1024-token prompt",
        }
    }

    /// Operations per second; `scale` multiplies the repetitions (the full grid takes more).
    fn rate(self, scale: u64) -> f64 {
        match self {
            HostOp::PoolPairs => host::pool_pairs_per_s(2_000_000 * scale),
            HostOp::Forks => host::forks_per_s(20_000 * scale),
            HostOp::PrefixLookups => host::prefix_lookups_per_s(20_000 * scale),
        }
    }
}

/// One case of the grid, before it runs.
#[derive(Clone, Debug)]
pub struct PlannedCase {
    /// What it measures.
    pub work: Work,
    /// The label its figure will carry.
    pub label: String,
    /// Cases of one group are timed in alternation, because their ratio to each other is
    /// the point (the ggml shape at GQA 1 and GQA 4; the formats of one decode shape).
    pub group: Option<u32>,
}

impl PlannedCase {
    fn new(work: Work) -> Self {
        let label = match &work {
            Work::Decode(case) | Work::Format(case) | Work::Prefill(case) => label(case),
            Work::Append(case) => format!("{} tokens, {}", case.context, label(case)),
            Work::Host(op) => op.label().into(),
        };
        Self {
            work,
            label,
            group: None,
        }
    }

    /// The section name `--only` selects it by.
    pub fn section(&self) -> &'static str {
        match self.work {
            Work::Decode(_) => "decode",
            Work::Format(_) => "formats",
            Work::Prefill(_) => "prefill",
            Work::Append(_) => "append",
            Work::Host(_) => "host",
        }
    }
}

/// Every case `options` selects, in the order they run (the rooflines come first and are not
/// listed). Callers check a `--case` filter against this before any work.
pub fn plan(options: &BenchOptions) -> Vec<PlannedCase> {
    let quick = options.quick;
    let mut out = Vec::new();
    let (batches, contexts): (&[u32], &[u32]) = if quick {
        (&[1, 8], &[512, 4096])
    } else {
        (&[1, 8, 32, 128], &[512, 4096, 16384, 32768])
    };
    let dtypes: &[KvFormat] = if quick {
        &[KvFormat::F16]
    } else {
        &[KvFormat::F32, KvFormat::F16]
    };
    for geometry in geometries() {
        for &dtype in dtypes {
            for &batch in batches {
                for &context in contexts {
                    let case = AttentionCase {
                        geometry: geometry.clone(),
                        dtype,
                        batch,
                        context,
                        algorithm: options.algorithm,
                    };
                    out.push(PlannedCase::new(Work::Decode(case)));
                }
            }
        }
    }
    for gqa in [1, 4] {
        let case = AttentionCase {
            geometry: ModelGeometry::new(&format!("ggml-shape-gqa{gqa}"), 1, 8 * gqa, 8, 128),
            dtype: KvFormat::F16,
            batch: 1,
            context: 8192,
            algorithm: options.algorithm,
        };
        out.push(PlannedCase {
            group: Some(0),
            ..PlannedCase::new(Work::Decode(case))
        });
    }
    // Every format beside f16, one group per (model, batch, context).
    let (format_models, format_shapes): (&[ModelGeometry], &[(u32, u32)]) = if quick {
        (&geometries()[1..], &[(8, 4096)])
    } else {
        (
            &geometries(),
            &[(1, 4096), (8, 4096), (1, 16384), (8, 16384)],
        )
    };
    let mut group = 1;
    for geometry in format_models {
        for &(batch, context) in format_shapes {
            for dtype in KvFormat::ALL {
                let case = AttentionCase {
                    geometry: geometry.clone(),
                    dtype,
                    batch,
                    context,
                    algorithm: options.algorithm,
                };
                out.push(PlannedCase {
                    group: Some(group),
                    ..PlannedCase::new(Work::Format(case))
                });
            }
            group += 1;
        }
    }
    let prefill_lengths: &[u32] = if quick { &[256] } else { &[512, 2048] };
    for geometry in geometries() {
        for &context in prefill_lengths {
            let case = AttentionCase {
                geometry: geometry.clone(),
                dtype: KvFormat::F16,
                batch: 1,
                context,
                algorithm: options.algorithm,
            };
            out.push(PlannedCase::new(Work::Prefill(case)));
        }
    }
    for geometry in geometries() {
        for dtype in KvFormat::ALL {
            // f16 for both models; the quantizing formats at the 7B shape.
            if dtype == KvFormat::F32 || (dtype != KvFormat::F16 && geometry.head_dim != 128) {
                continue;
            }
            let case = AttentionCase {
                geometry: geometry.clone(),
                dtype,
                batch: 1,
                context: if quick { 1024 } else { 8192 },
                algorithm: options.algorithm,
            };
            out.push(PlannedCase::new(Work::Append(case)));
        }
    }
    for op in [HostOp::PoolPairs, HostOp::Forks, HostOp::PrefixLookups] {
        out.push(PlannedCase::new(Work::Host(op)));
    }
    out.retain(|c| options.wants(c.section()) && options.wants_case(&c.label));
    out
}

/// Runs the bench on `ctx`, telling `observer` about each case and each figure as it goes.
pub fn run_bench(
    ctx: &GpuContext,
    options: &BenchOptions,
    observer: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<BenchReport, GpuError> {
    let watch = Stopwatch::new(ctx, if options.quick { 0.2 } else { 0.5 });
    let repeats = if options.quick { 2 } else { 3 };
    let copy_roofline = || kernels::copy_roofline(ctx, &watch, repeats, 1 << 30);
    observer(BenchEvent::Starting("copy roofline"));
    let (copy, copy_bytes) = copy_roofline()?;
    let size = if options.quick { 512 } else { 1024 };
    observer(BenchEvent::Starting("matmul roofline"));
    let matmul = kernels::matmul_roofline(ctx, &watch, repeats, size)?;
    let mut rec = Recorder {
        report: BenchReport {
            format: BENCH_FORMAT.into(),
            version: BENCH_FORMAT_VERSION,
            adapter: ctx.report(),
            clock: watch.clock(),
            quick: options.quick,
            copy_bytes_per_s: copy,
            copy_end_bytes_per_s: None,
            complete: false,
            matmul_flops: matmul,
            kv_backing: Some(AttentionAlgorithm::pool_backing(
                options.algorithm,
                ctx,
                &CacheLayout {
                    geometry: ModelGeometry::qwen2_5_0_5b(),
                    block_size: kernels::BENCH_BLOCK_SIZE,
                    dtype: KvFormat::F16,
                },
            )),
            attention: Some(
                options
                    .algorithm
                    .unwrap_or_else(|| AttentionAlgorithm::for_device(ctx)),
            ),
            attention_forced: options.algorithm.is_some(),
            figures: Vec::new(),
            targets: Vec::new(),
        },
        observer,
    };
    rec.add(Figure {
        section: "copy".into(),
        case: format!("vec4 copy of {}", crate::gpu::human_bytes(copy_bytes)),
        seconds: Some(2.0 * copy_bytes as f64 / copy),
        value: Some(copy / 1e9),
        unit: "GB/s".into(),
        ratio: Some(1.0),
        time_vs_f16: None,
        skipped: None,
    });
    rec.starting("read rooflines (buffer and texture)");
    let (buffer_read, texture_read, read_bytes) =
        kernels::read_rooflines(ctx, &watch, repeats, 1 << 30)?;
    for (path, rate) in [("buffer", buffer_read), ("texture", texture_read)] {
        rec.add(Figure {
            section: "copy".into(),
            case: format!(
                "{path} read of {} (no writes)",
                crate::gpu::human_bytes(read_bytes)
            ),
            seconds: Some(read_bytes as f64 / rate),
            value: Some(rate / 1e9),
            unit: "GB/s".into(),
            ratio: Some(rate / copy),
            time_vs_f16: None,
            skipped: None,
        });
    }
    rec.add(Figure {
        section: "matmul".into(),
        case: format!("f32 {size}x{size}x{size}"),
        seconds: Some(2.0 * (size as f64).powi(3) / matmul),
        value: Some(matmul / 1e9),
        unit: "GFLOP/s".into(),
        ratio: Some(1.0),
        time_vs_f16: None,
        skipped: None,
    });
    let cap = options.max_pool_bytes;
    let host_scale = if options.quick { 1 } else { 4 };
    let planned_cases = plan(options);
    // Results of a group's cases, timed together when its first case comes up.
    let mut group_results: Option<(u32, std::vec::IntoIter<Result<f64, BenchSkip>>)> = None;
    let mut group_f16: Option<f64> = None;
    for planned in &planned_cases {
        let group_cases: Vec<AttentionCase> = planned_cases
            .iter()
            .filter(|p| p.group.is_some() && p.group == planned.group)
            .filter_map(|p| match &p.work {
                Work::Decode(case) | Work::Format(case) => Some(case.clone()),
                _ => None,
            })
            .collect();
        let alternation = match &planned.work {
            _ if group_cases.len() < 2 => "",
            Work::Format(_) => " (timed in alternation with the other formats)",
            _ => " (timed in alternation with the other ggml shape)",
        };
        rec.starting(&format!(
            "{} {}{alternation}",
            planned.section(),
            planned.label
        ));
        let (result, amount, unit, roofline) = match &planned.work {
            Work::Decode(case) | Work::Format(case) if planned.group.is_some() => {
                let group = planned.group.expect("matched");
                if group_results.as_ref().is_none_or(|(g, _)| *g != group) {
                    let results =
                        kernels::decode_interleaved(ctx, &watch, repeats, &group_cases, cap);
                    group_f16 = group_cases
                        .iter()
                        .zip(&results)
                        .find(|(c, _)| c.dtype == KvFormat::F16)
                        .and_then(|(_, r)| r.as_ref().ok().copied());
                    group_results = Some((group, results.into_iter()));
                }
                let (_, results) = group_results.as_mut().expect("set above");
                (
                    results.next().expect("one result per grouped case"),
                    case.kv_bytes() as f64,
                    "GB/s",
                    copy,
                )
            }
            Work::Decode(case) | Work::Format(case) => (
                kernels::decode(ctx, &watch, repeats, case, cap),
                case.kv_bytes() as f64,
                "GB/s",
                copy,
            ),
            Work::Prefill(case) => (
                kernels::prefill(ctx, &watch, repeats, case, cap),
                kernels::prefill_flops(case),
                "GFLOP/s",
                matmul,
            ),
            Work::Append(case) => (
                kernels::append(ctx, &watch, repeats, case, cap),
                kernels::append_bytes(case) as f64,
                "GB/s",
                copy,
            ),
            Work::Host(op) => {
                rec.add(Figure {
                    section: "host".into(),
                    case: planned.label.clone(),
                    seconds: None,
                    value: Some(op.rate(host_scale) / 1e6),
                    unit: "M/s".into(),
                    ratio: None,
                    time_vs_f16: None,
                    skipped: None,
                });
                continue;
            }
        };
        let mut figure = figure(planned, unit, amount, roofline, result)?;
        if matches!(planned.work, Work::Format(_)) {
            figure.time_vs_f16 = figure.seconds.zip(group_f16).map(|(t, f16)| t / f16);
        }
        rec.add(figure);
    }
    rec.starting("copy roofline again (drift over the run)");
    rec.report.copy_end_bytes_per_s = Some(copy_roofline()?.0);
    rec.report.complete = true;
    rec.report.targets = targets::judge(&rec.report.figures);
    Ok(rec.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(quick: bool, sections: &[&str], cases: &[&str]) -> BenchOptions {
        BenchOptions {
            quick,
            max_pool_bytes: 1 << 30,
            sections: sections.iter().map(|s| s.to_string()).collect(),
            cases: cases.iter().map(|s| s.to_string()).collect(),
            algorithm: None,
        }
    }

    #[test]
    fn the_grids_cover_every_section_and_the_target_grid() {
        for quick in [true, false] {
            let plan = plan(&options(quick, &[], &[]));
            let mut sections: Vec<_> = plan.iter().map(PlannedCase::section).collect();
            sections.dedup();
            assert_eq!(sections, SECTIONS, "sections in plan order");
        }
        // batch {1, 8, 32, 128} x context {512, 4K, 16K, 32K} x 2 models x 2 dtypes, plus
        // the two ggml shapes.
        let full = plan(&options(false, &["decode"], &[]));
        assert_eq!(full.len(), 4 * 4 * 2 * 2 + 2);
        assert!(
            full.iter()
                .any(|c| c.label == "qwen2.5-7b f16 batch 128 ctx 32768")
        );
    }

    #[test]
    fn the_ggml_pair_and_each_format_group_are_timed_in_alternation() {
        for quick in [true, false] {
            let planned = plan(&options(quick, &[], &[]));
            let ggml: Vec<_> = planned
                .iter()
                .filter(|c| c.group == Some(0))
                .map(|c| c.label.as_str())
                .collect();
            assert_eq!(
                ggml,
                [
                    "ggml-shape-gqa1 f16 batch 1 ctx 8192",
                    "ggml-shape-gqa4 f16 batch 1 ctx 8192"
                ]
            );
            let formats: Vec<_> = planned
                .iter()
                .filter(|c| c.section() == "formats")
                .collect();
            let groups = if quick { 1 } else { 2 * 4 };
            assert_eq!(formats.len(), groups * KvFormat::ALL.len());
            for group in formats.chunks(KvFormat::ALL.len()) {
                assert!(group.iter().all(|c| c.group == group[0].group));
                assert!(group.iter().any(|c| c.label.contains(" f16 ")));
            }
        }
    }

    #[test]
    fn a_forced_algorithm_reaches_every_attention_case_and_keeps_the_labels() {
        let mut forced = options(true, &[], &[]);
        forced.algorithm = Some(AttentionAlgorithm::Tiled);
        let planned = plan(&forced);
        let attention: Vec<&AttentionCase> = planned
            .iter()
            .filter_map(|c| match &c.work {
                Work::Decode(a) | Work::Format(a) | Work::Prefill(a) | Work::Append(a) => Some(a),
                Work::Host(_) => None,
            })
            .collect();
        assert!(!attention.is_empty());
        for case in &attention {
            assert_eq!(case.algorithm, Some(AttentionAlgorithm::Tiled), "{case:?}");
        }
        let labels = |p: Vec<PlannedCase>| p.into_iter().map(|c| c.label).collect::<Vec<_>>();
        assert_eq!(labels(planned), labels(plan(&options(true, &[], &[]))));
    }

    #[test]
    fn case_filters_match_label_substrings_within_the_chosen_sections() {
        let picked = plan(&options(
            false,
            &["decode"],
            &["batch 8 ctx 4096", "ggml-shape-gqa4"],
        ));
        let labels: Vec<_> = picked.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "qwen2.5-0.5b f32 batch 8 ctx 4096",
                "qwen2.5-0.5b f16 batch 8 ctx 4096",
                "qwen2.5-7b f32 batch 8 ctx 4096",
                "qwen2.5-7b f16 batch 8 ctx 4096",
                "ggml-shape-gqa4 f16 batch 1 ctx 8192",
            ]
        );
        assert!(plan(&options(true, &["prefill"], &["batch 8"])).is_empty());
        let host = plan(&options(true, &["host"], &["block pool"]));
        assert_eq!(host.len(), 1);
        assert!(matches!(host[0].work, Work::Host(HostOp::PoolPairs)));
    }
}
