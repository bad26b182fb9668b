//! The flat attention family (shaders/attention_flat.wgsl): decode and prefill without
//! workgroup memory or barriers, which CPU adapters such as lavapipe run many times faster than
//! the tiled kernels GPUs get. One invocation serves one query token and up to
//! [`MAX_FLAT_GROUP`] heads of a GQA group, so each K/V row it streams is read once per group.
//! Decode and prefill share it: a decode step is a chunk of one query per sequence.
//!
//! This module also holds what both families share: which algorithm a device gets and how a
//! step's context is split.

use super::attention::{StepSplit, shard_params};
use super::batch::{AttentionBatch, SeqView};
use super::halves::HalfDecode;
use super::reductions::Reductions;
use super::variant::{FLAT_KEY_TILE, Family, MAX_FLAT_GROUP, Variant};
use crate::cache::CacheLayout;
use crate::gpu::{GpuContext, GpuError, KvBacking, KvStorage};
use crate::kernels::pipeline::ComputeKernel;

/// Which attention shaders a device gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum AttentionAlgorithm {
    /// decode.wgsl and prefill.wgsl: K/V tiles staged in workgroup memory and shared by the
    /// rows of a workgroup (GPUs).
    Tiled,
    /// attention_flat.wgsl: no workgroup memory or barriers (CPU adapters, where a barrier
    /// makes the whole shader run as coroutines).
    Flat,
}

impl AttentionAlgorithm {
    /// Flat on CPU adapters, tiled everywhere else.
    pub fn for_device(ctx: &GpuContext) -> Self {
        if ctx.info.device_type == wgpu::DeviceType::Cpu {
            AttentionAlgorithm::Flat
        } else {
            AttentionAlgorithm::Tiled
        }
    }

    /// Every algorithm, in the order tools list them.
    pub const ALL: [AttentionAlgorithm; 2] = [AttentionAlgorithm::Tiled, AttentionAlgorithm::Flat];

    /// Lowercase name, as reports and the CLI write it.
    pub fn name(self) -> &'static str {
        match self {
            AttentionAlgorithm::Tiled => "tiled",
            AttentionAlgorithm::Flat => "flat",
        }
    }

    /// Where a pool for `layout` should live when the kernels reading it are `forced` (or
    /// chosen by adapter class when `None`): the tiled kernels read only buffers, so forcing
    /// them means buffers even on a CPU adapter, whose flat kernels otherwise read textures.
    pub fn pool_backing(
        forced: Option<AttentionAlgorithm>,
        ctx: &GpuContext,
        layout: &CacheLayout,
    ) -> KvBacking {
        match forced {
            Some(AttentionAlgorithm::Tiled) => KvBacking::Buffers,
            Some(AttentionAlgorithm::Flat) | None => KvBacking::for_device(ctx, layout),
        }
    }

    /// [`AttentionAlgorithm::for_device`] for `storage`, falling back to the tiled kernels
    /// where the flat one cannot read the format (int4 rows at head dim 80 are 40 bytes, not
    /// whole 16-byte chunks); such pools are never texture-backed, so tiled can read them.
    pub fn for_storage(ctx: &GpuContext, storage: &KvStorage) -> Self {
        let head_dim = storage.layout.geometry.head_dim;
        match Self::for_device(ctx) {
            AttentionAlgorithm::Flat
                if !super::prelude::chunks_fit(storage.layout.dtype, head_dim) =>
            {
                AttentionAlgorithm::Tiled
            }
            algorithm => algorithm,
        }
    }
}

/// The tiled decode's split target before (or without) measuring the device.
pub const UNMEASURED_TILED_TARGET: u32 = 512;

/// Most key tiles one tiled decode workgroup walks (4096 keys at 32-key tiles), and on CPU
/// adapters one tiled prefill workgroup too (GPUs walk a prefill tile's keys in one). On GPUs
/// this bounds the decode straggler: a long sequence in a batch of short ones is split over
/// several workgroups instead of one walking its whole context while the rest of the device
/// idles (vLLM's split decode uses 512-key partitions for the same reason). On llvmpipe it is
/// also a correctness bound ([`LLVMPIPE_LOOP_ITERATIONS`]): one workgroup walking a few hundred
/// tiles of a 7- or 8-head group at head dim 128 or 256 returned wrong rows on lavapipe (seen
/// at 219 tiles; 188 passed), so the cap stays well below that.
pub const MAX_TILED_PARTITION_TILES: u32 = 128;

