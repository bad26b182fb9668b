//! `KvCacheManager`: block tables, copy-on-write and automatic prefix caching over a
//! [`BlockPool`].
//!
//! It decides *which* block holds each token and tells the GPU side what to copy and where to
//! write; it never waits for the GPU. Every operation either fully succeeds or leaves the
//! cache unchanged, so a scheduler can simply try, and preempt or queue on `OutOfBlocks`.
//!
//! How that is kept: each mutating operation first checks what it can cheaply (ids, block
//! counts), then makes all its pool changes inside one pool transaction, which undoes them
//! if any step fails, and only after that commits does it touch its own tables and counters,
//! with steps that cannot fail.

use std::collections::BTreeMap;

use super::error::{CacheError, InvariantViolation};
use super::geometry::CacheLayout;
use super::pool::{BlockId, BlockPool, RELEASED};
use super::prefix::{PrefixHash, block_hash};
use super::table::{AppendPlan, BlockCopy, CacheStats, PrefixHit, SeqId, Sequence};

/// The KV cache's bookkeeping: a block pool plus one block table per live sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvCacheManager {
    layout: CacheLayout,
    prefix_caching: bool,
    pool: BlockPool,
    seqs: BTreeMap<SeqId, Sequence>,
    prefix_lookup_tokens: u64,
    prefix_hit_tokens: u64,
    cow_copies: u64,
}

impl KvCacheManager {
    /// A cache of `num_blocks` blocks of `layout.block_size` tokens. With `prefix_caching`,
    /// full blocks are registered by hash chain and reused by [`Self::admit_with_prefix`].
    /// Fails if the block size is 0 or `num_blocks * block_size` slots do not fit in `u32`.
    pub fn new(
        layout: CacheLayout,
        num_blocks: u32,
        prefix_caching: bool,
    ) -> Result<Self, CacheError> {
        if layout.block_size == 0 {
            return Err(CacheError::InvalidConfig(
                "block_size must be at least 1".into(),
            ));
        }
        if num_blocks as u64 * layout.block_size as u64 > u32::MAX as u64 {
            return Err(CacheError::InvalidConfig(format!(
                "{num_blocks} blocks of {} tokens exceed u32 slot ids",
                layout.block_size
            )));
        }
        Ok(Self {
            layout,
            prefix_caching,
            pool: BlockPool::new(num_blocks),
            seqs: BTreeMap::new(),
            prefix_lookup_tokens: 0,
            prefix_hit_tokens: 0,
            cow_copies: 0,
        })
    }

    /// The layout this cache was built for.
    pub fn layout(&self) -> &CacheLayout {
        &self.layout
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.layout.block_size
    }

    /// Whether automatic prefix caching is on.
    pub fn prefix_caching(&self) -> bool {
        self.prefix_caching
    }

    /// The underlying pool, read-only (refcounts, free list, LRU) for metrics and checks.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// Total physical blocks.
    pub fn num_blocks(&self) -> u32 {
        self.pool.num_blocks()
    }

    /// Blocks an allocation can take: free plus evictable cached blocks.
    pub fn num_free_blocks(&self) -> u32 {
        self.pool.num_free()
    }

    /// Blocks referenced by some sequence (refcount > 0): what "peak use" measures.
    pub fn num_used_blocks(&self) -> u32 {
        self.pool.num_used()
    }

    /// Evictable cached blocks (counted in [`Self::num_free_blocks`] too).
    pub fn num_cached_blocks(&self) -> u32 {
        self.pool.num_evictable()
    }

    /// Whether `id` is a live sequence.
    pub fn contains(&self, id: SeqId) -> bool {
        self.seqs.contains_key(&id)
    }

