// The append of formats with scales (int8, int4, FP8): one invocation per (new token, KV
// head, scale group) finds the group's largest magnitude, stores its scale, and encodes its
// values (kv_scaled.wgsl and the codec), exactly as the CPU reference does
// (src/cache/quant.rs). Follows append.wgsl.

// The new row of `tensor` (0 = K, 1 = V) starting at slice `src`. Every caller passes a
// constant `tensor`, so the branch folds away once the function is inlined.
fn new_slice(tensor: u32, src: u32) -> vec4<f32> {
    if (tensor == 0u) {
        return new_k[src];
    }
    return new_v[src];
}

// The scale of the group of `slices` four-value slices of a new row from slice `src`, and
// the factor its values are multiplied by before encoding (group_scale).
fn scale_of_group(tensor: u32, src: u32, slices: u32) -> vec2<f32> {
    var max_abs = 0.0;
    for (var s = 0u; s < slices; s++) {
        let x = abs(new_slice(tensor, src + s));
        max_abs = max(max_abs, max(max(x.x, x.y), max(x.z, x.w)));
    }
    return group_scale(max_abs);
}

// Word `w` of the codes of the group from slice `src`: SLICES_PER_VEC slices times
// `factor`, encoded. Each word is built and stored as it is made, with no array of the
// group's words: llvmpipe keeps an array indexed in a loop in per-lane scratch memory.
fn group_word(tensor: u32, src: u32, w: u32, factor: f32) -> u32 {
    var word = 0u;
    for (var h = 0u; h < SLICES_PER_VEC; h++) {
        let codes = encode4(new_slice(tensor, src + w * SLICES_PER_VEC + h) * factor);
        word |= codes << (h * 4u * CODE_BITS);
    }
    return word;
}

// Which group of which new row invocation `idx` encodes: (token, kv_head, group), or x = SKIP
// past the end.
fn group_of(idx: u32) -> vec3<u32> {
    let per_token = params.kv_heads * ROW_SCALES;
    if (idx >= params.count * per_token) {
        return vec3<u32>(SKIP, 0u, 0u);
    }
    return vec3<u32>(idx / per_token, (idx % per_token) / ROW_SCALES, idx % ROW_SCALES);
}

@compute @workgroup_size(64)
fn append_scaled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let job = group_of(gid.x + gid.y * params.grid_x_threads);
    if (job.x == SKIP) {
        return;
    }
    let place = token_place(job.x);
    if (place.x == SKIP) {
        return;
    }
    let rpb = params.kv_heads * params.block_size;
    let row = job.y * params.block_size + place.y;
    let block = place.x * rpb * (ROW_VECS + ROW_SCALES);
    let first = job.z * (SCALE_GROUP / 4u);
    let slices = min(SCALE_GROUP / 4u, HD4 - first);
    let src = (job.x * params.kv_heads + job.y) * HD4 + first;
    let dst = block + row * ROW_VECS + first / SLICES_PER_VEC;
    let scale_at = block + rpb * ROW_VECS + row * ROW_SCALES + job.z;
    store_group(0u, src, slices, dst, scale_at);
    store_group(1u, src, slices, dst, scale_at);
}

// Encodes one group of new row `tensor` into a buffer-backed pool: its words from `dst`,
// its scale at `scale_at`.
fn store_group(tensor: u32, src: u32, slices: u32, dst: u32, scale_at: u32) {
    let scale = scale_of_group(tensor, src, slices);
    for (var w = 0u; w < slices / SLICES_PER_VEC; w++) {
        let word = group_word(tensor, src, w, scale.y);
        if (tensor == 0u) {
            k_cache[dst + w] = word;
        } else {
            v_cache[dst + w] = word;
        }
    }
    if (tensor == 0u) {
        k_cache[scale_at] = bitcast<u32>(scale.x);
    } else {
        v_cache[scale_at] = bitcast<u32>(scale.x);
    }
}

// Texture-backed pools: a group's codes are whole texels (the pool is texture-backed only
// when they are; see KvBacking::texture_misfit) and its scale is one r32uint texel.
@compute @workgroup_size(64)
fn append_scaled_texels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let job = group_of(gid.x + gid.y * params.grid_x_threads);
    if (job.x == SKIP) {
        return;
    }
    let place = token_place(job.x);
    if (place.x == SKIP) {
        return;
    }
    let row = job.y * params.block_size + place.y;
    let first = job.z * (SCALE_GROUP / 4u);
    let slices = min(SCALE_GROUP / 4u, HD4 - first);
    let src = (job.x * params.kv_heads + job.y) * HD4 + first;
    let texel = (row * ROW_VECS + first / SLICES_PER_VEC) / 4u;
    let rows = params.kv_heads * params.block_size;
    let span = rows * ROW_VECS / 4u;
    let scale_at = block_texel(place.x, rows * ROW_SCALES, row * ROW_SCALES + job.z);
    let first_texel = block_texel(place.x, span, texel);
    store_group_texels(0u, src, slices, first_texel, scale_at);
    store_group_texels(1u, src, slices, first_texel, scale_at);
}

// Encodes one group of new row `tensor` into a texture-backed pool: its codes four words to
// a texel from `at` (consecutive texels of one block span), its scale at `scale_at`.
fn store_group_texels(tensor: u32, src: u32, slices: u32, at: vec2<u32>, scale_at: vec2<u32>) {
    let scale = scale_of_group(tensor, src, slices);
    for (var t = 0u; t < slices / SLICES_PER_VEC / 4u; t++) {
        let words = vec4<u32>(
            group_word(tensor, src, 4u * t, scale.y),
            group_word(tensor, src, 4u * t + 1u, scale.y),
            group_word(tensor, src, 4u * t + 2u, scale.y),
            group_word(tensor, src, 4u * t + 3u, scale.y),
        );
        let texel = at + vec2<u32>(t, 0u);
        if (tensor == 0u) {
            textureStore(k_texels, texel, words);
        } else {
            textureStore(v_texels, texel, words);
        }
    }
    let scale_word = vec4<u32>(bitcast<u32>(scale.x), 0u, 0u, 0u);
    if (tensor == 0u) {
        textureStore(k_scale_texels, scale_at, scale_word);
    } else {
        textureStore(v_scale_texels, scale_at, scale_word);
    }
}
