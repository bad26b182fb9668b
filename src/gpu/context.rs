//! Adapter discovery and device creation.
//!
//! pagekv asks for the adapter's *own* limits rather than wgpu's defaults: the defaults cap a
//! storage binding at 128 MiB and a buffer at 256 MiB, which would make a real GPU's KV pool
//! look tiny. Optional features are requested only where present, and every kernel has a
//! portable fallback, so the same binary runs on lavapipe, GL and any real GPU.

use super::GpuError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which adapter to use. Empty means "the best one" (discrete, integrated, virtual, cpu).
#[derive(Clone, Debug, Default)]
pub struct AdapterFilter {
    /// Restrict to one backend.
    pub backend: Option<wgpu::Backend>,
    /// Case-insensitive substring of the adapter name.
    pub name: Option<String>,
}

impl AdapterFilter {
    /// Parses a backend name as users type it (`vulkan`, `metal`, `dx12`, `gl`).
    pub fn parse_backend(text: &str) -> Option<wgpu::Backend> {
        match text.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Some(wgpu::Backend::Vulkan),
            "metal" => Some(wgpu::Backend::Metal),
            "dx12" | "d3d12" => Some(wgpu::Backend::Dx12),
            "gl" | "opengl" | "gles" => Some(wgpu::Backend::Gl),
            _ => None,
        }
    }

    fn accepts(&self, info: &wgpu::AdapterInfo) -> bool {
        let backend_ok = self.backend.is_none_or(|b| b == info.backend);
        let name_ok = self
            .name
            .as_ref()
            .is_none_or(|n| info.name.to_lowercase().contains(&n.to_lowercase()));
        backend_ok && name_ok
    }
}

/// The limits and features pagekv sizes its buffers and picks kernel variants from.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Capabilities {
    /// Largest storage buffer binding in bytes: a KV shard never exceeds this.
    pub max_storage_binding: u64,
    /// Largest buffer in bytes.
    pub max_buffer: u64,
    /// Workgroup shared memory in bytes: bounds attention tile sizes.
    pub max_workgroup_storage: u32,
    /// Invocations per workgroup.
    pub max_invocations_per_workgroup: u32,
    /// Storage buffers one shader stage may bind (GL allows fewer than Vulkan).
    pub max_storage_buffers_per_stage: u32,
    /// Workgroups per dispatch dimension.
    pub max_workgroups_per_dimension: u32,
    /// Native f16 arithmetic and storage in WGSL (`enable f16`).
    pub shader_f16: bool,
    /// Subgroup operations.
    pub subgroup: bool,
    /// GPU timestamp queries, for kernel times that exclude submit overhead.
    pub timestamps: bool,
}

impl Capabilities {
    /// Reads what a device actually grants (which may be less than its adapter offers).
    pub fn of_device(device: &wgpu::Device) -> Self {
        let limits = device.limits();
        let features = device.features();
        Self::from_parts(&limits, features)
    }

    fn from_parts(limits: &wgpu::Limits, features: wgpu::Features) -> Self {
        Self {
            max_storage_binding: limits.max_storage_buffer_binding_size,
            max_buffer: limits.max_buffer_size,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroup: features.contains(wgpu::Features::SUBGROUP),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }
}

/// One adapter as `pagekv devices` shows it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdapterReport {
    /// Adapter name as the driver reports it.
    pub name: String,
    /// PCI vendor id, so results can be grouped by vendor.
    pub vendor: u32,
    /// Backend: Vulkan, Metal, Dx12 or Gl (written as those names in result files).
    pub backend: wgpu::Backend,
    /// Discrete, integrated, virtual or CPU: a CPU adapter's memory is host memory and its
    /// texel fetches and arithmetic share the same cores.
    pub device_type: wgpu::DeviceType,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
    /// What pagekv would get from this adapter.
    pub capabilities: Capabilities,
}

/// An unnamed adapter of no backend (`Noop`) and unknown type, for building reports field
/// by field.
impl Default for AdapterReport {
    fn default() -> Self {
        Self {
            name: String::new(),
            vendor: 0,
            backend: wgpu::Backend::Noop,
            device_type: wgpu::DeviceType::Other,
            driver: String::new(),
            driver_info: String::new(),
            capabilities: Capabilities::default(),
        }
    }
}

/// A backend as people write it (Vulkan, Metal, DX12, GL, WebGPU). Result files keep serde's
/// names; this is for what pagekv prints.
pub fn backend_name(backend: wgpu::Backend) -> &'static str {
    match backend {
        wgpu::Backend::Vulkan => "Vulkan",
        wgpu::Backend::Metal => "Metal",
        wgpu::Backend::Dx12 => "DX12",
        wgpu::Backend::Gl => "GL",
        wgpu::Backend::BrowserWebGpu => "WebGPU",
        wgpu::Backend::Noop => "no backend",
    }
}

