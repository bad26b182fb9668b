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

// Four-value slices of a whole scale group.
const GROUP_SLICES: u32 = SCALE_GROUP / 4u;

// The slices of a group held in registers: int8 and int4 groups (32 values, 8 slices) are
// read once and kept; FP8's group is a whole row (up to 64 slices, more than registers
// take, and an array the compilers cannot keep in registers is per-lane scratch memory on
// llvmpipe), so its slices are read once for the scale and again as they are encoded.
const HELD_SLICES: u32 = min(GROUP_SLICES, 8u);
const GROUP_HELD: bool = GROUP_SLICES == HELD_SLICES;

// A group's slices when GROUP_HELD, zero past `slices` (a row's last group may be shorter);
// unused otherwise. Loops over it have constant trip counts, so the compilers unroll them
// and keep it in registers.
fn held_group(tensor: u32, src: u32, slices: u32) -> array<vec4<f32>, HELD_SLICES> {
    var x: array<vec4<f32>, HELD_SLICES>;
    if (GROUP_HELD) {
        for (var s = 0u; s < HELD_SLICES; s++) {
            x[s] = select(vec4<f32>(0.0), new_slice(tensor, src + min(s, slices - 1u)), s < slices);
        }
    }
    return x;
}

// The scale of the group of `slices` slices of new row `tensor` from slice `src` (held in
// `x` when GROUP_HELD), and the factor its values are multiplied by before encoding.
fn scale_of_group(tensor: u32, src: u32, slices: u32, x: array<vec4<f32>, HELD_SLICES>) -> vec2<f32> {
    var max_abs = 0.0;
    if (GROUP_HELD) {
        for (var s = 0u; s < HELD_SLICES; s++) {
            let a = abs(x[s]);
            max_abs = max(max_abs, max(max(a.x, a.y), max(a.z, a.w)));
        }
    } else {
        for (var s = 0u; s < slices; s++) {
            let a = abs(new_slice(tensor, src + s));
            max_abs = max(max_abs, max(max(a.x, a.y), max(a.z, a.w)));
        }
    }
    return group_scale(max_abs);
}

// Word `w` of the group's codes: SLICES_PER_VEC slices times `factor`, encoded. Each word
// is stored as it is made, with no array of the group's words (it would be scratch memory
// on llvmpipe).
fn group_word(tensor: u32, src: u32, x: array<vec4<f32>, HELD_SLICES>, w: u32, factor: f32) -> u32 {
    var word = 0u;
    for (var h = 0u; h < SLICES_PER_VEC; h++) {
        let s = w * SLICES_PER_VEC + h;
        var slice: vec4<f32>;
        if (GROUP_HELD) {
            slice = x[s];
        } else {
            slice = new_slice(tensor, src + s);
        }
        word |= encode4(slice * factor) << (h * 4u * CODE_BITS);
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
    let x = held_group(tensor, src, slices);
    let scale = scale_of_group(tensor, src, slices, x);
    // A constant bound (the loop unrolls, so a held group is indexed by constants), left
    // early by a short group.
    for (var w = 0u; w < GROUP_SLICES / SLICES_PER_VEC; w++) {
        if (w >= slices / SLICES_PER_VEC) {
            break;
        }
        let word = group_word(tensor, src, x, w, scale.y);
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
    let x = held_group(tensor, src, slices);
    let scale = scale_of_group(tensor, src, slices, x);
    for (var t = 0u; t < GROUP_SLICES / SLICES_PER_VEC / 4u; t++) {
        if (t >= slices / SLICES_PER_VEC / 4u) {
            break;
        }
        let words = vec4<u32>(
            group_word(tensor, src, x, 4u * t, scale.y),
            group_word(tensor, src, x, 4u * t + 1u, scale.y),
            group_word(tensor, src, x, 4u * t + 2u, scale.y),
            group_word(tensor, src, x, 4u * t + 3u, scale.y),
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
