//! The WGSL prelude of each KV format and device encoding: the one place a kernel's source
//! depends on how K and V are stored. Every match is exhaustive, so a new
//! [`KvFormat`](crate::cache::KvFormat) or [`KvStorageMode`] does not build until it has its
//! preludes. The contract each prelude fulfils is in [`crate::cache::format`].

use super::flat_source::ChunkShape;
use super::halves::HalfDecode;
use crate::cache::KvFormat;
use crate::cache::quant::Fp8;
use crate::gpu::KvStorageMode;

const KV_F32: &str = include_str!("../../shaders/kv_f32.wgsl");
const KV_F16: &str = include_str!("../../shaders/kv_f16.wgsl");
const KV_F16_PACKED: &str = include_str!("../../shaders/kv_f16_packed.wgsl");
const KV_SCALED: &str = include_str!("../../shaders/kv_scaled.wgsl");
const KV_CHUNK_F32: &str = include_str!("../../shaders/kv_chunk_f32.wgsl");
const KV_CHUNK_F16: &str = include_str!("../../shaders/kv_chunk_f16.wgsl");
const KV_CHUNK_SCALED: &str = include_str!("../../shaders/kv_chunk_scaled.wgsl");
const CODEC_INT8: &str = include_str!("../../shaders/codec_int8.wgsl");
const CODEC_INT4: &str = include_str!("../../shaders/codec_int4.wgsl");
const CODEC_FP8: &str = include_str!("../../shaders/codec_fp8.wgsl");

/// The element prelude of append, and of the tiled attention where a row is not whole
/// 16-byte chunks: `KvVec`, `kv_slice` and (append) the store functions, then the constants
/// every KV kernel shares.
pub(crate) fn elements(mode: KvStorageMode, head_dim: u32, halves: HalfDecode) -> String {
    let body = match mode {
        KvStorageMode::F32 => KV_F32.to_string(),
        KvStorageMode::F16Native => KV_F16.to_string(),
        KvStorageMode::F16Packed => KV_F16_PACKED.to_string(),
        KvStorageMode::Int8
        | KvStorageMode::Int4
        | KvStorageMode::Fp8E4M3
        | KvStorageMode::Fp8E5M2 => codec(mode.format(), halves) + "\n" + KV_SCALED,
    };
    body + "\n" + &halves_source(mode.format(), halves) + &scale_constants(mode.format(), head_dim)
}

/// The 16-byte load chunk prelude for `format` and how a chunk decodes: what the flat kernel
/// reads, and the tiled attention wherever [`chunks_fit`] (GPUs load 16 bytes per thread at
/// full width; a 4- or 8-byte element per load leaves most of each load instruction unused).
pub(crate) fn chunks(format: KvFormat, head_dim: u32, halves: HalfDecode) -> (String, ChunkShape) {
    let (body, slices) = match format {
        KvFormat::F32 => (KV_CHUNK_F32.to_string(), 1),
        KvFormat::F16 => (KV_CHUNK_F16.to_string(), 2),
        KvFormat::Int8 | KvFormat::Fp8E4M3 | KvFormat::Fp8E5M2 => {
            (codec(format, halves) + "\n" + KV_CHUNK_SCALED, 4)
        }
        KvFormat::Int4 => (codec(format, halves) + "\n" + KV_CHUNK_SCALED, 8),
    };
    let scales = format
        .scale_group(head_dim)
        .map(|group| (format.row_scales(head_dim), group));
    let source = body + "\n" + &halves_source(format, halves) + &scale_constants(format, head_dim);
    (source, ChunkShape { slices, scales })
}

/// `halves4`, for the formats whose preludes convert halves (f16, and FP8's widened codes).
fn halves_source(format: KvFormat, halves: HalfDecode) -> String {
    if HalfDecode::applies_to(format) {
        halves.source().to_string() + "\n"
    } else {
        String::new()
    }
}

/// Whether a row of `format` at `head_dim` is whole 16-byte load chunks (int4 at head dim 80
/// is 40 bytes, and only the element prelude reads it).
pub(crate) fn chunks_fit(format: KvFormat, head_dim: u32) -> bool {
    format.row_value_bytes(head_dim).is_multiple_of(16)
}

/// The encoding a chunk-reading kernel is built for: chunks read f16 as u32 words, so native
/// f16 pools (the same bytes) use the packed code and never need SHADER_F16.
pub(crate) fn chunk_mode(mode: KvStorageMode) -> KvStorageMode {
    match mode {
        KvStorageMode::F16Native | KvStorageMode::F16Packed => KvStorageMode::F16Packed,
        KvStorageMode::F32
        | KvStorageMode::Int8
        | KvStorageMode::Int4
        | KvStorageMode::Fp8E4M3
        | KvStorageMode::Fp8E5M2 => mode,
    }
}

