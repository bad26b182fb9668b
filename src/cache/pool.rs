//! The physical block pool: reference counts, a free list and an LRU of cached blocks.
//!
//! Blocks are shared (fork, prefix reuse), so a block is only reusable once nobody references
//! it. A released block that holds a registered prefix is kept as an *evictable cached block*
//! instead of being freed, so a later request with the same prefix can reuse its contents;
//! allocation only evicts such blocks, least recently released first, when the free list is
//! empty. Every operation is O(1) or O(log n).

use std::collections::{BTreeMap, HashMap};

use super::error::CacheError;
use super::prefix::PrefixHash;

/// Physical block id; the same id addresses the block in every layer's K and V pool.
pub type BlockId = u32;

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
        let block = if let Some(b) = self.free.pop() {
            b
        } else if let Some((_, b)) = self.lru.pop_first() {
            self.lru_ticks[b as usize] = None;
            if let Some(h) = self.hashes[b as usize].take() {
                self.index.remove(&h);
            }
            self.evicted_cached_blocks += 1;
            b
        } else {
            return Err(CacheError::OutOfBlocks {
                needed: 1,
                available: 0,
            });
        };
        self.refcounts[block as usize] = 1;
        self.blocks_allocated += 1;
        Ok(block)
    }

    /// Adds a reference to a block that is in use or evictable-cached (a cached block leaves
    /// the LRU, so it cannot be evicted while referenced). Blocks on the free list hold
    /// nothing worth sharing, so retaining one is an error.
    pub fn retain(&mut self, block: BlockId) -> Result<(), CacheError> {
        let i = block as usize;
        match self.refcounts.get(i) {
            None => return Err(CacheError::InvalidBlock(block)),
            Some(0) => {
                let tick = self.lru_ticks[i]
                    .take()
                    .ok_or(CacheError::InvalidBlock(block))?;
                self.lru.remove(&tick);
            }
            Some(_) => {}
        }
        self.refcounts[i] += 1;
        Ok(())
    }

    /// Drops one reference. At zero the block becomes evictable-cached if it holds a
    /// registered prefix (most recently used end of the LRU), otherwise free.
    pub fn release(&mut self, block: BlockId) -> Result<(), CacheError> {
        let i = block as usize;
        match self.refcounts.get(i) {
            None | Some(0) => return Err(CacheError::InvalidBlock(block)),
            Some(_) => {}
        }
        self.refcounts[i] -= 1;
        if self.refcounts[i] == 0 {
            if self.hashes[i].is_some() {
                let tick = self.next_tick;
                self.next_tick += 1;
                self.lru.insert(tick, block);
                self.lru_ticks[i] = Some(tick);
            } else {
                self.free.push(block);
            }
        }
        Ok(())
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

    /// Checks the pool's internal consistency in O(n); for tests and debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        let n = self.refcounts.len();
        let mut seen = vec![false; n];
        for &b in &self.free {
            let i = b as usize;
            if i >= n || seen[i] {
                return Err(format!("free list holds block {b} twice or out of range"));
            }
            seen[i] = true;
            if self.refcounts[i] != 0 || self.hashes[i].is_some() || self.lru_ticks[i].is_some() {
                return Err(format!("free block {b} is referenced, hashed or cached"));
            }
        }
        for (&tick, &b) in &self.lru {
            let i = b as usize;
            if i >= n || seen[i] {
                return Err(format!(
                    "LRU holds block {b} twice, out of range or also free"
                ));
            }
            seen[i] = true;
            if self.refcounts[i] != 0 || self.hashes[i].is_none() || self.lru_ticks[i] != Some(tick)
            {
                return Err(format!(
                    "evictable block {b} is referenced, unhashed or mis-ticked"
                ));
            }
        }
        for (i, &rc) in self.refcounts.iter().enumerate() {
            if rc == 0 && !seen[i] {
                return Err(format!(
                    "block {i} has refcount 0 but is neither free nor cached"
                ));
            }
            if rc > 0 && self.lru_ticks[i].is_some() {
                return Err(format!("in-use block {i} is in the LRU"));
            }
        }
        for (&h, &b) in &self.index {
            if self.hashes.get(b as usize).copied().flatten() != Some(h) {
                return Err(format!("index entry for block {b} disagrees with its hash"));
            }
        }
        let hashed = self.hashes.iter().filter(|h| h.is_some()).count();
        if hashed != self.index.len() {
            return Err(format!(
                "{hashed} hashed blocks but {} index entries",
                self.index.len()
            ));
        }
        Ok(())
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
