//! The engine's plain data: requests, the step plans the scheduler hands the GPU runner, and
//! what it reports back (outcomes, counters).
//!
//! Every token a request will ever hold is a pure function of its spec: the prompt is stored,
//! and generated tokens come from [`generated_token`]. That is what lets a preempted request be
//! recomputed (or swapped back) and still produce exactly the same tokens and outputs.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::cache::{BlockCopy, BlockId, CacheStats, KvCacheManager, SeqId};

/// One request as the workload submits it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// Unique id; also the cache's sequence id and the host handle of a swapped request.
    pub id: u64,
    /// The stream (scenario concurrency slot) it belongs to; requests of a stream share a
    /// prompt prefix.
    pub stream: u32,
    /// Prompt token ids, each in `[0, 2^31)`.
    pub prompt: Vec<u32>,
    /// Decode steps to run: the request finishes after generating this many tokens.
    pub generation_len: u32,
    /// Seed of the request's generated tokens (and of its Q on the GPU side).
    pub seed: u64,
}

impl RequestSpec {
    /// Token id at `position` of this request's full sequence: the prompt, then generated
    /// tokens. Recompute after preemption re-prefills exactly these ids.
    pub fn token_at(&self, position: u32) -> u32 {
        self.prompt
            .get(position as usize)
            .copied()
            .unwrap_or_else(|| generated_token(self.seed, position))
    }

    /// The first `len` tokens of the full sequence (prompt, then generated tokens).
    pub fn tokens(&self, len: u32) -> Vec<u32> {
        (0..len).map(|p| self.token_at(p)).collect()
    }

    /// Tokens the request holds when finished: prompt plus generation.
    pub fn final_len(&self) -> u64 {
        self.prompt.len() as u64 + self.generation_len as u64
    }
}

/// SplitMix64: a small, fixed (platform- and version-independent) integer mixer, so token ids
/// and therefore results are reproducible everywhere.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Deterministic id of the token generated at `position` by the request with `seed`, in
/// `[0, 2^31)`. There is no model, so "generation" is this hash; what matters is that a
/// recomputed request re-derives the very same ids.
pub fn generated_token(seed: u64, position: u32) -> u32 {
    (mix64(seed ^ mix64(0x6765_6e00_0000_0000 ^ position as u64)) >> 33) as u32
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "status")]
pub enum FinishStatus {
    /// Generated all `generation_len` tokens.
    Completed,
    /// Never run, because it could not be served (e.g. it cannot fit even an empty pool).
    Rejected {
        /// Why, for the report.
        reason: String,
    },
}

/// A request leaving the scheduler, reported exactly once per submitted request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The request's id.
    pub request: u64,
    /// Completed or rejected.
    pub status: FinishStatus,
    /// Tokens generated (decode steps run); `generation_len` when completed.
    pub generated: u32,
    /// Times the request was preempted (recomputed or swapped out) on the way.
    pub preempted: u32,
}

/// How a running request is preempted when the pool runs dry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreemptionMode {
    /// Free its blocks and prefill prompt plus generated tokens again later (vLLM's default:
    /// costs compute, no host memory).
    Recompute,
    /// Copy its blocks to host memory and back later (costs transfer bandwidth, no compute).
    Swap,
}

impl PreemptionMode {
    /// The mode as `--preemption` and result files spell it.
    pub fn name(self) -> &'static str {
        match self {
            PreemptionMode::Recompute => "recompute",
            PreemptionMode::Swap => "swap",
        }
    }
}

/// Scheduler knobs, as vLLM names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Tokens one step may compute: decode tokens plus prefill chunk tokens (vLLM's
    /// `max_num_batched_tokens`); bounds step latency and GPU batch size.
    pub max_step_tokens: u32,
    /// Most requests holding cache blocks at once (vLLM's `max_num_seqs`).
    pub max_running: u32,
    /// What happens to the newest running request when a decode finds no free block.
    pub preemption: PreemptionMode,
    /// Blocks kept free at admission and swap-in, so running requests can grow a little
    /// before anyone is preempted (ignored when nothing runs, so progress is guaranteed).
    pub watermark_blocks: u32,
    /// Sliding-window attention: each query sees at most this many newest keys, and after
    /// every step a request gives back the blocks no later query of it can see, so it holds
    /// at most `ceil(window / block_size) + 1` blocks between steps however long it grows.
    /// The attention kernels must be built with the same window.
    pub sliding_window: Option<u32>,
    /// The model's context length: what a contiguous cache that cannot know output lengths
    /// reserves per request. Only feeds the waste comparison; 0 leaves it out.
    pub max_context: u32,
}

