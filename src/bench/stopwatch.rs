//! Kernel timing for benches: GPU timestamps written at the start and end of the timed pass
//! where the adapter has them, otherwise wall clock from submit to fence. Every figure says
//! which.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::gpu::{GpuContext, GpuError};

/// How a bench figure was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// Timestamp queries around the pass: kernel time only.
    GpuTimestamps,
    /// Wall clock around submit and fence wait: includes submission overhead.
    WallClock,
}

impl Clock {
    /// Two words for tables and comparison headers.
    pub fn short_name(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "GPU timestamps",
            Clock::WallClock => "wall clock",
        }
    }
}

/// A kernel's time over its samples: the median, and how widely the samples spread around
/// it, so a reader can tell a steady figure from one a busy machine disturbed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Median seconds.
    pub seconds: f64,
    /// Interquartile range over the median: 0.03 means the middle half of the samples lay
    /// within 3% of the median's size of each other.
    pub spread: f64,
    /// Samples kept (the warm-up run is not one).
    pub samples: usize,
    /// The fastest sample, seconds: what a check of the machine compares, since a sustained
    /// slowdown slows every sample while a one-off hiccup slows only some.
    pub fastest: f64,
}

/// Spreads above this mark a figure as noisy where the output has no room for the number.
pub const NOISY_SPREAD: f64 = 0.10;

impl Timing {
    /// The median and spread of `samples` (seconds; at least one).
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        // Quantile q by linear interpolation between the nearest samples (numpy's default).
        let at = |q: f64| {
            let h = (n - 1) as f64 * q;
            let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
            samples[lo] + (h - lo as f64) * (samples[hi] - samples[lo])
        };
        let seconds = samples[n / 2];
        let spread = if seconds > 0.0 {
            (at(0.75) - at(0.25)) / seconds
        } else {
            0.0
        };
        Self {
            seconds,
            spread,
            samples: n,
            fastest: samples[0],
        }
    }
}

/// Times one pass per submission, median over repeats.
pub struct Stopwatch {
    timestamps: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer, f64)>,
    /// Short kernels are repeated until their samples add up to this many seconds (at most
    /// [`MAX_SAMPLES`] runs), so a millisecond kernel's median is not one noisy sample.
    min_total_seconds: f64,
}

/// The most samples a short kernel gets.
pub const MAX_SAMPLES: usize = 64;

