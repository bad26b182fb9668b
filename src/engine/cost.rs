//! A linear cost model of engine steps, fitted to measured steps and used to predict how long
//! a scaled scenario will take on the same adapter.
//!
//! One step costs `step + layers x (layer + token x tokens + prefill_key x prefill keys +
//! decode_key x decode keys)` seconds: a fixed host and submit cost, a dispatch cost per
//! layer, and per-layer costs that grow with the tokens computed (generation, append) and
//! the keys attention reads (prefill and decode are separate kernels with separate speeds).
//! The coefficients are fitted by non-negative least squares on the steps of a calibration
//! run at the scenario's geometry and format, so they carry the adapter's real speeds and
//! every cost the engine pays per step, host work included.

use serde::{Deserialize, Serialize};

use super::simulate::StepWork;

/// Fitted coefficients, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// Per step, whatever it holds (scheduling, submit, fence wait).
    pub step_s: f64,
    /// Per step and layer (the passes recorded for each layer).
    pub layer_s: f64,
    /// Per token computed, per layer.
    pub token_s: f64,
    /// Per key a prefill query reads, per layer.
    pub prefill_key_s: f64,
    /// Per key a decode query reads, per layer.
    pub decode_key_s: f64,
    /// Per key the CPU reference reads for a spot check, per layer (host time outside the
    /// steps' clock, measured directly rather than fitted).
    pub check_key_s: f64,
    /// Per scenario: building the executor and warming up.
    pub scenario_s: f64,
}

/// Number of fitted per-step coefficients.
const TERMS: usize = 5;

fn features(work: &StepWork, layers: u32) -> [f64; TERMS] {
    let l = layers as f64;
    [
        1.0,
        l,
        l * work.tokens as f64,
        l * work.prefill_keys as f64,
        l * work.decode_keys as f64,
    ]
}

impl CostModel {
    fn coefficients(&self) -> [f64; TERMS] {
        [
            self.step_s,
            self.layer_s,
            self.token_s,
            self.prefill_key_s,
            self.decode_key_s,
        ]
    }

    /// Predicted seconds of one step.
    pub fn step_seconds(&self, work: &StepWork, layers: u32) -> f64 {
        let x = features(work, layers);
        x.iter().zip(self.coefficients()).map(|(x, c)| x * c).sum()
    }

    /// Predicted seconds of a whole scenario run: its steps, its spot checks and the
    /// per-scenario cost.
    pub fn run_seconds(&self, steps: &[StepWork], layers: u32) -> f64 {
        self.scenario_s
            + steps
                .iter()
                .map(|w| self.step_seconds(w, layers) + self.check_seconds(w, layers))
                .sum::<f64>()
    }

    /// Predicted host seconds of one step's spot checks.
    pub fn check_seconds(&self, work: &StepWork, layers: u32) -> f64 {
        self.check_key_s * work.check_keys as f64 * layers as f64
    }

    /// Fits the per-step coefficients to measured `(work, layers, seconds)` steps by
    /// non-negative least squares on relative errors (a negative cost would let one term
    /// cancel another and extrapolate badly); `check_key_s` and `scenario_s` are left for the
    /// caller, who measures them directly.
    /// Features are scaled to unit size first so keys (millions) and steps (ones) weigh alike.
    pub fn fit(samples: &[(StepWork, u32, f64)]) -> Self {
        // Relative errors: each step weighs the same whether it took 1 ms or 1 s, so the
        // many short decode steps pin their costs as firmly as the few long prefill steps.
        let weight = |seconds: f64| if seconds > 0.0 { 1.0 / seconds } else { 0.0 };
        let rows: Vec<[f64; TERMS]> = samples
            .iter()
            .map(|(w, l, s)| features(w, *l).map(|x| x * weight(*s)))
            .collect();
        let y: Vec<f64> = samples.iter().map(|s| s.2 * weight(s.2)).collect();
        let mut scale = [0.0f64; TERMS];
        for row in &rows {
            for (s, x) in scale.iter_mut().zip(row) {
                *s = s.max(x.abs());
            }
        }
        let mut active: Vec<usize> = (0..TERMS).filter(|&j| scale[j] > 0.0).collect();
        let mut solution = [0.0f64; TERMS];
        // Lawson-Hanson style: solve on the active set, drop the most negative, repeat.
        while !active.is_empty() {
            let coef = least_squares(&rows, &y, &active, &scale);
            let worst = active
                .iter()
                .zip(&coef)
                .filter(|(_, c)| **c < 0.0)
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map(|(j, _)| *j);
            match worst {
                Some(j) => active.retain(|&k| k != j),
                None => {
                    for (&j, c) in active.iter().zip(coef) {
                        solution[j] = c;
                    }
                    break;
                }
            }
        }
        let [step_s, layer_s, token_s, prefill_key_s, decode_key_s] = solution;
        Self {
            step_s,
            layer_s,
            token_s,
            prefill_key_s,
            decode_key_s,
            check_key_s: 0.0,
            scenario_s: 0.0,
        }
    }
}

