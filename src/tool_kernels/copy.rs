//! The copy family: a plain vec4 copy whose bytes/s is the adapter's practical memory
//! bandwidth. `pagekv bench` states decode and append speeds as ratios to it, so figures
//! mean the same on lavapipe, a Radeon or an M-series GPU.

use crate::kernels::pipeline::ComputeKernel;
use wgpu::util::DeviceExt;

use super::ToolKernel;
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::variant::WORKGROUP_SIZE;
use crate::kernels::{WgslModule, pipeline};
use bytemuck::{Pod, Zeroable};

/// Mirror of `CopyParams` in shaders/copy.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct CopyParams {
    /// vec4 elements to copy.
    pub count: u32,
    /// Threads along x of the 2-D grid.
    pub grid_x_threads: u32,
    /// Padding to 16 bytes.
    pub _pad: [u32; 2],
}

/// Compiled copy pipeline.
pub struct CopyKernel {
    pipeline: ComputeKernel,
    /// The module built.
    pub module: WgslModule,
}

impl CopyKernel {
    /// Builds the copy kernel.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let module = ToolKernel::Copy.module(0);
        let pipeline = pipeline::build_derived(ctx, &module, &["copy"])?.remove(0);
        Ok(Self { pipeline, module })
    }

    /// Records a copy of all of `src` into `dst` (same size, a multiple of 16 bytes).
    pub fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let count = (src.size().min(dst.size()) / 16) as u32;
        let workgroups = count.div_ceil(WORKGROUP_SIZE);
        let (x, y) = pipeline::grid_2d(workgroups, ctx.capabilities.max_workgroups_per_dimension);
        let params = CopyParams {
            count,
            grid_x_threads: x * WORKGROUP_SIZE,
            _pad: [0; 2],
        };
        let uniform = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("pagekv copy params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let group = pipeline::bind(
            ctx,
            &self.pipeline,
            "pagekv copy",
            &[
                (0, uniform.as_entire_binding()),
                (1, src.as_entire_binding()),
                (2, dst.as_entire_binding()),
            ],
        );
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("pagekv copy"),
            timestamp_writes: timestamps,
        });
        self.pipeline.set(&mut pass);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}
