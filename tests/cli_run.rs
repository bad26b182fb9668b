//! `pagekv run`, `compare` and `scenarios` end to end: one-sentence errors with status 2 for
//! bad flags and files (before any work), the table, the results file and comparisons.

#![cfg(feature = "tool")]

use std::path::Path;

mod common;

use common::cli::{assert_input_error, have_gpu, pagekv, pagekv_ok, stderr_lines, stdout};
use pagekv::bench::{BenchReport, Clock};
use pagekv::gpu::AdapterReport;

fn scenarios_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
}

#[test]
fn run_rejects_bad_flags_before_any_work() {
    assert_input_error(&pagekv(&["run", "--scale", "huge"]), &["--scale", "huge"]);
    assert_input_error(&pagekv(&["run", "--time", "0s"]), &["--time", "range"]);
    assert_input_error(&pagekv(&["run", "--time", "soon"]), &["--time", "soon"]);
    assert_input_error(
        &pagekv(&["run", "--scale", "ci", "--time", "5m"]),
        &["--time", "--scale", "ci"],
    );
    assert_input_error(
        &pagekv(&["whatif", "--scale", "auto"]),
        &["--scale auto", "whatif"],
    );
    assert_input_error(&pagekv(&["run", "--only", "3,99"]), &["--only", "99"]);
    assert_input_error(&pagekv(&["run", "--only", "3,x"]), &["--only", "'x'"]);
    assert_input_error(&pagekv(&["run", "--budget", "-3"]), &["--budget"]);
    assert_input_error(&pagekv(&["run", "--budget", "0"]), &["--budget"]);
    assert_input_error(&pagekv(&["run", "--preemption", "drop"]), &["drop"]);
    assert_input_error(
        &pagekv(&["run", "--window", "0"]),
        &["--window", "positive"],
    );
    assert_input_error(
        &pagekv(&["run", "--window", "40000"]),
        &["--window", "40000", "max_context of 32768"],
    );
    assert_input_error(&pagekv(&["run", "--window", "-5"]), &["-5"]);
    assert_input_error(
        &pagekv(&["whatif", "--window", "0", "--claims-only"]),
        &["--window", "positive"],
    );
    assert_input_error(
        &pagekv(&["whatif", "--scale", "huge"]),
        &["--scale", "huge"],
    );
    assert_input_error(
        &pagekv(&["run", "--backend", "cuda"]),
        &["--backend", "cuda"],
    );
}

