//! `pagekv bench --long-context`: decode time per KV position per layer from 1K tokens of
//! context upward, doubling, for both model geometries, several KV formats and two batch
//! sizes. A paged decode that reads every block once should cost the same per position at
//! any context; the curve's flatness (ns per position at the longest context over that at
//! 4K) says how close it comes. Each point is also stated against its roofline bound.
//!
//! A curve stops at the first context the adapter or `--max-pool-gib` refuses, or whose
//! estimated time (twice the previous point's, per sample) passes the per-point budget; the
//! curve records where and why. The grid's machine check runs after every point too, so a
//! point measured while other work slowed the machine says so.

use serde::{Deserialize, Serialize};

use super::bound::{self, Binding};
use super::kernels::{self, AttentionCase, BenchSkip};
use super::machine_check::CaseChecks;
use super::plan::geometries;
use super::rates::{Demand, Rates};
use super::run::{Recorder, Slot};
use super::stopwatch::{MAX_SAMPLES, Stopwatch};
use crate::cache::KvFormat;
use crate::gpu::{GpuContext, GpuError};

/// The context the flatness is measured against.
pub const FLATNESS_REFERENCE: u32 = 4096;

/// The flatness target: ns per position at the longest context within this factor of 4K's.
pub const FLATNESS_TARGET: f64 = 1.3;

/// How many times a curve's 4K and longest points are timed again, each in turn, once the
/// curve is done ([`FlatnessPair`]), budget allowing ([`flatness_rounds`]).
pub const FLATNESS_ROUNDS: u32 = 3;

/// What `--long-context` measures.
#[derive(Clone, Debug, PartialEq)]
pub struct LongContextOptions {
    /// Contexts, in order (doubling).
    pub contexts: Vec<u32>,
    /// KV formats.
    pub formats: Vec<KvFormat>,
    /// Batch sizes.
    pub batches: Vec<u32>,
    /// A point whose estimated time passes this many seconds is skipped, with the rest of
    /// its curve.
    pub point_budget_s: f64,
    /// Measure only the curves whose label (`qwen2.5-0.5b int4 batch 8`) contains one of
    /// these texts; empty measures every curve. A noisy curve is rerun alone this way.
    pub curves: Vec<String>,
}

impl LongContextOptions {
    /// The full sweep: 1K to 128K, f16, int8, int4 and fp8-e4m3, batch 1 and 8.
    pub fn full() -> Self {
        Self {
            contexts: doubling(1024, 131_072),
            formats: vec![
                KvFormat::F16,
                KvFormat::Int8,
                KvFormat::Int4,
                KvFormat::Fp8E4M3,
            ],
            batches: vec![1, 8],
            point_budget_s: 60.0,
            curves: Vec::new(),
        }
    }

    /// The CI sweep: 1K to 16K, f16, batch 1.
    pub fn quick() -> Self {
        Self {
            contexts: doubling(1024, 16_384),
            formats: vec![KvFormat::F16],
            batches: vec![1],
            point_budget_s: 20.0,
            curves: Vec::new(),
        }
    }

    /// The labels of the curves this sweep measures, in the order it measures them.
    pub fn curve_labels(&self) -> Vec<String> {
        let mut labels = Vec::new();
        for geometry in geometries() {
            for &format in &self.formats {
                for &batch in &self.batches {
                    labels.push(curve_label(&geometry.name, format, batch));
                }
            }
        }
        labels.retain(|label| self.keeps(label));
        labels
    }

    /// Whether the `--case` filter keeps the curve labelled `label`.
    fn keeps(&self, label: &str) -> bool {
        self.curves.is_empty() || self.curves.iter().any(|t| label.contains(t.as_str()))
    }
}

/// `model format batch N`: a curve's label, which `--case` filters on.
fn curve_label(model: &str, format: KvFormat, batch: u32) -> String {
    format!("{model} {} batch {batch}", format.name())
}

