//! The physical block pool: reference counts, a free list and an LRU of cached blocks.
//!
//! Blocks are shared (fork, prefix reuse), so a block is only reusable once nobody references
//! it. A released block that holds a registered prefix is kept as an *evictable cached block*
//! instead of being freed, so a later request with the same prefix can reuse its contents;
//! allocation only evicts such blocks, least recently released first, when the free list is
//! empty. Every operation is O(1) or O(log n), and a failed one changes nothing.

use std::collections::{BTreeMap, HashMap};

use super::error::{CacheError, InvariantViolation};
use super::prefix::PrefixHash;

/// Physical block id; the same id addresses the block in every layer's K and V pool.
pub type BlockId = u32;

/// A block-table entry whose block was released because it slid out of a sliding window
/// ([`crate::cache::KvCacheManager::release_outside_window`]). Kernels treat it as a block no
/// shard holds and never read it; the window keeps every query away from it.
pub const RELEASED: BlockId = BlockId::MAX;

/// Fixed-size pool of physical KV blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockPool {
    refcounts: Vec<u32>,
    /// Registered prefix hash of each block, if any (only full, immutable blocks have one).
    hashes: Vec<Option<PrefixHash>>,
    /// LRU tick of each evictable cached block; `None` when not in the LRU.
    lru_ticks: Vec<Option<u64>>,
    /// Blocks with refcount 0 and no cached prefix: a stack, so reuse is O(1).
    free: Vec<BlockId>,
    /// Evictable cached blocks keyed by the tick they were released at (oldest first).
    lru: BTreeMap<u64, BlockId>,
    /// Prefix index: hash of a full block's token chain -> the block holding it.
    index: HashMap<PrefixHash, BlockId>,
    next_tick: u64,
    evicted_cached_blocks: u64,
    blocks_allocated: u64,
}

impl BlockPool {
    /// A pool of `num_blocks` free blocks (size it with `CacheLayout::blocks_for_budget`).
    /// Block 0 is handed out first, so allocation order is deterministic.
    pub fn new(num_blocks: u32) -> Self {
        let n = num_blocks as usize;
        Self {
            refcounts: vec![0; n],
            hashes: vec![None; n],
            lru_ticks: vec![None; n],
            free: (0..num_blocks).rev().collect(),
            lru: BTreeMap::new(),
            index: HashMap::new(),
            next_tick: 0,
            evicted_cached_blocks: 0,
            blocks_allocated: 0,
        }
    }

    /// Total physical blocks; the pool never hands out more.
    pub fn num_blocks(&self) -> u32 {
        self.refcounts.len() as u32
    }

    /// Blocks an allocation can take: the free list plus evictable cached blocks.
    pub fn num_free(&self) -> u32 {
        (self.free.len() + self.lru.len()) as u32
    }

    /// Blocks with refcount 0 that still hold a reusable cached prefix.
    pub fn num_evictable(&self) -> u32 {
        self.lru.len() as u32
    }

    /// Blocks referenced by at least one block table (refcount > 0).
    pub fn num_used(&self) -> u32 {
        self.num_blocks() - self.num_free()
    }

    /// How many block tables reference `block` (0 for free, cached or out-of-range ids).
    pub fn refcount(&self, block: BlockId) -> u32 {
        self.refcounts.get(block as usize).copied().unwrap_or(0)
    }

    /// Whether `block` sits in the LRU of evictable cached blocks.
    pub fn is_evictable(&self, block: BlockId) -> bool {
        matches!(self.lru_ticks.get(block as usize), Some(Some(_)))
    }

    /// The prefix hash registered for `block`, if it holds one.
    pub fn cached_hash(&self, block: BlockId) -> Option<PrefixHash> {
        self.hashes.get(block as usize).copied().flatten()
    }

    /// The block holding the full block identified by `hash`, if it is still cached.
    pub fn lookup(&self, hash: PrefixHash) -> Option<BlockId> {
        self.index.get(&hash).copied()
    }

    /// Blocks on the free list (for invariant checks and diagnostics).
    pub fn free_blocks(&self) -> &[BlockId] {
        &self.free
    }

    /// Evictable cached blocks, least recently released first (eviction order).
    pub fn evictable_blocks(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.lru.values().copied()
    }

    /// Cached blocks dropped by LRU eviction so far (their prefix can no longer be reused).
    pub fn evicted_cached_blocks(&self) -> u64 {
        self.evicted_cached_blocks
    }

    /// Blocks handed out by [`BlockPool::allocate`] so far (the denominator of eviction rates).
    pub fn blocks_allocated(&self) -> u64 {
        self.blocks_allocated
    }

