//! What each KV format costs and buys, from the real model geometry: bytes per token (scales
//! included), the capacity of a budget, the reference report's quantization claims checked
//! against that arithmetic, and a CPU study of the scale layouts pagekv could have chosen.
//!
//! The study runs on the CPU because the CPU quantizer ([`crate::cache::quant`]) computes
//! exactly the codes the append kernel stores (the kernel tests compare them bit for bit):
//! the f64 reference fed those values measures each layout's loss without a GPU, and for
//! layouts pagekv does not ship.

use crate::accuracy::Divergence;
use crate::cache::quant::{Codec, Fp8, dequantize_groups, quantize_groups};
use crate::cache::{CacheLayout, KvFormat, ModelGeometry};
use crate::reference::{self, AttentionShape};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// One format's memory arithmetic for the two preset models.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatRow {
    /// The format.
    pub format: KvFormat,
    /// Bytes per token, all layers, K and V, scales included: Qwen2.5-0.5B, Qwen2.5-7B.
    pub bytes_per_token: [u64; 2],
    /// The share of those bytes that are scales.
    pub scale_share: [f64; 2],
    /// Qwen2.5-7B tokens the budget holds (whole blocks of 16).
    pub tokens_7b: u64,
    /// Requests of the reference's scenario 3 shape (Qwen2.5-0.5B, 8192 prompt + 512
    /// generated tokens) the budget holds at once.
    pub scenario3_requests: u64,
}

/// Tokens of one scenario-3 request: 8192 prompt tokens and 512 generated.
pub const SCENARIO3_TOKENS: u64 = 8192 + 512;

fn layout(geometry: ModelGeometry, format: KvFormat) -> CacheLayout {
    CacheLayout {
        geometry,
        block_size: 16,
        dtype: format,
    }
}

/// Every format's row for a budget of `budget_bytes`.
pub fn format_rows(budget_bytes: u64) -> Vec<FormatRow> {
    KvFormat::ALL
        .into_iter()
        .map(|format| {
            let small = layout(ModelGeometry::qwen2_5_0_5b(), format);
            let big = layout(ModelGeometry::qwen2_5_7b(), format);
            let share = |l: &CacheLayout| {
                let hd = l.geometry.head_dim;
                format.row_scale_bytes(hd) as f64 / format.row_bytes(hd) as f64
            };
            let per_request = small.blocks_for_tokens(SCENARIO3_TOKENS);
            FormatRow {
                format,
                bytes_per_token: [small.bytes_per_token(), big.bytes_per_token()],
                scale_share: [share(&small), share(&big)],
                tokens_7b: big.blocks_for_budget(budget_bytes) as u64 * big.block_size as u64,
                scenario3_requests: small.blocks_for_budget(budget_bytes) as u64 / per_request,
            }
        })
        .collect()
}

/// Whether a claim survived the arithmetic or the measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holds {
    /// As stated.
    Yes,
    /// Not as stated.
    No,
    /// Only under the stated reading.
    OnlyIf(String),
}

impl std::fmt::Display for Holds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holds::Yes => write!(f, "holds"),
            Holds::No => write!(f, "does not hold"),
            Holds::OnlyIf(reading) => write!(f, "holds only if {reading}"),
        }
    }
}

/// One of the reference's quantization claims, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The claim as the report words it.
    pub claim: &'static str,
    /// What pagekv finds.
    pub measured: String,
    /// The verdict.
    pub holds: Holds,
}

/// The report's memory claims against the real bytes per token (7B; the 0.5B ratios are the
/// same, since both keep one scale per 32 values or per row): INT8 -50%, INT4 -75%, and the
/// "2x safe range" read as twice the requests under any utilization threshold.
pub fn memory_claims(rows: &[FormatRow]) -> Vec<Claim> {
    let row = |f: KvFormat| rows.iter().find(|r| r.format == f).expect("every format");
    let f16 = row(KvFormat::F16);
    let cut = |f: KvFormat| 1.0 - row(f).bytes_per_token[1] as f64 / f16.bytes_per_token[1] as f64;
    let range = |f: KvFormat| row(f).scenario3_requests as f64 / f16.scenario3_requests as f64;
    let (int8, int4) = (cut(KvFormat::Int8), cut(KvFormat::Int4));
    vec![
        Claim {
            claim: "INT8 quantization: 50% memory reduction",
            measured: format!(
                "{:.1}% less than f16: an f32 scale per 32 values costs {:.1}% of int8's bytes",
                100.0 * int8,
                100.0 * row(KvFormat::Int8).scale_share[1]
            ),
            holds: if int8 >= 0.495 { Holds::Yes } else { Holds::No },
        },
        Claim {
            claim: "INT4 quantization: 75% memory reduction",
            measured: format!(
                "{:.1}% less than f16: the scales are {:.1}% of int4's bytes",
                100.0 * int4,
                100.0 * row(KvFormat::Int4).scale_share[1]
            ),
            holds: if int4 >= 0.745 { Holds::Yes } else { Holds::No },
        },
        Claim {
            claim: "Extend safe operating range by 2x",
            measured: format!(
                "scenario-3 requests under any threshold vs f16: int8 x{:.2}, fp8 x{:.2}, int4 x{:.2}",
                range(KvFormat::Int8),
                range(KvFormat::Fp8E4M3),
                range(KvFormat::Int4)
            ),
            holds: if range(KvFormat::Int8) >= 2.0 {
                Holds::Yes
            } else {
                Holds::No
            },
        },
    ]
}

