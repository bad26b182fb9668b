//! The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)
//! charting a run's results, or two runs overlaid, or a bench report's decode bandwidth
//! against context. Every chart sits in a `<figure data-points="N">` stating how many data
//! points it drew.

use std::fmt::Write as _;

use super::charts::{Chart, Line, Rule, bar_chart, line_chart, log_x_line_chart};
use super::table::bytes_per_token_audit;
use super::{ResultsFile, ScenarioResult};
use crate::bench::long_context::FLATNESS_TARGET;
use crate::bench::machine_check::{doubt_legend, is_doubted};
use crate::bench::{BenchReport, Section, Unit};

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px;margin:18px 0 4px}\
p.meta{color:#555;font-size:13px;margin:2px 0}figure{display:inline-block;margin:4px}\
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}";

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn figure(out: &mut String, chart: &Chart) {
    let _ = write!(
        out,
        "<figure data-points=\"{}\">{}</figure>",
        chart.points, chart.svg
    );
}

pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

fn describe(label: &str, r: &ResultsFile) -> String {
    format!(
        "<p class=\"meta\"><b>{}</b>: {}, preset <code>{}</code>, {:.0} GiB \
         full-size budget, pagekv {}, {} scenarios{}</p>",
        escape(label),
        escape(&r.adapter.identity()),
        escape(&r.preset),
        r.full_budget_gb,
        escape(&r.pagekv_version),
        r.scenarios.len(),
        if r.complete { "" } else { " (INCOMPLETE run)" }
    )
}

/// The report of one results file, or of several overlaid (`runs`: label and file each; the
/// first sets the scenarios shown and the alert thresholds drawn).
pub fn results_html(runs: &[(String, &ResultsFile)]) -> String {
    let mut body = String::new();
    let title = match runs {
        [_] => "pagekv run".to_string(),
        _ => "pagekv comparison".to_string(),
    };
    let _ = write!(body, "<h1>{}</h1>", escape(&title));
    for (label, r) in runs {
        body.push_str(&describe(label, r));
    }
    body.push_str(
        "<p class=\"meta\">Reference: the CUDA KV cache stress report's numbers for each \
         scenario. Times are wall clock over fence-waited engine steps.</p>",
    );
    let Some((_, first)) = runs.first() else {
        return page(&title, &body);
    };
    body.push_str("<h2>Reference beside measured, across the scenarios</h2>");
    across(&mut body, runs, first);
    body.push_str("<h2>Each scenario over time</h2>");
    for s in &first.scenarios {
        over_time(&mut body, runs, first, s);
    }
    body.push_str("<h2>Bytes per token: the real geometry against the reference's figures</h2>");
    audit(&mut body, first);
    page(&title, &body)
}

fn across(body: &mut String, runs: &[(String, &ResultsFile)], first: &ResultsFile) {
    let ids: Vec<u32> = first.scenarios.iter().map(|s| s.id).collect();
    let categories: Vec<String> = ids.iter().map(|id| format!("{id:02}")).collect();
    type Pick = fn(&ScenarioResult) -> Option<f64>;
    let reference_base = first
        .scenario(1)
        .map(|s| s.scenario.reference.throughput_req_s);
    let charts: [(&str, &str, Pick, Pick, bool); 3] = [
        (
            "Demand (the reference's utilization)",
            "% of budget (log)",
            |s| Some(s.scenario.reference.utilization_pct),
            |s| Some(s.scaled.demand_pct()),
            true,
        ),
        (
            "Prefix-cache hit rate",
            "%",
            |s| Some(s.scenario.reference.hit_rate_pct),
            |s| s.measured.as_ref().and_then(|m| m.hit_rate_pct),
            false,
        ),
        (
            "Evictions",
            "% of blocks allocated",
            |s| Some(s.scenario.reference.evictions_pct),
            |s| s.measured.as_ref().and_then(|m| m.evictions_pct),
            false,
        ),
    ];
    for (title, y, reference, measured, log) in charts {
        let mut series = vec![(
            "reference".to_string(),
            ids.iter()
                .map(|&id| first.scenario(id).and_then(reference))
                .collect(),
        )];
        for (label, r) in runs {
            series.push((
                label.clone(),
                ids.iter()
                    .map(|&id| r.scenario(id).and_then(measured))
                    .collect(),
            ));
        }
        figure(
            body,
            &bar_chart(title, y, &categories, &series, log, (660, 300)),
        );
    }
    // Throughput relative to scenario 1 of the same source: the reference's formula against
    // each run's measurement.
    let mut series = vec![(
        "reference".to_string(),
        ids.iter()
            .map(|&id| {
                let r = first.scenario(id)?.scenario.reference.throughput_req_s;
                reference_base.map(|b| r / b)
            })
            .collect(),
    )];
    for (label, r) in runs {
        let base = r.baseline_requests_per_s();
        series.push((
            label.clone(),
            ids.iter()
                .map(|&id| {
                    let m = r.scenario(id)?.measured.as_ref()?;
                    base.map(|b| m.requests_per_s / b)
                })
                .collect(),
        ));
    }
    figure(
        body,
        &bar_chart(
            "Throughput relative to scenario 1",
            "x scenario 1 (req/s)",
            &categories,
            &series,
            false,
            (660, 300),
        ),
    );
}