impl SchedulerConfig {
    /// Tokens a request of `len` tokens holds in a contiguous cache: all of them, or with a
    /// sliding window a ring buffer of the window's last keys.
    pub fn contiguous_tokens(&self, len: u64) -> u64 {
        self.sliding_window.map_or(len, |w| len.min(w as u64))
    }
}

/// Blocks one swapped-out request occupied, in logical order. The runner copies them (all
/// layers, K and V) to host memory under the handle `request`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapOut {
    /// Request id: the host-memory handle to store the blocks under.
    pub request: u64,
    /// Its live physical blocks in logical order (the host copy keeps this order); blocks a
    /// sliding window already gave back are not among them.
    pub blocks: Vec<BlockId>,
}

/// Fresh blocks for a request coming back from host memory: the runner writes the saved
/// blocks of `request`, in logical order, into `blocks`. These tokens are not recomputed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapIn {
    /// Request id: the host-memory handle its blocks were saved under.
    pub request: u64,
    /// New physical blocks, in logical order, as many as were swapped out.
    pub blocks: Vec<BlockId>,
}

/// Consecutive prompt tokens of one request to compute this step (chunked prefill).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefillChunk {
    /// Request id.
    pub request: u64,
    /// Request seed (Q/K/V generation input).
    pub seed: u64,
    /// Position of `tokens[0]` in the request's sequence.
    pub first_position: u32,
    /// Token ids to compute, positions `first_position..context_len`.
    pub tokens: Vec<u32>,
    /// Slot (`block * block_size + offset`) where each token's K/V is written.
    pub slots: Vec<u32>,
    /// The request's whole block table after this chunk (cached prefix blocks included).
    pub block_table: Vec<BlockId>,
    /// Tokens cached after this chunk; each token attends causally to all before it.
    pub context_len: u32,
    /// True when this chunk finishes the (re)prefill: the prompt, plus, after a recompute
    /// preemption, the tokens generated before it. The first time, this is where the first
    /// output token appears (time to first token).
    pub completes_prompt: bool,
}

/// One decode token of one request: its K/V is appended at `position`, then it attends to
/// the whole context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecodeItem {
    /// Request id.
    pub request: u64,
    /// Request seed (Q/K/V generation input).
    pub seed: u64,
    /// Position of the appended token (the context length before this step).
    pub position: u32,
    /// Its token id, `generated_token(seed, position)`.
    pub token: u32,
    /// Slot its K/V is written to.
    pub slot: u32,
    /// The request's block table after the append.
    pub block_table: Vec<BlockId>,
    /// `position + 1`.
    pub context_len: u32,
}

/// Everything the GPU must do for one engine step. The runner must follow this order, which
/// the scheduler relies on:
///
/// 1. `swap_out`: copy each listed block to host memory (read before anything is written: a
///    block freed by a swap-out may be reallocated in the same step);
/// 2. `swap_in`: write saved blocks into their new blocks;
/// 3. `copies`: copy-on-write block copies;
/// 4. write the K/V of every new token (all `prefill` and `decode` slots);
/// 5. attention for every prefill chunk and decode item (after all writes: a request may
///    reuse prefix blocks another request's chunk writes in this very step).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPlan {
    /// Requests preempted by swap this step.
    pub swap_out: Vec<SwapOut>,
    /// Requests swapped back in this step.
    pub swap_in: Vec<SwapIn>,
    /// Copy-on-write copies to run before token writes.
    pub copies: Vec<BlockCopy>,
    /// Prefill chunks.
    pub prefill: Vec<PrefillChunk>,
    /// Decode tokens.
    pub decode: Vec<DecodeItem>,
}

impl StepPlan {
    /// True when the step has no GPU work at all.
    pub fn is_empty(&self) -> bool {
        self.swap_out.is_empty()
            && self.swap_in.is_empty()
            && self.copies.is_empty()
            && self.prefill.is_empty()
            && self.decode.is_empty()
    }

