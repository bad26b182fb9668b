// Four f16 values, two per u32 word (low half first), as f32, in integer code: llvmpipe's GL
// lowers `unpackHalf2x16` to more work than this (slower to compile and to run). About 16
// integer operations per value, with no branch and no f32 subnormal anywhere (many GPUs flush
// those to zero, and an app may force this form on any adapter):
// - each half is moved to the top of its own word, so its exponent and mantissa need one
//   mask and one shift to sit at their f32 positions, and the sign one mask;
// - normals rebias the exponent with one add;
// - subnormals and zeros (exponent 0) become 2^-14 * (1 + mantissa / 2^10) less 2^-14, which
//   is exactly mantissa * 2^-24, a normal f32 (or +0);
// - infinities and NaNs (exponent 31) get exponent 255 and keep their mantissa bits, and a
//   NaN comes out quiet (as hardware conversions and the `half` crate give it).
fn halves4(w: vec2<u32>) -> vec4<f32> {
    let h = vec4<u32>(w.x << 16u, w.x, w.y << 16u, w.y);
    let sign = h & vec4<u32>(0x80000000u);
    let m = (h & vec4<u32>(0x7fff0000u)) >> vec4<u32>(3u);
    // (127 - 15) << 23: the exponent bias difference.
    let normal = m + vec4<u32>(0x38000000u);
    let tiny = bitcast<vec4<u32>>(bitcast<vec4<f32>>(m + vec4<u32>(0x38800000u)) - vec4<f32>(0x1p-14f));
    let quiet = select(vec4<u32>(0u), vec4<u32>(0x400000u), m > vec4<u32>(0x0f800000u));
    let special = (m + vec4<u32>(0x70000000u)) | quiet;
    let finite = select(normal, tiny, m < vec4<u32>(0x00800000u));
    return bitcast<vec4<f32>>(sign | select(finite, special, m >= vec4<u32>(0x0f800000u)));
}
