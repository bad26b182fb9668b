// KV storage as native f16 (needs SHADER_F16; the composer puts `enable f16;` first).
alias KvVec = vec4<f16>;

// Four values at slice `i` of row `row` (see src/cache/format.rs); this format has no
// per-row state, so only `x` matters.
fn kv_load(x: KvVec, row: u32, i: u32) -> vec4<f32> {
    return vec4<f32>(x);
}

fn kv_store(x: vec4<f32>, row: u32, i: u32) -> KvVec {
    return vec4<f16>(x);
}

// Texture-backed pools (append_texels): one 16-byte texel holds two four-element slices.
const VEC4_PER_TEXEL: u32 = 2u;

fn kv_texel(a: vec4<f32>, b: vec4<f32>, row: u32, texel: u32) -> vec4<u32> {
    return vec4<u32>(pack2x16float(a.xy), pack2x16float(a.zw), pack2x16float(b.xy), pack2x16float(b.zw));
}