/// A device type as people write it: the kind of adapter a figure came from.
pub fn device_type_name(device_type: wgpu::DeviceType) -> &'static str {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU",
        wgpu::DeviceType::Other => "other",
    }
}

/// `name (Backend)`: enough to tell the adapters of one machine apart in a list or an error.
pub fn adapter_label(name: &str, backend: wgpu::Backend) -> String {
    format!("{name} ({})", backend_name(backend))
}

impl AdapterReport {
    /// `name (Backend)`; see [`adapter_label`].
    pub fn label(&self) -> String {
        adapter_label(&self.name, self.backend)
    }

    /// `name (Backend, device type, driver and version)`, leaving out what the driver does not
    /// report: the line every output that measured on this adapter starts with, the same in
    /// each command so that two outputs are easy to match up.
    pub fn identity(&self) -> String {
        let driver = [self.driver.trim(), self.driver_info.trim()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let mut parts = vec![
            backend_name(self.backend),
            device_type_name(self.device_type),
        ];
        if !driver.is_empty() {
            parts.push(&driver);
        }
        format!("{} ({})", self.name, parts.join(", "))
    }

    fn new(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let wanted = wanted_features(adapter.features());
        Self {
            name: info.name.clone(),
            vendor: info.vendor,
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            capabilities: Capabilities::from_parts(&adapter.limits(), wanted),
        }
    }
}

/// A device and queue plus what they can do. Either pagekv creates it ([`GpuContext::new`]) or
/// a host application lends its own ([`GpuContext::from_device`]).
#[derive(Clone, Debug)]
pub struct GpuContext {
    /// The device every pagekv buffer and pipeline lives on.
    pub device: wgpu::Device,
    /// The queue pagekv submits to when it owns submission.
    pub queue: wgpu::Queue,
    /// Adapter identity, written into every result so numbers name their hardware.
    pub info: wgpu::AdapterInfo,
    /// Granted limits and features.
    pub capabilities: Capabilities,
    /// Buffers, textures and bind groups pagekv has created on this device (shared by clones).
    created: Arc<AtomicU64>,
    /// Measured concurrent workgroups per workgroup-memory footprint (bytes), shared by
    /// clones: the occupancy probe runs once per device and footprint.
    concurrency: Arc<Mutex<HashMap<u32, u32>>>,
}

fn wanted_features(available: wgpu::Features) -> wgpu::Features {
    let optional = wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
    available & optional
}

fn new_instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn type_rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn backend_rank(backend: wgpu::Backend) -> u8 {
    // Native compute APIs before GL, whose compute support is the most limited.
    match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// Every adapter wgpu can see, best first.
pub fn enumerate_adapters() -> Vec<wgpu::Adapter> {
    let instance = new_instance();
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (type_rank(info.device_type), backend_rank(info.backend))
    });
    adapters
}

/// The adapters `filter` accepts, best first, each listed once: some loaders expose the same
/// device twice (two ICD files for one driver), and probing or running it twice would only
/// repeat a figure.
pub fn matching_adapters(filter: &AdapterFilter) -> Vec<wgpu::Adapter> {
    let mut seen = Vec::new();
    enumerate_adapters()
        .into_iter()
        .filter(|a| {
            let info = a.get_info();
            let key = (
                info.name.clone(),
                info.backend,
                info.device_type,
                info.driver.clone(),
                info.driver_info.clone(),
            );
            if !filter.accepts(&info) || seen.contains(&key) {
                return false;
            }
            seen.push(key);
            true
        })
        .collect()
}

/// Reports for `pagekv devices`.
pub fn list_adapters() -> Vec<AdapterReport> {
    enumerate_adapters()
        .iter()
        .map(AdapterReport::new)
        .collect()
}