    /// Live sequence ids in ascending order.
    pub fn seq_ids(&self) -> impl Iterator<Item = SeqId> + '_ {
        self.seqs.keys().copied()
    }

    /// Physical blocks of `id` in logical order (empty for an unknown id), as the attention
    /// kernels' block table wants them.
    pub fn block_table(&self, id: SeqId) -> &[BlockId] {
        self.seqs.get(&id).map_or(&[], |s| &s.blocks)
    }

    /// Tokens cached for `id` (0 for an unknown id).
    pub fn context_len(&self, id: SeqId) -> u32 {
        self.seqs.get(&id).map_or(0, |s| s.tokens.len() as u32)
    }

    /// Token ids cached for `id` (empty for an unknown id); needed to recompute after
    /// preemption and to extend hash chains.
    pub fn tokens(&self, id: SeqId) -> &[u32] {
        self.seqs.get(&id).map_or(&[], |s| &s.tokens)
    }

    /// Cumulative counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            prefix_lookup_tokens: self.prefix_lookup_tokens,
            prefix_hit_tokens: self.prefix_hit_tokens,
            evicted_cached_blocks: self.pool.evicted_cached_blocks(),
            blocks_allocated: self.pool.blocks_allocated(),
            cow_copies: self.cow_copies,
        }
    }

    /// Adds an empty sequence.
    pub fn add_sequence(&mut self, id: SeqId) -> Result<(), CacheError> {
        if self.seqs.contains_key(&id) {
            return Err(CacheError::DuplicateSequence(id));
        }
        self.seqs.insert(id, Sequence::default());
        Ok(())
    }

    /// Blocks that appending `n` tokens to `id` would take from the pool, including a
    /// copy-on-write block when the partial last block is shared.
    pub fn blocks_needed_to_append(&self, id: SeqId, n: u32) -> Result<u32, CacheError> {
        let seq = self.seqs.get(&id).ok_or(CacheError::UnknownSequence(id))?;
        let growth = Growth::of(&self.pool, self.block_size(), seq, n as u64);
        Ok(saturate(growth.blocks_needed()))
    }

    /// Whether appending `n` tokens to `id` would succeed now (false for an unknown id).
    pub fn can_append(&self, id: SeqId, n: u32) -> bool {
        self.blocks_needed_to_append(id, n)
            .is_ok_and(|needed| needed <= self.pool.num_free())
    }

    /// Appends `tokens` to `id`, all or nothing. Returns where each token's K/V goes and the
    /// copy-on-write copies to run first. Full blocks are registered for prefix reuse.
    pub fn append_tokens(&mut self, id: SeqId, tokens: &[u32]) -> Result<AppendPlan, CacheError> {
        let bs = self.layout.block_size;
        // Field borrows, not `&mut self`, so the pool stays usable while `seq` is held.
        let seq = self
            .seqs
            .get_mut(&id)
            .ok_or(CacheError::UnknownSequence(id))?;
        let growth = Growth::of(&self.pool, bs, seq, tokens.len() as u64);
        let available = self.pool.num_free();
        if growth.blocks_needed() > available as u64 {
            return Err(CacheError::OutOfBlocks {
                needed: saturate(growth.blocks_needed()),
                available,
            });
        }
        let mut tx = self.pool.transaction();
        let copy = match growth.copy_on_write {
            Some(src) => {
                let dst = tx.allocate()?;
                tx.release(src)?;
                Some(BlockCopy { src, dst })
            }
            None => None,
        };
        let fresh = (0..growth.new_blocks)
            .map(|_| tx.allocate())
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit();

        // The pool changes are made; nothing below can fail.
        if let (Some(copy), Some(last)) = (copy, seq.blocks.last_mut()) {
            *last = copy.dst;
            self.cow_copies += 1;
        }
        seq.blocks.extend(fresh);
        let mut slots = Vec::with_capacity(tokens.len());
        for &token in tokens {
            let pos = seq.tokens.len() as u32;
            let block = seq.blocks[(pos / bs) as usize];
            slots.push(block * bs + pos % bs);
            seq.tokens.push(token);
            if self.prefix_caching && (pos + 1).is_multiple_of(bs) {
                let start = (pos + 1 - bs) as usize;
                let h = block_hash(seq.hashes.last().copied(), &seq.tokens[start..]);
                seq.hashes.push(h);
                self.pool.register(block, h);
            }
        }
        Ok(AppendPlan {
            slots,
            copies: copy.into_iter().collect(),
        })
    }

    /// Creates `child` sharing all of `parent`'s blocks and tokens (beam search, parallel
    /// sampling). The first append to a shared partial block copies it (copy-on-write).
    pub fn fork(&mut self, parent: SeqId, child: SeqId) -> Result<(), CacheError> {
        if self.seqs.contains_key(&child) {
            return Err(CacheError::DuplicateSequence(child));
        }
        let seq = self
            .seqs
            .get(&parent)
            .ok_or(CacheError::UnknownSequence(parent))?
            .clone();
        let mut tx = self.pool.transaction();
        for &b in seq.blocks.iter().filter(|&&b| b != RELEASED) {
            tx.retain(b)?;
        }
        tx.commit();
        self.seqs.insert(child, seq);
        Ok(())
    }

    /// Under a sliding window of `window` keys, releases every block of `id` that no query
    /// of it can see again: those whose tokens all lie before the next query's window (the
    /// next token, at position `context_len`, sees positions `context_len + 1 - window` on).
    /// Their table entries become [`RELEASED`]; a released block shared with another
    /// sequence (a prefix, a fork) stays live for it, since only this reference goes. Call
    /// it after a step's attention is recorded: the freed blocks may be handed out and
    /// written by the next step. Returns how many entries were released.
    pub fn release_outside_window(&mut self, id: SeqId, window: u32) -> Result<u32, CacheError> {
        if window == 0 {
            return Err(CacheError::InvalidConfig(
                "a sliding window must hold at least one key".into(),
            ));
        }
        let bs = self.layout.block_size as u64;
        let seq = self
            .seqs
            .get_mut(&id)
            .ok_or(CacheError::UnknownSequence(id))?;
        let next_first = (seq.tokens.len() as u64 + 1).saturating_sub(window as u64);
        // Blocks [0, out) end at or before the next query's first visible position.
        let out = (next_first / bs) as usize;
        let stale: Vec<(usize, BlockId)> = seq.blocks[..out.min(seq.blocks.len())]
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, b)| b != RELEASED)
            .collect();
        let mut tx = self.pool.transaction();
        for &(_, b) in stale.iter().rev() {
            tx.release(b)?;
        }
        tx.commit();
        for &(i, _) in &stale {
            seq.blocks[i] = RELEASED;
        }
        Ok(stale.len() as u32)
    }

    /// Re-creates sequence `id` holding `tokens`, with fresh blocks for logical blocks
    /// `first_live..` and [`RELEASED`] entries before them: a sequence coming back from host
    /// memory, where only the blocks its sliding window still needed were saved (0 for a
    /// sequence without a window). All or nothing. Full live blocks are registered for
    /// prefix reuse. Returns the new blocks in logical order, for the caller to fill.
    pub fn restore_sequence(
        &mut self,
        id: SeqId,
        tokens: &[u32],
        first_live: u32,
    ) -> Result<Vec<BlockId>, CacheError> {
        if self.seqs.contains_key(&id) {
            return Err(CacheError::DuplicateSequence(id));
        }
        let bs = self.block_size() as usize;
        let total = tokens.len().div_ceil(bs);
        let first_live = first_live as usize;
        if first_live > total {
            return Err(CacheError::InvalidConfig(format!(
                "{first_live} released blocks but {} tokens fill only {total}",
                tokens.len()
            )));
        }
        let available = self.pool.num_free();
        let needed = saturate((total - first_live) as u64);
        if needed > available {
            return Err(CacheError::OutOfBlocks { needed, available });
        }
        let mut tx = self.pool.transaction();
        let live = (first_live..total)
            .map(|_| tx.allocate())
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit();

        // The pool changes are made; nothing below can fail.
        let mut blocks = vec![RELEASED; first_live];
        blocks.extend_from_slice(&live);
        let mut hashes = Vec::new();
        if self.prefix_caching {
            for (i, chunk) in tokens.chunks_exact(bs).enumerate() {
                let h = block_hash(hashes.last().copied(), chunk);
                hashes.push(h);
                if i >= first_live {
                    self.pool.register(blocks[i], h);
                }
            }
        }
        let seq = Sequence {
            blocks,
            hashes,
            tokens: tokens.to_vec(),
        };
        self.seqs.insert(id, seq);
        Ok(live)
    }

    /// Removes `id` and releases its blocks, last block first, so that a sequence's tail
    /// (least likely to be shared) is evicted before its prefix.
    pub fn free(&mut self, id: SeqId) -> Result<(), CacheError> {
        let seq = self.seqs.get(&id).ok_or(CacheError::UnknownSequence(id))?;
        let mut tx = self.pool.transaction();
        for &b in seq.blocks.iter().rev().filter(|&&b| b != RELEASED) {
            tx.release(b)?;
        }
        tx.commit();
        self.seqs.remove(&id);
        Ok(())
    }

    /// Cached blocks matching `prompt`'s leading full blocks, stopping at the first miss and
    /// never including the block that holds the prompt's last token.
    fn match_prefix(&self, prompt: &[u32]) -> Vec<(BlockId, PrefixHash)> {
        let bs = self.block_size() as usize;
        let mut hits = Vec::new();
        if !self.prefix_caching {
            return hits;
        }
        let mut parent = None;
        for chunk in prompt[..prompt.len().saturating_sub(1)].chunks_exact(bs) {
            let h = block_hash(parent, chunk);
            match self.pool.lookup(h) {
                Some(b) => hits.push((b, h)),
                None => break,
            }
            parent = Some(h);
        }
        hits
    }

    /// Leading tokens of `prompt` that [`Self::admit_with_prefix`] would serve from cache now.
    pub fn cached_prefix_tokens(&self, prompt: &[u32]) -> u32 {
        (self.match_prefix(prompt).len() as u32) * self.block_size()
    }

    /// Blocks admitting `prompt` and appending all of it would take from the free count now:
    /// the uncached blocks plus cached blocks that are currently evictable (reusing one takes
    /// it out of the LRU). For admission control.
    pub fn blocks_needed_to_admit(&self, prompt: &[u32]) -> u32 {
        let hits = self.match_prefix(prompt);
        let total = (prompt.len() as u64).div_ceil(self.block_size() as u64);
        let revived = hits
            .iter()
            .filter(|(b, _)| self.pool.is_evictable(*b))
            .count() as u64;
        saturate(total - hits.len() as u64 + revived)
    }

    /// Creates sequence `id` holding the longest cached prefix of `prompt` (whole blocks,
    /// never the block of the last token) and counts the lookup. The caller then appends
    /// `prompt[cached_tokens..]` with [`Self::append_tokens`]. With prefix caching off this is
    /// [`Self::add_sequence`] and counts nothing.
    pub fn admit_with_prefix(
        &mut self,
        id: SeqId,
        prompt: &[u32],
    ) -> Result<PrefixHit, CacheError> {
        if self.seqs.contains_key(&id) {
            return Err(CacheError::DuplicateSequence(id));
        }
        if !self.prefix_caching {
            self.seqs.insert(id, Sequence::default());
            return Ok(PrefixHit::default());
        }
        let bs = self.block_size();
        let hits = self.match_prefix(prompt);
        let mut tx = self.pool.transaction();
        for &(b, _) in &hits {
            tx.retain(b)?;
        }
        tx.commit();
        let cached = hits.len() as u32 * bs;
        let (blocks, hashes) = hits.into_iter().unzip();
        let seq = Sequence {
            blocks,
            hashes,
            tokens: prompt[..cached as usize].to_vec(),
        };
        self.seqs.insert(id, seq);
        self.prefix_lookup_tokens += prompt.len() as u64;
        self.prefix_hit_tokens += cached as u64;
        Ok(PrefixHit {
            cached_tokens: cached,
            lookup_tokens: prompt.len() as u32,
            shareable_tokens: (prompt.len().saturating_sub(1) as u32) / bs * bs,
        })
    }

    /// Full O(n) consistency check: the pool's own invariants, refcounts equal to the number
    /// of table references, table lengths matching token counts. For tests and debug builds;
    /// an error names the block or sequence at fault.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.pool.check_invariants()?;
        let bs = self.block_size() as usize;
        let mut refs = vec![0u32; self.num_blocks() as usize];
        for (&seq, s) in &self.seqs {
            let tokens = s.tokens.len();
            if s.blocks.len() != tokens.div_ceil(bs) {
                return Err(InvariantViolation::TableLength {
                    seq,
                    blocks: s.blocks.len(),
                    tokens,
                });
            }
            if self.prefix_caching && s.hashes.len() != tokens / bs {
                return Err(InvariantViolation::HashChainLength {
                    seq,
                    hashes: s.hashes.len(),
                    tokens,
                });
            }
            for &block in s.blocks.iter().filter(|&&b| b != RELEASED) {
                let count = refs
                    .get_mut(block as usize)
                    .ok_or(InvariantViolation::TableBlockOutOfRange { seq, block })?;
                *count = count.saturating_add(1);
            }
        }
        for (block, table_refs) in (0..).zip(refs) {
            let refcount = self.pool.refcount(block);
            if refcount != table_refs {
                return Err(InvariantViolation::RefcountMismatch {
                    block,
                    refcount,
                    table_refs,
                });
            }
        }
        Ok(())
    }
}

/// What appending some tokens to a sequence takes from the pool.
struct Growth {
    /// The shared partial last block that must be copied before it is written, if any.
    copy_on_write: Option<BlockId>,
    /// Blocks to add to the table for the new tokens.
    new_blocks: u64,
}

impl Growth {
    fn of(pool: &BlockPool, block_size: u32, seq: &Sequence, n: u64) -> Self {
        let bs = block_size as u64;
        let len = seq.tokens.len() as u64;
        let partial_last = n > 0 && !len.is_multiple_of(bs);
        Self {
            copy_on_write: seq
                .blocks
                .last()
                .copied()
                .filter(|&b| partial_last && pool.refcount(b) > 1),
            new_blocks: (len + n).div_ceil(bs) - seq.blocks.len() as u64,
        }
    }

    /// Blocks taken from the free count: one per new block, plus the copy's destination.
    fn blocks_needed(&self) -> u64 {
        self.new_blocks + self.copy_on_write.is_some() as u64
    }
}

/// `n` as a `u32`, capped at `u32::MAX` (block counts above that can never be met anyway).
fn saturate(n: u64) -> u32 {
    n.min(u32::MAX as u64) as u32
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
