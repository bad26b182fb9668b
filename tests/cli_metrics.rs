//! `pagekv run --metrics-listen` and `--metrics-file`: the Prometheus endpoint scraped over
//! loopback while a `ci` run is in progress, its values checked against the results file at
//! the end, and the one-sentence refusals of a port in use and of a non-loopback address.

#![cfg(feature = "tool")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::cli::{have_gpu, pagekv, stderr_lines, stdout};

/// `GET /metrics` over a plain TCP connection; the body, or `None` if nothing answered.
fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// The value of the series `name{...scenario="NN"...}` in exposition `text`.
fn value(text: &str, name: &str, scenario: u32) -> Option<f64> {
    let tag = format!("scenario=\"{scenario:02}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&tag))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_are_served_during_a_run_and_match_the_results() {
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pagekv-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (results, file) = (dir.join("r.json"), dir.join("pagekv.prom"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagekv"))
        .args(["run", "--scale", "ci", "--metrics-listen", "127.0.0.1:0"])
        .args(["--metrics-file", file.to_str().unwrap()])
        .args(["--out", results.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run prints where it listens (the OS picks the port for :0).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("metrics: http://")
                .map(|a| a.trim_end_matches("/metrics").to_string())
        })
        .expect("the run names its metrics address");
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let started = Instant::now();
    let (mut mid_run, mut last) = (None, None);
    while started.elapsed() < Duration::from_secs(300) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        match scrape(&addr) {
            Some(text) if text.contains("pagekv_num_requests_running{") => {
                mid_run.get_or_insert_with(|| text.clone());
                last = Some(text);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    drain.join().unwrap();
    assert!(status.success(), "{status:?}");
    let mid_run = mid_run.expect("a scrape answered while the run lasted");
    for name in [
        "pagekv_kv_cache_usage_perc{",
        "pagekv_prefix_cache_queries_total{",
        "pagekv_prefix_cache_hits_total{",
        "pagekv_num_preemptions_total{",
        "pagekv_num_requests_waiting{",
        "pagekv_alerts{",
        "# TYPE pagekv_time_to_first_token_seconds histogram",
        "# TYPE pagekv_inter_token_latency_seconds histogram",
        "backend=\"",
        "adapter=\"",
        "model=\"",
    ] {
        assert!(mid_run.contains(name), "{name} missing from\n{mid_run}");
    }
    // After the run the endpoint is gone, and the textfile holds the final values.
    assert!(scrape(&addr).is_none(), "the server outlived the run");
    let text = std::fs::read_to_string(&file).unwrap();
    let results = pagekv::report::file::read(&results).unwrap();
    assert_eq!(results.scenarios.len(), 11);
    // The last scrape over loopback: every scenario finished by then shows its final counts
    // (the one in progress, the highest id, may not).
    let last = last.unwrap();
    let scraped: Vec<u32> = results
        .scenarios
        .iter()
        .map(|s| s.id)
        .filter(|&id| value(&last, "pagekv_prefix_cache_queries_total", id).is_some())
        .collect();
    assert!(scraped.len() >= 2, "the last scrape saw {scraped:?}");
    for &id in &scraped[..scraped.len() - 1] {
        let m = results.scenario(id).unwrap().measured.as_ref().unwrap();
        let got = |name: &str| value(&last, name, id).unwrap();
        assert_eq!(
            got("pagekv_prefix_cache_queries_total"),
            m.scheduler.prefix_lookup_tokens as f64,
            "scenario {id} over loopback"
        );
        assert_eq!(got("pagekv_num_preemptions_total"), m.preemptions as f64);
    }
    for s in &results.scenarios {
        let m = s.measured.as_ref().unwrap();
        let st = &m.scheduler;
        let id = s.id;
        let get = |name: &str| value(&text, name, id).unwrap_or_else(|| panic!("{name} {id}"));
        assert_eq!(
            get("pagekv_prefix_cache_queries_total"),
            st.prefix_lookup_tokens as f64
        );
        assert_eq!(
            get("pagekv_prefix_cache_hits_total"),
            st.prefix_hit_tokens as f64
        );
        assert_eq!(get("pagekv_num_preemptions_total"), m.preemptions as f64);
        assert_eq!(get("pagekv_num_requests_running"), 0.0, "scenario {id}");
        assert_eq!(
            get("pagekv_time_to_first_token_seconds_count"),
            m.completed as f64
        );
        let last = m.series.samples.last().unwrap();
        assert_eq!(get("pagekv_kv_cache_usage_perc"), last.kv_use_pct / 100.0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_port_in_use_and_a_remote_address_are_refused_in_one_sentence() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (args, needles) in [
        (
            vec![
                "run",
                "--scale",
                "ci",
                "--only",
                "1",
                "--metrics-listen",
                &addr,
            ],
            vec!["--metrics-listen", addr.as_str(), "cannot listen"],
        ),
        (
            vec!["run", "--metrics-listen", "0.0.0.0:9464"],
            vec!["--metrics-listen", "--metrics-allow-remote"],
        ),
        (
            vec!["run", "--metrics-listen", "localhost"],
            vec!["--metrics-listen 'localhost'"],
        ),
    ] {
        let out = pagekv(&args);
        let err = stderr_lines(&out);
        if needles.contains(&"cannot listen") && !have_gpu(module_path!()) {
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err:?}");
        let errors: Vec<_> = err.iter().filter(|l| l.starts_with("pagekv:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {err:?}");
        for n in needles {
            assert!(errors[0].contains(n), "{n} missing: {err:?}");
        }
        assert!(stdout(&out).is_empty(), "nothing may run");
    }
}