/// The report's accuracy claim for FP8 against the study's E4M3 and E5M2 rows.
pub fn accuracy_claim(study: &[StudyRow]) -> Claim {
    let loss = |name: &str| {
        study
            .iter()
            .find(|r| r.candidate.name == name)
            .map_or(f64::NAN, |r| r.uniform.mean_rel)
    };
    let cosine = |name: &str| {
        study
            .iter()
            .find(|r| r.candidate.name == name)
            .map_or(f64::NAN, |r| r.uniform.min_cosine)
    };
    Claim {
        claim: "Mixed precision (FP8): minimal accuracy loss",
        measured: format!(
            "attention outputs off by {:.1}% (e4m3) and {:.1}% (e5m2) mean relative, min cosine {:.4} and {:.4}; f16 is off by about 0.02%",
            100.0 * loss("fp8-e4m3, scale per row"),
            100.0 * loss("fp8-e5m2, scale per row"),
            cosine("fp8-e4m3, scale per row"),
            cosine("fp8-e5m2, scale per row"),
        ),
        holds: Holds::OnlyIf(
            "\"minimal\" means cosine >= 0.998 with a data-derived scale (a fixed scale of 1 loses far more)".into(),
        ),
    }
}

/// A way of storing K and V the study compares: a codec, values per scale (`None` = one
/// scale per row), and whether K (and Q) are rotated by a fixed Hadamard transform first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Display name.
    pub name: &'static str,
    /// The code.
    pub codec: Codec,
    /// Values per scale; `None` for one per row.
    pub group: Option<usize>,
    /// Rotate K and Q per head before quantizing K.
    pub rotate: bool,
    /// Whether pagekv ships this layout.
    pub shipped: bool,
}

/// The layouts the study compares: each shipped one and the alternatives it was chosen over.
pub const CANDIDATES: [Candidate; 9] = [
    Candidate {
        name: "int8, scale per 32",
        codec: Codec::Int { bits: 8 },
        group: Some(32),
        rotate: false,
        shipped: true,
    },
    Candidate {
        name: "int8, scale per row",
        codec: Codec::Int { bits: 8 },
        group: None,
        rotate: false,
        shipped: false,
    },
    Candidate {
        name: "int8, per 32, Hadamard K",
        codec: Codec::Int { bits: 8 },
        group: Some(32),
        rotate: true,
        shipped: false,
    },
    Candidate {
        name: "int4, scale per 32",
        codec: Codec::Int { bits: 4 },
        group: Some(32),
        rotate: false,
        shipped: true,
    },
    Candidate {
        name: "int4, per 32, Hadamard K",
        codec: Codec::Int { bits: 4 },
        group: Some(32),
        rotate: true,
        shipped: false,
    },
    Candidate {
        name: "fp8-e4m3, scale per row",
        codec: Codec::Fp8(Fp8::E4M3),
        group: None,
        rotate: false,
        shipped: true,
    },
    Candidate {
        name: "fp8-e4m3, scale per 32",
        codec: Codec::Fp8(Fp8::E4M3),
        group: Some(32),
        rotate: false,
        shipped: false,
    },
    Candidate {
        name: "fp8-e4m3, per row, Hadamard K",
        codec: Codec::Fp8(Fp8::E4M3),
        group: None,
        rotate: true,
        shipped: false,
    },
    Candidate {
        name: "fp8-e5m2, scale per row",
        codec: Codec::Fp8(Fp8::E5M2),
        group: None,
        rotate: false,
        shipped: true,
    },
];

/// One candidate's loss on one kind of data.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyRow {
    /// The layout.
    pub candidate: Candidate,
    /// Bytes per (token, KV head) row at the study's head dim, scales included.
    pub row_bytes: u64,
    /// Attention outputs against the unquantized inputs, uniform K/V.
    pub uniform: Divergence,
    /// The same with one K channel 50x the others (the outlier channels real K has).
    pub outlier_k: Divergence,
}

/// Head dim, query heads, KV heads and keys of the study: Qwen2.5-7B's head shape.
pub const STUDY_SHAPE: (usize, usize, usize, usize) = (128, 7, 1, 300);

