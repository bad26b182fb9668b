//! Unit tests of `KvCacheManager`, kept beside `manager.rs` so that file stays short.

use super::*;
use crate::cache::{KvDtype, ModelGeometry};

fn mgr(blocks: u32, prefix: bool) -> KvCacheManager {
    let layout = CacheLayout {
        geometry: ModelGeometry::qwen2_5_0_5b(),
        block_size: 4,
        dtype: KvDtype::F16,
    };
    KvCacheManager::new(layout, blocks, prefix).unwrap()
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
