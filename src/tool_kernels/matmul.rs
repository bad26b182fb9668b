//! The matmul family: an f32 matmul that gives the adapter's practical arithmetic rate, the
//! compute side of `pagekv bench`'s roofline bounds. Two kinds: the tiled kernels (64x64
//! tiles through workgroup memory with 4x4 per thread, or 128x128 with 8x8), which GPUs run
//! best, and register-tiled
//! flat kernels with no workgroup memory or barriers (a barrier turns a shader into
//! coroutines on lavapipe), each invocation owning an `rows x 4*col4s` block of C in
//! registers and streaming A and B in vec4s. The flat kernels are generated per block shape
//! ([`MatmulShape`]); the bench times a few shapes in the same run and keeps the fastest, so
//! the yardstick is as tuned for the adapter as the attention kernels it measures.

use crate::kernels::pipeline::ComputeKernel;
use wgpu::util::DeviceExt;

use super::{MATMUL_BINDINGS, MATMUL_BUFFERS, ToolKernel};
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

/// Rows and columns of C per workgroup of the tiled kernel; every dimension must be a multiple
/// of it (of [`MatmulShape::tile`] for the wide kernel).
pub const MATMUL_TILE: u32 = 64;

/// Rows and columns of C per workgroup of the wide tiled kernel.
pub const MATMUL_WIDE_TILE: u32 = 128;

/// Invocations per workgroup of the flat kernels.
const FLAT_WG: u32 = 8;

/// Which matmul kernel: the workgroup-tiled one, or a flat one with its register block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulShape {
    /// 64x64 tiles through workgroup memory, 4x4 per thread.
    Tiled,
    /// 128x128 tiles through workgroup memory, 8x8 per thread, the next step's A and B
    /// loaded while this one's multiply-adds run: four times the multiply-adds per
    /// workgroup-memory read of [`MatmulShape::Tiled`], for GPUs whose registers hold it.
    TiledWide,
    /// No workgroup memory: each invocation owns `rows` rows by `col4s` vec4 columns of C.
    Flat {
        /// Rows of C per invocation (divides 64).
        rows: u32,
        /// vec4 columns of C per invocation (4 x it divides 64).
        col4s: u32,
    },
    /// The flat kernel reading A and B as `rgba32uint` read-only storage textures (four f32
    /// per texel): what the flat attention does with its KV pool on CPU adapters, where a
    /// texture load is vectorised and a storage-buffer load is a per-lane loop. Judging the attention there
    /// against a buffer-fed matmul would measure the two load paths, not the arithmetic.
    FlatTexels {
        /// Rows of C per invocation (divides 64).
        rows: u32,
        /// vec4 columns of C per invocation (4 x it divides 64).
        col4s: u32,
    },
}

impl MatmulShape {
    /// The flat shape used where one is needed without a trial (16x16 per invocation).
    pub const FLAT_DEFAULT: MatmulShape = MatmulShape::Flat { rows: 16, col4s: 4 };

    /// The flat shapes generated besides the default (`pagekv shaders` lists them all). On
    /// lavapipe (2 cores, AVX2) 32x16 measured 1.5-2.7x the 16x16 default; 8x16, 4x32 and
    /// the narrower blocks down to 4x4 were slower than 16x16, as were 32x8, 64x8 and 64x16,
    /// and a column-per-invocation layout (B loads contiguous across SIMD lanes, 16 or 32
    /// rows each) ran at a fifth of 16x16.
    pub const FLAT_EXTRA: [MatmulShape; 3] = [
        MatmulShape::Flat { rows: 32, col4s: 4 },
        MatmulShape::Flat { rows: 16, col4s: 8 },
        MatmulShape::Flat { rows: 8, col4s: 8 },
    ];

    /// The texel-fed shapes. On lavapipe (2 cores, AVX2) 64x32 measured 50-55 GFLOP/s, 32x32
    /// 46-49 and 32x16 36-38, against 33 for the best buffer-fed block: each texel fetch
    /// feeds more multiply-adds in the larger blocks, and fetches, not arithmetic, bound these
    /// kernels there. 64x16 and 64x64 were no faster than 64x32, and 64x64 took two minutes
    /// to compile.
    pub const FLAT_TEXELS: [MatmulShape; 3] = [
        MatmulShape::FlatTexels { rows: 32, col4s: 4 },
        MatmulShape::FlatTexels { rows: 32, col4s: 8 },
        MatmulShape::FlatTexels { rows: 64, col4s: 8 },
    ];

