//! The scheduler's step policy: which running requests decode or prefill, whom to preempt,
//! swap-in and admission, and the eviction accounting around every allocation. Split from
//! `scheduler.rs` (the public surface) to keep each file readable.

use super::{Req, Scheduler, SchedulerError, State, Step};
use crate::cache::{
    AppendPlan, CacheError, KvCacheManager, PrefixHash, RELEASED, SeqId, chain_hashes,
};
use crate::engine::request::{DecodeItem, PreemptionMode, PrefillChunk, SwapIn, SwapOut};

impl Scheduler {
    /// The state of a queued request; an error (not a panic) if the queues and the request
    /// table ever disagree.
    fn req(&self, id: u64) -> Result<&Req, SchedulerError> {
        self.reqs.get(&id).ok_or(SchedulerError::UnknownRequest(id))
    }

    pub(super) fn enter_waiting(&mut self, r: &mut Req) {
        r.state = State::Waiting;
        if self.cache.prefix_caching() {
            let tokens = r.spec.tokens(r.target());
            r.chain = chain_hashes(
                &tokens[..tokens.len().saturating_sub(1)],
                self.cache.block_size(),
            );
            for &h in &r.chain {
                *self.waiting_hashes.entry(h).or_default() += 1;
            }
        }
    }

    pub(super) fn leave_waiting(&mut self, r: &mut Req) {
        for h in std::mem::take(&mut r.chain) {
            if let Some(n) = self.waiting_hashes.get_mut(&h) {
                *n -= 1;
                if *n == 0 {
                    self.waiting_hashes.remove(&h);
                }
            }
        }
    }

    /// Decode pass, then prefill continuation, over running requests oldest first.
    pub(super) fn schedule_running(&mut self, step: &mut Step) -> Result<(), SchedulerError> {
        for decode_pass in [true, false] {
            for id in self.running.clone() {
                let Some(r) = self.reqs.get(&id) else {
                    continue;
                };
                let ctx = self.cache.context_len(SeqId(id));
                if r.state != State::Running || step.budget == 0 {
                    continue;
                }
                let decoding = ctx == r.target() && r.generated < r.spec.generation_len;
                if decode_pass && decoding {
                    if self.make_room(id, step, true)? {
                        self.decode(id, step)?;
                    }
                } else if !decode_pass && ctx < r.target() {
                    self.prefill_chunk(id, step, true)?;
                }
            }
        }
        Ok(())
    }

    /// Preempts newer, not yet scheduled running requests (newest first, and `id` itself last
    /// when `allow_self`) until `id` can append one token. Returns whether it can.
    fn make_room(
        &mut self,
        id: u64,
        step: &mut Step,
        allow_self: bool,
    ) -> Result<bool, SchedulerError> {
        loop {
            if self.cache.can_append(SeqId(id), 1) {
                return Ok(true);
            }
            let Some(pos) = self.running.iter().position(|&x| x == id) else {
                return Ok(false);
            };
            let victim = self.running[pos + 1..]
                .iter()
                .rev()
                .copied()
                .find(|v| !step.scheduled.contains(v))
                .or(allow_self.then_some(id));
            let Some(v) = victim else { return Ok(false) };
            self.preempt(v, step)?;
            if v == id {
                return Ok(false);
            }
        }
    }

    fn preempt(&mut self, id: u64, step: &mut Step) -> Result<(), SchedulerError> {
        let seq = SeqId(id);
        let pool = self.cache.pool();
        let table = self.cache.block_table(seq);
        // A sliding window gives back a table's leading blocks; only the rest is live.
        let released = table.iter().take_while(|&&b| b == RELEASED).count();
        let blocks = table[released..].to_vec();
        let mode = self.config.preemption;
        for &b in blocks.iter().filter(|&&b| pool.refcount(b) == 1) {
            match pool.cached_hash(b) {
                // Stays cached in the LRU; counted now, so a later LRU drop is not recounted.
                Some(h) => {
                    self.acc.stats.evicted_blocks += 1;
                    self.counted_lru.insert(h);
                }
                None => self.acc.stats.evicted_blocks += 1,
            }
        }
        let len = self.cache.context_len(seq);
        self.cache.free(seq)?;
        self.running.retain(|&x| x != id);
        step.preempted = true;
        self.acc.stats.preemptions += 1;
        let Some(mut r) = self.reqs.remove(&id) else {
            return Ok(());
        };
        self.acc.stats.preempted_requests += (r.preempted == 0) as u64;
        r.preempted += 1;
        if mode == PreemptionMode::Swap && len > 0 {
            self.acc.stats.swap_out_blocks += blocks.len() as u64;
            step.plan.swap_out.push(SwapOut {
                request: id,
                blocks,
            });
            r.state = State::Swapped;
            r.swapped_len = len;
            r.swapped_released = released as u32;
            self.swapped.push_front(id);
        } else {
            self.enter_waiting(&mut r);
            self.waiting.push_front(id);
        }
        self.reqs.insert(id, r);
        Ok(())
    }

