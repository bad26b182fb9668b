//! Unit tests of `KvCacheManager`, kept beside `manager.rs` so that file stays short.

use super::*;
use crate::cache::pool::fault;
use crate::cache::{KvFormat, ModelGeometry};

fn layout(block_size: u32) -> CacheLayout {
    CacheLayout {
        geometry: ModelGeometry::qwen2_5_0_5b(),
        block_size,
        dtype: KvFormat::F16,
    }
}

fn mgr(blocks: u32, prefix: bool) -> KvCacheManager {
    KvCacheManager::new(layout(4), blocks, prefix).unwrap()
}

#[test]
fn append_allocates_at_boundaries_and_returns_slots() {
    let mut m = mgr(4, false);
    let s = SeqId(1);
    m.add_sequence(s).unwrap();
    assert_eq!(m.add_sequence(s), Err(CacheError::DuplicateSequence(s)));
    let plan = m.append_tokens(s, &[10, 11, 12, 13, 14]).unwrap();
    assert_eq!(m.block_table(s), &[0, 1]);
    assert_eq!(plan.slots, vec![0, 1, 2, 3, 4]);
    assert!(plan.copies.is_empty());
    assert_eq!(m.context_len(s), 5);
    assert_eq!(m.blocks_needed_to_append(s, 3), Ok(0));
    assert_eq!(m.blocks_needed_to_append(s, 4), Ok(1));
    m.free(s).unwrap();
    assert_eq!(m.num_used_blocks(), 0);
    m.check_invariants().unwrap();
}

#[test]
fn out_of_blocks_changes_nothing() {
    let mut m = mgr(2, true);
    m.add_sequence(SeqId(1)).unwrap();
    m.append_tokens(SeqId(1), &[1, 2, 3]).unwrap();
    let before = m.clone();
    let err = m.append_tokens(SeqId(1), &[0; 10]).unwrap_err();
    assert_eq!(
        err,
        CacheError::OutOfBlocks {
            needed: 3,
            available: 1
        }
    );
    assert!(!m.can_append(SeqId(1), 10));
    assert_eq!(m, before);
}

