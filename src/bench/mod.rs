//! `pagekv bench`: kernel speeds measured against the same adapter's own limits in the same
//! run, so figures compare across lavapipe, Radeon, Arc and M-series GPUs.
//!
//! - Copy roofline: a vec4 copy over the largest buffer a binding allows; bytes read plus
//!   written per second. Decode and append are also stated as ratios to it.
//! - Roofline bound, per case: its bytes at the read rate of the path its kernel reads them
//!   through, or its flops at the run's best matmul rate, whichever takes longer
//!   ([`bound`]). Every attention figure says which side binds, its flops per byte and its
//!   speed as a share of that bound.
//! - Read rooflines, beside it: the same bytes read once through a storage buffer and once
//!   through a texture. Where the texture path is faster (CPU adapters), pagekv keeps KV in
//!   textures and decode can beat the copy roofline; these rows say by how much it could.
//!   Reads and writes are also timed on working sets from [`SMALLEST_WORKING_SET`] up: a case
//!   whose bytes fit a cache is bounded at the rates of a working set its size.
//! - Decode: KV bytes read / kernel time over batch x context, for both model geometries and
//!   every KV dtype; plus the ggml comparison shape (8 KV heads, head dim 128, 8K context) at
//!   GQA 1 and GQA 4.
//! - Formats: decode of every KV format beside f16, each (model, batch, context) group timed
//!   in alternation, bytes counted on each format's real bytes (scales included), and its
//!   time relative to f16's in the same group.
//! - Prefill: causal attention FLOP/s beside the matmul yardstick's FLOP/s (the fastest of a
//!   few register-tiled shapes, picked in the same run).
//! - Append: bytes moved / kernel time, for f16 and for every quantized format (the append
//!   kernel quantizes).
//! - Host: block-pool allocate+free pairs, forks and prefix lookups per second.

pub mod bound;
pub mod host;
pub mod kernels;
pub mod long_context;
pub mod machine_check;
mod plan;
mod rates;
mod run;
pub mod stopwatch;
mod targets;

use serde::{Deserialize, Serialize};

use crate::gpu::{AdapterReport, KvBacking};
use crate::kernels::{AttentionAlgorithm, AttentionOptions, HalfDecode, Reductions};
use crate::tool_kernels::AccessOrder;
pub use bound::Binding;
pub use long_context::{
    FLATNESS_ROUNDS, FlatnessPair, LongContext, LongContextOptions, LongCurve, LongPoint,
};
pub use plan::{HostOp, PlannedCase, Work, plan};
pub use run::run_bench;
pub use stopwatch::{Clock, NOISY_SPREAD, Stopwatch, Timing};

/// The `format` field of a bench JSON file.
pub const BENCH_FORMAT: &str = "pagekv-bench";

/// The bench JSON version this build writes and the newest it reads. Version 2 added each
/// figure's roofline bound, the read rooflines, the matmul shapes tried and the long-context
/// curves; version 1 files read with those absent.
pub const BENCH_FORMAT_VERSION: u32 = 2;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The small grid that finishes in under a minute on lavapipe.
    pub quick: bool,
    /// Cases whose KV pool exceeds this many bytes are skipped with the reason.
    pub max_pool_bytes: u64,
    /// Sections to measure besides the two rooflines (always measured, since every ratio
    /// needs them); empty means all of [`Section::SELECTABLE`].
    pub sections: Vec<Section>,
    /// Only cases whose label contains one of these substrings (e.g. `batch 128`,
    /// `7b f16 batch 8 ctx 4096`); empty means every case. Rerunning one row of the grid
    /// several times is how a noisy figure is told apart from a slow kernel.
    pub cases: Vec<String>,
    /// Measure the long-context curves instead of the grid (the rooflines still run).
    pub long_context: Option<LongContextOptions>,
    /// What every attention case forces: the tiled or flat kernels, the tiled kernels'
    /// reduction form, the half-float conversion. The defaults run what the adapter gets
    /// (flat on CPU adapters, tiled on GPUs; subgroups where present; integer half
    /// conversion on llvmpipe's GL only).
    pub kernels: AttentionOptions,
}

