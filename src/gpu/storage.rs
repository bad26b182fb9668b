//! Per-layer K and V pools on the device, sharded across buffers or textures (shard.rs).
//!
//! A real GPU holds many GB of KV, but one storage binding may be capped (128 MiB on
//! lavapipe, 2-4 GiB on most discrete GPUs). Each layer's K and V pools are therefore split
//! into shards of whole blocks, each shard within `max_storage_buffer_binding_size` and
//! `max_buffer_size`. Kernels run once per shard and only touch blocks of that shard; the
//! split-softmax combine pass merges the per-shard partial results, so a sequence's blocks may
//! live in any shard.
//!
//! Element layout inside a shard: `[block][kv_head][token_in_block][head_dim]`, so one head's
//! rows of one block are contiguous (what attention reads) and a block copy is one range. A
//! scaled format keeps each block's scales right after its values, inside the same range
//! (see [`crate::cache::format`]).

use super::shard::{BlockSplit, KvBacking, KvShard, TextureRows};
use super::{DeviceLimit, GpuContext, GpuError, LimitExceeded};
use crate::cache::{CacheLayout, KvFormat};

/// How a [`KvFormat`]'s values are encoded for the shaders on one device: the same bytes
/// may be read through different WGSL types (f16 natively with SHADER_F16, or as packed u32
/// words without it), so this is a per-device choice, while the format is what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvStorageMode {
    /// `array<vec4<f32>>`.
    F32,
    /// `array<vec4<f16>>` with the SHADER_F16 feature.
    F16Native,
    /// Two halves per u32 via `pack2x16float`, for adapters without SHADER_F16 (same bytes).
    F16Packed,
    /// int8 codes, four per u32, read with `unpack4xI8`; scales after the block's values.
    Int8,
    /// int4 codes, eight per u32, unpacked with shifts; scales after the block's values.
    Int4,
    /// FP8 E4M3 codes, four per u32, decoded with integer bit operations.
    Fp8E4M3,
    /// FP8 E5M2 codes, four per u32, decoded with integer bit operations.
    Fp8E5M2,
}

impl KvStorageMode {
    /// The format this encoding stores.
    pub fn format(self) -> KvFormat {
        match self {
            KvStorageMode::F32 => KvFormat::F32,
            KvStorageMode::F16Native | KvStorageMode::F16Packed => KvFormat::F16,
            KvStorageMode::Int8 => KvFormat::Int8,
            KvStorageMode::Int4 => KvFormat::Int4,
            KvStorageMode::Fp8E4M3 => KvFormat::Fp8E4M3,
            KvStorageMode::Fp8E5M2 => KvFormat::Fp8E5M2,
        }
    }

    /// Whether shaders using this encoding need the SHADER_F16 feature.
    pub fn needs_shader_f16(self) -> bool {
        match self {
            KvStorageMode::F16Native => true,
            KvStorageMode::F32
            | KvStorageMode::F16Packed
            | KvStorageMode::Int8
            | KvStorageMode::Int4
            | KvStorageMode::Fp8E4M3
            | KvStorageMode::Fp8E5M2 => false,
        }
    }

    /// Picks the best encoding the device supports for `dtype`.
    pub fn choose(dtype: KvFormat, shader_f16: bool) -> Self {
        match (dtype, shader_f16) {
            (KvFormat::F32, _) => KvStorageMode::F32,
            (KvFormat::F16, true) => KvStorageMode::F16Native,
            (KvFormat::F16, false) => KvStorageMode::F16Packed,
            (KvFormat::Int8, _) => KvStorageMode::Int8,
            (KvFormat::Int4, _) => KvStorageMode::Int4,
            (KvFormat::Fp8E4M3, _) => KvStorageMode::Fp8E4M3,
            (KvFormat::Fp8E5M2, _) => KvStorageMode::Fp8E5M2,
        }
    }

