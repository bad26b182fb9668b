//! The decode family: one query token per sequence against its paged context, split over the
//! context (flash-decoding) so a small batch with long contexts still fills the device. Both
//! algorithms serve up to 8 query heads of one GQA group per workgroup (tiled) or invocation
//! (flat), so every K/V row is read once per group, not once per query head.

use super::batch::{AttentionBatch, SeqView};
use super::combine::CombineKernel;
use super::params::AttnParams;
use super::pipeline;
use super::variant::{Family, MAX_FLAT_GROUP, Variant};
use crate::gpu::{GpuContext, GpuError, KvStorage};

/// How the context is split across workgroups.
#[derive(Clone, Copy, Debug)]
pub struct SplitPolicy {
    /// Aim for at least this many work items per dispatch (workgroups for the tiled kernel,
    /// invocations for the flat one).
    pub target_workgroups: u32,
    /// Never split below this many keys per split (the combine pass would dominate).
    pub min_partition_tokens: u32,
    /// Force a split length (tests use it to exercise many splits on short contexts).
    pub forced_partition_tokens: Option<u32>,
}

impl Default for SplitPolicy {
    fn default() -> Self {
        Self::for_algorithm(DecodeAlgorithm::Tiled)
    }
}

impl SplitPolicy {
    /// The tiled kernel counts workgroups of 64 threads; the flat kernel counts invocations,
    /// and on a CPU adapter a few hundred keep every core busy while longer splits keep the
    /// combine pass small.
    pub fn for_algorithm(algorithm: DecodeAlgorithm) -> Self {
        match algorithm {
            DecodeAlgorithm::Tiled => Self {
                target_workgroups: 512,
                min_partition_tokens: 256,
                forced_partition_tokens: None,
            },
            DecodeAlgorithm::Flat => Self {
                target_workgroups: 64,
                min_partition_tokens: 256,
                forced_partition_tokens: None,
            },
        }
    }

    /// Keys per split for a step, bounded so one workgroup's loop stays far below the ~65K
    /// barriers per workgroup that lavapipe handles correctly (5 barriers per key tile).
    pub fn partition_tokens(&self, base_workgroups: u32, max_context: u32, tile_keys: u32) -> u32 {
        let max_tokens = 2048 * tile_keys;
        let chosen = self.forced_partition_tokens.unwrap_or_else(|| {
            let wanted_splits = self
                .target_workgroups
                .div_ceil(base_workgroups.max(1))
                .max(1);
            max_context
                .div_ceil(wanted_splits)
                .max(self.min_partition_tokens)
        });
        chosen
            .next_multiple_of(tile_keys)
            .clamp(tile_keys, max_tokens)
    }
}

/// Which decode shader a device gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecodeAlgorithm {
    /// decode.wgsl: K/V tiles staged in workgroup memory and shared by a GQA group (GPUs).
    Tiled,
    /// decode_flat.wgsl: no workgroup memory or barriers (CPU adapters such as lavapipe, where
    /// a barrier makes the whole shader run as coroutines).
    Flat,
}

impl DecodeAlgorithm {
    /// Flat on CPU adapters, tiled everywhere else.
    pub fn for_device(ctx: &GpuContext) -> Self {
        if ctx.info.device_type == wgpu::DeviceType::Cpu {
            DecodeAlgorithm::Flat
        } else {
            DecodeAlgorithm::Tiled
        }
    }
}

/// Compiled decode pipeline for one storage mode and head dim.
pub struct DecodeKernel {
    pipeline: wgpu::ComputePipeline,
    /// The variant built.
    pub variant: Variant,
    /// The algorithm of that variant.
    pub algorithm: DecodeAlgorithm,
    /// Split policy used when preparing steps.
    pub splits: SplitPolicy,
}

