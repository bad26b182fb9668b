//! Shared test support: every adapter present, or a failure when there is none. A machine
//! without any GPU adapter fails the GPU tests, naming what to install; skipping them is the
//! explicit opt-out `PAGEKV_ALLOW_NO_GPU=1`, so a plain `cargo test` cannot pass while
//! testing nothing.

#![allow(dead_code)]

#[cfg(feature = "tool")]
pub mod cli;

use std::path::PathBuf;

use pagekv::gpu::{GpuContext, GpuError, enumerate_adapters};

/// A fresh, empty directory for one test: `pagekv-<suite>-<tag>-<pid>` under the system's
/// temporary directory (the pid keeps concurrent test binaries apart).
pub fn temp_dir(suite: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pagekv-{suite}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One context per adapter wgpu can see (Vulkan via lavapipe and GL via llvmpipe here).
/// Without adapters the test fails, unless PAGEKV_ALLOW_NO_GPU=1 skips it (see [`no_gpu`]).
pub fn contexts() -> Vec<GpuContext> {
    let adapters = enumerate_adapters();
    let contexts: Vec<GpuContext> = adapters
        .iter()
        .filter_map(|a| match GpuContext::from_adapter(a) {
            Ok(ctx) => Some(ctx),
            Err(e) => {
                eprintln!("skipping adapter: {e}");
                None
            }
        })
        .collect();
    if contexts.is_empty() {
        no_gpu("this GPU test");
    }
    contexts
}

/// Every adapter wgpu can see, for tests that create their own devices (lowered limits);
/// none fails the test as [`contexts`] does, or is an empty list under PAGEKV_ALLOW_NO_GPU=1.
pub fn adapters() -> Vec<wgpu::Adapter> {
    let adapters = enumerate_adapters();
    if adapters.is_empty() {
        no_gpu("this GPU test");
    }
    adapters
}

/// What a GPU test does on a machine without an adapter: fail with what to install, or skip
/// with a message when the user asked for that with PAGEKV_ALLOW_NO_GPU=1.
pub fn no_gpu(test: &str) {
    if std::env::var("PAGEKV_ALLOW_NO_GPU").is_ok_and(|v| v == "1") {
        eprintln!("{test}: no GPU adapter, skipped because PAGEKV_ALLOW_NO_GPU=1");
        return;
    }
    panic!(
        "{test}: no GPU adapter found. Install a Vulkan driver (on Debian/Ubuntu, as root: \
         `apt-get update && apt-get install -y mesa-vulkan-drivers` gives the software device \
         lavapipe) or run where a GPU is visible; set PAGEKV_ALLOW_NO_GPU=1 to skip GPU tests \
         instead"
    );
}

/// A context on `adapter` with every limit as the adapter reports it except
/// `max_compute_workgroup_storage_size`, lowered to `workgroup_storage` bytes; `None` (said on
/// stderr) where a GL adapter creates no second device. NVIDIA's GL driver on a headless
/// machine (EGL, no display) lists an adapter but creates no device on it ("Parent device is
/// lost"), with or without lowered limits; the other backends still run the case.
pub fn with_workgroup_storage(
    adapter: &wgpu::Adapter,
    workgroup_storage: u32,
) -> Option<GpuContext> {
    with_limits(adapter, |limits| {
        limits.max_compute_workgroup_storage_size = workgroup_storage
    })
}

/// A context on `adapter` with the adapter's limits as `lower` leaves them (it may only lower
/// them); `None` where a GL adapter creates no second device, as for
/// [`with_workgroup_storage`].
pub fn with_limits(
    adapter: &wgpu::Adapter,
    lower: impl FnOnce(&mut wgpu::Limits),
) -> Option<GpuContext> {
    let mut limits = adapter.limits();
    lower(&mut limits);
    match GpuContext::from_adapter_with_limits(adapter, limits) {
        Ok(ctx) => Some(ctx),
        Err(GpuError::RequestDevice(why)) if adapter.get_info().backend == wgpu::Backend::Gl => {
            eprintln!(
                "{}: a second GL device was refused ({why})",
                adapter.get_info().name
            );
            None
        }
        Err(e) => panic!("lower limits are always grantable: {e}"),
    }
}
