// KV storage as native f16 (needs SHADER_F16; the composer puts `enable f16;` first).
alias KvVec = vec4<f16>;

// Four-value slices per KvVec, and how slice `i` of a row decodes from the element holding
// it (see src/cache/format.rs). This format has no scales: `scale` is 1.
const SLICES_PER_VEC: u32 = 1u;

fn kv_slice(x: KvVec, i: u32, scale: f32) -> vec4<f32> {
    return vec4<f32>(x);
}

// A scale word read through the pool's element type; never called without scales.
fn kv_scale_of(x: KvVec) -> f32 {
    return 1.0;
}

fn kv_store(x: vec4<f32>) -> KvVec {
    return vec4<f16>(x);
}

// Texture-backed pools (append_texels): one 16-byte texel holds two four-element slices.
const VEC4_PER_TEXEL: u32 = 2u;

fn kv_texel(a: vec4<f32>, b: vec4<f32>) -> vec4<u32> {
    return vec4<u32>(pack2x16float(a.xy), pack2x16float(a.zw), pack2x16float(b.xy), pack2x16float(b.zw));
}
