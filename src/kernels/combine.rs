//! The combine family: merges partial softmax states from context splits and pool shards
//! into normalised outputs (the reduce pass of flash-decoding). GPUs merge a row per
//! workgroup; CPU adapters a row per invocation (`combineflat`), chosen by the same rule as
//! the attention kernels ([`AttentionAlgorithm::for_device`]).

use super::batch::{AttentionBatch, BindKey, range_key, uniform_at};
use super::flat::AttentionAlgorithm;
use super::params::{CombineParams, NO_CARRY};
use super::partials::PartialLayout;
use super::reductions::Reductions;
use super::variant::{FLAT_WORKGROUP_SIZE, Family, Variant};
use super::{layouts, pipeline};
use crate::gpu::{GpuContext, GpuError, KvStorageMode};
use crate::kernels::pipeline::ComputeKernel;

/// Compiled combine pipeline for one head dim.
pub struct CombineKernel {
    pipeline: ComputeKernel,
    /// The variant built.
    pub variant: Variant,
}

impl CombineKernel {
    /// Builds the combine shape that goes with `algorithm` (tests run both on every adapter).
    pub fn with_algorithm(
        ctx: &GpuContext,
        head_dim: u32,
        algorithm: AttentionAlgorithm,
        reductions: Reductions,
    ) -> Result<Self, GpuError> {
        let family = match algorithm {
            AttentionAlgorithm::Tiled => Family::Combine,
            AttentionAlgorithm::Flat => Family::CombineFlat,
        };
        let variant = Variant::for_device(family, KvStorageMode::F32, head_dim, u32::MAX)
            .expect("combine has no tile constraints")
            .with_reductions(reductions);
        let pipeline =
            pipeline::build(ctx, &variant.module(), &[("combine", layouts::COMBINE)])?.remove(0);
        Ok(Self { pipeline, variant })
    }

    /// Params of each shard group's pass for the batch's current step, and the grid in rows
    /// (x a multiple of every variant's rows per workgroup, so either shape can dispatch
    /// it). Group `g` reads the state group `g - 1` carried and writes its own into the
    /// other half of the carried rows.
    pub(crate) fn params(
        ctx: &GpuContext,
        rows: u32,
        partials: &PartialLayout,
    ) -> (Vec<CombineParams>, [u32; 2]) {
        let unit = FLAT_WORKGROUP_SIZE;
        let max_span = ctx.capabilities.max_workgroups_per_dimension / unit * unit;
        let row_span = rows.max(1).next_multiple_of(unit).min(max_span);
        let half = |group: u32| (group % 2) * rows;
        let params = (0..partials.groups)
            .map(|group| CombineParams {
                rows,
                num_partitions: partials.group_partitions(group),
                row_span,
                carry_read: if group == 0 {
                    NO_CARRY
                } else {
                    half(group - 1)
                },
                carry_write: if group + 1 == partials.groups {
                    NO_CARRY
                } else {
                    half(group)
                },
                ..CombineParams::default()
            })
            .collect();
        (params, [row_span, rows.div_ceil(row_span)])
    }

    /// Records shard group `group`'s merge of `batch`'s partials into `out`
    /// (`[rows][head_dim]` f32).
    pub(crate) fn record(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        batch: &AttentionBatch,
        group: u32,
        out: wgpu::BufferBinding<'_>,
    ) {
        let key = BindKey {
            slot: 1,
            layer: 0,
            shard: group,
            ranges: [Some(range_key(&out)), None],
        };
        let bind_group = batch.groups.get(key, || {
            pipeline::bind(
                ctx,
                &self.pipeline,
                "pagekv combine",
                &[
                    (
                        0,
                        uniform_at::<CombineParams>(
                            batch.combine_uniform.get(),
                            batch.combine_stride,
                            group,
                        ),
                    ),
                    (1, batch.partial_acc.get().as_entire_binding()),
                    (2, batch.partial_ml.get().as_entire_binding()),
                    (3, wgpu::BindingResource::Buffer(out)),
                    (4, batch.carry_ml.get().as_entire_binding()),
                ],
            )
        });
        self.pipeline.set(pass);
        pass.set_bind_group(0, &bind_group, &[]);
        let [row_span, y] = batch.combine_grid;
        pass.dispatch_workgroups(row_span / self.variant.combine_rows(), y, 1);
    }
}
