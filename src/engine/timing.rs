//! GPU time per kernel family, from timestamp queries written at the start and end of every
//! compute pass the engine records. Adapters without `TIMESTAMP_QUERY` get no timer, and the
//! report then says the time is wall clock only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gpu::{GpuContext, GpuError};

/// The kernel families the engine times separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimedFamily {
    /// Synthetic Q/K/V generation (stands in for the model's projections).
    Generate,
    /// K/V scatter into the paged pool.
    Append,
    /// Chunked prefill attention.
    Prefill,
    /// Decode attention, including the split-K combine.
    Decode,
    /// Copy-on-write block copies.
    Copy,
}

impl TimedFamily {
    /// Every family, in report order.
    pub const ALL: [TimedFamily; 5] = [
        TimedFamily::Generate,
        TimedFamily::Append,
        TimedFamily::Prefill,
        TimedFamily::Decode,
        TimedFamily::Copy,
    ];

    /// Lower-case name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            TimedFamily::Generate => "generate",
            TimedFamily::Append => "append",
            TimedFamily::Prefill => "prefill",
            TimedFamily::Decode => "decode",
            TimedFamily::Copy => "copy",
        }
    }
}

/// Seconds of GPU time per family, summed over a run.
pub type FamilyTimes = BTreeMap<TimedFamily, f64>;

/// Timestamp queries for one step's passes, resolved and read back after the step's fence
/// (the engine waits for every step anyway, so reading them costs no extra stall).
pub struct PassTimer {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    capacity_passes: u32,
    passes: Vec<TimedFamily>,
    period_ns: f64,
    /// Passes recorded without a timestamp because the query set was full.
    pub untimed_passes: u64,
}

impl PassTimer {
    /// A timer for up to `max_passes` passes per step, or `None` when the device cannot write
    /// timestamps inside compute passes.
    pub fn new(ctx: &GpuContext, max_passes: u32) -> Option<Self> {
        if !ctx.capabilities.timestamps {
            return None;
        }
        let capacity_passes = max_passes.clamp(1, wgpu::QUERY_SET_MAX_QUERIES / 2);
        let count = capacity_passes * 2;
        let bytes = count as u64 * wgpu::QUERY_SIZE as u64;
        let query_set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pagekv pass timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let buffer = |label, usage| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(Self {
            query_set,
            resolve: buffer(
                "pagekv timestamp resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "pagekv timestamp readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            capacity_passes,
            passes: Vec::new(),
            period_ns: ctx.queue.get_timestamp_period() as f64,
            untimed_passes: 0,
        })
    }

    /// Forgets the previous step's passes.
    pub fn begin_step(&mut self) {
        self.passes.clear();
    }

    /// Reserves the query pair of the next pass of `family`; `None` when the set is full.
    pub fn reserve(&mut self, family: TimedFamily) -> Option<u32> {
        if self.passes.len() as u32 >= self.capacity_passes {
            self.untimed_passes += 1;
            return None;
        }
        self.passes.push(family);
        Some(self.passes.len() as u32 - 1)
    }

    /// The timestamp writes of a reserved pass.
    pub fn writes(&self, pass: u32) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(pass * 2),
            end_of_pass_write_index: Some(pass * 2 + 1),
        }
    }

    /// Records the resolve of this step's queries at the end of `encoder`.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let count = self.passes.len() as u32 * 2;
        if count == 0 {
            return;
        }
        encoder.resolve_query_set(&self.query_set, 0..count, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(
            &self.resolve,
            0,
            &self.readback,
            0,
            count as u64 * wgpu::QUERY_SIZE as u64,
        );
    }

    /// Adds this step's pass durations to `totals`. Call after the step's submission finished.
    pub fn collect(&self, ctx: &GpuContext, totals: &mut FamilyTimes) -> Result<(), GpuError> {
        if self.passes.is_empty() {
            return Ok(());
        }
        let bytes = self.passes.len() as u64 * 2 * wgpu::QUERY_SIZE as u64;
        let slice = self.readback.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.wait_idle()?;
        rx.recv()
            .map_err(|e| GpuError::Device(format!("timestamp readback channel closed: {e}")))?
            .map_err(|e| GpuError::Device(format!("timestamp readback failed: {e}")))?;
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Device(format!("timestamp range unavailable: {e}")))?;
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            for (i, family) in self.passes.iter().enumerate() {
                let (start, end) = (ticks[2 * i], ticks[2 * i + 1]);
                let seconds = end.saturating_sub(start) as f64 * self.period_ns * 1e-9;
                *totals.entry(*family).or_default() += seconds;
            }
        }
        self.readback.unmap();
        Ok(())
    }
}
