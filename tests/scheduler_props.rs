//! Property tests of the scheduler: random small workloads and pools, run through a simulated
//! GPU that executes every step plan in the documented order on a slot-level memory model
//! (each slot holds the (position, token) whose K/V was written there) and checks that every
//! attention reads exactly its request's tokens. Both preemption modes must then finish every
//! request exactly once, with identical generated tokens.

#![cfg(feature = "tool")]

use std::collections::{BTreeMap, HashMap};

use pagekv::cache::{CacheLayout, KvCacheManager, KvFormat, ModelGeometry, RELEASED};
use pagekv::engine::request::{FinishStatus, RequestSpec};
use pagekv::engine::scheduler::{
    PreemptionMode, Scheduler, SchedulerConfig, SchedulerStats, StepPlan,
};
use pagekv::engine::workload::{build_requests, shareable_prompt_tokens, total_shareable_tokens};
use pagekv::scenario::{ScaleFactors, ScaledScenario};
use proptest::prelude::*;

type Slot = Option<(u32, u32)>;

#[derive(Clone, Debug)]
struct Case {
    streams: u32,
    per_stream: u32,
    prompt: u32,
    prefix: u32,
    generation: u32,
    block_size: u32,
    blocks: u32,
    max_step_tokens: u32,
    max_running: u32,
    watermark: u32,
    /// Sliding window in keys, if any.
    window: Option<u32>,
}

fn scenario(c: &Case) -> ScaledScenario {
    ScaledScenario {
        id: 7,
        name: "prop".into(),
        preset: "test".into(),
        layout: CacheLayout {
            geometry: ModelGeometry::new("t", 1, 2, 1, 64),
            block_size: c.block_size,
            dtype: KvFormat::F16,
        },
        prompt_tokens: c.prompt,
        generation_tokens: c.generation,
        shared_prefix_tokens: c.prefix,
        streams: c.streams,
        requests_per_stream: c.per_stream,
        layers_run: 1,
        budget_bytes: 1 << 20,
        factors: ScaleFactors {
            tokens: 1,
            requests: 1,
            layers: (1, 1),
        },
        sliding_window: c.window,
        max_context: 64,
    }
}

/// What one run produced: per request its status and the (position, token) of each decode,
/// in order; plus the final stats.
struct Outcome {
    finished: BTreeMap<u64, (FinishStatus, u32)>,
    decodes: HashMap<u64, Vec<(u32, u32)>>,
    stats: SchedulerStats,
}

/// Executes `plan` on the simulated memory in the documented order and checks every
/// attention's context: each key it sees (all, or the last `window`) in its own slot.
fn execute(
    plan: &StepPlan,
    mem: &mut [Slot],
    host: &mut HashMap<u64, Vec<Vec<Slot>>>,
    specs: &HashMap<u64, RequestSpec>,
    bs: usize,
    window: Option<u32>,
) {
    let block = |mem: &[Slot], b: u32| mem[b as usize * bs..(b as usize + 1) * bs].to_vec();
    for o in &plan.swap_out {
        let saved = o.blocks.iter().map(|&b| block(mem, b)).collect();
        assert!(host.insert(o.request, saved).is_none(), "swapped out twice");
    }
    for i in &plan.swap_in {
        let saved = host.remove(&i.request).expect("swap-in without swap-out");
        assert_eq!(saved.len(), i.blocks.len());
        for (data, &b) in saved.iter().zip(&i.blocks) {
            mem[b as usize * bs..(b as usize + 1) * bs].copy_from_slice(data);
        }
    }
    for c in &plan.copies {
        let data = block(mem, c.src);
        mem[c.dst as usize * bs..(c.dst as usize + 1) * bs].copy_from_slice(&data);
    }
    for c in &plan.prefill {
        assert_eq!(c.tokens.len(), c.slots.len());
        for (k, (&t, &s)) in c.tokens.iter().zip(&c.slots).enumerate() {
            mem[s as usize] = Some((c.first_position + k as u32, t));
        }
    }
    for d in &plan.decode {
        mem[d.slot as usize] = Some((d.position, d.token));
    }
    let attend = |req: u64, table: &[u32], len: u32, first_query: u32| {
        let spec = &specs[&req];
        let first_key = window.map_or(0, |w| (first_query + 1).saturating_sub(w));
        for p in first_key..len {
            let slot = table[p as usize / bs] as usize * bs + p as usize % bs;
            assert_eq!(
                mem[slot],
                Some((p, spec.token_at(p))),
                "request {req} position {p}"
            );
        }
    };
    for c in &plan.prefill {
        attend(c.request, &c.block_table, c.context_len, c.first_position);
    }
    for d in &plan.decode {
        assert_eq!(d.token, specs[&d.request].token_at(d.position));
        attend(d.request, &d.block_table, d.context_len, d.position);
    }
}

