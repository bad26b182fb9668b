//! How attention kernels turn stored f16 halves (f16 pools, and FP8 codes widened to f16)
//! into f32: the WGSL built-in `unpack2x16float`, or the same conversion in integer code.
//!
//! Why two forms: GPU drivers and lavapipe (Vulkan on the CPU, through LLVM's F16C
//! conversion) run the built-in as one hardware instruction. llvmpipe's GL driver lowers the
//! GLSL `unpackHalf2x16` that naga emits to more work than the integer form, both to compile
//! (a cold first use of an f16 variant) and to run. Only that pairing, a CPU adapter on GL,
//! gets the integer form; the choice is generated into the variant (its name ends in `_ih`),
//! and both forms are exact for every half, NaN payloads included.

use crate::cache::KvFormat;
use crate::gpu::GpuContext;

const BUILTIN: &str = include_str!("../../shaders/halves_builtin.wgsl");
const INTEGER: &str = include_str!("../../shaders/halves_integer.wgsl");

/// The f16-to-f32 conversion an attention variant is built with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum HalfDecode {
    /// `unpack2x16float`: one instruction on GPUs and on lavapipe.
    #[default]
    Builtin,
    /// Integer code (rebias the exponent, subnormals through an exact f32 subtraction,
    /// select infinities and NaNs): faster on llvmpipe's GL driver.
    Integer,
}

impl HalfDecode {
    /// The form that runs best on `ctx`: integer code on a CPU adapter's GL backend
    /// (llvmpipe), the built-in everywhere else.
    pub fn for_device(ctx: &GpuContext) -> Self {
        if ctx.info.backend == wgpu::Backend::Gl && ctx.info.device_type == wgpu::DeviceType::Cpu {
            HalfDecode::Integer
        } else {
            HalfDecode::Builtin
        }
    }

    /// Whether kernels reading `format` convert halves at all: f16, and FP8 (whose codes
    /// widen to f16 bit patterns); f32 and the integer codecs never do.
    pub fn applies_to(format: KvFormat) -> bool {
        matches!(
            format,
            KvFormat::F16 | KvFormat::Fp8E4M3 | KvFormat::Fp8E5M2
        )
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            HalfDecode::Builtin => "builtin",
            HalfDecode::Integer => "integer",
        }
    }

    /// Variant name suffix: empty for the built-in.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            HalfDecode::Builtin => "",
            HalfDecode::Integer => "_ih",
        }
    }

    /// WGSL defining `halves4(w: vec2<u32>) -> vec4<f32>`: the four halves of two words, low
    /// half first. Public so an app composing its own shaders (and the tests) can use the
    /// very conversion pagekv's kernels compile.
    pub fn source(self) -> &'static str {
        match self {
            HalfDecode::Builtin => BUILTIN,
            HalfDecode::Integer => INTEGER,
        }
    }
}
