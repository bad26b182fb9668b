// The append of formats without scales (f32, f16): one invocation per four-value slice
// (buffers) or per 16-byte texel (textures). Follows append.wgsl.

@compute @workgroup_size(64)
fn append(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let per_token = params.kv_heads * HD4;
    if (idx >= params.count * per_token) {
        return;
    }
    let place = token_place(idx / per_token);
    if (place.x == SKIP) {
        return;
    }
    let head = (idx % per_token) / HD4;
    let row = (place.x * params.kv_heads + head) * params.block_size + place.y;
    let dst = row * HD4 + idx % HD4;
    k_cache[dst] = kv_store(new_k[idx]);
    v_cache[dst] = kv_store(new_v[idx]);
}

// One invocation per (new token, KV head) row of a texture-backed pool, storing the row's
// texels (VEC4_PER_TEXEL four-element slices each) one after another: a row is consecutive
// texels of its block's span, which holds the same bytes as the block's range of a
// buffer-backed shard. Only CPU adapters keep pools in textures, and there every integer
// division of the placement is a per-lane scalar loop, so it runs once per row rather than
// once per texel.
@compute @workgroup_size(64)
fn append_texels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    if (idx >= params.count * params.kv_heads) {
        return;
    }
    let token = idx / params.kv_heads;
    let place = token_place(token);
    if (place.x == SKIP) {
        return;
    }
    let head = idx - token * params.kv_heads;
    let per_head = HD4 / VEC4_PER_TEXEL;
    let span = params.kv_heads * params.block_size * per_head;
    let first = block_texel(place.x, span, (head * params.block_size + place.y) * per_head);
    for (var texel = 0u; texel < per_head; texel++) {
        // For one slice per texel the second operand is ignored; reading the same slice
        // keeps the index in bounds.
        let src = idx * HD4 + texel * VEC4_PER_TEXEL;
        let last = src + VEC4_PER_TEXEL - 1u;
        let at = first + vec2<u32>(texel, 0u);
        textureStore(k_texels, at, kv_texel(new_k[src], new_k[last]));
        textureStore(v_texels, at, kv_texel(new_v[src], new_v[last]));
    }
}