    /// Tokens computed this step (prefill plus decode): at most the step budget.
    pub fn num_tokens(&self) -> u32 {
        self.prefill
            .iter()
            .map(|c| c.tokens.len() as u32)
            .sum::<u32>()
            + self.decode.len() as u32
    }

    /// (request, is decode) per computed item, to match a completed plan with its record.
    pub(super) fn work(&self) -> Vec<(u64, bool)> {
        let prefill = self.prefill.iter().map(|c| (c.request, false));
        prefill
            .chain(self.decode.iter().map(|d| (d.request, true)))
            .collect()
    }
}

/// Scheduler counters for the report (the metrics that policy decides).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerStats {
    /// Steps planned.
    pub steps: u64,
    /// Requests completed.
    pub completed: u64,
    /// Requests rejected as unservable.
    pub rejected: u64,
    /// Preemptions (a request preempted twice counts twice).
    pub preemptions: u64,
    /// Distinct requests preempted at least once.
    pub preempted_requests: u64,
    /// Prefill tokens computed again after a recompute preemption.
    pub recompute_tokens: u64,
    /// Prefill tokens computed (recomputed ones included, cached ones not).
    pub prefill_tokens: u64,
    /// Decode tokens computed.
    pub decode_tokens: u64,
    /// Blocks copied to host by swap-outs.
    pub swap_out_blocks: u64,
    /// Blocks written back by swap-ins.
    pub swap_in_blocks: u64,
    /// Prompt tokens looked up in the prefix cache at first admissions only.
    pub prefix_lookup_tokens: u64,
    /// Of those, tokens served from cached blocks: never recomputed tokens.
    pub prefix_hit_tokens: u64,
    /// Tokens a re-admission after recompute preemption reused from cached blocks (not hits).
    pub readmit_reused_tokens: u64,
    /// Prompt tokens that could have hit at all (from the workload).
    pub shareable_tokens: u64,
    /// Blocks allocated from the pool (the evictions % denominator).
    pub blocks_allocated: u64,
    /// Blocks that lost their contents while still needed: blocks a preempted request held
    /// alone (freed by recompute or swapped out), plus cached prefix blocks the LRU dropped
    /// while a waiting request's prompt would have reused them (each loss counted once).
    pub evicted_blocks: u64,
    /// All cached prefix blocks the LRU dropped, needed or not.
    pub evicted_cached_blocks_total: u64,
    /// Most blocks in use during any step.
    pub peak_used_blocks: u32,
    /// Most slots in used blocks not holding a token, in any step.
    pub peak_fragmentation_slots: u64,
    /// Mean over steps of slots in used blocks not holding a token.
    pub mean_fragmentation_slots: f64,
    /// Mean over steps of those slots as a fraction of the slots in used blocks.
    pub mean_fragmentation_fraction: f64,
    /// The largest of that fraction in any step.
    #[serde(default)]
    pub peak_fragmentation_fraction: f64,
    /// What a contiguous allocator would waste on the same steps: each live request
    /// reserving its whole final length (prompt plus generation) up front, the slots not yet
    /// holding a token over the slots reserved. Mean over steps.
    #[serde(default)]
    pub mean_contiguous_waste_fraction: f64,
    /// The same, the largest of any step.
    #[serde(default)]
    pub peak_contiguous_waste_fraction: f64,
    /// What a contiguous allocator that cannot know output lengths would waste: each live
    /// request reserving the model's whole context (HF-style static caches, and what the
    /// "60-80%" vLLM measured in other systems refers to). Mean over steps; 0 when the
    /// context length was not given.
    #[serde(default)]
    pub mean_max_context_waste_fraction: f64,
    /// The same, the largest of any step.
    #[serde(default)]
    pub peak_max_context_waste_fraction: f64,
}