    /// Bytes of one `KvVec`, the element the tiled kernels and append index the pool by.
    pub fn vec_bytes(self) -> u64 {
        match self {
            KvStorageMode::F32 => 16,
            KvStorageMode::F16Native | KvStorageMode::F16Packed => 8,
            KvStorageMode::Int8
            | KvStorageMode::Int4
            | KvStorageMode::Fp8E4M3
            | KvStorageMode::Fp8E5M2 => 4,
        }
    }

    /// Short name used in generated shader names.
    pub fn name(self) -> &'static str {
        match self {
            KvStorageMode::F32 => "f32",
            KvStorageMode::F16Native => "f16",
            KvStorageMode::F16Packed => "f16packed",
            KvStorageMode::Int8 => "int8",
            KvStorageMode::Int4 => "int4",
            KvStorageMode::Fp8E4M3 => "fp8e4m3",
            KvStorageMode::Fp8E5M2 => "fp8e5m2",
        }
    }

    /// Every mode, for emitting and validating all shader variants.
    pub const ALL: [KvStorageMode; 7] = [
        KvStorageMode::F32,
        KvStorageMode::F16Native,
        KvStorageMode::F16Packed,
        KvStorageMode::Int8,
        KvStorageMode::Int4,
        KvStorageMode::Fp8E4M3,
        KvStorageMode::Fp8E5M2,
    ];
}

/// How blocks are divided into shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// Blocks in the pool (same count in every layer).
    pub num_blocks: u32,
    /// Blocks per shard; the last shard may hold fewer.
    pub blocks_per_shard: u32,
    /// Bytes of one block in one layer's K (or V) pool.
    pub block_bytes_per_layer: u64,
}

impl ShardPlan {
    /// Plans shards no larger than `max_shard_bytes` (itself clamped by the device limits by
    /// the caller). Fails when even one block does not fit a binding.
    pub fn new(
        layout: &CacheLayout,
        num_blocks: u32,
        max_shard_bytes: u64,
    ) -> Result<Self, GpuError> {
        let block_bytes = layout.block_bytes_per_layer();
        if block_bytes > max_shard_bytes {
            return Err(GpuError::Limit(LimitExceeded {
                what: "one KV block of one layer".into(),
                limit: DeviceLimit::StorageBindingSize,
                needed: block_bytes,
                allowed: max_shard_bytes,
                remedy: "use a smaller block size",
            }));
        }
        let blocks_per_shard = (max_shard_bytes / block_bytes).min(num_blocks.max(1) as u64) as u32;
        Ok(Self {
            num_blocks,
            blocks_per_shard,
            block_bytes_per_layer: block_bytes,
        })
    }

    /// Number of shards per layer and per K/V.
    pub fn num_shards(&self) -> u32 {
        self.num_blocks.div_ceil(self.blocks_per_shard).max(1)
    }

    /// First block and block count of shard `s`.
    pub fn shard_range(&self, s: u32) -> (u32, u32) {
        let first = s * self.blocks_per_shard;
        (first, self.blocks_per_shard.min(self.num_blocks - first))
    }

    /// Which shard holds `block`, and its index within that shard.
    pub fn locate(&self, block: u32) -> (u32, u32) {
        (block / self.blocks_per_shard, block % self.blocks_per_shard)
    }
}

/// The device-side KV pool: for each layer run, sharded K and V buffers or textures.
pub struct KvStorage {
    /// Geometry, block size and dtype the pool was built for.
    pub(crate) layout: CacheLayout,
    /// Element encoding the kernels must be built for.
    pub(crate) mode: KvStorageMode,
    /// Buffers or textures: the attention kernel must be built for it.
    pub(crate) backing: KvBacking,
    /// Block-to-shard mapping.
    pub(crate) plan: ShardPlan,
    /// How texture-backed shards lay blocks out in rows (unused with buffers).
    pub(crate) texture_rows: TextureRows,
    /// Layers that have pools (the stress engine may run fewer than the model has).
    pub(crate) layers: u32,
    k: Vec<Vec<KvShard>>,
    v: Vec<Vec<KvShard>>,
    /// The device the pool lives on; kernels bind against it.
    ctx: GpuContext,
}