/// `from`, `2 from`, ... up to `to` inclusive.
fn doubling(from: u32, to: u32) -> Vec<u32> {
    std::iter::successors(Some(from), |c| c.checked_mul(2))
        .take_while(|&c| c <= to)
        .collect()
}

/// One measured point of a curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongPoint {
    /// Tokens per sequence.
    pub context: u32,
    /// Median kernel seconds of one decode step (one layer).
    pub seconds: f64,
    /// Its samples' interquartile range over the median (absent in older files).
    #[serde(default)]
    pub spread: Option<f64>,
    /// `seconds / (batch x context)`, in nanoseconds: time per KV position per layer.
    pub ns_per_position: f64,
    /// The step's roofline bound over its measured time.
    pub of_bound: f64,
    /// Which side binds it.
    pub binding: Binding,
    /// Flops the step counts ([`bound::decode_flops`]).
    #[serde(default)]
    pub flops: f64,
    /// The machine check's speed around the point, as for a grid figure
    /// ([`super::Figure::machine_speed`]); absent in older files.
    #[serde(default)]
    pub machine_speed: Option<f64>,
}

/// One (model, format, batch) curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongCurve {
    /// Model geometry name.
    pub model: String,
    /// KV format.
    pub format: KvFormat,
    /// Sequences per step.
    pub batch: u32,
    /// Points in context order.
    pub points: Vec<LongPoint>,
    /// Where the curve stopped short of the last planned context, and why.
    #[serde(default)]
    pub stopped: Option<String>,
    /// The two points the flatness divides, timed again in alternating rounds once the
    /// curve is done; `None` in older files, for curves that do not reach past 4K, and where the two
    /// could not be set up together.
    #[serde(default)]
    pub flatness_pair: Option<FlatnessPair>,
}

/// The reference (4K) and longest points of a curve timed again once the curve is done,
/// each whole in turn, over [`FLATNESS_ROUNDS`] rounds ([`kernels::Alternation::Blocks`]):
/// the sweep times its points minutes apart, so a slow spell during one of the two could
/// pass for a cliff (or hide one); over alternating rounds a slow spell lands on a round of
/// each, and each keeps the cache state its own back-to-back steps leave, as in the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlatnessPair {
    /// Seconds of one step at the reference context and at the longest: each the median
    /// of its rounds' medians.
    pub seconds: [f64; 2],
    /// The interquartile range of all of each one's samples over its median.
    pub spreads: [f64; 2],
    /// The machine check's speed right after the pair, as for a point.
    pub machine_speed: Option<f64>,
}

impl LongCurve {
    /// `model format batch N`, as tables label it.
    pub fn label(&self) -> String {
        curve_label(&self.model, self.format, self.batch)
    }

    /// The two points its flatness divides (the reference context's and the longest), where
    /// the curve reaches past the reference.
    pub fn flatness_points(&self) -> Option<[&LongPoint; 2]> {
        let reference = self
            .points
            .iter()
            .find(|p| p.context == FLATNESS_REFERENCE)?;
        let longest = self.points.iter().max_by_key(|p| p.context)?;
        (longest.context > reference.context).then_some([reference, longest])
    }

    /// ns per position at the longest context over that at 4K ([`bound::flatness`]): from
    /// the [`FlatnessPair`] where the run timed one, else from the sweep's points.
    pub fn flatness(&self) -> Option<f64> {
        match (self.flatness_pair, self.flatness_points()) {
            (Some(pair), Some([reference, longest])) => bound::flatness(
                &[
                    (
                        reference.context,
                        pair.seconds[0] / reference.context as f64,
                    ),
                    (longest.context, pair.seconds[1] / longest.context as f64),
                ],
                FLATNESS_REFERENCE,
            ),
            _ => self.sweep_flatness(),
        }
    }

    /// The flatness from the sweep's own points, timed minutes apart.
    pub fn sweep_flatness(&self) -> Option<f64> {
        let points: Vec<(u32, f64)> = self
            .points
            .iter()
            .map(|p| (p.context, p.ns_per_position))
            .collect();
        bound::flatness(&points, FLATNESS_REFERENCE)
    }
}