    /// Takes one block with refcount 1: from the free list if possible, otherwise by evicting
    /// the least recently released cached block (its prefix is forgotten).
    pub fn allocate(&mut self) -> Result<BlockId, CacheError> {
        self.allocate_undoable().map(|(block, _)| block)
    }

    /// Adds a reference to a block that is in use or evictable-cached (a cached block leaves
    /// the LRU, so it cannot be evicted while referenced). Blocks on the free list hold
    /// nothing worth sharing, so retaining one is an error, and so is a reference count that
    /// would pass `u32::MAX`. On error nothing changes.
    pub fn retain(&mut self, block: BlockId) -> Result<(), CacheError> {
        self.retain_undoable(block).map(|_| ())
    }

    /// Drops one reference. At zero the block becomes evictable-cached if it holds a
    /// registered prefix (most recently used end of the LRU), otherwise free. On error (a
    /// block nobody references) nothing changes.
    pub fn release(&mut self, block: BlockId) -> Result<(), CacheError> {
        self.release_undoable(block).map(|_| ())
    }

    /// Records that in-use `block` holds the full, now immutable block identified by `hash`.
    /// Returns false (and changes nothing) if the hash is already cached in another block, the
    /// block already has a hash, or the block is not in use: the first copy stays canonical.
    pub fn register(&mut self, block: BlockId, hash: PrefixHash) -> bool {
        let i = block as usize;
        if self.refcount(block) == 0 || self.hashes[i].is_some() || self.index.contains_key(&hash) {
            return false;
        }
        self.hashes[i] = Some(hash);
        self.index.insert(hash, block);
        true
    }

