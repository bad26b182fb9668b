//! The error types of cache bookkeeping.
//!
//! Running out of blocks is the normal, expected outcome of an overcommitted workload, so it is
//! a value the scheduler inspects (to queue, preempt or swap), never a panic. A broken internal
//! invariant is a different thing, a bug in the cache itself, so it has its own type
//! ([`InvariantViolation`]) that no normal operation returns.

use thiserror::Error;

use super::pool::BlockId;
use super::table::SeqId;

/// Why a cache operation was refused. Every refused operation leaves the cache unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CacheError {
    /// The pool cannot supply enough blocks; the scheduler must wait, preempt or swap.
    #[error("out of KV blocks: needed {needed}, available {available}")]
    OutOfBlocks {
        /// Blocks the operation would have taken.
        needed: u32,
        /// Blocks that were free or evictable when it was tried.
        available: u32,
    },
    /// The sequence id is not in the cache (never added, or already freed).
    #[error("unknown sequence {0}")]
    UnknownSequence(SeqId),
    /// The sequence id is already in the cache; ids must be unique among live sequences.
    #[error("sequence {0} already exists")]
    DuplicateSequence(SeqId),
    /// A block id was out of range or in the wrong state for the operation (a caller bug,
    /// reported instead of corrupting the reference counts).
    #[error("block {0} is out of range or not in a state that allows this operation")]
    InvalidBlock(BlockId),
    /// The block is already shared by `u32::MAX` block tables, so one more reference cannot be
    /// counted; reported instead of wrapping the count, which would free a block in use.
    #[error("block {0} cannot take another reference: its reference count is at the maximum")]
    RefcountOverflow(BlockId),
    /// The layout and block count cannot be addressed (zero block size, or slots that would
    /// not fit the `u32` slot ids the kernels use).
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),
}

/// A consistency rule of the bookkeeping that [`check_invariants`] found broken, naming the
/// block or sequence at fault so a failing test or debug check points at the culprit.
///
/// Unlike [`CacheError`] this is never the caller's fault: it means the pool or the manager
/// has a bug, and the cache must not be trusted any more.
///
/// [`check_invariants`]: super::KvCacheManager::check_invariants
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InvariantViolation {
    /// The free list or the LRU names a block id the pool does not have.
    #[error("block {block} is listed as free or cached but is out of range")]
    BlockOutOfRange {
        /// The out-of-range id.
        block: BlockId,
    },
    /// A block appears twice across the free list and the LRU, so it could be handed out twice.
    #[error("block {block} is listed twice across the free list and the LRU")]
    BlockListedTwice {
        /// The block listed twice.
        block: BlockId,
    },
    /// A block on the free list is referenced, holds a prefix hash or has an LRU tick.
    #[error("free block {block} is referenced, hashed or cached")]
    FreeBlockNotIdle {
        /// The free block.
        block: BlockId,
    },
    /// A block in the LRU is referenced, has no prefix hash, or its tick disagrees with the
    /// LRU's key for it.
    #[error("evictable block {block} is referenced, unhashed or mis-ticked")]
    EvictableBlockInconsistent {
        /// The evictable block.
        block: BlockId,
    },
    /// A block nobody references is neither free nor cached: it can never be allocated again.
    #[error("block {block} has refcount 0 but is neither free nor cached")]
    BlockLost {
        /// The lost block.
        block: BlockId,
    },
    /// A referenced block is in the LRU, so an allocation could evict it while in use.
    #[error("in-use block {block} is in the LRU")]
    InUseBlockEvictable {
        /// The in-use block.
        block: BlockId,
    },
    /// The prefix index and the block's registered hash disagree (in either direction), so a
    /// lookup could return a block holding other tokens.
    #[error("prefix index entry of block {block} disagrees with its registered hash")]
    PrefixIndexMismatch {
        /// The block whose hash and index entry disagree.
        block: BlockId,
    },
    /// A block's reference count differs from the number of block tables that list it.
    #[error("block {block}: refcount {refcount} differs from {table_refs} table references")]
    RefcountMismatch {
        /// The block.
        block: BlockId,
        /// What the pool counts.
        refcount: u32,
        /// How many block-table entries name it.
        table_refs: u32,
    },
    /// A block table names a block id the pool does not have.
    #[error("sequence {seq}: block table names out-of-range block {block}")]
    TableBlockOutOfRange {
        /// The sequence whose table is wrong.
        seq: SeqId,
        /// The out-of-range id.
        block: BlockId,
    },
    /// A block table's length is not `ceil(tokens / block_size)`.
    #[error("sequence {seq}: {blocks} blocks do not hold exactly {tokens} tokens")]
    TableLength {
        /// The sequence whose table is wrong.
        seq: SeqId,
        /// Blocks in its table.
        blocks: usize,
        /// Tokens it holds.
        tokens: usize,
    },
    /// With prefix caching, a sequence's hash chain does not have one hash per full block.
    #[error("sequence {seq}: {hashes} chain hashes for {tokens} tokens")]
    HashChainLength {
        /// The sequence whose chain is wrong.
        seq: SeqId,
        /// Hashes in its chain.
        hashes: usize,
        /// Tokens it holds.
        tokens: usize,
    },
}
