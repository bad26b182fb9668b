//! Shared test support: every adapter present, or a failure when PAGEKV_REQUIRE_GPU=1 and
//! there is none.

#![allow(dead_code)]

pub mod cli;

use pagekv::gpu::{GpuContext, enumerate_adapters};

/// One context per adapter wgpu can see (Vulkan via lavapipe and GL via llvmpipe here).
/// Without adapters the test is skipped, unless PAGEKV_REQUIRE_GPU=1 makes that a failure.
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
        if std::env::var("PAGEKV_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!(
                "PAGEKV_REQUIRE_GPU=1 but no GPU adapter is available (install mesa-vulkan-drivers)"
            );
        }
        eprintln!("no GPU adapter: skipping GPU test (set PAGEKV_REQUIRE_GPU=1 to fail instead)");
    }
    contexts
}
