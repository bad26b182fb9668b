//! The run's closing table: one row per scenario, the reference's number beside pagekv's, then
//! the notes that explain where they disagree and why the GB differ.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::status::disagreement;
use super::{ResultsFile, ScenarioResult};
use crate::gpu::human_bytes;
use crate::scenario::BYTES_PER_GB;

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.1}"))
}

fn pair(reference: String, measured: String) -> String {
    format!("{reference} | {measured}")
}

fn short_rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else if r >= 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    }
}

/// The header lines: adapter, preset, timing, configuration.
pub fn header(results: &ResultsFile) -> String {
    let a = &results.adapter;
    let timing = results
        .scenarios
        .iter()
        .find_map(|s| s.measured.as_ref())
        .map_or("-", |m| match m.timing {
            crate::engine::TimingSource::GpuTimestamps => {
                "wall clock per step (fence-waited); per-kernel GPU time from timestamp queries"
            }
            crate::engine::TimingSource::WallClock => {
                "wall clock per step (fence-waited); no timestamp queries on this adapter"
            }
        });
    let c = &results.config;
    let budgets = full_budgets_gib(results);
    let budget = match budgets.as_slice() {
        _ if results.budget_probe.is_some() => {
            format!("a {} full-size budget", budget_text(results))
        }
        [one] => format!("a {one} GiB full-size budget"),
        [] => format!("a {:.0} GiB full-size budget", results.full_budget_gb),
        many => format!("each scenario's full-size budget ({} GiB)", many.join(", ")),
    };
    format!(
        "adapter: {}\n\
         scale: preset `{}` of {budget}; tokens, requests and layers are \
         divided per scenario as the `scale` column shows, and the budget by the same product\n\
         engine: {} tokens per step, {} running at most, preemption by {}, all requests \
         arrive at t=0\n\
         timing: {timing}\n\
         columns: reference | pagekv; the reference's utilization is its demand; req/s \"x1\" \
         is scenario 1 of the same source",
        a.identity(),
        results.preset,
        c.max_step_tokens,
        c.max_running,
        c.preemption.name(),
    )
}

/// The distinct full-size budgets the scenarios ran with, in whole GiB, recovered from each
/// scaled budget (scaling divides it by layers, tokens and requests, flooring below a byte), so
/// a set mixing cards (the production configuration D is sized for 40 GiB) says so.
fn full_budgets_gib(results: &ResultsFile) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &results.scenarios {
        let f = s.scaled.factors;
        let full =
            s.scaled.budget_bytes as f64 * f.layers.1 as f64 * f.tokens as f64 * f.requests as f64
                / f.layers.0.max(1) as f64;
        let gib = format!("{:.0}", full / BYTES_PER_GB as f64);
        if !out.contains(&gib) {
            out.push(gib);
        }
    }
    out
}

/// The budget as the header states it: `24 GiB`, or the probed figure and what it measured.
fn budget_text(results: &ResultsFile) -> String {
    match &results.budget_probe {
        None => format!("{:.0} GiB", results.full_budget_gb),
        Some(p) => format!(
            "{:.2} GiB (probed on this adapter: {} usable{})",
            results.full_budget_gb,
            human_bytes(p.usable_bytes),
            if p.host_memory { ", host memory" } else { "" }
        ),
    }
}

