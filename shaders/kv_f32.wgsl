// KV storage as plain f32: four elements per array entry.
alias KvVec = vec4<f32>;

// Four values at slice `i` of row `row` (see src/cache/format.rs); this format has no
// per-row state, so only `x` matters.
fn kv_load(x: KvVec, row: u32, i: u32) -> vec4<f32> {
    return x;
}

fn kv_store(x: vec4<f32>, row: u32, i: u32) -> KvVec {
    return x;
}

// Texture-backed pools (append_texels): one 16-byte texel holds one four-element slice.
const VEC4_PER_TEXEL: u32 = 1u;

fn kv_texel(a: vec4<f32>, b: vec4<f32>, row: u32, texel: u32) -> vec4<u32> {
    return bitcast<vec4<u32>>(a);
}