/// Loop iterations llvmpipe (lavapipe and llvmpipe's GL) runs in one shader invocation, all
/// loops together, before it ends every loop early without a word (Mesa's gallivm
/// `LP_MAX_TGSI_LOOP_ITERATIONS`, a guard against runaway shaders). Kernels that CPU
/// adapters run must stay under it, or their rows come out wrong.
pub const LLVMPIPE_LOOP_ITERATIONS: u32 = 65_535;

/// Most keys one flat attention invocation walks. Per block of `bs` keys the flat kernel runs
/// one block iteration, `bs` score iterations and `bs / 2` value iterations: at most 1.625
/// per key (block size 8), so 32768 keys are 53248 iterations, under
/// [`LLVMPIPE_LOOP_ITERATIONS`]. A longer context takes more splits.
pub const MAX_FLAT_PARTITION_TOKENS: u32 = 32_768;

// A split of the longest length at the smallest block size (8), plus the invocation's few
// loop exits, stays within llvmpipe's budget.
const _: () = assert!(MAX_FLAT_PARTITION_TOKENS / 8 * 13 + 8 < LLVMPIPE_LOOP_ITERATIONS);

/// Fewest keys per tiled decode split (4 tiles of 32 keys).
pub const MIN_TILED_PARTITION_TOKENS: u32 = 128;

/// Flat decode invocations aimed at per host core on a CPU adapter: two workgroups of
/// [`super::variant::FLAT_WORKGROUP_SIZE`] lanes, so a core slowed by other work hands its
/// second workgroup to an idle one.
pub const FLAT_INVOCATIONS_PER_CORE: u32 = 16;

/// Fewest keys per flat decode split: each split pays for loading its queries, storing its
/// partial rows and merging them, all per-lane scalar memory work on a CPU adapter.
pub const MIN_FLAT_PARTITION_TOKENS: u32 = 512;

/// How a step's context is split across work items (flash-decoding).
#[derive(Clone, Copy, Debug)]
pub struct SplitPolicy {
    /// Aim for at least this many work items per dispatch (workgroups for the tiled kernel,
    /// invocations for the flat one).
    pub target_workgroups: u32,
    /// Never split below this many keys per split (the combine pass would dominate).
    pub min_partition_tokens: u32,
    /// Force a split length (tests use it to exercise many splits on short contexts).
    pub forced_partition_tokens: Option<u32>,
    /// Longest split in key tiles: [`MAX_TILED_PARTITION_TILES`] for the tiled kernel,
    /// [`MAX_FLAT_PARTITION_TOKENS`] in the flat kernel's tiles.
    pub max_partition_tiles: Option<u32>,
}

impl Default for SplitPolicy {
    fn default() -> Self {
        Self::for_algorithm(AttentionAlgorithm::Tiled)
    }
}

impl SplitPolicy {
    /// Before a device is measured: the tiled kernel aims at [`UNMEASURED_TILED_TARGET`]
    /// workgroups, the flat kernel at [`SplitPolicy::flat`]'s invocations.
    pub fn for_algorithm(algorithm: AttentionAlgorithm) -> Self {
        match algorithm {
            AttentionAlgorithm::Tiled => Self::tiled(UNMEASURED_TILED_TARGET),
            AttentionAlgorithm::Flat => Self::flat(),
        }
    }

    /// The tiled decode on a device that runs `concurrent` of its workgroups at once
    /// ([`super::occupancy`]): split until one step is one full wave of them, but never below
    /// [`MIN_TILED_PARTITION_TOKENS`] keys per split, so each workgroup still streams several
    /// tiles for its one Q load and partial-state write, and the combine pass stays small.
    pub fn tiled(concurrent: u32) -> Self {
        Self {
            target_workgroups: concurrent.max(1),
            min_partition_tokens: MIN_TILED_PARTITION_TOKENS,
            forced_partition_tokens: None,
            max_partition_tiles: Some(MAX_TILED_PARTITION_TILES),
        }
    }