/// The one table: reference beside measured for every scenario.
pub fn scenario_table(results: &ResultsFile) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "#",
            "scenario",
            "scale",
            "demand %",
            "peak use %",
            "hit rate %",
            "evictions %",
            "preempt",
            "req/s",
            "req/s vs #1",
            "status",
        ]);
    let reference_base = results
        .scenario(1)
        .map(|s| s.scenario.reference.throughput_req_s);
    let measured_base = results.baseline_requests_per_s();
    for s in &results.scenarios {
        let r = &s.scenario.reference;
        let m = s.measured.as_ref();
        let f = s.scaled.factors;
        let mut scale = format!(
            "t/{} r/{} l{}/{}",
            f.tokens, f.requests, f.layers.0, f.layers.1
        );
        if let Some(w) = s.scaled.sliding_window {
            scale.push_str(&format!(" w{w}"));
        }
        let hit = m.map_or("-".into(), |m| {
            format!(
                "{} (of {})",
                pct(m.hit_rate_pct),
                pct(m.possible_hit_rate_pct)
            )
        });
        let rel = |x: f64, base: Option<f64>| base.map_or("-".into(), |b| format!("x{:.2}", x / b));
        let row = vec![
            Cell::new(format!("{:02}", s.id)),
            Cell::new(&s.scenario.name),
            Cell::new(scale),
            Cell::new(pair(
                format!("{:.1}", r.utilization_pct),
                format!("{:.1}", s.scaled.demand_pct()),
            )),
            Cell::new(pair(
                "-".into(),
                m.map_or("-".into(), |m| format!("{:.1}", m.peak_use_pct)),
            )),
            Cell::new(pair(format!("{:.1}", r.hit_rate_pct), hit)),
            Cell::new(pair(
                format!("{:.0}", r.evictions_pct),
                pct(m.and_then(|m| m.evictions_pct)),
            )),
            Cell::new(m.map_or("-".into(), |m| m.preemptions.to_string())),
            Cell::new(pair(
                short_rate(r.throughput_req_s),
                m.map_or("-".into(), |m| short_rate(m.requests_per_s)),
            )),
            Cell::new(pair(
                rel(r.throughput_req_s, reference_base),
                m.map_or("-".into(), |m| rel(m.requests_per_s, measured_base)),
            )),
            Cell::new(pair(
                format!("{:?}", r.status).to_uppercase(),
                s.verdict.to_string(),
            )),
        ];
        table.add_row(row);
    }
    for i in [0, 3, 4, 5, 6, 7, 8, 9] {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Footnotes: where the verdicts disagree (or why a run failed) and which metrics are out of
/// the safe range.
pub fn notes(results: &ResultsFile) -> Vec<String> {
    let mut out = Vec::new();
    for s in &results.scenarios {
        if let Some(note) = window_note(s) {
            out.push(format!("[{:02}] {note}", s.id));
        }
        let why = disagreement(
            &s.scenario.reference,
            s.verdict,
            &s.verdict_reasons,
            s.measured.as_ref(),
        );
        if let Some(why) = why {
            out.push(format!("[{:02}] {why}", s.id));
        }
        if !s.verdict_reasons.is_empty() && s.verdict.passed() {
            out.push(format!(
                "[{:02}] pagekv rates it {}: {}",
                s.id,
                s.verdict,
                s.verdict_reasons.join(", ")
            ));
        } else if !s.verdict.passed() && s.verdict_reasons.len() > 1 {
            out.push(format!(
                "[{:02}] also: {}",
                s.id,
                s.verdict_reasons[1..].join("; ")
            ));
        }
    }
    out
}

/// What a sliding window becomes at this scale: blocks do not scale, so a window of few
/// scaled tokens holds proportionally more empty slots than the full-size one would.
fn window_note(s: &ScenarioResult) -> Option<String> {
    let full = s.scenario.cache.sliding_window?;
    let scaled = s.scaled.sliding_window?;
    let bs = s.scaled.layout.block_size;
    let blocks = |w: u32| w.div_ceil(bs) + 1;
    Some(format!(
        "sliding window {full} (scaled: {scaled} tokens): a request holds at most {} blocks \
         ({} slots, {:.2}x the window) here, {} blocks ({:.2}x) at full size",
        blocks(scaled),
        blocks(scaled) * bs,
        (blocks(scaled) * bs) as f64 / scaled as f64,
        blocks(full),
        (blocks(full) * bs) as f64 / full as f64,
    ))
}

/// A scenario's real KV bytes per token (all layers, K and V, scales included) and the
/// bytes per token the reference's KV Peak implies (KV Peak / (requests x sequence length)).
pub fn bytes_per_token_audit(s: &ScenarioResult) -> (u64, f64) {
    let sc = &s.scenario;
    let geometry = &s.scaled.layout.geometry;
    let full_layers = s.scaled.factors.layers.1;
    let real = 2
        * full_layers as u64
        * geometry.kv_heads as u64
        * s.scaled.layout.dtype.row_bytes(geometry.head_dim);
    let tokens = sc.requests() as f64 * sc.sequence_length as f64;
    (real, sc.reference.kv_peak_gb * BYTES_PER_GB as f64 / tokens)
}

/// Bytes per token of each scenario's real geometry beside what the reference's KV Peak
/// implies (KV Peak / (requests x sequence length)): why the GB differ.
pub fn bytes_per_token_table(results: &ResultsFile) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "#",
            "model (KV dtype)",
            "real bytes/token",
            "reference-implied bytes/token",
            "real / implied",
        ]);
    for s in &results.scenarios {
        let sc = &s.scenario;
        let (real, implied) = bytes_per_token_audit(s);
        table.add_row(vec![
            Cell::new(format!("{:02}", s.id)),
            Cell::new(format!("{} ({})", sc.model, s.scaled.layout.dtype.name())),
            Cell::new(format!("{real} ({})", human_bytes(real))),
            Cell::new(format!(
                "{implied:.0} ({})",
                human_bytes(implied.round() as u64)
            )),
            Cell::new(format!("{:.2}", real as f64 / implied)),
        ]);
    }
    table
}

/// Wall time per scenario, for the closing line.
pub fn timing_summary(results: &ResultsFile) -> String {
    let measured: f64 = results
        .scenarios
        .iter()
        .filter_map(|s| s.measured.as_ref())
        .map(|m| m.wall_seconds)
        .fold(0.0, |a, b| a + b);
    let total = results
        .scenarios
        .iter()
        .map(|s| s.total_seconds)
        .fold(0.0, |a, b| a + b);
    format!(
        "{} scenarios: {measured:.1} s measured, {total:.1} s including pipeline creation, \
         warm-up and spot checks{}",
        results.scenarios.len(),
        if results.complete {
            ""
        } else {
            " (INCOMPLETE run)"
        }
    )
}

