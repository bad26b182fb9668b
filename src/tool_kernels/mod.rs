//! The stress tool's own kernels, outside the embeddable core: synthetic Q/K/V for the
//! engine (`generate`) and the rooflines `pagekv bench` measures the attention kernels
//! against (`copy`, `read`, `write`, `matmul`). They share the core's pipeline plumbing but no KV
//! format, so each is one WGSL module per head dim at most.

pub mod copy;
pub mod generate;
pub mod matmul;
pub mod read;
pub mod write;

use crate::cache::SUPPORTED_HEAD_DIMS;
use crate::gpu::{DeviceLimit, GpuContext, GpuError, LimitExceeded, TEXEL_BYTES};
use crate::kernels::WgslModule;
use crate::kernels::variant::WORKGROUP_SIZE;

const GENERATE: &str = include_str!("../../shaders/generate.wgsl");
const COPY: &str = include_str!("../../shaders/copy.wgsl");
const READ: &str = include_str!("../../shaders/read.wgsl");
const WRITE: &str = include_str!("../../shaders/write.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const MATMUL_WIDE: &str = include_str!("../../shaders/matmul_wide.wgsl");
/// The params and output binding every matmul kernel shares (the flat ones included).
pub(crate) const MATMUL_BINDINGS: &str = include_str!("../../shaders/matmul_bindings.wgsl");
/// A and B as storage buffers, for every matmul kernel but the texel-fed ones.
pub(crate) const MATMUL_BUFFERS: &str = include_str!("../../shaders/matmul_buffers.wgsl");

/// Which path a streaming roofline moves its bytes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryPath {
    /// `array<vec4<u32>>` storage-buffer loads or stores.
    Buffer,
    /// `textureLoad` or `textureStore` of an `rgba32uint` storage texture.
    Texture,
}

/// Elements (16 bytes each) each invocation of a streaming roofline moves: a multiple of the
/// 8 elements the read rooflines load per loop iteration.
pub const STREAM_RUN: u32 = 64;
const _: () = assert!(STREAM_RUN.is_multiple_of(8));

/// Mirror of `StreamParams` in shaders/read.wgsl and shaders/write.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable, PartialEq)]
pub struct StreamParams {
    /// Texels (16-byte elements) in the source or target.
    pub count: u32,
    /// Texels each invocation moves; divides `width` and `count`.
    pub per_thread: u32,
    /// Texture width in texels.
    pub width: u32,
    /// Threads along x of the 2-D grid.
    pub grid_x_threads: u32,
}

/// In which order a streaming roofline's invocations walk their elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessOrder {
    /// Each invocation moves its own contiguous run of [`STREAM_RUN`] elements: a SIMD lane
    /// per run, what CPU adapters (and the flat attention's context splits) do.
    Runs,
    /// Neighbouring invocations move neighbouring elements: the coalesced accesses GPUs
    /// want, as the tiled attention's cooperative tile loads do.
    Interleaved,
}

impl AccessOrder {
    /// Both orders.
    pub const ALL: [AccessOrder; 2] = [AccessOrder::Runs, AccessOrder::Interleaved];

    /// A few words for the output.
    pub fn name(self) -> &'static str {
        match self {
            AccessOrder::Runs => "per-invocation runs",
            AccessOrder::Interleaved => "interleaved",
        }
    }
}

/// Texture rows of a streaming roofline are at most this many texels wide.
const STREAM_MAX_WIDTH: u32 = 4096;

/// The texture shape (width, rows) of a streaming roofline of at most `cap_bytes` on each
/// path: whole rows of whole [`STREAM_RUN`]s within the device's texture, buffer and binding
/// limits. `what` names the roofline in the refusal.
fn stream_shape(ctx: &GpuContext, cap_bytes: u64, what: &str) -> Result<(u32, u32), GpuError> {
    let max_side = ctx.device.limits().max_texture_dimension_2d;
    let width = STREAM_MAX_WIDTH.min(max_side) / STREAM_RUN * STREAM_RUN;
    let caps = &ctx.capabilities;
    let bytes = caps.max_storage_binding.min(caps.max_buffer).min(cap_bytes);
    let rows = (bytes / TEXEL_BYTES / width.max(1) as u64).min(max_side as u64) as u32;
    if width == 0 || rows == 0 {
        return Err(GpuError::Limit(LimitExceeded {
            what: format!("{what}'s {STREAM_RUN}-texel run"),
            limit: DeviceLimit::StorageBindingSize,
            needed: STREAM_RUN as u64 * TEXEL_BYTES,
            allowed: bytes,
            remedy: "this adapter cannot run the bench's rooflines",
        }));
    }
    Ok((width, rows))
}

