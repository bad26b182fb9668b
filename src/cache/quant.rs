//! Bit-exact CPU codecs for 8- and 4-bit KV values: the reference the quantized formats'
//! shaders are checked against.
//!
//! - [`Fp8`] encodes f32 to OCP FP8 E4M3 (the "FN" variant: no infinities, one NaN pattern per
//!   sign, max 448) or E5M2 (IEEE-like, max 57344) with round to nearest even, saturation to
//!   the largest finite value, NaN kept as NaN and subnormals represented. WGSL has no 8-bit
//!   float type, so the shaders do the same with integer bit operations; these functions are
//!   what their outputs must equal, and the tests check every one of the 256 codes.
//! - [`quantize_groups`] is the scheme every scaled format shares: per group of values one f32
//!   scale `max |x| * (1 / max_code)` and per value `encode(x * (1 / scale))`, where
//!   [`Codec`] is a symmetric integer (int8: max 127, int4: max 7, rounded to nearest even) or
//!   an FP8 layout. Both products are single correctly rounded f32 operations, and
//!   `1 / scale` is one division, so the append kernel computes the same codes; the kernel
//!   tests compare them bit for bit.

/// An 8-bit float layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fp8 {
    /// 4 exponent bits (bias 7), 3 mantissa bits, no infinities, NaN = `S.1111.111`, max 448.
    E4M3,
    /// 5 exponent bits (bias 15), 2 mantissa bits, IEEE infinities and NaNs, max 57344.
    E5M2,
}

impl Fp8 {
    /// Mantissa bits.
    pub fn mantissa_bits(self) -> u32 {
        match self {
            Fp8::E4M3 => 3,
            Fp8::E5M2 => 2,
        }
    }

    /// Exponent bias.
    pub fn bias(self) -> i32 {
        match self {
            Fp8::E4M3 => 7,
            Fp8::E5M2 => 15,
        }
    }

    /// The largest finite magnitude's code (sign bit clear).
    pub fn max_code(self) -> u8 {
        match self {
            Fp8::E4M3 => 0x7E,
            Fp8::E5M2 => 0x7B,
        }
    }

    /// The canonical NaN code (sign bit clear).
    pub fn nan_code(self) -> u8 {
        0x7F
    }

    /// The largest finite value: 448 (E4M3) or 57344 (E5M2).
    pub fn max_value(self) -> f32 {
        self.decode(self.max_code())
    }

    /// The value of `code`.
    pub fn decode(self, code: u8) -> f32 {
        let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
        let m = self.mantissa_bits();
        let exponent_field = ((code & 0x7F) >> m) as i32;
        let mantissa = (code & ((1 << m) - 1)) as f32;
        let scale = (1u32 << m) as f32;
        let all_ones: i32 = 0x7F >> m;
        match self {
            Fp8::E4M3 if exponent_field == all_ones && mantissa == scale - 1.0 => f32::NAN,
            Fp8::E5M2 if exponent_field == all_ones => {
                if mantissa == 0.0 {
                    sign * f32::INFINITY
                } else {
                    f32::NAN
                }
            }
            _ if exponent_field == 0 => sign * mantissa / scale * 2f32.powi(1 - self.bias()),
            _ => sign * (1.0 + mantissa / scale) * 2f32.powi(exponent_field - self.bias()),
        }
    }

    /// The code nearest `x` (ties to the even code), saturated to the largest finite value;
    /// NaN stays NaN and infinities saturate too.
    pub fn encode(self, x: f32) -> u8 {
        if x.is_nan() {
            return self.nan_code();
        }
        let sign = if x.is_sign_negative() { 0x80 } else { 0 };
        let a = x.abs();
        let m = self.mantissa_bits() as i32;
        let min_normal_exponent = 1 - self.bias();
        // Exact powers of two keep every scaling below exact in f32.
        let magnitude = if a < 2f32.powi(min_normal_exponent) {
            // Subnormal: a multiple of 2^(min_normal_exponent - m); a quotient of 2^m rounds
            // up into the smallest normal, which the code arithmetic carries for free.
            (a * 2f32.powi(m - min_normal_exponent)).round_ties_even() as u32
        } else {
            let exponent = a.log2().floor() as i32;
            // log2 may misjudge by one next to a power of two; correct it exactly.
            let exponent = if 2f32.powi(exponent) > a {
                exponent - 1
            } else if 2f32.powi(exponent + 1) <= a {
                exponent + 1
            } else {
                exponent
            };
            let significand = (a * 2f32.powi(m - exponent)).round_ties_even() as u32;
            // significand is in [2^m, 2^(m+1)]; the top value carries into the exponent.
            let field = (exponent + self.bias()).clamp(0, 0x7F) as u32;
            (field << m) + significand - (1 << m)
        };
        sign | magnitude.min(self.max_code() as u32) as u8
    }

    /// `x` after storing it in this format.
    pub fn round_trip(self, x: f32) -> f32 {
        self.decode(self.encode(x))
    }
}