#[test]
fn run_rejects_a_bad_scenario_file_naming_file_and_key() {
    let dir = common::temp_dir("cli-run", "bad-scenario");
    std::fs::copy(scenarios_dir().join("models.toml"), dir.join("models.toml")).unwrap();
    let good =
        std::fs::read_to_string(scenarios_dir().join("01-short-sequence-low-stress.toml")).unwrap();
    let cases = [
        (
            "unknown key",
            good.replace("batch_size = 32", "batch_size = 32\nbatchsize = 4"),
            "batchsize",
        ),
        (
            "zero size",
            good.replace("batch_size = 32", "batch_size = 0"),
            "batch_size",
        ),
        (
            "negative size",
            good.replace("concurrency = 1", "concurrency = -2"),
            "concurrency",
        ),
        (
            "missing field",
            good.replace("generation_length = 128", ""),
            "generation_length",
        ),
    ];
    for (what, text, key) in cases {
        let path = dir.join("42-bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = pagekv(&["run", "--scenario", path.to_str().unwrap()]);
        eprintln!("{what}: {:?}", stderr_lines(&out));
        assert_input_error(&out, &["42-bad.toml", key]);
    }
    // A directory holding one bad file refuses the whole suite.
    let out = pagekv(&["run", "--scenarios-dir", dir.to_str().unwrap()]);
    assert_input_error(&out, &["42-bad.toml"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scenarios_lists_every_file_with_its_demand() {
    let out = pagekv(&["scenarios"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let text = stdout(&out);
    for name in [
        "01-short-sequence-low-stress.toml",
        "11-cache-exhaustion.toml",
    ] {
        assert!(text.contains(name), "{text}");
    }
    assert!(
        text.contains("13000.0"),
        "scenario 11's full-size demand %: {text}"
    );
}

#[test]
fn compare_refuses_unreadable_files() {
    let dir = common::temp_dir("cli-run", "compare-bad");
    let other = dir.join("other.json");
    std::fs::write(&other, "{\"format\": \"something-else\"}").unwrap();
    let missing = dir.join("missing.json");
    let out = pagekv(&[
        "compare",
        other.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_input_error(&out, &["other.json", "format"]);
    let out = pagekv(&[
        "compare",
        missing.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    assert_input_error(&out, &["missing.json"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A real `ci` run of two scenarios writes a results file that `compare` reads; files made at
/// different presets are refused unless `--force`.
#[test]
fn run_writes_results_and_compare_reads_them() {
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = common::temp_dir("cli-run", "run-compare");
    let a = dir.join("a.json");
    let alerts = dir.join("alerts.toml");
    std::fs::write(&alerts, "[hit_rate_pct]\nwarning = 10\n").unwrap();
    let text = pagekv_ok(&[
        "run",
        "--scale",
        "ci",
        "--only",
        "1,3",
        "--alerts",
        alerts.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
    ]);
    for needle in [
        "demand %",
        "peak use %",
        "PASS",
        "reference-implied bytes/token",
        "preset `ci`",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let results = pagekv::report::file::read(&a).unwrap();
    assert!(results.complete);
    assert_eq!(results.scenarios.len(), 2);
    assert_eq!(results.version, 2);
    assert_eq!(results.alert_rules.hit_rate_pct.warning, Some(10.0));
    assert_eq!(results.alert_rules.hit_rate_pct.critical, None);
    assert!(text.contains("rules from"), "{text}");
    // Scenario 3 overcommits its pool: KV use alerts fire, and the list says so.
    let s3 = results.scenario(3).unwrap().measured.as_ref().unwrap();
    assert!(!s3.series.samples.is_empty());
    assert!(
        s3.alerts
            .iter()
            .any(|e| e.fired && e.metric == pagekv::engine::alerts::Metric::KvUse),
        "{:?}",
        s3.alerts
    );
    assert!(text.contains("[03] step"), "{text}");

    // A version-1 file (no series, alerts or rules) is still read and compared.
    let v1 = dir.join("v1.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    value["version"] = 1.into();
    value.as_object_mut().unwrap().remove("alert_rules");
    value.as_object_mut().unwrap().remove("alert_rules_file");
    for s in value["scenarios"].as_array_mut().unwrap() {
        let m = s["measured"].as_object_mut().unwrap();
        for key in [
            "series",
            "alerts",
            "alerts_dropped",
            "throughput_baseline_tokens_per_s",
        ] {
            m.remove(key);
        }
    }
    std::fs::write(&v1, serde_json::to_string(&value).unwrap()).unwrap();
    let out = pagekv(&["compare", v1.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));

    let out = pagekv(&["compare", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(stdout(&out).contains("x1.00"), "{}", stdout(&out));

    let b = dir.join("b.json");
    let json = std::fs::read_to_string(&a).unwrap();
    std::fs::write(
        &b,
        json.replace("\"preset\": \"ci\"", "\"preset\": \"default\""),
    )
    .unwrap();
    let out = pagekv(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_input_error(&out, &["--force", "preset"]);
    let out = pagekv(&[
        "compare",
        "--force",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(stdout(&out).contains("warning (--force)"));

    // A bench report is another kind of file: refused beside a results file, in one sentence.
    let bench = dir.join("bench.json");
    let report = BenchReport {
        copy_bytes_per_s: 1e9,
        complete: true,
        matmul_flops: 1e9,
        ..BenchReport::new(AdapterReport::default(), Clock::WallClock, true)
    };
    std::fs::write(&bench, serde_json::to_string(&report).unwrap()).unwrap();
    let out = pagekv(&["compare", a.to_str().unwrap(), bench.to_str().unwrap()]);
    assert_input_error(&out, &["bench report", "same kind"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pool the device cannot hold is refused with the reason in the table and status 2, not a
/// crash (on a CPU adapter the host-memory guard refuses it; a GPU reports out-of-memory).
#[test]
fn run_refuses_a_pool_the_device_cannot_hold() {
    if !have_gpu(module_path!()) {
        return;
    }
    let out = pagekv(&["run", "--scale", "ci", "--only", "1", "--budget", "900000"]);
    let err = stderr_lines(&out);
    assert_eq!(out.status.code(), Some(2), "{err:?}");
    assert!(
        err.last()
            .unwrap()
            .contains("refused by this adapter's limits"),
        "{err:?}"
    );
    assert!(stdout(&out).contains("KV pool"), "{}", stdout(&out));
}

/// `whatif --claims-only` needs no GPU: every remedy claim with its full-size arithmetic.
#[test]
fn whatif_claims_come_from_the_real_geometry() {
    let out = pagekv(&["whatif", "--claims-only"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let text = stdout(&out);
    // Short needles: the table wraps its cells.
    for needle in [
        "INT8 quantization",
        "INT4 quantization",
        "range by 2x",
        "linear memory",
        "20-30%",
        "32K",
        "43.8% less",
        "does not hold",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
}

/// A small remedy sweep: one table per scenario with a row per remedy, one results file per
/// remedy, and `compare` on a pair of them (same preset and budget, so no `--force`).
#[test]
fn whatif_runs_every_remedy_and_compare_reads_any_pair() {
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = common::temp_dir("cli-run", "whatif");
    let text = pagekv_ok(&[
        "whatif",
        "--scale",
        "ci",
        "--only",
        "5",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    for needle in [
        "05 Maximum Context Window",
        "int8 + window 2048",
        "fp8-e4m3",
        "vs f16",
        "measured (scaled sweep)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let names = [
        "f16",
        "int8",
        "int4",
        "fp8-e4m3",
        "f16-window-2048",
        "int8-window-2048",
    ];
    let mut factors = Vec::new();
    for name in names {
        let path = dir.join(format!("whatif-{name}.json"));
        let results = pagekv::report::file::read(&path).unwrap();
        assert!(results.complete, "{name}");
        let s = results.scenario(5).unwrap();
        assert!(s.measured.as_ref().unwrap().is_correct(), "{name}");
        assert_eq!(s.scaled.sliding_window.is_some(), name.contains("window"));
        factors.push(s.scaled.factors);
    }
    assert!(factors.windows(2).all(|w| w[0] == w[1]), "{factors:?}");
    let out = pagekv(&[
        "compare",
        dir.join("whatif-f16.json").to_str().unwrap(),
        dir.join("whatif-int8-window-2048.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(stdout(&out).contains("int8"), "{}", stdout(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--time` fits each scenario's scale to the adapter: the results file says which scale each
/// scenario got and what it was predicted to take, and the predictions are near what the same
/// run measured (a ratio of two figures from one run, never a timed assertion).
#[test]
fn a_device_scaled_run_predicts_its_own_time() {
    if !have_gpu("a_device_scaled_run_predicts_its_own_time") {
        return;
    }
    let dir = common::temp_dir("cli-run", "auto");
    let out = dir.join("auto.json");
    let run = pagekv(&[
        "run",
        "--time",
        "20s",
        "--only",
        "2,8",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(0), "{:?}", stderr_lines(&run));
    let text = stdout(&run);
    assert!(text.contains("device-scaled run"), "{text}");
    assert!(text.contains("whole run:"), "{text}");
    let results: pagekv::report::ResultsFile =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(results.preset, "auto");
    assert_eq!(results.time_budget_s, Some(20.0));
    for s in &results.scenarios {
        let predicted = s
            .predicted_seconds
            .expect("every auto scenario has a prediction");
        let ratio = s.total_seconds / predicted;
        eprintln!(
            "scenario {}: {} predicted {predicted:.2} s, took {:.2} s",
            s.id, s.scaled.factors, s.total_seconds
        );
        assert!(
            (0.25..=4.0).contains(&ratio),
            "scenario {}: took {:.2} s against {predicted:.2} s predicted",
            s.id,
            s.total_seconds
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
