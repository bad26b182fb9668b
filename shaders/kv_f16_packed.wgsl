// KV storage as f16 packed two per u32, for adapters without SHADER_F16. Same bytes as the
// native layout, so a pool written by one variant reads back identically in the other.
alias KvVec = vec2<u32>;

// Four-value slices per KvVec, and how slice `i` of a row decodes from the element holding
// it (see src/cache/format.rs). This format has no scales: `scale` is 1.
const SLICES_PER_VEC: u32 = 1u;

fn kv_slice(x: KvVec, i: u32, scale: f32) -> vec4<f32> {
    return halves4(x);
}

// A scale word read through the pool's element type; never called without scales.
fn kv_scale_of(x: KvVec) -> f32 {
    return 1.0;
}

fn kv_store(x: vec4<f32>) -> KvVec {
    return vec2<u32>(pack2x16float(x.xy), pack2x16float(x.zw));
}

// Texture-backed pools (append_texels): one 16-byte texel holds two four-element slices.
const VEC4_PER_TEXEL: u32 = 2u;

fn kv_texel(a: vec4<f32>, b: vec4<f32>) -> vec4<u32> {
    return vec4<u32>(pack2x16float(a.xy), pack2x16float(a.zw), pack2x16float(b.xy), pack2x16float(b.zw));
}