/// The part of a bench run a figure belongs to; its name is what the JSON, the tables and
/// `--only` use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// The copy roofline and the buffer and texture read rooflines.
    Copy,
    /// The matmul yardstick.
    Matmul,
    /// Decode over batch x context, and the ggml shapes.
    Decode,
    /// Decode of every KV format beside f16.
    Formats,
    /// Causal prefill.
    Prefill,
    /// Appending new tokens' K/V (quantizing formats included).
    Append,
    /// Block-pool and prefix bookkeeping on the host.
    Host,
}

impl Section {
    /// The sections `--only` picks from, in the order a run measures them (the copy and
    /// matmul rooflines always run: every ratio needs them).
    pub const SELECTABLE: [Section; 5] = [
        Section::Decode,
        Section::Formats,
        Section::Prefill,
        Section::Append,
        Section::Host,
    ];

    /// The section's name, as `--only` and the JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            Section::Copy => "copy",
            Section::Matmul => "matmul",
            Section::Decode => "decode",
            Section::Formats => "formats",
            Section::Prefill => "prefill",
            Section::Append => "append",
            Section::Host => "host",
        }
    }

    /// The selectable section called `name`.
    pub fn selectable(name: &str) -> Option<Self> {
        Self::SELECTABLE.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a figure's value counts per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Bytes moved, 1e9 per second.
    #[serde(rename = "GB/s")]
    Gigabytes,
    /// Floating-point operations, 1e9 per second.
    #[serde(rename = "GFLOP/s")]
    Gigaflops,
    /// Host operations, 1e6 per second.
    #[serde(rename = "M/s")]
    Millions,
}

impl Unit {
    /// The unit as printed after a value.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Gigabytes => "GB/s",
            Unit::Gigaflops => "GFLOP/s",
            Unit::Millions => "M/s",
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.symbol())
    }
}

impl BenchOptions {
    fn wants(&self, section: Section) -> bool {
        self.sections.is_empty() || self.sections.contains(&section)
    }

    fn wants_case(&self, label: &str) -> bool {
        self.cases.is_empty() || self.cases.iter().any(|c| label.contains(c.as_str()))
    }
}

/// One measured (or skipped) figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The part of the run it belongs to.
    pub section: Section,
    /// The case, e.g. `qwen2.5-7b f16 batch 8 ctx 4096`.
    pub case: String,
    /// Median kernel seconds (GPU sections).
    pub seconds: Option<f64>,
    /// How widely the kernel's samples spread: their interquartile range over the median
    /// (attention and append cases; absent in files from builds before it was recorded).
    #[serde(default)]
    pub spread: Option<f64>,
    /// The figure in `unit`.
    pub value: Option<f64>,
    /// What `value` counts per second.
    pub unit: Unit,
    /// Ratio to the same run's roofline (copy for bandwidth, matmul for FLOP/s).
    pub ratio: Option<f64>,
    /// Formats section: this case's time over the f16 case's in the same group (below 1 is
    /// faster than f16).
    #[serde(default)]
    pub time_vs_f16: Option<f64>,
    /// Why the case was not measured.
    pub skipped: Option<String>,
    /// Flops the case counts (attention sections; see [`bound`] for what is counted).
    #[serde(default)]
    pub flops: Option<f64>,
    /// The case's roofline bound, seconds: the larger of its bytes at the read rate of its
    /// access path and its flops at the run's matmul rate.
    #[serde(default)]
    pub bound_seconds: Option<f64>,
    /// Which side of the roofline binds the case.
    #[serde(default)]
    pub binding: Option<Binding>,
    /// Arithmetic intensity, flops per byte moved.
    #[serde(default)]
    pub intensity: Option<f64>,
    /// Bound seconds over measured seconds: 1 is at the bound.
    #[serde(default)]
    pub of_bound: Option<f64>,
    /// The working set whose rates bound the case's bytes (a rung of
    /// [`BenchReport::working_sets`], the smallest holding them, and for cases timed one
    /// sample of each in turn the bytes of all of them); `None` where the streaming rates did
    /// (bytes larger than every rung, or older files).
    #[serde(default)]
    pub bound_working_set: Option<u64>,
    /// The machine's speed while the case ran, as a share of its best in the run: the
    /// slower of the [`machine_check`]s just before and just after the case against the
    /// fastest check. Below [`machine_check::SLOW_MACHINE`] the case was measured on a
    /// slowed machine. Absent in files from builds before it was recorded, and for cases not
    /// measured.
    #[serde(default)]
    pub machine_speed: Option<f64>,
}

