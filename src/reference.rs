//! CPU reference attention: the ground truth every GPU kernel is checked against.
//!
//! Everything here is deliberately simple and slow: a direct, per-query, per-head loop with
//! f64 accumulation and a max-subtracted softmax. It shares no code and no blocking strategy
//! with the kernels, so agreement between the two is evidence rather than tautology.
//!
//! The comparison helpers ([`compare`], [`check`], [`Tolerance`]) live here too so that unit
//! tests, integration tests and `pagekv verify` all judge "correct" by one rule.

use crate::cache::KvFormat;

/// Sizes of one attention call, enough to interpret the flat q / k / v slices.
///
/// Layouts are row-major (C order):
/// - q and the output: `[num_queries][q_heads][head_dim]`;
/// - k and v: `[num_keys][kv_heads][head_dim]`, in logical token order (already gathered out of
///   the paged pool).
///
/// The queries are the *last* `num_queries` tokens of the sequence: query `i` sits at position
/// `num_keys - num_queries + i` and attends keys `0..=` that position. Decode is
/// `num_queries == 1`; prefill with no cached prefix is `num_queries == num_keys`; chunked
/// prefill on top of a cached prefix is anything in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query heads.
    pub q_heads: usize,
    /// KV heads; must divide `q_heads` (GQA group size = `q_heads / kv_heads`).
    pub kv_heads: usize,
    /// Elements per head vector for q, k and v.
    pub head_dim: usize,
    /// New tokens whose attention output is computed.
    pub num_queries: usize,
    /// Tokens in the cache including the new ones; at least `num_queries`.
    pub num_keys: usize,
}

impl AttentionShape {
    /// Elements the q slice (and the output) must hold.
    pub fn q_len(&self) -> usize {
        self.num_queries * self.q_heads * self.head_dim
    }

    /// Elements each of the k and v slices must hold.
    pub fn kv_len(&self) -> usize {
        self.num_keys * self.kv_heads * self.head_dim
    }

    /// Checks the shape itself (not the slices): heads divide, queries fit in the keys.
    pub fn validate(&self) -> Result<(), ReferenceError> {
        if self.q_heads == 0 || self.kv_heads == 0 || self.head_dim == 0 {
            return Err(ReferenceError::ZeroDimension(*self));
        }
        if !self.q_heads.is_multiple_of(self.kv_heads) {
            return Err(ReferenceError::HeadsNotDivisible {
                q_heads: self.q_heads,
                kv_heads: self.kv_heads,
            });
        }
        if self.num_queries > self.num_keys {
            return Err(ReferenceError::MoreQueriesThanKeys {
                num_queries: self.num_queries,
                num_keys: self.num_keys,
            });
        }
        Ok(())
    }
}

/// Why [`attention`] refused its inputs. The reference never panics on bad input, because
/// `pagekv verify` feeds it shapes that come from user configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// `q_heads`, `kv_heads` or `head_dim` is zero.
    #[error("attention shape has a zero head count or head_dim: {0:?}")]
    ZeroDimension(AttentionShape),
    /// GQA needs every KV head to serve the same number of query heads.
    #[error("q_heads {q_heads} is not a multiple of kv_heads {kv_heads}")]
    HeadsNotDivisible {
        /// Query heads requested.
        q_heads: usize,
        /// KV heads requested.
        kv_heads: usize,
    },
    /// Queries are the newest tokens, so there cannot be more of them than keys.
    #[error("num_queries {num_queries} exceeds num_keys {num_keys}")]
    MoreQueriesThanKeys {
        /// Queries requested.
        num_queries: usize,
        /// Keys available.
        num_keys: usize,
    },
    /// A slice length does not match the shape.
    #[error("{name} has {got} elements but the shape needs {want}")]
    Length {
        /// Which input: `"q"`, `"k"` or `"v"`.
        name: &'static str,
        /// Elements supplied.
        got: usize,
        /// Elements the shape implies.
        want: usize,
    },
}