    /// The flat kernel counts invocations, and on a CPU adapter (whose cores are the host's)
    /// two workgroups per core keep every core busy while long splits keep the per-split work
    /// small. Measured on lavapipe with 2 cores against 32 invocations per core and 256 keys
    /// at least, three rounds in turn: batch 1 decode 2-11% faster at 4K to 32K, batch 8
    /// unchanged (its splits come from filling a workgroup's lanes).
    pub fn flat() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        Self {
            target_workgroups: FLAT_INVOCATIONS_PER_CORE * cores,
            min_partition_tokens: MIN_FLAT_PARTITION_TOKENS,
            forced_partition_tokens: None,
            max_partition_tiles: Some(MAX_FLAT_PARTITION_TOKENS / FLAT_KEY_TILE),
        }
    }

    /// The policy `variant` gets on `ctx`: the tiled decode sized to the device's measured
    /// concurrency at the variant's workgroup memory (or to `target` when the caller gives
    /// one, which skips the measurement); other variants [`SplitPolicy::for_algorithm`].
    pub fn for_device(
        ctx: &GpuContext,
        variant: &Variant,
        target: Option<u32>,
    ) -> Result<Self, GpuError> {
        match (variant.tiles, target) {
            (Some(_), Some(target)) => Ok(Self::tiled(target)),
            (Some(tiles), None) => Ok(Self::tiled(super::occupancy::concurrent_workgroups(
                ctx,
                tiles.bytes(variant.head_dim),
            )?)),
            (None, _) => Ok(Self::flat()),
        }
    }

    /// Keys per split for a step with `base_items` work items before splitting.
    pub fn partition_tokens(&self, base_items: u32, max_context: u32, tile_keys: u32) -> u32 {
        let max_tokens = self
            .max_partition_tiles
            .map_or(u32::MAX, |tiles| tiles.saturating_mul(tile_keys));
        let chosen = self.forced_partition_tokens.unwrap_or_else(|| {
            let wanted_splits = self.target_workgroups.div_ceil(base_items.max(1)).max(1);
            max_context
                .div_ceil(wanted_splits)
                .max(self.min_partition_tokens)
        });
        chosen
            .next_multiple_of(tile_keys)
            .clamp(tile_keys, max_tokens)
    }
}

/// Query heads per flat invocation for a GQA group of `group` heads: as many as fit
/// [`MAX_FLAT_GROUP`], spread evenly over the fewest chunks (12 heads: two chunks of 6).
pub fn group_chunk(group: u32) -> u32 {
    let chunks = group.max(1).div_ceil(MAX_FLAT_GROUP);
    group.max(1).div_ceil(chunks)
}

/// Most query rows (query tokens x heads) a flat prefill invocation serves.
pub const MAX_FLAT_PREFILL_ROWS: u32 = 16;

/// Most four-value slices of query and accumulator a flat prefill invocation holds: what a
/// decode invocation of a 7-head group at head dim 128 holds. Mesa's compile time grows with
/// the square of the values live across the key loop (a cold one-layer `verify` of that
/// group on lavapipe took 19 s with one token per invocation, 81 s with two and 3 min with
/// three), so prefill never compiles a larger kernel than decode already does.
pub const MAX_FLAT_PREFILL_SLICES: u32 = 224;

/// Most query tokens one flat prefill invocation serves.
pub const MAX_FLAT_QUERIES: u32 = 4;

