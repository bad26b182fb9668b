//! [`KvFormat`]: how K and V values are stored in the pool, in one exhaustive type.
//!
//! Every place a format matters (pool sizes, shard and texture planning, the WGSL prelude a
//! kernel is built with, readback, the CPU reference's rounding, tolerances) matches on
//! `KvFormat` or on the device encoding derived from it (`gpu::KvStorageMode`) without a
//! wildcard, so a new format is a compile error everywhere it needs a decision.
//!
//! # Layout
//!
//! A pool holds `[block][kv_head][token_in_block]` rows of `head_dim` values each. A format
//! stores a row's values packed into little-endian 32-bit words
//! ([`KvFormat::row_value_bytes`]). A format with scales keeps them after the values of the
//! same block: one block of one layer is `[rows][value words]` then `[rows][f32 scales]`
//! ([`KvFormat::encode_block`]), never interleaved with the values (an odd-sized block such
//! as llama.cpp's 34-byte q8_0 would force 16-bit loads and atomics on WebGPU). Because the
//! scales live inside the block's byte range, copy-on-write, swap and block uploads move
//! them with the values without knowing the format. Bytes per token and per block come from
//! [`KvFormat::row_bytes`], so budgets, shards and reports all count scales too.
//!
//! # Scaled formats
//!
//! int8, int4 and the two FP8 layouts share one scheme ([`crate::cache::quant`]): per group
//! of values, scale = max |x| / code max, computed from the data when the append kernel
//! stores the row. int8 and int4 use groups of 32 along the head dim (the idea of llama.cpp's
//! q8_0 and q4_0): one outlier channel then costs precision in its own group only. FP8 keeps
//! its relative precision at every magnitude, so one scale per (token, KV head) row is enough
//! and costs a quarter of the bytes; the scale still matters, because a fixed scale of 1
//! would push ordinary K/V values into FP8's few subnormal codes or past its maximum.
//!
//! # The WGSL contract
//!
//! Each format has an element prelude for append (`shaders/kv_<encoding>.wgsl`) and a chunk
//! prelude for the attention kernels' 16-byte loads (`shaders/kv_chunk_<format>.wgsl`; the
//! tiled attention falls back to the element prelude where a row is not whole chunks). They
//! define `KvVec` (one storage element, or one chunk) and:
//!
//! - `SLICES_PER_VEC` (element prelude): how many four-value slices one `KvVec` holds, and
//!   `kv_slice(x: KvVec, i: u32, scale: f32) -> vec4<f32>`: slice `i` of a row, from the
//!   element holding it and the scale of its group;
//! - `SLICES_PER_CHUNK` (chunk prelude): slices per 16-byte load chunk, and
//!   `chunk_slice(x: KvVec, h: u32, scale: f32) -> vec4<f32>`: slice `h` of a chunk;
//! - `ROW_SCALES`: f32 scales per row (0 without scales), and for formats without scales
//!   `kv_store`/`kv_texel` for the plain append; scaled formats are stored by the append
//!   kernel's `append_scaled` entry point through `encode4`/`group_scale` (`shaders/kv_scaled.wgsl`);
//! - `CODE_UNIT`: a scaled codec's `decode4` returns its values divided by it (E4M3: 256, see
//!   `kernels::prelude`), and every reader multiplies it into the scale it passes to
//!   `kv_slice`/`chunk_slice`, once per group rather than once per value.
//!
//! # Adding a format
//!
//! 1. An arm of [`KvFormat`]: its name, [`KvFormat::layout`], and (for a scaled format) its
//!    [`Codec`], the CPU reference for what the GPU stores (readback and the kernel tests use
//!    it through [`KvFormat::encode_block`] and [`KvFormat::decode_block`]).
//! 2. Its WGSL preludes, selected in `kernels::prelude` (the compiler lists every match that
//!    needs the new arm: device encoding, tolerance, texture fit).
//! 3. The append kernel computes any scale before storing.

use super::quant::{Codec, Fp8, dequantize_groups, quantize_groups};