impl DecodeKernel {
    /// Builds the decode the device's class runs best (see [`DecodeAlgorithm::for_device`]).
    pub fn new(ctx: &GpuContext, storage: &KvStorage) -> Result<Self, GpuError> {
        Self::with_algorithm(ctx, storage, DecodeAlgorithm::for_device(ctx))
    }

    /// Builds a chosen algorithm (tests run both on every adapter).
    pub fn with_algorithm(
        ctx: &GpuContext,
        storage: &KvStorage,
        algorithm: DecodeAlgorithm,
    ) -> Result<Self, GpuError> {
        let head_dim = storage.layout.geometry.head_dim;
        let family = match algorithm {
            DecodeAlgorithm::Tiled => Family::Decode,
            DecodeAlgorithm::Flat => Family::DecodeFlat,
        };
        let mut variant = Variant::for_device(
            family,
            storage.mode,
            head_dim,
            ctx.capabilities.max_workgroup_storage,
        )
        .ok_or_else(|| tile_error(ctx, head_dim))?;
        if algorithm == DecodeAlgorithm::Flat {
            variant = variant.with_group(flat_group_chunk(storage.layout.geometry.group_size()));
        }
        let pipeline = pipeline::build(ctx, &variant, &["decode"])?.remove(0);
        Ok(Self {
            pipeline,
            variant,
            algorithm,
            splits: SplitPolicy::for_algorithm(algorithm),
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
        let g = &storage.layout.geometry;
        let group = g.group_size();
        let max_context = seqs.iter().map(|s| s.context_len).max().unwrap_or(0).max(1);
        // Work items before splitting (workgroups of the tiled kernel, invocations of the flat
        // one), and the key granularity of a split.
        let (group_chunks, base, granule) = match (self.algorithm, self.variant.tiles) {
            (DecodeAlgorithm::Tiled, Some(tiles)) => {
                let chunks = group.div_ceil(tiles.rows);
                (chunks, seqs.len() as u32 * g.kv_heads * chunks, tiles.keys)
            }
            _ => {
                let chunks = group.div_ceil(self.variant.group);
                (chunks, seqs.len() as u32 * g.kv_heads * chunks, 1)
            }
        };
        let partition_tokens = self.splits.partition_tokens(base, max_context, granule);
        let splits = max_context.div_ceil(partition_tokens);
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
                    _pad: [0; 3],
                }
            })
            .collect();
        let grid = match self.algorithm {
            DecodeAlgorithm::Tiled => [splits, g.kv_heads * group_chunks, seqs.len() as u32],
            DecodeAlgorithm::Flat => [
                (splits * g.kv_heads * group_chunks).div_ceil(self.variant.workgroup_size()),
                1,
                seqs.len() as u32,
            ],
        };
        batch.upload(
            ctx,
            seqs,
            &params,
            seqs.len() as u32 * g.q_heads,
            g.head_dim,
            grid,
        )?;
        batch.partition_tokens = partition_tokens;
        Ok(())
    }

    /// Records decode for `layer`: `q` is `[num_seqs][q_heads][head_dim]` f32 and `out` receives
    /// the same shape.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        combine: &CombineKernel,
        storage: &KvStorage,
        layer: u32,
        batch: &AttentionBatch,
        q: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) {
        batch.record(ctx, pass, &self.pipeline, combine, storage, layer, q, out);
    }
}

/// Query heads per flat-decode invocation for a GQA group of `group` heads: as many as fit
/// [`MAX_FLAT_GROUP`], spread evenly over the fewest chunks (12 heads: two chunks of 6).
pub fn flat_group_chunk(group: u32) -> u32 {
    let chunks = group.max(1).div_ceil(MAX_FLAT_GROUP);
    group.max(1).div_ceil(chunks)
}

pub(crate) fn tile_error(ctx: &GpuContext, head_dim: u32) -> GpuError {
    GpuError::Limit(format!(
        "head dim {head_dim} needs more workgroup memory than the device's {} bytes",
        ctx.capabilities.max_workgroup_storage
    ))
}
