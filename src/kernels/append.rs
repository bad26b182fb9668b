//! The append family: scatters many new tokens' K/V rows into their cache slots in one
//! dispatch per shard (like vLLM's reshape_and_cache), and copies blocks for copy-on-write.
//! Texture-backed pools take the `append_texels` entry point and the driver's texture copies.

use super::batch::{BindCache, BindKey, GrowBuffer, pack_uniforms, range_key, uniform_at};
use super::params::AppendParams;
use super::variant::{Family, Variant};
use super::{layouts, pipeline};
use crate::gpu::{DeviceLimit, GpuContext, GpuError, KvBacking, KvStorage, LimitExceeded};
use crate::kernels::pipeline::ComputeKernel;

/// Marks a token whose K/V should not be written (padding in a fixed-size batch).
pub const SKIP_SLOT: u32 = u32::MAX;

/// Compiled append and block-copy pipelines for one storage mode, backing and head dim.
pub struct AppendKernel {
    append: ComputeKernel,
    /// The in-shard block copy kernel (buffer-backed pools only).
    copy: Option<ComputeKernel>,
    backing: KvBacking,
    /// The variant built.
    pub variant: Variant,
}

/// Reusable per-step metadata for appends and block copies.
#[derive(Default, Debug)]
pub struct AppendBatch {
    slots: GrowBuffer,
    uniforms: GrowBuffer,
    stride: u64,
    grid: (u32, u32),
    /// Tokens (append) or block pairs (copy) in the prepared step.
    pub count: u32,
    groups: BindCache,
}

/// Where an append reads the step's new K and V: ranges of the caller's buffers, each
/// `[tokens][kv_heads][head_dim]` f32 in the order of the prepared slots.
#[derive(Clone, Debug)]
pub struct AppendInput<'a> {
    /// New keys.
    pub k: wgpu::BufferBinding<'a>,
    /// New values.
    pub v: wgpu::BufferBinding<'a>,
}

impl<'a> AppendInput<'a> {
    /// Whole buffers for K and V.
    pub fn whole(k: &'a wgpu::Buffer, v: &'a wgpu::Buffer) -> Self {
        Self {
            k: k.as_entire_buffer_binding(),
            v: v.as_entire_buffer_binding(),
        }
    }
}

impl AppendKernel {
    /// Builds the append variant for the pool's storage mode and backing.
    pub fn new(ctx: &GpuContext, storage: &KvStorage) -> Result<Self, GpuError> {
        let variant = Variant::for_device(
            Family::Append,
            storage.mode,
            storage.layout.geometry.head_dim,
            u32::MAX,
        )
        .expect("append has no tile constraints");
        let (entry, has_copy) = super::variant::append_entries(storage.mode, storage.backing);
        let scaled = storage.layout.dtype.codec().is_some();
        let mut entries = vec![(entry, layouts::append(storage.backing, scaled))];
        if has_copy {
            entries.push(("copy_blocks", layouts::COPY_BLOCKS));
        }
        let mut pipelines = pipeline::build(ctx, &variant.module(), &entries)?;
        let copy = has_copy.then(|| pipelines.remove(1));
        let append = pipelines.remove(0);
        Ok(Self {
            append,
            copy,
            backing: storage.backing,
            variant,
        })
    }

    fn upload(
        ctx: &GpuContext,
        storage: &KvStorage,
        batch: &mut AppendBatch,
        indices: &[u32],
        count: u32,
        threads: u64,
    ) -> Result<(), GpuError> {
        let g = &storage.layout.geometry;
        let max_dim = ctx.capabilities.max_workgroups_per_dimension;
        let workgroups = Self::check_dispatch(ctx, count, threads)?;
        let (x, y) = pipeline::grid_2d(workgroups as u32, max_dim);
        let params: Vec<AppendParams> = (0..storage.plan.num_shards())
            .map(|s| {
                let (first, blocks) = storage.plan.shard_range(s);
                AppendParams {
                    count,
                    kv_heads: g.kv_heads,
                    block_size: storage.layout.block_size,
                    shard_first_block: first,
                    shard_blocks: blocks,
                    grid_x_threads: x * 64,
                    texture_row_shift: storage.texture_row_shift(),
                    _pad: 0,
                }
            })
            .collect();
        batch.slots.write(
            ctx,
            "pagekv slots",
            wgpu::BufferUsages::STORAGE,
            bytemuck::cast_slice(indices),
        );
        let (bytes, stride) = pack_uniforms(ctx, &params);
        batch.uniforms.write(
            ctx,
            "pagekv append params",
            wgpu::BufferUsages::UNIFORM,
            &bytes,
        );
        batch.stride = stride;
        batch.grid = (x, y);
        batch.count = count;
        batch
            .groups
            .sync(batch.slots.generation() + batch.uniforms.generation());
        Ok(())
    }

