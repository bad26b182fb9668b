//! One bench run: the rooflines first, then every planned case (or the long-context curves),
//! each figure stated against the same run's rooflines and its own roofline bound.

use super::bound;
use super::kernels::{self, AttentionCase, BenchSkip};
use super::machine_check::CaseChecks;
use super::plan::{PlannedCase, Work, plan};
use super::rates::{Demand, Rates, in_alternation};
use super::{BenchEvent, BenchOptions, BenchReport, Figure, working_set_sizes};
use super::{Section, Timing, Unit};
use super::{Stopwatch, long_context, targets};
use crate::cache::{CacheLayout, KvFormat, ModelGeometry};
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::{AttentionAlgorithm, Family, HalfDecode, Reductions, TileShape};
use crate::tool_kernels::matmul::MatmulShape;

/// Turns a case result into a figure: `amount / seconds` in units of 1e9 (`GB/s`,
/// `GFLOP/s`), its ratio to `roofline` (same units per second, unscaled) and its share of
/// its bound at `rates`.
fn figure(
    planned: &PlannedCase,
    unit: Unit,
    amount: f64,
    roofline: f64,
    (rates, demand): (&Rates, &Demand),
    result: Result<Timing, BenchSkip>,
) -> Result<Figure, GpuError> {
    let mut figure = Figure::blank(planned.section(), &planned.label, unit);
    match result {
        Ok(Timing {
            seconds, spread, ..
        }) => {
            figure.seconds = Some(seconds);
            figure.spread = Some(spread);
            figure.value = Some(amount / seconds / 1e9);
            figure.ratio = Some(amount / seconds / roofline);
            figure.flops = Some(demand.flops);
            state_bound(&mut figure, rates, demand);
        }
        Err(BenchSkip::Skipped(reason)) => figure.skipped = Some(reason),
        Err(BenchSkip::Failed(e)) => return Err(e),
    }
    Ok(figure)
}

/// Sets a timed figure's bound columns: `demand` at `rates`.
fn state_bound(figure: &mut Figure, rates: &Rates, demand: &Demand) {
    let Some(seconds) = figure.seconds else {
        return;
    };
    let bound = rates.bound(demand);
    figure.bound_working_set = rates.working_set_for(demand.working_set());
    figure.bound_seconds = Some(bound.seconds);
    figure.binding = Some(bound.binding);
    figure.intensity = Some(bound.intensity);
    figure.of_bound = Some(bound::of_bound(bound.seconds, seconds));
}

/// Where a timed result sits in the report, so its bound can be restated at the end of the
/// run.
pub(super) enum Slot {
    /// `report.figures[i]`.
    Figure(usize),
    /// The point at `context` of the long-context curve labelled `curve`.
    Point { curve: String, context: u32 },
}

/// The report under construction and who hears about it.
pub(super) struct Recorder<'o> {
    pub report: BenchReport,
    observer: &'o mut dyn FnMut(BenchEvent<'_>),
    /// What each timed figure and point demanded, for [`Recorder::restate_bounds`].
    demands: Vec<(Slot, Demand)>,
}