fn over_time(
    body: &mut String,
    runs: &[(String, &ResultsFile)],
    first: &ResultsFile,
    s: &ScenarioResult,
) {
    let _ = write!(body, "<h3>{:02} {}</h3>", s.id, escape(&s.scenario.name));
    let series: Vec<(&String, &ScenarioResult)> = runs
        .iter()
        .filter_map(|(label, r)| r.scenario(s.id).map(|s| (label, s)))
        .filter(|(_, s)| {
            s.measured
                .as_ref()
                .is_some_and(|m| !m.series.samples.is_empty())
        })
        .collect();
    if series.is_empty() {
        body.push_str(
            "<p class=\"meta\">No time series (a version-1 results file, or the scenario \
             stopped before its first step).</p>",
        );
        return;
    }
    let line = |label: String, s: &ScenarioResult, y: fn(&crate::engine::series::Sample) -> f64| {
        let samples = s
            .measured
            .as_ref()
            .map_or(&[][..], |m| &m.series.samples[..]);
        Line {
            label,
            points: samples.iter().map(|p| (p.seconds, y(p))).collect(),
        }
    };
    let many = runs.len() > 1;
    let name = |label: &String, what: &str| {
        if many {
            format!("{label} {what}")
        } else {
            what.to_string()
        }
    };
    let t = &first.alert_rules.kv_use_pct;
    let rules: Vec<Rule> = [
        ("caution", t.caution),
        ("warning", t.warning),
        ("critical", t.critical),
    ]
    .into_iter()
    .filter_map(|(level, y)| {
        y.map(|y| Rule {
            label: format!("{level} {y}%"),
            y,
        })
    })
    .collect();
    let kv: Vec<Line> = series
        .iter()
        .map(|(label, s)| line(name(label, "KV use"), s, |p| p.kv_use_pct))
        .collect();
    figure(
        body,
        &line_chart(
            "KV use",
            "seconds",
            "% of budget",
            &kv,
            &rules,
            Some(105.0),
            (440, 260),
        ),
    );
    let mut queue = Vec::new();
    for (label, s) in &series {
        queue.push(line(name(label, "running"), s, |p| p.running as f64));
        queue.push(line(name(label, "waiting"), s, |p| p.waiting as f64));
    }
    figure(
        body,
        &line_chart(
            "Requests",
            "seconds",
            "requests",
            &queue,
            &[],
            None,
            (440, 260),
        ),
    );
    let preempt: Vec<Line> = series
        .iter()
        .map(|(label, s)| line(name(label, "preemptions"), s, |p| p.preemptions as f64))
        .collect();
    figure(
        body,
        &line_chart(
            "Preemptions (cumulative)",
            "seconds",
            "preemptions",
            &preempt,
            &[],
            None,
            (440, 260),
        ),
    );
}

