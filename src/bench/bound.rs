//! The roofline model of one bench case, as plain arithmetic: a kernel can go no faster than
//! the time its bytes take at the read rate of the path it reads them through, nor than the
//! time its flops take at the same run's best matmul rate. The larger of the two is the
//! case's bound; its speed is stated as bound time over measured time.
//!
//! Kept free of the GPU so the arithmetic is tested on its own; the bench supplies the rates
//! it measured and the bytes and flops it counts (see docs/performance.md for what is
//! counted).

use serde::{Deserialize, Serialize};

use crate::cache::ModelGeometry;

/// Which side of the roofline limits a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    /// Its bytes at the read rate take longer than its flops at the matmul rate.
    Memory,
    /// Its flops at the matmul rate take at least as long as its bytes.
    Compute,
}

impl Binding {
    /// One word for tables.
    pub fn name(self) -> &'static str {
        match self {
            Binding::Memory => "memory",
            Binding::Compute => "compute",
        }
    }
}

/// Bytes that move through one access path, and that path's measured rate (bytes per second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stream {
    /// Bytes moved.
    pub bytes: f64,
    /// The rate this path was measured at in the same run, bytes per second.
    pub rate: f64,
}

/// A case's bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// `max(t_mem, t_flop)`, seconds.
    pub seconds: f64,
    /// Which of the two is larger.
    pub binding: Binding,
    /// Flops per byte moved.
    pub intensity: f64,
    /// Time the bytes take at their paths' rates.
    pub memory_seconds: f64,
    /// Time the flops take at the matmul rate.
    pub compute_seconds: f64,
}

/// The roofline bound of a case that moves `streams` and computes `flops`, with the matmul
/// yardstick at `flop_rate` FLOP/s. A rate that is not positive contributes no time (the
/// side it would bound is unknown, not infinitely fast: callers skip such cases).
pub fn bound(streams: &[Stream], flops: f64, flop_rate: f64) -> Bound {
    let memory_seconds: f64 = streams
        .iter()
        .filter(|s| s.rate > 0.0)
        .map(|s| s.bytes / s.rate)
        .sum();
    let compute_seconds = if flop_rate > 0.0 {
        flops / flop_rate
    } else {
        0.0
    };
    let bytes: f64 = streams.iter().map(|s| s.bytes).sum();
    Bound {
        seconds: memory_seconds.max(compute_seconds),
        binding: if compute_seconds >= memory_seconds && compute_seconds > 0.0 {
            Binding::Compute
        } else {
            Binding::Memory
        },
        intensity: if bytes > 0.0 { flops / bytes } else { 0.0 },
        memory_seconds,
        compute_seconds,
    }
}

/// Speed as a fraction of the bound: bound seconds over measured seconds (1 is at the bound;
/// above 1 means the yardstick under-states the adapter).
pub fn of_bound(bound_seconds: f64, measured_seconds: f64) -> f64 {
    bound_seconds / measured_seconds
}

/// Decode flops per step: for each sequence, query head and context position, a `head_dim`
/// dot product with K and a `head_dim` multiply-add into the output from V, 2 flops per
/// multiply-add: `4 x q_heads x head_dim x context` per query. Softmax (an exp, a max and a
/// sum per position and head) is not counted.
pub fn decode_flops(geometry: &ModelGeometry, batch: u32, context: u32) -> f64 {
    batch as f64 * 4.0 * geometry.q_heads as f64 * geometry.head_dim as f64 * context as f64
}

/// Causal prefill flops of `context` tokens per sequence: QK and PV over the lower triangle,
/// `4 x q_heads x head_dim x n(n+1)/2`; softmax not counted.
pub fn prefill_flops(geometry: &ModelGeometry, batch: u32, context: u32) -> f64 {
    let n = context as f64;
    batch as f64 * 4.0 * geometry.q_heads as f64 * geometry.head_dim as f64 * n * (n + 1.0) / 2.0
}

/// How much the matmul yardstick trails the fastest attention case's flop rate: `None` when
/// it beats (or equals) every case, so the compute side is a bound; otherwise the fastest
/// case's rate over the yardstick's (above 1).
pub fn yardstick_shortfall(matmul_flops: f64, case_flop_rates: &[f64]) -> Option<f64> {
    let best = case_flop_rates.iter().copied().fold(0.0, f64::max);
    (best > matmul_flops).then(|| best / matmul_flops)
}

