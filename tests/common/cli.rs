//! Helpers for tests that run the `pagekv` binary.

use std::process::{Command, Output};

/// Runs the binary built for this test run with `args`.
pub fn pagekv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagekv"))
        .args(args)
        .output()
        .expect("spawn pagekv")
}

/// stderr without Mesa's harmless "XDG_RUNTIME_DIR is invalid" noise and blank lines.
pub fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR") && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether GPU tests should run; panics when a GPU is required (PAGEKV_REQUIRE_GPU=1) but
/// absent.
pub fn have_gpu(test: &str) -> bool {
    if !pagekv::gpu::enumerate_adapters().is_empty() {
        return true;
    }
    if std::env::var("PAGEKV_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!(
            "PAGEKV_REQUIRE_GPU=1 but no GPU adapter is available (install mesa-vulkan-drivers)"
        );
    }
    eprintln!("{test}: no GPU adapter, skipping (set PAGEKV_REQUIRE_GPU=1 to fail instead)");
    false
}