fn audit(body: &mut String, r: &ResultsFile) {
    body.push_str(
        "<table><tr><th>#</th><th>model (KV dtype)</th><th>real bytes/token</th>\
         <th>reference-implied bytes/token</th><th>real / implied</th></tr>",
    );
    for s in &r.scenarios {
        let (real, implied) = bytes_per_token_audit(s);
        let _ = write!(
            body,
            "<tr><td>{:02}</td><td>{} ({})</td><td>{real}</td><td>{implied:.0}</td>\
             <td>{:.2}</td></tr>",
            s.id,
            escape(&s.scenario.model),
            s.scaled.layout.dtype.name(),
            real as f64 / implied
        );
    }
    body.push_str("</table>");
}

/// A bench case parsed from its name, e.g. `qwen2.5-7b f16 batch 8 ctx 4096`.
struct Case {
    model: String,
    format: String,
    batch: u32,
    ctx: u32,
}

fn parse_case(case: &str) -> Option<Case> {
    let words: Vec<&str> = case.split_whitespace().collect();
    let at = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1)?.parse().ok())
    };
    Some(Case {
        model: words.first()?.to_string(),
        format: words.get(1)?.to_string(),
        batch: at("batch")?,
        ctx: at("ctx")?,
    })
}

/// The report of one bench run or several overlaid: decode GB/s against context, one chart
/// per model, a line per (run, format, batch).
pub fn bench_html(runs: &[(String, &BenchReport)]) -> String {
    let mut body = String::from("<h1>pagekv bench: decode bandwidth against context</h1>");
    for (label, r) in runs {
        let _ = write!(
            body,
            "<p class=\"meta\"><b>{}</b>: {}, copy roofline {:.2} GB/s{}</p>",
            escape(label),
            escape(&r.adapter.identity()),
            r.copy_bytes_per_s / 1e9,
            if r.quick { ", --quick" } else { "" }
        );
    }
    let mut models: Vec<String> = Vec::new();
    for (_, r) in runs {
        for f in r
            .figures
            .iter()
            .filter(|f| matches!(f.section, Section::Decode | Section::Formats))
        {
            if let Some(c) = parse_case(&f.case)
                && !models.contains(&c.model)
            {
                models.push(c.model);
            }
        }
    }
    for model in &models {
        let mut lines: Vec<Line> = Vec::new();
        for (label, r) in runs {
            let mut keyed: Vec<((String, u32), (f64, f64))> = Vec::new();
            for f in &r.figures {
                let (Some(c), Some(v)) = (parse_case(&f.case), f.value) else {
                    continue;
                };
                let decode = matches!(f.section, Section::Decode | Section::Formats);
                if decode && f.unit == Unit::Gigabytes && &c.model == model {
                    keyed.push(((c.format, c.batch), (c.ctx as f64, v)));
                }
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.0.total_cmp(&b.1.0)));
            keyed.dedup_by(|a, b| a.0 == b.0 && a.1.0 == b.1.0);
            let mut current: Option<(String, u32)> = None;
            for (key, point) in keyed {
                if current.as_ref() != Some(&key) {
                    let prefix = if runs.len() > 1 {
                        format!("{label} ")
                    } else {
                        String::new()
                    };
                    lines.push(Line {
                        label: format!("{prefix}{} batch {}", key.0, key.1),
                        points: Vec::new(),
                    });
                    current = Some(key);
                }
                if let Some(line) = lines.last_mut() {
                    line.points.push(point);
                }
            }
        }
        let chart = line_chart(
            &format!("{model}: decode GB/s"),
            "context (tokens)",
            "GB/s",
            &lines,
            &[],
            None,
            (660, 320),
        );
        figure(&mut body, &chart);
    }
    let long = long_context_charts(runs, &mut body);
    if models.is_empty() && !long {
        body.push_str("<p class=\"meta\">No decode figures in this report.</p>");
    }
    page("pagekv bench", &body)
}

