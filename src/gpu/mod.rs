//! GPU plumbing: adapters, devices, KV pools (buffers or textures) and readback. No policy lives here;
//! these modules only own buffers and do what the bookkeeping tells them.

mod context;
mod readback;
mod shard;
mod storage;

pub use context::{
    AdapterFilter, AdapterReport, Capabilities, GpuContext, enumerate_adapters, list_adapters,
};
pub use readback::{read_buffer_f32, read_buffer_u32, storage_buffer_init, upload_or_grow};
pub use shard::{KvBacking, KvShard, TEXEL_BYTES};
pub use storage::{KvStorage, KvStorageMode, ShardPlan, human_bytes};

use thiserror::Error;

/// Why GPU work could not be set up or run. Each message is one sentence a user can act on.
#[derive(Debug, Error)]
pub enum GpuError {
    /// No adapter at all: tell the user what to install.
    #[error(
        "no GPU adapter found; install a Vulkan driver (on Debian/Ubuntu `apt-get install mesa-vulkan-drivers` gives the software device lavapipe) or run where a GPU is visible"
    )]
    NoAdapter,
    /// Adapters exist but none matches `--backend`/`--adapter`.
    #[error("no adapter matches {wanted}; adapters present: {seen}")]
    NoMatchingAdapter {
        /// The filter as given.
        wanted: String,
        /// What is present, so the user can correct the filter.
        seen: String,
    },
    /// The adapter refused to create a device.
    #[error("could not create a device on {0}")]
    RequestDevice(String),
    /// A device limit makes the request impossible; says which limit.
    #[error("{0}")]
    Limit(String),
    /// The caller asked for something no adapter could do: a bug in the calling code (or
    /// input its caller should have checked), not a limit of this device.
    #[error("invalid {argument} {value}: {problem}")]
    InvalidInput {
        /// The argument at fault.
        argument: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The device reported an error (validation, out of memory, lost).
    #[error("GPU error: {0}")]
    Device(String),
}
