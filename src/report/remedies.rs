//! The reference report's remedies, measured: the same scenarios at the same scale, once per
//! remedy (f16 as the baseline, the quantized formats, a sliding window, int8 with a window),
//! each run written to its own results file so `compare` works on any pair, and one table per
//! scenario setting the remedies side by side.

use std::path::{Path, PathBuf};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::ResultsFile;
use super::file::ResultsFileError;
use super::suite::{SuiteObserver, SuiteOptions, run_suite};
use crate::cache::KvFormat;
use crate::gpu::GpuContext;
use crate::scenario::{LoadedScenario, Problem};

/// The scenarios the reference report diagnoses as failing, which its remedies are for.
pub const FAILING_SCENARIOS: [u32; 5] = [4, 5, 6, 8, 11];

/// The window the report recommends ("window_size=2048 for sequences >8K").
pub const REPORT_WINDOW: u32 = 2048;

/// One configuration a failing scenario is rerun with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remedy {
    /// KV storage format.
    pub format: KvFormat,
    /// Sliding window in full-size tokens, if any.
    pub window: Option<u32>,
}

impl Remedy {
    /// The report's remedies in the order the tables show them: f16 (the baseline, how
    /// these models are served), int8, int4, fp8-e4m3, a `window`-token sliding window, and
    /// int8 with that window.
    pub fn standard(window: u32) -> Vec<Remedy> {
        let plain = |format| Remedy {
            format,
            window: None,
        };
        vec![
            plain(KvFormat::F16),
            plain(KvFormat::Int8),
            plain(KvFormat::Int4),
            plain(KvFormat::Fp8E4M3),
            Remedy {
                format: KvFormat::F16,
                window: Some(window),
            },
            Remedy {
                format: KvFormat::Int8,
                window: Some(window),
            },
        ]
    }

    /// E.g. `int8 + window 2048`, as the tables print it.
    pub fn label(&self) -> String {
        match self.window {
            None => self.format.name().to_string(),
            Some(w) if self.format == KvFormat::F16 => format!("window {w}"),
            Some(w) => format!("{} + window {w}", self.format.name()),
        }
    }

    /// E.g. `int8-window-2048`: the results file's name stem.
    pub fn slug(&self) -> String {
        match self.window {
            None => self.format.name().to_string(),
            Some(w) => format!("{}-window-{w}", self.format.name()),
        }
    }

    /// `scenario` rerun with this remedy (refused if the window exceeds its model's context).
    pub fn apply(&self, scenario: &LoadedScenario) -> Result<LoadedScenario, Problem> {
        let mut s = scenario.clone();
        s.scenario.cache.kv_dtype = self.format;
        s.set_sliding_window(self.window)?;
        Ok(s)
    }
}

/// One remedy's run of every selected scenario.
#[derive(Clone, Debug)]
pub struct RemedyRun {
    /// What was changed.
    pub remedy: Remedy,
    /// Its results, as written to `path`.
    pub results: ResultsFile,
    /// Where they were written.
    pub path: PathBuf,
}

/// Why a remedy sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    /// A remedy cannot apply to a scenario (a window beyond its model's context).
    #[error("{remedy} cannot run scenario {id:02}: sliding_window {problem}")]
    Inapplicable {
        /// The remedy's label.
        remedy: String,
        /// The scenario.
        id: u32,
        /// What is wrong.
        problem: Problem,
    },
    /// A results file could not be written.
    #[error(transparent)]
    File(#[from] ResultsFileError),
}