/// Every curve of a `--long-context` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongContext {
    /// The contexts planned for every curve.
    pub contexts: Vec<u32>,
    /// The curves, in run order.
    pub curves: Vec<LongCurve>,
}

impl LongContext {
    /// Every point's flop rate, FLOP/s.
    pub fn flop_rates(&self) -> impl Iterator<Item = f64> + '_ {
        self.curves
            .iter()
            .flat_map(|c| &c.points)
            .filter(|p| p.flops > 0.0 && p.seconds > 0.0)
            .map(|p| p.flops / p.seconds)
    }

    /// The worst flatness over the curves that have one.
    pub fn worst_flatness(&self) -> Option<(f64, &LongCurve)> {
        self.curves
            .iter()
            .filter_map(|c| Some((c.flatness()?, c)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }
}

/// Estimated seconds to time a point whose step takes about `step_s`: the warm-up and the
/// samples the stopwatch takes (at least `repeats`, more until `min_total_s`).
pub fn estimate_point_seconds(step_s: f64, repeats: u32, min_total_s: f64) -> f64 {
    let samples = (repeats as f64).max((min_total_s / step_s).ceil().min(MAX_SAMPLES as f64));
    step_s * (samples + 1.0)
}

/// How many rounds a curve's [`FlatnessPair`] is timed in: [`FLATNESS_ROUNDS`], or as many
/// as `budget_s` (the per-point budget) holds at `per_round_s` each, at least one.
pub fn flatness_rounds(per_round_s: f64, budget_s: f64) -> u32 {
    let fit = (budget_s / per_round_s.max(f64::MIN_POSITIVE)).floor();
    fit.clamp(1.0, FLATNESS_ROUNDS as f64) as u32
}

/// A curve's reference and longest cases timed again in `rounds` alternating blocks
/// ([`kernels::Alternation::Blocks`]); `None` where the two could not be set up together (both
/// pools at once can pass a limit the longest alone did not), and the flatness then comes
/// from the sweep's points.
fn time_pair(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    cases: &[AttentionCase; 2],
    rounds: u32,
    max_pool_bytes: u64,
) -> Result<Option<FlatnessPair>, GpuError> {
    let alternation = kernels::Alternation::Blocks { rounds };
    let timed =
        kernels::decode_interleaved(ctx, watch, repeats, cases, max_pool_bytes, alternation);
    match <[_; 2]>::try_from(timed).expect("one result per case") {
        [Ok(reference), Ok(longest)] => Ok(Some(FlatnessPair {
            seconds: [reference.seconds, longest.seconds],
            spreads: [reference.spread, longest.spread],
            machine_speed: None,
        })),
        [Err(BenchSkip::Failed(e)), _] | [_, Err(BenchSkip::Failed(e))] => Err(e),
        _ => Ok(None),
    }
}

/// Runs every curve, storing each point in the report as it is measured, with the machine
/// check on the run's yardstick shape after each point.
pub(super) fn run(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    options: &LongContextOptions,
    rates: &Rates,
    bench: &super::BenchOptions,
    rec: &mut Recorder<'_>,
) -> Result<(), GpuError> {
    rec.report.long_context = Some(LongContext {
        contexts: options.contexts.clone(),
        curves: Vec::new(),
    });
    let sweep = Sweep {
        ctx,
        watch,
        repeats,
        options,
        rates,
        bench,
    };
    let mut checks = PendingChecks {
        checks: CaseChecks::new(ctx, rates.yardstick)?,
        seconds: Vec::new(),
    };
    for geometry in geometries() {
        for &format in &options.formats {
            for &batch in &options.batches {
                let mut curve = LongCurve {
                    model: geometry.name.clone(),
                    format,
                    batch,
                    points: Vec::new(),
                    stopped: None,
                    flatness_pair: None,
                };
                if options.keeps(&curve.label()) {
                    let case_at = |context| AttentionCase {
                        geometry: geometry.clone(),
                        dtype: format,
                        batch,
                        context,
                        kernels: bench.kernels,
                    };
                    sweep.points(rec, &mut checks, &mut curve, &case_at)?;
                    sweep.flatness_pair(rec, &mut checks, &mut curve, &case_at)?;
                    store(rec, &curve);
                }
            }
        }
    }
    checks.settle(rec.report.long_context.as_mut().expect("set above"));
    rec.measured();
    Ok(())
}

/// What every curve of a run shares.
struct Sweep<'a> {
    ctx: &'a GpuContext,
    watch: &'a Stopwatch,
    repeats: u32,
    options: &'a LongContextOptions,
    rates: &'a Rates,
    bench: &'a super::BenchOptions,
}