/// How a scaled format turns a value, already divided by its group's scale, into a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Symmetric two's-complement integers of `bits` bits in `[-max, max]`, `max = 2^(bits-1) - 1`
    /// (127 for int8, 7 for int4), rounded to nearest even.
    Int {
        /// Bits per code (8 or 4).
        bits: u32,
    },
    /// An 8-bit float.
    Fp8(Fp8),
}

impl Codec {
    /// Bits per code.
    pub fn bits(self) -> u32 {
        match self {
            Codec::Int { bits } => bits,
            Codec::Fp8(_) => 8,
        }
    }

    /// The largest magnitude a code holds: a group's largest value is scaled onto it.
    pub fn max_value(self) -> f32 {
        match self {
            Codec::Int { bits } => ((1i32 << (bits - 1)) - 1) as f32,
            Codec::Fp8(f) => f.max_value(),
        }
    }

    /// `1 / max_value` rounded to f32 once: scales are `max |x| * inv_max` (one correctly
    /// rounded multiply, the same on every device) rather than a division.
    pub fn inv_max(self) -> f32 {
        1.0 / self.max_value()
    }

    /// The code of `y` (a value divided by its scale), in the low [`Codec::bits`] bits.
    pub fn encode(self, y: f32) -> u32 {
        match self {
            Codec::Int { bits } => {
                let max = self.max_value();
                let code = y.round_ties_even().clamp(-max, max) as i32;
                code as u32 & ((1u32 << bits) - 1)
            }
            Codec::Fp8(f) => f.encode(y) as u32,
        }
    }

    /// The value `code` stands for, before its scale.
    pub fn decode(self, code: u32) -> f32 {
        match self {
            Codec::Int { bits } => (((code << (32 - bits)) as i32) >> (32 - bits)) as f32,
            Codec::Fp8(f) => f.decode(code as u8),
        }
    }
}

/// The scale of a group whose largest magnitude is `max_abs`, and the factor values are
/// multiplied by before encoding (0 for an all-zero group, whose scale is 0).
pub fn group_scale(max_abs: f32, codec: Codec) -> (f32, f32) {
    let scale = max_abs * codec.inv_max();
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    (scale, inv)
}

/// Quantizes `values` in groups of `group` (the last may be shorter): per group one scale
/// ([`group_scale`]) and per value `codec.encode(x * inv)`. Returns the codes and the scales.
/// This is exactly what the append kernel computes, step for step.
pub fn quantize_groups(values: &[f32], group: usize, codec: Codec) -> (Vec<u32>, Vec<f32>) {
    let group = group.max(1);
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len().div_ceil(group));
    for chunk in values.chunks(group) {
        let max_abs = chunk.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let (scale, inv) = group_scale(max_abs, codec);
        codes.extend(chunk.iter().map(|&x| codec.encode(x * inv)));
        scales.push(scale);
    }
    (codes, scales)
}

