// Decode and prefill attention without workgroup memory or barriers, for CPU adapters
// (lavapipe, SwiftShader). Follows attention_bindings.wgsl, with KvVec a whole load chunk
// (kv_chunk_*.wgsl) and the pool read through block_at/row_at/load_k/load_v of
// flat_pool_buffers.wgsl or flat_pool_textures.wgsl (CPU adapters keep their pools in
// textures).
//
// One invocation per (sequence, block of QUERIES query tokens, context split, KV head, group
// chunk) serves GROUP query heads of one GQA group for each of its query tokens: it streams each
// K/V row of its split from the paged pool once and uses it for all QUERIES x GROUP rows, with
// their queries, accumulators and online-softmax state in registers (the scores of the block
// being walked in a private array). Query token i of a chunk of
// n sees the keys up to its own position (context - n + i), so a decode step is the case n = 1
// (and QUERIES = 1). Output is the same partial softmax state the tiled kernels write;
// combine.wgsl merges it.
//
// Why this shape on CPU adapters: there a workgroup barrier turns the whole shader into
// coroutines, and every buffer load is a per-lane scalar loop (a texel fetch is cheaper, but
// still per chunk). So the kernel loads 16-byte chunks, loads each chunk once for every row it
// serves, keeps everything else in registers, and spends as little arithmetic per key as the
// online softmax allows. Lines marked `{{...}}` are generated per row and per chunk as
// straight-line code (flat_source.rs), because llvmpipe moves a private array indexed inside
// a loop to per-lane scratch memory, as slow as a buffer load: queries and accumulators, used
// for every key, are named values; only the scores, one store and one load per key and row,
// go through a private array.
// When GROUP does not divide the group, the last chunk repeats the group's last head, and when
// QUERIES does not divide a sequence's query tokens, the last block repeats its last token:
// the duplicate writes carry the same values.

@compute @workgroup_size(WG)
fn attend(@builtin(global_invocation_id) gid: vec3<u32>) {
    // x enumerates (query block, split, KV head, group chunk) of sequence z, so the SIMD lanes
    // of a workgroup are busy even when a sequence has few heads and splits.
    let kv_heads = params.q_heads / params.group;
    let per_split = kv_heads * params.group_chunks;
    let per_query = params.splits * per_split;
    let first_query = gid.x / per_query * QUERIES;
    let split = (gid.x % per_query) / per_split;
    let seq = gid.z;
    let info = seq_info[seq];
    if (first_query >= info.z) {
        return;
    }
    let last_query = min(first_query + QUERIES - 1u, info.z - 1u);
    let kv_head = (gid.x % per_split) / params.group_chunks;
    let chunk = gid.x % params.group_chunks;
    // The block walks the keys of all its queries: from the first one's window start to the
    // last one's newest key; each row masks the keys outside its own window. With a sliding
    // window the query sees keys [window start, visible). Splits start from the block's first
    // key rounded down to a whole tile, so tiles still lie within one block; the keys before a
    // row's window are masked like those past its end.
    let visible = info.x - info.z + last_query + 1u;
    let first_key = window_start(info.x - info.z + first_query + 1u);
    let tiles_from = first_key - first_key % KEY_TILE;
    var key_begin = min(tiles_from + split * params.partition_tokens, visible);
    var key_end = min(key_begin + params.partition_tokens, visible);
    let group_first = kv_head * params.group;
    let group_last = group_first + params.group - 1u;
    let first = group_first + chunk * GROUP;
    let part = params.partition_base + split;

{{setup}}
    // The blocks to walk: without shard lists, every block overlapping the split's keys.
    // With them (a multi-shard pool), the blocks of this sequence that the bound shard holds,
    // in logical order, and a split is an equal share of that list rather than a range of
    // keys: the shard's blocks are scattered over the context, and splitting by key range
    // would leave each list entry to the one lane whose range holds it while the workgroup's
    // other lanes wait.
    let bs = params.block_size;
    var list = 0u;
    var first_entry = key_begin / bs;
    var entries = (key_end + bs - 1u) / bs;
    if (params.shard_lists != 0u) {
        list = params.shard_lists + seq * (params.table_stride + 1u);
        let count = block_tables[list];
        let share = (count + params.splits - 1u) / params.splits;
        first_entry = min(split * share, count);
        entries = min(first_entry + share, count);
        key_begin = tiles_from;
        key_end = visible;
    }
    for (var entry = first_entry; entry < entries; entry++) {
        var block = entry;
        if (list != 0u) {
            block = block_tables[list + 1u + entry];
        }
        // One block-table lookup per block, outside the tile loop: a lookup is a per-lane
        // scalar load plus a division on CPU adapters. A block held by another shard is
        // skipped whole; that shard's dispatch reads it.
        let block_rows = block_at(seq, kv_head, block);
        if (elsewhere(block_rows)) {
            continue;
        }
        let block_first = block * bs;
        let block_end = min(block_first + bs, key_end);
        // Two short loops per block instead of one long one: the scores of the block's keys,
        // one key per iteration, into `scores` (with each row's block maximum), then one max
        // update and accumulator rescale per row, then the values, KEY_TILE keys per
        // iteration. Each loop body is a fraction of the one-loop body, whose hundred-odd KiB
        // of straight-line code ran from the L2 cache on llvmpipe (docs/kernels.md). Splits
        // start at multiples of KEY_TILE and block sizes are multiples of it, so a value tile
        // lies within one block; keys past the split's end are masked (p = 0) and read rows
        // of the same block.
        let key_from = max(block_first, key_begin);
{{block_start}}
        for (var key = key_from; key < block_end; key++) {
            let at = row_at(block_rows, key - block_first);
            let slot = (key - key_from) * SCORE_ROWS;
{{scores}}
        }
{{rescale}}
        for (var tile = key_from; tile < block_end; tile += KEY_TILE) {
            let at = row_at(block_rows, tile - block_first);
{{values}}
        }
    }
{{store}}
}
