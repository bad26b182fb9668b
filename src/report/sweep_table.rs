//! The sweep's printed output: a header saying what ran and how it was measured, one table
//! row per point with the report's band beside it, and the knee lines under it.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::sweep::{ReportBand, baseline, knee_lines, knees, noise_spread, relative_pct};
use super::sweep_run::{SweepFile, SweepPoint};
use crate::gpu::human_bytes;

/// The header lines: scenario and its scaled work, adapter, timing, plan, baseline and how
/// the report's bands are looked up.
pub fn header(sweep: &SweepFile) -> String {
    let a = &sweep.adapter;
    let c = &sweep.config;
    let work = sweep.points.first().map_or(String::new(), |p| {
        let s = &p.result.scaled;
        format!(
            "{} requests of {}+{} tokens ({}), {} of scaled demand",
            s.requests(),
            s.prompt_tokens,
            s.generation_tokens,
            s.factors,
            human_bytes(sweep.demand_bytes)
        )
    });
    let name = sweep
        .points
        .first()
        .map_or(String::new(), |p| format!(" {}", p.result.scenario.name));
    let base = baseline(&sweep.curve());
    let base_point = sweep
        .points
        .iter()
        .find(|p| p.result.measured.is_some())
        .map_or("no point was measured".to_string(), |p| {
            format!(
                "the lowest-demand measured point ({:.1}% demand, {:.2} req/s)",
                p.demand_pct_planned,
                base.unwrap_or(0.0)
            )
        });
    format!(
        "sweep of scenario {:02}{name} at preset `{}` (scaled once for a {:.0} GiB budget): \
         {work}; every point runs the same requests and tokens, only the pool size changes\n\
         demand: {}\n\
         adapter: {}\n\
         engine: {} tokens per step, {} running at most, preemption by {}, all requests \
         arrive at t=0\n\
         timing: req/s, tokens/s and TTFT are wall clock over fence-waited engine steps, \
         each point run once (one run, not a mean: expect noise on a shared machine)\n\
         baseline (100%): {base_point}\n\
         report band: the CUDA reference report's throughput at that utilization, looked up by \
         measured peak use % (what the pool really held) and, beside it, by demand %",
        sweep.scenario_id,
        sweep.preset,
        sweep.full_budget_gb,
        sweep.plan.describe(),
        a.identity(),
        c.max_step_tokens,
        c.max_running,
        c.preemption.name(),
    )
}

fn status(p: &SweepPoint) -> String {
    if p.unservable.is_some() {
        return "unservable".into();
    }
    if p.result.refused {
        return "refused".into();
    }
    match &p.result.measured {
        Some(m) if m.is_correct() => "PASS".into(),
        Some(_) => "FAIL".into(),
        None => "error".into(),
    }
}

/// One row per point: demand %, peak use %, req/s, req/s as % of the baseline, generated
/// tokens/s, TTFT p99, preemptions, evictions %, hit rate %, the spot-check status, and the
/// report's band by peak use and by demand.
pub fn table(sweep: &SweepFile) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "demand %",
            "peak use %",
            "req/s",
            "vs baseline %",
            "gen tok/s",
            "TTFT p99 ms",
            "preempt",
            "evictions %",
            "hit rate %",
            "check",
            "report (by peak use)",
            "report (by demand)",
        ]);
    let base = baseline(&sweep.curve());
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
    for p in &sweep.points {
        let m = p.result.measured.as_ref();
        let dash = |f: &dyn Fn(&crate::engine::Measurement) -> String| m.map_or("-".into(), f);
        table.add_row(vec![
            Cell::new(format!("{:.1}", p.result.scaled.demand_pct())),
            Cell::new(dash(&|m| format!("{:.1}", m.peak_use_pct))),
            Cell::new(dash(&|m| format!("{:.2}", m.requests_per_s))),
            Cell::new(pct(relative_pct(&p.curve(), base))),
            Cell::new(dash(&|m| format!("{:.0}", m.generated_tokens_per_s))),
            Cell::new(dash(&|m| {
                m.ttft.map_or("-".into(), |t| format!("{:.0}", t.p99 * 1e3))
            })),
            Cell::new(dash(&|m| m.preemptions.to_string())),
            Cell::new(pct(m.and_then(|m| m.evictions_pct))),
            Cell::new(pct(m.and_then(|m| m.hit_rate_pct))),
            Cell::new(status(p)),
            Cell::new(dash(&|m| ReportBand::of(m.peak_use_pct).to_string())),
            Cell::new(ReportBand::of(p.demand_pct_planned).to_string()),
        ]);
    }
    for i in 0..9 {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The lines under the table: where the measured curve first falls past each of the
/// report's drops, and why any point was not measured.
pub fn notes(sweep: &SweepFile) -> Vec<String> {
    let curve = sweep.curve();
    let mut lines: Vec<String> = knee_lines(&knees(&curve))
        .into_iter()
        .map(|l| format!("knee: {l}"))
        .collect();
    lines.push(match noise_spread(&curve) {
        Some((low, high)) => format!(
            "noise spread: {low:.1}% to {high:.1}% of baseline among the points whose pool held \
             every request at once (demand <= 100%, no preemption), which run the same work at \
             the same concurrency; a drop inside it cannot be told from noise"
        ),
        None => "noise spread: fewer than two points held every request at once, so this \
                 sweep cannot say how noisy its req/s is"
            .into(),
    });
    for p in &sweep.points {
        if let Some(why) = &p.unservable {
            lines.push(format!(
                "{:.1}% demand: unservable, {why}",
                p.demand_pct_planned
            ));
        } else if let Some(e) = &p.result.error {
            lines.push(format!("{:.1}% demand: {e}", p.demand_pct_planned));
        } else if p.result.measured.as_ref().is_some_and(|m| !m.is_correct()) {
            lines.push(format!(
                "{:.1}% demand: FAIL: {}",
                p.demand_pct_planned,
                p.result.verdict_reasons.join("; ")
            ));
        }
    }
    lines
}
