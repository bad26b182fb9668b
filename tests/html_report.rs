//! The HTML report: self-contained (no script, nothing fetched), every chart drawn with data
//! points, comparisons overlaid, bench reports charted; and, in a real headless Chromium, a
//! page that loads without console messages and a screenshot that is not blank.

#![cfg(feature = "tool")]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::cli::{have_gpu, pagekv, stderr_lines, stdout};

/// The `data-points` of every `<figure>` in `html`, each with its SVG.
fn figures(html: &str) -> Vec<(usize, &str)> {
    html.split("<figure data-points=\"")
        .skip(1)
        .map(|rest| {
            let (n, rest) = rest.split_once("\">").unwrap();
            let svg = &rest[..rest.find("</figure>").unwrap()];
            (n.parse().unwrap(), svg)
        })
        .collect()
}

/// Self-contained and every chart has data it drew.
fn assert_charts(html: &str, at_least: usize) {
    assert!(!html.contains("<script"), "no script");
    for link in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(link), "fetches {link}");
    }
    let figs = figures(html);
    assert!(figs.len() >= at_least, "{} charts", figs.len());
    for (points, svg) in figs {
        assert!(points > 0, "a chart without data");
        assert!(svg.starts_with("<svg"), "{svg:.80}");
        let marks = svg.matches("<polyline").count() + svg.matches("<rect").count();
        assert!(marks > 1, "a chart that draws nothing: {svg:.200}");
    }
}

/// A ci run of scenarios 1 and 3 with `--html`, its results file, and the report.
fn ci_run(dir: &Path) -> (PathBuf, PathBuf) {
    let (results, html) = (dir.join("run.json"), dir.join("run.html"));
    let out = pagekv(&[
        "run",
        "--scale",
        "ci",
        "--only",
        "1,3",
        "--quiet",
        "--out",
        results.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    (results, html)
}

#[test]
fn reports_chart_runs_comparisons_and_benches() {
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = common::temp_dir("html", "structure");
    let (results, html) = ci_run(&dir);
    let text = std::fs::read_to_string(&html).unwrap();
    // 4 across-scenario charts, then KV use, requests and preemptions per scenario.
    assert_charts(&text, 4 + 2 * 3);
    for needle in [
        "caution 70%",
        "critical 90%",
        "reference",
        "real / implied",
        "03 Large",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    // Two files overlaid: both labels in the legends.
    let other = dir.join("other.json");
    std::fs::copy(&results, &other).unwrap();
    let cmp = dir.join("cmp.html");
    let out = pagekv(&[
        "report",
        results.to_str().unwrap(),
        other.to_str().unwrap(),
        "--html",
        cmp.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let text = std::fs::read_to_string(&cmp).unwrap();
    assert_charts(&text, 10);
    assert!(text.contains("run KV use") && text.contains("other KV use"));
    // A bench report: decode GB/s against context, a line per format and batch.
    let bench = dir.join("bench.json");
    let out = pagekv(&[
        "bench",
        "--quick",
        "--only",
        "decode",
        "--json",
        bench.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let page = dir.join("bench.html");
    let out = pagekv(&[
        "report",
        bench.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let text = std::fs::read_to_string(&page).unwrap();
    assert_charts(&text, 2);
    assert!(text.contains("f16 batch 8"), "{text:.400}");
    // Mixed kinds and a bad destination are one sentence, exit 2.
    let out = pagekv(&[
        "report",
        results.to_str().unwrap(),
        bench.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_lines(&out)[0].contains("same kind"));
    let out = pagekv(&[
        "report",
        results.to_str().unwrap(),
        "--html",
        "/nonexistent-dir/r.html",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_lines(&out)[0].contains("--html"));
    assert!(stdout(&out).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sweep_charts_throughput_against_demand_and_peak_use_with_the_report_bands() {
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = common::temp_dir("html", "sweep");
    let (file, html) = (dir.join("sweep.json"), dir.join("sweep.html"));
    let out = pagekv(&[
        "sweep",
        "--scenario",
        "3",
        "--scale",
        "ci",
        "--demand",
        "40,90,250",
        "--quiet",
        "--out",
        file.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let direct = std::fs::read_to_string(&html).unwrap();
    // Throughput against demand and against peak use, and preemptions against demand.
    assert_charts(&direct, 3);
    let figs = figures(&direct);
    assert_eq!(figs.len(), 3);
    // Three measured points plus the bands' two step lines (10 + 2 vertices) each.
    assert_eq!(figs[0].0, 3 + 12, "{:?}", figs[0].0);
    assert_eq!(figs[2].0, 3);
    for needle in [
        "report: 100 / 95 / 85 / 60%",
        "report: 50% (above 80%)",
        "0-60%: 100%",
        "knee: more than 15% below baseline",
    ] {
        assert!(direct.contains(needle), "{needle}");
    }
    // `report` on the file writes the same page.
    let again = dir.join("again.html");
    let out = pagekv(&[
        "report",
        file.to_str().unwrap(),
        "--html",
        again.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), direct);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Headless Chromium from Debian's packages (installed by `.ci/run`); without it the test
/// fails unless PAGEKV_ALLOW_NO_BROWSER=1.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var("PAGEKV_ALLOW_NO_BROWSER").is_ok_and(|v| v == "1"),
            "headless Chromium is needed (apt-get install -y chromium), or set \
             PAGEKV_ALLOW_NO_BROWSER=1 to skip this test"
        );
        eprintln!("skipped: no Chromium (PAGEKV_ALLOW_NO_BROWSER=1)");
    }
    found
}

#[test]
fn chromium_loads_the_report_without_console_messages_and_draws_it() {
    let Some(browser) = chromium() else { return };
    if !have_gpu(module_path!()) {
        return;
    }
    let dir = common::temp_dir("html", "browser");
    let (_, html) = ci_run(&dir);
    let url = format!("file://{}", html.display());
    let common_flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let dom = Command::new(browser)
        .args(common_flags)
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        text.contains("<h1>pagekv run</h1>"),
        "the page did not load: {text:.300}"
    );
    assert_eq!(
        figures(&text).len(),
        10,
        "every chart is in the loaded page"
    );
    let log = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");

    let shot = dir.join("report.png");
    let out = Command::new(browser)
        .args(common_flags)
        .args([
            "--window-size=1400,1800",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let ink = pixels
        .iter()
        .filter(|p| p[..3].iter().any(|&c| c < 200))
        .count();
    let mut colours: Vec<[u8; 3]> = pixels.iter().map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!((info.width, info.height) == (1400, 1800), "{info:?}");
    assert!(
        ink * 50 > pixels.len(),
        "blank screenshot: {ink} inked of {}",
        pixels.len()
    );
    assert!(colours.len() > 20, "{} colours", colours.len());
    std::fs::remove_dir_all(&dir).unwrap();
}
