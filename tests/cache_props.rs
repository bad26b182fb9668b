//! Property tests of the cache bookkeeping: random operation sequences on small pools (so
//! `OutOfBlocks` is common), checked against an independent model after every operation,
//! including a simulated block memory that the returned slots and copies are applied to.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use pagekv::cache::{
    AppendPlan, CacheError, CacheLayout, KvCacheManager, KvFormat, ModelGeometry, RELEASED, SeqId,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Add(u64),
    /// Admit with a templated prompt of `len` tokens, then append the uncached rest.
    Admit(u64, u8, usize),
    /// Append `n` tokens continuing template `tpl`.
    Append(u64, usize, u8),
    Fork(u64, u64),
    Free(u64),
    /// Release the blocks outside a sliding window of this many keys.
    Slide(u64, u32),
}

/// Templates 0-2 share their first 6 tokens, so prefix hits happen across templates too;
/// template 3 repeats one token, so identical blocks occur behind different prefixes.
fn tpl_token(tpl: u8, pos: usize) -> u32 {
    if tpl == 3 {
        return 7;
    }
    if pos < 6 {
        pos as u32
    } else {
        tpl as u32 * 1000 + pos as u32
    }
}

fn layout(block_size: u32) -> CacheLayout {
    CacheLayout {
        geometry: ModelGeometry::qwen2_5_0_5b(),
        block_size,
        dtype: KvFormat::F16,
    }
}

/// What a slot holds: K/V of a token depend on every token up to it (position and context),
/// so the simulated memory stores a fingerprint of the whole prefix ending at that token.
fn fingerprint(prefix: &[u32]) -> u64 {
    let mut h = DefaultHasher::new();
    prefix.hash(&mut h);
    h.finish()
}

/// The manager plus an independent model: expected tokens per sequence and a simulated KV
/// memory (one prefix fingerprint per slot) to which every plan is applied as the GPU would.
struct Harness {
    m: KvCacheManager,
    tokens: BTreeMap<SeqId, Vec<u32>>,
    /// Leading block-table entries released by sliding windows, per sequence.
    slid: BTreeMap<SeqId, usize>,
    mem: Vec<Option<u64>>,
    bs: usize,
}

impl Harness {
    fn new(blocks: u32, bs: u32, prefix: bool) -> Self {
        Self {
            m: KvCacheManager::new(layout(bs), blocks, prefix).unwrap(),
            tokens: BTreeMap::new(),
            slid: BTreeMap::new(),
            mem: vec![None; (blocks * bs) as usize],
            bs: bs as usize,
        }
    }

    fn apply_plan(&mut self, id: SeqId, start: usize, new: &[u32], plan: &AppendPlan) {
        assert_eq!(plan.slots.len(), new.len());
        for c in &plan.copies {
            let (s, d) = (c.src as usize * self.bs, c.dst as usize * self.bs);
            for i in 0..self.bs {
                self.mem[d + i] = self.mem[s + i];
            }
        }
        let table = self.m.block_table(id);
        let toks = self.tokens.get_mut(&id).unwrap();
        for (i, (&slot, &tok)) in plan.slots.iter().zip(new).enumerate() {
            let pos = start + i;
            let slot = slot as usize;
            assert_eq!(
                slot / self.bs,
                table[pos / self.bs] as usize,
                "slot maps to table"
            );
            assert_eq!(slot % self.bs, pos % self.bs, "slot offset");
            toks.push(tok);
            self.mem[slot] = Some(fingerprint(toks));
        }
    }