/// Causal (GQA) attention with a cached prefix, computed in f64 and returned as f32.
///
/// See [`AttentionShape`] for layouts and the causal convention. Query head `h` reads KV head
/// `h / (q_heads / kv_heads)`; scores are scaled by `1 / sqrt(head_dim)`; the softmax subtracts
/// the row maximum before exponentiating, so large scores cannot overflow. Every query attends
/// at least key 0, so no softmax row is empty.
///
/// # Errors
/// [`ReferenceError`] when the shape is inconsistent or a slice length does not match it.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
) -> Result<Vec<f32>, ReferenceError> {
    shape.validate()?;
    for (name, got, want) in [
        ("q", q.len(), shape.q_len()),
        ("k", k.len(), shape.kv_len()),
        ("v", v.len(), shape.kv_len()),
    ] {
        if got != want {
            return Err(ReferenceError::Length { name, got, want });
        }
    }

    let AttentionShape {
        q_heads,
        kv_heads,
        head_dim: d,
        num_queries,
        num_keys,
    } = shape;
    let group = q_heads / kv_heads;
    let scale = 1.0 / (d as f64).sqrt();
    let prefix = num_keys - num_queries;

    let mut out = vec![0.0f32; shape.q_len()];
    let mut scores = vec![0.0f64; num_keys];
    let mut acc = vec![0.0f64; d];

    for i in 0..num_queries {
        let visible = prefix + i + 1;
        for h in 0..q_heads {
            let kvh = h / group;
            let q_off = (i * q_heads + h) * d;
            let q_row = &q[q_off..q_off + d];

            let mut max = f64::NEG_INFINITY;
            for (j, score) in scores[..visible].iter_mut().enumerate() {
                let k_off = (j * kv_heads + kvh) * d;
                let k_row = &k[k_off..k_off + d];
                let dot: f64 = q_row
                    .iter()
                    .zip(k_row)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                *score = dot * scale;
                max = max.max(*score);
            }

            let mut denom = 0.0f64;
            acc.fill(0.0);
            for (j, &score) in scores[..visible].iter().enumerate() {
                let w = (score - max).exp();
                denom += w;
                let v_off = (j * kv_heads + kvh) * d;
                for (a, &x) in acc.iter_mut().zip(&v[v_off..v_off + d]) {
                    *a += w * f64::from(x);
                }
            }

            for (o, &a) in out[q_off..q_off + d].iter_mut().zip(&acc) {
                *o = (a / denom) as f32;
            }
        }
    }
    Ok(out)
}

/// Rounds every element to IEEE binary16 and back, exactly as the f16 KV cache stores it.
///
/// Feeding the reference the rounded K/V removes the storage rounding from a comparison, so
/// an f16-cache kernel can be held to a tolerance that only covers arithmetic order.
pub fn round_through_f16(x: &[f32]) -> Vec<f32> {
    KvFormat::F16.quantize_row(x)
}

/// Denominator floor for the relative error in [`compare`].
///
/// Attention outputs are convex combinations of V rows, so with zero-mean V many output
/// elements sit near zero; dividing by `|want|` there would report huge, meaningless relative
/// errors. Below this magnitude the relative error is measured against the floor instead,
/// which for the O(1) synthetic data used by tests and `verify` means "relative to 1e-3 of the
/// data's scale".
pub const REL_FLOOR: f64 = 1e-3;

/// Summary of how far a kernel output is from the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ErrorStats {
    /// Largest `|got - want|`; infinite when any element is NaN/infinite on one side only or
    /// the lengths differ.
    pub max_abs: f64,
    /// Largest `|got - want| / max(|want|, REL_FLOOR)` (see [`REL_FLOOR`]).
    pub max_rel: f64,
    /// Index of the element with the largest absolute error (first one on ties), for
    /// pointing at the failing query/head/lane when a check fails.
    pub worst_index: usize,
}

