//! The prefill family: causal attention for a chunk of new query tokens per sequence, whose
//! earlier tokens may already sit in the cache (a prefix hit or an earlier chunk). Rows of a
//! workgroup are (token, GQA head) pairs, so a K/V tile streamed through workgroup memory
//! serves every head of the group. CPU adapters get the flat kernel instead (flat.rs).

use super::attention::{StepSplit, TiledStep};
use super::batch::SeqView;
use super::variant::TileShape;
use crate::gpu::{GpuError, KvStorage};

/// Refuses a prefill step in which a sequence has more queries than cached tokens (its
/// chunk's K/V must be appended first).
pub(crate) fn check(seqs: &[SeqView<'_>]) -> Result<(), GpuError> {
    match seqs.iter().find(|s| s.query_len > s.context_len) {
        Some(bad) => Err(GpuError::InvalidInput {
            argument: "query_len",
            value: bad.query_len.to_string(),
            problem: format!(
                "the sequence has only {} cached tokens; append the chunk first",
                bad.context_len
            ),
        }),
        None => Ok(()),
    }
}

/// The tiled prefill's layout: a workgroup per (`rows` of the sequence's (token, head)
/// pairs, KV head, sequence), each walking the whole causal context (no splits).
pub(crate) fn tiled_step(storage: &KvStorage, seqs: &[SeqView<'_>], tiles: TileShape) -> TiledStep {
    let g = &storage.layout.geometry;
    let max_rows = seqs
        .iter()
        .map(|s| s.query_len * g.group_size())
        .max()
        .unwrap_or(0);
    let total_queries: u32 = seqs.iter().map(|s| s.query_len).sum();
    TiledStep {
        split: StepSplit {
            group_chunks: 1,
            partition_tokens: 0,
            splits: 1,
        },
        grid: [
            max_rows.div_ceil(tiles.rows).max(1),
            g.kv_heads,
            seqs.len() as u32,
        ],
        rows: total_queries * g.q_heads,
    }
}