    /// Starts a group of changes that is all or nothing: see [`Transaction`].
    pub(super) fn transaction(&mut self) -> Transaction<'_> {
        Transaction {
            pool: self,
            undo: Vec::new(),
        }
    }

    // The `*_undoable` primitives below check everything before changing anything, so each
    // either fails with the pool untouched or succeeds and says how to reverse itself.

    fn allocate_undoable(&mut self) -> Result<(BlockId, Undo), CacheError> {
        #[cfg(test)]
        if fault::fires() {
            return Err(CacheError::OutOfBlocks {
                needed: 1,
                available: self.num_free(),
            });
        }
        let (block, evicted) = if let Some(b) = self.free.pop() {
            (b, None)
        } else if let Some((tick, b)) = self.lru.pop_first() {
            self.lru_ticks[b as usize] = None;
            let hash = self.hashes[b as usize].take();
            if let Some(h) = hash {
                self.index.remove(&h);
            }
            self.evicted_cached_blocks += 1;
            (b, Some((tick, hash)))
        } else {
            return Err(CacheError::OutOfBlocks {
                needed: 1,
                available: 0,
            });
        };
        self.refcounts[block as usize] = 1;
        self.blocks_allocated += 1;
        Ok((block, Undo::Allocate { block, evicted }))
    }

    fn retain_undoable(&mut self, block: BlockId) -> Result<Undo, CacheError> {
        #[cfg(test)]
        if fault::fires() {
            return Err(CacheError::RefcountOverflow(block));
        }
        let i = block as usize;
        let rc = *self
            .refcounts
            .get(i)
            .ok_or(CacheError::InvalidBlock(block))?;
        // A block nobody references must be evictable-cached (free blocks hold nothing).
        let revived = match rc {
            0 => Some(self.lru_ticks[i].ok_or(CacheError::InvalidBlock(block))?),
            _ => None,
        };
        let rc = rc
            .checked_add(1)
            .ok_or(CacheError::RefcountOverflow(block))?;
        if let Some(tick) = revived {
            self.lru.remove(&tick);
            self.lru_ticks[i] = None;
        }
        self.refcounts[i] = rc;
        Ok(Undo::Retain { block, revived })
    }

    fn release_undoable(&mut self, block: BlockId) -> Result<Undo, CacheError> {
        #[cfg(test)]
        if fault::fires() {
            return Err(CacheError::InvalidBlock(block));
        }
        let i = block as usize;
        let rc = match self.refcounts.get(i) {
            None | Some(0) => return Err(CacheError::InvalidBlock(block)),
            Some(&rc) => rc - 1,
        };
        self.refcounts[i] = rc;
        if rc == 0 {
            if self.hashes[i].is_some() {
                let tick = self.next_tick;
                self.next_tick += 1;
                self.lru.insert(tick, block);
                self.lru_ticks[i] = Some(tick);
            } else {
                self.free.push(block);
            }
        }
        Ok(Undo::Release { block })
    }

    /// Reverses one change. Exact only when every later change has been reversed first (a
    /// [`Transaction`] undoes newest first), because it relies on the block still being
    /// where that change put it: on top of the free list, at the newest end of the LRU.
    fn undo(&mut self, step: Undo) {
        match step {
            Undo::Allocate { block, evicted } => {
                let i = block as usize;
                self.refcounts[i] = 0;
                self.blocks_allocated -= 1;
                match evicted {
                    None => self.free.push(block),
                    Some((tick, hash)) => {
                        self.lru.insert(tick, block);
                        self.lru_ticks[i] = Some(tick);
                        if let Some(h) = hash {
                            self.hashes[i] = Some(h);
                            self.index.insert(h, block);
                        }
                        self.evicted_cached_blocks -= 1;
                    }
                }
            }
            Undo::Retain { block, revived } => {
                let i = block as usize;
                self.refcounts[i] -= 1;
                if let Some(tick) = revived {
                    self.lru.insert(tick, block);
                    self.lru_ticks[i] = Some(tick);
                }
            }
            Undo::Release { block } => {
                let i = block as usize;
                if self.refcounts[i] == 0 {
                    // The last reference went: the block went to the LRU with the newest
                    // tick, or on top of the free list.
                    if let Some(tick) = self.lru_ticks[i].take() {
                        self.lru.remove(&tick);
                        self.next_tick = tick;
                    } else {
                        self.free.pop();
                    }
                }
                self.refcounts[i] += 1;
            }
        }
    }

    /// Checks the pool's internal consistency in O(n); for tests and debug builds.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        use InvariantViolation as V;
        let mut seen = vec![false; self.refcounts.len()];
        // Marks a block listed as idle (free or cached), which must happen once per block.
        let mut mark_idle = |block: BlockId| match seen.get_mut(block as usize) {
            None => Err(V::BlockOutOfRange { block }),
            Some(true) => Err(V::BlockListedTwice { block }),
            Some(s) => {
                *s = true;
                Ok(block as usize)
            }
        };
        for &block in &self.free {
            let i = mark_idle(block)?;
            if self.refcounts[i] != 0 || self.hashes[i].is_some() || self.lru_ticks[i].is_some() {
                return Err(V::FreeBlockNotIdle { block });
            }
        }
        for (&tick, &block) in &self.lru {
            let i = mark_idle(block)?;
            if self.refcounts[i] != 0 || self.hashes[i].is_none() || self.lru_ticks[i] != Some(tick)
            {
                return Err(V::EvictableBlockInconsistent { block });
            }
        }
        for (i, &rc) in self.refcounts.iter().enumerate() {
            let block = i as BlockId;
            if rc == 0 && !seen[i] {
                return Err(V::BlockLost { block });
            }
            if rc > 0 && self.lru_ticks[i].is_some() {
                return Err(V::InUseBlockEvictable { block });
            }
        }
        // The index and the per-block hashes must describe the same one-to-one mapping.
        for (&hash, &block) in &self.index {
            if self.cached_hash(block) != Some(hash) {
                return Err(V::PrefixIndexMismatch { block });
            }
        }
        for (i, hash) in self.hashes.iter().enumerate() {
            let block = i as BlockId;
            if let Some(h) = hash
                && self.index.get(h) != Some(&block)
            {
                return Err(V::PrefixIndexMismatch { block });
            }
        }
        Ok(())
    }
}

/// How to reverse one pool change exactly; what a [`Transaction`] records.
#[derive(Clone, Copy, Debug)]
enum Undo {
    /// An allocation. `evicted` holds the LRU tick and prefix hash the block had if it was
    /// evicted rather than taken off the free list.
    Allocate {
        block: BlockId,
        evicted: Option<(u64, Option<PrefixHash>)>,
    },
    /// A new reference. `revived` is the LRU tick the block left, if it was evictable.
    Retain {
        block: BlockId,
        revived: Option<u64>,
    },
    /// A dropped reference (where the block went is read back from its state).
    Release { block: BlockId },
}

/// A group of pool changes that is all or nothing.
///
/// The manager's operations each take several pool steps (copy-on-write plus new blocks, one
/// retain per shared block, one release per freed block), and any step can fail. Every step
/// made through a transaction is recorded, and unless [`Transaction::commit`] is called they
/// are all undone, newest first, when the transaction is dropped, typically by `?` returning
/// early. The pool is then exactly as before: free-list order, LRU ticks, prefix index and
/// counters included.
#[must_use = "a transaction undoes its changes when dropped without commit()"]
pub(super) struct Transaction<'a> {
    pool: &'a mut BlockPool,
    undo: Vec<Undo>,
}