/// `ROW_SCALES` and `SCALE_GROUP`: scales per row and values per scale (0 and the head dim
/// for formats without scales); `CODE_UNIT`: what the codec's `decode4` values are in units
/// of, folded into each scale as the kernels read it ([`code_unit`]).
fn scale_constants(format: KvFormat, head_dim: u32) -> String {
    format!(
        "const ROW_SCALES: u32 = {}u;\nconst SCALE_GROUP: u32 = {}u;\nconst CODE_UNIT: f32 = {};\n",
        format.row_scales(head_dim),
        format.scale_group(head_dim).unwrap_or(head_dim),
        wgsl_f32(code_unit(format)),
    )
}

/// What `decode4` of `format`'s codec returns its values in units of: E4M3 codes decode
/// through an f16 that holds the value / 256 (the two exponent biases differ by 8), and the
/// scale readers multiply each group's scale by 256 instead of every value; 1 elsewhere.
fn code_unit(format: KvFormat) -> f32 {
    match format {
        KvFormat::Fp8E4M3 => 256.0,
        KvFormat::F32 | KvFormat::F16 | KvFormat::Int8 | KvFormat::Int4 | KvFormat::Fp8E5M2 => 1.0,
    }
}

/// WGSL defining a scaled `format`'s codec as the kernels compile it with the half
/// conversion `halves`: `decode4(bits: u32) -> vec4<f32>` (values in units of `CODE_UNIT`,
/// also defined), `encode4` and their constants; `None` for f32 and f16, which have no codes.
/// Public so an app composing its own shaders (and the tests) can decode codes exactly as
/// pagekv's kernels do.
pub fn codec_source(format: KvFormat, halves: HalfDecode) -> Option<String> {
    format.codec()?;
    Some(
        codec(format, halves)
            + "\n"
            + &halves_source(format, halves)
            + &format!("const CODE_UNIT: f32 = {};\n", wgsl_f32(code_unit(format))),
    )
}

/// A scaled format's codec file with its constants; empty for f32 and f16. FP8 decodes its
/// codes straight to f32 where `halves` is the integer form (see `fp8_integer4`).
fn codec(format: KvFormat, halves: HalfDecode) -> String {
    let inv_max = format
        .codec()
        .map(|c| format!("const INV_MAX: f32 = {};\n", wgsl_f32(c.inv_max())));
    let fp8 = |f: Fp8| {
        let min_exponent = 1 - f.bias();
        format!(
            "const FP8_E4M3: bool = {};\nconst FP8_MANTISSA: u32 = {}u;\nconst FP8_BIAS: u32 = {}u;\n\
             const FP8_MAX_CODE: u32 = {}u;\nconst FP8_MIN_NORMAL: f32 = {};\n\
             const FP8_SUBNORMAL_STEPS: f32 = {};\nconst FP8_INTEGER_DECODE: bool = {};\n",
            f == Fp8::E4M3,
            f.mantissa_bits(),
            f.bias(),
            f.max_code(),
            wgsl_f32(2f32.powi(min_exponent)),
            wgsl_f32(2f32.powi(f.mantissa_bits() as i32 - min_exponent)),
            halves == HalfDecode::Integer,
        ) + CODEC_FP8
    };
    let body = match format {
        KvFormat::F32 | KvFormat::F16 => String::new(),
        KvFormat::Int8 => CODEC_INT8.to_string(),
        KvFormat::Int4 => CODEC_INT4.to_string(),
        KvFormat::Fp8E4M3 => fp8(Fp8::E4M3),
        KvFormat::Fp8E5M2 => fp8(Fp8::E5M2),
    };
    inv_max.unwrap_or_default() + &body
}

/// An f32 as a WGSL literal that parses back to the same bits: Rust prints the shortest
/// decimal that round-trips, and WGSL rounds an `f` literal to the nearest f32.
fn wgsl_f32(x: f32) -> String {
    format!("{x:?}f")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiled kernels' chunked staging reads one scale per 16-byte chunk, which holds only
    /// where every chunk lies within one scale group.
    #[test]
    fn no_chunk_straddles_two_scale_groups() {
        for format in KvFormat::ALL {
            for head_dim in crate::cache::SUPPORTED_HEAD_DIMS {
                if !chunks_fit(format, head_dim) {
                    continue;
                }
                let (_, chunk) = chunks(format, head_dim, HalfDecode::Builtin);
                if let Some((_, group)) = chunk.scales {
                    let values = chunk.slices * 4;
                    assert_eq!(
                        group % values,
                        0,
                        "{format:?} hd{head_dim}: {values} per chunk"
                    );
                }
            }
        }
        assert!(
            !chunks_fit(KvFormat::Int4, 80),
            "the one layout left to element loads"
        );
    }

    #[test]
    fn constants_parse_back_to_the_same_bits() {
        for x in [
            1.0f32 / 127.0,
            1.0 / 7.0,
            1.0 / 448.0,
            1.0 / 57344.0,
            2f32.powi(-14),
        ] {
            let text = wgsl_f32(x);
            let parsed: f32 = text.trim_end_matches('f').parse().unwrap();
            assert_eq!(parsed.to_bits(), x.to_bits(), "{text}");
        }
    }
}
