//! The stress tool's own kernels, outside the embeddable core: synthetic Q/K/V for the
//! engine (`generate`) and the rooflines `pagekv bench` measures the attention kernels
//! against (`copy`, `read`, `matmul`). They share the core's pipeline plumbing but no KV
//! format, so each is one WGSL module per head dim at most.

pub mod copy;
pub mod generate;
pub mod matmul;
pub mod read;

use crate::cache::SUPPORTED_HEAD_DIMS;
use crate::gpu::GpuContext;
use crate::kernels::WgslModule;
use crate::kernels::variant::WORKGROUP_SIZE;

const GENERATE: &str = include_str!("../../shaders/generate.wgsl");
const COPY: &str = include_str!("../../shaders/copy.wgsl");
const READ: &str = include_str!("../../shaders/read.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const MATMUL_WIDE: &str = include_str!("../../shaders/matmul_wide.wgsl");
/// The params and output binding every matmul kernel shares (the flat ones included).
pub(crate) const MATMUL_BINDINGS: &str = include_str!("../../shaders/matmul_bindings.wgsl");
/// A and B as storage buffers, for every matmul kernel but the texel-fed ones.
pub(crate) const MATMUL_BUFFERS: &str = include_str!("../../shaders/matmul_buffers.wgsl");

/// One tool kernel and its shader file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToolKernel {
    /// Deterministic synthetic Q/K/V for the stress engine (per head dim).
    Generate,
    /// The bandwidth roofline: a storage-buffer copy.
    Copy,
    /// Read-only rooflines through a storage buffer and through a texture.
    Read,
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
    pub const ALL: [ToolKernel; 6] = [
        ToolKernel::Generate,
        ToolKernel::Copy,
        ToolKernel::Read,
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
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
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
