//! `pagekv sweep` end to end: one-sentence errors with status 2 for bad demand ranges, points,
//! scenarios and destinations (before any work, so no GPU is needed), and a tiny sweep whose
//! file holds every point at its planned demand, with the pool's pressure showing above 100%.

#![cfg(feature = "tool")]

use std::process::Output;

mod common;

use common::cli::{assert_input_error, have_gpu, pagekv, stderr_lines, stdout};
use pagekv::report::file::{AnyFile, read_any};

fn sweep(demand: &str, extra: &[&str]) -> Output {
    let mut args = vec!["sweep", "--scenario", "3", "--demand", demand];
    args.extend_from_slice(extra);
    pagekv(&args)
}

#[test]
fn sweep_rejects_bad_ranges_and_flags_before_any_work() {
    assert_input_error(
        &sweep("400..20", &[]),
        &["--demand", "400..20", "start below"],
    );
    assert_input_error(&sweep("20..20", &[]), &["--demand", "start below"]);
    assert_input_error(&sweep("0..400", &[]), &["--demand", "positive"]);
    assert_input_error(&sweep("-20..400", &[]), &["--demand", "positive"]);
    assert_input_error(
        &sweep("20..lots", &[]),
        &["--demand", "'lots' is not a number"],
    );
    assert_input_error(&sweep("abc", &[]), &["--demand", "not a number"]);
    assert_input_error(&sweep("50", &[]), &["--demand", "one value"]);
    assert_input_error(&sweep("20,50,50", &[]), &["--demand", "twice"]);
    assert_input_error(&sweep("20..400", &["--points", "1"]), &["--points 1"]);
    assert_input_error(&sweep("20..400", &["--points", "0"]), &["--points 0"]);
    assert_input_error(&sweep("20..400", &["--points", "500"]), &["--points 500"]);
    assert_input_error(&sweep("20..400", &["--points", "-3"]), &["--points"]);
    assert_input_error(&sweep("20..400", &["--points", "x"]), &["--points"]);
    assert_input_error(&sweep("20,50", &["--points", "3"]), &["--points", "range"]);
    assert_input_error(&sweep("20..400", &["--spacing", "log"]), &["log"]);
    assert_input_error(
        &sweep("20..400", &["--scale", "huge"]),
        &["--scale", "huge"],
    );
    assert_input_error(
        &sweep("20..400", &["--kv-dtype", "int3"]),
        &["--kv-dtype", "int3"],
    );
    assert_input_error(
        &sweep("20..400", &["--out", "/nonexistent-dir/s.json"]),
        &["--out", "/nonexistent-dir"],
    );
    assert_input_error(
        &sweep("20..400", &["--html", "/nonexistent-dir/s.html"]),
        &["--html", "/nonexistent-dir"],
    );
    let out = pagekv(&["sweep", "--scenario", "99", "--demand", "20..400"]);
    assert_input_error(&out, &["--scenario 99", "no scenario 99"]);
    let out = pagekv(&["sweep", "--scenario", "nope.toml", "--demand", "20..400"]);
    assert_input_error(&out, &["--scenario 'nope.toml'", "neither"]);
    let out = pagekv(&["sweep", "--demand", "20..400"]);
    assert_input_error(&out, &["--scenario"]);
}

#[test]
fn a_tiny_sweep_records_every_point_at_its_demand() {
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = common::temp_dir("sweep", "tiny");
    let (file, html) = (dir.join("sweep.json"), dir.join("sweep.html"));
    let out = sweep(
        "50..300",
        &[
            "--points",
            "3",
            "--scale",
            "ci",
            "--quiet",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let text = stdout(&out);
    for needle in [
        "spaced geometrically",
        "vs baseline %",
        "report (by peak use)",
        "knee: more than 5% below baseline",
        "from 80% utilization",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    let AnyFile::Sweep(sweep) = read_any(&file).unwrap() else {
        panic!("not a sweep file")
    };
    assert!(sweep.complete);
    assert_eq!(sweep.scenario_id, 3);
    assert_eq!(sweep.points.len(), 3);
    let planned = [50.0, 50.0 * 6f64.sqrt(), 300.0];
    let first = &sweep.points[0].result.scaled;
    for (p, want) in sweep.points.iter().zip(planned) {
        assert!((p.demand_pct_planned - want).abs() < 1e-9 * want);
        let m = p.result.measured.as_ref().expect("measured");
        assert!(
            (m.demand_pct - want).abs() <= 0.01 * want,
            "{} vs {want}",
            m.demand_pct
        );
        assert!(m.is_correct(), "{:?}", m.problems);
        assert_eq!(m.completed, first.requests());
        assert_eq!(
            (
                p.result.scaled.requests(),
                p.result.scaled.tokens_per_request()
            ),
            (first.requests(), first.tokens_per_request()),
            "every point runs the same work"
        );
        let queued = m.series.samples.iter().any(|s| s.waiting > 0);
        if want > 100.0 {
            assert!(
                m.preemptions > 0 || queued,
                "{want}% demand without preemption or queueing"
            );
        } else {
            assert_eq!(m.preemptions, 0, "{want}% demand fits the pool");
        }
    }
    assert!(
        sweep.points[0].result.scaled.budget_bytes > sweep.points[2].result.scaled.budget_bytes
    );
    let out = pagekv(&[
        "report",
        file.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Throughput against peak use %"));
    // A sweep with another file, or compared, is one sentence.
    let out = pagekv(&[
        "report",
        file.to_str().unwrap(),
        file.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_input_error(&out, &["one demand sweep"]);
    let out = pagekv(&["compare", file.to_str().unwrap(), file.to_str().unwrap()]);
    assert_input_error(&out, &["demand sweep"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