impl Transaction<'_> {
    /// [`BlockPool::allocate`], undone unless committed.
    pub(super) fn allocate(&mut self) -> Result<BlockId, CacheError> {
        let (block, undo) = self.pool.allocate_undoable()?;
        self.undo.push(undo);
        Ok(block)
    }

    /// [`BlockPool::retain`], undone unless committed.
    pub(super) fn retain(&mut self, block: BlockId) -> Result<(), CacheError> {
        let undo = self.pool.retain_undoable(block)?;
        self.undo.push(undo);
        Ok(())
    }

    /// [`BlockPool::release`], undone unless committed.
    pub(super) fn release(&mut self, block: BlockId) -> Result<(), CacheError> {
        let undo = self.pool.release_undoable(block)?;
        self.undo.push(undo);
        Ok(())
    }

    /// Keeps every change made so far.
    pub(super) fn commit(mut self) {
        self.undo.clear();
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        while let Some(step) = self.undo.pop() {
            self.pool.undo(step);
        }
    }
}

/// Test-only fault injection: makes one chosen pool step fail, as a saturated reference count
/// or a bookkeeping bug would, so tests can prove that multi-step operations roll back.
#[cfg(test)]
pub(super) mod fault {
    use std::cell::Cell;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        Off,
        /// Steps to let through before the failing one.
        Armed(u32),
        Fired,
    }

    thread_local! {
        // Per thread, so tests running in parallel do not disturb each other.
        static STATE: Cell<State> = const { Cell::new(State::Off) };
    }

    /// Makes the `n`th next allocate, retain or release on this thread fail (0: the next).
    pub(in crate::cache) fn fail_nth(n: u32) {
        STATE.set(State::Armed(n));
    }

    /// Switches injection off; returns whether the armed failure happened.
    pub(in crate::cache) fn disarm() -> bool {
        STATE.replace(State::Off) == State::Fired
    }

    /// Called by each pool step before it changes anything: whether it must fail.
    pub(super) fn fires() -> bool {
        match STATE.get() {
            State::Armed(0) => {
                STATE.set(State::Fired);
                true
            }
            State::Armed(n) => {
                STATE.set(State::Armed(n - 1));
                false
            }
            State::Off | State::Fired => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_order_and_runs_out_without_panicking() {
        let mut pool = BlockPool::new(2);
        assert_eq!(pool.allocate(), Ok(0));
        assert_eq!(pool.allocate(), Ok(1));
        assert_eq!(
            pool.allocate(),
            Err(CacheError::OutOfBlocks {
                needed: 1,
                available: 0
            })
        );
        assert_eq!(pool.num_used(), 2);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn refcounted_block_is_freed_only_at_zero() {
        let mut pool = BlockPool::new(1);
        let b = pool.allocate().unwrap();
        pool.retain(b).unwrap();
        pool.release(b).unwrap();
        assert_eq!(pool.num_free(), 0);
        pool.release(b).unwrap();
        assert_eq!(pool.num_free(), 1);
        assert_eq!(pool.release(b), Err(CacheError::InvalidBlock(b)));
        assert_eq!(pool.retain(b), Err(CacheError::InvalidBlock(b)));
        assert_eq!(pool.retain(9), Err(CacheError::InvalidBlock(9)));
        pool.check_invariants().unwrap();
    }

    #[test]
    fn cached_blocks_are_reused_before_eviction_and_evicted_oldest_first() {
        let mut pool = BlockPool::new(3);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert!(pool.register(a, 100));
        assert!(pool.register(b, 200));
        assert!(!pool.register(b, 100), "hash already cached elsewhere");
        pool.release(a).unwrap();
        pool.release(b).unwrap();
        assert_eq!(pool.num_evictable(), 2);
        assert_eq!(pool.num_free(), 3);
        // The free list goes first: nothing evicted.
        let c = pool.allocate().unwrap();
        assert_eq!(c, 2);
        assert_eq!(pool.evicted_cached_blocks(), 0);
        // Then the least recently released cached block, `a`.
        assert_eq!(pool.allocate(), Ok(a));
        assert_eq!(pool.evicted_cached_blocks(), 1);
        assert_eq!(pool.lookup(100), None);
        assert_eq!(pool.lookup(200), Some(b));
        // Retaining a cached block takes it out of the LRU.
        pool.retain(b).unwrap();
        assert_eq!(pool.num_evictable(), 0);
        assert!(pool.allocate().is_err());
        pool.check_invariants().unwrap();
    }

    #[test]
    fn retain_at_the_maximum_refcount_fails_and_changes_nothing() {
        let mut pool = BlockPool::new(2);
        let b = pool.allocate().unwrap();
        pool.refcounts[b as usize] = u32::MAX;
        let before = pool.clone();
        assert_eq!(pool.retain(b), Err(CacheError::RefcountOverflow(b)));
        assert_eq!(pool, before);
        pool.check_invariants().unwrap();
    }

    /// A pool with every kind of block: `[in use 0, in use 1 (hashed), cached 2, cached 3,
    /// free 4]`, 2 being the oldest cached block.
    fn mixed_pool() -> BlockPool {
        let mut pool = BlockPool::new(5);
        for b in 0..4 {
            assert_eq!(pool.allocate(), Ok(b));
        }
        for (b, h) in [(1, 11), (2, 12), (3, 13)] {
            assert!(pool.register(b, h));
        }
        pool.release(2).unwrap();
        pool.release(3).unwrap();
        pool.retain(0).unwrap();
        pool.check_invariants().unwrap();
        pool
    }

    #[test]
    fn dropped_transaction_restores_the_pool_exactly() {
        let mut pool = mixed_pool();
        let before = pool.clone();
        {
            let mut tx = pool.transaction();
            assert_eq!(tx.allocate(), Ok(4)); // off the free list
            assert_eq!(tx.allocate(), Ok(2)); // evicts the oldest cached block
            tx.retain(3).unwrap(); // revives a cached block
            tx.release(1).unwrap(); // last reference of a hashed block: to the LRU
            tx.release(0).unwrap(); // shared block: one reference left
            tx.release(0).unwrap(); // then to the free list
            tx.retain(1).unwrap(); // revives what was just cached
            assert!(tx.release(4).is_ok());
            assert_eq!(tx.release(4), Err(CacheError::InvalidBlock(4)));
        }
        assert_eq!(pool, before);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn committed_transaction_keeps_its_changes() {
        let mut pool = mixed_pool();
        let mut plain = pool.clone();
        let mut tx = pool.transaction();
        assert_eq!(tx.allocate(), Ok(4));
        assert_eq!(tx.allocate(), Ok(2));
        tx.retain(3).unwrap();
        tx.release(1).unwrap();
        tx.commit();
        assert_eq!(plain.allocate(), Ok(4));
        assert_eq!(plain.allocate(), Ok(2));
        plain.retain(3).unwrap();
        plain.release(1).unwrap();
        assert_eq!(pool, plain);
        pool.check_invariants().unwrap();
    }

    #[test]
    fn check_invariants_names_the_broken_block() {
        let pool = mixed_pool();
        let mut bad = pool.clone();
        bad.refcounts[4] = 1;
        assert_eq!(
            bad.check_invariants(),
            Err(InvariantViolation::FreeBlockNotIdle { block: 4 })
        );
        let mut bad = pool.clone();
        bad.free.push(4);
        assert_eq!(
            bad.check_invariants(),
            Err(InvariantViolation::BlockListedTwice { block: 4 })
        );
        let mut bad = pool.clone();
        bad.free.push(3);
        assert_eq!(
            bad.check_invariants(),
            Err(InvariantViolation::FreeBlockNotIdle { block: 3 })
        );
        let mut bad = pool.clone();
        bad.free.clear();
        assert_eq!(
            bad.check_invariants(),
            Err(InvariantViolation::BlockLost { block: 4 })
        );
        let mut bad = pool.clone();
        bad.index.insert(99, 0);
        assert_eq!(
            bad.check_invariants(),
            Err(InvariantViolation::PrefixIndexMismatch { block: 0 })
        );
        let mut bad = pool;
        bad.index.remove(&11);
        let err = bad.check_invariants().unwrap_err();
        assert_eq!(err, InvariantViolation::PrefixIndexMismatch { block: 1 });
        assert!(err.to_string().contains("block 1"), "{err}");
    }

    #[test]
    fn reuse_refreshes_lru_position() {
        let mut pool = BlockPool::new(2);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        pool.register(a, 1);
        pool.register(b, 2);
        pool.release(a).unwrap();
        pool.release(b).unwrap();
        pool.retain(a).unwrap();
        pool.release(a).unwrap();
        // `b` is now the oldest.
        assert_eq!(pool.allocate(), Ok(b));
        assert_eq!(pool.lookup(1), Some(a));
        pool.check_invariants().unwrap();
    }
}
