//! The WGSL prelude of each KV format and device encoding: the one place a kernel's source
//! depends on how K and V are stored. Every match is exhaustive, so a new
//! [`KvFormat`](crate::cache::KvFormat) or [`KvStorageMode`] does not build until it has its
//! preludes. The contract each prelude fulfils is in [`crate::cache::format`].

use crate::cache::KvFormat;
use crate::gpu::KvStorageMode;

const KV_F32: &str = include_str!("../../shaders/kv_f32.wgsl");
const KV_F16: &str = include_str!("../../shaders/kv_f16.wgsl");
const KV_F16_PACKED: &str = include_str!("../../shaders/kv_f16_packed.wgsl");
const KV_CHUNK_F32: &str = include_str!("../../shaders/kv_chunk_f32.wgsl");
const KV_CHUNK_F16: &str = include_str!("../../shaders/kv_chunk_f16.wgsl");

/// The prelude of the append and tiled attention kernels: `KvVec` holds four values and
/// `kv_load`/`kv_store` convert one.
pub(crate) fn tiled(mode: KvStorageMode) -> &'static str {
    match mode {
        KvStorageMode::F32 => KV_F32,
        KvStorageMode::F16Native => KV_F16,
        KvStorageMode::F16Packed => KV_F16_PACKED,
    }
}

/// The flat kernel's load chunk for `format`: its prelude and how many four-value slices one
/// chunk carries (one 16-byte load either way).
pub(crate) fn flat(format: KvFormat) -> (&'static str, u32) {
    match format {
        KvFormat::F32 => (KV_CHUNK_F32, 1),
        KvFormat::F16 => (KV_CHUNK_F16, 2),
    }
}

/// The encoding the flat kernel is built for: it reads f16 as u32 words, so native f16 pools
/// (the same bytes) use the packed code and never need SHADER_F16.
pub(crate) fn flat_mode(mode: KvStorageMode) -> KvStorageMode {
    match mode {
        KvStorageMode::F16Native | KvStorageMode::F16Packed => KvStorageMode::F16Packed,
        KvStorageMode::F32 => KvStorageMode::F32,
    }
}
