//! The stress engine end to end on every adapter: all 11 scenario files at the `ci` preset in
//! both preemption modes, a budget forced tiny so preemption and eviction really happen, a
//! budget too small for any request, and the results file written during a suite.
//!
//! These assert completion, accounting and correctness, never speed.

#![cfg(feature = "tool")]

mod common;

use pagekv::KvFormat;
use pagekv::engine::request::PreemptionMode;
use pagekv::engine::simulate::dry_run;
use pagekv::engine::{Measurement, RunConfig, run_scenario};
use pagekv::gpu::GpuContext;
use pagekv::report::suite::{Quiet, SuiteObserver, SuiteOptions, run_suite};
use pagekv::report::{ScenarioResult, Verdict, file};
use pagekv::scenario::{LoadedScenario, ScalePreset, ScaledScenario, load_dir};

fn scenarios() -> Vec<LoadedScenario> {
    load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios")).unwrap()
}

fn config(mode: PreemptionMode) -> RunConfig {
    RunConfig {
        preemption: mode,
        ..RunConfig::default()
    }
}

/// Everything a correct run must satisfy, whatever the scenario.
fn assert_accounted(label: &str, s: &ScaledScenario, m: &Measurement) {
    assert!(m.is_correct(), "{label}: {:?}", m.problems);
    assert_eq!(m.requests, s.requests(), "{label}");
    assert_eq!(m.completed, s.requests(), "{label}");
    let st = &m.scheduler;
    assert_eq!(st.completed, s.requests(), "{label}");
    assert_eq!(
        st.decode_tokens,
        s.requests() * s.generation_tokens as u64,
        "{label}: every request decodes exactly its generation length"
    );
    // Every prompt token is either computed or served from the prefix cache at admission;
    // recomputed tokens come on top.
    let prompts = s.requests() * s.prompt_tokens as u64;
    assert!(
        st.prefill_tokens + st.prefix_hit_tokens >= prompts,
        "{label}: prefill {} + hits {} < prompts {prompts}",
        st.prefill_tokens,
        st.prefix_hit_tokens
    );
    assert!(m.peak_use_pct <= 100.0 + 1e-9, "{label}");
    assert!(
        m.hit_rate_pct.unwrap_or(0.0) <= m.possible_hit_rate_pct.unwrap_or(0.0) + 1e-9,
        "{label}: hits exceed what could hit"
    );
    assert!(
        (m.demand_pct - s.demand_pct()).abs() < 1e-9,
        "{label}: demand"
    );
    assert!(!m.spot_checks.is_empty(), "{label}: nothing was checked");
    assert!(m.spot_checks.iter().all(|c| c.passed), "{label}");
    if st.preempted_requests > 0 {
        assert!(
            m.preempted_checks() > 0,
            "{label}: preempted requests were never spot-checked"
        );
    }
    assert!(m.wall_seconds > 0.0 && m.requests_per_s > 0.0, "{label}");
    assert_series(label, m);
}

/// The time series ends at the last step, agrees with the run's counters, and its KV use
/// peaks at the run's peak use; alert events name real steps and alternate fire/clear per
/// metric and level.
fn assert_series(label: &str, m: &Measurement) {
    let series = &m.series.samples;
    assert!(!series.is_empty() && series.len() <= 513, "{label}");
    let last = series.last().unwrap();
    assert_eq!(last.step, m.steps, "{label}");
    assert_eq!(last.preemptions, m.preemptions, "{label}");
    assert_eq!(
        last.prefix_hit_tokens, m.scheduler.prefix_hit_tokens,
        "{label}"
    );
    assert_eq!(
        last.tokens,
        m.scheduler.prefill_tokens + m.scheduler.decode_tokens,
        "{label}"
    );
    assert!(series.windows(2).all(|w| w[0].step < w[1].step), "{label}");
    let top = series.iter().map(|s| s.kv_use_pct).fold(0.0, f64::max);
    assert!(
        top <= m.peak_use_pct + 1e-9,
        "{label}: {top} > {}",
        m.peak_use_pct
    );
    if m.steps <= 512 {
        // Nothing thinned: the peak step is in the series.
        assert!((top - m.peak_use_pct).abs() < 1e-9, "{label}: {top}");
    }
    for e in &m.alerts {
        assert!(e.step >= 1 && e.step <= m.steps, "{label}: {e}");
    }
}