/// Spot-check and latency summary per scenario (the detail behind PASS).
pub fn detail_table(results: &ResultsFile) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "#",
            "requests",
            "prompt+gen",
            "prompt tok/s",
            "gen tok/s",
            "TTFT p50/p99 ms",
            "TPOT p50/p99 ms",
            "waste % paged | contig. final | contig. max ctx",
            "GPU ms gen/app/pre/dec",
            "checks (preempted), max err",
        ]);
    for s in &results.scenarios {
        let Some(m) = &s.measured else {
            table.add_row(vec![
                Cell::new(format!("{:02}", s.id)),
                Cell::new(s.error.clone().unwrap_or_default()),
            ]);
            continue;
        };
        let ms = |p: Option<crate::engine::Percentiles>| {
            p.map_or("-".into(), |p| {
                format!("{:.0} / {:.0}", p.p50 * 1e3, p.p99 * 1e3)
            })
        };
        let gpu = |k: &str| {
            m.gpu_seconds
                .get(k)
                .map_or("-".into(), |s| format!("{:.0}", s * 1e3))
        };
        table.add_row(vec![
            Cell::new(format!("{:02}", s.id)),
            Cell::new(m.requests),
            Cell::new(format!(
                "{}+{}",
                s.scaled.prompt_tokens, s.scaled.generation_tokens
            )),
            Cell::new(format!("{:.0}", m.prompt_tokens_per_s)),
            Cell::new(format!("{:.0}", m.generated_tokens_per_s)),
            Cell::new(ms(m.ttft)),
            Cell::new(ms(m.tpot)),
            Cell::new(format!(
                "{:.1} | {:.1} | {:.1}",
                m.fragmentation_pct,
                100.0 * m.scheduler.mean_contiguous_waste_fraction,
                100.0 * m.scheduler.mean_max_context_waste_fraction
            )),
            Cell::new(format!(
                "{}/{}/{}/{}",
                gpu("generate"),
                gpu("append"),
                gpu("prefill"),
                gpu("decode")
            )),
            Cell::new(format!(
                "{} ({}), {:.1e}",
                m.spot_checks.len(),
                m.preempted_checks(),
                m.max_check_error()
            )),
        ]);
    }
    table
}

/// Alert events printed per scenario under the table (the results file has all of them).
const ALERTS_SHOWN: usize = 6;

/// The alert list: the rules in one line, then each scenario's firings and clearings.
pub fn alert_list(results: &ResultsFile) -> Vec<String> {
    let r = &results.alert_rules;
    let t = |t: &crate::engine::alerts::Thresholds| {
        [t.caution, t.warning, t.critical]
            .iter()
            .flatten()
            .map(|v| format!("{v}"))
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut out = vec![format!(
        "Alerts ({}: KV use {}%, hit rate below {}%, evictions {}%, throughput {}% below the \
         scenario's own second window of {} steps; an alert never fails a run)",
        results
            .alert_rules_file
            .as_deref()
            .map_or("the report's thresholds".to_string(), |f| format!(
                "rules from {f}"
            )),
        t(&r.kv_use_pct),
        t(&r.hit_rate_pct),
        t(&r.evictions_pct),
        t(&r.throughput_drop_pct),
        r.throughput_window_steps
    )];
    for s in &results.scenarios {
        let Some(m) = &s.measured else { continue };
        if m.alerts.is_empty() {
            out.push(format!("[{:02}] none", s.id));
            continue;
        }
        for e in m.alerts.iter().take(ALERTS_SHOWN) {
            out.push(format!("[{:02}] {e}", s.id));
        }
        let more = (m.alerts.len().saturating_sub(ALERTS_SHOWN)) as u64 + m.alerts_dropped;
        if more > 0 {
            out.push(format!(
                "[{:02}] ... and {more} more in the results file",
                s.id
            ));
        }
    }
    out
}

/// Everything `pagekv run` prints after its progress display.
pub fn render(results: &ResultsFile) -> String {
    let mut out = String::new();
    out.push_str(&header(results));
    out.push_str("\n\n");
    out.push_str(&scenario_table(results).to_string());
    out.push('\n');
    for note in notes(results) {
        out.push_str(&note);
        out.push('\n');
    }
    out.push('\n');
    for line in alert_list(results) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("\nKV bytes per token: the real geometry against the reference's figures\n");
    out.push_str(&bytes_per_token_table(results).to_string());
    out.push_str("\n\nDetail (measured at this scale)\n");
    out.push_str(&detail_table(results).to_string());
    out.push('\n');
    out.push_str(&timing_summary(results));
    out.push('\n');
    out
}

/// The scenario's short one-line summary for progress output.
pub fn one_line(s: &ScenarioResult) -> String {
    match &s.measured {
        Some(m) => format!(
            "{:02} {}: {} in {:.1} s, {} requests, {:.2} req/s, peak use {:.0}%, {} preemptions",
            s.id,
            s.scenario.name,
            s.verdict,
            m.wall_seconds,
            m.requests,
            m.requests_per_s,
            m.peak_use_pct,
            m.preemptions
        ),
        None => format!(
            "{:02} {}: FAIL ({})",
            s.id,
            s.scenario.name,
            s.error.as_deref().unwrap_or("stopped")
        ),
    }
}