    /// `append_tokens`, with [`Self::allocate_tracked`]'s eviction accounting.
    fn append_tracked(&mut self, seq: SeqId, tokens: &[u32]) -> Result<AppendPlan, SchedulerError> {
        let need = self
            .cache
            .blocks_needed_to_append(seq, tokens.len() as u32)?;
        self.allocate_tracked(need, |cache| cache.append_tokens(seq, tokens))
    }

    /// Runs `allocate`, which takes `need` blocks from the pool, counting cached blocks the
    /// LRU drops while a waiting request's prompt chain still contains them (evictions that
    /// cost a future hit).
    fn allocate_tracked<T>(
        &mut self,
        need: u32,
        allocate: impl FnOnce(&mut KvCacheManager) -> Result<T, CacheError>,
    ) -> Result<T, SchedulerError> {
        let pool = self.cache.pool();
        let free_list = pool.free_blocks().len() as u32;
        let at_risk: Vec<Option<PrefixHash>> = pool
            .evictable_blocks()
            .take(need.saturating_sub(free_list) as usize)
            .map(|b| pool.cached_hash(b))
            .collect();
        let before = self.cache.stats().evicted_cached_blocks;
        let done = allocate(&mut self.cache)?;
        let dropped = (self.cache.stats().evicted_cached_blocks - before) as usize;
        for h in at_risk.into_iter().take(dropped).flatten() {
            if !self.counted_lru.remove(&h) && self.waiting_hashes.contains_key(&h) {
                self.acc.stats.evicted_blocks += 1;
            }
        }
        Ok(done)
    }

    fn decode(&mut self, id: u64, step: &mut Step) -> Result<(), SchedulerError> {
        let seq = SeqId(id);
        let position = self.cache.context_len(seq);
        let (token, seed) = {
            let r = self.req(id)?;
            (r.spec.token_at(position), r.spec.seed)
        };
        let ap = self.append_tracked(seq, &[token])?;
        step.plan.copies.extend(ap.copies);
        if let Some(r) = self.reqs.get_mut(&id) {
            r.high_water = r.high_water.max(position + 1);
        }
        self.acc.stats.decode_tokens += 1;
        step.plan.decode.push(DecodeItem {
            request: id,
            seed,
            position,
            token,
            slot: ap.slots.first().copied().unwrap_or(0),
            block_table: self.cache.block_table(seq).to_vec(),
            context_len: position + 1,
        });
        step.budget -= 1;
        step.scheduled.insert(id);
        Ok(())
    }

    /// Schedules the next prefill chunk of running request `id` within the budget and the
    /// blocks available (shrinking the chunk rather than preempting, unless not even one
    /// token fits and `may_preempt`).
    fn prefill_chunk(
        &mut self,
        id: u64,
        step: &mut Step,
        may_preempt: bool,
    ) -> Result<(), SchedulerError> {
        let seq = SeqId(id);
        let ctx = self.cache.context_len(seq);
        let target = self.req(id)?.target();
        let want = step.budget.min(target.saturating_sub(ctx));
        if want == 0 || (may_preempt && !self.make_room(id, step, false)?) {
            return Ok(());
        }
        let bs = self.cache.block_size() as u64;
        let room = (bs - ctx as u64 % bs) % bs + self.cache.num_free_blocks() as u64 * bs;
        let n = (want as u64).min(room) as u32;
        if n == 0 || !self.cache.can_append(seq, n) {
            return Ok(());
        }
        let r = self.req(id)?;
        let (seed, high_water) = (r.spec.seed, r.high_water);
        let tokens: Vec<u32> = (ctx..ctx + n).map(|p| r.spec.token_at(p)).collect();
        let ap = self.append_tracked(seq, &tokens)?;
        step.plan.copies.extend(ap.copies);
        let end = ctx + n;
        self.acc.stats.prefill_tokens += n as u64;
        self.acc.stats.recompute_tokens += end.min(high_water).saturating_sub(ctx) as u64;
        if let Some(r) = self.reqs.get_mut(&id) {
            r.high_water = r.high_water.max(end);
        }
        step.plan.prefill.push(PrefillChunk {
            request: id,
            seed,
            first_position: ctx,
            tokens,
            slots: ap.slots,
            block_table: self.cache.block_table(seq).to_vec(),
            context_len: end,
            completes_prompt: end == target,
        });
        step.budget -= n;
        step.scheduled.insert(id);
        Ok(())
    }