impl Sweep<'_> {
    /// Times `curve`'s points in context order, storing each as it is measured, until the
    /// last context, a refusal, or a point whose estimated time passes the budget.
    fn points(
        &self,
        rec: &mut Recorder<'_>,
        checks: &mut PendingChecks,
        curve: &mut LongCurve,
        case_at: &dyn Fn(u32) -> AttentionCase,
    ) -> Result<(), GpuError> {
        let (ctx, budget) = (self.ctx, self.options.point_budget_s);
        for &context in &self.options.contexts {
            if let Some(prev) = curve.points.last() {
                let estimate = self.estimate(2.0 * prev.seconds);
                if estimate > budget {
                    curve.stopped = Some(format!(
                        "stopped before ctx {context}: estimated {estimate:.0} s to time, over the {budget:.0} s budget per point"
                    ));
                    return Ok(());
                }
            }
            rec.starting(&format!("long-context {} ctx {context}", curve.label()));
            let case = case_at(context);
            let timing = match kernels::decode(
                ctx,
                self.watch,
                self.repeats,
                &case,
                self.bench.max_pool_bytes,
            ) {
                Ok(timing) => timing,
                Err(BenchSkip::Skipped(reason)) => {
                    curve.stopped = Some(format!("stopped at ctx {context}: {reason}"));
                    return Ok(());
                }
                Err(BenchSkip::Failed(e)) => return Err(e),
            };
            let seconds = timing.seconds;
            let demand = Demand::decode(ctx, &case);
            let bound = self.rates.bound(&demand);
            curve.points.push(LongPoint {
                context,
                seconds,
                spread: Some(timing.spread),
                ns_per_position: seconds * 1e9 / (curve.batch as f64 * context as f64),
                of_bound: bound::of_bound(bound.seconds, seconds),
                binding: bound.binding,
                flops: demand.flops,
                machine_speed: None,
            });
            let slot = Slot::Point {
                curve: curve.label(),
                context,
            };
            rec.demanded(slot, demand);
            checks.after(ctx, curve.label(), Some(context))?;
            store(rec, curve);
        }
        Ok(())
    }

    /// Times `curve`'s reference and longest points again in rounds ([`FlatnessPair`]),
    /// where it reaches past the reference.
    fn flatness_pair(
        &self,
        rec: &mut Recorder<'_>,
        checks: &mut PendingChecks,
        curve: &mut LongCurve,
        case_at: &dyn Fn(u32) -> AttentionCase,
    ) -> Result<(), GpuError> {
        let Some(points) = curve.flatness_points() else {
            return Ok(());
        };
        let per_round = points.iter().map(|p| self.estimate(p.seconds)).sum();
        let rounds = flatness_rounds(per_round, self.options.point_budget_s);
        let cases = points.map(|p| case_at(p.context));
        rec.starting(&format!(
            "long-context {}: ctx {} and ctx {} again, each in turn, {rounds} rounds (the flatness divides these)",
            curve.label(),
            cases[0].context,
            cases[1].context
        ));
        let (ctx, pool) = (self.ctx, self.bench.max_pool_bytes);
        curve.flatness_pair = time_pair(ctx, self.watch, self.repeats, &cases, rounds, pool)?;
        if curve.flatness_pair.is_some() {
            checks.after(ctx, curve.label(), None)?;
        }
        Ok(())
    }

    /// Seconds to time a point whose step takes about `step_s` ([`estimate_point_seconds`]).
    fn estimate(&self, step_s: f64) -> f64 {
        estimate_point_seconds(step_s, self.repeats, self.watch.min_total_seconds())
    }
}

