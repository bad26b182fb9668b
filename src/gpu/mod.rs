//! GPU plumbing: adapters, devices, KV pools (buffers or textures) and readback. No policy lives here;
//! these modules only own buffers and do what the bookkeeping tells them.

mod context;
mod probe;
mod probe_plan;
mod readback;
mod shard;
mod snapshot;
mod storage;

pub use context::{
    AdapterFilter, AdapterReport, Capabilities, GpuContext, adapter_label, backend_name,
    device_type_name, enumerate_adapters, list_adapters, matching_adapters, quiet_headless_vulkan,
};
pub use probe::{MemoryProbe, ProbeStop, probe_memory};
pub use probe_plan::{
    CAP_PERCENT, CapSource, DEFAULT_STEP_BYTES, DISCRETE_FALLBACK_CAP_BYTES, GIB, MIB, MemoryKind,
    ProbePlan, ProbePlanError, host_total_bytes, parse_mem_total,
};
pub use readback::{read_buffer_f32, read_buffer_u32, storage_buffer_init, upload_or_grow};
pub use shard::{BlockSplit, KvBacking, KvShard, TEXEL_BYTES, TexturePart, TextureRows};
pub use snapshot::LayerSnapshot;
#[cfg(feature = "tool")]
pub(crate) use storage::host_available_bytes;
pub use storage::{KvStorage, KvStorageMode, ShardPlan, human_bytes};

mod error;

pub use error::{DeviceLimit, GpuError, LimitExceeded};