/// Ordinary least squares over the `active` columns (scaled by `scale`), by the normal
/// equations with partial pivoting; a column that makes them singular gets 0.
fn least_squares(rows: &[[f64; TERMS]], y: &[f64], active: &[usize], scale: &[f64]) -> Vec<f64> {
    let n = active.len();
    let mut a = vec![vec![0.0f64; n + 1]; n];
    for (row, &yi) in rows.iter().zip(y) {
        let x: Vec<f64> = active.iter().map(|&j| row[j] / scale[j]).collect();
        for i in 0..n {
            for k in 0..n {
                a[i][k] += x[i] * x[k];
            }
            a[i][n] += x[i] * yi;
        }
    }
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        if a[col][col].abs() < 1e-12 {
            continue;
        }
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    (0..n)
        .map(|i| {
            if a[i][i].abs() < 1e-12 {
                0.0
            } else {
                a[i][n] / a[i][i] / scale[active[i]]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(tokens: u64, prefill_keys: u64, decode_keys: u64) -> StepWork {
        StepWork {
            tokens,
            prefill_keys,
            decode_keys,
            check_keys: 0,
        }
    }

    fn truth() -> CostModel {
        CostModel {
            step_s: 2e-3,
            layer_s: 1e-4,
            token_s: 3e-6,
            prefill_key_s: 2e-9,
            decode_key_s: 5e-9,
            check_key_s: 0.0,
            scenario_s: 0.0,
        }
    }

    fn samples(model: &CostModel) -> Vec<(StepWork, u32, f64)> {
        let mut out = Vec::new();
        for layers in [1, 2] {
            for (t, p, d) in [
                (512, 131_000, 0),
                (256, 40_000, 0),
                (8, 0, 4_000),
                (16, 0, 9_000),
                (64, 2_000, 30_000),
                (300, 50_000, 1_000),
                (4, 0, 300),
            ] {
                let w = work(t, p, d);
                out.push((w, layers, model.step_seconds(&w, layers)));
            }
        }
        out
    }

    #[test]
    fn recovers_the_coefficients_of_exact_data() {
        let fitted = CostModel::fit(&samples(&truth()));
        let (t, f) = (truth().coefficients(), fitted.coefficients());
        for (want, got) in t.iter().zip(f) {
            assert!(
                (want - got).abs() <= 1e-6 * want.abs().max(1e-12),
                "{t:?} vs {f:?}"
            );
        }
    }

    #[test]
    fn never_fits_a_negative_cost() {
        // Data that an unconstrained fit explains with a negative per-token cost.
        let mut data = samples(&truth());
        for (w, _, s) in &mut data {
            *s -= 2.5e-6 * w.tokens as f64;
        }
        let fitted = CostModel::fit(&data);
        assert!(
            fitted.coefficients().iter().all(|c| *c >= 0.0),
            "{fitted:?}"
        );
        assert!(fitted.decode_key_s > 0.0);
    }

    #[test]
    fn a_run_costs_its_steps_plus_the_scenario_cost() {
        let model = CostModel {
            scenario_s: 0.5,
            check_key_s: 1e-7,
            ..truth()
        };
        let mut steps = [work(8, 0, 4_000), work(512, 131_000, 0)];
        steps[1].check_keys = 1_000;
        let want = 0.5
            + model.step_seconds(&steps[0], 3)
            + model.step_seconds(&steps[1], 3)
            + 1e-7 * 1_000.0 * 3.0;
        assert!((model.run_seconds(&steps, 3) - want).abs() < 1e-12);
    }
}
