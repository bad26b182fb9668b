//! The decode family: one query token per sequence against its paged context, split over the
//! context (flash-decoding) so a small batch with long contexts still fills the device. Both
//! algorithms serve up to 8 query heads of one GQA group per workgroup (tiled) or invocation
//! (flat), so every K/V row is read once per group, not once per query head.

use super::attention::{StepSplit, TiledStep};
use super::batch::SeqView;
use super::flat::SplitPolicy;
use super::variant::TileShape;
use crate::gpu::{GpuError, KvStorage};

/// Refuses a decode step in which a sequence brings other than exactly one query.
pub(crate) fn check(seqs: &[SeqView<'_>]) -> Result<(), GpuError> {
    match seqs.iter().find(|s| s.query_len != 1) {
        Some(bad) => Err(GpuError::InvalidInput {
            argument: "query_len",
            value: bad.query_len.to_string(),
            problem: "decode takes exactly one query per sequence".into(),
        }),
        None => Ok(()),
    }
}

/// The tiled decode's layout: a workgroup per (context split, KV head, chunk of up to `rows`
/// heads of its group, sequence), with the splits `policy` sizes to the device.
pub(crate) fn tiled_step(
    storage: &KvStorage,
    seqs: &[SeqView<'_>],
    tiles: TileShape,
    policy: &SplitPolicy,
    window: Option<u32>,
) -> TiledStep {
    let g = &storage.layout.geometry;
    let max_context = seqs.iter().map(|s| s.context_len).max().unwrap_or(0).max(1);
    // The keys one query sees: the whole context, or the window's last keys of it.
    let span = window.map_or(max_context, |w| w.min(max_context));
    let group_chunks = g.group_size().div_ceil(tiles.rows);
    let base = seqs.len() as u32 * g.kv_heads * group_chunks;
    let partition_tokens = policy.partition_tokens(base, span, tiles.keys);
    let splits = span.div_ceil(partition_tokens);
    TiledStep {
        split: StepSplit {
            group_chunks,
            partition_tokens,
            splits,
        },
        grid: [splits, g.kv_heads * group_chunks, seqs.len() as u32],
        rows: seqs.len() as u32 * g.q_heads,
    }
}
