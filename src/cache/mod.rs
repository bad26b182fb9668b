//! Pure-Rust cache bookkeeping: which physical block holds which tokens.
//!
//! Nothing here touches wgpu, so every policy and invariant is tested without a GPU, and the
//! bookkeeping never waits for the device.

pub mod error;
pub mod format;
pub mod geometry;
pub mod manager;
pub mod pool;
pub mod prefix;
pub mod quant;
pub mod table;

pub use error::{CacheError, InvariantViolation};
pub use format::{FormatLayout, KvFormat, ScaleLayout};
pub use geometry::{
    CacheLayout, GeometryError, ModelGeometry, SUPPORTED_BLOCK_SIZES, SUPPORTED_HEAD_DIMS,
};
pub use manager::KvCacheManager;
pub use pool::{BlockId, BlockPool, RELEASED};
pub use prefix::{PrefixHash, block_hash, chain_hashes};
pub use table::{AppendPlan, BlockCopy, CacheStats, PrefixHit, SeqId};