fn run(c: &Case, mode: PreemptionMode) -> Outcome {
    let sc = scenario(c);
    let cache = KvCacheManager::new(sc.layout.clone(), c.blocks, true).unwrap();
    let config = SchedulerConfig {
        max_step_tokens: c.max_step_tokens,
        max_running: c.max_running,
        preemption: mode,
        watermark_blocks: c.watermark,
        sliding_window: c.window,
        max_context: 64,
    };
    let mut s = Scheduler::new(cache, config).unwrap();
    s.set_shareable_tokens(total_shareable_tokens(&sc));
    let reqs = build_requests(&sc);
    let specs: HashMap<u64, RequestSpec> = reqs.iter().map(|r| (r.id, r.clone())).collect();
    for r in reqs {
        s.submit(r);
    }
    let bs = c.block_size as usize;
    let mut mem = vec![None; c.blocks as usize * bs];
    let mut host = HashMap::new();
    let mut out = Outcome {
        finished: BTreeMap::new(),
        decodes: HashMap::new(),
        stats: SchedulerStats::default(),
    };
    let mut steps = 0;
    while !s.is_done() {
        steps += 1;
        assert!(steps < 100_000, "no termination");
        let plan = s.schedule().unwrap();
        assert!(plan.num_tokens() <= c.max_step_tokens, "budget exceeded");
        assert!(s.cache().num_used_blocks() <= c.blocks);
        assert!(s.num_running() <= c.max_running as usize);
        s.cache().check_invariants().unwrap();
        execute(&plan, &mut mem, &mut host, &specs, bs, c.window);
        for d in &plan.decode {
            out.decodes
                .entry(d.request)
                .or_default()
                .push((d.position, d.token));
        }
        for f in s.complete(&plan) {
            assert!(
                out.finished
                    .insert(f.request, (f.status, f.generated))
                    .is_none()
            );
        }
        s.cache().check_invariants().unwrap();
        if let Some(w) = c.window {
            // Between steps a windowed request holds at most ceil(W / bs) + 1 blocks.
            let bound = w.div_ceil(c.block_size) as usize + 1;
            for id in s.cache().seq_ids() {
                let table = s.cache().block_table(id);
                let held = table.iter().filter(|&&b| b != RELEASED).count();
                assert!(held <= bound, "{id} holds {held} blocks: {table:?}");
            }
        }
    }
    assert!(host.is_empty(), "a swapped request never came back");
    out.stats = s.stats();
    out
}

