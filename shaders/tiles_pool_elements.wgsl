// The tiled attention's K and V pools read one storage element (KvVec of kv_*.wgsl: a
// four-value slice, or a word of codes) per load: for rows that are not whole 16-byte chunks
// (int4 at head dim 80). Every other row is staged by tiles_pool_chunks.wgsl. Both define
// key_at and stage_rows for attention_tiles.wgsl.

@group(0) @binding(2) var<storage, read> k_cache: array<KvVec>;
@group(0) @binding(3) var<storage, read> v_cache: array<KvVec>;

// KvVec elements holding one row's values.
const ROW_VECS: u32 = HD4 / SLICES_PER_VEC;

// Where key `tok` of `seq` is in this shard's pool: (its row's first KvVec, its row's first
// scale word), or x = INVALID when another shard holds it. A block is its rows' values, then
// their scales (src/cache/format.rs); without scales the second index is unused.
fn key_at(seq: u32, kv_head: u32, tok: u32) -> vec2<u32> {
    let place = block_place(seq, kv_head, tok / params.block_size);
    if (place.y == INVALID) {
        return vec2<u32>(INVALID, 0u);
    }
    let rpb = rows_per_block();
    let row = place.x + tok % params.block_size;
    let block = place.y * rpb * (ROW_VECS + ROW_SCALES);
    return vec2<u32>(block + row * ROW_VECS, block + rpb * ROW_VECS + row * ROW_SCALES);
}

fn pool_element(v: bool, i: u32) -> KvVec {
    if (v) {
        return v_cache[i];
    }
    return k_cache[i];
}

// The threads write the tile's K (v = false) or V rows into kv_tile as f32, a slice per
// load; keys another shard holds, or past the range, are zeros.
fn stage_rows(v: bool, tid: u32) {
    for (var idx = tid; idx < TILE_KEYS * HD4; idx += WG) {
        let at = key_slot[idx / HD4];
        let i = idx % HD4;
        var value = vec4<f32>(0.0);
        if (at.x != INVALID) {
            var scale = 1.0;
            if (ROW_SCALES != 0u) {
                scale = kv_scale_of(pool_element(v, at.y + i * 4u / SCALE_GROUP));
            }
            value = kv_slice(pool_element(v, at.x + i / SLICES_PER_VEC), i, scale);
        }
        kv_tile[(idx / HD4) * KV_STRIDE + i] = value;
    }
}
