//! The read family: one streaming read from a storage buffer and from a texture, the two
//! rooflines a read-only kernel such as decode attention can be held against. `pagekv bench`
//! prints both beside the copy roofline; on CPU adapters they show why KV pools live in
//! textures there (see gpu/shard.rs).

use super::{AccessOrder, MemoryPath, STREAM_RUN, ToolKernel};
use crate::gpu::{GpuContext, GpuError, TEXEL_BYTES};
use crate::kernels::WgslModule;

/// The same bytes as a storage buffer and as a texture, and the per-invocation sums.
pub struct ReadSource {
    buffer: wgpu::Buffer,
    view: wgpu::TextureView,
    sums: wgpu::Buffer,
    width: u32,
    texels: u32,
}

impl ReadSource {
    /// Allocates at most `cap_bytes` on each path: whole texture rows within the device's
    /// texture, buffer and binding limits.
    pub fn new(ctx: &GpuContext, cap_bytes: u64) -> Result<Self, GpuError> {
        let (width, rows) = super::stream_shape(ctx, cap_bytes, "the read roofline")?;
        let texels = width * rows;
        // Each element holds its own index (in all four words), so a read that skips or
        // repeats elements sums differently ([`ReadKernel::reads_every_element_once`]).
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv read source"),
            size: texels as u64 * TEXEL_BYTES,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Written 16 MiB at a time, each chunk submitted before the next, so the upload
        // never stages the whole source (up to 1 GiB) at once.
        const CHUNK: usize = 1 << 20;
        let mut words = vec![0u32; 4 * CHUNK];
        for first in (0..texels as usize).step_by(CHUNK) {
            let count = CHUNK.min(texels as usize - first);
            for (i, element) in words[..4 * count].chunks_exact_mut(4).enumerate() {
                element.fill((first + i) as u32);
            }
            let at = first as u64 * TEXEL_BYTES;
            ctx.queue
                .write_buffer(&buffer, at, bytemuck::cast_slice(&words[..4 * count]));
            ctx.queue.submit([]);
        }
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let texture = super::texels_from_buffer(
            ctx,
            &mut encoder,
            &buffer,
            (width, rows),
            "pagekv read source",
        );
        ctx.queue.submit([encoder.finish()]);
        let sums = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv read sums"),
            size: (texels / STREAM_RUN) as u64 * TEXEL_BYTES,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            buffer,
            view: texture.create_view(&Default::default()),
            sums,
            width,
            texels,
        })
    }

    /// Bytes one read pass loads.
    pub fn bytes(&self) -> u64 {
        self.texels as u64 * TEXEL_BYTES
    }
}

/// Compiled read pipelines, one per path and order.
pub struct ReadKernel {
    pipelines: super::StreamPipelines,
    /// The module built.
    pub module: WgslModule,
}

impl ReadKernel {
    /// Builds every read pipeline.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let module = ToolKernel::Read.module(0);
        let pipelines = super::StreamPipelines::build(ctx, &module, "read")?;
        Ok(Self { pipelines, module })
    }

    /// Records `passes` reads of all of `source` through `path` in one compute pass (a small
    /// source is read several times per sample, from whatever cache holds it), its
    /// invocations walking it in `order`.
    pub fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        source: &ReadSource,
        (path, order): (MemoryPath, AccessOrder),
        passes: u32,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let src = match path {
            MemoryPath::Buffer => (1, source.buffer.as_entire_binding()),
            MemoryPath::Texture => (2, wgpu::BindingResource::TextureView(&source.view)),
        };
        super::record_stream(
            ctx,
            encoder,
            self.pipelines.get(path, order),
            "pagekv read",
            (source.texels, source.width, passes),
            &[src, (3, source.sums.as_entire_binding())],
            timestamps,
        );
    }

    /// Reads `source` once through `path` in `order` and says whether every element was read
    /// exactly once: the source holds each element's index, so only then do the invocations'
    /// sums add up to the sum of all indices (mod 2^32). A roofline that skipped elements
    /// would overstate the adapter's bandwidth.
    pub fn reads_every_element_once(
        &self,
        ctx: &GpuContext,
        source: &ReadSource,
        key: (MemoryPath, AccessOrder),
    ) -> Result<bool, GpuError> {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&source.sums, 0, None);
        self.record(ctx, &mut encoder, source, key, 1, None);
        ctx.queue.submit([encoder.finish()]);
        let threads = (source.texels / STREAM_RUN) as usize;
        let sums = crate::gpu::read_buffer_u32(ctx, &source.sums, 4 * threads)?;
        let n = source.texels as u64;
        let want = (n * (n - 1) / 2) as u32;
        Ok((0..4).all(|word| {
            let got = sums
                .iter()
                .skip(word)
                .step_by(4)
                .fold(0u32, |acc, &x| acc.wrapping_add(x));
            got == want
        }))
    }
}