    /// The shapes worth timing on this adapter, the class's usual winner first: flat shapes
    /// fed by buffers and by textures on CPU adapters (where the tiled kernels are several
    /// times slower), both tiled kernels and two flat shapes elsewhere.
    pub fn candidates(ctx: &GpuContext) -> Vec<MatmulShape> {
        let mut flat = vec![Self::FLAT_DEFAULT];
        flat.extend(Self::FLAT_EXTRA);
        match AttentionAlgorithm::for_device(ctx) {
            AttentionAlgorithm::Flat => flat.into_iter().chain(Self::FLAT_TEXELS).collect(),
            AttentionAlgorithm::Tiled => {
                vec![MatmulShape::Tiled, MatmulShape::TiledWide, flat[0], flat[3]]
            }
        }
    }

    /// Whether the kernel reads A and B as textures.
    pub fn reads_texels(self) -> bool {
        matches!(self, MatmulShape::FlatTexels { .. })
    }

    /// The module's name, e.g. `matmulflat_r8c8`.
    pub fn name(self) -> String {
        self.module().name
    }

    /// The WGSL module.
    pub fn module(self) -> WgslModule {
        match self {
            MatmulShape::Tiled => ToolKernel::Matmul.module(0),
            MatmulShape::TiledWide => ToolKernel::MatmulWide.module(0),
            MatmulShape::Flat { rows, col4s } => flat_module(rows, col4s, false),
            MatmulShape::FlatTexels { rows, col4s } => flat_module(rows, col4s, true),
        }
    }

    /// What every dimension must be a multiple of.
    pub fn tile(self) -> u32 {
        match self {
            MatmulShape::TiledWide => MATMUL_WIDE_TILE,
            _ => MATMUL_TILE,
        }
    }

    /// Workgroups along x and y for an `m x n` C.
    fn workgroups(self, m: u32, n: u32) -> (u32, u32) {
        match self {
            MatmulShape::Tiled | MatmulShape::TiledWide => (n / self.tile(), m / self.tile()),
            MatmulShape::Flat { rows, col4s } | MatmulShape::FlatTexels { rows, col4s } => {
                (((m / rows) * (n / (4 * col4s))).div_ceil(FLAT_WG), 1)
            }
        }
    }
}

/// The flat matmul with a `rows x 4*col4s` register block per invocation: straight-line code
/// per row and column (a private array indexed in a loop would live in per-lane scratch
/// memory on llvmpipe), every vec4 of B loaded feeding `rows` x 4 multiply-adds and every
/// vec4 of A feeding `col4s` x 16. With `texels`, A and B are `rgba32uint` textures (A
/// `k/4 x m` texels, B `n/4 x k`: the row-major matrices copied as they are).
pub fn flat_module(rows: u32, col4s: u32, texels: bool) -> WgslModule {
    use std::fmt::Write;
    let kind = if texels { "matmultex" } else { "matmulflat" };
    let name = format!("{kind}_r{rows}c{col4s}");
    // A's row r and B's row j (vec4 column q) at step kk, through the chosen path.
    let (inputs, load_a, load_b) = if texels {
        (
            "@group(0) @binding(1) var a: texture_storage_2d<rgba32uint, read>;\n\
             @group(0) @binding(2) var b: texture_storage_2d<rgba32uint, read>;\n",
            "bitcast<vec4<f32>>(textureLoad(a, vec2<u32>(kk, row + {r}u)))",
            "bitcast<vec4<f32>>(textureLoad(b, vec2<u32>(col4 + {q}u, kk * 4u + {j}u)))",
        )
    } else {
        (
            MATMUL_BUFFERS,
            "a[(row + {r}u) * k4 + kk]",
            "b[(kk * 4u + {j}u) * n4 + col4 + {q}u]",
        )
    };
    let load_a = |r: u32| load_a.replace("{r}", &r.to_string());
    let load_b = |j: u32, q: u32| {
        load_b
            .replace("{j}", &j.to_string())
            .replace("{q}", &q.to_string())
    };
    let mut s = format!(
        "// pagekv generated variant `{name}`: f32 C = A x B, row-major, every dimension a\n\
         // multiple of 64; one invocation per {rows}x{} block of C, blocks numbered row-major,\n\
         // no workgroup memory or barriers.\n\n\
         {MATMUL_BINDINGS}\n\
         {inputs}\n\
         @compute @workgroup_size({FLAT_WG})\n\
         fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
         \x20   let blocks_x = params.n / {}u;\n\
         \x20   if (gid.x >= blocks_x * (params.m / {rows}u)) {{\n        return;\n    }}\n\
         \x20   let col4 = (gid.x % blocks_x) * {col4s}u;\n\
         \x20   let row = (gid.x / blocks_x) * {rows}u;\n\
         \x20   let k4 = params.k / 4u;\n\
         \x20   let n4 = params.n / 4u;\n",
        4 * col4s,
        4 * col4s
    );
    for r in 0..rows {
        for q in 0..col4s {
            let _ = writeln!(s, "    var c{r}_{q} = vec4<f32>(0.0);");
        }
    }
    s += "    for (var kk = 0u; kk < k4; kk++) {\n";
    for j in 0..4 {
        for q in 0..col4s {
            let _ = writeln!(s, "        let b{j}_{q} = {};", load_b(j, q));
        }
    }
    for r in 0..rows {
        let _ = writeln!(s, "        let a{r} = {};", load_a(r));
        for q in 0..col4s {
            let _ = writeln!(
                s,
                "        c{r}_{q} += a{r}.x * b0_{q} + a{r}.y * b1_{q} + a{r}.z * b2_{q} + a{r}.w * b3_{q};"
            );
        }
    }
    s += "    }\n";
    for r in 0..rows {
        for q in 0..col4s {
            let _ = writeln!(s, "    c[(row + {r}u) * n4 + col4 + {q}u] = c{r}_{q};");
        }
    }
    s += "}\n";
    WgslModule {
        name,
        source: s,
        needs_f16: false,
        needs_subgroups: false,
    }
}