/// Runs `scenarios` once per remedy with `options` (its `out` is ignored), writing each run
/// to `out_dir/whatif-<remedy>.json` as it goes. Every remedy is checked against every
/// scenario before anything runs. A scenario that fails inside a run is recorded, as in
/// [`run_suite`], and the sweep goes on.
pub fn run_remedies(
    ctx: &GpuContext,
    scenarios: &[LoadedScenario],
    remedies: &[Remedy],
    options: &SuiteOptions,
    out_dir: &Path,
    observer: &mut dyn FnMut(&Remedy) -> Box<dyn SuiteObserver>,
) -> Result<Vec<RemedyRun>, RemedyError> {
    let mut plans = Vec::new();
    for remedy in remedies {
        let applied = scenarios
            .iter()
            .map(|s| {
                remedy
                    .apply(s)
                    .map_err(|problem| RemedyError::Inapplicable {
                        remedy: remedy.label(),
                        id: s.id,
                        problem,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        plans.push((remedy, applied));
    }
    let mut runs = Vec::new();
    for (remedy, applied) in plans {
        let path = out_dir.join(format!("whatif-{}.json", remedy.slug()));
        let options = SuiteOptions {
            out: Some(path.clone()),
            ..options.clone()
        };
        let results = run_suite(ctx, &applied, &options, observer(remedy).as_mut())?;
        runs.push(RemedyRun {
            remedy: remedy.clone(),
            results,
            path,
        });
    }
    Ok(runs)
}

/// Scenario `id`'s row of every run, the baseline (first run) first.
fn rows(id: u32, runs: &[RemedyRun]) -> impl Iterator<Item = (&Remedy, &super::ScenarioResult)> {
    runs.iter()
        .filter_map(move |r| r.results.scenario(id).map(|s| (&r.remedy, s)))
}

/// One table for scenario `id`: a row per remedy with demand %, peak use, preemptions,
/// evictions, hit rate, TTFT p99, req/s relative to the first run (the baseline),
/// spot-check error and status.
pub fn scenario_table(id: u32, runs: &[RemedyRun]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "remedy",
            "demand %",
            "peak use %",
            "preempt",
            "evictions %",
            "hit rate %",
            "TTFT p99 ms",
            "req/s",
            "vs f16",
            "check err",
            "status",
        ]);
    let base = rows(id, runs)
        .next()
        .and_then(|(_, s)| s.measured.as_ref())
        .map(|m| m.requests_per_s);
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
    for (remedy, s) in rows(id, runs) {
        let m = s.measured.as_ref();
        let or_dash = |f: &dyn Fn(&crate::engine::Measurement) -> String| m.map_or("-".into(), f);
        table.add_row(vec![
            Cell::new(remedy.label()),
            Cell::new(format!("{:.1}", s.scaled.demand_pct())),
            Cell::new(or_dash(&|m| format!("{:.1}", m.peak_use_pct))),
            Cell::new(or_dash(&|m| m.preemptions.to_string())),
            Cell::new(pct(m.and_then(|m| m.evictions_pct))),
            Cell::new(pct(m.and_then(|m| m.hit_rate_pct))),
            Cell::new(or_dash(&|m| {
                m.ttft.map_or("-".into(), |p| format!("{:.0}", p.p99 * 1e3))
            })),
            Cell::new(or_dash(&|m| format!("{:.2}", m.requests_per_s))),
            Cell::new(or_dash(&|m| {
                base.map_or("-".into(), |b| format!("x{:.2}", m.requests_per_s / b))
            })),
            Cell::new(or_dash(&|m| format!("{:.1e}", m.max_check_error()))),
            Cell::new(s.verdict.to_string()),
        ]);
    }
    for i in 1..10 {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Fragmentation against contiguous allocation on the baseline run (the first): per
/// scenario, the paged pool's empty slots in allocated blocks (mean over steps), beside what
/// a contiguous cache would hold empty reserving each request's final length, or the
/// model's context (mean and peak over the same steps).
pub fn fragmentation_table(runs: &[RemedyRun]) -> Option<Table> {
    let base = runs.first()?;
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "#",
            "paged: mean | peak",
            "contiguous, final length: mean | peak",
            "contiguous, model context: mean | peak",
        ]);
    for s in &base.results.scenarios {
        let Some(m) = &s.measured else { continue };
        let st = &m.scheduler;
        let pair = |mean: f64, peak: f64| format!("{:.1} | {:.1}", 100.0 * mean, 100.0 * peak);
        table.add_row(vec![
            Cell::new(format!("{:02}", s.id)),
            Cell::new(pair(
                st.mean_fragmentation_fraction,
                st.peak_fragmentation_fraction,
            )),
            Cell::new(pair(
                st.mean_contiguous_waste_fraction,
                st.peak_contiguous_waste_fraction,
            )),
            Cell::new(pair(
                st.mean_max_context_waste_fraction,
                st.peak_max_context_waste_fraction,
            )),
        ]);
    }
    for i in 1..4 {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    Some(table)
}

/// The title line of scenario `id`'s table: its name, scale and scaled sizes.
pub fn scenario_title(id: u32, runs: &[RemedyRun]) -> Option<String> {
    let (_, s) = rows(id, runs).next()?;
    let f = s.scaled.factors;
    let window = runs
        .iter()
        .find_map(|r| r.results.scenario(id)?.scaled.sliding_window);
    Some(format!(
        "{:02} {}: {} requests of {}+{} tokens at tokens/{} requests/{} layers {}/{}{}",
        id,
        s.scenario.name,
        s.scaled.requests(),
        s.scaled.prompt_tokens,
        s.scaled.generation_tokens,
        f.tokens,
        f.requests,
        f.layers.0,
        f.layers.1,
        window.map_or(String::new(), |w| format!(
            "; the window is {w} tokens at this scale"
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_remedies_are_named_for_tables_and_files() {
        let remedies = Remedy::standard(2048);
        let labels: Vec<String> = remedies.iter().map(Remedy::label).collect();
        assert_eq!(
            labels,
            [
                "f16",
                "int8",
                "int4",
                "fp8-e4m3",
                "window 2048",
                "int8 + window 2048"
            ]
        );
        let slugs: Vec<String> = remedies.iter().map(Remedy::slug).collect();
        assert_eq!(slugs[4], "f16-window-2048");
        assert_eq!(slugs[5], "int8-window-2048");
    }
}