/// How K and V values are stored. Inputs and outputs of every kernel stay f32, and every
/// format runs on every adapter: none needs SHADER_F16 or 8-bit storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum KvFormat {
    /// 4 bytes per value: exact, the baseline.
    #[cfg_attr(feature = "serde", serde(rename = "f32"))]
    F32,
    /// 2 bytes per value: half the memory, IEEE binary16 rounding (round to nearest even).
    #[cfg_attr(feature = "serde", serde(rename = "f16"))]
    F16,
    /// 1 byte per value plus an f32 scale per 32 values: symmetric integers in [-127, 127].
    #[cfg_attr(feature = "serde", serde(rename = "int8"))]
    Int8,
    /// Half a byte per value plus an f32 scale per 32 values: integers in [-7, 7].
    #[cfg_attr(feature = "serde", serde(rename = "int4"))]
    Int4,
    /// 1 byte per value (FP8 E4M3: 3 mantissa bits, max 448) plus an f32 scale per row.
    #[cfg_attr(feature = "serde", serde(rename = "fp8-e4m3"))]
    Fp8E4M3,
    /// 1 byte per value (FP8 E5M2: 2 mantissa bits, more range) plus an f32 scale per row.
    #[cfg_attr(feature = "serde", serde(rename = "fp8-e5m2"))]
    Fp8E5M2,
}

/// Scales a format keeps beside its values, per (block, kv head, token) row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleLayout {
    /// No scales: values decode on their own.
    None,
    /// One f32 scale per row of `head_dim` values.
    PerRow,
    /// One f32 scale per `group` values of a row; the last group of a row whose head dim is
    /// not a multiple of `group` is shorter.
    PerGroup {
        /// Values sharing one scale.
        group: u32,
    },
}

/// The bit-level shape of a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatLayout {
    /// Bits per stored value; values are packed into little-endian 32-bit words.
    pub value_bits: u32,
    /// Scales beside the values.
    pub scales: ScaleLayout,
}

impl KvFormat {
    /// Every format, for test matrices and listings.
    pub const ALL: [KvFormat; 6] = [
        KvFormat::F32,
        KvFormat::F16,
        KvFormat::Int8,
        KvFormat::Int4,
        KvFormat::Fp8E4M3,
        KvFormat::Fp8E5M2,
    ];

