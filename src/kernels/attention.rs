//! What decode and prefill share: a compiled attention kernel under either algorithm, the
//! params of each pool shard's dispatch, and recording (the attention dispatch per shard,
//! then the combine). How a step of each kind is checked and laid out on the tiled kernels
//! lives in decode.rs and prefill.rs; the flat kernel's layout serves both (flat.rs).

use super::batch::{AttentionBatch, AttentionIo, SeqView, StepShape};
use super::combine::CombineKernel;
use super::flat::{self, AttentionAlgorithm, SplitPolicy};
use super::halves::HalfDecode;
use super::params::AttnParams;
use super::partials::PartialLayout;
use super::pipeline::ComputeKernel;
use super::reductions::Reductions;
use super::variant::{Family, TileShape, Variant};
use super::{decode, prefill};
use crate::gpu::{GpuContext, GpuError, KvStorage};

/// The two kinds of attention step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// One query per sequence, split over its context.
    Decode,
    /// A chunk of queries per sequence, causal.
    Prefill,
}

impl StepKind {
    /// The tiled family that runs this kind of step.
    fn tiled_family(self) -> Family {
        match self {
            StepKind::Decode => Family::Decode,
            StepKind::Prefill => Family::Prefill,
        }
    }
}

/// How a step divides each sequence's keys and GQA group: `splits` context splits of
/// `partition_tokens` keys each (1 and 0 when the step is not split), and `group_chunks`
/// work items along the GQA group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepSplit {
    pub(crate) group_chunks: u32,
    pub(crate) partition_tokens: u32,
    pub(crate) splits: u32,
}

/// A tiled step's layout: its split, its workgroup grid and its output rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TiledStep {
    pub(crate) split: StepSplit,
    pub(crate) grid: [u32; 3],
    pub(crate) rows: u32,
}

/// The params of each shard's dispatch of one step: shard `s` writes its splits side by side
/// with those of the other shards of its group (`layout`), in every output row of the
/// group's scratch. `shard_lists(s)` is where shard `s`'s block lists start in the
/// block-table buffer (0: none).
pub(crate) fn shard_params(
    storage: &KvStorage,
    num_seqs: u32,
    table_stride: u32,
    window: Option<u32>,
    split: StepSplit,
    layout: &PartialLayout,
    shard_lists: impl Fn(u32) -> u32,
) -> Vec<AttnParams> {
    let g = &storage.layout.geometry;
    (0..layout.shards)
        .map(|s| {
            let (first, blocks) = storage.plan.shard_range(s);
            AttnParams {
                num_seqs,
                q_heads: g.q_heads,
                group: g.group_size(),
                group_chunks: split.group_chunks,
                block_size: storage.layout.block_size,
                table_stride,
                partition_tokens: split.partition_tokens,
                splits: split.splits,
                num_partitions: layout.group_partitions(layout.group_of(s)),
                partition_base: layout.partition_base(s),
                shard_first_block: first,
                shard_blocks: blocks,
                scale: 1.0 / (g.head_dim as f32).sqrt(),
                shard_lists: shard_lists(s),
                window: window.unwrap_or(0),
                texture_row_shift: storage.texture_row_shift(),
            }
        })
        .collect()
}

/// A compiled decode or prefill pipeline for one storage mode and head dim, with the policy
/// its steps are laid out by.
pub struct AttentionKernel {
    pipeline: ComputeKernel,
    kind: StepKind,
    /// The variant built.
    pub variant: Variant,
    /// Sliding window: each query attends to at most this many newest keys.
    pub window: Option<u32>,
    /// How steps split their context (the tiled prefill only on CPU adapters).
    pub splits: SplitPolicy,
    /// Most bytes of partial-results scratch a step may use (`None`: the device's largest
    /// storage binding).
    pub partial_budget: Option<u64>,
}

impl AttentionKernel {
    /// Builds `kind`'s kernel under a chosen algorithm (tests run both on every adapter).
    pub fn with_algorithm(
        ctx: &GpuContext,
        storage: &KvStorage,
        kind: StepKind,
        algorithm: AttentionAlgorithm,
        reductions: Reductions,
        half_decode: HalfDecode,
    ) -> Result<Self, GpuError> {
        let (variant, pipeline) = flat::build(
            ctx,
            storage,
            algorithm,
            reductions,
            half_decode,
            kind.tiled_family(),
        )?;
        Ok(Self {
            pipeline,
            kind,
            variant,
            splits: SplitPolicy::for_algorithm(algorithm),
            window: None,
            partial_budget: None,
        })
    }