/// The machine check after each point and each flatness pair, its seconds kept until every
/// point has run and the run's fastest check is known.
struct PendingChecks {
    checks: CaseChecks,
    /// Curve label, the point's context (`None`: the curve's flatness pair), seconds.
    seconds: Vec<(String, Option<u32>, f64)>,
}

impl PendingChecks {
    /// Checks the machine after a point (`Some(context)`) or a pair (`None`) of `curve`.
    fn after(
        &mut self,
        ctx: &GpuContext,
        curve: String,
        context: Option<u32>,
    ) -> Result<(), GpuError> {
        let seconds = self.checks.after_case(ctx)?;
        self.seconds.push((curve, context, seconds));
        Ok(())
    }

    /// Gives every checked point and pair of `long` its machine speed.
    fn settle(self, long: &mut LongContext) {
        for (label, context, seconds) in self.seconds {
            let speed = Some(self.checks.speed(seconds));
            let curve = long
                .curves
                .iter_mut()
                .find(|c| c.label() == label)
                .expect("every checked curve was stored");
            match context {
                Some(context) => {
                    let point = curve.points.iter_mut().find(|p| p.context == context);
                    point.expect("every checked point was stored").machine_speed = speed;
                }
                None => {
                    let pair = curve.flatness_pair.as_mut();
                    pair.expect("a pair is checked only once timed")
                        .machine_speed = speed;
                }
            }
        }
    }
}

