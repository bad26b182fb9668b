// KV storage as plain f32: four elements per array entry.
alias KvVec = vec4<f32>;

// Four-value slices per KvVec, and how slice `i` of a row decodes from the element holding
// it (see src/cache/format.rs). This format has no scales: `scale` is 1.
const SLICES_PER_VEC: u32 = 1u;

fn kv_slice(x: KvVec, i: u32, scale: f32) -> vec4<f32> {
    return x;
}

// A scale word read through the pool's element type; never called without scales.
fn kv_scale_of(x: KvVec) -> f32 {
    return 1.0;
}

fn kv_store(x: vec4<f32>) -> KvVec {
    return x;
}

// Texture-backed pools (append_texels): one 16-byte texel holds one four-element slice.
const VEC4_PER_TEXEL: u32 = 1u;

fn kv_texel(a: vec4<f32>, b: vec4<f32>) -> vec4<u32> {
    return bitcast<vec4<u32>>(a);
}
