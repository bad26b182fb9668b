// The tiled attention's K and V pools read 16 bytes per thread and load: KvVec is a whole
// load chunk (kv_chunk_*.wgsl: two f16 slices, four of int8 or FP8 codes, eight of int4, one
// of f32), the widest load a GPU issues per thread, so a warp's row loads are full 512-byte
// transactions and the per-load work (slot lookup, address, bounds) is paid once per chunk
// rather than once per slice. Needs rows of whole chunks; tiles_pool_elements.wgsl reads the
// others. Both define key_at and stage_rows for attention_tiles.wgsl.

@group(0) @binding(2) var<storage, read> k_cache: array<KvVec>;
@group(0) @binding(3) var<storage, read> v_cache: array<KvVec>;

// Load chunks holding one row's values.
const ROW_CHUNKS: u32 = HD4 / SLICES_PER_CHUNK;

// Where key `tok` of `seq` is in this shard's pool: (its row's first chunk, its row's first
// scale word), or x = INVALID when another shard holds it. A block is its rows' values, then
// their scales (src/cache/format.rs), both whole chunks.
fn key_at(seq: u32, kv_head: u32, tok: u32) -> vec2<u32> {
    let place = block_place(seq, kv_head, tok / params.block_size);
    if (place.y == INVALID) {
        return vec2<u32>(INVALID, 0u);
    }
    let rpb = rows_per_block();
    let row = place.x + tok % params.block_size;
    let start = place.y * (rpb * ROW_CHUNKS + rpb * ROW_SCALES / 4u);
    return vec2<u32>(start + row * ROW_CHUNKS, (start + rpb * ROW_CHUNKS) * 4u + row * ROW_SCALES);
}

fn pool_chunk(v: bool, i: u32) -> KvVec {
    if (v) {
        return v_cache[i];
    }
    return k_cache[i];
}

// The threads write the tile's K (v = false) or V rows into kv_tile as f32, a chunk per
// load; keys another shard holds, or past the range, are zeros. A chunk never straddles two
// scale groups (groups are 32 values or a whole row, chunks 4 to 32 values that divide
// them), so one scale serves all of its slices.
fn stage_rows(v: bool, tid: u32) {
    for (var idx = tid; idx < TILE_KEYS * ROW_CHUNKS; idx += WG) {
        let at = key_slot[idx / ROW_CHUNKS];
        let first = (idx % ROW_CHUNKS) * SLICES_PER_CHUNK;
        let out = (idx / ROW_CHUNKS) * KV_STRIDE + first;
        if (at.x == INVALID) {
            for (var h = 0u; h < SLICES_PER_CHUNK; h++) {
                kv_tile[out + h] = vec4<f32>(0.0);
            }
            continue;
        }
        var scale = 1.0;
        if (ROW_SCALES != 0u) {
            let w = at.y + first * 4u / SCALE_GROUP;
            scale = bitcast<f32>(chunk_word(pool_chunk(v, w / 4u), w % 4u));
        }
        let x = pool_chunk(v, at.x + idx % ROW_CHUNKS);
        for (var h = 0u; h < SLICES_PER_CHUNK; h++) {
            kv_tile[out + h] = chunk_slice(x, h, scale);
        }
    }
}