impl Figure {
    /// A figure with only its section, case and unit set.
    pub fn blank(section: Section, case: &str, unit: Unit) -> Self {
        Self {
            section,
            case: case.into(),
            seconds: None,
            spread: None,
            value: None,
            unit,
            ratio: None,
            time_vs_f16: None,
            skipped: None,
            flops: None,
            bound_seconds: None,
            binding: None,
            intensity: None,
            of_bound: None,
            bound_working_set: None,
            machine_speed: None,
        }
    }

    /// The case's flop rate, FLOP/s, where it counts flops and was measured.
    pub fn flop_rate(&self) -> Option<f64> {
        let (flops, seconds) = (self.flops?, self.seconds?);
        (flops > 0.0 && seconds > 0.0).then(|| flops / seconds)
    }
}

/// One matmul shape tried for the yardstick, and its rate in this run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatmulTry {
    /// The shader variant, e.g. `matmulflat_r8c8`.
    pub kernel: String,
    /// FLOP/s, or `None` when it failed to build or run (then `error` says why).
    pub flops: Option<f64>,
    /// Why it has no rate.
    #[serde(default)]
    pub error: Option<String>,
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

/// The smallest working set the rooflines are measured on besides the streaming one: about
/// a CPU core's L2 (a GPU's L2 is larger), so the small cases (a 1024-token append writes
/// 2-4 MiB) are bounded at an L2's rate. Sets smaller than 8 MiB are passed over several
/// times per sample, so a sample is long enough to time.
pub const SMALLEST_WORKING_SET: u64 = 1 << 20;

/// The working sets the rooflines are measured on below a streaming source of
/// `streaming_bytes`, smallest first: each power of two from [`SMALLEST_WORKING_SET`] and the
/// size halfway to the next (1, 1.5, 2, 3, 4, 6 MiB, ...). The half steps keep a case from
/// being bounded at a set nearly twice its size: 32 MiB of KV plus its queries falls to the
/// 48 MiB rung, not to 64 MiB, twice a 32 MiB cache.
pub fn working_set_sizes(streaming_bytes: u64) -> Vec<u64> {
    std::iter::successors(Some(SMALLEST_WORKING_SET), |b| Some(b * 2))
        .flat_map(|b| [b, b + b / 2])
        .take_while(|&b| b < streaming_bytes)
        .collect()
}