    /// Name used in scenario files, flags, results and shader names.
    pub fn name(self) -> &'static str {
        match self {
            KvFormat::F32 => "f32",
            KvFormat::F16 => "f16",
            KvFormat::Int8 => "int8",
            KvFormat::Int4 => "int4",
            KvFormat::Fp8E4M3 => "fp8-e4m3",
            KvFormat::Fp8E5M2 => "fp8-e5m2",
        }
    }

    /// Parses a name as [`KvFormat::name`] writes it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == text)
    }

    /// Every name, for messages that list the choices.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Value width and scales.
    pub fn layout(self) -> FormatLayout {
        let (value_bits, scales) = match self {
            KvFormat::F32 => (32, ScaleLayout::None),
            KvFormat::F16 => (16, ScaleLayout::None),
            KvFormat::Int8 => (8, ScaleLayout::PerGroup { group: 32 }),
            KvFormat::Int4 => (4, ScaleLayout::PerGroup { group: 32 }),
            KvFormat::Fp8E4M3 | KvFormat::Fp8E5M2 => (8, ScaleLayout::PerRow),
        };
        FormatLayout { value_bits, scales }
    }

    /// The code of a scaled format; `None` for f32 and f16.
    pub fn codec(self) -> Option<Codec> {
        match self {
            KvFormat::F32 | KvFormat::F16 => None,
            KvFormat::Int8 => Some(Codec::Int { bits: 8 }),
            KvFormat::Int4 => Some(Codec::Int { bits: 4 }),
            KvFormat::Fp8E4M3 => Some(Codec::Fp8(Fp8::E4M3)),
            KvFormat::Fp8E5M2 => Some(Codec::Fp8(Fp8::E5M2)),
        }
    }

    /// Values sharing one scale in a row of `head_dim` values; `None` without scales.
    pub fn scale_group(self, head_dim: u32) -> Option<u32> {
        match self.layout().scales {
            ScaleLayout::None => None,
            ScaleLayout::PerRow => Some(head_dim),
            ScaleLayout::PerGroup { group } => Some(group.min(head_dim)),
        }
    }

    /// Bytes of one row's values (`head_dim` values, whole 32-bit words).
    pub fn row_value_bytes(self, head_dim: u32) -> u64 {
        (head_dim as u64 * self.layout().value_bits as u64).div_ceil(32) * 4
    }

    /// Scales per row (0 for formats without).
    pub fn row_scales(self, head_dim: u32) -> u32 {
        self.scale_group(head_dim)
            .map_or(0, |group| head_dim.div_ceil(group))
    }

    /// Bytes of one row's scales (0 for formats without).
    pub fn row_scale_bytes(self, head_dim: u32) -> u64 {
        self.row_scales(head_dim) as u64 * 4
    }

    /// Bytes one (token, kv head) row costs: values plus scales.
    pub fn row_bytes(self, head_dim: u32) -> u64 {
        self.row_value_bytes(head_dim) + self.row_scale_bytes(head_dim)
    }

    /// The values the cache holds after storing `row` (the reference quantizer): the CPU
    /// reference is fed these so a comparison measures the kernels, not the format.
    pub fn quantize_row(self, row: &[f32]) -> Vec<f32> {
        let head_dim = row.len() as u32;
        match (self, self.codec()) {
            (KvFormat::F16, _) => row
                .iter()
                .map(|&x| half::f16::from_f32(x).to_f32())
                .collect(),
            (_, Some(codec)) => {
                let group = self.scale_group(head_dim).unwrap_or(head_dim) as usize;
                let (codes, scales) = quantize_groups(row, group, codec);
                dequantize_groups(&codes, &scales, group, codec)
            }
            (_, None) => row.to_vec(),
        }
    }

    /// [`KvFormat::quantize_row`] over consecutive rows of `head_dim` values.
    pub fn quantize(self, values: &[f32], head_dim: usize) -> Vec<f32> {
        values
            .chunks(head_dim.max(1))
            .flat_map(|row| self.quantize_row(row))
            .collect()
    }

    /// The bytes of one block of one layer's K (or V) pool holding `values`, consecutive rows
    /// of `head_dim` f32 values (`[kv_head][token_in_block]` order): every row's value words,
    /// then every row's scales. What the append kernel writes, bit for bit.
    pub fn encode_block(self, values: &[f32], head_dim: u32) -> Vec<u8> {
        let hd = head_dim.max(1) as usize;
        let mut words = Vec::new();
        let mut scales = Vec::new();
        for row in values.chunks(hd) {
            match self.codec() {
                None if self == KvFormat::F16 => {
                    for pair in row.chunks(2) {
                        let lo = half::f16::from_f32(pair[0]).to_bits() as u32;
                        let hi = pair.get(1).map_or(0, |&x| half::f16::from_f32(x).to_bits());
                        words.push(lo | (hi as u32) << 16);
                    }
                }
                None => words.extend(row.iter().map(|x| x.to_bits())),
                Some(codec) => {
                    let group = self.scale_group(head_dim).unwrap_or(head_dim) as usize;
                    let (codes, row_scales) = quantize_groups(row, group, codec);
                    words.extend(pack_codes(&codes, codec.bits()));
                    scales.extend(row_scales);
                }
            }
        }
        words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .chain(scales.iter().flat_map(|s| s.to_le_bytes()))
            .collect()
    }

    /// The f32 values a block's bytes ([`KvFormat::encode_block`]'s layout, as read back from
    /// a pool) stand for: `rows` rows of `head_dim` values, scales applied.
    pub fn decode_block(self, bytes: &[u8], rows: usize, head_dim: u32) -> Vec<f32> {
        let hd = head_dim as usize;
        let row_bytes = self.row_value_bytes(head_dim) as usize;
        let words: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let row_words = row_bytes / 4;
        let mut out = Vec::with_capacity(rows * hd);
        for r in 0..rows {
            let row = &words[r * row_words..(r + 1) * row_words];
            match self.codec() {
                None if self == KvFormat::F16 => out.extend(
                    row.iter()
                        .flat_map(|w| [*w as u16, (*w >> 16) as u16])
                        .take(hd)
                        .map(|b| half::f16::from_bits(b).to_f32()),
                ),
                None => out.extend(row.iter().map(|&w| f32::from_bits(w))),
                Some(codec) => {
                    let per_row = self.row_scales(head_dim) as usize;
                    let at = rows * row_words + r * per_row;
                    let scales: Vec<f32> = words[at..at + per_row]
                        .iter()
                        .map(|&w| f32::from_bits(w))
                        .collect();
                    let codes = unpack_codes(row, codec.bits(), hd);
                    let group = self.scale_group(head_dim).unwrap_or(head_dim) as usize;
                    out.extend(dequantize_groups(&codes, &scales, group, codec));
                }
            }
        }
        out
    }
}

