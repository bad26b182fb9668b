// Four f16 values, two per u32 word (low half first), as f32, in integer code: llvmpipe's GL
// lowers `unpackHalf2x16` to more work than this (slower to compile and to run). Exact for
// every half: normals rebias the exponent with one add; subnormals (exponent 0, including
// zeros) are their 10-bit mantissa times 2^-24, exact in f32 and never an f32 subnormal;
// infinities and NaNs (exponent 31) keep their mantissa bits, and a NaN comes out quiet (as
// hardware conversions and the `half` crate give it). The sign is copied in each case.
fn halves4(w: vec2<u32>) -> vec4<f32> {
    let h = vec4<u32>(w.x & 0xffffu, w.x >> 16u, w.y & 0xffffu, w.y >> 16u);
    let sign = (h & vec4<u32>(0x8000u)) << vec4<u32>(16u);
    let magnitude = h & vec4<u32>(0x7fffu);
    let exponent = magnitude >> vec4<u32>(10u);
    // (127 - 15) << 10: the exponent bias difference, below the mantissa's 10 bits.
    let normal = sign | ((magnitude + vec4<u32>(0x1c000u)) << vec4<u32>(13u));
    let subnormal = sign | bitcast<vec4<u32>>(vec4<f32>(magnitude) * 5.9604645e-8f);
    let mantissa = magnitude & vec4<u32>(0x3ffu);
    let quiet = select(vec4<u32>(0u), vec4<u32>(0x400000u), mantissa != vec4<u32>(0u));
    let special = sign | vec4<u32>(0x7f800000u) | quiet | (mantissa << vec4<u32>(13u));
    let bits = select(select(normal, subnormal, exponent == vec4<u32>(0u)), special, exponent == vec4<u32>(31u));
    return bitcast<vec4<f32>>(bits);
}