impl GpuContext {
    /// Opens the best adapter matching `filter` with its own limits and the optional features
    /// it has.
    pub fn new(filter: &AdapterFilter) -> Result<Self, GpuError> {
        let adapters = enumerate_adapters();
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let seen: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                adapter_label(&i.name, i.backend)
            })
            .collect();
        let adapter = adapters
            .into_iter()
            .find(|a| filter.accepts(&a.get_info()))
            .ok_or_else(|| GpuError::NoMatchingAdapter {
                wanted: format!("{filter:?}"),
                seen: seen.join(", "),
            })?;
        Self::from_adapter(&adapter)
    }

    /// Opens a specific adapter (used by tests that run on every adapter present).
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self, GpuError> {
        Self::from_adapter_with_limits(adapter, adapter.limits())
    }

    /// Opens `adapter` with explicit limits, e.g. lowered ones to check that pagekv explains
    /// or works around a smaller device.
    pub fn from_adapter_with_limits(
        adapter: &wgpu::Adapter,
        limits: wgpu::Limits,
    ) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("pagekv"),
            required_features: wanted_features(adapter.features()),
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                GpuError::RequestDevice(format!("{}: {e}", adapter_label(&info.name, info.backend)))
            })?;
        Ok(Self::from_device(device, queue, info))
    }

    /// Wraps a host application's device and queue. pagekv then uses only the limits and
    /// features that device was created with.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        let capabilities = Capabilities::of_device(&device);
        Self {
            device,
            queue,
            info,
            capabilities,
            created: Arc::default(),
            concurrency: Arc::default(),
        }
    }

    /// Buffers, textures and bind groups pagekv has created through this context and its
    /// clones. A steady-state step should leave it unchanged: the tests and the examples
    /// check that reused batches create nothing per step.
    pub fn objects_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Counts one created GPU object (see [`GpuContext::objects_created`]).
    pub(crate) fn count_created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    /// A one-line description for progress output and result files: the adapter's
    /// [`AdapterReport::identity`].
    pub fn describe(&self) -> String {
        self.report().identity()
    }

    /// The device as `pagekv devices` and result files describe it: the adapter's identity
    /// and the capabilities actually granted.
    pub fn report(&self) -> AdapterReport {
        AdapterReport {
            name: self.info.name.clone(),
            vendor: self.info.vendor,
            backend: self.info.backend,
            device_type: self.info.device_type,
            driver: self.info.driver.clone(),
            driver_info: self.info.driver_info.clone(),
            capabilities: self.capabilities.clone(),
        }
    }

    /// The concurrent workgroups measured for `shared_bytes` of workgroup memory, measuring
    /// them with `measure` the first time this device is asked (clones share the answer).
    pub(crate) fn concurrency_for(
        &self,
        shared_bytes: u32,
        measure: impl FnOnce() -> Result<u32, GpuError>,
    ) -> Result<u32, GpuError> {
        let known = self
            .concurrency
            .lock()
            .map_err(|_| GpuError::Device("occupancy cache poisoned".into()))?
            .get(&shared_bytes)
            .copied();
        if let Some(count) = known {
            return Ok(count);
        }
        let count = measure()?;
        if let Ok(mut cache) = self.concurrency.lock() {
            cache.insert(shared_bytes, count);
        }
        Ok(count)
    }

    /// Blocks until all submitted work finished; used at readback and timing points only.
    pub fn wait_idle(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Device(e.to_string()))
    }
}

/// Keeps a headless process's output clean on Mesa: its implicit Vulkan layer
/// `VK_LAYER_MESA_device_select` connects to a Wayland display to order devices whenever an
/// instance enables `VK_KHR_wayland_surface` (wgpu always does), and libwayland prints
/// "error: XDG_RUNTIME_DIR is invalid or not set" twice on a machine without a desktop session.
/// With no Wayland session in sight the layer has nothing to contribute, so this disables it
/// through its documented switch `NODEVICE_SELECT=1`, unless the variable is already set either
/// way. Call it first thing in `main`; the `pagekv` binary and the examples do.
///
/// # Safety
///
/// It sets an environment variable, so no other thread may read or write the environment
/// while it runs: call it before spawning any thread.
pub unsafe fn quiet_headless_vulkan() {
    let wayland_session = std::env::var_os("WAYLAND_DISPLAY").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR").is_some();
    if !wayland_session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller guarantees no other thread touches the environment.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(backend: wgpu::Backend, driver: &str, driver_info: &str) -> AdapterReport {
        AdapterReport {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend,
            device_type: wgpu::DeviceType::Cpu,
            driver: driver.into(),
            driver_info: driver_info.into(),
            ..AdapterReport::default()
        }
    }

    #[test]
    fn identity_names_backend_type_and_driver_leaving_out_empty_parts() {
        let vulkan = report(
            wgpu::Backend::Vulkan,
            "llvmpipe",
            "Mesa 22.3.6 (LLVM 15.0.6)",
        );
        assert_eq!(
            vulkan.identity(),
            "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, CPU, llvmpipe Mesa 22.3.6 (LLVM 15.0.6))"
        );
        assert_eq!(vulkan.label(), "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)");
        // llvmpipe's GL reports no driver name, only its version string.
        let gl = report(wgpu::Backend::Gl, "", "4.5 (Core Profile) Mesa 22.3.6");
        assert_eq!(
            gl.identity(),
            "llvmpipe (LLVM 15.0.6, 256 bits) (GL, CPU, 4.5 (Core Profile) Mesa 22.3.6)"
        );
        let bare = report(wgpu::Backend::Dx12, "", " ");
        assert_eq!(
            bare.identity(),
            "llvmpipe (LLVM 15.0.6, 256 bits) (DX12, CPU)"
        );
    }
}
