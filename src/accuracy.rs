//! How far attention outputs, or cached K/V, drift from exact values when the cache stores a
//! lossy format: what `pagekv verify --dtype` reports beside its kernel check (the kernel
//! check compares against the reference fed the values the cache really holds; this compares
//! against the reference fed the unquantized inputs, so it measures the format).

/// Divergence of a set of vectors (output rows of one query head, or K/V rows of one KV
/// head) from their exact values.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Divergence {
    /// Largest `|got - want|` of any element.
    pub max_abs: f64,
    /// Mean over vectors of `||got - want|| / ||want||` (0 for a pair of zero vectors).
    pub mean_rel: f64,
    /// Smallest cosine similarity of any vector with its exact value (1 for a pair of zero
    /// vectors, 0 when only one is zero).
    pub min_cosine: f64,
    /// Vectors compared.
    pub vectors: usize,
}

impl Default for Divergence {
    fn default() -> Self {
        Self {
            max_abs: 0.0,
            mean_rel: 0.0,
            min_cosine: 1.0,
            vectors: 0,
        }
    }
}

impl Divergence {
    /// Divergence of `got` from `want`, both consecutive vectors of `len` elements.
    pub fn of(got: &[f32], want: &[f32], len: usize) -> Self {
        let mut out = Self::default();
        let mut rel_sum = 0.0;
        for (g, w) in got.chunks(len.max(1)).zip(want.chunks(len.max(1))) {
            let (mut diff, mut gg, mut ww, mut gw) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for (&a, &b) in g.iter().zip(w) {
                let (a, b) = (a as f64, b as f64);
                out.max_abs = out.max_abs.max((a - b).abs());
                diff += (a - b) * (a - b);
                gg += a * a;
                ww += b * b;
                gw += a * b;
            }
            let rel = if diff == 0.0 {
                0.0
            } else if ww == 0.0 {
                f64::INFINITY
            } else {
                (diff / ww).sqrt()
            };
            let cosine = match (gg == 0.0, ww == 0.0) {
                (true, true) => 1.0,
                (true, false) | (false, true) => 0.0,
                (false, false) => gw / (gg.sqrt() * ww.sqrt()),
            };
            rel_sum += rel;
            out.min_cosine = out.min_cosine.min(cosine);
            out.vectors += 1;
        }
        out.mean_rel = if out.vectors == 0 {
            0.0
        } else {
            rel_sum / out.vectors as f64
        };
        out
    }

    /// The divergence of both sets together.
    pub fn merge(self, other: Self) -> Self {
        let vectors = self.vectors + other.vectors;
        let mean_rel = if vectors == 0 {
            0.0
        } else {
            (self.mean_rel * self.vectors as f64 + other.mean_rel * other.vectors as f64)
                / vectors as f64
        };
        Self {
            max_abs: self.max_abs.max(other.max_abs),
            mean_rel,
            min_cosine: self.min_cosine.min(other.min_cosine),
            vectors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_vectors_do_not_diverge() {
        let x = [1.0, -2.0, 3.0, 0.5];
        let d = Divergence::of(&x, &x, 2);
        assert_eq!(d.max_abs, 0.0);
        assert_eq!(d.mean_rel, 0.0);
        assert!((d.min_cosine - 1.0).abs() < 1e-12);
        assert_eq!(d.vectors, 2);
    }

    #[test]
    fn divergence_measures_each_vector() {
        // Vector 0 is exact, vector 1 is off by 10% along itself, vector 2 is orthogonal.
        let want = [1.0, 0.0, 0.0, 2.0, 1.0, 0.0];
        let got = [1.0, 0.0, 0.0, 2.2, 0.0, 1.0];
        let d = Divergence::of(&got, &want, 2);
        assert!((d.max_abs - 1.0).abs() < 1e-6);
        assert!((d.mean_rel - (0.0 + 0.1 + 2f64.sqrt()) / 3.0).abs() < 1e-6);
        assert!(d.min_cosine.abs() < 1e-12);
        let merged = d.merge(Divergence::of(&want[..2], &want[..2], 2));
        assert_eq!(merged.vectors, 4);
        assert!((merged.mean_rel - (0.1 + 2f64.sqrt()) / 4.0).abs() < 1e-6);
    }

    #[test]
    fn zero_vectors() {
        let d = Divergence::of(&[0.0, 0.0], &[0.0, 0.0], 2);
        assert_eq!((d.mean_rel, d.min_cosine), (0.0, 1.0));
        let d = Divergence::of(&[1.0, 0.0], &[0.0, 0.0], 2);
        assert_eq!((d.mean_rel, d.min_cosine), (f64::INFINITY, 0.0));
    }
}
