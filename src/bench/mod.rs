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
    /// Copy roofline, bytes read + written per second.
    pub copy_bytes_per_s: f64,
    /// Matmul roofline, FLOP/s.
    pub matmul_flops: f64,
    /// Every figure.
    pub figures: Vec<Figure>,
    /// The targets, judged on this run.
    pub targets: Vec<TargetCheck>,
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

/// Runs the bench on `ctx`. `progress` hears the name of each case before it runs.
pub fn run_bench(
    ctx: &GpuContext,
    options: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, GpuError> {
    let watch = Stopwatch::new(ctx, if options.quick { 0.2 } else { 0.5 });
    let repeats = if options.quick { 2 } else { 3 };
    let cap = options.max_pool_bytes;
    progress("copy roofline");
    let (copy, copy_bytes) = kernels::copy_roofline(ctx, &watch, repeats, 1 << 30)?;
    let mut figures = vec![Figure {
        section: "copy".into(),
        case: format!("vec4 copy of {}", crate::gpu::human_bytes(copy_bytes)),
        seconds: Some(2.0 * copy_bytes as f64 / copy),
        value: Some(copy / 1e9),
        unit: "GB/s".into(),
        ratio: Some(1.0),
        skipped: None,
    }];
    let size = if options.quick { 512 } else { 1024 };
    progress("matmul roofline");
    let matmul = kernels::matmul_roofline(ctx, &watch, repeats, size)?;
    figures.push(Figure {
        section: "matmul".into(),
        case: format!("f32 {size}x{size}x{size}"),
        seconds: Some(2.0 * (size as f64).powi(3) / matmul),
        value: Some(matmul / 1e9),
        unit: "GFLOP/s".into(),
        ratio: Some(1.0),
        skipped: None,
    });
    let (batches, contexts): (&[u32], &[u32]) = if options.quick {
        (&[1, 8], &[512, 4096])
    } else {
        (&[1, 8, 32, 128], &[512, 4096, 16384, 32768])
    };
    let dtypes: &[KvDtype] = if options.quick {
        &[KvDtype::F16]
    } else {
        &[KvDtype::F32, KvDtype::F16]
    };
    for geometry in geometries().into_iter().filter(|_| options.wants("decode")) {
        for &dtype in dtypes {
            for &batch in batches {
                for &context in contexts {
                    let case = AttentionCase {
                        geometry: geometry.clone(),
                        dtype,
                        batch,
                        context,
                    };
                    progress(&format!("decode {}", label(&case)));
                    let result = kernels::decode(ctx, &watch, repeats, &case, cap);
                    let bytes = case.kv_bytes() as f64;
                    figures.push(figure(
                        "decode",
                        label(&case),
                        "GB/s",
                        1e9,
                        bytes,
                        copy,
                        result,
                    )?);
                }
            }
        }
    }
    for gqa in [1, 4].into_iter().filter(|_| options.wants("decode")) {
        let case = AttentionCase {
            geometry: ModelGeometry::new(&format!("ggml-shape-gqa{gqa}"), 1, 8 * gqa, 8, 128),
            dtype: KvDtype::F16,
            batch: 1,
            context: 8192,
        };
        progress(&format!("decode {}", label(&case)));
        let result = kernels::decode(ctx, &watch, repeats, &case, cap);
        let bytes = case.kv_bytes() as f64;
        figures.push(figure(
            "decode",
            label(&case),
            "GB/s",
            1e9,
            bytes,
            copy,
            result,
        )?);
    }
    let prefill_lengths: &[u32] = if options.quick { &[256] } else { &[512, 2048] };
    for geometry in geometries()
        .into_iter()
        .filter(|_| options.wants("prefill"))
    {
        for &context in prefill_lengths {
            let case = AttentionCase {
                geometry: geometry.clone(),
                dtype: KvDtype::F16,
                batch: 1,
                context,
            };
            progress(&format!("prefill {}", label(&case)));
            let result = kernels::prefill(ctx, &watch, repeats, &case, cap);
            let flops = kernels::prefill_flops(&case);
            figures.push(figure(
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
    for geometry in geometries().into_iter().filter(|_| options.wants("append")) {
        let case = AttentionCase {
            geometry,
            dtype: KvDtype::F16,
            batch: 1,
            context: if options.quick { 1024 } else { 8192 },
        };
        progress(&format!("append {}", label(&case)));
        let result = kernels::append(ctx, &watch, repeats, &case, cap);
        let bytes = kernels::append_bytes(&case) as f64;
        figures.push(figure(
            "append",
            format!("{} tokens, {}", case.context, label(&case)),
            "GB/s",
            1e9,
            bytes,
            copy,
            result,
        )?);
    }
    let scale = if options.quick { 1 } else { 4 };
    if options.wants("host") {
        progress("host bookkeeping");
    }
    let host_figures = if options.wants("host") {
        vec![
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
        ]
    } else {
        Vec::new()
    };
    for (case, rate) in host_figures {
        figures.push(Figure {
            section: "host".into(),
            case: case.into(),
            seconds: None,
            value: Some(rate / 1e6),
            unit: "M/s".into(),
            ratio: None,
            skipped: None,
        });
    }
    let targets = targets(&figures);
    Ok(BenchReport {
        format: "pagekv-bench".into(),
        version: 1,
        adapter: ctx.report(),
        clock: watch.clock(),
        quick: options.quick,
        copy_bytes_per_s: copy,
        matmul_flops: matmul,
        figures,
        targets,
    })
}

/// The targets judged on the figures present.
fn targets(figures: &[Figure]) -> Vec<TargetCheck> {
    let decode = |pred: &dyn Fn(&str) -> bool| -> Vec<&Figure> {
        figures
            .iter()
            .filter(|f| f.section == "decode" && f.ratio.is_some() && pred(&f.case))
            .collect()
    };
    let ctx_of = |case: &str| -> u32 {
        case.rsplit(' ')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let batch_of = |case: &str| -> u32 {
        let words: Vec<&str> = case.split(' ').collect();
        words
            .iter()
            .position(|w| *w == "batch")
            .and_then(|i| words.get(i + 1))
            .and_then(|b| b.parse().ok())
            .unwrap_or(0)
    };
    let worst = |set: Vec<&Figure>| {
        set.iter()
            .filter_map(|f| f.ratio)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))))
    };
    let judge = |target: &str, worst: Option<f64>, need: f64| TargetCheck {
        target: target.into(),
        measured: worst.map_or("not measured".into(), |w| {
            format!("worst {:.0}% of copy", 100.0 * w)
        }),
        met: worst.map(|w| w >= need),
    };
    let model = |c: &str| c.starts_with("qwen");
    let mut out = vec![
        judge(
            "decode f16, batch >= 8, context >= 4K: >= 85% of the copy roofline",
            worst(decode(&|c| {
                model(c) && c.contains(" f16 ") && batch_of(c) >= 8 && ctx_of(c) >= 4096
            })),
            0.85,
        ),
        judge(
            "decode f16, batch 1, context >= 4K: >= 60% of the copy roofline",
            worst(decode(&|c| {
                model(c) && c.contains(" f16 ") && batch_of(c) == 1 && ctx_of(c) >= 4096
            })),
            0.60,
        ),
    ];
    let prefill = figures
        .iter()
        .filter(|f| f.section == "prefill" && f.case.ends_with("ctx 2048"))
        .filter_map(|f| f.ratio)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))));
    out.push(TargetCheck {
        target: "prefill at 2K tokens: >= 60% of the matmul's FLOP/s".into(),
        measured: prefill.map_or("not measured (full bench only)".into(), |p| {
            format!("worst {:.0}% of matmul", 100.0 * p)
        }),
        met: prefill.map(|p| p >= 0.6),
    });
    let ggml: Vec<Option<f64>> = (1..=4)
        .step_by(3)
        .map(|g| {
            figures
                .iter()
                .find(|f| f.case.starts_with(&format!("ggml-shape-gqa{g} ")))
                .and_then(|f| f.seconds)
        })
        .collect();
    if let [Some(g1), Some(g4)] = ggml[..] {
        out.push(TargetCheck {
            target: "ggml shape (ctx 8192, hd 128, 8 KV heads, f16) GQA 1: <= 30 ms per step"
                .into(),
            measured: format!("{:.1} ms", g1 * 1e3),
            met: Some(g1 <= 0.030),
        });
        out.push(TargetCheck {
            target: "ggml shape GQA 4: <= 1.5x its GQA 1 time".into(),
            measured: format!("{:.2}x", g4 / g1),
            met: Some(g4 <= 1.5 * g1),
        });
    }
    let pool = figures
        .iter()
        .find(|f| f.case.starts_with("block pool"))
        .and_then(|f| f.value);
    out.push(TargetCheck {
        target: "block pool: >= 10 M allocate+free pairs per second".into(),
        measured: pool.map_or("not measured".into(), |p| format!("{p:.1} M/s")),
        met: pool.map(|p| p >= 10.0),
    });
    out
}