/// Puts `curve` in the report (replacing its earlier state) and tells the observer.
fn store(rec: &mut Recorder<'_>, curve: &LongCurve) {
    let long = rec
        .report
        .long_context
        .as_mut()
        .expect("set at the start of the run");
    match long.curves.iter_mut().find(|c| c.label() == curve.label()) {
        Some(old) => *old = curve.clone(),
        None => long.curves.push(curve.clone()),
    }
    rec.measured();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(context: u32, ns: f64) -> LongPoint {
        LongPoint {
            context,
            seconds: ns * context as f64 * 1e-9,
            spread: None,
            ns_per_position: ns,
            of_bound: 0.5,
            binding: Binding::Memory,
            flops: 1e6,
            machine_speed: None,
        }
    }

    #[test]
    fn the_sweeps_double_from_1k() {
        let full = LongContextOptions::full();
        assert_eq!(full.contexts.first(), Some(&1024));
        assert_eq!(full.contexts.last(), Some(&131_072));
        assert_eq!(full.contexts.len(), 8);
        assert!(full.contexts.windows(2).all(|w| w[1] == 2 * w[0]));
        let quick = LongContextOptions::quick();
        assert_eq!(quick.contexts, [1024, 2048, 4096, 8192, 16384]);
        assert_eq!(
            (quick.formats.as_slice(), quick.batches.as_slice()),
            (&[KvFormat::F16][..], &[1][..])
        );
    }

    #[test]
    fn the_case_filter_keeps_the_curves_whose_label_contains_it() {
        let full = LongContextOptions::full();
        assert_eq!(full.curve_labels().len(), 16);
        assert_eq!(full.curve_labels()[0], "qwen2.5-0.5b f16 batch 1");
        let one = LongContextOptions {
            curves: vec!["0.5b int4 batch 8".into()],
            ..LongContextOptions::full()
        };
        assert_eq!(one.curve_labels(), ["qwen2.5-0.5b int4 batch 8"]);
        let either = LongContextOptions {
            curves: vec!["int8 batch 1".into(), "7b fp8".into()],
            ..LongContextOptions::full()
        };
        assert_eq!(
            either.curve_labels(),
            [
                "qwen2.5-0.5b int8 batch 1",
                "qwen2.5-7b int8 batch 1",
                "qwen2.5-7b fp8-e4m3 batch 1",
                "qwen2.5-7b fp8-e4m3 batch 8"
            ]
        );
        let none = LongContextOptions {
            curves: vec!["batch 999".into()],
            ..LongContextOptions::quick()
        };
        assert!(none.curve_labels().is_empty());
    }

    /// An f16 curve of model `m` at `batch` through `points`, with no pair timed again.
    fn curve(batch: u32, points: Vec<LongPoint>) -> LongCurve {
        LongCurve {
            model: "m".into(),
            format: KvFormat::F16,
            batch,
            points,
            stopped: None,
            flatness_pair: None,
        }
    }

    #[test]
    fn a_curve_reports_its_flatness_and_the_worst_is_found() {
        let flat = curve(
            1,
            vec![point(1024, 3.0), point(4096, 2.0), point(16384, 2.2)],
        );
        assert!((flat.flatness().unwrap() - 1.1).abs() < 1e-12);
        let steep = LongCurve {
            batch: 8,
            points: vec![point(4096, 1.0), point(8192, 1.5)],
            ..flat.clone()
        };
        let short = LongCurve {
            format: KvFormat::Int8,
            points: vec![point(1024, 1.0)],
            ..flat.clone()
        };
        assert_eq!(short.flatness(), None);
        let all = LongContext {
            contexts: vec![1024, 4096, 8192, 16384],
            curves: vec![flat, steep, short],
        };
        let (worst, curve) = all.worst_flatness().unwrap();
        assert!((worst - 1.5).abs() < 1e-12);
        assert_eq!(curve.label(), "m f16 batch 8");
    }

    #[test]
    fn the_flatness_divides_the_pair_timed_again_where_there_is_one() {
        // The sweep's 16K point landed in a slow spell: 1.5x from the points.
        let mut curve = curve(
            8,
            vec![point(1024, 3.0), point(4096, 2.0), point(16384, 3.0)],
        );
        assert!((curve.flatness().unwrap() - 1.5).abs() < 1e-12);
        // Timed again, the 16K step took 4.4x the 4K step's time for 4x the positions.
        curve.flatness_pair = Some(FlatnessPair {
            seconds: [1e-3, 4.4e-3],
            spreads: [0.01, 0.02],
            machine_speed: Some(0.95),
        });
        assert!((curve.flatness().unwrap() - 1.1).abs() < 1e-12);
        assert!((curve.sweep_flatness().unwrap() - 1.5).abs() < 1e-12);
        // A file from a build without pairs reads as having none.
        let mut json = serde_json::to_value(&curve).unwrap();
        json.as_object_mut().unwrap().remove("flatness_pair");
        let old: LongCurve = serde_json::from_value(json).unwrap();
        assert_eq!(old.flatness_pair, None);
        assert!((old.flatness().unwrap() - 1.5).abs() < 1e-12);
    }

    #[test]
    fn the_pair_takes_as_many_rounds_as_the_point_budget_holds() {
        assert_eq!(flatness_rounds(1.0, 60.0), FLATNESS_ROUNDS);
        assert_eq!(flatness_rounds(0.0, 60.0), FLATNESS_ROUNDS);
        assert_eq!(flatness_rounds(25.0, 60.0), 2);
        // Past the budget it is still timed once, as its points were.
        assert_eq!(flatness_rounds(100.0, 60.0), 1);
    }

    #[test]
    fn the_time_estimate_counts_warm_up_and_samples() {
        // A 1 s step: 3 samples plus the warm-up.
        assert_eq!(estimate_point_seconds(1.0, 3, 0.5), 4.0);
        // A 10 ms step is sampled until 0.5 s: 50 samples plus the warm-up.
        assert!((estimate_point_seconds(0.01, 3, 0.5) - 0.51).abs() < 1e-9);
        // Never more than the stopwatch's cap.
        assert!(estimate_point_seconds(1e-6, 3, 0.5) <= (MAX_SAMPLES as f64 + 1.0) * 1e-6);
    }
}
