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
//! stores a row's values packed into 32-bit words ([`KvFormat::row_value_bytes`]); a format
//! with scales keeps them in a separate, 4-byte aligned array of [`ScaleLayout`] entries per
//! row, never interleaved with the values (an odd-sized block would force 16-bit loads and
//! atomics on WebGPU). Bytes per token and per block come from [`KvFormat::row_bytes`], so
//! budgets, shards and reports all count scales too.
//!
//! # The WGSL contract
//!
//! Each format has a prelude for the tiled kernels and append (`shaders/kv_<encoding>.wgsl`)
//! and one for the flat kernel (`shaders/kv_chunk_<format>.wgsl`). They define `KvVec` (one
//! storage element) and:
//!
//! - `kv_load(x: KvVec, row: u32, i: u32) -> vec4<f32>` and
//!   `kv_store(x: vec4<f32>, row: u32, i: u32) -> KvVec` (tiled, append): four values at
//!   slice `i` (0..HD4) of row `row`;
//! - `chunk_lo/chunk_hi(x: KvVec, row: u32, c: u32) -> vec4<f32>` (flat): the two halves of
//!   load chunk `c` of row `row`.
//!
//! `row` is the row's index within the shard, `(block * kv_heads + kv_head) * block_size +
//! token_in_block`: the block and slot a format with per-token or per-block scales needs to
//! find its scale. f32 and f16 ignore it.
//!
//! # Adding a format
//!
//! 1. An arm of [`KvFormat`]: its name, [`KvFormat::layout`], and the CPU
//!    [`KvFormat::quantize_row`] / [`KvFormat::decode_values`] pair that is the reference for
//!    what the GPU stores (readback and the kernel tests use them).
//! 2. Its WGSL preludes, selected in `kernels::prelude` (the compiler lists every match that
//!    needs the new arm: device encoding, tolerance, texture fit).
//! 3. The append kernel computes any scale before storing.

/// How K and V values are stored. Inputs and outputs of every kernel stay f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum KvFormat {
    /// 4 bytes per value: exact, the baseline.
    F32,
    /// 2 bytes per value: half the memory, IEEE binary16 rounding (round to nearest even).
    F16,
}

/// Scales a format keeps beside its values, per (block, kv head, token) row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleLayout {
    /// No scales: values decode on their own.
    None,
    /// One f32 scale per `group` values of a row (`group` divides every supported head dim).
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
    pub const ALL: [KvFormat; 2] = [KvFormat::F32, KvFormat::F16];

    /// Lowercase name used in scenario files, flags, results and shader names.
    pub fn name(self) -> &'static str {
        match self {
            KvFormat::F32 => "f32",
            KvFormat::F16 => "f16",
        }
    }

    /// Parses a name as [`KvFormat::name`] writes it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == text)
    }

    /// Value width and scales.
    pub fn layout(self) -> FormatLayout {
        match self {
            KvFormat::F32 => FormatLayout {
                value_bits: 32,
                scales: ScaleLayout::None,
            },
            KvFormat::F16 => FormatLayout {
                value_bits: 16,
                scales: ScaleLayout::None,
            },
        }
    }

    /// Bytes of one row's values (`head_dim` values, whole 32-bit words).
    pub fn row_value_bytes(self, head_dim: u32) -> u64 {
        (head_dim as u64 * self.layout().value_bits as u64).div_ceil(32) * 4
    }

    /// Bytes of one row's scales (0 for formats without).
    pub fn row_scale_bytes(self, head_dim: u32) -> u64 {
        match self.layout().scales {
            ScaleLayout::None => 0,
            ScaleLayout::PerGroup { group } => head_dim.div_ceil(group) as u64 * 4,
        }
    }

    /// Bytes one (token, kv head) row costs: values plus scales.
    pub fn row_bytes(self, head_dim: u32) -> u64 {
        self.row_value_bytes(head_dim) + self.row_scale_bytes(head_dim)
    }

    /// The values the cache holds after storing `row` (the reference quantizer): the CPU
    /// reference is fed these so a comparison measures the kernels, not the format.
    pub fn quantize_row(self, row: &[f32]) -> Vec<f32> {
        match self {
            KvFormat::F32 => row.to_vec(),
            KvFormat::F16 => row
                .iter()
                .map(|&x| half::f16::from_f32(x).to_f32())
                .collect(),
        }
    }

    /// [`KvFormat::quantize_row`] over consecutive rows of `head_dim` values.
    pub fn quantize(self, values: &[f32], head_dim: usize) -> Vec<f32> {
        values
            .chunks(head_dim.max(1))
            .flat_map(|row| self.quantize_row(row))
            .collect()
    }

    /// Decodes stored value bytes (little-endian words, as read back from a pool) to f32.
    /// Scales are applied by the caller for formats that have them.
    pub fn decode_values(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            KvFormat::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            KvFormat::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }
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
    }

    #[test]
    fn row_bytes_pack_values_into_words() {
        assert_eq!(KvFormat::F32.row_bytes(64), 256);
        assert_eq!(KvFormat::F16.row_bytes(64), 128);
        assert_eq!(KvFormat::F16.row_scale_bytes(128), 0);
    }

    #[test]
    fn decoding_what_the_quantizer_keeps_is_exact() {
        let row: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 7.0).collect();
        for f in KvFormat::ALL {
            let kept = f.quantize_row(&row);
            let bytes: Vec<u8> = match f {
                KvFormat::F32 => kept.iter().flat_map(|x| x.to_le_bytes()).collect(),
                KvFormat::F16 => kept
                    .iter()
                    .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                    .collect(),
            };
            assert_eq!(bytes.len() as u64, f.row_value_bytes(64));
            assert_eq!(f.decode_values(&bytes), kept, "{}", f.name());
            assert_eq!(f.quantize_row(&kept), kept, "{} is idempotent", f.name());
        }
    }
}
