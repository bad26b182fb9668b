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

// One invocation per 16-byte texel (VEC4_PER_TEXEL four-element slices of a row). A block's
// span of texels holds the same bytes as its range of a buffer-backed shard.
@compute @workgroup_size(64)
fn append_texels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let per_head = HD4 / VEC4_PER_TEXEL;
    let per_token = params.kv_heads * per_head;
    if (idx >= params.count * per_token) {
        return;
    }
    let token = idx / per_token;
    let place = token_place(token);
    if (place.x == SKIP) {
        return;
    }
    let head = (idx % per_token) / per_head;
    let texel = idx % per_head;
    let span = params.kv_heads * params.block_size * per_head;
    let at = block_texel(place.x, span, (head * params.block_size + place.y) * per_head + texel);
    // For one slice per texel the second operand is ignored; reading the same slice keeps
    // the index in bounds.
    let src = (token * params.kv_heads + head) * HD4 + texel * VEC4_PER_TEXEL;
    let last = src + VEC4_PER_TEXEL - 1u;
    textureStore(k_texels, at, kv_texel(new_k[src], new_k[last]));
    textureStore(v_texels, at, kv_texel(new_v[src], new_v[last]));
}