/// The four pipelines of a streaming roofline family (read or write), one per path and
/// order: entry points `{verb}_buffer`, `{verb}_texture` and their `_interleaved` forms.
struct StreamPipelines {
    /// Indexed by [`StreamPipelines::index`].
    pipelines: Vec<crate::kernels::pipeline::ComputeKernel>,
}

impl StreamPipelines {
    const PATHS: [MemoryPath; 2] = [MemoryPath::Buffer, MemoryPath::Texture];

    fn index(path: MemoryPath, order: AccessOrder) -> usize {
        let path = Self::PATHS.iter().position(|&p| p == path).expect("listed");
        let order = AccessOrder::ALL
            .iter()
            .position(|&o| o == order)
            .expect("listed");
        order * Self::PATHS.len() + path
    }

    fn build(ctx: &GpuContext, module: &WgslModule, verb: &str) -> Result<Self, GpuError> {
        let names: Vec<String> = AccessOrder::ALL
            .iter()
            .flat_map(|order| {
                Self::PATHS.iter().map(move |path| {
                    let path = match path {
                        MemoryPath::Buffer => "buffer",
                        MemoryPath::Texture => "texture",
                    };
                    match order {
                        AccessOrder::Runs => format!("{verb}_{path}"),
                        AccessOrder::Interleaved => format!("{verb}_{path}_interleaved"),
                    }
                })
            })
            .collect();
        let entries: Vec<&str> = names.iter().map(String::as_str).collect();
        let pipelines = crate::kernels::pipeline::build_derived(ctx, module, &entries)?;
        Ok(Self { pipelines })
    }

    fn get(
        &self,
        path: MemoryPath,
        order: AccessOrder,
    ) -> &crate::kernels::pipeline::ComputeKernel {
        &self.pipelines[Self::index(path, order)]
    }
}

/// Records `passes` dispatches of a streaming roofline in one compute pass: `pipeline` over
/// `texels` elements (a texture `width` wide), one [`STREAM_RUN`] per invocation, with its
/// params at binding 0 and `bindings` after them.
fn record_stream(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    pipeline: &crate::kernels::pipeline::ComputeKernel,
    label: &str,
    (texels, width, passes): (u32, u32, u32),
    bindings: &[(u32, wgpu::BindingResource<'_>)],
    timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
) {
    use wgpu::util::DeviceExt;
    let wg = WORKGROUP_SIZE;
    let (x, y) = crate::kernels::pipeline::grid_2d(
        (texels / STREAM_RUN).div_ceil(wg),
        ctx.capabilities.max_workgroups_per_dimension,
    );
    let params = StreamParams {
        count: texels,
        per_thread: STREAM_RUN,
        width,
        grid_x_threads: x * wg,
    };
    let uniform = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    let mut entries = vec![(0, uniform.as_entire_binding())];
    entries.extend(bindings.iter().cloned());
    let group = crate::kernels::pipeline::bind(ctx, pipeline, label, &entries);
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: timestamps,
    });
    pipeline.set(&mut pass);
    pass.set_bind_group(0, &group, &[]);
    for _ in 0..passes {
        pass.dispatch_workgroups(x, y, 1);
    }
}

/// One tool kernel and its shader file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToolKernel {
    /// Deterministic synthetic Q/K/V for the stress engine (per head dim).
    Generate,
    /// The bandwidth roofline: a storage-buffer copy.
    Copy,
    /// Read-only rooflines through a storage buffer and through a texture.
    Read,
    /// Write-only rooflines into a storage buffer and into a texture.
    Write,
    /// The arithmetic roofline: a tiled f32 matmul (GPUs).
    Matmul,
    /// The same with 128x128 tiles and an 8x8 block per thread (GPUs with registers to
    /// spare; the bench keeps whichever is faster).
    MatmulWide,
    /// The same roofline without workgroup memory or barriers (CPU adapters), generated per
    /// register block ([`matmul::MatmulShape`]); this is the default block.
    MatmulFlat,
}

impl ToolKernel {
    /// Every tool kernel.
    pub const ALL: [ToolKernel; 7] = [
        ToolKernel::Generate,
        ToolKernel::Copy,
        ToolKernel::Read,
        ToolKernel::Write,
        ToolKernel::Matmul,
        ToolKernel::MatmulWide,
        ToolKernel::MatmulFlat,
    ];

