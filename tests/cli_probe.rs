//! `devices --probe-memory`, `run --budget` values, `run --all-adapters` and N-way `compare`
//! end to end.

#![cfg(feature = "tool")]

use std::path::{Path, PathBuf};

mod common;

use common::cli::{assert_input_error, have_gpu, pagekv, pagekv_ok, stderr_lines, stdout};

/// The cells of a table row (comfy-table's condensed UTF-8 borders).
fn cells(line: &str) -> Vec<String> {
    line.split(['│', '┆'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bad_budgets_and_probe_sizes_are_one_sentence_with_status_2() {
    assert_input_error(
        &pagekv(&["run", "--budget", "bogus"]),
        &["--budget", "'bogus' is not a budget", "device"],
    );
    assert_input_error(
        &pagekv(&["run", "--budget", "-1"]),
        &["--budget", "'-1' is not a budget"],
    );
    assert_input_error(
        &pagekv(&["devices", "--probe-memory", "--max", "0"]),
        &["--max 0 is not a size"],
    );
    assert_input_error(
        &pagekv(&["devices", "--probe-memory", "--max", "nan"]),
        &["--max"],
    );
    assert_input_error(
        &pagekv(&["devices", "--probe-memory", "--step", "-4"]),
        &["--step -4 is not a size"],
    );
    // The probe's sizes mean nothing without the probe.
    assert_input_error(&pagekv(&["devices", "--max", "1"]), &["required"]);
    // One results file is not a comparison.
    assert_input_error(&pagekv(&["compare", "a.json"]), &["FILE"]);
    assert_input_error(
        &pagekv(&["run", "--all-adapters", "--out", "x.json"]),
        &["--out"],
    );
}

/// A small probe on every adapter: a usable figure no larger than the cap, in whole steps no
/// larger than the device's limits, with CPU adapters flagged as host memory.
#[test]
fn probe_memory_reports_usable_bytes_within_the_cap() {
    if !have_gpu(module_path!()) {
        return;
    }
    let out = pagekv(&["devices", "--probe-memory", "--max", "0.5", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let entries: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entries = entries.as_array().unwrap();
    assert!(!entries.is_empty());
    let cap = 1u64 << 29;
    for e in entries {
        let probe = &e["probe"];
        let caps = &e["adapter"]["capabilities"];
        let usable = probe["usable_bytes"].as_u64().unwrap();
        let step = probe["plan"]["step_bytes"].as_u64().unwrap();
        assert_eq!(probe["plan"]["cap_bytes"].as_u64(), Some(cap), "{e}");
        assert_eq!(probe["plan"]["cap_source"], "requested", "{e}");
        assert!(usable > 0 && usable <= cap, "{e}");
        assert!(step <= caps["max_storage_binding"].as_u64().unwrap(), "{e}");
        assert!(step <= caps["max_buffer"].as_u64().unwrap(), "{e}");
        assert_eq!(
            usable.div_ceil(step),
            probe["buffers"].as_u64().unwrap(),
            "{e}"
        );
        let cpu = e["adapter"]["device_type"] == "Cpu";
        assert_eq!(probe["host_memory"].as_bool(), Some(cpu), "{e}");
    }

    let out = pagekv(&[
        "--backend",
        "vulkan",
        "devices",
        "--probe-memory",
        "--max",
        "0.25",
        "--step",
        "64",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let header = text.lines().find(|l| l.contains("usable GiB")).unwrap();
    assert!(header.contains("stopped because"), "{text}");
    let row = text.lines().find(|l| l.contains("64.0 MiB")).unwrap();
    let row = cells(row);
    assert_eq!(row[1], "Vulkan", "{text}");
    assert_eq!(row[5], "4", "{text}");
    assert_eq!(row[6], "0.25", "{text}");
    assert_eq!(row[7], "cap", "{text}");
    if row[2] == "CPU" {
        assert!(text.contains("host memory"), "{text}");
    }
}

fn scale_req_per_s(path: &Path, to: &Path, factor: f64, preset: Option<&str>) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for s in value["scenarios"].as_array_mut().unwrap() {
        let m = &mut s["measured"]["requests_per_s"];
        *m = (m.as_f64().unwrap() * factor).into();
    }
    if let Some(preset) = preset {
        value["preset"] = preset.into();
    }
    std::fs::write(to, serde_json::to_string(&value).unwrap()).unwrap();
}

/// `run --all-adapters` writes one results file per adapter and compares them; `compare`
/// takes three files with one column and one ratio per file after the first, and refuses a
/// file at another preset unless `--force`.
#[test]
fn all_adapters_writes_a_file_each_and_compare_takes_n_files() {
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = common::temp_dir("cli-probe", "all");
    let text = pagekv_ok(&[
        "run",
        "--all-adapters",
        "--scale",
        "ci",
        "--only",
        "1",
        "--quiet",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let adapters = pagekv::gpu::matching_adapters(&Default::default()).len();
    assert_eq!(files.len(), adapters, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("results-") && name.ends_with(".json"));
        let results = pagekv::report::file::read(f).unwrap();
        assert!(results.complete);
        assert_eq!(
            name,
            pagekv::report::file::results_file_name(&results.adapter)
        );
    }
    assert_eq!(text.matches("results written to").count(), adapters);
    if adapters >= 2 {
        assert!(text.contains("comparison of the"), "{text}");
    }

    let a = &files[0];
    let b = dir.join("b.json");
    let c = dir.join("c.json");
    scale_req_per_s(a, &b, 2.0, None);
    scale_req_per_s(a, &c, 3.0, None);
    let out = pagekv(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    for label in ["A: ", "B: ", "C: "] {
        assert!(text.lines().any(|l| l.starts_with(label)), "{text}");
    }
    let header = text.lines().find(|l| l.contains("metric")).unwrap();
    assert_eq!(
        cells(header),
        ["#", "metric", "A", "B", "C", "B / A", "C / A"],
        "{text}"
    );
    let row = cells(text.lines().find(|l| l.contains("req/s")).unwrap());
    assert_eq!(row.len(), 6, "{row:?}");
    assert_eq!(&row[4..], ["x2.00", "x3.00"], "{text}");

    let d = dir.join("d.json");
    scale_req_per_s(a, &d, 1.0, Some("default"));
    let three = |force: bool| {
        let mut args = vec!["compare"];
        if force {
            args.push("--force");
        }
        args.extend([
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            d.to_str().unwrap(),
        ]);
        pagekv(&args)
    };
    assert_input_error(&three(false), &["d.json", "preset", "--force"]);
    let out = three(true);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(stdout(&out).contains("warning (--force)"));
    std::fs::remove_dir_all(&dir).unwrap();
}