impl Recorder<'_> {
    pub fn starting(&mut self, case: &str) {
        (self.observer)(BenchEvent::Starting(case));
    }

    pub fn add(&mut self, figure: Figure) {
        self.report.figures.push(figure);
        self.measured();
    }

    /// Remembers what the result in `slot` demands.
    pub fn demanded(&mut self, slot: Slot, demand: Demand) {
        self.demands.push((slot, demand));
    }

    /// States every remembered result against its bound at `rates`.
    fn restate_bounds(&mut self, rates: &Rates) {
        for (slot, demand) in &self.demands {
            match slot {
                Slot::Figure(index) => {
                    state_bound(&mut self.report.figures[*index], rates, demand);
                }
                Slot::Point { curve, context } => {
                    let bound = rates.bound(demand);
                    let point = self
                        .report
                        .long_context
                        .iter_mut()
                        .flat_map(|long| &mut long.curves)
                        .filter(|c| c.label() == *curve)
                        .flat_map(|c| &mut c.points)
                        .find(|p| p.context == *context)
                        .expect("every remembered point was stored");
                    point.of_bound = bound::of_bound(bound.seconds, point.seconds);
                    point.binding = bound.binding;
                }
            }
        }
    }

    /// Re-judges the targets and tells the observer the report changed.
    pub fn measured(&mut self) {
        self.report.targets = targets::judge(&self.report);
        (self.observer)(BenchEvent::Measured(&self.report));
    }
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
    observer(BenchEvent::Starting(
        "read rooflines (buffer and texture, each in two orders; the faster is kept)",
    ));
    let reads = kernels::read_rooflines(ctx, &watch, repeats, 1 << 30)?;
    let (buffer_read, texture_read) = (reads.buffer.0, reads.texture.0);
    observer(BenchEvent::Starting(
        "write rooflines (buffer and texture, each in two orders; the faster is kept)",
    ));
    let writes = kernels::write_rooflines(ctx, &watch, repeats, 1 << 30)?;
    let (buffer_write, texture_write) = (writes.buffer.0, writes.texture.0);
    let rungs = working_set_sizes(reads.bytes.min(writes.bytes));
    if !rungs.is_empty() {
        observer(BenchEvent::Starting(
            "read and write rooflines on smaller working sets (a case whose bytes fit one is bounded at its rates)",
        ));
    }
    let working_sets =
        kernels::working_set_rooflines(ctx, &watch, repeats, &rungs, (&reads, &writes))?;
    let size = if options.quick { 512 } else { 1024 };
    observer(BenchEvent::Starting(
        "matmul yardstick (each register-tiled shape in turn; the fastest is kept)",
    ));
    let candidates = MatmulShape::candidates(ctx);
    let tries = kernels::matmul_yardstick(ctx, &watch, repeats, size, &candidates)?;
    let (best, matmul) = tries
        .iter()
        .filter_map(|t| Some((t.kernel.clone(), t.flops?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("matmul_yardstick fails when no shape ran");
    let rates = Rates {
        copy,
        buffer_read,
        texture_read,
        buffer_write,
        texture_write,
        working_sets: working_sets.clone(),
        matmul,
        yardstick: candidates
            .into_iter()
            .find(|shape| shape.name() == best)
            .expect("the yardstick is one of the candidates"),
    };
    let tiled = options
        .kernels
        .algorithm
        .unwrap_or_else(|| AttentionAlgorithm::for_device(ctx))
        == AttentionAlgorithm::Tiled;
    // What the tiled decode's splits will be sized to (the probe runs once per device and
    // footprint; the cases reuse its answer).
    let concurrent_workgroups =
        match TileShape::choose(Family::Decode, 64, ctx.capabilities.max_workgroup_storage) {
            Some(tiles) if tiled => {
                observer(BenchEvent::Starting(
                    "occupancy probe (sizes the tiled decode's splits)",
                ));
                Some(crate::kernels::occupancy::concurrent_workgroups(
                    ctx,
                    tiles.bytes(64),
                )?)
            }
            _ => None,
        };
    let mut rec = Recorder {
        report: BenchReport {
            copy_bytes_per_s: copy,
            matmul_flops: matmul,
            matmul_tries: tries,
            buffer_read_bytes_per_s: Some(buffer_read),
            texture_read_bytes_per_s: Some(texture_read),
            buffer_read_order: Some(reads.buffer.1),
            texture_read_order: Some(reads.texture.1),
            working_sets,
            buffer_write_bytes_per_s: Some(buffer_write),
            texture_write_bytes_per_s: Some(texture_write),
            buffer_write_order: Some(writes.buffer.1),
            texture_write_order: Some(writes.texture.1),
            kv_backing: Some(AttentionAlgorithm::pool_backing(
                options.kernels.algorithm,
                ctx,
                &CacheLayout {
                    geometry: ModelGeometry::qwen2_5_0_5b(),
                    block_size: kernels::BENCH_BLOCK_SIZE,
                    dtype: KvFormat::F16,
                },
            )),
            attention: Some(
                options
                    .kernels
                    .algorithm
                    .unwrap_or_else(|| AttentionAlgorithm::for_device(ctx)),
            ),
            attention_forced: options.kernels.algorithm.is_some(),
            reductions: tiled.then(|| {
                options
                    .kernels
                    .reductions
                    .unwrap_or_else(|| Reductions::for_device(ctx))
            }),
            reductions_forced: options.kernels.reductions.is_some(),
            half_decode: Some(
                options
                    .kernels
                    .half_decode
                    .unwrap_or_else(|| HalfDecode::for_device(ctx)),
            ),
            half_decode_forced: options.kernels.half_decode.is_some(),
            concurrent_workgroups,
            ..BenchReport::new(ctx.report(), watch.clock(), options.quick)
        },
        observer,
        demands: Vec::new(),
    };
    let mut copy_figure = Figure::blank(
        Section::Copy,
        &format!("vec4 copy of {}", crate::gpu::human_bytes(copy_bytes)),
        Unit::Gigabytes,
    );
    copy_figure.seconds = Some(2.0 * copy_bytes as f64 / copy);
    copy_figure.value = Some(copy / 1e9);
    copy_figure.ratio = Some(1.0);
    rec.add(copy_figure);
    for (stream, verb, other) in [(&reads, "read", "writes"), (&writes, "write", "reads")] {
        let paths = [("buffer", stream.buffer.0), ("texture", stream.texture.0)];
        for (path, rate) in paths {
            let mut figure = Figure::blank(
                Section::Copy,
                &format!(
                    "{path} {verb} of {} (no {other})",
                    crate::gpu::human_bytes(stream.bytes)
                ),
                Unit::Gigabytes,
            );
            figure.seconds = Some(stream.bytes as f64 / rate);
            figure.value = Some(rate / 1e9);
            figure.ratio = Some(rate / copy);
            rec.add(figure);
        }
    }
    let mut matmul_figure = Figure::blank(
        Section::Matmul,
        &format!("f32 {size}x{size}x{size} {best}"),
        Unit::Gigaflops,
    );
    matmul_figure.seconds = Some(2.0 * (size as f64).powi(3) / matmul);
    matmul_figure.value = Some(matmul / 1e9);
    matmul_figure.ratio = Some(1.0);
    rec.add(matmul_figure);
    if let Some(long) = &options.long_context {
        long_context::run(ctx, &watch, repeats, long, &rates, options, &mut rec)?;
    } else {
        run_grid(ctx, &watch, repeats, options, &rates, &mut rec)?;
    }
    rec.starting("copy and read rooflines and the matmul yardstick again (drift over the run)");
    rec.report.copy_end_bytes_per_s = Some(copy_roofline()?.0);
    let reads_end = kernels::read_rooflines(ctx, &watch, repeats, 1 << 30)?;
    rec.report.buffer_read_end_bytes_per_s = Some(reads_end.buffer.0);
    rec.report.texture_read_end_bytes_per_s = Some(reads_end.texture.0);
    let matmul_end = kernels::matmul_yardstick(ctx, &watch, repeats, size, &[rates.yardstick])?
        .first()
        .and_then(|t| t.flops)
        .expect("matmul_yardstick fails when no shape ran");
    rec.report.matmul_end_flops = Some(matmul_end);
    // A bound is only a bound at the fastest reading of each rate.
    rec.restate_bounds(
        &rates
            .clone()
            .with_faster_reads(reads_end.buffer.0, reads_end.texture.0)
            .with_faster_matmul(matmul_end),
    );
    rec.report.bounds_use_faster_read = true;
    rec.report.complete = true;
    rec.report.targets = targets::judge(&rec.report);
    Ok(rec.report)
}

/// Every planned case of the grid, in order.
fn run_grid(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    options: &BenchOptions,
    rates: &Rates,
    rec: &mut Recorder<'_>,
) -> Result<(), GpuError> {
    let cap = options.max_pool_bytes;
    let host_scale = if options.quick { 1 } else { 4 };
    let planned_cases = plan(options);
    let mut checks = CaseChecks::new(ctx, rates.yardstick)?;
    // Each measured figure's index and its machine check's seconds, turned into speeds
    // against the run's fastest check once every case has run.
    let mut checked: Vec<(usize, f64)> = Vec::new();
    // Results of a group's cases, timed together when its first case comes up, each with its
    // demand (the others' bytes in its working set), and the machine check's seconds around
    // them.
    type Grouped = (Result<Timing, BenchSkip>, Demand);
    let mut group_results: Option<(u32, std::vec::IntoIter<Grouped>)> = None;
    let mut group_check: Option<f64> = None;
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
        let (result, amount, unit, roofline, demand) = match &planned.work {
            Work::Decode(case) | Work::Format(case) if planned.group.is_some() => {
                let group = planned.group.expect("matched");
                if group_results.as_ref().is_none_or(|(g, _)| *g != group) {
                    let results = kernels::decode_interleaved(
                        ctx,
                        watch,
                        repeats,
                        &group_cases,
                        cap,
                        kernels::Alternation::EverySample,
                    );
                    group_check = Some(checks.after_case(ctx)?);
                    group_f16 = group_cases
                        .iter()
                        .zip(&results)
                        .find(|(c, _)| c.dtype == KvFormat::F16)
                        .and_then(|(_, r)| r.as_ref().ok().map(|t| t.seconds));
                    let demands = in_alternation(
                        group_cases.iter().map(|c| Demand::decode(ctx, c)),
                        results.iter().map(Result::is_ok),
                    );
                    let grouped: Vec<Grouped> = results.into_iter().zip(demands).collect();
                    group_results = Some((group, grouped.into_iter()));
                }
                let (_, results) = group_results.as_mut().expect("set above");
                let (result, demand) = results.next().expect("one result per grouped case");
                (
                    result,
                    case.kv_bytes() as f64,
                    Unit::Gigabytes,
                    rates.copy,
                    demand,
                )
            }
            Work::Decode(case) | Work::Format(case) => (
                kernels::decode(ctx, watch, repeats, case, cap),
                case.kv_bytes() as f64,
                Unit::Gigabytes,
                rates.copy,
                Demand::decode(ctx, case),
            ),
            Work::Prefill(case) => {
                let demand = Demand::prefill(ctx, case);
                (
                    kernels::prefill(ctx, watch, repeats, case, cap),
                    demand.flops,
                    Unit::Gigaflops,
                    rates.matmul,
                    demand,
                )
            }
            Work::Append(case) => {
                let (read, written) = kernels::append_bytes(case);
                (
                    kernels::append(ctx, watch, repeats, case, cap),
                    (read + written) as f64,
                    Unit::Gigabytes,
                    rates.copy,
                    Demand::append(ctx, case),
                )
            }
            Work::Host(op) => {
                let mut host = Figure::blank(Section::Host, &planned.label, Unit::Millions);
                host.value = Some(op.rate(host_scale) / 1e6);
                rec.add(host);
                continue;
            }
        };
        let mut figure = figure(planned, unit, amount, roofline, (rates, &demand), result)?;
        if figure.seconds.is_some() {
            rec.demanded(Slot::Figure(rec.report.figures.len()), demand);
            let check = match planned.group {
                Some(_) => group_check.expect("set when the group was timed"),
                None => checks.after_case(ctx)?,
            };
            checked.push((rec.report.figures.len(), check));
        }
        if matches!(planned.work, Work::Format(_)) {
            figure.time_vs_f16 = figure.seconds.zip(group_f16).map(|(t, f16)| t / f16);
        }
        rec.add(figure);
    }
    for (index, seconds) in checked {
        rec.report.figures[index].machine_speed = Some(checks.speed(seconds));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::rates::Path;

    #[test]
    fn restating_puts_every_remembered_figure_and_point_at_the_new_rates() {
        let report = crate::bench::sample_report();
        let curve = report.long_context.as_ref().unwrap().curves[0].label();
        let mut observer = |_: BenchEvent<'_>| {};
        let mut rec = Recorder {
            report,
            observer: &mut observer,
            demands: Vec::new(),
        };
        // The figure took 10 ms, the point 1 ms.
        rec.demanded(
            Slot::Figure(0),
            Demand {
                streams: [(80e6, Path::TextureRead), (0.0, Path::BufferRead)],
                flops: 0.0,
                alternated_bytes: 0.0,
            },
        );
        rec.demanded(
            Slot::Point {
                curve,
                context: 1024,
            },
            Demand {
                streams: [(1e6, Path::TextureRead), (0.0, Path::BufferRead)],
                flops: 6e6,
                alternated_bytes: 0.0,
            },
        );
        let rates = Rates {
            copy: 1e9,
            buffer_read: 1e9,
            texture_read: 16e9,
            buffer_write: 1e9,
            texture_write: 1e9,
            working_sets: Vec::new(),
            matmul: 6e9,
            yardstick: MatmulShape::Tiled,
        };
        rec.restate_bounds(&rates);
        let figure = &rec.report.figures[0];
        // 80 MB at 16 GB/s: 5 ms of the figure's 10.
        assert_eq!(figure.bound_seconds, Some(0.005));
        assert_eq!(figure.of_bound, Some(0.5));
        assert_eq!(figure.binding, Some(bound::Binding::Memory));
        assert_eq!(figure.bound_working_set, None);
        // With a working set that holds its 80 MB read twice as fast, the figure is
        // restated at that rate and says which working set bound it.
        let rung = crate::bench::WorkingSetRates {
            bytes: 128 << 20,
            buffer_read: 1e9,
            texture_read: 32e9,
            buffer_write: 1e9,
            texture_write: 1e9,
        };
        rec.restate_bounds(&Rates {
            working_sets: vec![rung],
            ..rates.clone()
        });
        let figure = &rec.report.figures[0];
        assert_eq!(figure.bound_seconds, Some(0.0025));
        assert_eq!(figure.bound_working_set, Some(128 << 20));
        assert_eq!(figure.intensity, Some(0.0));
        // 6 MFLOP at 6 GFLOP/s: the whole of the point's 1 ms.
        let point = &rec.report.long_context.as_ref().unwrap().curves[0].points[0];
        assert_eq!(point.of_bound, 1.0);
        assert_eq!(point.binding, bound::Binding::Compute);
    }
}