/// Runs the study: every candidate on uniform data and with an outlier K channel, five seeds
/// each, Qwen2.5-7B's head shape, 300 keys.
pub fn study() -> Vec<StudyRow> {
    let (hd, qh, kvh, keys) = STUDY_SHAPE;
    let shape = AttentionShape {
        q_heads: qh,
        kv_heads: kvh,
        head_dim: hd,
        num_queries: 1,
        num_keys: keys,
    };
    CANDIDATES
        .iter()
        .map(|&candidate| {
            let group = candidate.group.unwrap_or(hd);
            let bits = candidate.codec.bits() as u64;
            let row_bytes = hd as u64 * bits / 8 + hd.div_ceil(group) as u64 * 4;
            let mut loss = [Divergence::default(); 2];
            for (outlier, slot) in [false, true].into_iter().zip(&mut loss) {
                for seed in 0..5 {
                    let mut rng = StdRng::seed_from_u64(seed);
                    let mut draw = |n: usize| -> Vec<f32> {
                        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
                    };
                    let (q, mut k, v) = (draw(qh * hd), draw(keys * hd), draw(keys * hd));
                    if outlier {
                        k.chunks_mut(hd).for_each(|row| row[hd / 3] *= 50.0);
                    }
                    let exact = reference::attention(&q, &k, &v, shape).expect("valid shape");
                    let store = |x: &[f32]| -> Vec<f32> {
                        x.chunks(hd)
                            .flat_map(|row| {
                                let (codes, scales) = quantize_groups(row, group, candidate.codec);
                                dequantize_groups(&codes, &scales, group, candidate.codec)
                            })
                            .collect()
                    };
                    let (q, k) = if candidate.rotate {
                        (rotate(&q, hd), rotate(&k, hd))
                    } else {
                        (q, k)
                    };
                    let got = reference::attention(&q, &store(&k), &store(&v), shape)
                        .expect("valid shape");
                    *slot = slot.merge(Divergence::of(&got, &exact, hd));
                }
            }
            StudyRow {
                candidate,
                row_bytes,
                uniform: loss[0],
                outlier_k: loss[1],
            }
        })
        .collect()
}

/// Rows of `hd` values multiplied by the orthonormal Walsh-Hadamard matrix of size `hd` (a
/// power of two): `(Hq) . (Hk) = q . k`, so attention scores are unchanged in exact
/// arithmetic while an outlier channel is spread over the whole row.
pub fn rotate(values: &[f32], hd: usize) -> Vec<f32> {
    debug_assert!(hd.is_power_of_two());
    let norm = 1.0 / (hd as f64).sqrt();
    values
        .chunks(hd)
        .flat_map(|row| {
            let mut x: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            let mut h = 1;
            while h < hd {
                for i in (0..hd).step_by(2 * h) {
                    for j in i..i + h {
                        let (a, b) = (x[j], x[j + h]);
                        x[j] = a + b;
                        x[j + h] = a - b;
                    }
                }
                h *= 2;
            }
            x.into_iter().map(move |v| (v * norm) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_orthonormal() {
        let q: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let k: Vec<f32> = (0..64).map(|i| (i as f32 * 0.91).cos()).collect();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let (rq, rk) = (rotate(&q, 64), rotate(&k, 64));
        assert!((dot(&rq, &rk) - dot(&q, &k)).abs() < 1e-4);
        assert!((dot(&rq, &rq) - dot(&q, &q)).abs() < 1e-4);
    }

    #[test]
    fn memory_arithmetic_counts_scales() {
        let rows = format_rows(24 << 30);
        let get = |f| rows.iter().find(|r| r.format == f).unwrap();
        // Qwen2.5-7B: 28 layers x 4 KV heads x 2 (K, V) x row bytes.
        assert_eq!(get(KvFormat::F16).bytes_per_token[1], 57_344);
        assert_eq!(get(KvFormat::Int8).bytes_per_token[1], 28 * 4 * 2 * 144);
        assert_eq!(get(KvFormat::Int4).bytes_per_token[1], 28 * 4 * 2 * 80);
        assert_eq!(get(KvFormat::Fp8E4M3).bytes_per_token[1], 28 * 4 * 2 * 132);
        let claims = memory_claims(&rows);
        assert_eq!(claims[0].holds, Holds::No, "{:?}", claims[0]);
        assert!(claims[0].measured.starts_with("43.8%"), "{:?}", claims[0]);
    }

    #[test]
    fn the_study_separates_the_layouts() {
        let rows = study();
        let get = |name: &str| rows.iter().find(|r| r.candidate.name == name).unwrap();
        // A per-row int8 scale lets the outlier channel coarsen the whole row.
        assert!(
            get("int8, scale per row").outlier_k.mean_rel
                > get("int8, scale per 32").outlier_k.mean_rel
        );
        // Every shipped layout loses less than 10% on uniform data.
        for r in rows.iter().filter(|r| r.candidate.shipped) {
            assert!(r.uniform.mean_rel < 0.1, "{:?}", r);
        }
    }
}
