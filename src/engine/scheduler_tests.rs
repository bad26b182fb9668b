//! Unit tests of the scheduler: hand-sized pools where each policy decision can be predicted.
//! Randomised end-to-end checks with a simulated GPU memory live in tests/scheduler_props.rs.

use super::*;
use crate::cache::{CacheLayout, KvFormat, ModelGeometry};
use crate::engine::request::generated_token;
use crate::engine::workload::{build_requests, test_scenario, total_shareable_tokens};

fn cache(blocks: u32) -> KvCacheManager {
    let layout = CacheLayout {
        geometry: ModelGeometry::new("t", 1, 2, 1, 64),
        block_size: 4,
        dtype: KvFormat::F16,
    };
    KvCacheManager::new(layout, blocks, true).unwrap()
}

fn config(max_step_tokens: u32, preemption: PreemptionMode) -> SchedulerConfig {
    SchedulerConfig {
        max_step_tokens,
        max_running: 8,
        preemption,
        watermark_blocks: 0,
        sliding_window: None,
        max_context: 0,
    }
}

fn req(id: u64, prompt: Vec<u32>, generation_len: u32) -> RequestSpec {
    RequestSpec {
        id,
        stream: 0,
        prompt,
        generation_len,
        seed: 1000 + id,
    }
}

/// Runs the schedule/complete loop to the end, checking the per-step invariants, and returns
/// every plan and every finish.
fn run(s: &mut Scheduler) -> (Vec<StepPlan>, Vec<Finished>) {
    let (mut plans, mut finished) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        if s.is_done() {
            return (plans, finished);
        }
        let plan = s.schedule().unwrap();
        assert!(plan.num_tokens() <= s.config().max_step_tokens);
        assert!(s.cache().num_used_blocks() <= s.cache().num_blocks());
        s.cache().check_invariants().unwrap();
        finished.extend(s.complete(&plan));
        plans.push(plan);
    }
    panic!("scheduler did not finish");
}

#[test]
fn chunked_prefill_then_decode_one_token_per_step() {
    let mut s = Scheduler::new(cache(8), config(4, PreemptionMode::Recompute)).unwrap();
    s.submit(req(0, (0..10).collect(), 3));
    let (plans, finished) = run(&mut s);
    let chunks: Vec<usize> = plans
        .iter()
        .flat_map(|p| &p.prefill)
        .map(|c| c.tokens.len())
        .collect();
    assert_eq!(chunks, vec![4, 4, 2]);
    assert!(plans[2].prefill[0].completes_prompt);
    let decodes: Vec<(u32, u32)> = plans
        .iter()
        .flat_map(|p| &p.decode)
        .map(|d| (d.position, d.token))
        .collect();
    let expected: Vec<(u32, u32)> = (10..13).map(|p| (p, generated_token(1000, p))).collect();
    assert_eq!(decodes, expected);
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].status, FinishStatus::Completed);
    assert_eq!(finished[0].generated, 3);
    assert_eq!(s.stats().steps, 6);
    // The full first two blocks stay cached after the request finished.
    assert_eq!(s.cache().num_used_blocks(), 0);
    assert_eq!(s.cache().num_cached_blocks(), 3);
}

#[test]
fn misuse_is_an_error_value() {
    assert!(matches!(
        Scheduler::new(cache(4), config(0, PreemptionMode::Swap)),
        Err(SchedulerError::InvalidConfig(_))
    ));
    let mut s = Scheduler::new(cache(4), config(4, PreemptionMode::Swap)).unwrap();
    s.submit(req(0, vec![1, 2, 3], 1));
    let plan = s.schedule().unwrap();
    assert_eq!(s.schedule(), Err(SchedulerError::StepInFlight));
    assert!(
        s.complete(&StepPlan::default()).is_empty(),
        "foreign plan is ignored"
    );
    assert_eq!(s.schedule(), Err(SchedulerError::StepInFlight));
    s.complete(&plan);
    let (_, finished) = run(&mut s);
    assert_eq!(finished.len(), 1);
}

#[test]
fn unservable_requests_are_rejected_once() {
    let mut s = Scheduler::new(cache(3), config(8, PreemptionMode::Recompute)).unwrap();
    s.submit(req(0, (0..10).collect(), 3)); // 13 tokens need 4 blocks > 3
    s.submit(req(1, vec![], 3));
    s.submit(req(2, (0..9).collect(), 3)); // exactly 3 blocks: fine
    s.submit(req(2, vec![1], 1));
    let (_, finished) = run(&mut s);
    let rejected: Vec<u64> = finished
        .iter()
        .filter(|f| matches!(f.status, FinishStatus::Rejected { .. }))
        .map(|f| f.request)
        .collect();
    assert_eq!(rejected, vec![0, 1, 2]);
    assert_eq!(finished.len(), 4);
    assert_eq!(s.stats().rejected, 3);
    assert_eq!(s.stats().completed, 1);
}

#[test]
fn second_request_of_a_stream_hits_the_shared_prefix() {
    let sc = test_scenario(1, 3, 10, 8);
    let mut s = Scheduler::new(cache(32), config(64, PreemptionMode::Recompute)).unwrap();
    s.set_shareable_tokens(total_shareable_tokens(&sc));
    for r in build_requests(&sc) {
        s.submit(r);
    }
    run(&mut s);
    let st = s.stats();
    assert_eq!(st.prefix_lookup_tokens, 30);
    assert_eq!(st.prefix_hit_tokens, 16);
    assert_eq!(st.shareable_tokens, 16);
    assert_eq!(st.hit_rate(), Some(16.0 / 30.0));
    assert_eq!(st.completed, 3);
}

