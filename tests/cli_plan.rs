//! `pagekv plan` end to end (rows, JSON, one-sentence errors; `--validate` on the GPU), and the
//! production configurations: they load, `scenarios --set production` lists them and
//! `run --set production` runs them.

#![cfg(feature = "tool")]

use std::path::Path;

mod common;

use common::cli::{assert_input_error, have_gpu, pagekv, pagekv_ok, stderr_lines, stdout};
use pagekv::scenario::{ModelPresets, load_dir_with};

fn scenarios_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
}

/// The table row whose first cell is `first`.
fn row<'a>(text: &'a str, first: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.trim_start_matches(['│', ' '])
                .split(['┆', '│'])
                .next()
                .is_some_and(|c| c.trim() == first)
        })
        .unwrap_or_else(|| panic!("no row {first}:\n{text}"))
}

#[test]
fn plan_prints_the_real_geometry_beside_the_reference() {
    let out = pagekv(&["plan", "--model", "qwen2.5-0.5b", "--budget", "24"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    // 4096 + 512 tokens = 288 blocks; 24 GiB = 131,072 blocks of 16 f16 tokens.
    let r = row(&text, "4096");
    for cell in [
        "273 (",
        "364 (",
        "455 (100.0%)",
        "128",
        "x3.55",
        "64",
        "x4.27",
        "A <=60%, C >100%",
    ] {
        assert!(r.contains(cell), "{cell:?} missing from {r}");
    }
    assert!(row(&text, "8192").contains("B <=60%"), "{text}");
    assert!(row(&text, "16384").contains("D <=60%"), "{text}");
    // Concurrency at 4096: streams of 32 requests.
    let c = row(&text, "32");
    assert!(c.contains("14 (") && c.contains("16"), "{c}");
    assert!(
        text.contains("A Low Latency: 32 x 4 = 128 requests"),
        "{text}"
    );
    assert!(text.contains("fits under 60%"), "{text}");
    assert!(text.contains("the report sizes it for 40 GiB"), "{text}");
}

#[test]
fn plan_seven_b_and_every_format() {
    let out = pagekv(&["plan", "--model", "qwen2.5-7b", "--kv-dtype", "all"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert_eq!(text.matches("Largest batch per sequence length").count(), 6);
    // f16: 57,344 bytes a token, 28,086 blocks; 97 requests of 288 blocks.
    assert!(text.contains("57344 bytes per token"), "{text}");
    assert!(text.contains("97 (99.5%)"), "{text}");
}

#[test]
fn plan_json_parses_and_custom_geometry_matches_the_preset() {
    let json = |args: &[&str]| -> serde_json::Value {
        let out = pagekv(args);
        assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
        serde_json::from_slice(&out.stdout).expect("valid JSON")
    };
    let preset = json(&["plan", "--model", "qwen2.5-7b", "--json"]);
    let custom = json(&[
        "plan",
        "--layers",
        "28",
        "--q-heads",
        "28",
        "--kv-heads",
        "4",
        "--head-dim",
        "128",
        "--max-context",
        "32768",
        "--json",
    ]);
    let batch = |v: &serde_json::Value| v["plans"][0]["batch"].clone();
    assert_eq!(batch(&preset), batch(&custom));
    let rows = batch(&preset);
    assert_eq!(rows.as_array().unwrap().len(), 6);
    assert_eq!(rows[2]["seq_len"], 4096);
    assert_eq!(rows[2]["fits"][2]["count"], 97);
    assert_eq!(preset["plans"][0]["bytes_per_token"], 57344);
    assert_eq!(preset["plans"][0]["markers"].as_array().unwrap().len(), 4);
    let all = json(&["plan", "--kv-dtype", "all", "--json"]);
    let formats: Vec<&str> = all["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["input"]["format"].as_str().unwrap())
        .collect();
    assert_eq!(
        formats,
        ["f32", "f16", "int8", "int4", "fp8-e4m3", "fp8-e5m2"]
    );
}

#[test]
fn plan_rejects_bad_input_in_one_sentence() {
    assert_input_error(&pagekv(&["plan", "--budget", "0"]), &["--budget", "0"]);
    assert_input_error(&pagekv(&["plan", "--budget", "-3"]), &["--budget"]);
    assert_input_error(
        &pagekv(&["plan", "--model", "gpt-9"]),
        &["--model", "gpt-9", "qwen2.5-7b"],
    );
    assert_input_error(
        &pagekv(&["plan", "--kv-dtype", "bogus"]),
        &["--kv-dtype", "bogus", "int8"],
    );
    assert_input_error(&pagekv(&["plan", "--block-size", "12"]), &["--block-size"]);
    assert_input_error(&pagekv(&["plan", "--window", "0"]), &["--window"]);
    assert_input_error(&pagekv(&["plan", "--layers", "4"]), &["--q-heads"]);
    assert_input_error(
        &pagekv(&["plan", "--validate", "--window", "2048"]),
        &["--validate", "--window"],
    );
    assert_input_error(
        &pagekv(&["plan", "--validate", "--row", "3000"]),
        &["--row", "3000"],
    );
}

#[test]
fn the_production_configurations_load() {
    let dir = scenarios_dir();
    let presets = ModelPresets::load(dir.join("models.toml")).unwrap();
    let set = load_dir_with(dir.join("production"), &presets).unwrap();
    let ids: Vec<u32> = set.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![101, 102, 103, 104]);
    let shape: Vec<(u32, u32, u32)> = set
        .iter()
        .map(|s| {
            let c = &s.scenario;
            (c.batch_size, c.sequence_length, c.concurrency)
        })
        .collect();
    assert_eq!(
        shape,
        vec![(32, 4096, 4), (64, 8192, 2), (128, 4096, 4), (32, 16384, 1)]
    );
    let claims: Vec<(f64, f64, f64)> = set
        .iter()
        .map(|s| {
            let r = &s.scenario.reference;
            (r.utilization_pct, r.throughput_req_s, r.budget_gb)
        })
        .collect();
    assert_eq!(
        claims,
        vec![
            (10.7, 50.5, 24.0),
            (21.5, 101.0, 24.0),
            (10.7, 202.0, 24.0),
            (21.5, 25.2, 40.0)
        ]
    );
    assert!(set.iter().all(|s| s.scenario.model == "qwen2.5-0.5b"));

    let out = pagekv(&["scenarios", "--set", "production"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(text.contains("101-a-low-latency.toml"), "{text}");
    assert!(text.contains("104-d-large-context.toml"), "{text}");
    assert_input_error(
        &pagekv(&["run", "--set", "production", "--only", "1"]),
        &["--set", "--only"],
    );
}

#[test]
fn run_set_production_runs_the_four_configurations() {
    if !have_gpu(module_path!()) {
        return;
    }
    let text = pagekv_ok(&["run", "--set", "production", "--scale", "ci", "--quiet"]);
    for name in [
        "A Low Latency",
        "B Balanced Throughput",
        "C Maximum Throughput",
        "D Large Context",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert!(row(&text, "101").contains("PASS"), "{text}");
    assert!(text.contains("(24, 40 GiB)"), "{text}");
    // The same files named one by one print the same rows.
    let dir = scenarios_dir().join("production");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["run", "--scale", "ci", "--quiet", "--scenario"];
    args.extend(files.iter().map(String::as_str));
    let by_file = pagekv(&args);
    let by_file_text = stdout(&by_file);
    assert_eq!(by_file.status.code(), Some(0), "{by_file_text}");
    for id in ["101", "102", "103", "104"] {
        let cells = |t: &str| {
            let r = row(t, id);
            r.split('┆').take(4).collect::<Vec<_>>().join("|")
        };
        assert_eq!(cells(&text), cells(&by_file_text));
    }
}

#[test]
fn validate_runs_the_boundary_and_one_past_it() {
    if !have_gpu(module_path!()) {
        return;
    }
    let out = pagekv(&["plan", "--validate", "--scale", "ci", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let points = v["validation"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    let (b, p) = (&points[0], &points[1]);
    assert_eq!(b["kind"], "Boundary");
    assert_eq!(b["measured"]["preemptions"], 0);
    let planned = b["planned_use_pct"].as_f64().unwrap();
    let peak = b["measured"]["peak_use_pct"].as_f64().unwrap();
    assert!(
        (planned - peak).abs() < 1.0,
        "planned {planned}, measured {peak}"
    );
    let pressed = p["measured"]["preemptions"].as_u64().unwrap() > 0
        || p["measured"]["max_waiting"].as_u64().unwrap() > 0;
    assert!(pressed, "{p}");
    assert!(b["contradictions"].as_array().unwrap().is_empty(), "{b}");
}
