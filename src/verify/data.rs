//! The K/V data patterns a verification case feeds the cache.

use serde::Serialize;

/// The K/V values a case feeds the cache: ordinary data, and the shapes that break quantized
/// formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KvData {
    /// Uniform in [-1, 1), like Q.
    #[default]
    Uniform,
    /// Uniform, with one channel (a third of the way into every head row) 50x larger: what
    /// breaks a per-tensor or per-row scale.
    Outlier,
    /// All zeros: scales of 0, outputs of 0.
    Zeros,
    /// Magnitudes in [0.9, 1.0) x 60000, next to f16's largest value (65504), with Q scaled
    /// by 1/60000 so the scores stay ordinary.
    NearMax,
}

impl KvData {
    /// Every pattern, for listings and flags.
    pub const ALL: [KvData; 4] = [
        KvData::Uniform,
        KvData::Outlier,
        KvData::Zeros,
        KvData::NearMax,
    ];

    /// Name as `--data` takes it.
    pub fn name(self) -> &'static str {
        match self {
            KvData::Uniform => "uniform",
            KvData::Outlier => "outlier",
            KvData::Zeros => "zeros",
            KvData::NearMax => "near-max",
        }
    }

    /// Reshapes random uniform K or V rows of `head_dim` values into this pattern.
    pub(super) fn shape_kv(self, values: &mut [f32], head_dim: usize) {
        match self {
            KvData::Uniform => {}
            KvData::Outlier => {
                for row in values.chunks_mut(head_dim) {
                    row[head_dim / 3] *= 50.0;
                }
            }
            KvData::Zeros => values.fill(0.0),
            KvData::NearMax => {
                for x in values.iter_mut() {
                    *x = x.signum() * (0.9 + 0.1 * x.abs()) * NEAR_MAX;
                }
            }
        }
    }

    /// Reshapes random Q to match (only [`KvData::NearMax`] changes it).
    pub(super) fn shape_q(self, values: &mut [f32]) {
        if self == KvData::NearMax {
            values.iter_mut().for_each(|x| *x /= NEAR_MAX);
        }
    }
}

/// The magnitude [`KvData::NearMax`] puts K and V at.
const NEAR_MAX: f32 = 60000.0;