/// The checks every run must pass, whatever the mode.
fn check(c: &Case, o: &Outcome) {
    let sc = scenario(c);
    let reqs = build_requests(&sc);
    let shareable = shareable_prompt_tokens(&sc);
    assert_eq!(
        o.finished.len(),
        reqs.len(),
        "every request finishes exactly once"
    );
    let mut lookups = 0;
    let mut possible = 0;
    for r in &reqs {
        let all = r.final_len().div_ceil(c.block_size as u64);
        let held = c.window.map_or(all, |w| {
            all.min((w as u64).div_ceil(c.block_size as u64) + 2)
        });
        let fits = held <= c.blocks as u64;
        match &o.finished[&r.id] {
            (FinishStatus::Completed, g) => {
                assert!(fits);
                assert_eq!(*g, c.generation);
                let expected: Vec<(u32, u32)> = (c.prompt..c.prompt + c.generation)
                    .map(|p| (p, r.token_at(p)))
                    .collect();
                assert_eq!(o.decodes[&r.id], expected, "request {}", r.id);
                lookups += c.prompt as u64;
                possible += shareable[r.id as usize] as u64;
            }
            (FinishStatus::Rejected { .. }, _) => {
                assert!(!fits, "request {} rejected although it fits", r.id);
                assert!(!o.decodes.contains_key(&r.id));
            }
        }
    }
    let st = &o.stats;
    // Lookups are counted once per request, never at re-admission.
    assert_eq!(st.prefix_lookup_tokens, lookups);
    assert!(st.prefix_hit_tokens <= possible, "{st:?}");
    assert!(st.evicted_blocks <= st.blocks_allocated + st.preemptions * c.blocks as u64);
    assert!(st.peak_used_blocks <= c.blocks);
}

