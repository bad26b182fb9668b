//! Shared test support: every adapter present, or a failure when there is none. A machine
//! without any GPU adapter fails the GPU tests, naming what to install; skipping them is the
//! explicit opt-out `PAGEKV_ALLOW_NO_GPU=1`, so a plain `cargo test` cannot pass while
//! testing nothing.

#![allow(dead_code)]

#[cfg(feature = "tool")]
pub mod cli;

use std::path::PathBuf;

use pagekv::gpu::{GpuContext, enumerate_adapters};

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
