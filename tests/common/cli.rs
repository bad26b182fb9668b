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

/// Asserts exit status 2 and a single stderr line containing every `needle`, with nothing on
/// stdout: bad input is one sentence, reported before any work.
pub fn assert_input_error(out: &Output, needles: &[&str]) {
    let err = stderr_lines(out);
    assert_eq!(out.status.code(), Some(2), "{err:?}");
    assert_eq!(err.len(), 1, "one sentence: {err:?}");
    for n in needles {
        assert!(err[0].contains(n), "{n:?} missing from {:?}", err[0]);
    }
    assert!(stdout(out).is_empty(), "nothing may run: {}", stdout(out));
}

/// Runs the binary with `args`, asserts it succeeded (showing its stderr and stdout if not),
/// and returns its stdout.
pub fn pagekv_ok(args: &[&str]) -> String {
    let out = pagekv(args);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "pagekv {args:?}\n{:?}\n{text}",
        stderr_lines(&out)
    );
    text
}
