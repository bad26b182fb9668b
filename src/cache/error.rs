//! The one error type of cache bookkeeping.
//!
//! Running out of blocks is the normal, expected outcome of an overcommitted workload, so it is
//! a value the scheduler inspects (to queue, preempt or swap), never a panic.

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
    /// The layout and block count cannot be addressed (zero block size, or slots that would
    /// not fit the `u32` slot ids the kernels use).
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),
}