fn cases() -> impl Strategy<Value = Case> {
    (
        (1u32..4, 1u32..4, 1u32..24, 0u32..=24, 1u32..10),
        (prop::sample::select(vec![1u32, 2, 4, 8]), 1u32..24),
        (1u32..32, 1u32..6, 0u32..3),
        prop::option::weighted(0.4, 1u32..20),
    )
        .prop_map(
            |(
                (streams, per_stream, prompt, prefix, generation),
                (block_size, blocks),
                rest,
                window,
            )| {
                Case {
                    streams,
                    per_stream,
                    prompt,
                    prefix: prefix.min(prompt),
                    generation,
                    block_size,
                    blocks,
                    max_step_tokens: rest.0,
                    max_running: rest.1,
                    watermark: rest.2,
                    window,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn both_modes_finish_everything_with_identical_tokens(c in cases()) {
        let recompute = run(&c, PreemptionMode::Recompute);
        let swap = run(&c, PreemptionMode::Swap);
        check(&c, &recompute);
        check(&c, &swap);
        prop_assert_eq!(&recompute.decodes, &swap.decodes);
        prop_assert_eq!(&recompute.finished, &swap.finished);
        prop_assert_eq!(swap.stats.recompute_tokens, 0);
        prop_assert_eq!(swap.stats.swap_in_blocks, swap.stats.swap_out_blocks);
    }
}

/// A pool far too small for the workload: preemption must happen in both modes, and
/// everything must still complete with the right tokens.
#[test]
fn tiny_pool_preempts_in_both_modes_and_completes() {
    let c = Case {
        streams: 3,
        per_stream: 3,
        prompt: 12,
        prefix: 8,
        generation: 12,
        block_size: 4,
        blocks: 12,
        max_step_tokens: 32,
        max_running: 6,
        watermark: 0,
        window: None,
    };
    let recompute = run(&c, PreemptionMode::Recompute);
    let swap = run(&c, PreemptionMode::Swap);
    for o in [&recompute, &swap] {
        check(&c, o);
        assert!(o.stats.preemptions > 0, "{:?}", o.stats);
        assert!(o.stats.evicted_blocks > 0);
        assert!(o.finished.values().all(|f| f.0 == FinishStatus::Completed));
    }
    assert!(recompute.stats.recompute_tokens > 0);
    assert!(swap.stats.swap_out_blocks > 0);
    assert_eq!(recompute.decodes, swap.decodes);
}

/// A roomy pool with a shared prefix: later requests of each stream hit it.
#[test]
fn later_requests_of_a_stream_hit_the_prefix() {
    let c = Case {
        streams: 2,
        per_stream: 4,
        prompt: 20,
        prefix: 12,
        generation: 4,
        block_size: 4,
        blocks: 64,
        max_step_tokens: 24,
        max_running: 2,
        watermark: 1,
        window: None,
    };
    let o = run(&c, PreemptionMode::Recompute);
    check(&c, &o);
    // 6 later requests x 12 shareable tokens, all hit with a roomy pool.
    assert_eq!(o.stats.shareable_tokens, 72);
    assert_eq!(o.stats.prefix_hit_tokens, 72);
    assert_eq!(o.stats.preemptions, 0);
}

/// The 11 real scenario files at the `ci` and `default` presets, scheduled without a GPU in
/// both modes (with a budget of 2048 tokens per step and 64 running requests): every request
/// finishes exactly once, and rejection happens exactly when the scaled pool cannot hold one
/// finished request. Prints the policy metrics (`--nocapture`).
#[test]
fn real_scenarios_schedule_to_completion_at_ci_and_default() {
    use pagekv::scenario::{ScalePreset, load_dir};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let scenarios = load_dir(dir).unwrap();
    for preset in ["ci", "default"] {
        let preset = ScalePreset::by_name(preset).unwrap();
        for ls in &scenarios {
            let sc = ls.scale(&preset);
            for mode in [PreemptionMode::Recompute, PreemptionMode::Swap] {
                let cache = KvCacheManager::new(sc.layout.clone(), sc.num_blocks(), true).unwrap();
                let config = SchedulerConfig {
                    max_step_tokens: 2048,
                    max_running: 64,
                    preemption: mode,
                    watermark_blocks: sc.num_blocks() / 100,
                    sliding_window: sc.sliding_window,
                    max_context: sc.max_context,
                };
                let mut s = Scheduler::new(cache, config).unwrap();
                s.set_shareable_tokens(total_shareable_tokens(&sc));
                for r in build_requests(&sc) {
                    s.submit(r);
                }
                let mut finished = 0;
                while !s.is_done() {
                    let plan = s.schedule().unwrap();
                    finished += s.complete(&plan).len() as u64;
                }
                let st = s.stats();
                assert_eq!(finished, sc.requests());
                assert_eq!(st.completed + st.rejected, sc.requests());
                assert_eq!(st.rejected == 0, sc.sequences_that_fit() > 0, "{}", sc.name);
                eprintln!(
                    "{} {:>2} {:<9?} demand {:>7.1}% blocks {:>5} steps {:>5} preempt {:>4} hit {:.3}/{:.3} evict {:.3} frag {:.3} rejected {}",
                    preset.name,
                    sc.id,
                    mode,
                    sc.demand_pct(),
                    sc.num_blocks(),
                    st.steps,
                    st.preemptions,
                    st.hit_rate().unwrap_or(0.0),
                    st.possible_hit_rate().unwrap_or(0.0),
                    st.eviction_rate().unwrap_or(0.0),
                    st.mean_fragmentation_fraction,
                    st.rejected,
                );
            }
        }
    }
}

/// Under a sliding window, requests far longer than the whole pool complete: each holds only
/// its window's blocks. With the pool still too small for all of them at once, both modes
/// preempt, swap saves only live blocks, and the decodes match.
#[test]
fn a_window_runs_requests_longer_than_the_pool() {
    let c = Case {
        streams: 2,
        per_stream: 3,
        prompt: 40,
        prefix: 16,
        generation: 24,
        block_size: 2,
        blocks: 10,
        max_step_tokens: 8,
        max_running: 6,
        watermark: 0,
        window: Some(4),
    };
    let recompute = run(&c, PreemptionMode::Recompute);
    let swap = run(&c, PreemptionMode::Swap);
    for o in [&recompute, &swap] {
        check(&c, o);
        assert!(o.finished.values().all(|f| f.0 == FinishStatus::Completed));
        assert!(o.stats.preemptions > 0, "{:?}", o.stats);
    }
    // 64-token requests would need 32 blocks each without the window; a swap-out saves at
    // most the ceil(4 / 2) + 1 blocks a windowed request holds.
    assert!(swap.stats.swap_out_blocks > 0);
    assert!(swap.stats.swap_out_blocks <= swap.stats.preemptions * 3);
    assert_eq!(recompute.decodes, swap.decodes);
}