/// The rooflines on one working set smaller than the streaming source (a rung of
/// [`BenchReport::working_sets`]), each path timed in the order that won on the streaming
/// source. A case whose bytes fit a cache is re-read from it on every sample and can move
/// faster than the streaming rates; its bound uses the rates of the smallest rung that holds
/// its bytes, so no cache makes it look faster than its access paths allow.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkingSetRates {
    /// Bytes one pass moved.
    pub bytes: u64,
    /// Read through a storage buffer, bytes per second.
    pub buffer_read: f64,
    /// Read through an `rgba32uint` storage texture, bytes per second.
    pub texture_read: f64,
    /// Written through a storage buffer, bytes per second.
    pub buffer_write: f64,
    /// Written through an `rgba32uint` storage texture, bytes per second.
    pub texture_write: f64,
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
    /// Matmul roofline, FLOP/s: the fastest of `matmul_tries`.
    pub matmul_flops: f64,
    /// The yardstick's shape timed again after the GPU sections, FLOP/s: where it runs
    /// faster than at the start, the compute side of every bound uses it
    /// (`bounds_use_faster_read`). `None` in files from builds that timed it once and from
    /// runs that stopped before the end.
    #[serde(default)]
    pub matmul_end_flops: Option<f64>,
    /// Every matmul shape tried for the yardstick, in order (empty in version 1 files).
    #[serde(default)]
    pub matmul_tries: Vec<MatmulTry>,
    /// Read roofline through a storage buffer, bytes per second (`None` in version 1 files).
    #[serde(default)]
    pub buffer_read_bytes_per_s: Option<f64>,
    /// Read roofline through a texture, bytes per second.
    #[serde(default)]
    pub texture_read_bytes_per_s: Option<f64>,
    /// The buffer and texture read rooflines measured again after the GPU sections, as the
    /// copy roofline is: they say how far the adapter drifted during the run, and where one
    /// reads faster than at the start, the bounds use it (`bounds_use_faster_read`). `None`
    /// in files from builds that did not measure them and from runs that stopped before the
    /// end.
    #[serde(default)]
    pub buffer_read_end_bytes_per_s: Option<f64>,
    /// The texture read roofline at the end (see `buffer_read_end_bytes_per_s`).
    #[serde(default)]
    pub texture_read_end_bytes_per_s: Option<f64>,
    /// Whether every bound was restated at the faster of each read roofline's two readings
    /// (start and end), and of the matmul yardstick's where the file has both, once the run
    /// finished. False in a file written part-way through a run
    /// (its bounds use the start) and in files from builds whose bounds always used the start.
    #[serde(default)]
    pub bounds_use_faster_read: bool,
    /// The rooflines on the working sets of [`working_set_sizes`] (from
    /// [`SMALLEST_WORKING_SET`] up to below the streaming source), smallest first: a case whose bytes fit one is bounded at its rates
    /// (`Figure::bound_working_set`). Empty in files from builds whose bounds used the
    /// streaming rates for every case.
    #[serde(default)]
    pub working_sets: Vec<WorkingSetRates>,
    /// The order of the faster buffer read (each path is read both ways); `None` in files
    /// from builds that read one way only (per-invocation runs).
    #[serde(default)]
    pub buffer_read_order: Option<AccessOrder>,
    /// The order of the faster texture read.
    #[serde(default)]
    pub texture_read_order: Option<AccessOrder>,
    /// Write roofline into a storage buffer, bytes per second (`None` in files from builds
    /// that bounded append by the copy rate).
    #[serde(default)]
    pub buffer_write_bytes_per_s: Option<f64>,
    /// Write roofline into a texture, bytes per second.
    #[serde(default)]
    pub texture_write_bytes_per_s: Option<f64>,
    /// The order of the faster buffer write.
    #[serde(default)]
    pub buffer_write_order: Option<AccessOrder>,
    /// The order of the faster texture write.
    #[serde(default)]
    pub texture_write_order: Option<AccessOrder>,
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
    /// The tiled kernels' reduction form, when the attention cases ran tiled (`None` for the
    /// flat kernels, which have no cross-thread reductions, and in older files).
    #[serde(default)]
    pub reductions: Option<Reductions>,
    /// Whether `reductions` was forced (`--reductions`).
    #[serde(default)]
    pub reductions_forced: bool,
    /// How the attention cases converted f16 halves (f16 and FP8 pools) to f32: the adapter's
    /// choice, so files from llvmpipe's GL (integer code) and from other adapters (the
    /// built-in) say which ran. `None` in files from builds before the choice existed.
    #[serde(default)]
    pub half_decode: Option<HalfDecode>,
    /// Whether `half_decode` was forced (`--half-decode`).
    #[serde(default)]
    pub half_decode_forced: bool,
    /// When the attention cases ran tiled: the workgroups of the head-dim-64 decode tile the
    /// occupancy probe found the device running at once, which the tiled decode's context
    /// splits are sized to (`None` for the flat kernels and in older files).
    #[serde(default)]
    pub concurrent_workgroups: Option<u32>,
    /// Every figure.
    pub figures: Vec<Figure>,
    /// The performance targets (docs/performance.md), judged on this run.
    pub targets: Vec<TargetCheck>,
    /// `--long-context` curves, when that mode ran.
    #[serde(default)]
    pub long_context: Option<LongContext>,
}

