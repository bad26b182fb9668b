//! Spot checks of the engine's attention outputs against the f64 CPU reference.
//!
//! Q, K and V are pure functions of (request, layer, head, position, token), so the expected
//! output of any query row can be recomputed on the CPU from the request's spec alone, however
//! often the request was preempted, recomputed or swapped on the way. The runner picks rows
//! with [`SpotCheckPlan`] and compares them with [`expected_row`].

use serde::{Deserialize, Serialize};

use super::request::RequestSpec;
use crate::cache::CacheLayout;
use crate::reference::{self, AttentionShape, ErrorStats, Tolerance};
use crate::tool_kernels::generate::{Tensor, TokenKey};

/// The expected attention output of `spec`'s query at `position` (attending to positions
/// `0..=position`, or to the last `window` of them), `[layers][q_heads][head_dim]`, as the
/// kernels should produce it: K and V through the pool's format, accumulation in f64.
pub fn expected_row(
    layout: &CacheLayout,
    spec: &RequestSpec,
    position: u32,
    window: Option<u32>,
) -> Vec<f32> {
    let g = &layout.geometry;
    let (qh, kvh, hd) = (g.q_heads, g.kv_heads, g.head_dim);
    let first = window.map_or(0, |w| (position + 1).saturating_sub(w));
    let keys: Vec<TokenKey> = (first..=position)
        .map(|p| TokenKey {
            token: spec.token_at(p),
            position: p,
            seed: spec.seed,
        })
        .collect();
    let mut out = Vec::with_capacity((g.layers * qh * hd) as usize);
    for layer in 0..g.layers {
        let rows = |tensor: Tensor, heads: u32, keys: &[TokenKey]| {
            let values =
                crate::tool_kernels::generate::synthetic_rows(tensor, layer, heads, hd, keys);
            match tensor {
                Tensor::Q => values,
                Tensor::K | Tensor::V => layout.dtype.quantize(&values, hd as usize),
            }
        };
        let q = rows(Tensor::Q, qh, &keys[keys.len() - 1..]);
        let k = rows(Tensor::K, kvh, &keys);
        let v = rows(Tensor::V, kvh, &keys);
        let shape = AttentionShape {
            q_heads: qh as usize,
            kv_heads: kvh as usize,
            head_dim: hd as usize,
            num_queries: 1,
            num_keys: keys.len(),
        };
        let row = reference::attention(&q, &k, &v, shape)
            .expect("shapes are built from one validated geometry");
        out.extend(row);
    }
    out
}

/// What a check looked at, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The last prompt token of a (re)prefill: the request's first output.
    PromptEnd,
    /// The last decode token: attends to the whole finished context.
    FinalDecode,
}

/// One spot check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpotCheck {
    /// Request checked.
    pub request: u64,
    /// Query position checked.
    pub position: u32,
    /// Which output it was.
    pub kind: CheckKind,
    /// Times the request had been preempted before this output.
    pub preempted: u32,
    /// Largest absolute error over all layers and heads (`f64::MAX` stands for a non-finite
    /// output, which JSON cannot hold).
    pub max_abs_error: f64,
    /// Within the dtype's tolerance.
    pub passed: bool,
}

/// Compares a captured row with its expectation under the dtype's tolerance: (largest
/// absolute error, within tolerance).
pub fn compare_row(layout: &CacheLayout, got: &[f32], want: &[f32]) -> (f64, bool) {
    let (stats, passed): (ErrorStats, bool) =
        reference::check(got, want, Tolerance::for_format(layout.dtype));
    let error = if stats.max_abs.is_finite() {
        stats.max_abs
    } else {
        f64::MAX
    };
    (error, passed)
}

/// Which rows to check: every `stride`-th request (so checks spread over the whole run), plus
/// up to `max_preempted` outputs of requests that were preempted before that output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpotCheckPlan {
    stride: u64,
    max_preempted: u32,
    preempted_taken: u32,
}

impl SpotCheckPlan {
    /// Checks about `samples` evenly spread requests out of `requests`, plus up to
    /// `max_preempted` outputs of preempted ones.
    pub fn new(requests: u64, samples: u64, max_preempted: u32) -> Self {
        Self {
            stride: if samples == 0 {
                u64::MAX
            } else {
                requests.div_ceil(samples).max(1)
            },
            max_preempted,
            preempted_taken: 0,
        }
    }

    /// Whether to check an output of `request`, which has been preempted `preempted` times.
    pub fn wants(&mut self, request: u64, preempted: u32) -> bool {
        if request.is_multiple_of(self.stride) {
            return true;
        }
        if preempted > 0 && self.preempted_taken < self.max_preempted {
            self.preempted_taken += 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ModelGeometry;
    use crate::tool_kernels::generate::synthetic_value;

    #[test]
    fn plan_spreads_samples_and_takes_preempted_up_to_the_cap() {
        let mut plan = SpotCheckPlan::new(100, 4, 2);
        let plain: Vec<u64> = (0..100).filter(|&r| plan.clone().wants(r, 0)).collect();
        assert_eq!(plain, vec![0, 25, 50, 75]);
        assert!(plan.wants(3, 1));
        assert!(plan.wants(4, 2));
        assert!(!plan.wants(5, 1), "cap of two preempted reached");
        assert!(plan.wants(50, 1), "sampled requests are checked regardless");
    }

    #[test]
    fn expected_row_of_first_token_is_its_own_value() {
        // With one key, softmax is 1 and the output is V of that key (per KV head, shared
        // by its group of query heads).
        let layout = CacheLayout {
            geometry: ModelGeometry::new("t", 2, 4, 2, 64),
            block_size: 16,
            dtype: crate::cache::KvFormat::F32,
        };
        let spec = RequestSpec {
            id: 0,
            stream: 0,
            prompt: vec![7, 8],
            generation_len: 1,
            seed: 3,
        };
        let row = expected_row(&layout, &spec, 0, None);
        assert_eq!(row.len(), 2 * 4 * 64);
        let key = TokenKey {
            token: 7,
            position: 0,
            seed: 3,
        };
        for (i, &x) in row.iter().enumerate() {
            let (layer, head, dim) = (i / 256, (i / 64) % 4, i % 64);
            let want = synthetic_value(Tensor::V, layer as u32, head as u32 / 2, key, dim as u32);
            assert!((x - want).abs() < 1e-6, "element {i}");
        }
    }
}
