//! The prefill family: causal attention for a chunk of new query tokens per sequence, whose
//! earlier tokens may already sit in the cache (a prefix hit or an earlier chunk). Rows of a
//! workgroup are (token, GQA head) pairs, so a K/V tile streamed through workgroup memory
//! serves every head of the group. CPU adapters get the flat kernel instead (flat.rs).

use super::batch::{AttentionBatch, AttentionIo, SeqView};
use super::combine::CombineKernel;
use super::flat::{self, AttentionAlgorithm, SplitPolicy};
use super::params::AttnParams;
use super::reductions::Reductions;
use super::variant::{Family, Variant};
use crate::gpu::{GpuContext, GpuError, KvStorage};
use crate::kernels::pipeline::ComputeKernel;

/// Compiled prefill pipeline for one storage mode and head dim.
pub struct PrefillKernel {
    pipeline: ComputeKernel,
    /// The variant built.
    pub variant: Variant,
    /// Sliding window: each query attends to at most this many newest keys.
    pub window: Option<u32>,
    /// Context splits of the flat kernel (the tiled prefill does not split).
    pub splits: SplitPolicy,
}

impl PrefillKernel {
    /// Builds a chosen algorithm (tests run both on every adapter).
    pub fn with_algorithm(
        ctx: &GpuContext,
        storage: &KvStorage,
        algorithm: AttentionAlgorithm,
        reductions: Reductions,
    ) -> Result<Self, GpuError> {
        let (variant, pipeline) =
            flat::build(ctx, storage, algorithm, reductions, Family::Prefill)?;
        Ok(Self {
            pipeline,
            variant,
            splits: SplitPolicy::for_algorithm(algorithm),
            window: None,
        })
    }

    /// Uploads a prefill step. Each sequence's `query_len` newest tokens are the queries; their
    /// K/V must already be appended (so `context_len` counts them).
    pub fn prepare(
        &self,
        ctx: &GpuContext,
        storage: &KvStorage,
        batch: &mut AttentionBatch,
        seqs: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        if let Some(bad) = seqs.iter().find(|s| s.query_len > s.context_len) {
            return Err(GpuError::InvalidInput {
                argument: "query_len",
                value: bad.query_len.to_string(),
                problem: format!(
                    "the sequence has only {} cached tokens; append the chunk first",
                    bad.context_len
                ),
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
        let shards = storage.plan.num_shards();
        let (_, stride, _) = super::batch::flatten(seqs);
        let params: Vec<AttnParams> = (0..shards)
            .map(|s| {
                let (first, blocks) = storage.plan.shard_range(s);
                AttnParams {
                    num_seqs: seqs.len() as u32,
                    q_heads: g.q_heads,
                    group,
                    group_chunks: 1,
                    block_size: storage.layout.block_size,
                    table_stride: stride,
                    partition_tokens: 0,
                    splits: 1,
                    num_partitions: shards,
                    partition_base: s,
                    shard_first_block: first,
                    shard_blocks: blocks,
                    scale: 1.0 / (g.head_dim as f32).sqrt(),
                    shard_lists: 0,
                    window: self.window.unwrap_or(0),
                    _pad: 0,
                }
            })
            .collect();
        let max_rows = seqs.iter().map(|s| s.query_len * group).max().unwrap_or(0);
        let total_queries: u32 = seqs.iter().map(|s| s.query_len).sum();
        let grid = [
            max_rows.div_ceil(tiles.rows).max(1),
            g.kv_heads,
            seqs.len() as u32,
        ];
        batch.upload(
            ctx,
            seqs,
            &params,
            &[],
            super::batch::StepShape {
                rows: total_queries * g.q_heads,
                head_dim: g.head_dim,
                grid,
            },
        )
    }

    /// Records prefill for `layer`: `q` is `[total_queries][q_heads][head_dim]` f32 with the
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
