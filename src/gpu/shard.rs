//! One shard of a KV pool, held either in a storage buffer or in an `rgba32uint` texture with
//! one block per row, and the block copies, uploads and readbacks the engine and tests need
//! on either.
//!
//! Why textures: on CPU adapters (lavapipe, llvmpipe GL) every storage-buffer load compiles to
//! a per-lane scalar loop, while a texel fetch runs through the rasterizer's vectorised
//! sampler path. `pagekv bench` measures both ("buffer read" and "texture read" rows); on this
//! project's lavapipe the texture path streams about 4.5x faster. GPUs read buffers at full
//! speed, and the tiled kernels read buffers only.
//!
//! A texture row holds exactly the bytes of the buffer layout's block
//! (`[kv_head][token_in_block][head_dim]`), 16 bytes per texel, so both backings hold the same
//! bytes and readback decodes them alike.

use super::{DeviceLimit, GpuContext, GpuError, LimitExceeded};
use crate::cache::CacheLayout;

/// Bytes of one `rgba32uint` texel.
pub const TEXEL_BYTES: u64 = 16;

/// Where a pool's blocks live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum KvBacking {
    /// Storage buffers: every kernel family reads and writes them.
    Buffers,
    /// `rgba32uint` textures, one block per row: the flat attention kernel fetches texels and
    /// the append kernel stores them. CPU adapters only (see the module docs).
    Textures,
}

impl KvBacking {
    /// Short name for generated shader names and messages.
    pub fn name(self) -> &'static str {
        match self {
            KvBacking::Buffers => "buffers",
            KvBacking::Textures => "textures",
        }
    }

    /// Textures on CPU adapters when `layout` fits them ([`KvBacking::texture_misfit`]);
    /// buffers elsewhere.
    pub fn for_device(ctx: &GpuContext, layout: &CacheLayout) -> Self {
        if ctx.info.device_type == wgpu::DeviceType::Cpu
            && Self::texture_misfit(ctx, layout).is_none()
        {
            KvBacking::Textures
        } else {
            KvBacking::Buffers
        }
    }

    /// Why `layout` cannot live in textures on this device, if it cannot: each head's row and
    /// each layer's block must fill whole 16-byte texels, and a block must fit one texture row.
    pub fn texture_misfit(ctx: &GpuContext, layout: &CacheLayout) -> Option<GpuError> {
        let block_bytes = layout.block_bytes_per_layer();
        let row_bytes = layout.dtype.row_bytes(layout.geometry.head_dim);
        if !row_bytes.is_multiple_of(TEXEL_BYTES) || !block_bytes.is_multiple_of(TEXEL_BYTES) {
            return Some(GpuError::InvalidInput {
                argument: "backing",
                value: "textures".into(),
                problem: format!(
                    "a texture-backed pool needs head rows of whole 16-byte texels, but a head \
                     row is {row_bytes} bytes; use buffers"
                ),
            });
        }
        let max_row = ctx.device.limits().max_texture_dimension_2d as u64;
        (block_bytes / TEXEL_BYTES > max_row).then(|| {
            GpuError::Limit(LimitExceeded {
                what: "one block in one texture row".into(),
                limit: DeviceLimit::TextureDimension2d,
                needed: block_bytes / TEXEL_BYTES,
                allowed: max_row,
                remedy: "use buffers or a smaller block size",
            })
        })
    }
}

/// One shard's K (or V) blocks.
pub enum KvShard {
    /// `[block][kv_head][token][head_dim]`, contiguous.
    Buffer(wgpu::Buffer),
    /// Row `b` holds block `b`; the view binds it as a sampled or a storage texture.
    Texture {
        /// The texture (copies address it).
        texture: wgpu::Texture,
        /// The view kernels bind.
        view: wgpu::TextureView,
    },
}