/// Query tokens per flat prefill invocation for a group chunk of `group` heads at `head_dim`:
/// as many as [`MAX_FLAT_PREFILL_ROWS`] and [`MAX_FLAT_PREFILL_SLICES`] allow, 1 to
/// [`MAX_FLAT_QUERIES`]. Every K/V row the invocation reads then serves all its rows, the reuse
/// a GPU prefill gets from a tile of query rows in workgroup memory: on lavapipe two tokens of
/// Qwen2.5-0.5B's 7-head group at head dim 64 run a 2K prefill about 1.3x faster than one.
pub fn prefill_queries(group: u32, head_dim: u32) -> u32 {
    let group = group.max(1);
    let by_rows = MAX_FLAT_PREFILL_ROWS / group;
    let by_slices = MAX_FLAT_PREFILL_SLICES / (group * head_dim / 4);
    by_rows.min(by_slices).clamp(1, MAX_FLAT_QUERIES)
}

/// The variant and pipeline of an attention family under `algorithm`: the `tiled` family
/// (decode or prefill) sized to the device's workgroup memory, or the flat kernel for
/// `storage`'s dtype, head dim and GQA group.
pub(crate) fn build(
    ctx: &GpuContext,
    storage: &KvStorage,
    algorithm: AttentionAlgorithm,
    reductions: Reductions,
    half_decode: HalfDecode,
    tiled: Family,
) -> Result<(Variant, ComputeKernel), GpuError> {
    let geometry = &storage.layout.geometry;
    let head_dim = geometry.head_dim;
    let variant = match algorithm {
        AttentionAlgorithm::Tiled if storage.backing != KvBacking::Buffers => {
            return Err(GpuError::InvalidInput {
                argument: "algorithm",
                value: "tiled".into(),
                problem: format!(
                    "the tiled kernels read buffer-backed pools, but this pool is held in {}; build it with KvBacking::Buffers",
                    storage.backing.name()
                ),
            });
        }
        AttentionAlgorithm::Tiled => Variant::for_device(
            tiled,
            storage.mode,
            head_dim,
            ctx.capabilities.max_workgroup_storage,
        )
        .ok_or_else(|| {
            // The smallest tile pagekv would build: the family's rows, 4 keys.
            let smallest = super::variant::TileShape::choose(tiled, head_dim, u32::MAX)
                .map_or(0, |t| {
                    super::variant::TileShape { keys: 4, ..t }.bytes(head_dim)
                });
            GpuError::Limit(crate::gpu::LimitExceeded {
                what: format!("the tiled {} kernel at head dim {head_dim}", tiled.name()),
                limit: crate::gpu::DeviceLimit::WorkgroupStorageSize,
                needed: smallest as u64,
                allowed: ctx.capabilities.max_workgroup_storage as u64,
                remedy: "use the flat kernels",
            })
        })?
        .with_reductions(reductions),
        AttentionAlgorithm::Flat => {
            let variant = Variant::for_device(Family::Flat, storage.mode, head_dim, u32::MAX)
                .ok_or_else(|| GpuError::InvalidInput {
                    argument: "algorithm",
                    value: "flat".into(),
                    problem: format!(
                        "the flat kernel reads whole 16-byte chunks of a row, but a {} row at head dim {head_dim} is {} bytes; use the tiled kernels",
                        storage.layout.dtype.name(),
                        storage.layout.dtype.row_value_bytes(head_dim)
                    ),
                })?
                .with_group(group_chunk(geometry.group_size()))
                .with_backing(storage.backing);
            let queries = match tiled {
                Family::Prefill => prefill_queries(variant.group, head_dim),
                _ => 1,
            };
            variant.with_queries(queries)
        }
    }
    .with_half_decode(half_decode);
    let entry = match variant.family {
        Family::Flat => "attend",
        family => family.name(),
    };
    let scaled = storage.layout.dtype.codec().is_some();
    let pipeline = super::pipeline::build(
        ctx,
        &variant.module(),
        &[(entry, super::layouts::attention(storage.backing, scaled))],
    )?
    .remove(0);
    Ok((variant, pipeline))
}

