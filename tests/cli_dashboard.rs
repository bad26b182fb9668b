//! `pagekv run`'s live dashboard, in a pseudo-terminal (util-linux `script`) whose output is
//! replayed through a terminal emulator (vt100): what a person would see, mid-run and after.
//! Without a terminal on stdout the run prints plain lines, and `--quiet` only the table.

#![cfg(feature = "tool")]

use std::num::NonZero;
use std::process::Command;

mod common;

use common::cli::{have_gpu, pagekv, stdout};

const ROWS: u16 = 30;
const COLS: u16 = 100;

/// Every screen the byte stream `bytes` passes through (sampled every 64 bytes), and the last.
fn screens(bytes: &[u8]) -> (Vec<String>, String) {
    let rows = NonZero::new(ROWS).unwrap();
    let cols = NonZero::new(COLS).unwrap();
    let mut parser = vt100::Parser::new(rows, cols, 0);
    let mut seen = Vec::new();
    for chunk in bytes.chunks(64) {
        parser.process(chunk);
        seen.push(parser.screen().contents());
    }
    let last = parser.screen().contents();
    (seen, last)
}

#[test]
fn the_dashboard_shows_the_report_panel_and_clears_for_the_table() {
    if !have_gpu(module_path!()) {
        return;
    }
    let command = format!(
        "stty cols {COLS} rows {ROWS}; {} run --only 4,11",
        env!("CARGO_BIN_EXE_pagekv")
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("util-linux `script` runs the pseudo-terminal");
    assert!(out.status.success(), "{:?}", out.status);
    let (seen, last) = screens(&out.stdout);
    let parts = [
        "scenarios [",
        "requests  [",
        "KV use    [",
        "(alerts at 70/80/90)",
        "hit rate ",
        "evictions ",
        "throughput ",
        "tok/s",
        "active ",
        "waiting ",
        "max seq ",
        "mean batch ",
        "status ",
        "11 Cache Exhaustion",
    ];
    let panel = seen
        .iter()
        .find(|screen| parts.iter().all(|p| screen.contains(p)))
        .unwrap_or_else(|| panic!("no screen showed the whole panel; the last was:\n{last}"));
    // Overcommitted scenarios run their pools full: the status line says so.
    assert!(
        seen.iter()
            .any(|screen| screen.contains("status CRITICAL: kv use")),
        "{panel}"
    );
    // At the end the panel is gone and the table stands, with the summary lines above it.
    assert!(!last.contains("mean batch"), "{last}");
    assert!(last.contains("KV bytes per token"), "{last}");
    assert!(last.contains("scenarios:"), "{last}");
}

#[test]
fn without_a_terminal_the_run_prints_plain_lines_and_quiet_only_the_table() {
    if !have_gpu(module_path!()) {
        return;
    }
    let out = pagekv(&["run", "--scale", "ci", "--only", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let (text, err) = (
        stdout(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!text.contains("KV use    ["), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no terminal control in a log: {text}"
    );
    assert!(text.contains("demand %"), "{text}");
    assert!(err.contains("01 Short Sequence, Low Stress: PASS"), "{err}");
    let out = pagekv(&["run", "--scale", "ci", "--only", "1", "--quiet"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Short Sequence"), "{err}");
    assert!(!err.contains("pagekv run:"), "{err}");
    assert!(stdout(&out).contains("demand %"));
}