/// The values [`quantize_groups`]' codes and scales stand for: `decode(code) * scale`.
pub fn dequantize_groups(codes: &[u32], scales: &[f32], group: usize, codec: Codec) -> Vec<f32> {
    let group = group.max(1);
    codes
        .iter()
        .enumerate()
        .map(|(i, &c)| codec.decode(c) * scales[i / group])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: [Fp8; 2] = [Fp8::E4M3, Fp8::E5M2];

    fn is_finite_code(f: Fp8, code: u8) -> bool {
        f.decode(code).is_finite()
    }

    #[test]
    fn published_constants() {
        assert_eq!(Fp8::E4M3.max_value(), 448.0);
        assert_eq!(Fp8::E5M2.max_value(), 57344.0);
        assert_eq!(
            Fp8::E4M3.decode(0x01),
            2f32.powi(-9),
            "smallest e4m3 subnormal"
        );
        assert_eq!(
            Fp8::E5M2.decode(0x01),
            2f32.powi(-16),
            "smallest e5m2 subnormal"
        );
        assert_eq!(
            Fp8::E4M3.decode(0x08),
            2f32.powi(-6),
            "smallest e4m3 normal"
        );
        assert_eq!(
            Fp8::E5M2.decode(0x04),
            2f32.powi(-14),
            "smallest e5m2 normal"
        );
        assert_eq!(Fp8::E4M3.decode(0x38), 1.0);
        assert_eq!(Fp8::E5M2.decode(0x3C), 1.0);
        assert!(Fp8::E4M3.decode(0x7F).is_nan() && Fp8::E4M3.decode(0xFF).is_nan());
        assert_eq!(Fp8::E5M2.decode(0x7C), f32::INFINITY);
        assert_eq!(Fp8::E5M2.decode(0xFC), f32::NEG_INFINITY);
        assert!(Fp8::E5M2.decode(0x7D).is_nan());
    }

    /// Every finite code encodes back to itself, every NaN code decodes to NaN, and the
    /// finite codes are strictly ordered by value (so nearest-code search is well defined).
    #[test]
    fn all_256_codes_round_trip() {
        for f in FORMATS {
            for code in 0..=255u8 {
                let v = f.decode(code);
                if v.is_nan() {
                    assert!(f.decode(f.encode(v)).is_nan(), "{f:?} NaN stays NaN");
                    continue;
                }
                if v.is_infinite() {
                    let max = f.max_code() | (code & 0x80);
                    assert_eq!(f.encode(v), max, "{f:?} infinity saturates");
                    continue;
                }
                assert_eq!(f.encode(v), code, "{f:?} code {code:#04x} = {v}");
            }
            let finite: Vec<f32> = (0..0x80u8)
                .filter(|&c| is_finite_code(f, c))
                .map(|c| f.decode(c))
                .collect();
            assert!(
                finite.windows(2).all(|w| w[0] < w[1]),
                "{f:?} codes ordered"
            );
        }
    }

    /// Against an exhaustive oracle: the nearest finite code, ties to the even code,
    /// saturating beyond the largest, for values around every code, every midpoint and
    /// beyond both ends.
    #[test]
    fn encode_is_nearest_even_against_exhaustive_search() {
        for f in FORMATS {
            let codes: Vec<u8> = (0..0x80u8).filter(|&c| is_finite_code(f, c)).collect();
            let oracle = |x: f32| -> u8 {
                let sign = if x.is_sign_negative() { 0x80 } else { 0 };
                let a = x.abs().min(f.max_value());
                let mut best = codes[0];
                for &c in &codes {
                    let (d, db) = ((f.decode(c) - a).abs(), (f.decode(best) - a).abs());
                    if d < db || (d == db && c % 2 == 0 && best % 2 == 1) {
                        best = c;
                    }
                }
                sign | best
            };
            let mut probes = Vec::new();
            for w in codes.windows(2) {
                let (lo, hi) = (f.decode(w[0]), f.decode(w[1]));
                let mid = (lo + hi) / 2.0;
                probes.extend([lo, hi, mid, mid.next_up(), mid.next_down()]);
            }
            probes.extend([0.0, 1e-12, f.max_value() * 1.01, 1e9, f32::MAX]);
            for x in probes {
                for x in [x, -x] {
                    assert_eq!(f.encode(x), oracle(x), "{f:?} encode({x:e})");
                }
            }
        }
    }

    #[test]
    fn nan_and_infinity_inputs() {
        for f in FORMATS {
            assert!(f.round_trip(f32::NAN).is_nan());
            assert_eq!(f.round_trip(f32::INFINITY), f.max_value());
            assert_eq!(f.round_trip(f32::NEG_INFINITY), -f.max_value());
            assert_eq!(f.encode(-0.0), 0x80, "{f:?} keeps the sign of zero");
        }
    }

    #[test]
    fn group_quantization_bounds_the_error_by_half_a_step() {
        let values: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
            .collect();
        for (bits, group) in [(8, 32), (8, 64), (4, 32), (4, 96)] {
            let codec = Codec::Int { bits };
            let max = codec.max_value();
            let (codes, scales) = quantize_groups(&values, group, codec);
            assert!(codes.iter().all(|&c| codec.decode(c).abs() <= max));
            assert_eq!(scales.len(), values.len().div_ceil(group));
            let back = dequantize_groups(&codes, &scales, group, codec);
            for (i, (x, y)) in values.iter().zip(&back).enumerate() {
                let step = scales[i / group];
                assert!(
                    (x - y).abs() <= step / 2.0 * 1.0001,
                    "{x} -> {y} (step {step})"
                );
            }
            // The group's largest magnitude is represented to within rounding of the scale.
            let (i, _) = values[..group]
                .iter()
                .enumerate()
                .fold(
                    (0, 0.0f32),
                    |b, (i, x)| if x.abs() > b.1 { (i, x.abs()) } else { b },
                );
            assert!((back[i] - values[i]).abs() <= values[i].abs() * 1e-6);
        }
        let codec = Codec::Int { bits: 8 };
        let (codes, scales) = quantize_groups(&[0.0; 8], 4, codec);
        assert_eq!((codes, scales), (vec![0; 8], vec![0.0, 0.0]));
    }

    #[test]
    fn integer_codes_are_twos_complement_in_their_bits() {
        let int4 = Codec::Int { bits: 4 };
        assert_eq!(int4.encode(-7.4), 0b1001);
        assert_eq!(int4.encode(99.0), 7);
        assert_eq!(int4.decode(0b1001), -7.0);
        assert_eq!(int4.encode(2.5), 2, "ties to even");
        let int8 = Codec::Int { bits: 8 };
        assert_eq!(int8.encode(-127.6), 0x81);
        assert_eq!(int8.decode(0x81), -127.0);
        assert_eq!(int8.decode(int8.encode(-3.5)), -4.0);
    }
}
