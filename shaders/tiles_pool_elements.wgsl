// How the tiled attention stages K/V rows that are not whole 16-byte chunks (int4
// at head dim 80): one storage element per load (KvVec of kv_*.wgsl, a word of codes there).
// Every other row is staged by tiles_pool_chunks.wgsl. Both define stage_rows (and the
// constants key_at needs) for attention_tiles.wgsl.

// KvVec elements holding one row's values, and u32 words per element where a format has
// scales (their KvVec is a word of codes; key_at counts scales in words).
const ROW_LOADS: u32 = HD4 / SLICES_PER_VEC;
const WORDS_PER_LOAD: u32 = 1u;

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
                scale = kv_scale_of(pool_load(v, at.y + i * 4u / SCALE_GROUP));
            }
            value = kv_slice(pool_load(v, at.x + i / SLICES_PER_VEC), i, scale);
        }
        kv_tile[(idx / HD4) * KV_STRIDE + i] = value;
    }
}