impl ErrorStats {
    /// Conservative pass test from the summary alone: passes when every element is within
    /// `tol.abs`, or every element is within `tol.rel` relative (with the [`REL_FLOOR`]).
    ///
    /// Both conditions imply the per-element rule of [`check`] (given
    /// `tol.rel * REL_FLOOR <= tol.abs`, true for [`Tolerance::for_format`]), so `within`
    /// never passes something [`check`] would fail; it may fail a mixed case that [`check`]
    /// passes. Use [`check`] when the element data is at hand.
    pub fn within(&self, tol: Tolerance) -> bool {
        self.max_abs <= tol.abs || self.max_rel <= tol.rel
    }
}

/// Absolute and relative error allowance; an element passes when
/// `|got - want| <= abs + rel * |want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Tolerance {
    /// Allowed absolute error, dominant for near-zero outputs.
    pub abs: f64,
    /// Allowed error relative to `|want|`, dominant for large outputs.
    pub rel: f64,
}

impl Tolerance {
    /// Tolerance for a kernel whose cache stores `dtype`, compared against [`attention`] fed the
    /// *same* K/V the kernel saw (for f16, pass K and V through [`round_through_f16`] first).
    ///
    /// With identical inputs the only difference left is f32 (GPU) versus f64 (reference)
    /// arithmetic: dot products over `head_dim <= 256`, an online softmax over the keys, WGSL
    /// `exp` (a few ULP), and the final division. An f32 online-softmax model of a kernel
    /// (see the tests) lands at about 1e-7 absolute for O(1) inputs, so:
    /// - `F32`: abs 2e-5, rel 1e-4 — ~100x the expected f32 error, room for less accurate GPU
    ///   `exp` and other summation orders, yet a single dropped or duplicated key (error about
    ///   `|v| / num_keys`) is still caught up to a few thousand keys, and wrong blocks, masks
    ///   or GQA heads (errors of 1e-2 and up) are caught everywhere.
    /// - `F16`: abs 1e-4, rel 5e-4 — the same arithmetic plus slack for kernels that unpack
    ///   f16 pairs or convert in a different order. It is *not* meant to absorb the f16
    ///   storage rounding itself (2^-11 relative per element; at short contexts it reaches a
    ///   few 1e-4 at the output), so always compare against [`attention`] fed
    ///   [`round_through_f16`] K/V; comparing with an unrounded reference needs a looser,
    ///   caller-chosen tolerance.
    pub fn for_format(dtype: KvFormat) -> Self {
        match dtype {
            KvFormat::F32 => Tolerance {
                abs: 2e-5,
                rel: 1e-4,
            },
            // The kernels decode codes and scales to exactly the f32 values the reference is
            // fed (`code * scale`, one correctly rounded product on both sides), so what is
            // left is f32 arithmetic, as for f16.
            KvFormat::F16
            | KvFormat::Int8
            | KvFormat::Int4
            | KvFormat::Fp8E4M3
            | KvFormat::Fp8E5M2 => Tolerance {
                abs: 1e-4,
                rel: 5e-4,
            },
        }
    }
}

/// Error of one element: `(abs, rel)`, with NaN/infinite mismatches mapped to infinity so
/// they can never compare as "small".
fn element_error(got: f32, want: f32) -> (f64, f64) {
    let (g, w) = (f64::from(got), f64::from(want));
    if g == w {
        // Also covers equal infinities.
        return (0.0, 0.0);
    }
    let abs = (g - w).abs();
    if !abs.is_finite() {
        return (f64::INFINITY, f64::INFINITY);
    }
    (abs, abs / w.abs().max(REL_FLOOR))
}

/// Compares a kernel output against the reference; see [`ErrorStats`] for the definitions.
///
/// Never panics: if the lengths differ, the common prefix is compared and then `max_abs` and
/// `max_rel` are set to infinity with `worst_index` at the first missing element, so a
/// truncated readback cannot pass.
pub fn compare(got: &[f32], want: &[f32]) -> ErrorStats {
    let mut stats = ErrorStats::default();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (abs, rel) = element_error(g, w);
        if abs > stats.max_abs {
            stats.max_abs = abs;
            stats.worst_index = i;
        }
        stats.max_rel = stats.max_rel.max(rel);
    }
    if got.len() != want.len() {
        stats.max_abs = f64::INFINITY;
        stats.max_rel = f64::INFINITY;
        stats.worst_index = got.len().min(want.len());
    }
    stats
}

