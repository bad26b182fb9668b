//! Measuring how much device memory pagekv can really allocate.
//!
//! wgpu has no query for free device memory, so the probe allocates device-local storage
//! buffers one [`ProbePlan`] step at a time, each inside an out-of-memory error scope, and
//! touches every buffer (a `clear_buffer`, submitted and waited for) so that drivers which
//! commit memory lazily really back it. It stops at the first failed allocation, at the plan's
//! cap, or when the device is lost, then frees everything. It never pushes past a failure:
//! losing the device on purpose would take other work on it down too.

use std::sync::{Arc, Mutex};

use super::probe_plan::{MemoryKind, ProbePlan};
use super::{GpuContext, GpuError};

/// Why the probe stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ProbeStop {
    /// Every planned step succeeded: the figure is the cap, the device may hold more.
    Cap,
    /// An allocation (or the touch that commits it) failed with out-of-memory: the figure is
    /// what the device could hold.
    AllocationFailed(String),
    /// The device was lost during the probe; the figure is what was held until then.
    DeviceLost(String),
}

impl ProbeStop {
    /// A few words for tables.
    pub fn describe(&self) -> &'static str {
        match self {
            ProbeStop::Cap => "cap",
            ProbeStop::AllocationFailed(_) => "allocation failed",
            ProbeStop::DeviceLost(_) => "device lost",
        }
    }
}

/// What a probe found on one device.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MemoryProbe {
    /// The steps and cap it ran with.
    pub plan: ProbePlan,
    /// Buffers allocated and touched before it stopped.
    pub buffers: u32,
    /// Their total size: the usable bytes.
    pub usable_bytes: u64,
    /// Why it stopped.
    pub stop: ProbeStop,
    /// True when the adapter's memory is host memory (CPU adapters, integrated GPUs): the
    /// figure then says how much of the host's memory a pool could take, not a GPU's.
    pub host_memory: bool,
}

/// Allocates and touches buffers on `ctx` following `plan` until one fails, the cap is
/// reached or the device is lost; frees them all before returning. An error other than
/// out-of-memory (a validation or internal error) is returned as [`GpuError::Device`].
pub fn probe_memory(ctx: &GpuContext, plan: &ProbePlan) -> Result<MemoryProbe, GpuError> {
    let lost: Arc<Mutex<Option<String>>> = Arc::default();
    let flag = Arc::clone(&lost);
    ctx.device.set_device_lost_callback(move |reason, message| {
        if let Ok(mut slot) = flag.lock() {
            slot.get_or_insert_with(|| format!("{reason:?}: {message}"));
        }
    });
    let lost_reason = || lost.lock().ok().and_then(|slot| slot.clone());
    let mut held: Vec<wgpu::Buffer> = Vec::new();
    let mut usable_bytes = 0u64;
    let mut stop = ProbeStop::Cap;
    for size in plan.sizes() {
        match allocate_and_touch(ctx, size, held.len()) {
            Ok(buffer) => {
                held.push(buffer);
                usable_bytes += size;
            }
            Err(Failure::OutOfMemory(e)) => {
                stop = ProbeStop::AllocationFailed(e);
                break;
            }
            Err(Failure::Other(e)) => match lost_reason() {
                Some(reason) => {
                    stop = ProbeStop::DeviceLost(reason);
                    break;
                }
                None => return Err(GpuError::Device(format!("memory probe: {e}"))),
            },
        }
        if let Some(reason) = lost_reason() {
            stop = ProbeStop::DeviceLost(reason);
            break;
        }
    }
    let buffers = held.len() as u32;
    for buffer in held {
        buffer.destroy();
    }
    // Let the driver release the memory before anything else allocates.
    if lost_reason().is_none() {
        ctx.wait_idle()?;
    }
    Ok(MemoryProbe {
        plan: *plan,
        buffers,
        usable_bytes,
        stop,
        host_memory: MemoryKind::of(ctx.info.device_type) == MemoryKind::Host,
    })
}

enum Failure {
    OutOfMemory(String),
    Other(String),
}

/// One step: a device-local storage buffer, cleared on the queue and waited for, inside
/// out-of-memory, internal and validation error scopes (popped innermost first).
fn allocate_and_touch(ctx: &GpuContext, size: u64, index: usize) -> Result<wgpu::Buffer, Failure> {
    let device = &ctx.device;
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(&format!("pagekv memory probe {index}")),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("pagekv memory probe touch"),
    });
    encoder.clear_buffer(&buffer, 0, None);
    ctx.queue.submit([encoder.finish()]);
    let polled = ctx.wait_idle();
    let oom = pollster::block_on(oom.pop());
    let internal = pollster::block_on(internal.pop());
    let validation = pollster::block_on(validation.pop());
    if let Some(e) = oom {
        buffer.destroy();
        return Err(Failure::OutOfMemory(e.to_string()));
    }
    if let Some(e) = internal.or(validation) {
        buffer.destroy();
        return Err(Failure::Other(e.to_string()));
    }
    if let Err(e) = polled {
        buffer.destroy();
        return Err(Failure::Other(e.to_string()));
    }
    Ok(buffer)
}
