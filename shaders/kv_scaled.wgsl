// KV storage of a scaled format (int8, int4, FP8) for the tiled kernels and append: codes
// packed into u32 words, and after a block's values, one f32 scale per SCALE_GROUP values of
// each row (see src/cache/format.rs). Follows the format's codec (codec_*.wgsl), which
// defines CODE_BITS, SLICES_PER_VEC, encode4 and decode4; the composer adds INV_MAX
// (1 / the code's largest value, rounded to f32 exactly as the CPU reference rounds it).
alias KvVec = u32;

// Slice `i` of a row from the word holding it and the scale of its group.
fn kv_slice(x: KvVec, i: u32, scale: f32) -> vec4<f32> {
    return decode4(x >> ((i % SLICES_PER_VEC) * 4u * CODE_BITS)) * scale;
}

// A scale word read through the pool's element type, times CODE_UNIT: the factor decode4's
// values take.
fn kv_scale_of(x: KvVec) -> f32 {
    return bitcast<f32>(x) * CODE_UNIT;
}

// A group's scale from its largest magnitude, and the factor its values are multiplied by
// before encoding (0 for an all-zero group): one multiply and one division, as the CPU
// reference (src/cache/quant.rs) computes them.
fn group_scale(max_abs: f32) -> vec2<f32> {
    let scale = max_abs * INV_MAX;
    return vec2<f32>(scale, select(0.0, 1.0 / scale, scale > 0.0));
}
