// FP8 codes (OCP E4M3 "FN" or E5M2), four per u32 (value 0 in the lowest byte), with integer
// bit operations: WGSL has no 8-bit float. The composer defines the layout: FP8_E4M3,
// FP8_MANTISSA, FP8_BIAS, FP8_MAX_CODE, FP8_MIN_NORMAL (the smallest normal value) and
// FP8_SUBNORMAL_STEPS (subnormal steps per unit, 2^(mantissa - min exponent)).
const CODE_BITS: u32 = 8u;
const SLICES_PER_VEC: u32 = 1u;

// Two codes (low 16 bits) as two f16 in one word. An E5M2 code is the top byte of the f16
// with the same value; an E4M3 code's exponent and mantissa fit the f16 fields with a bias
// 8 lower, so the f16 is the value / 256 (subnormals included: they are f16 subnormals).
fn fp8_pair_as_f16(p: u32) -> u32 {
    if (FP8_E4M3) {
        return ((p & 0x80u) << 8u) | ((p & 0x7fu) << 7u) | ((p & 0x8000u) << 16u) | ((p & 0x7f00u) << 15u);
    }
    return ((p & 0xffu) << 8u) | ((p & 0xff00u) << 16u);
}

fn decode4(bits: u32) -> vec4<f32> {
    let v = vec4<f32>(unpack2x16float(fp8_pair_as_f16(bits & 0xffffu)), unpack2x16float(fp8_pair_as_f16(bits >> 16u)));
    if (FP8_E4M3) {
        // E4M3 has no infinities; S.1111.111 is NaN.
        let magnitude = (vec4<u32>(bits) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0x7fu);
        return select(v * 256.0, vec4<f32>(bitcast<f32>(0x7fc00000u)), magnitude == vec4<u32>(0x7fu));
    }
    return v;
}

// The code nearest `y` (ties to even), saturated to the largest finite value, NaN kept.
fn fp8_encode(y: f32) -> u32 {
    let bits = bitcast<u32>(y);
    let sign = (bits >> 24u) & 0x80u;
    let a = bits & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return 0x7fu;
    }
    var magnitude: u32;
    if (bitcast<f32>(a) < FP8_MIN_NORMAL) {
        // Subnormal: a whole number of steps; round() ties to even, and 2^mantissa steps
        // carry into the smallest normal code.
        magnitude = u32(round(bitcast<f32>(a) * FP8_SUBNORMAL_STEPS));
    } else {
        // Normal: round the f32 mantissa to FP8_MANTISSA bits (nearest even) on the bits,
        // then rebias the exponent.
        let drop = 23u - FP8_MANTISSA;
        let rounded = a + ((1u << (drop - 1u)) - 1u) + ((a >> drop) & 1u);
        magnitude = (rounded >> drop) - ((127u - FP8_BIAS) << FP8_MANTISSA);
    }
    return sign | min(magnitude, FP8_MAX_CODE);
}

// Four values already divided by their scale, as four codes in one word.
fn encode4(y: vec4<f32>) -> u32 {
    return fp8_encode(y.x) | (fp8_encode(y.y) << 8u) | (fp8_encode(y.z) << 16u) | (fp8_encode(y.w) << 24u);
}