    /// Appends and checks all-or-nothing plus that no other sequence is touched.
    fn append(&mut self, id: SeqId, new: &[u32]) -> Result<(), CacheError> {
        let before = self.m.clone();
        let others: Vec<_> = self
            .tokens
            .keys()
            .filter(|&&o| o != id)
            .map(|&o| (o, self.m.block_table(o).to_vec()))
            .collect();
        let predicted = self.m.blocks_needed_to_append(id, new.len() as u32);
        let can = self.m.can_append(id, new.len() as u32);
        match self.m.append_tokens(id, new) {
            Ok(plan) => {
                assert!(can);
                let used = before.num_free_blocks() - self.m.num_free_blocks();
                assert_eq!(Ok(used), predicted);
                let start = self.tokens[&id].len();
                self.apply_plan(id, start, new, &plan);
                for (o, table) in others {
                    assert_eq!(self.m.block_table(o), &table[..], "append touched {o}");
                }
                Ok(())
            }
            Err(e) => {
                assert!(!can);
                assert_eq!(self.m, before, "failed append changed state");
                if let CacheError::OutOfBlocks { needed, available } = e {
                    assert_eq!(available, before.num_free_blocks());
                    assert!(needed > available);
                    assert_eq!(Ok(needed), predicted);
                }
                Err(e)
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Add(i) => {
                let before = self.m.clone();
                match self.m.add_sequence(SeqId(i)) {
                    Ok(()) => assert!(self.tokens.insert(SeqId(i), Vec::new()).is_none()),
                    Err(_) => assert_eq!(self.m, before),
                }
            }
            Op::Admit(i, tpl, len) => {
                let id = SeqId(i);
                let prompt: Vec<u32> = (0..len).map(|p| tpl_token(tpl, p)).collect();
                let before = self.m.clone();
                let predicted_cached = self.m.cached_prefix_tokens(&prompt);
                let predicted_blocks = self.m.blocks_needed_to_admit(&prompt);
                let Ok(hit) = self.m.admit_with_prefix(id, &prompt) else {
                    assert_eq!(self.m, before);
                    return;
                };
                let cached = hit.cached_tokens as usize;
                assert_eq!(hit.cached_tokens, predicted_cached);
                assert_eq!(cached % self.bs, 0);
                assert!(
                    cached == 0 || cached < len,
                    "last prompt token must be computed"
                );
                assert!(hit.cached_tokens <= hit.shareable_tokens);
                assert_eq!(self.m.tokens(id), &prompt[..cached]);
                self.tokens.insert(id, prompt[..cached].to_vec());
                if self.append(id, &prompt[cached..]).is_ok() {
                    let used = before.num_free_blocks() - self.m.num_free_blocks();
                    assert_eq!(used, predicted_blocks);
                }
            }
            Op::Append(i, n, tpl) => {
                let id = SeqId(i);
                let start = self.tokens.get(&id).map_or(0, Vec::len);
                let new: Vec<u32> = (start..start + n).map(|p| tpl_token(tpl, p)).collect();
                if self.append(id, &new).is_err() && !self.tokens.contains_key(&id) {
                    assert!(!self.m.contains(id));
                }
            }
            Op::Fork(p, c) => {
                let before = self.m.clone();
                match self.m.fork(SeqId(p), SeqId(c)) {
                    Ok(()) => {
                        assert_eq!(self.m.block_table(SeqId(p)), self.m.block_table(SeqId(c)));
                        let t = self.tokens[&SeqId(p)].clone();
                        assert!(self.tokens.insert(SeqId(c), t).is_none());
                        let slid = self.slid.get(&SeqId(p)).copied().unwrap_or(0);
                        self.slid.insert(SeqId(c), slid);
                    }
                    Err(_) => assert_eq!(self.m, before),
                }
            }
            Op::Free(i) => {
                let before = self.m.clone();
                match self.m.free(SeqId(i)) {
                    Ok(()) => {
                        assert!(self.tokens.remove(&SeqId(i)).is_some());
                        self.slid.remove(&SeqId(i));
                    }
                    Err(_) => assert_eq!(self.m, before),
                }
            }
            Op::Slide(i, window) => {
                let id = SeqId(i);
                let before = self.m.clone();
                match self.m.release_outside_window(id, window) {
                    Ok(released) => {
                        // Blocks wholly before the next query's window are released, once.
                        let len = self.tokens[&id].len();
                        let out = (len + 1).saturating_sub(window as usize) / self.bs;
                        let was = self.slid.get(&id).copied().unwrap_or(0);
                        let now = out.max(was).min(len.div_ceil(self.bs));
                        assert_eq!(released as usize, now.saturating_sub(was));
                        self.slid.insert(id, now);
                    }
                    Err(_) => assert_eq!(self.m, before),
                }
            }
        }
    }

    fn check(&self) {
        self.m.check_invariants().unwrap();
        let pool = self.m.pool();
        let n = self.m.num_blocks() as usize;
        assert_eq!(
            self.m.seq_ids().collect::<Vec<_>>(),
            self.tokens.keys().copied().collect::<Vec<_>>()
        );
        // Count references held by block tables independently of the manager.
        let mut refs = vec![0u32; n];
        for (&id, toks) in &self.tokens {
            let table = self.m.block_table(id);
            assert_eq!(table.len(), toks.len().div_ceil(self.bs));
            assert_eq!(self.m.tokens(id), &toks[..]);
            assert_eq!(self.m.context_len(id) as usize, toks.len());
            // Released entries are exactly the leading blocks slid past.
            let slid = self.slid.get(&id).copied().unwrap_or(0);
            for (i, &b) in table.iter().enumerate() {
                assert_eq!(b == RELEASED, i < slid, "seq {id} entry {i}");
                if b != RELEASED {
                    refs[b as usize] += 1;
                }
            }
            // Every token still in the window readable through the table from memory.
            for pos in slid * self.bs..toks.len() {
                let slot = table[pos / self.bs] as usize * self.bs + pos % self.bs;
                let want = Some(fingerprint(&toks[..=pos]));
                assert_eq!(self.mem[slot], want, "seq {id} pos {pos}");
            }
        }
        let in_use: BTreeSet<u32> = (0..n as u32).filter(|&b| refs[b as usize] > 0).collect();
        for b in 0..n as u32 {
            assert_eq!(pool.refcount(b), refs[b as usize], "refcount of block {b}");
        }
        let free: Vec<u32> = pool.free_blocks().to_vec();
        let cached: Vec<u32> = pool.evictable_blocks().collect();
        let idle: BTreeSet<u32> = free.iter().chain(&cached).copied().collect();
        assert_eq!(idle.len(), free.len() + cached.len(), "block listed twice");
        assert!(idle.is_disjoint(&in_use), "a block is both free and in use");
        assert_eq!(idle.len() + in_use.len(), n, "a block is lost");
        assert_eq!(self.m.num_used_blocks() as usize, in_use.len());
        assert_eq!(self.m.num_free_blocks() as usize, idle.len());
        let s = self.m.stats();
        assert!(s.prefix_hit_tokens <= s.prefix_lookup_tokens);
        assert!(s.evicted_cached_blocks + s.cow_copies <= s.blocks_allocated);
    }

    fn free_all(&mut self) {
        for id in self.tokens.keys().copied().collect::<Vec<_>>() {
            self.step(&Op::Free(id.0));
            self.check();
        }
        assert_eq!(self.m.num_used_blocks(), 0, "leak");
        assert_eq!(self.m.num_free_blocks(), self.m.num_blocks());
    }
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u64..5;
    prop_oneof![
        1 => id.clone().prop_map(Op::Add),
        3 => (id.clone(), 0u8..4, 0usize..20).prop_map(|(i, t, l)| Op::Admit(i, t, l)),
        4 => (id.clone(), 0usize..12, 0u8..4).prop_map(|(i, n, t)| Op::Append(i, n, t)),
        2 => (id.clone(), id.clone()).prop_map(|(p, c)| Op::Fork(p, c)),
        2 => id.clone().prop_map(Op::Free),
        2 => (id, 1u32..20).prop_map(|(i, w)| Op::Slide(i, w)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_ops_keep_every_invariant(
        blocks in 1u32..12,
        bs in prop_oneof![Just(1u32), Just(2), Just(4), Just(8)],
        prefix in any::<bool>(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut h = Harness::new(blocks, bs, prefix);
        for op in &ops {
            h.step(op);
            h.check();
        }
        h.free_all();
    }
}

#[test]
fn second_request_with_same_prefix_reuses_full_blocks() {
    let mut h = Harness::new(16, 4, true);
    let prompt: Vec<u32> = (100..110).collect(); // 10 tokens: 2 full blocks + 2
    let first = h.m.admit_with_prefix(SeqId(1), &prompt).unwrap();
    assert_eq!(first.cached_tokens, 0);
    h.tokens.insert(SeqId(1), Vec::new());
    h.append(SeqId(1), &prompt).unwrap();
    let second = h.m.admit_with_prefix(SeqId(2), &prompt).unwrap();
    assert_eq!(second.cached_tokens, 8);
    assert_eq!(second.lookup_tokens, 10);
    assert_eq!(h.m.block_table(SeqId(2)), &h.m.block_table(SeqId(1))[..2]);
    h.tokens.insert(SeqId(2), prompt[..8].to_vec());
    h.append(SeqId(2), &prompt[8..]).unwrap();
    h.check();
    let s = h.m.stats();
    assert_eq!((s.prefix_lookup_tokens, s.prefix_hit_tokens), (20, 8));
    assert_eq!(s.prefix_hit_rate(), Some(0.4));
    // Same tokens behind a different prefix must not hit.
    let other: Vec<u32> = [1, 2, 3, 4].iter().chain(&prompt).copied().collect();
    assert_eq!(h.m.cached_prefix_tokens(&other), 0);
    h.free_all();
}

#[test]
fn lru_eviction_drops_oldest_cached_block_first() {
    let mut h = Harness::new(4, 4, true);
    let a: Vec<u32> = (0..5).collect();
    let b: Vec<u32> = (50..55).collect();
    for (id, p) in [(1, &a), (2, &b)] {
        h.m.admit_with_prefix(SeqId(id), p).unwrap();
        h.tokens.insert(SeqId(id), Vec::new());
        h.append(SeqId(id), p).unwrap();
    }
    h.free_all(); // frees 1 then 2: a's full block is the oldest cached block
    assert_eq!(h.m.num_cached_blocks(), 2);
    h.step(&Op::Add(3));
    h.append(SeqId(3), &[900; 12]).unwrap(); // 3 blocks: 2 free + 1 eviction
    h.check();
    assert_eq!(h.m.stats().evicted_cached_blocks, 1);
    assert_eq!(h.m.cached_prefix_tokens(&a), 0, "oldest (a) evicted");
    assert_eq!(h.m.cached_prefix_tokens(&b), 4, "newer (b) kept");
    h.free_all();
}

#[test]
fn fork_and_append_to_child_leaves_parent_unchanged() {
    let mut h = Harness::new(8, 4, true);
    h.step(&Op::Add(1));
    h.append(SeqId(1), &[1, 2, 3, 4, 5, 6]).unwrap();
    h.step(&Op::Fork(1, 2));
    let parent_table = h.m.block_table(SeqId(1)).to_vec();
    h.append(SeqId(2), &[7, 8, 9]).unwrap();
    h.append(SeqId(1), &[70]).unwrap(); // parent's block is now exclusive again: no copy
    h.check();
    assert_eq!(h.m.block_table(SeqId(1)), &parent_table[..]);
    assert_eq!(h.m.tokens(SeqId(1)), &[1, 2, 3, 4, 5, 6, 70]);
    assert_eq!(h.m.stats().cow_copies, 1);
    h.free_all();
}
