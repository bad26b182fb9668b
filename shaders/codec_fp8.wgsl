// FP8 codes (OCP E4M3 "FN" or E5M2), four per u32 (value 0 in the lowest byte), with integer
// bit operations: WGSL has no 8-bit float. The composer defines the layout: FP8_E4M3,
// FP8_MANTISSA, FP8_BIAS, FP8_MAX_CODE, FP8_MIN_NORMAL (the smallest normal value) and
// FP8_SUBNORMAL_STEPS (subnormal steps per unit, 2^(mantissa - min exponent)); whether the
// kernel converts halves in integer code (FP8_INTEGER_DECODE, set with halves_integer.wgsl);
// next to the format's scale constants, CODE_UNIT (what decode4's values are in units of).
const CODE_BITS: u32 = 8u;
const SLICES_PER_VEC: u32 = 1u;

// Four codes as two words of two f16 halves, each code in the top byte of its half: for
// E5M2 that is the f16 with the same value.
fn fp8_halves(bits: u32) -> vec2<u32> {
    return vec2<u32>(((bits << 8u) & 0xff00u) | ((bits << 16u) & 0xff000000u), ((bits >> 8u) & 0xff00u) | (bits & 0xff000000u));
}

// Two codes in the top bytes of the halves of `e` as two f16. An E4M3 code's exponent and
// mantissa fit the f16 fields with a bias 8 lower, so a shift right by one gives the f16 of
// the value / 256 (subnormals included: they are f16 subnormals) once the sign, moved to bit
// 14, is added to itself to reach bit 15. The NaN code S.1111.111 (E4M3 has no infinities)
// has magnitude 0x7f: adding 1 carries into the byte's top bit only there, and that bit minus
// itself shifted right by 5 is the f16 exponent field, all ones: NaN.
fn fp8_pair_as_f16(e: u32) -> u32 {
    if (FP8_E4M3) {
        let x = e >> 1u;
        let nan = ((e & 0x7f007f00u) + 0x01000100u) & 0x80008000u;
        return (x + (x & 0x40004000u)) | (nan - (nan >> 5u));
    }
    return e;
}

// Four codes' values divided by CODE_UNIT (256 for E4M3, whose f16 above is the value / 256;
// the scale readers fold it into each group's scale, one multiply per group instead of one
// per value).
fn decode4(bits: u32) -> vec4<f32> {
    if (FP8_INTEGER_DECODE) {
        return fp8_integer4(bits);
    }
    let e = fp8_halves(bits);
    return halves4(vec2<u32>(fp8_pair_as_f16(e.x), fp8_pair_as_f16(e.y)));
}

// decode4 where halves convert in integer code (llvmpipe's GL): each code goes straight to
// the f32 that halves4 would give its f16 above, in about half the operations of widening
// to f16 and converting that. A code's exponent and mantissa, shifted to the f32 fields,
// carry the f16's bias (15 for both formats: E4M3's values are / 256), so the same steps as
// halves_integer.wgsl follow: one add rebiases a normal, and a subnormal or zero becomes the
// exact f32 subtraction 2^-14 * (1 + mantissa) - 2^-14 (no f32 subnormal, which many GPUs
// flush). E4M3's NaN code (magnitude 0x7f) gives a quiet NaN; E5M2's exponent 31 gives an
// infinity or a NaN that keeps the code's mantissa bits (quiet only when its top bit is set:
// making every one quiet cost a select per value, 6% of E5M2 decode on llvmpipe's GL, and a
// NaN in the pool reaches the output as a NaN either way).
fn fp8_integer4(bits: u32) -> vec4<f32> {
    let b = vec4<u32>(bits, bits >> 8u, bits >> 16u, bits >> 24u);
    let sign = (b << vec4<u32>(24u)) & vec4<u32>(0x80000000u);
    let magnitude = b & vec4<u32>(0x7fu);
    let m = magnitude << vec4<u32>(23u - FP8_MANTISSA);
    // (127 - 15) << 23: the exponent bias difference.
    let normal = m + vec4<u32>(0x38000000u);
    let tiny = bitcast<vec4<u32>>(bitcast<vec4<f32>>(m + vec4<u32>(0x38800000u)) - vec4<f32>(0x1p-14f));
    let finite = select(normal, tiny, m < vec4<u32>(0x00800000u));
    if (FP8_E4M3) {
        return bitcast<vec4<f32>>(sign | select(finite, vec4<u32>(0x7fc00000u), magnitude == vec4<u32>(0x7fu)));
    }
    let special = m + vec4<u32>(0x70000000u);
    return bitcast<vec4<f32>>(sign | select(finite, special, m >= vec4<u32>(0x0f800000u)));
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
