//! `pagekv bench`: kernel speeds measured against the same adapter's own limits in the same
//! run, so figures compare across lavapipe, Radeon, Arc and M-series GPUs.
//!
//! - Copy roofline: a vec4 copy over the largest buffer a binding allows; bytes read plus
//!   written per second. Decode and append are stated as ratios to it.
//! - Decode: KV bytes read / kernel time over batch x context, for both model geometries and
//!   every KV dtype; plus the ggml comparison shape (8 KV heads, head dim 128, 8K context) at
//!   GQA 1 and GQA 4.
//! - Prefill: causal attention FLOP/s beside a tiled matmul's FLOP/s.
//! - Append: bytes moved / kernel time.
//! - Host: block-pool allocate+free pairs, forks and prefix lookups per second.

pub mod host;
pub mod kernels;
pub mod stopwatch;
mod targets;

use serde::{Deserialize, Serialize};

use crate::cache::{KvDtype, ModelGeometry};
use crate::gpu::{AdapterReport, GpuContext, GpuError};
use kernels::{AttentionCase, BenchSkip};
pub use stopwatch::{Clock, Stopwatch};

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
}

/// The sections `--only` can pick.
pub const SECTIONS: [&str; 4] = ["decode", "prefill", "append", "host"];

impl BenchOptions {
    fn wants(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
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
    /// Always `pagekv-bench`.
    pub format: String,
    /// 1.
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
    /// Every figure.
    pub figures: Vec<Figure>,
    /// The targets, judged on this run.
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

fn skipped(section: &str, case: String, unit: &str, reason: String) -> Figure {
    Figure {
        section: section.into(),
        case,
        seconds: None,
        value: None,
        unit: unit.into(),
        ratio: None,
        skipped: Some(reason),
    }
}

/// Turns a case result into a figure: `amount / seconds` scaled to `unit_scale`, with its
/// ratio to `roofline` (same units per second before scaling).
#[allow(clippy::too_many_arguments)]
fn figure(
    section: &str,
    case: String,
    unit: &str,
    unit_scale: f64,
    amount: f64,
    roofline: f64,
    result: Result<f64, BenchSkip>,
) -> Result<Figure, GpuError> {
    match result {
        Ok(seconds) => Ok(Figure {
            section: section.into(),
            case,
            seconds: Some(seconds),
            value: Some(amount / seconds / unit_scale),
            unit: unit.into(),
            ratio: Some(amount / seconds / roofline),
            skipped: None,
        }),
        Err(BenchSkip::Skipped(reason)) => Ok(skipped(section, case, unit, reason)),
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

/// The shared settings of the GPU sections.
struct Grid<'a> {
    ctx: &'a GpuContext,
    watch: Stopwatch,
    repeats: u32,
    options: &'a BenchOptions,
}

/// Runs the bench on `ctx`, telling `observer` about each case and each figure as it goes.
pub fn run_bench(
    ctx: &GpuContext,
    options: &BenchOptions,
    observer: &mut dyn FnMut(BenchEvent<'_>),
) -> Result<BenchReport, GpuError> {
    let grid = Grid {
        ctx,
        watch: Stopwatch::new(ctx, if options.quick { 0.2 } else { 0.5 }),
        repeats: if options.quick { 2 } else { 3 },
        options,
    };
    observer(BenchEvent::Starting("copy roofline"));
    let (copy, copy_bytes) = grid.copy()?;
    let size = if options.quick { 512 } else { 1024 };
    observer(BenchEvent::Starting("matmul roofline"));
    let matmul = kernels::matmul_roofline(ctx, &grid.watch, grid.repeats, size)?;
    let mut rec = Recorder {
        report: BenchReport {
            format: "pagekv-bench".into(),
            version: 1,
            adapter: ctx.report(),
            clock: grid.watch.clock(),
            quick: options.quick,
            copy_bytes_per_s: copy,
            copy_end_bytes_per_s: None,
            complete: false,
            matmul_flops: matmul,
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
        skipped: None,
    });
    rec.add(Figure {
        section: "matmul".into(),
        case: format!("f32 {size}x{size}x{size}"),
        seconds: Some(2.0 * (size as f64).powi(3) / matmul),
        value: Some(matmul / 1e9),
        unit: "GFLOP/s".into(),
        ratio: Some(1.0),
        skipped: None,
    });
    if options.wants("decode") {
        grid.decode(&mut rec, copy)?;
    }
    if options.wants("prefill") {
        grid.prefill(&mut rec, matmul)?;
    }
    if options.wants("append") {
        grid.append(&mut rec, copy)?;
    }
    rec.starting("copy roofline again (drift over the run)");
    rec.report.copy_end_bytes_per_s = Some(grid.copy()?.0);
    if options.wants("host") {
        rec.starting("host bookkeeping");
        host_section(&mut rec, options.quick);
    }
    rec.report.complete = true;
    rec.report.targets = targets::judge(&rec.report.figures);
    Ok(rec.report)
}

impl Grid<'_> {
    fn copy(&self) -> Result<(f64, u64), GpuError> {
        kernels::copy_roofline(self.ctx, &self.watch, self.repeats, 1 << 30)
    }

    fn cap(&self) -> u64 {
        self.options.max_pool_bytes
    }

    /// Decode bandwidth over the grid, then the ggml comparison shape at GQA 1 and 4.
    fn decode(&self, rec: &mut Recorder<'_>, copy: f64) -> Result<(), GpuError> {
        let quick = self.options.quick;
        let (batches, contexts): (&[u32], &[u32]) = if quick {
            (&[1, 8], &[512, 4096])
        } else {
            (&[1, 8, 32, 128], &[512, 4096, 16384, 32768])
        };
        let dtypes: &[KvDtype] = if quick {
            &[KvDtype::F16]
        } else {
            &[KvDtype::F32, KvDtype::F16]
        };
        let mut cases = Vec::new();
        for geometry in geometries() {
            for &dtype in dtypes {
                for &batch in batches {
                    for &context in contexts {
                        cases.push(AttentionCase {
                            geometry: geometry.clone(),
                            dtype,
                            batch,
                            context,
                        });
                    }
                }
            }
        }
        for gqa in [1, 4] {
            cases.push(AttentionCase {
                geometry: ModelGeometry::new(&format!("ggml-shape-gqa{gqa}"), 1, 8 * gqa, 8, 128),
                dtype: KvDtype::F16,
                batch: 1,
                context: 8192,
            });
        }
        for case in cases {
            rec.starting(&format!("decode {}", label(&case)));
            let result = kernels::decode(self.ctx, &self.watch, self.repeats, &case, self.cap());
            let bytes = case.kv_bytes() as f64;
            rec.add(figure(
                "decode",
                label(&case),
                "GB/s",
                1e9,
                bytes,
                copy,
                result,
            )?);
        }
        Ok(())
    }

    /// Prefill FLOP/s of whole prompts, against the matmul roofline.
    fn prefill(&self, rec: &mut Recorder<'_>, matmul: f64) -> Result<(), GpuError> {
        let lengths: &[u32] = if self.options.quick {
            &[256]
        } else {
            &[512, 2048]
        };
        for geometry in geometries() {
            for &context in lengths {
                let case = AttentionCase {
                    geometry: geometry.clone(),
                    dtype: KvDtype::F16,
                    batch: 1,
                    context,
                };
                rec.starting(&format!("prefill {}", label(&case)));
                let result =
                    kernels::prefill(self.ctx, &self.watch, self.repeats, &case, self.cap());
                let flops = kernels::prefill_flops(&case);
                rec.add(figure(
                    "prefill",
                    label(&case),
                    "GFLOP/s",
                    1e9,
                    flops,
                    matmul,
                    result,
                )?);
            }
        }
        Ok(())
    }

    /// Append bandwidth of one long prompt's K and V into shuffled slots.
    fn append(&self, rec: &mut Recorder<'_>, copy: f64) -> Result<(), GpuError> {
        for geometry in geometries() {
            let case = AttentionCase {
                geometry,
                dtype: KvDtype::F16,
                batch: 1,
                context: if self.options.quick { 1024 } else { 8192 },
            };
            rec.starting(&format!("append {}", label(&case)));
            let result = kernels::append(self.ctx, &self.watch, self.repeats, &case, self.cap());
            let bytes = kernels::append_bytes(&case) as f64;
            rec.add(figure(
                "append",
                format!("{} tokens, {}", case.context, label(&case)),
                "GB/s",
                1e9,
                bytes,
                copy,
                result,
            )?);
        }
        Ok(())
    }
}

/// Host bookkeeping rates: no GPU involved.
fn host_section(rec: &mut Recorder<'_>, quick: bool) {
    let scale = if quick { 1 } else { 4 };
    let rates = [
        (
            "block pool allocate+free pairs",
            host::pool_pairs_per_s(2_000_000 * scale),
        ),
        (
            "fork + free of a 64-block sequence",
            host::forks_per_s(20_000 * scale),
        ),
        (
            "prefix lookup of a 1024-token prompt",
            host::prefix_lookups_per_s(20_000 * scale),
        ),
    ];
    for (case, rate) in rates {
        rec.add(Figure {
            section: "host".into(),
            case: case.into(),
            seconds: None,
            value: Some(rate / 1e6),
            unit: "M/s".into(),
            ratio: None,
            skipped: None,
        });
    }
}
