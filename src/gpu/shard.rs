//! One shard of a KV pool, held either in a storage buffer or in an `rgba32uint` texture of
//! blocks side by side in rows ([`TextureRows`]), and the block copies, uploads and readbacks
//! the engine and tests need on either.
//!
//! Why textures: on CPU adapters (lavapipe, llvmpipe GL) every storage-buffer load compiles to
//! a per-lane scalar loop, while a texture load runs through llvmpipe's vectorised image
//! code. `pagekv bench` measures both ("buffer read" and "texture read" rows); on this
//! project's lavapipe the texture path streams about twice as fast. GPUs read buffers at full
//! speed, and the tiled kernels read buffers only.
//!
//! The attention kernels bind the value textures as read-only storage textures
//! (`texture_storage_2d<rgba32uint, read>`), not sampled ones: llvmpipe's image load skips
//! the sampler's level-of-detail logic, and on GL wgpu guards every `texelFetch` of a sampled
//! texture with `textureSize` and `textureQueryLevels` calls. Streaming 128 MiB, the storage
//! load read 10.0 GB/s against 7.8 on lavapipe and 11.3 against 7.4 on llvmpipe GL. WebGPU
//! guarantees read-only storage access to `rgba32uint`; a device allowing fewer storage
//! textures per stage than a pool binds gets buffers. The scale textures are read sampled
//! (see `flat_pool_textures.wgsl`).
//!
//! A block's span of a texture row holds exactly the bytes of the buffer layout's block values
//! (`[kv_head][token_in_block][head_dim]`), 16 bytes per texel; a scaled format's scales sit
//! in a second, r32uint texture laid out alike, one scale per texel, because the append kernel
//! can only write whole texels and a row's scales need not fill one. A block read back, saved
//! or restored is its values span then its scales span: the same bytes as a buffer-backed
//! block, so both backings read back and decode alike.

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
    /// `rgba32uint` textures of blocks side by side in rows: the flat attention kernel
    /// fetches texels and the append kernel stores them. CPU adapters only (see the module
    /// docs).
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

    /// Why `layout` cannot live in textures on this device, if it cannot: each head's row of
    /// values must fill whole 16-byte texels (the append writes whole texels; for a scaled
    /// format, so must each scale group), and a block must fit one texture row.
    pub fn texture_misfit(ctx: &GpuContext, layout: &CacheLayout) -> Option<GpuError> {
        let dtype = layout.dtype;
        let hd = layout.geometry.head_dim;
        let row_bytes = dtype.row_value_bytes(hd);
        let bits = dtype.layout().value_bits as u64;
        let group_bytes = dtype.scale_group(hd).map(|g| {
            let tail = hd % g;
            let tail_bytes = (tail as u64 * bits / 8).max(TEXEL_BYTES);
            (g as u64 * bits / 8).min(tail_bytes)
        });
        let misfit = |problem: String| GpuError::InvalidInput {
            argument: "backing",
            value: "textures".into(),
            problem: format!("a texture-backed pool needs {problem}; use buffers"),
        };
        if !row_bytes.is_multiple_of(TEXEL_BYTES) {
            return Some(misfit(format!(
                "head rows of whole 16-byte texels, but a {} head row is {row_bytes} bytes",
                dtype.name()
            )));
        }
        if let Some(group) = group_bytes.filter(|g| !g.is_multiple_of(TEXEL_BYTES)) {
            return Some(misfit(format!(
                "scale groups of whole 16-byte texels, but a {} group is {group} bytes",
                dtype.name()
            )));
        }
        // The append writes the K and V textures, and a scaled format's two scale textures, as
        // storage textures; the attention kernels read K and V as storage textures.
        let textures = if group_bytes.is_some() { 4 } else { 2 };
        let allowed = ctx.device.limits().max_storage_textures_per_shader_stage;
        if allowed < textures {
            return Some(GpuError::Limit(LimitExceeded {
                what: format!("{} pool's storage textures in one kernel", dtype.name()),
                limit: DeviceLimit::StorageTexturesPerStage,
                needed: textures as u64,
                allowed: allowed as u64,
                remedy: "use buffers",
            }));
        }
        let max_row = ctx.device.limits().max_texture_dimension_2d as u64;
        let widest = BlockSplit::of(layout).widest_texels();
        (widest > max_row).then(|| {
            GpuError::Limit(LimitExceeded {
                what: "one block in one texture row".into(),
                limit: DeviceLimit::TextureDimension2d,
                needed: widest,
                allowed: max_row,
                remedy: "use buffers or a smaller block size",
            })
        })
    }
}