fn ci_suite(ctx: &GpuContext, mode: PreemptionMode) {
    let options = SuiteOptions {
        preset: ScalePreset::by_name("ci").unwrap(),
        full_budget_bytes: None,
        budget_probe: None,
        config: config(mode),
        out: None,
        alerts: Default::default(),
        alerts_file: None,
        auto: None,
    };
    let t = std::time::Instant::now();
    let results = run_suite(ctx, &scenarios(), &options, &mut Quiet).unwrap();
    eprintln!(
        "{} {mode:?}: ci suite in {:.1} s",
        ctx.describe(),
        t.elapsed().as_secs_f64()
    );
    assert!(results.complete);
    assert_eq!(results.scenarios.len(), 11);
    let mut preempted = 0;
    for r in &results.scenarios {
        let label = format!("{} scenario {} {mode:?}", ctx.info.backend, r.id);
        assert!(r.error.is_none(), "{label}: {:?}", r.error);
        let m = r.measured.as_ref().unwrap();
        eprintln!(
            "  {label}: {} in {:.2} s, {} preemptions, evictions {:?}%, checks {} ({} preempted)",
            r.verdict,
            m.wall_seconds,
            m.preemptions,
            m.evictions_pct,
            m.spot_checks.len(),
            m.preempted_checks()
        );
        assert_accounted(&label, &r.scaled, m);
        assert!(r.verdict.passed(), "{label}");
        // The dry run a device-scaled run predicts time from plans exactly these steps.
        let dry = dry_run(&r.scaled, &options.config, &mut |_| true).unwrap();
        assert!(dry.complete, "{label}");
        assert_eq!(dry.steps.len() as u64, m.steps, "{label}: dry-run steps");
        assert_eq!(
            dry.stats, m.scheduler,
            "{label}: dry-run scheduler counters"
        );
        let checked = dry.steps.iter().filter(|w| w.check_keys > 0).count();
        assert!(checked > 0 && checked <= m.spot_checks.len(), "{label}");
        preempted += m.scheduler.preempted_requests;
    }
    assert!(preempted > 0, "the ci preset must exercise preemption");
}

#[test]
fn ci_preset_all_scenarios_recompute() {
    for ctx in common::contexts() {
        ci_suite(&ctx, PreemptionMode::Recompute);
    }
}

#[test]
fn ci_preset_all_scenarios_swap() {
    for ctx in common::contexts() {
        ci_suite(&ctx, PreemptionMode::Swap);
    }
}

/// Scenario 2 (roomy at full size) with its budget cut so only two requests fit: the run must
/// preempt and evict, and its outputs, preempted requests' included, must still be right.
#[test]
fn tiny_budget_preempts_and_evicts_with_correct_outputs() {
    let all = scenarios();
    let s2 = all.iter().find(|s| s.id == 2).unwrap();
    let preset = ScalePreset::by_name("ci").unwrap();
    let normal = s2.scale(&preset);
    let per_request = normal.layout.blocks_for_tokens(normal.tokens_per_request());
    let target_blocks = 2 * per_request + 1;
    let factor = normal.num_blocks() as f64 / target_blocks as f64;
    let budget = (s2.budget_bytes() as f64 / factor) as u64;
    for ctx in common::contexts() {
        for mode in [PreemptionMode::Recompute, PreemptionMode::Swap] {
            let scaled = s2.scale_with_budget(&preset, budget);
            assert!(scaled.sequences_that_fit() >= 1 && scaled.sequences_that_fit() <= 2);
            let m = run_scenario(&ctx, &scaled, &config(mode), &mut |_| {}).unwrap();
            let label = format!("{} tiny budget {mode:?}", ctx.info.backend);
            assert_accounted(&label, &scaled, &m);
            assert!(m.preemptions > 0, "{label}: no preemption");
            assert!(m.evictions_pct.unwrap_or(0.0) > 0.0, "{label}: no eviction");
            assert!(m.preempted_checks() > 0, "{label}");
            if mode == PreemptionMode::Swap {
                assert!(m.scheduler.swap_out_blocks > 0, "{label}: nothing swapped");
                assert_eq!(m.scheduler.swap_out_blocks, m.scheduler.swap_in_blocks);
            } else {
                assert!(
                    m.scheduler.recompute_tokens > 0,
                    "{label}: nothing recomputed"
                );
            }
        }
    }
}

/// The same squeeze with the cache quantized: swap preemption moves blocks with their scales,
/// prefix-cache hits share quantized blocks, and the spot checks (which quantize K/V with
/// the CPU reference quantizer) still match, on whichever backing the adapter uses.
#[test]
fn quantized_formats_swap_and_share_prefixes_with_correct_outputs() {
    let all = scenarios();
    let mut s2 = all.iter().find(|s| s.id == 2).unwrap().clone();
    let preset = ScalePreset::by_name("ci").unwrap();
    for format in [KvFormat::Int8, KvFormat::Int4, KvFormat::Fp8E4M3] {
        s2.scenario.cache.kv_dtype = format;
        let normal = s2.scale(&preset);
        let per_request = normal.layout.blocks_for_tokens(normal.tokens_per_request());
        let factor = normal.num_blocks() as f64 / (2 * per_request + 1) as f64;
        let budget = (s2.budget_bytes() as f64 / factor) as u64;
        let scaled = s2.scale_with_budget(&preset, budget);
        assert_eq!(scaled.layout.dtype, format);
        for ctx in common::contexts() {
            let m =
                run_scenario(&ctx, &scaled, &config(PreemptionMode::Swap), &mut |_| {}).unwrap();
            let label = format!("{} {}", ctx.info.backend, format.name());
            assert_accounted(&label, &scaled, &m);
            assert!(m.scheduler.swap_out_blocks > 0, "{label}: nothing swapped");
            assert!(m.preempted_checks() > 0, "{label}");
            assert!(
                m.hit_rate_pct.unwrap_or(0.0) > 0.0,
                "{label}: no prefix hit"
            );
        }
    }
}