impl SchedulerStats {
    /// Prefix-cache hit rate (hits / lookups), `None` before any lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        ratio(self.prefix_hit_tokens, self.prefix_lookup_tokens)
    }

    /// The best hit rate the workload allows (shareable / lookups).
    pub fn possible_hit_rate(&self) -> Option<f64> {
        ratio(self.shareable_tokens, self.prefix_lookup_tokens)
    }

    /// Evictions as a fraction of blocks allocated (the report's evictions %, over 100).
    pub fn eviction_rate(&self) -> Option<f64> {
        ratio(self.evicted_blocks, self.blocks_allocated)
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Accumulates per-step measurements into [`SchedulerStats`].
#[derive(Debug, Default)]
pub(super) struct StatsAcc {
    pub stats: SchedulerStats,
    frag_slot_sum: u64,
    frag_fraction_sum: f64,
    contiguous_fraction_sum: f64,
    max_context_fraction_sum: f64,
}

impl StatsAcc {
    /// Samples peak use and fragmentation for a step just planned. Only a sequence's last
    /// block can be partial (shared prefix blocks are full), so this is O(running).
    /// `final_len(id)` is a live request's final length, for the contiguous comparison.
    pub fn record_step(
        &mut self,
        cache: &KvCacheManager,
        config: &SchedulerConfig,
        final_len: impl Fn(SeqId) -> u64,
    ) {
        let s = &mut self.stats;
        s.steps += 1;
        let used = cache.num_used_blocks();
        s.peak_used_blocks = s.peak_used_blocks.max(used);
        let bs = cache.block_size();
        let mut partial = HashSet::new();
        let mut waste = 0u64;
        let (mut reserved, mut reserved_max, mut held) = (0u64, 0u64, 0u64);
        for id in cache.seq_ids() {
            let len = cache.context_len(id);
            if !len.is_multiple_of(bs) && partial.insert(cache.block_table(id).last().copied()) {
                waste += (bs - len % bs) as u64;
            }
            let len = len as u64;
            let final_len = final_len(id).max(len);
            reserved += config.contiguous_tokens(final_len);
            reserved_max += config.contiguous_tokens(final_len.max(config.max_context as u64));
            held += config.contiguous_tokens(len);
        }
        let fraction = |reserved: u64| (reserved - held) as f64 / reserved as f64;
        if reserved > 0 {
            let f = fraction(reserved);
            self.contiguous_fraction_sum += f;
            s.peak_contiguous_waste_fraction = s.peak_contiguous_waste_fraction.max(f);
        }
        if reserved_max > 0 && config.max_context > 0 {
            let f = fraction(reserved_max);
            self.max_context_fraction_sum += f;
            s.peak_max_context_waste_fraction = s.peak_max_context_waste_fraction.max(f);
        }
        s.peak_fragmentation_slots = s.peak_fragmentation_slots.max(waste);
        self.frag_slot_sum += waste;
        if used > 0 {
            let fraction = waste as f64 / (used as f64 * bs as f64);
            self.frag_fraction_sum += fraction;
            s.peak_fragmentation_fraction = s.peak_fragmentation_fraction.max(fraction);
        }
    }

    /// The stats with cache-side counters and means filled in.
    pub fn snapshot(&self, cache: &CacheStats) -> SchedulerStats {
        let mut s = self.stats.clone();
        s.blocks_allocated = cache.blocks_allocated;
        s.evicted_cached_blocks_total = cache.evicted_cached_blocks;
        let steps = s.steps.max(1) as f64;
        s.mean_fragmentation_slots = self.frag_slot_sum as f64 / steps;
        s.mean_fragmentation_fraction = self.frag_fraction_sum / steps;
        s.mean_contiguous_waste_fraction = self.contiguous_fraction_sum / steps;
        s.mean_max_context_waste_fraction = self.max_context_fraction_sum / steps;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_deterministic_and_31_bit() {
        assert_eq!(generated_token(7, 3), generated_token(7, 3));
        assert_ne!(generated_token(7, 3), generated_token(7, 4));
        assert_ne!(generated_token(7, 3), generated_token(8, 3));
        assert!((0..1000).all(|p| generated_token(42, p) < 1 << 31));
    }

    #[test]
    fn token_at_is_prompt_then_generated() {
        let r = RequestSpec {
            id: 1,
            stream: 0,
            prompt: vec![5, 6],
            generation_len: 2,
            seed: 9,
        };
        assert_eq!(
            r.tokens(4),
            vec![5, 6, generated_token(9, 2), generated_token(9, 3)]
        );
        assert_eq!(r.final_len(), 4);
    }
}