impl KvFormat {
    /// The scales of a block's `rows` rows (`[row][scale]`), from its bytes; empty for
    /// formats without scales.
    pub fn block_scales(self, bytes: &[u8], rows: usize, head_dim: u32) -> Vec<f32> {
        let start = rows * self.row_value_bytes(head_dim) as usize;
        let count = rows * self.row_scales(head_dim) as usize;
        bytes[start..start + count * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// Codes of `bits` bits packed little-endian into 32-bit words (code 0 in the lowest bits).
fn pack_codes(codes: &[u32], bits: u32) -> Vec<u32> {
    let per_word = (32 / bits) as usize;
    codes
        .chunks(per_word)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u32, |w, (i, &code)| w | code << (i as u32 * bits))
        })
        .collect()
}

/// The first `count` codes of `bits` bits in `words`.
fn unpack_codes(words: &[u32], bits: u32, count: usize) -> Vec<u32> {
    let per_word = 32 / bits;
    let mask = (1u32 << bits) - 1;
    (0..count as u32)
        .map(|i| words[(i / per_word) as usize] >> ((i % per_word) * bits) & mask)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_fail() {
        for f in KvFormat::ALL {
            assert_eq!(KvFormat::parse(f.name()), Some(f));
        }
        assert_eq!(KvFormat::parse("int3"), None);
        assert_eq!(KvFormat::parse("fp8"), None);
    }

    #[test]
    fn row_bytes_count_values_and_scales() {
        assert_eq!(KvFormat::F32.row_bytes(64), 256);
        assert_eq!(KvFormat::F16.row_bytes(64), 128);
        assert_eq!(KvFormat::F16.row_scale_bytes(128), 0);
        // int8, head dim 128: 128 value bytes + 4 scales of 4 bytes.
        assert_eq!(KvFormat::Int8.row_bytes(128), 144);
        // int4, head dim 64: 32 value bytes + 2 scales.
        assert_eq!(KvFormat::Int4.row_bytes(64), 40);
        // A head dim that is not a multiple of the group: 80 = 32 + 32 + 16.
        assert_eq!(KvFormat::Int4.row_scales(80), 3);
        assert_eq!(KvFormat::Fp8E4M3.row_bytes(128), 132);
    }

    #[test]
    fn decoding_an_encoded_block_gives_what_the_quantizer_keeps() {
        for hd in [64u32, 80, 128] {
            let rows = 5;
            let values: Vec<f32> = (0..rows * hd as usize)
                .map(|i| {
                    ((i * 37 % 101) as f32 - 50.0) / 7.0 * if i % 29 == 3 { 40.0 } else { 1.0 }
                })
                .collect();
            for f in KvFormat::ALL {
                let kept = f.quantize(&values, hd as usize);
                let bytes = f.encode_block(&values, hd);
                assert_eq!(
                    bytes.len() as u64,
                    rows as u64 * f.row_bytes(hd),
                    "{}",
                    f.name()
                );
                assert_eq!(
                    f.decode_block(&bytes, rows, hd),
                    kept,
                    "{} hd {hd}",
                    f.name()
                );
                if f.codec().is_none() {
                    assert_eq!(
                        f.quantize(&kept, hd as usize),
                        kept,
                        "{} is idempotent",
                        f.name()
                    );
                }
            }
        }
    }
}
