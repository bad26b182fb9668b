//! The combine family: merges partial softmax states from context splits and pool shards
//! into normalised outputs (the reduce pass of flash-decoding).

use super::batch::{AttentionBatch, uniform_at};
use super::params::CombineParams;
use super::pipeline;
use super::variant::{Family, Variant};
use crate::gpu::{GpuContext, GpuError, KvStorageMode};

/// Compiled combine pipeline for one head dim.
pub struct CombineKernel {
    pipeline: wgpu::ComputePipeline,
    /// The variant built.
    pub variant: Variant,
}

impl CombineKernel {
    /// Builds the combine variant for `head_dim`.
    pub fn new(ctx: &GpuContext, head_dim: u32) -> Result<Self, GpuError> {
        let variant = Variant::for_device(Family::Combine, KvStorageMode::F32, head_dim, u32::MAX)
            .expect("combine has no tile constraints");
        let pipeline = pipeline::build(ctx, &variant, &["combine"])?.remove(0);
        Ok(Self { pipeline, variant })
    }

    /// Params for the batch's current step.
    pub(crate) fn params(
        ctx: &GpuContext,
        rows: u32,
        num_partitions: u32,
    ) -> (CombineParams, [u32; 2]) {
        let (x, y) = pipeline::grid_2d(rows, ctx.capabilities.max_workgroups_per_dimension);
        (
            CombineParams {
                rows,
                num_partitions,
                grid_x: x,
                _pad: 0,
            },
            [x, y],
        )
    }

    /// Records the merge of `batch`'s partials into `out` (`[rows][head_dim]` f32).
    pub(crate) fn record(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        batch: &AttentionBatch,
        out: &wgpu::Buffer,
    ) {
        let group = pipeline::bind(
            ctx,
            &self.pipeline,
            "pagekv combine",
            &[
                (
                    0,
                    uniform_at::<CombineParams>(batch.combine_uniform.get(), 0, 0),
                ),
                (1, batch.partial_acc.get().as_entire_binding()),
                (2, batch.partial_ml.get().as_entire_binding()),
                (3, out.as_entire_binding()),
            ],
        );
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(batch.combine_grid[0], batch.combine_grid[1], 1);
    }
}