#[test]
fn fork_then_append_copies_the_shared_partial_block() {
    let mut m = mgr(4, false);
    let (p, c) = (SeqId(1), SeqId(2));
    m.add_sequence(p).unwrap();
    m.append_tokens(p, &[1, 2, 3, 4, 5, 6]).unwrap();
    m.fork(p, c).unwrap();
    assert_eq!(m.pool().refcount(1), 2);
    assert_eq!(m.blocks_needed_to_append(c, 1), Ok(1));
    let plan = m.append_tokens(c, &[9]).unwrap();
    assert_eq!(plan.copies, vec![BlockCopy { src: 1, dst: 2 }]);
    assert_eq!(plan.slots, vec![2 * 4 + 2]);
    assert_eq!(m.block_table(p), &[0, 1]);
    assert_eq!(m.block_table(c), &[0, 2]);
    assert_eq!(m.tokens(p), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(m.stats().cow_copies, 1);
    m.check_invariants().unwrap();
}

#[test]
fn prefix_reuse_keeps_last_token_uncached() {
    let mut m = mgr(8, true);
    let prompt: Vec<u32> = (0..8).collect();
    let hit = m.admit_with_prefix(SeqId(1), &prompt).unwrap();
    assert_eq!(hit.cached_tokens, 0);
    m.append_tokens(SeqId(1), &prompt).unwrap();
    m.free(SeqId(1)).unwrap();
    assert_eq!(m.num_cached_blocks(), 2);
    // Exactly two full blocks: the second holds the last token, so only one is reused.
    assert_eq!(m.blocks_needed_to_admit(&prompt), 2);
    let hit = m.admit_with_prefix(SeqId(2), &prompt).unwrap();
    assert_eq!(
        (hit.cached_tokens, hit.shareable_tokens, hit.lookup_tokens),
        (4, 4, 8)
    );
    assert_eq!(m.stats().prefix_hit_tokens, 4);
    m.check_invariants().unwrap();
}

/// An append takes all its blocks before it registers any full one, so when it evicts the
/// cached copy of a block it is recomputing, its own copy becomes the cached one.
#[test]
fn append_evicts_before_registering_so_recomputed_blocks_stay_cached() {
    let mut m = mgr(3, true);
    m.add_sequence(SeqId(1)).unwrap();
    m.append_tokens(SeqId(1), &prompt(8)).unwrap();
    m.free(SeqId(1)).unwrap();
    assert_eq!(m.num_cached_blocks(), 2);
    // The free block plus both cached ones, whose contents sequence 2 recomputes.
    m.add_sequence(SeqId(2)).unwrap();
    m.append_tokens(SeqId(2), &prompt(12)).unwrap();
    assert_eq!(m.stats().evicted_cached_blocks, 2);
    assert_eq!(m.cached_prefix_tokens(&prompt(13)), 12);
    m.check_invariants().unwrap();
}

#[test]
fn unknown_ids_are_errors_not_panics() {
    let mut m = mgr(4, true);
    let s = SeqId(9);
    assert_eq!(m.block_table(s), &[] as &[BlockId]);
    assert_eq!(m.tokens(s), &[] as &[u32]);
    assert_eq!(m.context_len(s), 0);
    assert!(!m.can_append(s, 1));
    let before = m.clone();
    let unknown = CacheError::UnknownSequence(s);
    assert_eq!(m.blocks_needed_to_append(s, 1), Err(unknown.clone()));
    assert_eq!(m.append_tokens(s, &[1]), Err(unknown.clone()));
    assert_eq!(m.fork(s, SeqId(1)), Err(unknown.clone()));
    assert_eq!(m.free(s), Err(unknown));
    assert_eq!(m, before);
}

#[test]
fn check_invariants_names_what_is_broken() {
    let mut m = mgr(4, true);
    let s = SeqId(3);
    m.add_sequence(s).unwrap();
    m.append_tokens(s, &[1, 2, 3, 4, 5]).unwrap();
    m.check_invariants().unwrap();

    let mut bad = m.clone();
    bad.seqs.get_mut(&s).unwrap().blocks.push(2);
    assert_eq!(
        bad.check_invariants(),
        Err(InvariantViolation::TableLength {
            seq: s,
            blocks: 3,
            tokens: 5
        })
    );
    let mut bad = m.clone();
    bad.seqs.get_mut(&s).unwrap().blocks[0] = 99;
    assert_eq!(
        bad.check_invariants(),
        Err(InvariantViolation::TableBlockOutOfRange { seq: s, block: 99 })
    );
    let mut bad = m.clone();
    bad.seqs.get_mut(&s).unwrap().blocks[0] = 3;
    let err = bad.check_invariants().unwrap_err();
    assert_eq!(
        err,
        InvariantViolation::RefcountMismatch {
            block: 0,
            refcount: 1,
            table_refs: 0
        }
    );
    assert_eq!(
        err.to_string(),
        "block 0: refcount 1 differs from 0 table references"
    );
}

// Failures in the middle of an operation. `fault::fail_nth(n)` makes the operation's `n`th
// pool step (allocate, retain or release) fail, after earlier steps have changed the pool;
// the operation must still leave the manager exactly as it was.

/// Runs `op` with the `n`th pool step failing (no failure for `None`). Returns the result and
/// whether the failure happened (false if the operation took fewer steps).
fn with_fault<T>(
    m: &mut KvCacheManager,
    fail_nth: Option<u32>,
    op: impl FnOnce(&mut KvCacheManager) -> Result<T, CacheError>,
) -> (Result<T, CacheError>, bool) {
    if let Some(n) = fail_nth {
        fault::fail_nth(n);
    }
    let result = op(m);
    (result, fault::disarm())
}

/// Everything a caller can observe about the manager, read through its public API: the
/// snapshot a failed operation must leave as it found.
#[derive(Debug, PartialEq)]
struct Snapshot {
    free: Vec<BlockId>,
    evictable: Vec<BlockId>,
    refcounts: Vec<u32>,
    /// Each block's registered prefix hash, and the block a lookup of that hash finds.
    prefix_cache: Vec<Option<(PrefixHash, Option<BlockId>)>>,
    /// Per live sequence: block table, tokens, context length.
    seqs: Vec<(SeqId, Vec<BlockId>, Vec<u32>, u32)>,
    stats: CacheStats,
    /// Free, used and cached block counts.
    counts: [u32; 3],
}

impl Snapshot {
    fn of(m: &KvCacheManager) -> Self {
        let pool = m.pool();
        let blocks = 0..m.num_blocks();
        Self {
            free: pool.free_blocks().to_vec(),
            evictable: pool.evictable_blocks().collect(),
            refcounts: blocks.clone().map(|b| pool.refcount(b)).collect(),
            prefix_cache: blocks
                .map(|b| pool.cached_hash(b).map(|h| (h, pool.lookup(h))))
                .collect(),
            seqs: m
                .seq_ids()
                .map(|id| {
                    let table = m.block_table(id).to_vec();
                    (id, table, m.tokens(id).to_vec(), m.context_len(id))
                })
                .collect(),
            stats: m.stats(),
            counts: [
                m.num_free_blocks(),
                m.num_used_blocks(),
                m.num_cached_blocks(),
            ],
        }
    }
}

/// Runs `op` with a failure injected at pool step `fail_nth`, then checks all or nothing: on
/// `Err` the snapshot (and the whole manager, private state included) is unchanged; an
/// injected failure always surfaces as `Err`; and the invariants hold either way.
fn checked<T>(
    m: &mut KvCacheManager,
    fail_nth: Option<u32>,
    op: impl FnOnce(&mut KvCacheManager) -> Result<T, CacheError>,
) -> Result<T, CacheError> {
    let before = m.clone();
    let snapshot = Snapshot::of(m);
    let (result, fired) = with_fault(m, fail_nth, op);
    assert!(
        !fired || result.is_err(),
        "an injected failure was swallowed"
    );
    if result.is_err() {
        assert_eq!(Snapshot::of(m), snapshot, "failed operation changed state");
        assert_eq!(*m, before, "failed operation changed private state");
    }
    if let Err(e) = m.check_invariants() {
        panic!("invariant broken: {e}");
    }
    result
}

/// The tokens `0..len`: any two such prompts share their leading full blocks.
fn prompt(len: u32) -> Vec<u32> {
    (0..len).collect()
}

#[test]
fn fork_failing_on_any_retain_retains_nothing() {
    let mut m = mgr(8, false);
    let (p, c) = (SeqId(1), SeqId(2));
    m.add_sequence(p).unwrap();
    m.append_tokens(p, &prompt(10)).unwrap();
    for n in 0..3 {
        let err = checked(&mut m, Some(n), |m| m.fork(p, c)).unwrap_err();
        assert_eq!(
            err,
            CacheError::RefcountOverflow(m.block_table(p)[n as usize])
        );
        assert!(!m.contains(c));
        assert!((0..3).all(|b| m.pool().refcount(b) == 1));
    }
    let (result, fired) = with_fault(&mut m, Some(3), |m| m.fork(p, c));
    assert_eq!((result, fired), (Ok(()), false), "fork takes three retains");
}

#[test]
fn admit_failing_on_a_later_retain_revives_and_counts_nothing() {
    let mut m = mgr(8, true);
    m.admit_with_prefix(SeqId(1), &prompt(13)).unwrap();
    m.append_tokens(SeqId(1), &prompt(13)).unwrap();
    m.free(SeqId(1)).unwrap();
    assert_eq!(m.num_cached_blocks(), 3);
    // Sequence 2 takes the first cached block back into use; 1 and 2 stay evictable.
    m.admit_with_prefix(SeqId(2), &prompt(5)).unwrap();
    m.append_tokens(SeqId(2), &[4]).unwrap();
    assert_eq!(m.num_cached_blocks(), 2);
    let full = prompt(13);
    for n in 1..3 {
        checked(&mut m, Some(n), |m| m.admit_with_prefix(SeqId(3), &full)).unwrap_err();
        assert!(!m.contains(SeqId(3)));
        assert_eq!(m.num_cached_blocks(), 2);
        assert_eq!(m.cached_prefix_tokens(&full), 12);
    }
    let hit = checked(&mut m, Some(3), |m| m.admit_with_prefix(SeqId(3), &full)).unwrap();
    assert_eq!(hit.cached_tokens, 12);
}

#[test]
fn append_failing_after_copy_on_write_changes_nothing() {
    let mut m = mgr(8, false);
    let (p, c) = (SeqId(1), SeqId(2));
    m.add_sequence(p).unwrap();
    m.append_tokens(p, &prompt(6)).unwrap();
    m.fork(p, c).unwrap();
    // Copy (allocate, release the shared block), then two new blocks: four steps.
    let tail = prompt(9);
    for n in 0..4 {
        checked(&mut m, Some(n), |m| m.append_tokens(c, &tail)).unwrap_err();
        assert_eq!(m.block_table(c), m.block_table(p));
        assert_eq!(m.stats().cow_copies, 0);
    }
    let plan = checked(&mut m, Some(4), |m| m.append_tokens(c, &tail)).unwrap();
    assert_eq!(plan.copies.len(), 1);
}

#[test]
fn append_failing_after_an_eviction_restores_the_cached_block() {
    let mut m = mgr(3, true);
    m.add_sequence(SeqId(1)).unwrap();
    m.append_tokens(SeqId(1), &prompt(8)).unwrap();
    m.free(SeqId(1)).unwrap();
    assert_eq!(m.num_cached_blocks(), 2);
    m.add_sequence(SeqId(2)).unwrap();
    // One block from the free list, then two evictions.
    for n in 1..3 {
        checked(&mut m, Some(n), |m| m.append_tokens(SeqId(2), &[7; 12])).unwrap_err();
        assert_eq!(m.num_cached_blocks(), 2);
        assert_eq!(m.stats().evicted_cached_blocks, 0);
        assert_eq!(m.cached_prefix_tokens(&prompt(9)), 8);
    }
}

#[test]
fn free_failing_midway_releases_nothing() {
    let mut m = mgr(8, true);
    let (p, c) = (SeqId(1), SeqId(2));
    m.add_sequence(p).unwrap();
    m.append_tokens(p, &prompt(10)).unwrap();
    m.fork(p, c).unwrap();
    m.free(c).unwrap();
    for n in 1..3 {
        checked(&mut m, Some(n), |m| m.free(p)).unwrap_err();
        assert!(m.contains(p));
        assert_eq!(m.num_used_blocks(), 3);
    }
    checked(&mut m, None, |m| m.free(p)).unwrap();
    assert_eq!(m.num_cached_blocks(), 2);
}

mod fault_props {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Add(u64),
        /// Admit a templated prompt of `len` tokens, then append the uncached rest.
        Admit(u64, u8, u32),
        /// Append `n` tokens continuing template `tpl`.
        Append(u64, u32, u8),
        Fork(u64, u64),
        Free(u64),
        /// Release the blocks outside a sliding window of this many keys.
        Slide(u64, u32),
        /// Restore a templated sequence of `len` tokens with this many leading blocks released.
        Restore(u64, u8, u32, u32),
    }

    /// Templates share their first 6 tokens, so prompts hit each other's cached blocks.
    fn tpl_token(tpl: u8, pos: u32) -> u32 {
        if pos < 6 {
            pos
        } else {
            tpl as u32 * 1000 + pos
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = 0u64..5;
        prop_oneof![
            1 => id.clone().prop_map(Op::Add),
            3 => (id.clone(), 0u8..3, 0u32..20).prop_map(|(i, t, l)| Op::Admit(i, t, l)),
            4 => (id.clone(), 0u32..12, 0u8..3).prop_map(|(i, n, t)| Op::Append(i, n, t)),
            2 => (id.clone(), id.clone()).prop_map(|(p, c)| Op::Fork(p, c)),
            2 => id.clone().prop_map(Op::Free),
            2 => (id.clone(), 1u32..20).prop_map(|(i, w)| Op::Slide(i, w)),
            2 => (id, 0u8..3, 0u32..20, 0u32..6)
                .prop_map(|(i, t, l, f)| Op::Restore(i, t, l, f)),
        ]
    }

    /// Applies `op` with pool step `fail_nth` failing in each manager call it makes. The
    /// results are checked inside `checked`; here only success decides what comes next.
    fn step(m: &mut KvCacheManager, op: &Op, fail_nth: Option<u32>) {
        match *op {
            Op::Add(i) => {
                let _ = checked(m, fail_nth, |m| m.add_sequence(SeqId(i)));
            }
            Op::Admit(i, tpl, len) => {
                let prompt: Vec<u32> = (0..len).map(|p| tpl_token(tpl, p)).collect();
                let admitted = checked(m, fail_nth, |m| m.admit_with_prefix(SeqId(i), &prompt));
                if let Ok(hit) = admitted {
                    let rest = &prompt[hit.cached_tokens as usize..];
                    let _ = checked(m, fail_nth, |m| m.append_tokens(SeqId(i), rest));
                }
            }
            Op::Append(i, n, tpl) => {
                let start = m.context_len(SeqId(i));
                let new: Vec<u32> = (start..start + n).map(|p| tpl_token(tpl, p)).collect();
                let _ = checked(m, fail_nth, |m| m.append_tokens(SeqId(i), &new));
            }
            Op::Fork(p, c) => {
                let _ = checked(m, fail_nth, |m| m.fork(SeqId(p), SeqId(c)));
            }
            Op::Free(i) => {
                let _ = checked(m, fail_nth, |m| m.free(SeqId(i)));
            }
            Op::Slide(i, w) => {
                let _ = checked(m, fail_nth, |m| m.release_outside_window(SeqId(i), w));
            }
            Op::Restore(i, tpl, len, first_live) => {
                let tokens: Vec<u32> = (0..len).map(|p| tpl_token(tpl, p)).collect();
                let _ = checked(m, fail_nth, |m| {
                    m.restore_sequence(SeqId(i), &tokens, first_live)
                });
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Random operations on small pools (so real `OutOfBlocks` is common too), each with
        /// an optional failure at a random pool step: every `Err` must leave the manager as it
        /// was (`checked` asserts it after every call).
        #[test]
        fn failing_midway_changes_nothing(
            blocks in 1u32..12,
            bs in prop_oneof![Just(1u32), Just(2), Just(4)],
            prefix in any::<bool>(),
            ops in prop::collection::vec((op(), prop::option::weighted(0.7, 0u32..4)), 1..60),
        ) {
            let mut m = KvCacheManager::new(layout(bs), blocks, prefix).unwrap();
            for (op, fail_nth) in &ops {
                step(&mut m, op, *fail_nth);
            }
        }
    }
}

/// A long generation under a sliding window holds at most ceil(W / bs) + 1 blocks, and a
/// prefix block one sequence slid past stays live for the fork that still sees it.
#[test]
fn a_window_bounds_the_blocks_a_long_generation_holds() {
    let (bs, window) = (16u32, 40u32);
    let mut m = KvCacheManager::new(layout(bs), 64, true).unwrap();
    let id = SeqId(1);
    m.add_sequence(id).unwrap();
    m.append_tokens(id, &(0..50).collect::<Vec<_>>()).unwrap();
    m.fork(id, SeqId(2)).unwrap();
    let bound = window.div_ceil(bs) + 1;
    for token in 50..2000u32 {
        m.append_tokens(id, &[token]).unwrap();
        m.release_outside_window(id, window).unwrap();
        let held = m.block_table(id).iter().filter(|&&b| b != RELEASED).count() as u32;
        assert!(held <= bound, "{held} blocks at {} tokens", token + 1);
        m.check_invariants().unwrap();
    }
    // The fork still holds the 50-token prefix it shares: 4 blocks, the last partial.
    let fork_blocks: Vec<_> = m.block_table(SeqId(2)).to_vec();
    assert!(
        fork_blocks
            .iter()
            .all(|&b| b != RELEASED && m.pool().refcount(b) >= 1)
    );
    // The window-bounded sequence plus the fork's four blocks are all the pool holds.
    assert!(m.num_used_blocks() <= bound + 4);
    assert_eq!(
        m.release_outside_window(id, 0),
        Err(CacheError::InvalidConfig(
            "a sliding window must hold at least one key".into()
        ))
    );
    m.free(id).unwrap();
    m.free(SeqId(2)).unwrap();
    assert_eq!(m.num_used_blocks(), 0);
}

/// A windowed sequence comes back from host memory with only its live blocks: released
/// entries before them, full live blocks registered for reuse, nothing taken when the pool
/// is short.
#[test]
fn restore_allocates_only_the_live_blocks() {
    let mut m = mgr(4, true);
    let id = SeqId(7);
    let tokens = prompt(14);
    assert_eq!(
        m.restore_sequence(id, &tokens, 5),
        Err(CacheError::InvalidConfig(
            "5 released blocks but 14 tokens fill only 4".into()
        ))
    );
    let live = m.restore_sequence(id, &tokens, 2).unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(m.block_table(id), &[RELEASED, RELEASED, live[0], live[1]]);
    assert_eq!(m.context_len(id), 14);
    m.check_invariants().unwrap();
    // Block 2 (tokens 8..12) is full and registered; a prompt continuing it finds it only
    // behind blocks 0 and 1, which were never restored, so the lookup misses.
    assert_eq!(m.cached_prefix_tokens(&prompt(20)), 0);
    assert_eq!(
        m.restore_sequence(SeqId(8), &prompt(16), 0),
        Err(CacheError::OutOfBlocks {
            needed: 4,
            available: 2
        })
    );
    assert_eq!(
        m.restore_sequence(id, &tokens, 0),
        Err(CacheError::DuplicateSequence(id))
    );
    m.free(id).unwrap();
    // Without released blocks the whole prefix comes back; with it, the block the windowed
    // sequence left cached (tokens 8..12) completes the chain again.
    m.restore_sequence(SeqId(9), &prompt(9), 0).unwrap();
    assert_eq!(m.cached_prefix_tokens(&prompt(20)), 12);
    m.check_invariants().unwrap();
}