    /// Whether `need` blocks may be taken now: above the watermark, or at all when nothing is
    /// running (so a request that fits an empty pool always runs eventually).
    fn fits(&self, need: u32) -> bool {
        let free = self.cache.num_free_blocks() as u64;
        let need = need as u64;
        need + self.config.watermark_blocks as u64 <= free
            || (self.running.is_empty() && need <= free)
    }

    /// Swaps requests back in, oldest preempted first, while blocks and running slots allow.
    /// Only the blocks that were saved come back; a sliding window's released ones stay gone.
    pub(super) fn swap_in(&mut self, step: &mut Step) -> Result<(), SchedulerError> {
        let bs = self.cache.block_size();
        while let Some(&id) = self.swapped.front() {
            let (len, released) = {
                let r = self.req(id)?;
                (r.swapped_len, r.swapped_released)
            };
            let need = len.div_ceil(bs) - released;
            if self.running.len() >= self.config.max_running as usize || !self.fits(need) {
                break;
            }
            self.swapped.pop_front();
            let tokens = self.req(id)?.spec.tokens(len);
            let blocks = self.allocate_tracked(need, |cache| {
                cache.restore_sequence(SeqId(id), &tokens, released)
            })?;
            self.acc.stats.swap_in_blocks += blocks.len() as u64;
            step.plan.swap_in.push(SwapIn {
                request: id,
                blocks,
            });
            if let Some(r) = self.reqs.get_mut(&id) {
                r.state = State::Running;
            }
            self.running.push(id);
        }
        Ok(())
    }

    /// Admits waiting requests FIFO while the budget, running slots and blocks allow, reusing
    /// cached prefix blocks, and schedules each one's first prefill chunk.
    pub(super) fn admit(&mut self, step: &mut Step) -> Result<(), SchedulerError> {
        while step.budget > 0 && self.running.len() < self.config.max_running as usize {
            let Some(&id) = self.waiting.front() else {
                break;
            };
            let tokens = {
                let r = self.req(id)?;
                r.spec.tokens(r.target())
            };
            let need = self.cache.blocks_needed_to_admit(&tokens);
            if !self.fits(need.min(self.blocks_to_hold(tokens.len() as u64))) {
                break;
            }
            self.waiting.pop_front();
            let hit = self.cache.admit_with_prefix(SeqId(id), &tokens)?;
            // Cached blocks before the first query's window were hits (never computed) but
            // are not held: a windowed prefill chunk fits however long the prefix.
            self.slide(id);
            let Some(mut r) = self.reqs.remove(&id) else {
                continue;
            };
            let hit_blocks = (hit.cached_tokens / self.cache.block_size()) as usize;
            for h in r.chain.iter().take(hit_blocks) {
                self.counted_lru.remove(h);
            }
            self.leave_waiting(&mut r);
            let s = &mut self.acc.stats;
            if r.admitted {
                s.readmit_reused_tokens += hit.cached_tokens as u64;
            } else {
                s.prefix_lookup_tokens += hit.lookup_tokens as u64;
                s.prefix_hit_tokens += hit.cached_tokens as u64;
            }
            r.admitted = true;
            r.state = State::Running;
            self.reqs.insert(id, r);
            self.running.push(id);
            self.prefill_chunk(id, step, false)?;
        }
        Ok(())
    }
}
