//! The occupancy probe: how many workgroups of the tiled attention's shape a device runs at
//! once. The tiled decode sizes its context splits to it (flash-decoding: when a step's
//! sequences and KV heads alone are too few workgroups to fill the device, each sequence's
//! context is split until they are).
//!
//! Why measure: wgpu reports no compute-unit count, and how many workgroups a unit holds
//! depends on their workgroup memory and on the vendor. So the probe times dispatches of 1, 2,
//! 4, ... workgroups that hold the attention tile's workgroup memory and run a fixed chain of
//! dependent multiply-adds. While the device runs all of a dispatch's workgroups together its
//! time stays at one chain's; past that it grows. The largest count still at one chain's time
//! ([`knee`]) is the answer, within a factor of two. It runs once per device and footprint
//! (cached on the [`GpuContext`]; 0.1 s on lavapipe, a few dozen dispatches of a few
//! milliseconds on a GPU), on the context's queue: an embedding app that cannot spare that at
//! build time passes [`AttentionOptions::decode_target_workgroups`](super::AttentionOptions).

use wgpu::util::DeviceExt;

use super::layouts::{Bindings, Slot};
use super::params::ProbeParams;
use super::pipeline::{self, ComputeKernel};
use super::variant::{WORKGROUP_SIZE, WgslModule};
use crate::gpu::{GpuContext, GpuError};

const PROBE: &str = include_str!("../../shaders/occupancy.wgsl");

const BINDINGS: Bindings = &[(0, Slot::Uniform), (1, Slot::ReadWrite)];

/// One chain must take at least this long, so the fixed cost of a submission (tens of
/// microseconds, timed with it on the wall clock) stays small beside it.
const MIN_CHAIN_SECONDS: f64 = 2e-3;

/// Longest chain tried while calibrating (a slow adapter stops here).
const MAX_ITERATIONS: u32 = 1 << 24;

/// Largest dispatch tried: splitting further never pays.
pub const MAX_PROBE_WORKGROUPS: u32 = 1 << 15;

/// A dispatch this much slower than one chain has left the flat region for good.
const STOP_RATIO: f64 = 3.0;

/// A dispatch within this factor of the fastest still ran all its workgroups together.
const FLAT_TOLERANCE: f64 = 1.5;

/// Timed runs per dispatch size; the fastest counts.
const REPEATS: usize = 3;

/// The probe module for a workgroup-memory footprint of `shared_bytes` (rounded up to whole
/// 16-byte slices, at least one).
pub fn module(shared_bytes: u32) -> WgslModule {
    let vec4s = shared_bytes.div_ceil(16).max(1);
    WgslModule {
        name: format!("occupancy_s{vec4s}"),
        source: format!(
            "// pagekv generated variant `occupancy_s{vec4s}`.\n\nconst WG: u32 = {WORKGROUP_SIZE}u;\nconst SHARED_VEC4S: u32 = {vec4s}u;\n\n{PROBE}"
        ),
        needs_f16: false,
        needs_subgroups: false,
    }
}

/// The workgroups of `shared_bytes` of workgroup memory `ctx` runs at once, measured the first
/// time it is asked for this footprint and remembered after.
pub fn concurrent_workgroups(ctx: &GpuContext, shared_bytes: u32) -> Result<u32, GpuError> {
    ctx.concurrency_for(shared_bytes, || measure(ctx, shared_bytes))
}

/// The largest dispatch size whose time is within 1.5x (`FLAT_TOLERANCE`) of the fastest;
/// `samples` are (workgroups, seconds). A dispatch of more workgroups cannot truly take less
/// time than one of fewer, so a slow small dispatch among fast larger ones is a GPU clock
/// still ramping up, not the device filling: it does not end the flat region. 1 for no
/// samples.
pub fn knee(samples: &[(u32, f64)]) -> u32 {
    let fastest = samples
        .iter()
        .map(|&(_, t)| t)
        .fold(f64::INFINITY, f64::min);
    samples
        .iter()
        .filter(|&&(_, t)| t <= FLAT_TOLERANCE * fastest)
        .map(|&(w, _)| w.max(1))
        .max()
        .unwrap_or(1)
}