/// Three requests of 8 prompt + 8 generated tokens on 8 blocks of 4: all admitted, then the
/// pool runs dry mid-decode and the newest requests are preempted.
fn tight(mode: PreemptionMode) -> (Scheduler, Vec<StepPlan>, Vec<Finished>) {
    let mut s = Scheduler::new(cache(8), config(16, mode)).unwrap();
    for id in 0..3 {
        s.submit(req(id, (id as u32 * 100..id as u32 * 100 + 8).collect(), 8));
    }
    let (plans, finished) = run(&mut s);
    (s, plans, finished)
}

#[test]
fn recompute_preempts_newest_and_recomputes_without_counting_hits() {
    let (s, plans, finished) = tight(PreemptionMode::Recompute);
    let st = s.stats();
    assert!(st.preemptions > 0 && st.recompute_tokens > 0, "{st:?}");
    assert!(
        plans
            .iter()
            .all(|p| p.swap_out.is_empty() && p.swap_in.is_empty())
    );
    // Only first admissions are looked up, and nothing was shared.
    assert_eq!(st.prefix_lookup_tokens, 24);
    assert_eq!(st.prefix_hit_tokens, 0);
    assert!(st.evicted_blocks > 0);
    // Request 0 is the oldest: never preempted.
    let f0 = finished.iter().find(|f| f.request == 0).unwrap();
    assert_eq!(f0.preempted, 0);
    assert!(
        finished
            .iter()
            .all(|f| f.status == FinishStatus::Completed && f.generated == 8)
    );
    assert_eq!(finished.len(), 3);
}

#[test]
fn swap_out_and_in_restore_the_same_tokens() {
    let (mut s, _, _) = tight(PreemptionMode::Swap);
    let st = s.stats();
    assert!(st.preemptions > 0 && st.swap_out_blocks > 0, "{st:?}");
    assert_eq!(st.swap_out_blocks, st.swap_in_blocks);
    assert_eq!(st.recompute_tokens, 0);
    // Step by step: the tokens a request holds after swap-in are those it held before.
    let mut s2 = Scheduler::new(cache(8), config(16, PreemptionMode::Swap)).unwrap();
    for id in 0..3 {
        s2.submit(req(id, (id as u32 * 100..id as u32 * 100 + 8).collect(), 8));
    }
    let mut saved = HashMap::new();
    let mut swaps = 0;
    while !s2.is_done() {
        let before: HashMap<u64, Vec<u32>> = s2
            .running
            .iter()
            .map(|&id| (id, s2.cache().tokens(SeqId(id)).to_vec()))
            .collect();
        let plan = s2.schedule().unwrap();
        for o in &plan.swap_out {
            assert_eq!(o.blocks.len(), before[&o.request].len().div_ceil(4));
            saved.insert(o.request, before[&o.request].clone());
        }
        for i in &plan.swap_in {
            assert_eq!(
                s2.cache().tokens(SeqId(i.request)),
                saved[&i.request].as_slice()
            );
            assert_eq!(
                s2.cache().block_table(SeqId(i.request)),
                i.blocks.as_slice()
            );
            swaps += 1;
        }
        s2.complete(&plan);
    }
    assert!(swaps > 0);
    s.cache().check_invariants().unwrap();
    assert!(s.is_done());
    assert!(s.schedule().unwrap().is_empty());
}

#[test]
fn lru_drop_of_a_prefix_a_waiting_request_needs_counts_as_eviction() {
    // max_running 1 serialises: request 0 finishes and leaves its prefix cached, request 1
    // (other stream) fills the pool and evicts it while request 2 (stream 0) still waits.
    let mut cfg = config(64, PreemptionMode::Recompute);
    cfg.max_running = 1;
    let mut s = Scheduler::new(cache(4), cfg).unwrap();
    s.submit(req(0, (0..9).collect(), 1));
    s.submit(req(1, (100..114).collect(), 1));
    s.submit(req(2, (0..9).collect(), 1));
    let (_, finished) = run(&mut s);
    assert_eq!(finished.len(), 3);
    let st = s.stats();
    assert_eq!(st.preemptions, 0);
    assert!(st.evicted_cached_blocks_total >= 2);
    assert_eq!(st.evicted_blocks, 2, "{st:?}");
    assert_eq!(st.prefix_hit_tokens, 0);
}

#[test]
fn fragmentation_counts_empty_slots_of_partial_blocks() {
    let mut s = Scheduler::new(cache(8), config(64, PreemptionMode::Recompute)).unwrap();
    s.submit(req(0, (0..5).collect(), 1));
    s.submit(req(1, (10..17).collect(), 1));
    let plan = s.schedule().unwrap();
    // 5 tokens: 3 empty slots; 7 tokens: 1 empty slot.
    assert_eq!(s.stats().peak_fragmentation_slots, 4);
    assert_eq!(s.stats().peak_used_blocks, 4);
    assert_eq!(s.stats().mean_fragmentation_fraction, 4.0 / 16.0);
    assert_eq!(s.stats().peak_fragmentation_fraction, 4.0 / 16.0);
    // Contiguous: each request reserves prompt + 1 generated token (6 and 8 slots) and
    // holds its prompt (5 and 7): 2 of 14 empty.
    assert_eq!(s.stats().mean_contiguous_waste_fraction, 2.0 / 14.0);
    assert_eq!(s.stats().peak_contiguous_waste_fraction, 2.0 / 14.0);
    s.complete(&plan);
}