impl KvStorage {
    /// Allocates `num_blocks` blocks for `layers` layers. `max_shard_bytes` lets tests force tiny
    /// shards; `None` uses the device's largest binding.
    pub fn new(
        ctx: &GpuContext,
        layout: &CacheLayout,
        num_blocks: u32,
        layers: u32,
        max_shard_bytes: Option<u64>,
    ) -> Result<Self, GpuError> {
        let mode = KvStorageMode::choose(layout.dtype, ctx.capabilities.shader_f16);
        Self::with_mode(ctx, layout, num_blocks, layers, max_shard_bytes, mode)
    }

    /// Like [`KvStorage::new`] with an explicit encoding, so tests can run the packed f16 path
    /// on a device that also has native f16.
    pub fn with_mode(
        ctx: &GpuContext,
        layout: &CacheLayout,
        num_blocks: u32,
        layers: u32,
        max_shard_bytes: Option<u64>,
        mode: KvStorageMode,
    ) -> Result<Self, GpuError> {
        let backing = KvBacking::for_device(ctx, layout);
        Self::with_backing(
            ctx,
            layout,
            num_blocks,
            layers,
            max_shard_bytes,
            mode,
            backing,
        )
    }

    /// Like [`KvStorage::with_mode`] with an explicit backing, so tests and `verify` can run
    /// the buffer-reading kernels on an adapter whose default is textures.
    pub fn with_backing(
        ctx: &GpuContext,
        layout: &CacheLayout,
        num_blocks: u32,
        layers: u32,
        max_shard_bytes: Option<u64>,
        mode: KvStorageMode,
        backing: KvBacking,
    ) -> Result<Self, GpuError> {
        if let Err(e) = layout.geometry.validate() {
            return Err(GpuError::InvalidInput {
                argument: "geometry",
                value: layout.geometry.name.clone(),
                problem: e.to_string(),
            });
        }
        if !crate::cache::SUPPORTED_BLOCK_SIZES.contains(&layout.block_size) {
            return Err(GpuError::InvalidInput {
                argument: "block size",
                value: layout.block_size.to_string(),
                problem: format!("supported: {:?}", crate::cache::SUPPORTED_BLOCK_SIZES),
            });
        }
        if mode.format() != layout.dtype {
            return Err(GpuError::InvalidInput {
                argument: "storage mode",
                value: mode.name().to_string(),
                problem: format!("it does not store {}", layout.dtype.name()),
            });
        }
        if mode.needs_shader_f16() && !ctx.capabilities.shader_f16 {
            return Err(GpuError::MissingFeature {
                feature: "SHADER_F16",
                needed_by: format!("the {} storage encoding", mode.name()),
            });
        }
        if num_blocks == 0 {
            return Err(GpuError::InvalidInput {
                argument: "block count",
                value: "0".into(),
                problem: "a KV pool needs at least one block".into(),
            });
        }
        let pool_bytes = num_blocks as u64 * layout.block_bytes_per_layer() * 2 * layers as u64;
        check_host_memory(ctx, pool_bytes)?;
        let caps = &ctx.capabilities;
        let block_bytes = layout.block_bytes_per_layer();
        let max_dim = ctx.device.limits().max_texture_dimension_2d as u64;
        let widest_texels = BlockSplit::of(layout).widest_texels();
        let device_max = match backing {
            KvBacking::Buffers => caps.max_storage_binding.min(caps.max_buffer),
            KvBacking::Textures => {
                if let Some(misfit) = KvBacking::texture_misfit(ctx, layout) {
                    return Err(misfit);
                }
                // Shards are capped by the blocks a texture's rows hold, and by the largest
                // allocation the device reports (wgpu has no texture-size limit beyond the
                // dimensions; its largest buffer is the closest it says).
                let most = caps.max_buffer;
                TextureRows::max_blocks(max_dim, widest_texels, block_bytes, most) * block_bytes
            }
        };
        let max_shard = max_shard_bytes.map_or(device_max, |m| m.min(device_max));
        let plan = ShardPlan::new(layout, num_blocks, max_shard)?;
        let texture_rows = TextureRows::for_shard(plan.blocks_per_shard, max_dim, widest_texels);
        let make = |kind: &str, layer: u32| -> Vec<KvShard> {
            (0..plan.num_shards())
                .map(|s| {
                    let label = format!("pagekv {kind} layer {layer} shard {s}");
                    let (_, blocks) = plan.shard_range(s);
                    let split = BlockSplit::of(layout);
                    KvShard::new(ctx, &label, backing, blocks, split, texture_rows)
                })
                .collect()
        };
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let k = (0..layers).map(|l| make("K", l)).collect();
        let v = (0..layers).map(|l| make("V", l)).collect();
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::OutOfMemory {
                what: "the KV pool".into(),
                bytes: pool_bytes,
                detail: err.to_string(),
            });
        }
        Ok(Self {
            layout: layout.clone(),
            mode,
            backing,
            plan,
            texture_rows,
            layers,
            k,
            v,
            ctx: ctx.clone(),
        })
    }

    /// The device context the pool was allocated on.
    pub(crate) fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Geometry, block size and format the pool was built for.
    pub fn layout(&self) -> &CacheLayout {
        &self.layout
    }

    /// How the format's values are encoded for the shaders on this device.
    pub fn mode(&self) -> KvStorageMode {
        self.mode
    }

    /// Buffers or textures.
    pub fn backing(&self) -> KvBacking {
        self.backing
    }

    /// How blocks are divided into shards.
    pub fn plan(&self) -> ShardPlan {
        self.plan
    }

    /// The kernels' `texture_row_shift`: log2 of the blocks side by side in a texture row of
    /// a texture-backed pool ([`TextureRows`]), 0 for buffers.
    pub fn texture_row_shift(&self) -> u32 {
        match self.backing {
            KvBacking::Textures => self.texture_rows.row_shift,
            KvBacking::Buffers => 0,
        }
    }

    /// Layers with a pool.
    pub fn layers(&self) -> u32 {
        self.layers
    }

    /// Refuses a block id outside the pool (a caller bug that would index past a shard).
    pub fn check_block(&self, block: u32) -> Result<(), GpuError> {
        if block >= self.plan.num_blocks {
            return Err(GpuError::InvalidInput {
                argument: "block",
                value: block.to_string(),
                problem: format!("the pool has {} blocks", self.plan.num_blocks),
            });
        }
        Ok(())
    }

    /// K blocks of `layer`, shard `shard`.
    pub(crate) fn k(&self, layer: u32, shard: u32) -> &KvShard {
        &self.k[layer as usize][shard as usize]
    }

    /// V blocks of `layer`, shard `shard`.
    pub(crate) fn v(&self, layer: u32, shard: u32) -> &KvShard {
        &self.v[layer as usize][shard as usize]
    }

    /// Total device bytes held by the pool.
    pub fn bytes(&self) -> u64 {
        self.plan.num_blocks as u64 * self.plan.block_bytes_per_layer * 2 * self.layers as u64
    }

    /// Records copies of `block`'s K then V bytes for every layer into `dst` from
    /// `dst_offset` on (layer-major, each `plan.block_bytes_per_layer` long); returns the
    /// offset after them. Swap-out saves a preempted sequence's blocks this way.
    pub fn record_block_save(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        block: u32,
        dst: &wgpu::Buffer,
        mut dst_offset: u64,
    ) -> Result<u64, GpuError> {
        self.check_block(block)?;
        let (shard, local) = self.plan.locate(block);
        let size = self.plan.block_bytes_per_layer;
        for layer in 0..self.layers {
            for pool in [self.k(layer, shard), self.v(layer, shard)] {
                pool.record_block_to_buffer(encoder, local, size, dst, dst_offset);
                dst_offset += size;
            }
        }
        Ok(dst_offset)
    }

    /// Writes `saved` (what [`KvStorage::record_block_save`] wrote for one block) into
    /// `block` through the queue: swap-in restores a sequence this way.
    pub fn write_block(
        &self,
        queue: &wgpu::Queue,
        block: u32,
        saved: &[u8],
    ) -> Result<(), GpuError> {
        self.check_block(block)?;
        let expected = self.plan.block_bytes_per_layer * 2 * self.layers as u64;
        if saved.len() as u64 != expected {
            return Err(GpuError::InvalidInput {
                argument: "saved block",
                value: format!("{} bytes", saved.len()),
                problem: format!("one block of every layer's K and V is {expected} bytes"),
            });
        }
        let (shard, local) = self.plan.locate(block);
        let mut chunks = saved.chunks_exact(self.plan.block_bytes_per_layer as usize);
        for layer in 0..self.layers {
            for (pool, chunk) in [self.k(layer, shard), self.v(layer, shard)]
                .into_iter()
                .zip(chunks.by_ref())
            {
                pool.write_block(queue, local, chunk);
            }
        }
        Ok(())
    }

    /// Records copies of blocks `(src, dst)` (K and V, every layer) with the driver's copy
    /// commands, which work across shards and on either backing. They go through one scratch
    /// buffer, because a texture cannot be copied into itself and a texture shard holds many
    /// blocks. Copy-on-write is rare, so the scratch buffer is made per call.
    pub fn record_block_copies(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        pairs: &[(u32, u32)],
    ) -> Result<(), GpuError> {
        for &(src, dst) in pairs {
            self.check_block(src)?;
            self.check_block(dst)?;
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let per_block = self.plan.block_bytes_per_layer * 2 * self.layers as u64;
        ctx.count_created();
        let scratch = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv block copy scratch"),
            size: per_block * pairs.len() as u64,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut offset = 0;
        for &(src, _) in pairs {
            offset = self.record_block_save(encoder, src, &scratch, offset)?;
        }
        let size = self.plan.block_bytes_per_layer;
        let mut offset = 0;
        for &(_, dst) in pairs {
            let (shard, local) = self.plan.locate(dst);
            for layer in 0..self.layers {
                for pool in [self.k(layer, shard), self.v(layer, shard)] {
                    pool.record_block_from_buffer(encoder, &scratch, offset, local, size);
                    offset += size;
                }
            }
        }
        Ok(())
    }
}