/// Flatness of a long-context curve: ns per position at the longest context over ns per
/// position at `reference` context (4K). `None` when either point is missing or the curve
/// does not reach past the reference.
pub fn flatness(points: &[(u32, f64)], reference: u32) -> Option<f64> {
    let at_ref = points.iter().find(|p| p.0 == reference)?.1;
    let longest = points.iter().max_by_key(|p| p.0)?;
    (longest.0 > reference && at_ref > 0.0).then(|| longest.1 / at_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: f64 = 1e9;

    #[test]
    fn a_low_intensity_case_is_memory_bound_at_its_paths_rates() {
        // 8 GB through a 16 GB/s texture path plus 1 GB through a 4 GB/s buffer path:
        // 0.5 s + 0.25 s; 1 GFLOP at 100 GFLOP/s is 0.01 s.
        let streams = [
            Stream {
                bytes: 8.0 * GB,
                rate: 16.0 * GB,
            },
            Stream {
                bytes: GB,
                rate: 4.0 * GB,
            },
        ];
        let b = bound(&streams, 1e9, 100e9);
        assert_eq!(b.binding, Binding::Memory);
        assert!((b.seconds - 0.75).abs() < 1e-12);
        assert!((b.memory_seconds - 0.75).abs() < 1e-12);
        assert!((b.compute_seconds - 0.01).abs() < 1e-12);
        assert!((b.intensity - 1.0 / 9.0).abs() < 1e-12);
        // Measured at 1.5 s it ran at half its bound.
        assert!((of_bound(b.seconds, 1.5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_high_intensity_case_is_compute_bound() {
        let streams = [Stream {
            bytes: GB,
            rate: 10.0 * GB,
        }];
        // 0.1 s of bytes, 7 GFLOP at 10 GFLOP/s = 0.7 s.
        let b = bound(&streams, 7e9, 10e9);
        assert_eq!(b.binding, Binding::Compute);
        assert!((b.seconds - 0.7).abs() < 1e-12);
        assert!((b.intensity - 7.0).abs() < 1e-12);
        // A run faster than its bound shows above 100%.
        assert!(of_bound(b.seconds, 0.35) > 1.99);
    }

    #[test]
    fn the_qwen_half_b_decode_has_about_seven_flops_per_f16_byte() {
        // GQA 7 (14 query heads over 2 KV heads), head dim 64: per position and KV head,
        // 7 query heads x 4 x 64 flops over 2 x 64 f16 values (256 bytes) = 7 flop/byte.
        let g = ModelGeometry::qwen2_5_0_5b();
        let (batch, context) = (8, 4096);
        let flops = decode_flops(&g, batch, context);
        assert_eq!(flops, 8.0 * 4.0 * 14.0 * 64.0 * 4096.0);
        let kv_bytes = batch as f64 * context as f64 * g.kv_heads as f64 * 64.0 * 2.0 * 2.0;
        assert!((flops / kv_bytes - 7.0).abs() < 1e-12);
    }

    #[test]
    fn prefill_counts_the_causal_triangle() {
        let g = ModelGeometry::new("t", 1, 2, 1, 8);
        // n = 3: positions 1 + 2 + 3 = 6 pairs, 4 x 2 heads x 8 dims each.
        assert_eq!(prefill_flops(&g, 1, 3), 6.0 * 4.0 * 2.0 * 8.0);
        assert_eq!(prefill_flops(&g, 2, 3), 2.0 * prefill_flops(&g, 1, 3));
    }

    #[test]
    fn unknown_rates_add_no_time_and_zero_flops_bind_memory() {
        let b = bound(
            &[Stream {
                bytes: GB,
                rate: 0.0,
            }],
            0.0,
            0.0,
        );
        assert_eq!((b.seconds, b.binding), (0.0, Binding::Memory));
        let append = bound(
            &[Stream {
                bytes: GB,
                rate: 2.0 * GB,
            }],
            0.0,
            10e9,
        );
        assert_eq!(append.binding, Binding::Memory);
        assert_eq!(append.intensity, 0.0);
        assert!((append.seconds - 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_yardstick_is_weaker_only_when_a_case_outruns_it() {
        assert_eq!(yardstick_shortfall(10e9, &[3e9, 9.9e9]), None);
        assert_eq!(yardstick_shortfall(10e9, &[]), None);
        let short = yardstick_shortfall(10e9, &[3e9, 12e9]).unwrap();
        assert!((short - 1.2).abs() < 1e-12);
    }

    #[test]
    fn flatness_divides_the_longest_context_by_4k() {
        let curve = [(1024, 2.0), (4096, 1.0), (8192, 1.1), (32768, 1.25)];
        assert!((flatness(&curve, 4096).unwrap() - 1.25).abs() < 1e-12);
        // The order of points does not matter.
        let shuffled = [(32768, 1.25), (1024, 2.0), (4096, 1.0)];
        assert!((flatness(&shuffled, 4096).unwrap() - 1.25).abs() < 1e-12);
        // No 4K point, or nothing past it: no flatness.
        assert_eq!(flatness(&[(1024, 2.0), (8192, 1.0)], 4096), None);
        assert_eq!(flatness(&[(1024, 2.0), (4096, 1.0)], 4096), None);
    }
}