/// A sliding window under a squeezed budget, in both preemption modes: spot checks against
/// the windowed CPU reference pass (preempted requests included), and a swap-out saves only
/// the blocks the window still sees. Scheduling is deterministic, so the pool size and step
/// budget are chosen where both modes preempt (windows rarely need to: a request's blocks
/// stop growing).
#[test]
fn a_sliding_window_preempts_swaps_and_matches_the_reference() {
    let all = scenarios();
    let mut s3 = all.iter().find(|s| s.id == 3).unwrap().clone();
    let preset = ScalePreset::by_name("ci").unwrap();
    // 6144 full-size tokens: 48 at this preset, three blocks of a 68-token request.
    s3.set_sliding_window(Some(6144)).unwrap();
    let normal = s3.scale(&preset);
    assert_eq!(normal.sliding_window, Some(48));
    let window_blocks = 48u64.div_ceil(normal.layout.block_size as u64) + 1;
    let factor = normal.num_blocks() as f64 / 11.0;
    let budget = (s3.budget_bytes() as f64 / factor) as u64;
    let scaled = s3.scale_with_budget(&preset, budget);
    assert_eq!(scaled.num_blocks(), 11);
    for ctx in common::contexts() {
        for mode in [PreemptionMode::Recompute, PreemptionMode::Swap] {
            let config = RunConfig {
                max_step_tokens: 64,
                ..config(mode)
            };
            let m = run_scenario(&ctx, &scaled, &config, &mut |_| {}).unwrap();
            let label = format!("{} {mode:?} window", ctx.info.backend);
            assert_accounted(&label, &scaled, &m);
            let st = &m.scheduler;
            assert!(st.preemptions > 0, "{label}: {st:?}");
            if mode == PreemptionMode::Swap {
                assert!(st.swap_out_blocks > 0, "{label}");
                assert!(
                    st.swap_out_blocks <= st.preemptions * window_blocks,
                    "{label}"
                );
            }
        }
    }
}

/// A budget below one request: every request is rejected, the scenario FAILs with the reason,
/// and nothing hangs.
#[test]
fn budget_below_one_request_fails_with_a_reason() {
    let all = scenarios();
    let s1 = all.iter().find(|s| s.id == 1).unwrap();
    let preset = ScalePreset::by_name("ci").unwrap();
    let normal = s1.scale(&preset);
    let one_block_budget = s1.budget_bytes() / normal.num_blocks() as u64 * 2;
    let scaled = s1.scale_with_budget(&preset, one_block_budget);
    assert_eq!(scaled.sequences_that_fit(), 0);
    for ctx in common::contexts() {
        let m = run_scenario(&ctx, &scaled, &RunConfig::default(), &mut |_| {}).unwrap();
        assert_eq!(m.rejected, scaled.requests());
        assert_eq!(m.completed, 0);
        assert!(
            m.problems.is_empty(),
            "rejection is not a defect: {:?}",
            m.problems
        );
        let (verdict, reasons) = pagekv::report::status::verdict(&m);
        assert_eq!(verdict, Verdict::Fail);
        assert!(reasons[0].contains("cannot fit the pool"), "{reasons:?}");
    }
}

/// Reads the results file when each scenario starts: it must already hold every earlier
/// scenario and say the run is incomplete.
struct FileWatcher {
    path: std::path::PathBuf,
    seen: Vec<(usize, bool)>,
}

impl SuiteObserver for FileWatcher {
    fn scenario_started(&mut self, _scaled: &ScaledScenario, index: usize, _total: usize) {
        let partial = file::read(&self.path).unwrap();
        self.seen.push((partial.scenarios.len(), partial.complete));
        assert_eq!(partial.scenarios.len(), index);
    }

    fn scenario_finished(&mut self, _result: &ScenarioResult) {}
}

#[test]
fn results_file_is_kept_current_and_round_trips() {
    let dir = std::env::temp_dir().join(format!("pagekv-engine-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("results.json");
    let picked: Vec<LoadedScenario> = scenarios()
        .into_iter()
        .filter(|s| s.id == 1 || s.id == 3)
        .collect();
    if let Some(ctx) = common::contexts().into_iter().next() {
        let options = SuiteOptions {
            preset: ScalePreset::by_name("ci").unwrap(),
            full_budget_bytes: None,
            budget_probe: None,
            config: RunConfig::default(),
            out: Some(path.clone()),
            alerts: Default::default(),
            alerts_file: None,
            auto: None,
        };
        let mut watcher = FileWatcher {
            path: path.clone(),
            seen: Vec::new(),
        };
        let results = run_suite(&ctx, &picked, &options, &mut watcher).unwrap();
        assert_eq!(watcher.seen, vec![(0, false), (1, false)]);
        let back = file::read(&path).unwrap();
        assert!(back.complete);
        assert_eq!(back, results, "JSON round trip");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "results.json")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