/// A CPU adapter's "device memory" is host memory, which drivers commit lazily: an oversized
/// pool would not fail at allocation but push the machine into swap or the OOM killer while
/// it fills. Refuse pools above half of the memory the host has available instead. Discrete
/// and integrated GPUs report their own out-of-memory errors at allocation.
fn check_host_memory(ctx: &GpuContext, pool_bytes: u64) -> Result<(), GpuError> {
    if ctx.info.device_type != wgpu::DeviceType::Cpu {
        return Ok(());
    }
    match host_available_bytes() {
        Some(available) if pool_bytes > available / 2 => Err(GpuError::Limit(LimitExceeded {
            what: format!("the KV pool ({})", human_bytes(pool_bytes)),
            limit: DeviceLimit::HostMemory,
            needed: pool_bytes,
            allowed: available / 2,
            remedy: "a CPU adapter's memory is host memory; use a smaller pool",
        })),
        _ => Ok(()),
    }
}

/// `MemAvailable` from /proc/meminfo (Linux); `None` elsewhere.
pub(crate) fn host_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Formats bytes with binary units for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ModelGeometry;

    #[test]
    fn shards_cover_every_block_once() {
        let layout = CacheLayout {
            geometry: ModelGeometry::qwen2_5_0_5b(),
            block_size: 16,
            dtype: KvFormat::F16,
        };
        let plan = ShardPlan::new(&layout, 100, 64 * 1024).unwrap();
        assert_eq!(plan.block_bytes_per_layer, 2 * 16 * 64 * 2);
        assert_eq!(plan.blocks_per_shard, 16);
        assert_eq!(plan.num_shards(), 7);
        let total: u32 = (0..plan.num_shards()).map(|s| plan.shard_range(s).1).sum();
        assert_eq!(total, 100);
        assert_eq!(plan.locate(33), (2, 1));
        assert!(ShardPlan::new(&layout, 100, 1024).is_err());
    }
}
