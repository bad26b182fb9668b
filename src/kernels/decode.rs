//! The decode family: one query token per sequence against its paged context, split over the
//! context (flash-decoding) so a small batch with long contexts still fills the device. Both
//! algorithms serve up to 8 query heads of one GQA group per workgroup (tiled) or invocation
//! (flat), so every K/V row is read once per group, not once per query head.

use super::batch::{AttentionBatch, AttentionIo, SeqView};
use super::combine::CombineKernel;
use super::flat::{self, AttentionAlgorithm, SplitPolicy};
use super::params::AttnParams;
use super::reductions::Reductions;
use super::variant::{Family, Variant};
use crate::gpu::{GpuContext, GpuError, KvStorage};
use crate::kernels::pipeline::ComputeKernel;

/// Compiled decode pipeline for one storage mode and head dim.
pub struct DecodeKernel {
    pipeline: ComputeKernel,
    /// The variant built.
    pub variant: Variant,
    /// Sliding window: each query attends to at most this many newest keys.
    pub window: Option<u32>,
    /// Split policy used when preparing steps.
    pub splits: SplitPolicy,
}

impl DecodeKernel {
    /// Builds a chosen algorithm (tests run both on every adapter).
    pub fn with_algorithm(
        ctx: &GpuContext,
        storage: &KvStorage,
        algorithm: AttentionAlgorithm,
        reductions: Reductions,
    ) -> Result<Self, GpuError> {
        let (variant, pipeline) = flat::build(ctx, storage, algorithm, reductions, Family::Decode)?;
        Ok(Self {
            pipeline,
            variant,
            splits: SplitPolicy::for_algorithm(algorithm),
            window: None,
        })
    }

    /// Uploads a decode step: every sequence has `query_len == 1` and its new token appended.
    pub fn prepare(
        &self,
        ctx: &GpuContext,
        storage: &KvStorage,
        batch: &mut AttentionBatch,
        seqs: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        if let Some(bad) = seqs.iter().find(|s| s.query_len != 1) {
            return Err(GpuError::InvalidInput {
                argument: "query_len",
                value: bad.query_len.to_string(),
                problem: "decode takes exactly one query per sequence".into(),
            });
        }
        let Some(tiles) = self.variant.tiles else {
            return flat::prepare(
                &self.variant,
                &self.splits,
                self.window,
                ctx,
                storage,
                batch,
                seqs,
            );
        };
        let g = &storage.layout.geometry;
        let group = g.group_size();
        let max_context = seqs.iter().map(|s| s.context_len).max().unwrap_or(0).max(1);
        // The keys one query sees: the whole context, or the window's last keys of it.
        let span = self.window.map_or(max_context, |w| w.min(max_context));
        let group_chunks = group.div_ceil(tiles.rows);
        let base = seqs.len() as u32 * g.kv_heads * group_chunks;
        let partition_tokens = self.splits.partition_tokens(base, span, tiles.keys);
        let splits = span.div_ceil(partition_tokens);
        let shards = storage.plan.num_shards();
        let (tables, stride, _) = super::batch::flatten(seqs);
        drop(tables);
        let params: Vec<AttnParams> = (0..shards)
            .map(|s| {
                let (first, blocks) = storage.plan.shard_range(s);
                AttnParams {
                    num_seqs: seqs.len() as u32,
                    q_heads: g.q_heads,
                    group,
                    group_chunks,
                    block_size: storage.layout.block_size,
                    table_stride: stride,
                    partition_tokens,
                    splits,
                    num_partitions: splits * shards,
                    partition_base: s * splits,
                    shard_first_block: first,
                    shard_blocks: blocks,
                    scale: 1.0 / (g.head_dim as f32).sqrt(),
                    shard_lists: 0,
                    window: self.window.unwrap_or(0),
                    _pad: 0,
                }
            })
            .collect();
        let grid = [splits, g.kv_heads * group_chunks, seqs.len() as u32];
        batch.upload(
            ctx,
            seqs,
            &params,
            &[],
            super::batch::StepShape {
                rows: seqs.len() as u32 * g.q_heads,
                head_dim: g.head_dim,
                grid,
            },
        )?;
        batch.partition_tokens = partition_tokens;
        Ok(())
    }

    /// Records decode for `layer`: `q` is `[num_seqs][q_heads][head_dim]` f32 and `out` receives
    /// the same shape.
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