impl BenchReport {
    /// A report of the current format with no figures yet: rates zero, every optional
    /// measurement absent, not complete. A run fills it as it measures; tests and tools set
    /// the fields they need with struct-update syntax.
    pub fn new(adapter: AdapterReport, clock: Clock, quick: bool) -> Self {
        Self {
            format: BENCH_FORMAT.into(),
            version: BENCH_FORMAT_VERSION,
            adapter,
            clock,
            quick,
            copy_bytes_per_s: 0.0,
            copy_end_bytes_per_s: None,
            complete: false,
            matmul_flops: 0.0,
            matmul_end_flops: None,
            matmul_tries: Vec::new(),
            buffer_read_bytes_per_s: None,
            texture_read_bytes_per_s: None,
            buffer_read_end_bytes_per_s: None,
            texture_read_end_bytes_per_s: None,
            bounds_use_faster_read: false,
            working_sets: Vec::new(),
            buffer_read_order: None,
            texture_read_order: None,
            buffer_write_bytes_per_s: None,
            texture_write_bytes_per_s: None,
            buffer_write_order: None,
            texture_write_order: None,
            kv_backing: None,
            attention: None,
            attention_forced: false,
            reductions: None,
            reductions_forced: false,
            half_decode: None,
            half_decode_forced: false,
            concurrent_workgroups: None,
            figures: Vec::new(),
            targets: Vec::new(),
            long_context: None,
        }
    }

    /// The buffer and texture read rates (bytes per second) this report's bounds were
    /// computed from: the faster of each roofline's two readings where the run restated its
    /// bounds at the end, the start reading otherwise. `None` in files without read
    /// rooflines.
    pub fn bound_read_rates(&self) -> Option<(f64, f64)> {
        let faster = |start: Option<f64>, end: Option<f64>| {
            let start = start?;
            Some(match end {
                Some(end) if self.bounds_use_faster_read => start.max(end),
                _ => start,
            })
        };
        Some((
            faster(
                self.buffer_read_bytes_per_s,
                self.buffer_read_end_bytes_per_s,
            )?,
            faster(
                self.texture_read_bytes_per_s,
                self.texture_read_end_bytes_per_s,
            )?,
        ))
    }

    /// The matmul rate (FLOP/s) this report's bounds were computed from: the faster of the
    /// yardstick's two readings where the run restated its bounds at the end, the start
    /// reading otherwise.
    pub fn bound_matmul_rate(&self) -> f64 {
        match self.matmul_end_flops {
            Some(end) if self.bounds_use_faster_read => self.matmul_flops.max(end),
            _ => self.matmul_flops,
        }
    }

    /// How much the matmul yardstick trails the fastest attention case's flop rate, `None`
    /// when it beats them all (only then is the compute side of a bound a bound).
    pub fn yardstick_shortfall(&self) -> Option<f64> {
        let mut rates: Vec<f64> = self.figures.iter().filter_map(Figure::flop_rate).collect();
        rates.extend(self.long_context.iter().flat_map(LongContext::flop_rates));
        bound::yardstick_shortfall(self.bound_matmul_rate(), &rates)
    }
}

fn complete_by_default() -> bool {
    true
}