    /// Uploads a step: each sequence's `query_len` newest tokens are its queries (exactly one
    /// for decode), and their K/V must already be appended (so `context_len` counts them).
    pub fn prepare(
        &self,
        ctx: &GpuContext,
        storage: &KvStorage,
        batch: &mut AttentionBatch,
        seqs: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        match self.kind {
            StepKind::Decode => decode::check(seqs)?,
            StepKind::Prefill => prefill::check(seqs)?,
        }
        let Some(tiles) = self.variant.tiles else {
            return flat::prepare(self, ctx, storage, batch, seqs);
        };
        let mut step = self.tiled_step(storage, seqs, tiles);
        let max_context = seqs.iter().map(|s| s.context_len).max().unwrap_or(0).max(1);
        let span = match (self.kind, self.window) {
            (_, None) => max_context,
            (StepKind::Decode, Some(w)) => w.min(max_context),
            // A tile of prefill rows sees its first token's window through its last token.
            (StepKind::Prefill, Some(w)) => {
                let most_queries = seqs.iter().map(|s| s.query_len).max().unwrap_or(1);
                w.saturating_add(most_queries).min(max_context)
            }
        };
        let layout =
            self.fit_split(ctx, storage, step.rows, (span, tiles.keys), &mut step.split)?;
        match self.kind {
            StepKind::Decode => step.grid[0] = step.split.splits,
            // x enumerates (row tile, split).
            StepKind::Prefill => step.grid[0] *= step.split.splits,
        }
        let (_, stride, _) = super::batch::flatten(seqs);
        let params = shard_params(
            storage,
            seqs.len() as u32,
            stride,
            self.window,
            step.split,
            &layout,
            |_| 0,
        );
        batch.upload(
            ctx,
            seqs,
            &params,
            &[],
            StepShape {
                rows: step.rows,
                head_dim: storage.layout.geometry.head_dim,
                grid: step.grid,
            },
            layout,
        )?;
        batch.partition_tokens = step.split.partition_tokens;
        Ok(())
    }

    /// Fits a step's `split` to its partial-results scratch: [`AttentionKernel::partial_budget`]
    /// bytes, or the device's largest storage binding if that is less. When the wanted splits
    /// do not fit, fewer and longer ones (multiples of `tile` keys, never longer than the
    /// policy's longest split) replace them; then the pool's shards are grouped
    /// ([`super::partials::fit`]). `span`: the keys a query sees.
    pub(crate) fn fit_split(
        &self,
        ctx: &GpuContext,
        storage: &KvStorage,
        rows: u32,
        (span, tile): (u32, u32),
        split: &mut StepSplit,
    ) -> Result<PartialLayout, GpuError> {
        let device = ctx.capabilities.max_storage_binding;
        let budget = self.partial_budget.map_or(device, |b| b.min(device));
        let (shards, head_dim) = (storage.plan.num_shards(), storage.layout.geometry.head_dim);
        // On a GPU the tiled prefill walks each query's whole context in one split: its rows
        // already fill the device, and one split needs no partial results. A CPU adapter
        // caps it like decode, to stay within llvmpipe's loop budget
        // ([`flat::LLVMPIPE_LOOP_ITERATIONS`]): at head dim 256, 12000 keys in one split
        // returned wrong rows on lavapipe.
        let max_tokens = match (self.kind, self.variant.tiles) {
            (StepKind::Prefill, Some(_)) if ctx.info.device_type != wgpu::DeviceType::Cpu => None,
            _ => self.splits.max_partition_tiles.map(|t| t * tile),
        };
        let min_splits = max_tokens.map_or(1, |t| span.div_ceil(t));
        if split.splits < min_splits {
            split.partition_tokens = span.div_ceil(min_splits).next_multiple_of(tile);
            split.splits = span.div_ceil(split.partition_tokens);
        }
        let fit = |splits| super::partials::fit(rows, head_dim, splits, min_splits, shards, budget);
        let first = fit(split.splits).map_err(GpuError::Limit)?;
        if first.splits >= split.splits {
            return Ok(first);
        }
        split.partition_tokens = span.div_ceil(first.splits).next_multiple_of(tile);
        split.splits = span.div_ceil(split.partition_tokens);
        fit(split.splits).map_err(GpuError::Limit)
    }

    fn tiled_step(&self, storage: &KvStorage, seqs: &[SeqView<'_>], tiles: TileShape) -> TiledStep {
        match self.kind {
            StepKind::Decode => decode::tiled_step(storage, seqs, tiles, &self.splits, self.window),
            StepKind::Prefill => prefill::tiled_step(storage, seqs, tiles),
        }
    }

    /// Records the step for `layer`: `q` is `[query tokens][q_heads][head_dim]` f32 with the
    /// sequences' queries back to back, and `out` receives the same shape.
    pub fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        combine: &CombineKernel,
        storage: &KvStorage,
        layer: u32,
        batch: &AttentionBatch,
        io: AttentionIo<'_>,
    ) {
        batch.record((&self.pipeline, combine), pass, storage, layer, io);
    }
}
