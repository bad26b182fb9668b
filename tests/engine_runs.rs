//! The stress engine end to end on every adapter: real scenario files at the `ci` preset in
//! both preemption modes, and a run whose budget is forced tiny.

mod common;

use pagekv::engine::request::PreemptionMode;
use pagekv::engine::{RunConfig, run_scenario};
use pagekv::scenario::{ScalePreset, load_dir};

#[test]
fn ci_preset_one_scenario_smoke() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let scenarios = load_dir(dir).unwrap();
    let preset = ScalePreset::by_name("ci").unwrap();
    for ctx in common::contexts() {
        for s in &scenarios {
            let scaled = s.scale(&preset);
            for mode in [PreemptionMode::Recompute, PreemptionMode::Swap] {
                let config = RunConfig {
                    preemption: mode,
                    ..RunConfig::default()
                };
                let t = std::time::Instant::now();
                let m = run_scenario(&ctx, &scaled, &config, &mut |_| {}).unwrap();
                eprintln!(
                    "{} {:>2} {:?} wall {:.2}s total {:.2}s steps {} req/s {:.1} preempt {} hit {:?}/{:?} evict {:?} checks {} ({} preempted) err {:.2e} problems {:?} gpu {:?}",
                    ctx.info.backend,
                    s.id,
                    mode,
                    m.wall_seconds,
                    t.elapsed().as_secs_f64(),
                    m.steps,
                    m.requests_per_s,
                    m.preemptions,
                    m.hit_rate_pct,
                    m.possible_hit_rate_pct,
                    m.evictions_pct,
                    m.spot_checks.len(),
                    m.preempted_checks(),
                    m.max_check_error(),
                    m.problems,
                    m.gpu_seconds
                );
                assert!(m.is_correct(), "{:?}", m.problems);
            }
        }
    }
}
