//! Per-sequence block tables and the plain data the manager hands to the GPU side.

use std::fmt;

use super::pool::BlockId;
use super::prefix::PrefixHash;

/// Identifies one sequence (request) in the cache; chosen by the caller, unique while live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SeqId(pub u64);

impl fmt::Display for SeqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One copy-on-write block copy the GPU must perform *before* writing an append's slots:
/// the appended tokens land in `dst`, which must first hold `src`'s existing tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BlockCopy {
    /// Shared block whose contents are copied (it stays owned by the other sequences).
    pub src: BlockId,
    /// Newly allocated block that replaces `src` in the appending sequence's table.
    pub dst: BlockId,
}

/// What the GPU must do for one `append_tokens`: block copies first, then write each appended
/// token's K and V at its slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AppendPlan {
    /// `block_id * block_size + offset` for each appended token, in order.
    pub slots: Vec<u32>,
    /// Copy-on-write copies to run before any slot is written.
    pub copies: Vec<BlockCopy>,
}

/// Result of admitting a sequence with prefix caching: how much of its prompt is already
/// in the cache, so the caller only computes (appends) the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PrefixHit {
    /// Leading prompt tokens served from cached blocks (a multiple of the block size).
    pub cached_tokens: u32,
    /// Prompt tokens looked up (the hit-rate denominator vLLM uses: the whole prompt).
    pub lookup_tokens: u32,
    /// Prompt tokens that *could* be cached: full blocks before the one holding the last
    /// token (the last token is always computed, so it produces the first output).
    pub shareable_tokens: u32,
}

/// Cumulative counters, for the stress report (hit rate, evictions, CoW traffic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CacheStats {
    /// Prompt tokens looked up in the prefix cache at admission.
    pub prefix_lookup_tokens: u64,
    /// Prompt tokens served from cached blocks at admission.
    pub prefix_hit_tokens: u64,
    /// Cached (refcount 0) prefix blocks dropped by LRU eviction to make room.
    pub evicted_cached_blocks: u64,
    /// Blocks allocated from the pool, including copy-on-write destinations.
    pub blocks_allocated: u64,
    /// Copy-on-write block copies requested.
    pub cow_copies: u64,
}

impl CacheStats {
    /// Prefix-cache hit rate (hits / lookups), `None` before any lookup.
    pub fn prefix_hit_rate(&self) -> Option<f64> {
        (self.prefix_lookup_tokens > 0)
            .then(|| self.prefix_hit_tokens as f64 / self.prefix_lookup_tokens as f64)
    }
}

/// A live sequence: its block table, its tokens (for later blocks' hash chains and for
/// recompute after preemption), and the hash of each full block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Sequence {
    /// Physical block of each logical block, in order; always `ceil(tokens / block_size)` long.
    pub blocks: Vec<BlockId>,
    /// Every token id written so far.
    pub tokens: Vec<u32>,
    /// Chain hash of each full block (only maintained when prefix caching is on).
    pub hashes: Vec<PrefixHash>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_is_none_before_lookups() {
        let mut s = CacheStats::default();
        assert_eq!(s.prefix_hit_rate(), None);
        s.prefix_lookup_tokens = 4;
        s.prefix_hit_tokens = 1;
        assert_eq!(s.prefix_hit_rate(), Some(0.25));
        #[cfg(feature = "tool")]
        assert!(
            serde_json::to_string(&s)
                .unwrap()
                .contains("\"cow_copies\":0")
        );
    }

    #[test]
    fn seq_id_displays_compactly() {
        assert_eq!(SeqId(7).to_string(), "#7");
    }
}
