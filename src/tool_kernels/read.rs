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

/// In which order a read's invocations walk the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadOrder {
    /// Each invocation reads its own contiguous run of [`READ_RUN`] elements: a SIMD lane per
    /// run, what CPU adapters (and the flat attention's context splits) do.
    Runs,
    /// Neighbouring invocations read neighbouring elements: the coalesced loads GPUs want, as
    /// the tiled attention's cooperative tile loads do.
    Interleaved,
}

impl ReadOrder {
    /// Both orders.
    pub const ALL: [ReadOrder; 2] = [ReadOrder::Runs, ReadOrder::Interleaved];

    /// A few words for the output.
    pub fn name(self) -> &'static str {
        match self {
            ReadOrder::Runs => "per-invocation runs",
            ReadOrder::Interleaved => "interleaved",
        }
    }
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
        // Each element holds its own index (in all four words), so a read that skips or
        // repeats elements sums differently ([`ReadKernel::reads_every_element_once`]).
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv read source"),
            size: texels as u64 * TEXEL_BYTES,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // Written 16 MiB at a time, each chunk submitted before the next, so the upload
        // never stages the whole source (up to 1 GiB) at once.
        const CHUNK: usize = 1 << 20;
        let mut words = vec![0u32; 4 * CHUNK];
        for first in (0..texels as usize).step_by(CHUNK) {
            let count = CHUNK.min(texels as usize - first);
            for (i, element) in words[..4 * count].chunks_exact_mut(4).enumerate() {
                element.fill((first + i) as u32);
            }
            let at = first as u64 * TEXEL_BYTES;
            ctx.queue
                .write_buffer(&buffer, at, bytemuck::cast_slice(&words[..4 * count]));
            ctx.queue.submit([]);
        }
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
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
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

/// Every (path, order) pair and its entry point in shaders/read.wgsl.
const ENTRIES: [((ReadPath, ReadOrder), &str); 4] = [
    ((ReadPath::Buffer, ReadOrder::Runs), "read_buffer"),
    ((ReadPath::Texture, ReadOrder::Runs), "read_texture"),
    (
        (ReadPath::Buffer, ReadOrder::Interleaved),
        "read_buffer_interleaved",
    ),
    (
        (ReadPath::Texture, ReadOrder::Interleaved),
        "read_texture_interleaved",
    ),
];

/// Compiled read pipelines, one per path and order.
pub struct ReadKernel {
    pipelines: Vec<ComputeKernel>,
    /// The module built.
    pub module: WgslModule,
}

impl ReadKernel {
    /// Builds every read pipeline.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let module = ToolKernel::Read.module(0);
        let entries = ENTRIES.map(|(_, entry)| entry);
        let pipelines = pipeline::build_derived(ctx, &module, &entries)?;
        Ok(Self { pipelines, module })
    }

    /// Records one read of all of `source` through `path`, its invocations walking it in
    /// `order`.
    pub fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        source: &ReadSource,
        (path, order): (ReadPath, ReadOrder),
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
        let index = ENTRIES
            .iter()
            .position(|(key, _)| *key == (path, order))
            .expect("every path and order has an entry point");
        let pipeline = &self.pipelines[index];
        let src = match path {
            ReadPath::Buffer => (1, source.buffer.as_entire_binding()),
            ReadPath::Texture => (2, wgpu::BindingResource::TextureView(&source.view)),
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

    /// Reads `source` once through `path` in `order` and says whether every element was read
    /// exactly once: the source holds each element's index, so only then do the invocations'
    /// sums add up to the sum of all indices (mod 2^32). A roofline that skipped elements
    /// would overstate the adapter's bandwidth.
    pub fn reads_every_element_once(
        &self,
        ctx: &GpuContext,
        source: &ReadSource,
        key: (ReadPath, ReadOrder),
    ) -> Result<bool, GpuError> {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&source.sums, 0, None);
        self.record(ctx, &mut encoder, source, key, None);
        ctx.queue.submit([encoder.finish()]);
        let threads = (source.texels / READ_RUN) as usize;
        let sums = crate::gpu::read_buffer_u32(ctx, &source.sums, 4 * threads)?;
        let n = source.texels as u64;
        let want = (n * (n - 1) / 2) as u32;
        Ok((0..4).all(|word| {
            let got = sums
                .iter()
                .skip(word)
                .step_by(4)
                .fold(0u32, |acc, &x| acc.wrapping_add(x));
            got == want
        }))
    }
}
