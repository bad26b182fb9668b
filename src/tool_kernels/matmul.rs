//! The matmul family: an f32 matmul that gives the adapter's practical arithmetic rate.
//! `pagekv bench` sets prefill's FLOP/s beside it. GPUs get the tiled kernel (64x64 tiles
//! through workgroup memory, 4x4 per thread); CPU adapters get the barrier-free one (16x16 per
//! invocation), for the same reason and by the same rule as attention
//! ([`AttentionAlgorithm::for_device`]), so the yardstick is as tuned as what it measures.

use crate::kernels::pipeline::ComputeKernel;
use wgpu::util::DeviceExt;

use super::ToolKernel;
use crate::gpu::{DeviceLimit, GpuContext, GpuError, LimitExceeded};
use crate::kernels::{AttentionAlgorithm, WgslModule, pipeline};
use bytemuck::{Pod, Zeroable};

/// Mirror of `MatmulParams` in shaders/matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct MatmulParams {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of B and C.
    pub n: u32,
    /// Columns of A, rows of B.
    pub k: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Rows and columns of C per workgroup; every dimension must be a multiple of it.
pub const MATMUL_TILE: u32 = 64;

/// Compiled matmul pipeline.
pub struct MatmulKernel {
    pipeline: ComputeKernel,
    /// The module built.
    pub module: WgslModule,
    /// The algorithm built (decides the dispatch shape).
    pub algorithm: AttentionAlgorithm,
}

impl MatmulKernel {
    /// Builds the matmul the device's class runs best.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        Self::with_algorithm(ctx, AttentionAlgorithm::for_device(ctx))
    }

    /// Builds a chosen algorithm (tests run both on every adapter).
    pub fn with_algorithm(
        ctx: &GpuContext,
        algorithm: AttentionAlgorithm,
    ) -> Result<Self, GpuError> {
        let kernel = match algorithm {
            AttentionAlgorithm::Tiled => ToolKernel::Matmul,
            AttentionAlgorithm::Flat => ToolKernel::MatmulFlat,
        };
        let module = kernel.module(0);
        let pipeline = pipeline::build_derived(ctx, &module, &["matmul"])?.remove(0);
        Ok(Self {
            pipeline,
            module,
            algorithm,
        })
    }

    /// Records `c = a x b` for row-major f32 `a` (`m x k`), `b` (`k x n`) and `c` (`m x n`).
    /// Every dimension must be a positive multiple of [`MATMUL_TILE`].
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        (m, n, k): (u32, u32, u32),
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        c: &wgpu::Buffer,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<(), GpuError> {
        if [m, n, k].iter().any(|&d| d == 0 || d % MATMUL_TILE != 0) {
            return Err(GpuError::InvalidInput {
                argument: "matmul dimensions",
                value: format!("{m}x{n}x{k}"),
                problem: format!("each must be a positive multiple of {MATMUL_TILE}"),
            });
        }
        let flat_workgroups = (m / 16) * (n / 16) / 8;
        if flat_workgroups > ctx.capabilities.max_workgroups_per_dimension {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("matmul {m}x{n}x{k}"),
                limit: DeviceLimit::WorkgroupsPerDimension,
                needed: flat_workgroups as u64,
                allowed: ctx.capabilities.max_workgroups_per_dimension as u64,
                remedy: "use a smaller matmul",
            }));
        }
        let params = MatmulParams { m, n, k, _pad: 0 };
        let uniform = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("pagekv matmul params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let group = pipeline::bind(
            ctx,
            &self.pipeline,
            "pagekv matmul",
            &[
                (0, uniform.as_entire_binding()),
                (1, a.as_entire_binding()),
                (2, b.as_entire_binding()),
                (3, c.as_entire_binding()),
            ],
        );
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("pagekv matmul"),
            timestamp_writes: timestamps,
        });
        self.pipeline.set(&mut pass);
        pass.set_bind_group(0, &group, &[]);
        match self.algorithm {
            // One invocation per 16x16 block of C, 8 per workgroup.
            AttentionAlgorithm::Flat => pass.dispatch_workgroups(flat_workgroups, 1, 1),
            AttentionAlgorithm::Tiled => {
                pass.dispatch_workgroups(n / MATMUL_TILE, m / MATMUL_TILE, 1)
            }
        }
        Ok(())
    }
}