/// Uploads a step for the flat kernel: every sequence's `query_len` newest tokens attend
/// causally to its cache (one query per sequence for decode).
pub(crate) fn prepare(
    kernel: &super::attention::AttentionKernel,
    ctx: &GpuContext,
    storage: &KvStorage,
    batch: &mut AttentionBatch,
    seqs: &[SeqView<'_>],
) -> Result<(), GpuError> {
    let (variant, splits, window) = (&kernel.variant, &kernel.splits, kernel.window);
    let g = &storage.layout.geometry;
    let group_chunks = g.group_size().div_ceil(variant.group);
    let queries = variant.queries.max(1);
    // The keys one invocation walks: the whole context, or its queries' windows from a whole
    // tile (the kernel starts a window on a tile boundary, up to a tile - 1 early, and its
    // last query sees queries - 1 keys past its first one's window).
    let key_tile = variant.flat_key_tile();
    let max_context = seqs.iter().map(|s| s.context_len).max().unwrap_or(0).max(1);
    let max_context = window.map_or(max_context, |w| {
        (w + key_tile - 1 + queries - 1).min(max_context)
    });
    let max_queries = seqs.iter().map(|s| s.query_len).max().unwrap_or(0).max(1);
    let total_queries: u32 = seqs.iter().map(|s| s.query_len).sum();
    let query_blocks: u32 = seqs.iter().map(|s| s.query_len.div_ceil(queries)).sum();
    let base = query_blocks * g.kv_heads * group_chunks;
    // Splits start at multiples of the key tile, so no tile crosses a block.
    if !storage.layout.block_size.is_multiple_of(key_tile) {
        return Err(GpuError::InvalidInput {
            argument: "block size",
            value: storage.layout.block_size.to_string(),
            problem: format!("not a multiple of the flat attention's {key_tile}-key tile"),
        });
    }
    let mut partition_tokens = splits.partition_tokens(base, max_context, key_tile);
    // A single query per sequence (decode) fills a workgroup's SIMD lanes only with enough
    // splits: lanes never span sequences.
    let lanes = variant.workgroup_size();
    let per_split = g.kv_heads * group_chunks;
    if max_queries == 1 && splits.forced_partition_tokens.is_none() && per_split < lanes {
        let wanted = lanes.div_ceil(per_split);
        partition_tokens = partition_tokens
            .min(max_context.div_ceil(wanted).next_multiple_of(key_tile))
            .max(key_tile);
    }
    let rows = total_queries * g.q_heads;
    let mut split = StepSplit {
        group_chunks,
        partition_tokens,
        splits: max_context.div_ceil(partition_tokens),
    };
    let layout = kernel.fit_split(ctx, storage, rows, (max_context, key_tile), &mut split)?;
    let (tables, stride, _) = super::batch::flatten(seqs);
    let lists = shard_block_lists(storage, seqs, stride);
    let list_len = seqs.len() as u32 * (stride + 1);
    let params = shard_params(
        storage,
        seqs.len() as u32,
        stride,
        window,
        split,
        &layout,
        |s| {
            if lists.is_empty() {
                0
            } else {
                tables.len() as u32 + s * list_len
            }
        },
    );
    let grid = [
        (max_queries.div_ceil(queries) * split.splits * per_split).div_ceil(lanes),
        1,
        seqs.len() as u32,
    ];
    batch.upload(
        ctx,
        seqs,
        &params,
        &lists,
        super::batch::StepShape {
            rows,
            head_dim: g.head_dim,
            grid,
        },
        layout,
    )?;
    batch.partition_tokens = split.partition_tokens;
    Ok(())
}

/// For a pool of several shards, per shard and sequence: the count of the sequence's blocks
/// that shard holds, then their logical indices in order, padded to `stride`. Each shard's
/// pass then walks only its own blocks; walking every block and skipping the others' costs
/// nearly a full pass per shard on SIMD lanes whose blocks are scattered over the pool.
/// Empty for a single shard.
fn shard_block_lists(storage: &KvStorage, seqs: &[SeqView<'_>], stride: u32) -> Vec<u32> {
    let shards = storage.plan.num_shards();
    if shards < 2 {
        return Vec::new();
    }
    let mut lists = Vec::with_capacity((shards * seqs.len() as u32 * (stride + 1)) as usize);
    for s in 0..shards {
        let (first, blocks) = storage.plan.shard_range(s);
        for seq in seqs {
            let start = lists.len();
            lists.push(0);
            lists.extend(
                (0u32..)
                    .zip(seq.block_table)
                    .filter(|&(_, &b)| b >= first && b < first + blocks)
                    .map(|(logical, _)| logical),
            );
            lists[start] = (lists.len() - start - 1) as u32;
            lists.resize(start + 1 + stride as usize, 0);
        }
    }
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_chunks_are_even_and_bounded() {
        for (group, chunk) in [(1, 1), (7, 7), (8, 8), (11, 6), (12, 6), (16, 8), (20, 7)] {
            assert_eq!(group_chunk(group), chunk, "group {group}");
        }
    }

    #[test]
    fn prefill_serves_as_many_tokens_as_rows_and_slices_allow() {
        // (group, head dim) -> tokens: Qwen2.5-0.5B's group takes two, small groups up to
        // four; Qwen2.5-7B's group at head dim 128 already fills the budget alone.
        for (group, head_dim, queries) in [
            (7, 64, 2),
            (7, 128, 1),
            (8, 256, 1),
            (2, 256, 1),
            (2, 128, 3),
            (2, 64, 4),
            (1, 128, 4),
            (6, 96, 1),
        ] {
            assert_eq!(
                prefill_queries(group, head_dim),
                queries,
                "group {group} hd{head_dim}"
            );
            let rows = group * queries;
            assert!(rows <= MAX_FLAT_PREFILL_ROWS || queries == 1);
            assert!(rows * head_dim / 4 <= MAX_FLAT_PREFILL_SLICES || queries == 1);
        }
    }

    #[test]
    fn both_splits_are_bounded() {
        let tiled = SplitPolicy::for_algorithm(AttentionAlgorithm::Tiled);
        assert_eq!(
            tiled.partition_tokens(10_000, 1 << 20, 16),
            MAX_TILED_PARTITION_TILES * 16
        );
        let flat = SplitPolicy {
            target_workgroups: 64,
            ..SplitPolicy::flat()
        };
        // 8 work items want 8 splits of a 32K context.
        assert_eq!(flat.partition_tokens(8, 32768, FLAT_KEY_TILE), 4096);
        // Enough work items already would take one split of the whole context, but no flat
        // split walks more than llvmpipe's loop budget allows.
        assert_eq!(
            flat.partition_tokens(4096, 1 << 20, FLAT_KEY_TILE),
            MAX_FLAT_PARTITION_TOKENS
        );
        assert_eq!(flat.partition_tokens(4096, 20_000, FLAT_KEY_TILE), 20_000);
    }

    #[test]
    fn the_tiled_split_fills_one_wave_of_the_measured_device() {
        // A GPU measured at 1024 concurrent workgroups, batch 1 with 2 KV heads at 4K: as
        // many splits as the minimum split length allows (32 of 128 keys: 64 workgroups).
        let gpu = SplitPolicy::tiled(1024);
        assert_eq!(gpu.partition_tokens(2, 4096, 32), 128);
        // 64K context: 512 splits per KV head fill the wave.
        assert_eq!(gpu.partition_tokens(2, 65536, 32), 128);
        assert_eq!(gpu.partition_tokens(2, 1 << 20, 32), 2048);
        // A batch that fills the device alone is not split, up to the longest split.
        assert_eq!(gpu.partition_tokens(1024, 4096, 32), 4096);
        assert_eq!(gpu.partition_tokens(1024, 32768, 32), 4096);
        // A device that runs two at once (lavapipe's two cores): whole contexts up to 4096.
        assert_eq!(SplitPolicy::tiled(2).partition_tokens(2, 4000, 32), 4000);
        // Flat: the host's cores set the target, two workgroups each.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        let flat = SplitPolicy::flat();
        assert_eq!(
            flat.target_workgroups,
            2 * super::super::variant::FLAT_WORKGROUP_SIZE * cores
        );
        // Batch 1 with 2 KV heads on 2 cores: 16 splits wanted, but no split under 512 keys.
        assert_eq!(
            SplitPolicy {
                target_workgroups: 32,
                ..flat
            }
            .partition_tokens(2, 4096, 2),
            512
        );
    }
}