/// The bytes of one block of one layer's K (or V) pool: its values, then its scales
/// (0 for formats without). A buffer holds them back to back; a texture-backed shard keeps
/// the scales in a texture of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSplit {
    /// Bytes of the block's values.
    pub values: u64,
    /// Bytes of the block's scales.
    pub scales: u64,
}

impl BlockSplit {
    /// The split of `layout`'s blocks.
    pub fn of(layout: &CacheLayout) -> Self {
        let g = &layout.geometry;
        let rows = g.kv_heads as u64 * layout.block_size as u64;
        Self {
            values: rows * layout.dtype.row_value_bytes(g.head_dim),
            scales: rows * layout.dtype.row_scale_bytes(g.head_dim),
        }
    }

    /// Bytes of the whole block.
    pub fn total(self) -> u64 {
        self.values + self.scales
    }

    /// Texels of the wider of a texture-backed block's spans: its values in 16-byte texels or
    /// its scales, one per texel.
    pub fn widest_texels(self) -> u64 {
        (self.values / TEXEL_BYTES).max(self.scales / 4)
    }
}

/// How a texture-backed pool lays its blocks out: `1 << row_shift` blocks side by side in each
/// texture row, block `b` at row `b >> row_shift`, span `b & (2^row_shift - 1)`.
///
/// Why several blocks per row: a texture is at most `max_texture_dimension_2d` rows tall
/// (16384 on Mesa), and a small block (an INT4 block of Qwen2.5-0.5B is 64 texels of values)
/// would otherwise cap a shard at about 20 MiB, so a 1 GiB budget per layer took 26 shards: a
/// kernel pass each, and more partial results per query row than the partial-results
/// binding could hold for a 2048-token prefill.
/// Packed, a shard is bounded by the texture's width and height and the largest allocation
/// the device reports. A power of two keeps the kernels' lookup to a shift and a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextureRows {
    /// log2 of the blocks per texture row.
    pub row_shift: u32,
}

impl TextureRows {
    /// The most blocks per row for blocks whose widest part is `widest_texels` texels, on a
    /// device whose textures are at most `max_dim` texels wide: a power of two.
    fn max_shift(max_dim: u64, widest_texels: u64) -> u32 {
        (max_dim / widest_texels.max(1)).max(1).ilog2()
    }

    /// The most blocks one texture shard can hold: whole rows of the most blocks a row takes,
    /// at most `max_dim` rows and at most `max_bytes` of blocks of `block_bytes`.
    pub fn max_blocks(max_dim: u64, widest_texels: u64, block_bytes: u64, max_bytes: u64) -> u64 {
        let per_row = 1u64 << Self::max_shift(max_dim, widest_texels);
        let rows = (max_bytes / (per_row * block_bytes).max(1)).clamp(1, max_dim);
        rows * per_row
    }

    /// The layout of shards of up to `blocks` blocks: about as many rows as blocks per row
    /// (so that small pools, tests included, use several rows and several spans per row),
    /// but never more rows than `max_dim` or a row wider than `max_dim`. `blocks` must not
    /// exceed [`TextureRows::max_blocks`].
    pub fn for_shard(blocks: u32, max_dim: u64, widest_texels: u64) -> Self {
        let max_shift = Self::max_shift(max_dim, widest_texels);
        let fewest = (blocks as u64)
            .div_ceil(max_dim)
            .max(1)
            .next_power_of_two()
            .ilog2();
        let square = (blocks.max(1) as f64).sqrt().ceil() as u64;
        let square = square.next_power_of_two().ilog2();
        Self {
            row_shift: square.clamp(fewest, max_shift.max(fewest)),
        }
    }

    /// Blocks per texture row.
    pub fn per_row(self) -> u32 {
        1 << self.row_shift
    }
}

/// One texture of a texture-backed shard: blocks side by side in rows ([`TextureRows`]).
pub struct TexturePart {
    /// The texture (copies address it).
    pub texture: wgpu::Texture,
    /// The view kernels bind.
    pub view: wgpu::TextureView,
    /// Bytes of one block's span of a row.
    row_bytes: u64,
    /// Bytes per texel: 16 (rgba32uint values) or 4 (r32uint scales).
    texel_bytes: u64,
    /// How blocks sit in rows.
    rows: TextureRows,
}

