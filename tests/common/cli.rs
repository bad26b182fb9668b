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

/// Whether GPU tests should run: true with an adapter; without one the test fails, unless
/// PAGEKV_ALLOW_NO_GPU=1 skips it.
pub fn have_gpu(test: &str) -> bool {
    if !pagekv::gpu::enumerate_adapters().is_empty() {
        return true;
    }
    super::no_gpu(test);
    false
}