/// A texture view of `buffer`'s row-major f32 values, four per texel.
fn texel_view(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    size: (u32, u32),
) -> wgpu::TextureView {
    super::texels_from_buffer(ctx, encoder, buffer, size, "pagekv matmul input texels")
        .create_view(&Default::default())
}

/// Compiled matmul pipeline.
pub struct MatmulKernel {
    pipeline: ComputeKernel,
    /// The module built.
    pub module: WgslModule,
    /// The kernel built (decides the dispatch shape).
    pub shape: MatmulShape,
}

impl MatmulKernel {
    /// Builds the matmul the device's class usually runs best (without a trial).
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        Self::with_algorithm(ctx, AttentionAlgorithm::for_device(ctx))
    }

    /// Builds the tiled kernel or the default flat shape (tests run both on every adapter).
    pub fn with_algorithm(
        ctx: &GpuContext,
        algorithm: AttentionAlgorithm,
    ) -> Result<Self, GpuError> {
        Self::with_shape(
            ctx,
            match algorithm {
                AttentionAlgorithm::Tiled => MatmulShape::Tiled,
                AttentionAlgorithm::Flat => MatmulShape::FLAT_DEFAULT,
            },
        )
    }

    /// Builds one shape.
    pub fn with_shape(ctx: &GpuContext, shape: MatmulShape) -> Result<Self, GpuError> {
        let module = shape.module();
        let pipeline = pipeline::build_derived(ctx, &module, &["matmul"])?.remove(0);
        Ok(Self {
            pipeline,
            module,
            shape,
        })
    }

    /// Records `c = a x b` for row-major f32 `a` (`m x k`), `b` (`k x n`) and `c` (`m x n`).
    /// Every dimension must be a positive multiple of the shape's [`MatmulShape::tile`].
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
        let tile = self.shape.tile();
        if [m, n, k].iter().any(|&d| d == 0 || d % tile != 0) {
            return Err(GpuError::InvalidInput {
                argument: "matmul dimensions",
                value: format!("{m}x{n}x{k}"),
                problem: format!("each must be a positive multiple of {tile}"),
            });
        }
        let side = ctx.device.limits().max_texture_dimension_2d;
        if self.shape.reads_texels() && m.max(k).max(n / 4) > side {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("texel-fed matmul {m}x{n}x{k}"),
                limit: DeviceLimit::TextureDimension2d,
                needed: m.max(k) as u64,
                allowed: side as u64,
                remedy: "use a smaller matmul",
            }));
        }
        let (x, y) = self.shape.workgroups(m, n);
        if x.max(y) > ctx.capabilities.max_workgroups_per_dimension {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("matmul {m}x{n}x{k}"),
                limit: DeviceLimit::WorkgroupsPerDimension,
                needed: x.max(y) as u64,
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
        // Texel-fed kernels read copies of A and B made before the timed pass.
        let texels = self.shape.reads_texels().then(|| {
            (
                texel_view(ctx, encoder, a, (k / 4, m)),
                texel_view(ctx, encoder, b, (n / 4, k)),
            )
        });
        let inputs = match &texels {
            Some((a_view, b_view)) => [
                wgpu::BindingResource::TextureView(a_view),
                wgpu::BindingResource::TextureView(b_view),
            ],
            None => [a.as_entire_binding(), b.as_entire_binding()],
        };
        let [a_input, b_input] = inputs;
        let group = pipeline::bind(
            ctx,
            &self.pipeline,
            "pagekv matmul",
            &[
                (0, uniform.as_entire_binding()),
                (1, a_input),
                (2, b_input),
                (3, c.as_entire_binding()),
            ],
        );
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("pagekv matmul"),
            timestamp_writes: timestamps,
        });
        self.pipeline.set(&mut pass);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        Ok(())
    }
}