impl Stopwatch {
    /// Uses timestamp queries when the device has them; short kernels are sampled until
    /// `min_total_seconds` of kernel time has been measured.
    pub fn new(ctx: &GpuContext, min_total_seconds: f64) -> Self {
        let timestamps = ctx.capabilities.timestamps.then(|| {
            let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pagekv bench timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let buffer = |label, usage| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: 2 * wgpu::QUERY_SIZE as u64,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let resolve = buffer(
                "pagekv bench resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            );
            let readback = buffer(
                "pagekv bench readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let period = ctx.queue.get_timestamp_period() as f64;
            (set, resolve, readback, period)
        });
        Self {
            timestamps,
            min_total_seconds,
        }
    }

    /// Kernel seconds a short kernel is sampled for (see [`Stopwatch::new`]).
    pub fn min_total_seconds(&self) -> f64 {
        self.min_total_seconds
    }

    /// Which clock the figures come from.
    pub fn clock(&self) -> Clock {
        if self.timestamps.is_some() {
            Clock::GpuTimestamps
        } else {
            Clock::WallClock
        }
    }

    /// Runs `record` once to warm up, then at least `repeats` times (more for short kernels,
    /// see [`Stopwatch::new`]), each in its own submission, and returns the median seconds
    /// and the samples' spread.
    /// `record` must put the timed work in one compute pass that
    /// uses the timestamp writes it is given.
    pub fn time(
        &self,
        ctx: &GpuContext,
        repeats: u32,
        mut record: impl FnMut(
            &mut wgpu::CommandEncoder,
            Option<wgpu::ComputePassTimestampWrites<'_>>,
        ) -> Result<(), GpuError>,
    ) -> Result<Timing, GpuError> {
        let record: &mut Record<'_> = &mut record;
        Ok(self.time_interleaved(ctx, repeats, &mut [record])?[0])
    }

    /// [`Stopwatch::time`] for several kernels whose times are compared with each other: one
    /// run of each in turn, round after round, so that a slow spell of a shared machine
    /// lands on all of them rather than on whichever ran during it. Timings, in order.
    pub fn time_interleaved(
        &self,
        ctx: &GpuContext,
        repeats: u32,
        records: &mut [&mut Record<'_>],
    ) -> Result<Vec<Timing>, GpuError> {
        let samples = self.samples_interleaved(ctx, repeats, records)?;
        Ok(samples.into_iter().map(Timing::of).collect())
    }

    /// [`Stopwatch::time`] for kernels compared with each other whose memory differs in
    /// size: each timed whole in turn (warm-up and samples), `rounds` times, each one's time
    /// the median of its rounds' medians and its spread that of all its samples. A slow spell
    /// lands on one round of each rather than on one kernel, while each keeps the cache state
    /// its own back-to-back steps leave, as when timed alone (one sample of each in turn
    /// would let the larger evict the smaller's data from cache between its samples).
    pub fn time_in_blocks(
        &self,
        ctx: &GpuContext,
        repeats: u32,
        rounds: u32,
        records: &mut [&mut Record<'_>],
    ) -> Result<Vec<Timing>, GpuError> {
        let mut medians: Vec<Vec<f64>> = vec![Vec::new(); records.len()];
        let mut pooled: Vec<Vec<f64>> = vec![Vec::new(); records.len()];
        for _ in 0..rounds.max(1) {
            for ((record, median), all) in records.iter_mut().zip(&mut medians).zip(&mut pooled) {
                let samples = self.samples_interleaved(ctx, repeats, &mut [&mut **record])?;
                let samples = samples.into_iter().next().expect("one record, one list");
                median.push(Timing::of(samples.clone()).seconds);
                all.extend(samples);
            }
        }
        Ok(medians
            .into_iter()
            .zip(pooled)
            .map(|(median, all)| Timing {
                seconds: Timing::of(median).seconds,
                ..Timing::of(all)
            })
            .collect())
    }

    /// The kept samples of each of `records`, one run of each in turn per round after a
    /// warm-up round (see [`Stopwatch::time_interleaved`]).
    fn samples_interleaved(
        &self,
        ctx: &GpuContext,
        repeats: u32,
        records: &mut [&mut Record<'_>],
    ) -> Result<Vec<Vec<f64>>, GpuError> {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); records.len()];
        let wants_more =
            |s: &Vec<f64>| s.iter().sum::<f64>() < self.min_total_seconds && s.len() < MAX_SAMPLES;
        // Round 0 warms every kernel up and is not kept.
        let mut round = 0u32;
        while round <= repeats || samples.iter().any(wants_more) {
            for (record, kept) in records.iter_mut().zip(&mut samples) {
                let seconds = self.sample(ctx, record)?;
                if round > 0 {
                    kept.push(seconds);
                }
            }
            round += 1;
        }
        Ok(samples)
    }

    /// One submission of `record`'s pass: its seconds.
    fn sample(&self, ctx: &GpuContext, record: &mut Record<'_>) -> Result<f64, GpuError> {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let writes = self
            .timestamps
            .as_ref()
            .map(|(set, ..)| wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
        record(&mut encoder, writes)?;
        if let Some((set, resolve, readback, _)) = &self.timestamps {
            encoder.resolve_query_set(set, 0..2, resolve, 0);
            encoder.copy_buffer_to_buffer(resolve, 0, readback, 0, 2 * wgpu::QUERY_SIZE as u64);
        }
        let start = Instant::now();
        ctx.queue.submit([encoder.finish()]);
        ctx.wait_idle()?;
        let wall = start.elapsed().as_secs_f64();
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(format!("a bench pass failed: {err}")));
        }
        match &self.timestamps {
            Some((_, _, readback, period)) => read_ticks(ctx, readback, *period),
            None => Ok(wall),
        }
    }
}

/// What a timed kernel records: its one compute pass, with the timestamp writes it is given.
pub type Record<'a> = dyn FnMut(
        &mut wgpu::CommandEncoder,
        Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<(), GpuError>
    + 'a;

fn read_ticks(ctx: &GpuContext, readback: &wgpu::Buffer, period_ns: f64) -> Result<f64, GpuError> {
    let slice = readback.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait_idle()?;
    rx.recv()
        .map_err(|e| GpuError::Device(format!("timestamp channel closed: {e}")))?
        .map_err(|e| GpuError::Device(format!("timestamp map failed: {e}")))?;
    let seconds = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Device(format!("timestamp range unavailable: {e}")))?;
        let ticks: &[u64] = bytemuck::cast_slice(&view);
        ticks[1].saturating_sub(ticks[0]) as f64 * period_ns * 1e-9
    };
    readback.unmap();
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::Timing;

    #[test]
    fn timing_is_the_median_and_the_interquartile_spread() {
        let t = Timing::of(vec![1.0, 1.2, 1.1, 5.0, 0.9]);
        assert_eq!((t.seconds, t.samples, t.fastest), (1.1, 5, 0.9));
        // Sorted 0.9 1.0 1.1 1.2 5.0: quartiles 1.0 and 1.2, one outlier ignored.
        assert!((t.spread - 0.2 / 1.1).abs() < 1e-12, "{t:?}");
        // Three samples: quartiles halfway between neighbours, so the range is symmetric.
        let three = Timing::of(vec![3.0, 1.0, 2.0]);
        assert!((three.spread - 0.5).abs() < 1e-12, "{three:?}");
        let one = Timing::of(vec![2.0]);
        assert_eq!((one.seconds, one.spread), (2.0, 0.0));
    }
}