    /// Lowercase name, the stem of the emitted file.
    pub fn name(self) -> &'static str {
        match self {
            ToolKernel::Generate => "generate",
            ToolKernel::Copy => "copy",
            ToolKernel::Read => "read",
            ToolKernel::Write => "write",
            ToolKernel::Matmul => "matmul",
            ToolKernel::MatmulWide => "matmulwide",
            ToolKernel::MatmulFlat => "matmulflat",
        }
    }

    fn body(self) -> &'static str {
        match self {
            ToolKernel::Generate => GENERATE,
            ToolKernel::Copy => COPY,
            ToolKernel::Read => READ,
            ToolKernel::Write => WRITE,
            ToolKernel::Matmul => MATMUL,
            ToolKernel::MatmulWide => MATMUL_WIDE,
            ToolKernel::MatmulFlat => "",
        }
    }

    /// What the body needs before it: the matmul kernels' shared bindings and buffer inputs.
    fn prelude(self) -> String {
        match self {
            ToolKernel::Matmul | ToolKernel::MatmulWide => {
                format!("{MATMUL_BINDINGS}\n{MATMUL_BUFFERS}")
            }
            _ => String::new(),
        }
    }

    /// Whether the kernel is generated per head dim (only the generator is).
    fn per_head_dim(self) -> bool {
        match self {
            ToolKernel::Generate => true,
            ToolKernel::Copy
            | ToolKernel::Read
            | ToolKernel::Write
            | ToolKernel::Matmul
            | ToolKernel::MatmulWide
            | ToolKernel::MatmulFlat => false,
        }
    }

    /// The module for `head_dim` (ignored by the rooflines).
    pub fn module(self, head_dim: u32) -> WgslModule {
        if self == ToolKernel::MatmulFlat {
            return matmul::MatmulShape::FLAT_DEFAULT.module();
        }
        let head_dim = if self.per_head_dim() { head_dim } else { 0 };
        let name = if self.per_head_dim() {
            format!("{}_hd{head_dim}", self.name())
        } else {
            self.name().to_string()
        };
        let source = format!(
            "// pagekv generated variant `{name}`.\n\nconst HEAD_DIM: u32 = {head_dim}u;\nconst HD4: u32 = {}u;\nconst WG: u32 = {WORKGROUP_SIZE}u;\n\n{}\n{}",
            head_dim / 4,
            self.prelude(),
            self.body()
        );
        WgslModule {
            name,
            source,
            needs_f16: false,
            needs_subgroups: false,
        }
    }

    /// Every tool module: the generator at each supported head dim, one of each roofline.
    pub fn all_modules() -> Vec<WgslModule> {
        let mut out = Vec::new();
        for kernel in Self::ALL {
            if kernel.per_head_dim() {
                out.extend(SUPPORTED_HEAD_DIMS.map(|hd| kernel.module(hd)));
            } else {
                out.push(kernel.module(0));
            }
        }
        out.extend(matmul::MatmulShape::FLAT_EXTRA.map(matmul::MatmulShape::module));
        out.extend(matmul::MatmulShape::FLAT_TEXELS.map(matmul::MatmulShape::module));
        out
    }
}

/// Every WGSL module the crate builds: the core's attention variants, then the tool kernels.
/// `pagekv shaders` lists, emits and checks exactly these.
pub fn all_modules() -> Vec<WgslModule> {
    let mut out = crate::kernels::all_modules();
    out.extend(ToolKernel::all_modules());
    out
}

/// An `rgba32uint` texture of `width x height` texels filled, in `encoder`, from the first
/// `16 x width x height` bytes of `buffer` (row after row). The tool kernels that read
/// through the texel path (the texture read roofline, the texel-fed matmuls) get their
/// textures this way: a copy also initialises the texture, where wgpu would otherwise clear
/// it on first use with a render pass, after which lavapipe's compute timestamps read about
/// zero for the rest of the process.
pub(crate) fn texels_from_buffer(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    (width, height): (u32, u32),
    label: &str,
) -> wgpu::Texture {
    let size = wgpu::Extent3d {
        width,
        height,
        depth_or_array_layers: 1,
    };
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Uint,
        usage: wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    ctx.count_created();
    encoder.copy_buffer_to_texture(
        wgpu::TexelCopyBufferInfo {
            buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(width * 16),
                rows_per_image: None,
            },
        },
        texture.as_image_copy(),
        size,
    );
    texture
}