    /// The workgroups `threads` need, or the limit they exceed.
    fn check_dispatch(ctx: &GpuContext, count: u32, threads: u64) -> Result<u64, GpuError> {
        let max_dim = ctx.capabilities.max_workgroups_per_dimension as u64;
        let workgroups = threads.div_ceil(64);
        if workgroups > max_dim * max_dim {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("{count} tokens or block copies in one dispatch"),
                limit: DeviceLimit::DispatchWorkgroups,
                needed: workgroups,
                allowed: max_dim * max_dim,
                remedy: "split the step",
            }));
        }
        Ok(workgroups)
    }

    /// Threads an append of `tokens` tokens runs: one per scale group of a row for a scaled
    /// format, else one per four-value slice of a row, or one per row of a texture-backed
    /// pool (whose rows are whole texels; see KvBacking::texture_misfit).
    fn append_threads(storage: &KvStorage, tokens: u64) -> u64 {
        let g = &storage.layout.geometry;
        let dtype = storage.layout.dtype;
        let per_row = match (dtype.codec(), storage.backing) {
            (Some(_), _) => dtype.row_scales(g.head_dim) as u64,
            (None, KvBacking::Buffers) => g.head_dim as u64 / 4,
            (None, KvBacking::Textures) => 1,
        };
        tokens * g.kv_heads as u64 * per_row
    }

    /// Whether `tokens` new tokens fit one append dispatch, checked before the bookkeeping
    /// books them so that a refused step changes nothing.
    pub(crate) fn check_tokens(
        ctx: &GpuContext,
        storage: &KvStorage,
        tokens: u64,
    ) -> Result<(), GpuError> {
        let count = tokens.min(u32::MAX as u64) as u32;
        Self::check_dispatch(ctx, count, Self::append_threads(storage, tokens)).map(|_| ())
    }

    /// Uploads the slot of every new token (`block * block_size + offset`, or [`SKIP_SLOT`]).
    pub fn prepare(
        &self,
        ctx: &GpuContext,
        storage: &KvStorage,
        batch: &mut AppendBatch,
        slots: &[u32],
    ) -> Result<(), GpuError> {
        let threads = Self::append_threads(storage, slots.len() as u64);
        Self::upload(ctx, storage, batch, slots, slots.len() as u32, threads)
    }

    /// Records the append for `layer`.
    pub fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        storage: &KvStorage,
        layer: u32,
        batch: &AppendBatch,
        input: AppendInput<'_>,
    ) {
        if batch.count == 0 {
            return;
        }
        self.append.set(pass);
        let pool_binding = match self.backing {
            KvBacking::Buffers => 4,
            KvBacking::Textures => 6,
        };
        for shard in 0..storage.plan.num_shards() {
            let key = BindKey {
                slot: 0,
                layer,
                shard,
                ranges: [Some(range_key(&input.k)), Some(range_key(&input.v))],
            };
            let group = batch.groups.get(key, || {
                let (k, v) = (storage.k(layer, shard), storage.v(layer, shard));
                let mut entries = vec![
                    (
                        0,
                        uniform_at::<AppendParams>(batch.uniforms.get(), batch.stride, shard),
                    ),
                    (1, wgpu::BindingResource::Buffer(input.k.clone())),
                    (2, wgpu::BindingResource::Buffer(input.v.clone())),
                    (3, batch.slots.get().as_entire_binding()),
                    (pool_binding, k.binding()),
                    (pool_binding + 1, v.binding()),
                ];
                entries.extend(k.scale_binding().map(|r| (8, r)));
                entries.extend(v.scale_binding().map(|r| (9, r)));
                pipeline::bind(storage.context(), &self.append, "pagekv append", &entries)
            });
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(batch.grid.0, batch.grid.1, 1);
        }
    }

    /// Records copy-on-write block copies `(src, dst)` for every layer. In a buffer-backed
    /// pool, pairs within one shard run in the copy kernel; pairs that cross shards, and every
    /// pair of a texture-backed pool, use the driver's copies, which need no shared binding.
    /// Copy-on-write is rare, so its metadata is uploaded per call.
    pub fn record_copies(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        copies: &[(u32, u32)],
    ) -> Result<(), GpuError> {
        for &(src, dst) in copies {
            storage.check_block(src)?;
            storage.check_block(dst)?;
        }
        let plan = storage.plan;
        let Some(copy) = &self.copy else {
            return storage.record_block_copies(ctx, encoder, copies);
        };
        let mut by_shard: Vec<Vec<u32>> = vec![Vec::new(); plan.num_shards() as usize];
        let mut across = Vec::new();
        for &(src, dst) in copies {
            let (src_shard, src_local) = plan.locate(src);
            let (dst_shard, dst_local) = plan.locate(dst);
            if src_shard == dst_shard {
                by_shard[src_shard as usize].extend([src_local, dst_local]);
            } else {
                across.push((src, dst));
            }
        }
        storage.record_block_copies(ctx, encoder, &across)?;
        let per_block = storage.plan.block_bytes_per_layer / storage.mode.vec_bytes();
        for (shard, pairs) in by_shard.iter().enumerate() {
            if pairs.is_empty() {
                continue;
            }
            let count = (pairs.len() / 2) as u32;
            // One upload per shard: queue writes land before the encoder runs, so shards
            // sharing one buffer would all see the last shard's pairs.
            let mut shard_batch = AppendBatch::default();
            Self::upload(
                ctx,
                storage,
                &mut shard_batch,
                pairs,
                count,
                count as u64 * per_block,
            )?;
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("pagekv copy blocks"),
                timestamp_writes: None,
            });
            copy.set(&mut pass);
            for layer in 0..storage.layers {
                let group = pipeline::bind(
                    ctx,
                    copy,
                    "pagekv copy blocks",
                    &[
                        (
                            0,
                            uniform_at::<AppendParams>(
                                shard_batch.uniforms.get(),
                                shard_batch.stride,
                                shard as u32,
                            ),
                        ),
                        (3, shard_batch.slots.get().as_entire_binding()),
                        (4, storage.k(layer, shard as u32).binding()),
                        (5, storage.v(layer, shard as u32).binding()),
                    ],
                );
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(shard_batch.grid.0, shard_batch.grid.1, 1);
            }
        }
        Ok(())
    }
}