fn measure(ctx: &GpuContext, shared_bytes: u32) -> Result<u32, GpuError> {
    let probe = Probe::new(ctx, shared_bytes)?;
    // The first dispatch also pays for the driver's lazy setup: run it untimed.
    probe.time(ctx, 1, 1)?;
    let mut iterations = 1 << 12;
    let mut single = probe.time(ctx, 1, iterations)?;
    while single < MIN_CHAIN_SECONDS && iterations < MAX_ITERATIONS {
        iterations *= 4;
        single = probe.time(ctx, 1, iterations)?;
    }
    // Once more at the final length, now that the device has been busy for a while.
    single = single.min(probe.time(ctx, 1, iterations)?);
    let max = ctx
        .capabilities
        .max_workgroups_per_dimension
        .min(MAX_PROBE_WORKGROUPS);
    let mut samples = vec![(1, single)];
    let mut workgroups = 2;
    while workgroups <= max {
        let seconds = probe.time(ctx, workgroups, iterations)?;
        samples.push((workgroups, seconds));
        if seconds > STOP_RATIO * single {
            break;
        }
        workgroups *= 2;
    }
    Ok(knee(&samples))
}

/// The compiled probe and its buffers.
struct Probe {
    kernel: ComputeKernel,
    params: wgpu::Buffer,
    group: wgpu::BindGroup,
}

impl Probe {
    fn new(ctx: &GpuContext, shared_bytes: u32) -> Result<Self, GpuError> {
        let kernel = pipeline::build(ctx, &module(shared_bytes), &[("probe", BINDINGS)])?.remove(0);
        let params = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("pagekv occupancy params"),
                contents: bytemuck::bytes_of(&ProbeParams::default()),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
        let sink = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv occupancy sink"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        ctx.count_created();
        ctx.count_created();
        let group = pipeline::bind(
            ctx,
            &kernel,
            "pagekv occupancy",
            &[
                (0, params.as_entire_binding()),
                (1, sink.as_entire_binding()),
            ],
        );
        Ok(Self {
            kernel,
            params,
            group,
        })
    }

    /// The fastest of [`REPEATS`] wall-clock times of one dispatch, submit to idle.
    fn time(&self, ctx: &GpuContext, workgroups: u32, iterations: u32) -> Result<f64, GpuError> {
        let params = ProbeParams {
            iterations,
            one: 1.0,
            ..Default::default()
        };
        ctx.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        ctx.wait_idle()?;
        let mut best = f64::INFINITY;
        for _ in 0..REPEATS {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("pagekv occupancy probe"),
                    timestamp_writes: None,
                });
                self.kernel.set(&mut pass);
                pass.set_bind_group(0, &self.group, &[]);
                pass.dispatch_workgroups(workgroups, 1, 1);
            }
            let start = std::time::Instant::now();
            ctx.queue.submit([encoder.finish()]);
            ctx.wait_idle()?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_is_the_last_size_before_time_grows() {
        let t = |w: u32, secs: f64| (w, secs);
        // Flat to 8, then doubling.
        let s = [
            t(1, 2.0),
            t(2, 2.1),
            t(4, 2.0),
            t(8, 2.4),
            t(16, 4.1),
            t(32, 8.0),
        ];
        assert_eq!(knee(&s), 8);
        // A noisy slow first sample does not hide a later flat region.
        let s = [t(1, 2.9), t(2, 2.0), t(4, 2.1), t(8, 4.0)];
        assert_eq!(knee(&s), 4);
        // Growth from the start (a single-lane device): one.
        let s = [t(1, 2.0), t(2, 4.0), t(4, 8.0)];
        assert_eq!(knee(&s), 1);
        // A slow first sample (clocks ramping up) does not end the flat region either.
        let s = [t(1, 4.0), t(2, 2.0), t(4, 2.2), t(8, 4.5)];
        assert_eq!(knee(&s), 4);
        assert_eq!(knee(&[]), 1);
    }

    #[test]
    fn the_module_holds_the_footprint_in_whole_slices() {
        assert!(module(21_900).source.contains("SHARED_VEC4S: u32 = 1369u;"));
        assert_eq!(module(0).name, "occupancy_s1");
    }
}
