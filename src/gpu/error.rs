//! Why GPU work could not be set up or run, as types: the caller's mistakes
//! ([`GpuError::InvalidInput`]), what this adapter cannot do ([`GpuError::Limit`],
//! [`GpuError::MissingFeature`], [`GpuError::OutOfMemory`]) and what went wrong on the device
//! ([`GpuError::Device`]). Each carries its numbers in fields and prints one sentence a user
//! can act on.

use thiserror::Error;

/// An adapter limit pagekv checks before asking the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceLimit {
    /// `max_storage_buffer_binding_size` (bytes).
    StorageBindingSize,
    /// `max_compute_workgroups_per_dimension` (workgroups).
    WorkgroupsPerDimension,
    /// Workgroups in one dispatch over a 2-D grid: the per-dimension limit squared.
    DispatchWorkgroups,
    /// `max_compute_workgroup_storage_size` (bytes).
    WorkgroupStorageSize,
    /// `max_texture_dimension_2d` (texels).
    TextureDimension2d,
    /// `max_storage_textures_per_shader_stage` (bindings).
    StorageTexturesPerStage,
    /// Half the host memory available, for a CPU adapter whose device memory is host memory
    /// (bytes).
    HostMemory,
}

impl DeviceLimit {
    /// The limit's name as wgpu spells it (or a description for host memory).
    pub fn name(self) -> &'static str {
        match self {
            DeviceLimit::StorageBindingSize => "max_storage_buffer_binding_size",
            DeviceLimit::WorkgroupsPerDimension => "max_compute_workgroups_per_dimension",
            DeviceLimit::DispatchWorkgroups => "max_compute_workgroups_per_dimension squared",
            DeviceLimit::WorkgroupStorageSize => "max_compute_workgroup_storage_size",
            DeviceLimit::TextureDimension2d => "max_texture_dimension_2d",
            DeviceLimit::StorageTexturesPerStage => "max_storage_textures_per_shader_stage",
            DeviceLimit::HostMemory => "half of the host memory available",
        }
    }

    /// The unit the limit counts in.
    pub fn unit(self) -> &'static str {
        match self {
            DeviceLimit::StorageBindingSize
            | DeviceLimit::WorkgroupStorageSize
            | DeviceLimit::HostMemory => "bytes",
            DeviceLimit::WorkgroupsPerDimension | DeviceLimit::DispatchWorkgroups => "workgroups",
            DeviceLimit::TextureDimension2d => "texels",
            DeviceLimit::StorageTexturesPerStage => "bindings",
        }
    }
}

/// A valid request that exceeds one of this adapter's limits.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{what} needs {needed} {} but this adapter's {} is {allowed}; {remedy}", .limit.unit(), .limit.name())]
pub struct LimitExceeded {
    /// What needed more, e.g. "one KV block of one layer".
    pub what: String,
    /// The limit exceeded.
    pub limit: DeviceLimit,
    /// What the request needs, in the limit's unit.
    pub needed: u64,
    /// What the adapter allows.
    pub allowed: u64,
    /// What the caller can change.
    pub remedy: &'static str,
}

/// Why GPU work could not be set up or run.
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
    /// A device limit makes the request impossible on this adapter.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The request needs an optional feature this device was created without.
    #[error("{needed_by} needs the {feature} feature, which this device lacks")]
    MissingFeature {
        /// The wgpu feature.
        feature: &'static str,
        /// What needs it.
        needed_by: String,
    },
    /// The device could not allocate memory.
    #[error("the device could not allocate {bytes} bytes for {what}: {detail}")]
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// Its size.
        bytes: u64,
        /// The device's own message.
        detail: String,
    },
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
    /// The device reported an error while running (validation, lost device, readback).
    #[error("GPU error: {0}")]
    Device(String),
}

impl GpuError {
    /// Whether this adapter cannot serve the request (a limit, a missing feature, memory),
    /// as opposed to a caller mistake or a device failure: what a stress run reports as
    /// "refused by the adapter".
    pub fn is_refusal(&self) -> bool {
        match self {
            GpuError::Limit(_) | GpuError::MissingFeature { .. } | GpuError::OutOfMemory { .. } => {
                true
            }
            GpuError::NoAdapter
            | GpuError::NoMatchingAdapter { .. }
            | GpuError::RequestDevice(_)
            | GpuError::InvalidInput { .. }
            | GpuError::Device(_) => false,
        }
    }
}
