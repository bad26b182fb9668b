//! Small buffer helpers: uploads that reuse buffers, and blocking readback for tests,
//! verification and spot checks (never on the hot path).

use super::{GpuContext, GpuError};
use wgpu::util::DeviceExt;

/// Creates a storage buffer initialised with `data`, readable back and writable by the queue.
pub fn storage_buffer_init(ctx: &GpuContext, label: &str, data: &[u8]) -> wgpu::Buffer {
    // wgpu rejects zero-sized bindings; keep at least one word so empty batches still bind.
    let mut padded;
    let contents = if data.len() < 16 {
        padded = data.to_vec();
        padded.resize(16, 0);
        &padded[..]
    } else {
        data
    };
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        })
}

/// Writes `data` into `slot`, replacing the buffer only when it is too small, so a steady-state
/// loop creates no buffers per step.
pub fn upload_or_grow(ctx: &GpuContext, slot: &mut Option<wgpu::Buffer>, label: &str, data: &[u8]) {
    let needed = (data.len() as u64).max(16).next_multiple_of(4);
    let fits = slot.as_ref().is_some_and(|b| b.size() >= needed);
    if !fits {
        let size = needed.next_power_of_two().max(256);
        *slot = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
    }
    if !data.is_empty() {
        let buffer = slot.as_ref().expect("buffer ensured above");
        ctx.queue.write_buffer(buffer, 0, data);
    }
}

/// Reads the first `bytes` bytes of `buffer` (blocking).
pub(crate) fn read_bytes(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    bytes: u64,
) -> Result<Vec<u8>, GpuError> {
    let size = bytes.next_multiple_of(4).max(4);
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("pagekv readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
    ctx.queue.submit([encoder.finish()]);
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait_idle()?;
    rx.recv()
        .map_err(|e| GpuError::Device(format!("readback channel closed: {e}")))?
        .map_err(|e| GpuError::Device(format!("buffer map failed: {e}")))?;
    let view = slice
        .get_mapped_range()
        .map_err(|e| GpuError::Device(format!("mapped range unavailable: {e}")))?;
    let out = view[..bytes as usize].to_vec();
    drop(view);
    staging.unmap();
    Ok(out)
}

/// Reads `count` f32 values from the start of `buffer` (blocking).
pub fn read_buffer_f32(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    count: usize,
) -> Result<Vec<f32>, GpuError> {
    let bytes = read_bytes(ctx, buffer, (count * 4) as u64)?;
    Ok(bytemuck::cast_slice(&bytes).to_vec())
}

/// Reads `count` u32 values from the start of `buffer` (blocking).
pub fn read_buffer_u32(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    count: usize,
) -> Result<Vec<u32>, GpuError> {
    let bytes = read_bytes(ctx, buffer, (count * 4) as u64)?;
    Ok(bytemuck::cast_slice(&bytes).to_vec())
}
