//! The read family: one streaming read from a storage buffer and from a texture, the two
//! rooflines a read-only kernel such as decode attention can be held against. `pagekv bench`
//! prints both beside the copy roofline; on CPU adapters they show why KV pools live in
//! textures there (see gpu/shard.rs).

use crate::kernels::pipeline::ComputeKernel;
use wgpu::util::DeviceExt;

use super::ToolKernel;
use crate::gpu::{DeviceLimit, GpuContext, GpuError, LimitExceeded, TEXEL_BYTES};
use crate::kernels::variant::WORKGROUP_SIZE;
use crate::kernels::{WgslModule, pipeline};
use bytemuck::{Pod, Zeroable};

/// Mirror of `ReadParams` in shaders/read.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct ReadParams {
    /// Texels (16-byte elements) in the source.
    pub count: u32,
    /// Texels each invocation reads; divides `width`.
    pub per_thread: u32,
    /// Texture width in texels.
    pub width: u32,
    /// Threads along x of the 2-D grid.
    pub grid_x_threads: u32,
}

/// Elements each invocation reads in one run.
pub const READ_RUN: u32 = 64;

/// Texture rows are at most this many texels wide.
const MAX_WIDTH: u32 = 4096;

/// Which path a read goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// `array<vec4<u32>>` storage-buffer loads.
    Buffer,
    /// `textureLoad` of an `rgba32uint` texture.
    Texture,
}

/// The same bytes as a storage buffer and as a texture, and the per-invocation sums.
pub struct ReadSource {
    buffer: wgpu::Buffer,
    view: wgpu::TextureView,
    sums: wgpu::Buffer,
    width: u32,
    texels: u32,
}

impl ReadSource {
    /// Allocates at most `cap_bytes` on each path: whole texture rows within the device's
    /// texture, buffer and binding limits.
    pub fn new(ctx: &GpuContext, cap_bytes: u64) -> Result<Self, GpuError> {
        let max_side = ctx.device.limits().max_texture_dimension_2d;
        let width = MAX_WIDTH.min(max_side) / READ_RUN * READ_RUN;
        let caps = &ctx.capabilities;
        let bytes = caps.max_storage_binding.min(caps.max_buffer).min(cap_bytes);
        let rows = (bytes / TEXEL_BYTES / width as u64).min(max_side as u64) as u32;
        if width == 0 || rows == 0 {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("the read roofline's {READ_RUN}-texel source"),
                limit: DeviceLimit::StorageBindingSize,
                needed: READ_RUN as u64 * TEXEL_BYTES,
                allowed: bytes,
                remedy: "this adapter cannot run the read roofline",
            }));
        }
        let texels = width * rows;
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv read source"),
            size: texels as u64 * TEXEL_BYTES,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let texture = super::texels_from_buffer(
            ctx,
            &mut encoder,
            &buffer,
            (width, rows),
            "pagekv read source",
        );
        ctx.queue.submit([encoder.finish()]);
        let sums = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv read sums"),
            size: (texels / READ_RUN) as u64 * TEXEL_BYTES,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Self {
            buffer,
            view: texture.create_view(&Default::default()),
            sums,
            width,
            texels,
        })
    }

    /// Bytes one read pass loads.
    pub fn bytes(&self) -> u64 {
        self.texels as u64 * TEXEL_BYTES
    }
}

/// Compiled read pipelines.
pub struct ReadKernel {
    buffer: ComputeKernel,
    texture: ComputeKernel,
    /// The module built.
    pub module: WgslModule,
}

impl ReadKernel {
    /// Builds both read pipelines.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let module = ToolKernel::Read.module(0);
        let mut pipelines =
            pipeline::build_derived(ctx, &module, &["read_buffer", "read_texture"])?;
        let texture = pipelines.remove(1);
        let buffer = pipelines.remove(0);
        Ok(Self {
            buffer,
            texture,
            module,
        })
    }

    /// Records one read of all of `source` through `path`.
    pub fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        source: &ReadSource,
        path: ReadPath,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let wg = WORKGROUP_SIZE;
        let threads = source.texels / READ_RUN;
        let (x, y) = pipeline::grid_2d(
            threads.div_ceil(wg),
            ctx.capabilities.max_workgroups_per_dimension,
        );
        let params = ReadParams {
            count: source.texels,
            per_thread: READ_RUN,
            width: source.width,
            grid_x_threads: x * wg,
        };
        let uniform = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("pagekv read params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let (pipeline, src) = match path {
            ReadPath::Buffer => (&self.buffer, (1, source.buffer.as_entire_binding())),
            ReadPath::Texture => (
                &self.texture,
                (2, wgpu::BindingResource::TextureView(&source.view)),
            ),
        };
        let group = pipeline::bind(
            ctx,
            pipeline,
            "pagekv read",
            &[
                (0, uniform.as_entire_binding()),
                src,
                (3, source.sums.as_entire_binding()),
            ],
        );
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("pagekv read"),
            timestamp_writes: timestamps,
        });
        pipeline.set(&mut pass);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}
