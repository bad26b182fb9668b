// KV storage as f16 packed two per u32, for adapters without SHADER_F16. Same bytes as the
// native layout, so a pool written by one variant reads back identically in the other.
alias KvVec = vec2<u32>;

// Four values at slice `i` of row `row` (see src/cache/format.rs); this format has no
// per-row state, so only `x` matters.
fn kv_load(x: KvVec, row: u32, i: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(x.x), unpack2x16float(x.y));
}

fn kv_store(x: vec4<f32>, row: u32, i: u32) -> KvVec {
    return vec2<u32>(pack2x16float(x.xy), pack2x16float(x.zw));
}

// Texture-backed pools (append_texels): one 16-byte texel holds two four-element slices.
const VEC4_PER_TEXEL: u32 = 2u;

fn kv_texel(a: vec4<f32>, b: vec4<f32>, row: u32, texel: u32) -> vec4<u32> {
    return vec4<u32>(pack2x16float(a.xy), pack2x16float(a.zw), pack2x16float(b.xy), pack2x16float(b.zw));
}