/// What a bench run reports while it runs.
pub enum BenchEvent<'a> {
    /// A case is about to run (for progress display).
    Starting(&'a str),
    /// A figure was added. The report holds every figure so far, with the targets judged on
    /// them and `complete` false until the run ends: saving it keeps a failed run's figures.
    Measured(&'a BenchReport),
}

/// A report with every field set, for tests of readers and renderers.
#[cfg(test)]
pub(crate) fn sample_report() -> BenchReport {
    use crate::cache::KvFormat;
    {
        let mut decode = Figure::blank(
            Section::Decode,
            "qwen2.5-7b f16 batch 8 ctx 4096",
            Unit::Gigabytes,
        );
        decode.seconds = Some(0.01);
        decode.spread = Some(0.03);
        decode.value = Some(12.5);
        decode.ratio = Some(0.9);
        decode.flops = Some(3e8);
        decode.bound_seconds = Some(0.008);
        decode.binding = Some(Binding::Memory);
        decode.intensity = Some(1.75);
        decode.of_bound = Some(0.8);
        BenchReport {
            copy_bytes_per_s: 1e10,
            copy_end_bytes_per_s: Some(1.1e10),
            complete: true,
            matmul_flops: 5e9,
            matmul_end_flops: Some(6e9),
            matmul_tries: vec![
                MatmulTry {
                    kernel: "matmulflat_r16c4".into(),
                    flops: Some(5e9),
                    error: None,
                },
                MatmulTry {
                    kernel: "matmul".into(),
                    flops: None,
                    error: Some("refused".into()),
                },
            ],
            buffer_read_bytes_per_s: Some(8e9),
            texture_read_bytes_per_s: Some(2e10),
            buffer_read_end_bytes_per_s: Some(7.5e9),
            texture_read_end_bytes_per_s: Some(2.2e10),
            bounds_use_faster_read: true,
            working_sets: vec![WorkingSetRates {
                bytes: 32 << 20,
                buffer_read: 9e9,
                texture_read: 4e10,
                buffer_write: 7e9,
                texture_write: 1e10,
            }],
            buffer_read_order: Some(AccessOrder::Interleaved),
            texture_read_order: Some(AccessOrder::Runs),
            buffer_write_bytes_per_s: Some(6e9),
            texture_write_bytes_per_s: Some(9e9),
            buffer_write_order: Some(AccessOrder::Runs),
            texture_write_order: Some(AccessOrder::Interleaved),
            kv_backing: Some(KvBacking::Textures),
            figures: vec![decode],
            targets: vec![TargetCheck {
                target: "t".into(),
                measured: "m".into(),
                met: Some(false),
            }],
            long_context: Some(LongContext {
                contexts: vec![1024, 4096, 8192],
                curves: vec![LongCurve {
                    model: "qwen2.5-7b".into(),
                    format: KvFormat::Int4,
                    batch: 8,
                    points: vec![LongPoint {
                        context: 1024,
                        seconds: 1e-3,
                        spread: Some(0.04),
                        ns_per_position: 122.0,
                        of_bound: 0.4,
                        binding: Binding::Compute,
                        flops: 2e6,
                        machine_speed: Some(0.97),
                    }],
                    stopped: Some("stopped at ctx 4096: too big".into()),
                    flatness_pair: None,
                }],
            }),
            ..BenchReport::new(AdapterReport::default(), Clock::GpuTimestamps, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_report() -> BenchReport {
        sample_report()
    }

    #[test]
    fn working_sets_step_by_powers_of_two_and_their_midpoints_below_the_streaming_source() {
        const MIB: u64 = 1 << 20;
        let mib = |sizes: Vec<u64>| {
            sizes
                .iter()
                .map(|&b| b as f64 / MIB as f64)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            mib(working_set_sizes(128 * MIB)),
            [
                1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0
            ]
        );
        // Strictly below the source: a 96 MiB source stops at 64.
        assert_eq!(mib(working_set_sizes(96 * MIB)).last(), Some(&64.0));
        assert!(working_set_sizes(MIB).is_empty());
    }

    #[test]
    fn bounds_read_the_faster_reading_only_where_the_run_restated_them() {
        let mut report = sample_report();
        // Start 8 / 20 GB/s, end 7.5 / 22.
        assert_eq!(report.bound_read_rates(), Some((8e9, 2.2e10)));
        report.bounds_use_faster_read = false;
        assert_eq!(report.bound_read_rates(), Some((8e9, 2e10)));
        report.texture_read_end_bytes_per_s = None;
        report.bounds_use_faster_read = true;
        assert_eq!(report.bound_read_rates(), Some((8e9, 2e10)));
        report.texture_read_bytes_per_s = None;
        assert_eq!(report.bound_read_rates(), None);
    }

    #[test]
    fn bounds_use_the_faster_yardstick_reading_only_where_the_run_restated_them() {
        let mut report = sample_report();
        // Start 5 GFLOP/s, end 6.
        assert_eq!(report.bound_matmul_rate(), 6e9);
        report.bounds_use_faster_read = false;
        assert_eq!(report.bound_matmul_rate(), 5e9);
        report.bounds_use_faster_read = true;
        report.matmul_end_flops = Some(4e9);
        assert_eq!(report.bound_matmul_rate(), 5e9);
        report.matmul_end_flops = None;
        assert_eq!(report.bound_matmul_rate(), 5e9);
    }

    #[test]
    fn a_version_2_report_round_trips_through_json() {
        let report = full_report();
        let text = serde_json::to_string_pretty(&report).unwrap();
        assert!(text.contains("\"binding\": \"memory\""), "{text}");
        assert!(text.contains("\"format\": \"int4\""), "{text}");
        // Sections and units keep the names files have always had.
        assert!(text.contains("\"section\": \"decode\""), "{text}");
        assert!(text.contains("\"unit\": \"GB/s\""), "{text}");
        assert!(
            text.contains("\"buffer_read_order\": \"interleaved\""),
            "{text}"
        );
        let back: BenchReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn sections_and_units_spell_as_in_the_json_and_on_the_command_line() {
        for section in [Section::Copy, Section::Matmul]
            .into_iter()
            .chain(Section::SELECTABLE)
        {
            let json = serde_json::to_string(&section).unwrap();
            assert_eq!(json, format!("\"{}\"", section.name()));
            let only = Section::selectable(section.name());
            assert_eq!(only.is_some(), Section::SELECTABLE.contains(&section));
        }
        for unit in [Unit::Gigabytes, Unit::Gigaflops, Unit::Millions] {
            let json = serde_json::to_string(&unit).unwrap();
            assert_eq!(json, format!("\"{}\"", unit.symbol()));
        }
    }

    #[test]
    fn a_version_1_report_still_reads_with_the_new_fields_absent() {
        let mut value = serde_json::to_value(full_report()).unwrap();
        let object = value.as_object_mut().unwrap();
        object.insert("version".into(), 1.into());
        for key in [
            "matmul_tries",
            "buffer_read_bytes_per_s",
            "texture_read_bytes_per_s",
            "buffer_read_order",
            "texture_read_order",
            "buffer_write_bytes_per_s",
            "texture_write_bytes_per_s",
            "buffer_write_order",
            "texture_write_order",
            "long_context",
        ] {
            assert!(object.remove(key).is_some(), "{key}");
        }
        let figure = object["figures"][0].as_object_mut().unwrap();
        for key in [
            "spread",
            "flops",
            "bound_seconds",
            "binding",
            "intensity",
            "of_bound",
        ] {
            assert!(figure.remove(key).is_some(), "{key}");
        }
        let dir = std::env::temp_dir().join(format!("pagekv-bench-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v1.json");
        std::fs::write(&path, value.to_string()).unwrap();
        let read = crate::report::file::read_any(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let crate::report::file::AnyFile::Bench(old) = read else {
            panic!("a bench file reads as a bench report");
        };
        assert_eq!(old.version, 1);
        assert_eq!(old.figures[0].of_bound, None);
        assert_eq!(old.figures[0].spread, None);
        assert_eq!(old.figures[0].binding, None);
        assert_eq!(old.figures[0].ratio, Some(0.9));
        assert!(old.matmul_tries.is_empty() && old.long_context.is_none());
        assert_eq!(old.yardstick_shortfall(), None);
    }
}