impl TexturePart {
    fn new(
        ctx: &GpuContext,
        label: &str,
        blocks: u32,
        row_bytes: u64,
        scales: bool,
        rows: TextureRows,
    ) -> Self {
        let (format, texel_bytes) = if scales {
            (wgpu::TextureFormat::R32Uint, 4)
        } else {
            (wgpu::TextureFormat::Rgba32Uint, TEXEL_BYTES)
        };
        let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width: (row_bytes / texel_bytes) as u32 * rows.per_row(),
                height: blocks.div_ceil(rows.per_row()),
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        Self {
            texture,
            view,
            row_bytes,
            texel_bytes,
            rows,
        }
    }

    /// Texels of one block's span.
    fn span_texels(&self) -> u32 {
        (self.row_bytes / self.texel_bytes) as u32
    }

    /// Where local block `block`'s span starts.
    fn span(&self, block: u32) -> wgpu::TexelCopyTextureInfo<'_> {
        let column = block & (self.rows.per_row() - 1);
        wgpu::TexelCopyTextureInfo {
            texture: &self.texture,
            mip_level: 0,
            origin: wgpu::Origin3d {
                x: column * self.span_texels(),
                y: block >> self.rows.row_shift,
                z: 0,
            },
            aspect: wgpu::TextureAspect::All,
        }
    }

    /// One block's span.
    fn span_extent(&self) -> wgpu::Extent3d {
        wgpu::Extent3d {
            width: self.span_texels(),
            height: 1,
            depth_or_array_layers: 1,
        }
    }
}

/// One shard's K (or V) blocks.
pub enum KvShard {
    /// `[block][kv_head][token][head_dim]` values then scales per block, contiguous.
    Buffer(wgpu::Buffer),
    /// Block `b`'s values are span `b` of `values` (and its scales span `b` of `scales`, for a
    /// scaled format), laid out as [`TextureRows`] says.
    Texture {
        /// The values, rgba32uint.
        values: TexturePart,
        /// The scales, r32uint, one per texel (boxed: most pools have none).
        scales: Option<Box<TexturePart>>,
    },
}

