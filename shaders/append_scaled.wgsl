// The append of formats with scales (int8, int4, FP8): one invocation per (new token, KV
// head, scale group) finds the group's largest magnitude, stores its scale, and encodes its
// values (kv_scaled.wgsl and the codec), exactly as the CPU reference does
// (src/cache/quant.rs). Follows append.wgsl.

// Words of codes one full group packs into.
const GROUP_WORDS: u32 = SCALE_GROUP / (4u * SLICES_PER_VEC);

var<private> group_words: array<u32, GROUP_WORDS>;

// The new row of `tensor` (0 = K, 1 = V) starting at slice `src`.
fn new_slice(tensor: u32, src: u32) -> vec4<f32> {
    if (tensor == 0u) {
        return new_k[src];
    }
    return new_v[src];
}

// Encodes `slices` four-value slices of a new row, from slice `src`, into group_words and
// returns their scale.
fn encode_group(tensor: u32, src: u32, slices: u32) -> f32 {
    var max_abs = 0.0;
    for (var s = 0u; s < slices; s++) {
        let x = abs(new_slice(tensor, src + s));
        max_abs = max(max_abs, max(max(x.x, x.y), max(x.z, x.w)));
    }
    let scale = group_scale(max_abs);
    for (var w = 0u; w < GROUP_WORDS; w++) {
        group_words[w] = 0u;
    }
    for (var s = 0u; s < slices; s++) {
        let codes = encode4(new_slice(tensor, src + s) * scale.y);
        group_words[s / SLICES_PER_VEC] |= codes << ((s % SLICES_PER_VEC) * 4u * CODE_BITS);
    }
    return scale.x;
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
    for (var tensor = 0u; tensor < 2u; tensor++) {
        let scale = bitcast<u32>(encode_group(tensor, src, slices));
        for (var w = 0u; w < slices / SLICES_PER_VEC; w++) {
            if (tensor == 0u) {
                k_cache[dst + w] = group_words[w];
            } else {
                v_cache[dst + w] = group_words[w];
            }
        }
        if (tensor == 0u) {
            k_cache[scale_at] = scale;
        } else {
            v_cache[scale_at] = scale;
        }
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
    for (var tensor = 0u; tensor < 2u; tensor++) {
        let scale = bitcast<u32>(encode_group(tensor, src, slices));
        for (var t = 0u; t < slices / SLICES_PER_VEC / 4u; t++) {
            let words = vec4<u32>(group_words[4u * t], group_words[4u * t + 1u], group_words[4u * t + 2u], group_words[4u * t + 3u]);
            let at = block_texel(place.x, span, texel + t);
            if (tensor == 0u) {
                textureStore(k_texels, at, words);
            } else {
                textureStore(v_texels, at, words);
            }
        }
        if (tensor == 0u) {
            textureStore(k_scale_texels, scale_at, vec4<u32>(scale, 0u, 0u, 0u));
        } else {
            textureStore(v_scale_texels, scale_at, vec4<u32>(scale, 0u, 0u, 0u));
        }
    }
}
