// How the tiled attention stages K/V rows: 16 bytes per thread and load, KvVec a
// whole load chunk (kv_chunk_*.wgsl: one f32 slice, two of f16, four of int8 or FP8 codes,
// eight of int4), the widest load a GPU issues per thread, so a warp's row loads are full
// 512-byte transactions and the per-load work (slot lookup, address, shard test) is paid
// once per chunk rather than once per slice. Needs rows of whole chunks;
// tiles_pool_elements.wgsl reads the others. Both define stage_rows (and the
// constants key_at needs) for attention_tiles.wgsl.

// Load chunks holding one row's values, and u32 words per chunk (key_at counts scales in
// words). A block's values and scales are both whole chunks.
const ROW_LOADS: u32 = HD4 / SLICES_PER_CHUNK;
const WORDS_PER_LOAD: u32 = 4u;

// The threads write the tile's K (v = false) or V rows into kv_tile as f32, a chunk per
// load; keys another shard holds, or past the range, are zeros. A chunk never straddles two
// scale groups (groups are 32 values or a whole row, chunks 4 to 32 values that divide
// them), so one scale serves all of its slices.
fn stage_rows(v: bool, tid: u32) {
    for (var idx = tid; idx < TILE_KEYS * ROW_LOADS; idx += WG) {
        let at = key_slot[idx / ROW_LOADS];
        let first = (idx % ROW_LOADS) * SLICES_PER_CHUNK;
        let out = (idx / ROW_LOADS) * KV_STRIDE + first;
        if (at.x == INVALID) {
            for (var h = 0u; h < SLICES_PER_CHUNK; h++) {
                kv_tile[out + h] = vec4<f32>(0.0);
            }
            continue;
        }
        var scale = 1.0;
        if (ROW_SCALES != 0u) {
            let w = at.y + first * 4u / SCALE_GROUP;
            scale = bitcast<f32>(chunk_word(pool_load(v, w / 4u), w % 4u)) * CODE_UNIT;
        }
        let x = pool_load(v, at.x + idx % ROW_LOADS);
        for (var h = 0u; h < SLICES_PER_CHUNK; h++) {
            kv_tile[out + h] = chunk_slice(x, h, scale);
        }
    }
}
