// Paged attention bindings shared by decode and prefill: the parameter block, the buffers
// every attention dispatch binds (in this order, so one host batch serves both), and the
// block-table lookup of a key's row. Bindings 2 and 3, the K and V pools, are declared by
// attention_tiles.wgsl (buffers) or by the flat kernel's pool file (flat_pool_*.wgsl), since
// the flat kernel may read them as textures.
//
// The composer prepends the KvVec prelude (kv_*.wgsl) and the constants HEAD_DIM, HD4, WG,
// ROW_SCALES and SCALE_GROUP (scales per row and values per scale; 0 and HEAD_DIM without
// scales), and ROWS, TILE_KEYS and ACC_SLOTS (tiled) or GROUP and KEY_TILE (flat).
//
// Output is a partial softmax state per (row, partition): unnormalised accumulator, running
// max m and running sum l. combine.wgsl merges partitions (context splits and pool shards).
// With one partition per row the rows are final instead: the kernel scales each row's
// accumulator by `output_factor(l)`, and the host binds the caller's output as partial_acc,
// whose layout at one partition is the output's, and skips the combine pass.

struct AttnParams {
    num_seqs: u32,
    q_heads: u32,
    group: u32,
    group_chunks: u32,
    block_size: u32,
    table_stride: u32,
    partition_tokens: u32,
    splits: u32,
    num_partitions: u32,
    partition_base: u32,
    shard_first_block: u32,
    shard_blocks: u32,
    scale: f32,
    // Flat kernel, multi-shard pools: offset of this shard's block lists in block_tables
    // (per sequence: a count, then up to table_stride logical block indices); 0 for none.
    shard_lists: u32,
    // Sliding window: a query sees only the last `window` keys up to its own position; 0
    // for none.
    window: u32,
    // Texture-backed pools: log2 of the blocks side by side in a texture row (flat kernel).
    texture_row_shift: u32,
}

@group(0) @binding(0) var<uniform> params: AttnParams;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> block_tables: array<u32>;
// Per sequence: (context length including this step's tokens, first query row, query count, 0).
@group(0) @binding(5) var<storage, read> seq_info: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> partial_acc: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> partial_ml: array<vec2<f32>>;

// What a row's accumulator is multiplied by when it is stored: 1 / l (as combine computes
// at one partition) when the step has one partition per row, 1 when combine merges it.
fn output_factor(l: f32) -> f32 {
    return select(1.0, select(0.0, 1.0 / l, l > 0.0), params.num_partitions == 1u);
}

// A finite stand-in for -inf: WGSL has no infinity literal, and exp(MASKED - real) is 0.
const MASKED: f32 = -3.0e38;
const INVALID: u32 = 0xffffffffu;

// The first key a query seeing keys [0, visible) attends to: the last params.window of them,
// or all of them without a window.
fn window_start(visible: u32) -> u32 {
    if (params.window == 0u || visible <= params.window) {
        return 0u;
    }
    return visible - params.window;
}

// Rows in one block of one layer's pool: kv_heads x block_size (see src/cache/format.rs).
fn rows_per_block() -> u32 {
    return (params.q_heads / params.group) * params.block_size;
}

// Where `kv_head`'s rows of logical block `block` of `seq` are in this shard: (the index of
// their first row within the block, the block's index within the shard), or y = INVALID when
// the block is in another shard (that shard's dispatch covers it).
fn block_place(seq: u32, kv_head: u32, block: u32) -> vec2<u32> {
    let physical = block_tables[seq * params.table_stride + block];
    if (physical < params.shard_first_block || physical >= params.shard_first_block + params.shard_blocks) {
        return vec2<u32>(0u, INVALID);
    }
    return vec2<u32>(kv_head * params.block_size, physical - params.shard_first_block);
}