/// `--long-context` curves: ns per KV position per layer against context (log x), one chart
/// per model, a line per (run, format, batch). False when no run has curves.
fn long_context_charts(runs: &[(String, &BenchReport)], body: &mut String) -> bool {
    let mut models: Vec<&str> = Vec::new();
    for (_, r) in runs {
        for c in r.long_context.iter().flat_map(|l| &l.curves) {
            if !models.contains(&c.model.as_str()) {
                models.push(&c.model);
            }
        }
    }
    if models.is_empty() {
        return false;
    }
    body.push_str("<h2>Long context: decode time per KV position per layer</h2>");
    let (mut any_ringed, mut any_flatness) = (false, false);
    for model in models {
        let mut lines = Vec::new();
        let mut ringed = Vec::new();
        for (label, r) in runs {
            for c in r.long_context.iter().flat_map(|l| &l.curves) {
                if c.model != model {
                    continue;
                }
                let prefix = if runs.len() > 1 {
                    format!("{label} ")
                } else {
                    String::new()
                };
                ringed.extend(
                    c.points
                        .iter()
                        .filter(|p| is_doubted(p.spread, p.machine_speed))
                        .map(|p| (p.context as f64, p.ns_per_position)),
                );
                // The flatness, where the curve reaches past 4K, ends the label.
                let flatness = c.flatness().map_or(String::new(), |f| format!(", {f:.2}x"));
                any_flatness |= !flatness.is_empty();
                lines.push(Line {
                    label: format!("{prefix}{} batch {}{flatness}", c.format.name(), c.batch),
                    points: c
                        .points
                        .iter()
                        .map(|p| (p.context as f64, p.ns_per_position))
                        .collect(),
                });
            }
        }
        let chart = log_x_line_chart(
            &format!("{model}: ns per position per layer"),
            "context (tokens, log scale)",
            "ns",
            &lines,
            &ringed,
            (660, 320),
        );
        figure(body, &chart);
        any_ringed |= !ringed.is_empty();
    }
    if any_flatness {
        body.push_str(&format!(
            "<p>A label ending in a ratio gives that curve's flatness: ns per position at the longest context over 4K, from those two points timed again in rounds where the run did so (target {FLATNESS_TARGET}x).</p>"
        ));
    }
    if any_ringed {
        body.push_str(&format!(
            "<p>A ring marks a point the bench's table marks ~ or *: {}.</p>",
            escape(&doubt_legend())
        ));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_cases_parse_from_their_names() {
        let c = parse_case("qwen2.5-7b int8 batch 8 ctx 4096").unwrap();
        assert_eq!(
            (c.model.as_str(), c.format.as_str(), c.batch, c.ctx),
            ("qwen2.5-7b", "int8", 8, 4096)
        );
        assert!(parse_case("copy 256 MiB").is_none());
    }

    #[test]
    fn long_context_curves_are_charted_against_a_log_context_axis() {
        let report = crate::bench::sample_report();
        let page = bench_html(&[("a".into(), &report)]);
        assert!(page.contains("Long context: decode time per KV position per layer"));
        assert!(page.contains("qwen2.5-7b: ns per position per layer"));
        assert!(page.contains("int4 batch 8"));
        // The sample's curve stops at 1K: no flatness, and nothing says there is one.
        assert!(!page.contains("label ending in a ratio"));
        let mut longer = report.clone();
        let curve = &mut longer.long_context.as_mut().unwrap().curves[0];
        for context in [4096, 16384] {
            curve.points.push(crate::bench::LongPoint {
                context,
                ..curve.points[0].clone()
            });
        }
        curve.flatness_pair = Some(crate::bench::FlatnessPair {
            seconds: [1e-3, 4.4e-3],
            spreads: [0.01, 0.01],
            machine_speed: Some(1.0),
        });
        let with_flatness = bench_html(&[("a".into(), &longer)]);
        assert!(
            with_flatness.contains("int4 batch 8, 1.10x"),
            "{with_flatness}"
        );
        assert!(with_flatness.contains("label ending in a ratio"));
        let mut plain = report.clone();
        plain.long_context = None;
        assert!(!bench_html(&[("a".into(), &plain)]).contains("Long context"));
        // A point its run doubted is ringed, and the page says what a ring means.
        assert!(
            !page.contains("A ring marks"),
            "the sample's point is steady"
        );
        let mut doubted = report.clone();
        let curve = &mut doubted.long_context.as_mut().unwrap().curves[0];
        curve.points[0].machine_speed = Some(0.5);
        let ringed = bench_html(&[("a".into(), &doubted)]);
        assert!(ringed.contains("A ring marks a point"), "{ringed}");
        assert_eq!(
            ringed.matches("<circle").count(),
            page.matches("<circle").count() + 1
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
