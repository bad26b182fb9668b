//! Reading a pool back for verification and dumps: one layer's shards copied to the host as
//! stored, then any number of sequences gathered from that copy in logical token order. Not
//! for the hot path: a snapshot reads whole shards, so a caller checking several sequences
//! reads each layer once, not once per sequence.

use super::storage::KvStorage;
use super::{GpuContext, GpuError};

/// One layer's K and V shards as the pool stores them (encoded blocks, values then scales).
pub struct LayerSnapshot<'a> {
    storage: &'a KvStorage,
    /// Per shard, its K blocks' bytes.
    k: Vec<Vec<u8>>,
    /// Per shard, its V blocks' bytes.
    v: Vec<Vec<u8>>,
}

impl KvStorage {
    /// Copies `layer`'s K and V shards to the host.
    pub fn snapshot(&self, ctx: &GpuContext, layer: u32) -> Result<LayerSnapshot<'_>, GpuError> {
        if layer >= self.layers() {
            return Err(GpuError::InvalidInput {
                argument: "layer",
                value: layer.to_string(),
                problem: format!("the pool has {} layers", self.layers()),
            });
        }
        let block_bytes = self.plan.block_bytes_per_layer;
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for s in 0..self.plan.num_shards() {
            let (_, blocks) = self.plan.shard_range(s);
            k.push(self.k(layer, s).read_all(ctx, blocks, block_bytes)?);
            v.push(self.v(layer, s).read_all(ctx, blocks, block_bytes)?);
        }
        Ok(LayerSnapshot {
            storage: self,
            k,
            v,
        })
    }

    /// Reads one sequence's K and V for `layer` back: [`LayerSnapshot::gather`] of a fresh
    /// snapshot.
    pub fn gather(
        &self,
        ctx: &GpuContext,
        layer: u32,
        block_table: &[u32],
        tokens: u32,
    ) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        self.snapshot(ctx, layer)?.gather(block_table, tokens)
    }
}

impl LayerSnapshot<'_> {
    /// One sequence's K and V in logical token order, `[tokens][kv_heads][head_dim]` f32: the
    /// values the kernels read (f16 and the scaled formats decoded; NaN for tokens whose
    /// block a sliding window released).
    pub fn gather(
        &self,
        block_table: &[u32],
        tokens: u32,
    ) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        let layout = &self.storage.layout;
        let (dtype, hd) = (layout.dtype, layout.geometry.head_dim);
        self.gather_rows(block_table, tokens, hd as usize, |block, rows| {
            dtype.decode_block(block, rows, hd)
        })
    }

    /// The scales of a scaled format's rows, like [`LayerSnapshot::gather`]:
    /// `[tokens][kv_heads][scales per row]` (empty for formats without scales).
    pub fn gather_scales(
        &self,
        block_table: &[u32],
        tokens: u32,
    ) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        let layout = &self.storage.layout;
        let (dtype, hd) = (layout.dtype, layout.geometry.head_dim);
        let width = dtype.row_scales(hd) as usize;
        self.gather_rows(block_table, tokens, width, |block, rows| {
            dtype.block_scales(block, rows, hd)
        })
    }

    /// Decodes each of the table's blocks into `[kv_head][token_in_block]` rows of `width`
    /// values with `decode(block bytes, rows)`, and gathers `tokens` tokens in logical order.
    /// Only the table's blocks are decoded, so a long sequence in a large pool costs its own
    /// blocks in f32, not the whole pool.
    fn gather_rows(
        &self,
        block_table: &[u32],
        tokens: u32,
        width: usize,
        decode: impl Fn(&[u8], usize) -> Vec<f32>,
    ) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        let storage = self.storage;
        let bs_tokens = block_table.len() as u64 * storage.layout.block_size as u64;
        if (tokens as u64) > bs_tokens {
            return Err(GpuError::InvalidInput {
                argument: "tokens",
                value: tokens.to_string(),
                problem: format!("the block table covers {bs_tokens} tokens"),
            });
        }
        // Entries a sliding window released hold nothing: their tokens read back as NaN.
        let held = |b: &u32| *b != crate::cache::RELEASED;
        for &block in block_table.iter().filter(|b| held(b)) {
            storage.check_block(block)?;
        }
        let (kv_heads, bs) = (
            storage.layout.geometry.kv_heads as usize,
            storage.layout.block_size as usize,
        );
        let block_bytes = storage.plan.block_bytes_per_layer as usize;
        let row = kv_heads * width;
        let mut k = vec![f32::NAN; tokens as usize * row];
        let mut v = vec![f32::NAN; tokens as usize * row];
        let used_blocks = (tokens as usize).div_ceil(bs);
        for (b, block) in block_table[..used_blocks].iter().enumerate() {
            if !held(block) {
                continue;
            }
            let (shard, local) = storage.plan.locate(*block);
            let at = local as usize * block_bytes..(local as usize + 1) * block_bytes;
            let first = b * bs;
            let in_block = bs.min(tokens as usize - first);
            for (shards, out) in [(&self.k, &mut k), (&self.v, &mut v)] {
                // [kv_head][token_in_block] rows of `width` values.
                let rows = decode(&shards[shard as usize][at.clone()], kv_heads * bs);
                for t in 0..in_block {
                    for h in 0..kv_heads {
                        let src = (h * bs + t) * width;
                        let dst = (first + t) * row + h * width;
                        out[dst..dst + width].copy_from_slice(&rows[src..src + width]);
                    }
                }
            }
        }
        Ok((k, v))
    }
}
