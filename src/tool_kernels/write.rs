//! The write family: one streaming write into a storage buffer and into a texture, the two
//! rooflines a kernel that stores KV rows (append) can be held against. `pagekv bench`
//! prints both beside the read rooflines; append's bound takes its f32 reads at the buffer
//! read rate and its pool writes at the write rate of the pool's path.

use super::{AccessOrder, MemoryPath, ToolKernel};
use crate::gpu::{GpuContext, GpuError, TEXEL_BYTES};
use crate::kernels::WgslModule;

/// The same number of bytes as a storage buffer and as a texture, written in turn.
pub struct WriteTarget {
    buffer: wgpu::Buffer,
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    width: u32,
    texels: u32,
}

impl WriteTarget {
    /// Allocates at most `cap_bytes` on each path: whole texture rows within the device's
    /// texture, buffer and binding limits.
    pub fn new(ctx: &GpuContext, cap_bytes: u64) -> Result<Self, GpuError> {
        let (width, rows) = super::stream_shape(ctx, cap_bytes, "the write roofline")?;
        let texels = width * rows;
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv write target"),
            size: texels as u64 * TEXEL_BYTES,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Initialised by a copy from the (zeroed) buffer, as every tool texture is: a texture
        // wgpu clears on first use upsets lavapipe's compute timestamps for the process.
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let texture = super::texels_from_buffer(
            ctx,
            &mut encoder,
            &buffer,
            (width, rows),
            "pagekv write target",
        );
        ctx.queue.submit([encoder.finish()]);
        Ok(Self {
            view: texture.create_view(&Default::default()),
            buffer,
            texture,
            width,
            texels,
        })
    }

    /// Bytes one write pass stores.
    pub fn bytes(&self) -> u64 {
        self.texels as u64 * TEXEL_BYTES
    }
}

/// Compiled write pipelines, one per path and order.
pub struct WriteKernel {
    pipelines: super::StreamPipelines,
    /// The module built.
    pub module: WgslModule,
}

impl WriteKernel {
    /// Builds every write pipeline.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let module = ToolKernel::Write.module(0);
        let pipelines = super::StreamPipelines::build(ctx, &module, "write")?;
        Ok(Self { pipelines, module })
    }

    /// Records `passes` writes of all of `target` through `path` in one compute pass (a small
    /// target is written several times per sample), its invocations walking it in `order`.
    pub fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        target: &WriteTarget,
        (path, order): (MemoryPath, AccessOrder),
        passes: u32,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let dst = match path {
            MemoryPath::Buffer => (1, target.buffer.as_entire_binding()),
            MemoryPath::Texture => (2, wgpu::BindingResource::TextureView(&target.view)),
        };
        super::record_stream(
            ctx,
            encoder,
            self.pipelines.get(path, order),
            "pagekv write",
            (target.texels, target.width, passes),
            &[dst],
            timestamps,
        );
    }

    /// Writes `target` once through `path` in `order` and says whether every element then
    /// holds its own index in all four words: a roofline that skipped elements would
    /// overstate the bandwidth append's bound is taken from.
    pub fn writes_every_element(
        &self,
        ctx: &GpuContext,
        target: &WriteTarget,
        key: (MemoryPath, AccessOrder),
    ) -> Result<bool, GpuError> {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&target.buffer, 0, None);
        self.record(ctx, &mut encoder, target, key, 1, None);
        if key.0 == MemoryPath::Texture {
            // The texture's texels, row after row, into the buffer for the readback.
            encoder.copy_texture_to_buffer(
                target.texture.as_image_copy(),
                wgpu::TexelCopyBufferInfo {
                    buffer: &target.buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(target.width * TEXEL_BYTES as u32),
                        rows_per_image: None,
                    },
                },
                target.texture.size(),
            );
        }
        ctx.queue.submit([encoder.finish()]);
        let words = crate::gpu::read_buffer_u32(ctx, &target.buffer, 4 * target.texels as usize)?;
        Ok(words
            .chunks_exact(4)
            .enumerate()
            .all(|(i, element)| element.iter().all(|&w| w == i as u32)))
    }
}