impl KvShard {
    /// Allocates a shard of `blocks` blocks of `block_bytes` each.
    pub(crate) fn new(
        ctx: &GpuContext,
        label: &str,
        backing: KvBacking,
        blocks: u32,
        block_bytes: u64,
    ) -> Self {
        ctx.count_created();
        match backing {
            KvBacking::Buffers => {
                KvShard::Buffer(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: blocks as u64 * block_bytes,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }))
            }
            KvBacking::Textures => {
                let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
                    label: Some(label),
                    size: wgpu::Extent3d {
                        width: (block_bytes / TEXEL_BYTES) as u32,
                        height: blocks,
                        depth_or_array_layers: 1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Uint,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING
                        | wgpu::TextureUsages::STORAGE_BINDING
                        | wgpu::TextureUsages::COPY_SRC
                        | wgpu::TextureUsages::COPY_DST,
                    view_formats: &[],
                });
                let view = texture.create_view(&Default::default());
                KvShard::Texture { texture, view }
            }
        }
    }

    /// The resource a kernel binds: the whole buffer, or the texture view (sampled for
    /// attention, write-only storage for append).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        match self {
            KvShard::Buffer(buffer) => buffer.as_entire_binding(),
            KvShard::Texture { view, .. } => wgpu::BindingResource::TextureView(view),
        }
    }

    fn row(texture: &wgpu::Texture, block: u32) -> wgpu::TexelCopyTextureInfo<'_> {
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d {
                x: 0,
                y: block,
                z: 0,
            },
            aspect: wgpu::TextureAspect::All,
        }
    }

    fn row_extent(block_bytes: u64) -> wgpu::Extent3d {
        wgpu::Extent3d {
            width: (block_bytes / TEXEL_BYTES) as u32,
            height: 1,
            depth_or_array_layers: 1,
        }
    }

    /// Records a copy of local block `block` into `dst` at `dst_offset` (a multiple of 16).
    pub(crate) fn record_block_to_buffer(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        block: u32,
        block_bytes: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
    ) {
        match self {
            KvShard::Buffer(buffer) => encoder.copy_buffer_to_buffer(
                buffer,
                block as u64 * block_bytes,
                dst,
                dst_offset,
                block_bytes,
            ),
            KvShard::Texture { texture, .. } => encoder.copy_texture_to_buffer(
                Self::row(texture, block),
                wgpu::TexelCopyBufferInfo {
                    buffer: dst,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: dst_offset,
                        bytes_per_row: None,
                        rows_per_image: None,
                    },
                },
                Self::row_extent(block_bytes),
            ),
        }
    }

    /// Writes `data` (one block's bytes) into local block `block` through the queue.
    pub(crate) fn write_block(&self, queue: &wgpu::Queue, block: u32, data: &[u8]) {
        let block_bytes = data.len() as u64;
        match self {
            KvShard::Buffer(buffer) => queue.write_buffer(buffer, block as u64 * block_bytes, data),
            KvShard::Texture { texture, .. } => queue.write_texture(
                Self::row(texture, block),
                data,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: None,
                    rows_per_image: None,
                },
                Self::row_extent(block_bytes),
            ),
        }
    }

    /// Records a copy of `block_bytes` from `src` at `src_offset` into local block `block`.
    pub(crate) fn record_block_from_buffer(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        src_offset: u64,
        block: u32,
        block_bytes: u64,
    ) {
        match self {
            KvShard::Buffer(buffer) => encoder.copy_buffer_to_buffer(
                src,
                src_offset,
                buffer,
                block as u64 * block_bytes,
                block_bytes,
            ),
            KvShard::Texture { texture, .. } => encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: src,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: src_offset,
                        bytes_per_row: None,
                        rows_per_image: None,
                    },
                },
                Self::row(texture, block),
                Self::row_extent(block_bytes),
            ),
        }
    }

    /// Every byte of the shard in block order (blocking; tests, verification and dumps).
    pub(crate) fn read_all(
        &self,
        ctx: &GpuContext,
        blocks: u32,
        block_bytes: u64,
    ) -> Result<Vec<u8>, GpuError> {
        let bytes = blocks as u64 * block_bytes;
        match self {
            KvShard::Buffer(buffer) => super::readback::read_bytes(ctx, buffer, bytes),
            KvShard::Texture { texture, .. } => {
                // Texture-to-buffer copies need rows padded to 256 bytes; strip the padding.
                let padded =
                    block_bytes.next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as u64);
                let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("pagekv texture shard readback"),
                    size: (padded * blocks as u64).max(4),
                    usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                encoder.copy_texture_to_buffer(
                    Self::row(texture, 0),
                    wgpu::TexelCopyBufferInfo {
                        buffer: &staging,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: 0,
                            bytes_per_row: Some(padded as u32),
                            rows_per_image: None,
                        },
                    },
                    wgpu::Extent3d {
                        width: (block_bytes / TEXEL_BYTES) as u32,
                        height: blocks,
                        depth_or_array_layers: 1,
                    },
                );
                ctx.queue.submit([encoder.finish()]);
                let rows = super::readback::read_bytes(ctx, &staging, padded * blocks as u64)?;
                Ok(rows
                    .chunks(padded as usize)
                    .flat_map(|row| row[..block_bytes as usize].iter().copied())
                    .collect())
            }
        }
    }
}