impl KvShard {
    /// Allocates a shard of `blocks` blocks split as `split`, laid out as `rows` in textures.
    pub(crate) fn new(
        ctx: &GpuContext,
        label: &str,
        backing: KvBacking,
        blocks: u32,
        split: BlockSplit,
        rows: TextureRows,
    ) -> Self {
        ctx.count_created();
        match backing {
            KvBacking::Buffers => {
                KvShard::Buffer(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: blocks as u64 * split.total(),
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }))
            }
            KvBacking::Textures => KvShard::Texture {
                values: TexturePart::new(ctx, label, blocks, split.values, false, rows),
                scales: (split.scales > 0).then(|| {
                    ctx.count_created();
                    let label = format!("{label} scales");
                    Box::new(TexturePart::new(
                        ctx,
                        &label,
                        blocks,
                        split.scales,
                        true,
                        rows,
                    ))
                }),
            },
        }
    }

    /// The resource a kernel binds: the whole buffer, or the values texture view (sampled for
    /// attention, write-only storage for append).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        match self {
            KvShard::Buffer(buffer) => buffer.as_entire_binding(),
            KvShard::Texture { values, .. } => wgpu::BindingResource::TextureView(&values.view),
        }
    }

    /// The scale texture's view of a texture-backed shard of a scaled format.
    pub fn scale_binding(&self) -> Option<wgpu::BindingResource<'_>> {
        match self {
            KvShard::Buffer(_) => None,
            KvShard::Texture { scales, .. } => scales
                .as_ref()
                .map(|s| wgpu::BindingResource::TextureView(&s.view)),
        }
    }

    /// A texture-backed shard's parts and where each starts in a block's bytes.
    fn parts(&self) -> Vec<(&TexturePart, u64)> {
        match self {
            KvShard::Buffer(_) => Vec::new(),
            KvShard::Texture { values, scales } => std::iter::once((values, 0))
                .chain(scales.iter().map(|s| (&**s, values.row_bytes)))
                .collect(),
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
        if let KvShard::Buffer(buffer) = self {
            encoder.copy_buffer_to_buffer(
                buffer,
                block as u64 * block_bytes,
                dst,
                dst_offset,
                block_bytes,
            );
        }
        for (part, offset) in self.parts() {
            encoder.copy_texture_to_buffer(
                part.span(block),
                wgpu::TexelCopyBufferInfo {
                    buffer: dst,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: dst_offset + offset,
                        bytes_per_row: None,
                        rows_per_image: None,
                    },
                },
                part.span_extent(),
            );
        }
    }

    /// Writes `data` (one block's bytes) into local block `block` through the queue.
    pub(crate) fn write_block(&self, queue: &wgpu::Queue, block: u32, data: &[u8]) {
        if let KvShard::Buffer(buffer) = self {
            queue.write_buffer(buffer, block as u64 * data.len() as u64, data);
        }
        for (part, offset) in self.parts() {
            let range = offset as usize..(offset + part.row_bytes) as usize;
            queue.write_texture(
                part.span(block),
                &data[range],
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: None,
                    rows_per_image: None,
                },
                part.span_extent(),
            );
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
        if let KvShard::Buffer(buffer) = self {
            encoder.copy_buffer_to_buffer(
                src,
                src_offset,
                buffer,
                block as u64 * block_bytes,
                block_bytes,
            );
        }
        for (part, offset) in self.parts() {
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: src,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: src_offset + offset,
                        bytes_per_row: None,
                        rows_per_image: None,
                    },
                },
                part.span(block),
                part.span_extent(),
            );
        }
    }

    /// Every byte of the shard in block order (blocking; tests, verification and dumps).
    pub(crate) fn read_all(
        &self,
        ctx: &GpuContext,
        blocks: u32,
        block_bytes: u64,
    ) -> Result<Vec<u8>, GpuError> {
        if let KvShard::Buffer(buffer) = self {
            return super::readback::read_bytes(ctx, buffer, blocks as u64 * block_bytes);
        }
        let mut out = vec![0u8; (blocks as u64 * block_bytes) as usize];
        for (part, offset) in self.parts() {
            // Texture-to-buffer copies need rows padded to 256 bytes; strip the padding.
            let size = part.texture.size();
            let row_bytes = size.width as u64 * part.texel_bytes;
            let padded = row_bytes.next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as u64);
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pagekv texture shard readback"),
                size: (padded * size.height as u64).max(4),
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            encoder.copy_texture_to_buffer(
                part.span(0),
                wgpu::TexelCopyBufferInfo {
                    buffer: &staging,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(padded as u32),
                        rows_per_image: None,
                    },
                },
                size,
            );
            ctx.queue.submit([encoder.finish()]);
            let rows = super::readback::read_bytes(ctx, &staging, padded * size.height as u64)?;
            let span = part.row_bytes as usize;
            for b in 0..blocks as usize {
                let row = b >> part.rows.row_shift;
                let column = b & (part.rows.per_row() as usize - 1);
                let from = row * padded as usize + column * span;
                let at = b * block_bytes as usize + offset as usize;
                out[at..at + span].copy_from_slice(&rows[from..from + span]);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::TextureRows;

    #[test]
    fn texture_rows_fit_the_device_and_pack_small_blocks() {
        // Qwen2.5-0.5B INT4, block 16: 64 texels a block, 256 blocks a 16384-texel row.
        assert_eq!(
            TextureRows::max_blocks(16384, 64, 1024, u64::MAX),
            16384 * 256
        );
        // lavapipe's largest buffer, 2 GiB - 1, takes whole rows only: 8191 of 256 blocks.
        let lavapipe = TextureRows::max_blocks(16384, 64, 1024, (1 << 31) - 1);
        assert_eq!(lavapipe, 8191 * 256);
        let full = TextureRows::for_shard(16384 * 256, 16384, 64);
        assert_eq!(full.per_row(), 256);
        // Small pools, as tests use, still take several rows and several spans per row.
        let small = TextureRows::for_shard(40, 16384, 32);
        assert_eq!(small.per_row(), 8);
        assert_eq!(TextureRows::for_shard(1, 16384, 32).per_row(), 1);
        // A block as wide as the texture: one per row.
        assert_eq!(TextureRows::for_shard(100, 4096, 4096).per_row(), 1);
        for max_dim in [2048u64, 8192, 16384] {
            for widest in [1u64, 3, 32, 64, 100, 1024, max_dim] {
                let most = TextureRows::max_blocks(max_dim, widest, 16, u64::MAX);
                let sizes = [1, 2, 7, 40, 1000, 65_537, most / 3, most];
                for blocks in sizes.into_iter().filter(|&b| b <= most).map(|b| b as u32) {
                    let rows = TextureRows::for_shard(blocks, max_dim, widest);
                    let per_row = rows.per_row() as u64;
                    assert!(per_row * widest <= max_dim, "{max_dim} {widest} {blocks}");
                    assert!((blocks as u64).div_ceil(per_row) <= max_dim);
                }
            }
        }
    }
}