/// [`compare`] plus the exact per-element verdict: every element must satisfy
/// `|got - want| <= tol.abs + tol.rel * |want|`, and the lengths must match.
pub fn check(got: &[f32], want: &[f32], tol: Tolerance) -> (ErrorStats, bool) {
    let stats = compare(got, want);
    let pass = got.len() == want.len()
        && got.iter().zip(want).all(|(&g, &w)| {
            let (abs, _) = element_error(g, w);
            abs <= tol.abs + tol.rel * f64::from(w).abs()
        });
    (stats, pass)
}

/// `n` deterministic values in [-1, 1) from `seed` (xorshift): stand-in activations for
/// examples and tests, reproducible on every platform without an RNG crate.
pub fn sample_values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        sample_values(n, seed)
    }

    fn shape(
        q_heads: usize,
        kv_heads: usize,
        head_dim: usize,
        nq: usize,
        nk: usize,
    ) -> AttentionShape {
        AttentionShape {
            q_heads,
            kv_heads,
            head_dim,
            num_queries: nq,
            num_keys: nk,
        }
    }

    fn assert_close(got: &[f32], want: &[f32], eps: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= eps, "element {i}: got {g}, want {w}");
        }
    }

    #[test]
    fn single_key_returns_its_value() {
        let q = [0.3, -1.2, 4.0, 0.5];
        let k = [2.0, 1.0, -0.5, 7.0];
        let v = [1.5, -2.5, 0.25, 9.0];
        let out = attention(&q, &k, &v, shape(1, 1, 4, 1, 1)).unwrap();
        assert_close(&out, &v, 0.0);
    }

    #[test]
    fn equal_scores_average_the_values() {
        // q is orthogonal to both keys: scores are both 0, weights 1/2 each.
        let q = [1.0, 0.0];
        let k = [0.0, 1.0, 0.0, -3.0];
        let v = [2.0, 4.0, 6.0, -8.0];
        let out = attention(&q, &k, &v, shape(1, 1, 2, 1, 2)).unwrap();
        assert_close(&out, &[4.0, -2.0], 1e-7);
    }

    #[test]
    fn hand_computed_softmax_weights() {
        // head_dim 4 -> scale 1/2. Scores: q.k0 = 0 -> 0, q.k1 = 2 -> 1.
        // Weights: [1, e] / (1 + e).
        let q = [2.0, 0.0, 0.0, 0.0];
        let k = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let v = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let out = attention(&q, &k, &v, shape(1, 1, 4, 1, 2)).unwrap();
        let e = std::f64::consts::E;
        let want = [(1.0 / (1.0 + e)) as f32, (e / (1.0 + e)) as f32, 0.0, 0.0];
        assert_close(&out, &want, 1e-7);
    }

    #[test]
    fn causal_mask_without_prefix() {
        // Three queries, three keys, no cached prefix. Values are one-hot per key and the
        // query/key vectors are zero, so query i averages v[0..=i].
        let q = [0.0; 3 * 2];
        let k = [0.0; 3 * 2];
        let v = [1.0, 0.0, 0.0, 1.0, 10.0, 10.0];
        let out = attention(&q, &k, &v, shape(1, 1, 2, 3, 3)).unwrap();
        let want = [1.0, 0.0, 0.5, 0.5, 11.0 / 3.0, 11.0 / 3.0];
        assert_close(&out, &want, 1e-6);
        // Query 0 sees only key 0 even though key 2 would dominate by score.
        let q = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let k = [0.0, 0.0, 0.0, 0.0, 100.0, 0.0];
        let out = attention(&q, &k, &v, shape(1, 1, 2, 3, 3)).unwrap();
        assert_close(&out[..2], &[1.0, 0.0], 0.0);
    }

    #[test]
    fn causal_mask_with_prefix() {
        // 2 queries over 4 keys: query 0 sits at position 2, so key 3 is hidden from it.
        let q = [0.0; 2];
        let k = [0.0; 4];
        let v = [1.0, 2.0, 3.0, 1000.0];
        let out = attention(&q, &k, &v, shape(1, 1, 1, 2, 4)).unwrap();
        assert_close(&out, &[2.0, 1006.0 / 4.0], 1e-5);
    }

    #[test]
    fn gqa_maps_query_heads_to_kv_heads() {
        // 4 query heads, 2 KV heads: heads 0,1 -> kv 0; heads 2,3 -> kv 1. One key, so each
        // output head is exactly the value row of its KV head.
        let q = pseudo_random(4 * 3, 1);
        let k = pseudo_random(2 * 3, 2);
        let v = [1.0, 2.0, 3.0, -1.0, -2.0, -3.0];
        let out = attention(&q, &k, &v, shape(4, 2, 3, 1, 1)).unwrap();
        assert_close(
            &out,
            &[
                1.0, 2.0, 3.0, 1.0, 2.0, 3.0, -1.0, -2.0, -3.0, -1.0, -2.0, -3.0,
            ],
            0.0,
        );
    }

    #[test]
    fn gqa_equals_mha_with_repeated_kv() {
        let (qh, kvh, d, n) = (6, 2, 8, 5);
        let q = pseudo_random(n * qh * d, 3);
        let k = pseudo_random(n * kvh * d, 4);
        let v = pseudo_random(n * kvh * d, 5);
        let gqa = attention(&q, &k, &v, shape(qh, kvh, d, n, n)).unwrap();
        // Expand K/V so every query head has its own copy of its group's KV head.
        let expand = |x: &[f32]| {
            let mut out = Vec::with_capacity(n * qh * d);
            for t in 0..n {
                for h in 0..qh {
                    let off = (t * kvh + h / (qh / kvh)) * d;
                    out.extend_from_slice(&x[off..off + d]);
                }
            }
            out
        };
        let mha = attention(&q, &expand(&k), &expand(&v), shape(qh, qh, d, n, n)).unwrap();
        assert_eq!(gqa, mha);
    }

    #[test]
    fn chunked_prefill_matches_full_attention() {
        let (qh, kvh, d, total) = (4, 2, 16, 23);
        let q = pseudo_random(total * qh * d, 6);
        let k = pseudo_random(total * kvh * d, 7);
        let v = pseudo_random(total * kvh * d, 8);
        let full = attention(&q, &k, &v, shape(qh, kvh, d, total, total)).unwrap();
        let row = qh * d;
        for n in [1, 2, 7, total] {
            // The last n queries over all keys.
            let chunk_q = &q[(total - n) * row..];
            let chunk = attention(chunk_q, &k, &v, shape(qh, kvh, d, n, total)).unwrap();
            assert_eq!(chunk, &full[(total - n) * row..], "chunk of {n}");
        }
        // A middle chunk: queries 10..15 over keys 0..15, i.e. the prefix of length 15.
        let (start, end) = (10, 15);
        let kv_row = kvh * d;
        let chunk = attention(
            &q[start * row..end * row],
            &k[..end * kv_row],
            &v[..end * kv_row],
            shape(qh, kvh, d, end - start, end),
        )
        .unwrap();
        assert_eq!(chunk, &full[start * row..end * row]);
    }

    #[test]
    fn large_scores_do_not_overflow() {
        let q = [100.0; 4];
        let k = [100.0, 100.0, 100.0, 100.0, 99.0, 99.0, 99.0, 99.0];
        let v = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let out = attention(&q, &k, &v, shape(1, 1, 4, 1, 2)).unwrap();
        assert!(out.iter().all(|x| x.is_finite()));
        // Score gap 200: key 1 contributes e^-200, i.e. nothing.
        assert_close(&out, &[1.0, 0.0, 0.0, 0.0], 1e-7);
    }

    #[test]
    fn rejects_bad_shapes_and_lengths() {
        let s = shape(3, 2, 4, 1, 1);
        assert!(matches!(
            attention(&[0.0; 12], &[0.0; 8], &[0.0; 8], s),
            Err(ReferenceError::HeadsNotDivisible { .. })
        ));
        let s = shape(1, 1, 4, 2, 1);
        assert!(matches!(
            attention(&[0.0; 8], &[0.0; 4], &[0.0; 4], s),
            Err(ReferenceError::MoreQueriesThanKeys { .. })
        ));
        let s = shape(1, 1, 4, 1, 2);
        assert_eq!(
            attention(&[0.0; 4], &[0.0; 8], &[0.0; 7], s),
            Err(ReferenceError::Length {
                name: "v",
                got: 7,
                want: 8
            })
        );
        let s = shape(0, 1, 4, 1, 1);
        assert!(matches!(
            attention(&[], &[0.0; 4], &[0.0; 4], s),
            Err(ReferenceError::ZeroDimension(_))
        ));
    }

    #[test]
    fn f16_rounding_matches_half() {
        let x = [1.0, 1.0 + 1e-4, 65504.0, 1e-8, -0.333_333];
        let r = round_through_f16(&x);
        assert_eq!(r[0], 1.0);
        assert_eq!(r[1], 1.0); // below half an f16 ULP at 1.0 (2^-11)
        assert_eq!(r[2], 65504.0);
        assert_eq!(r[3], 0.0);
        assert!((r[4] + 0.333_333).abs() < 2e-4);
        // Idempotent: rounding a rounded value changes nothing.
        assert_eq!(round_through_f16(&r), r);
    }

    #[test]
    fn compare_reports_worst_element() {
        let want = [1.0, 0.0, 2.0, -4.0];
        let got = [1.0, 1e-4, 2.001, -4.0];
        let s = compare(&got, &want);
        assert!((s.max_abs - 1e-3).abs() < 1e-6);
        assert_eq!(s.worst_index, 2);
        // Element 1: 1e-4 / REL_FLOOR = 0.1 dominates element 2's 5e-4.
        assert!((s.max_rel - 0.1).abs() < 1e-3);
        assert_eq!(compare(&want, &want), ErrorStats::default());
    }

    #[test]
    fn compare_and_check_fail_on_nan_and_length() {
        let s = compare(&[f32::NAN], &[1.0]);
        assert!(s.max_abs.is_infinite());
        let tol = Tolerance::for_format(KvFormat::F32);
        assert!(!s.within(tol));
        assert!(!check(&[f32::NAN], &[1.0], tol).1);
        let (s, pass) = check(&[1.0], &[1.0, 2.0], tol);
        assert!(!pass);
        assert!(s.max_abs.is_infinite());
        assert_eq!(s.worst_index, 1);
    }

    #[test]
    fn check_uses_abs_plus_rel() {
        let tol = Tolerance {
            abs: 1e-3,
            rel: 1e-2,
        };
        // 100 * 1e-2 + 1e-3 = 1.001 allowed at want = 100.
        assert!(check(&[101.0, 0.0005], &[100.0, 0.0], tol).1);
        assert!(!check(&[101.1], &[100.0], tol).1);
        assert!(!check(&[0.002], &[0.0], tol).1);
    }

    #[test]
    fn tolerances_are_consistent() {
        for dtype in [KvFormat::F32, KvFormat::F16] {
            let tol = Tolerance::for_format(dtype);
            // Needed for `within` to be conservative relative to `check`.
            assert!(tol.rel * REL_FLOOR <= tol.abs);
        }
        let f32_tol = Tolerance::for_format(KvFormat::F32);
        let f16_tol = Tolerance::for_format(KvFormat::F16);
        assert!(f32_tol.abs <= f16_tol.abs && f32_tol.rel <= f16_tol.rel);
    }

    /// An f32 online-softmax re-implementation of the same math, shaped like a GPU kernel
    /// (running max, rescaled accumulator), to size the tolerances against.
    fn f32_online_attention(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape) -> Vec<f32> {
        let d = s.head_dim;
        let group = s.q_heads / s.kv_heads;
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0.0f32; s.q_len()];
        for i in 0..s.num_queries {
            for h in 0..s.q_heads {
                let qo = (i * s.q_heads + h) * d;
                let q_row = &q[qo..qo + d];
                let (mut m, mut l) = (f32::NEG_INFINITY, 0.0f32);
                let mut acc = vec![0.0f32; d];
                for j in 0..=(s.num_keys - s.num_queries + i) {
                    let ko = (j * s.kv_heads + h / group) * d;
                    let sc = q_row
                        .iter()
                        .zip(&k[ko..ko + d])
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                        * scale;
                    let m_new = m.max(sc);
                    let c = (m - m_new).exp();
                    let p = (sc - m_new).exp();
                    l = l * c + p;
                    for (a, &x) in acc.iter_mut().zip(&v[ko..ko + d]) {
                        *a = *a * c + p * x;
                    }
                    m = m_new;
                }
                for (o, a) in out[qo..qo + d].iter_mut().zip(&acc) {
                    *o = a / l;
                }
            }
        }
        out
    }

    fn realistic_inputs() -> (Vec<f32>, Vec<f32>, Vec<f32>, AttentionShape) {
        let s = shape(4, 2, 128, 3, 600);
        let q = pseudo_random(s.q_len(), 9);
        let k = pseudo_random(s.kv_len(), 10);
        let v = pseudo_random(s.kv_len(), 11);
        (q, k, v, s)
    }

    #[test]
    fn f32_kernel_model_is_within_f32_tolerance() {
        // Sanity check on the tolerance scale: f32 online softmax at a realistic size passes
        // the F32 tolerance against the f64 reference (measured max_abs ~1e-7).
        let (q, k, v, s) = realistic_inputs();
        let want = attention(&q, &k, &v, s).unwrap();
        let got = f32_online_attention(&q, &k, &v, s);
        let tol = Tolerance::for_format(KvFormat::F32);
        let (stats, pass) = check(&got, &want, tol);
        assert!(pass && stats.within(tol), "{stats:?}");
        assert!(
            stats.max_abs > 0.0,
            "f32 path should differ slightly from f64"
        );
    }

    #[test]
    fn f16_kernel_model_needs_the_rounded_reference() {
        // An f16-cache kernel sees rounded K/V and computes in f32. Against a reference fed
        // the same rounded K/V it passes the F16 tolerance.
        let (q, k, v, s) = realistic_inputs();
        let (k16, v16) = (round_through_f16(&k), round_through_f16(&v));
        let got = f32_online_attention(&q, &k16, &v16, s);
        let tol = Tolerance::for_format(KvFormat::F16);
        let (stats, pass) = check(&got, &attention(&q, &k16, &v16, s).unwrap(), tol);
        assert!(pass && stats.within(tol), "{stats:?}");
        // With a short context the storage rounding is not averaged away over many keys, and
        // against the unrounded reference it exceeds the tolerance: callers must round first.
        let s = shape(4, 2, 128, 2, 2);
        let (q, k, v) = (&q[..s.q_len()], &k[..s.kv_len()], &v[..s.kv_len()]);
        let (k16, v16) = (round_through_f16(k), round_through_f16(v));
        let got = f32_online_attention(q, &k16, &v16, s);
        assert!(check(&got, &attention(q, &k16, &v16, s).unwrap(), tol).1);
        let (stats, pass) = check(&got, &attention(q, k, v, s).unwrap(), tol);
        assert!(!pass, "unrounded reference unexpectedly passed: {stats:?}");
    }
}
