//! Host mirrors of the WGSL uniform structs. Each is `#[repr(C)]` + bytemuck and has a test
//! (tests/struct_layout.rs) that its size and member offsets match what naga reports for the
//! WGSL struct of the same name.

use bytemuck::{Pod, Zeroable};

/// Mirror of `AttnParams` in shaders/attention_bindings.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct AttnParams {
    /// Sequences in the batch.
    pub num_seqs: u32,
    /// Query heads.
    pub q_heads: u32,
    /// Query heads per KV head.
    pub group: u32,
    /// Workgroups per KV head along the group (decode).
    pub group_chunks: u32,
    /// Tokens per block.
    pub block_size: u32,
    /// Entries per row of the flattened block-table buffer.
    pub table_stride: u32,
    /// Keys per context split (decode).
    pub partition_tokens: u32,
    /// Context splits (decode, and the tiled prefill on CPU adapters).
    pub splits: u32,
    /// Partitions per output row in the partial buffers (splits x shards).
    pub num_partitions: u32,
    /// First partition index this dispatch writes.
    pub partition_base: u32,
    /// First block of the bound shard.
    pub shard_first_block: u32,
    /// Blocks in the bound shard.
    pub shard_blocks: u32,
    /// Softmax scale, 1/sqrt(head_dim).
    pub scale: f32,
    /// Flat kernel, multi-shard pools: where this shard's per-sequence block lists start in
    /// the block-table buffer (0: no lists, walk the context's blocks in order).
    pub shard_lists: u32,
    /// Sliding window: a query attends to at most this many newest keys; 0 for none.
    pub window: u32,
    /// Texture-backed pools: log2 of the blocks side by side in a texture row (see
    /// `gpu::TextureRows`); 0 with buffers.
    pub texture_row_shift: u32,
}

/// Mirror of `AppendParams` in shaders/append.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct AppendParams {
    /// Tokens to append, or block pairs to copy.
    pub count: u32,
    /// KV heads.
    pub kv_heads: u32,
    /// Tokens per block.
    pub block_size: u32,
    /// First block of the bound shard.
    pub shard_first_block: u32,
    /// Blocks in the bound shard.
    pub shard_blocks: u32,
    /// Threads along x of the 2-D grid.
    pub grid_x_threads: u32,
    /// Texture-backed pools: log2 of the blocks side by side in a texture row (see
    /// `gpu::TextureRows`); 0 with buffers.
    pub texture_row_shift: u32,
    /// Padding to 16-byte multiple.
    pub _pad: u32,
}

/// Mirror of `CombineParams` in shaders/combine.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct CombineParams {
    /// Output rows.
    pub rows: u32,
    /// Partitions per row.
    pub num_partitions: u32,
    /// Rows covered by one row of the 2-D grid: a multiple of every variant's rows per
    /// workgroup, so the same params serve both combine shapes.
    pub row_span: u32,
    /// Where this pass reads each row's merged (max, sum) so far, as a row offset into the
    /// carried state ([`NO_CARRY`]: the first shard group, nothing to merge).
    pub carry_read: u32,
    /// Where this pass writes each row's merged (max, sum) for the next shard group
    /// ([`NO_CARRY`]: the last group).
    pub carry_write: u32,
    /// Padding to 16-byte multiple.
    pub _pad0: u32,
    /// Padding to 16-byte multiple.
    pub _pad1: u32,
    /// Padding to 16-byte multiple.
    pub _pad2: u32,
}

/// [`CombineParams`]' `carry_read` or `carry_write` when a pass has no carried state.
pub const NO_CARRY: u32 = u32::MAX;

/// Mirror of `ProbeParams` in shaders/occupancy.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq)]
pub struct ProbeParams {
    /// Dependent multiply-adds each thread runs.
    pub iterations: u32,
    /// 1.0, passed at run time so the compiler cannot fold the chain.
    pub one: f32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
    /// Padding to 16 bytes.
    pub _pad1: u32,
}
