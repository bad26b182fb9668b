//! Model geometry, KV dtypes and the byte arithmetic of a paged cache.
//!
//! These numbers are the whole reason a KV cache is hard: everything the pool, the kernels
//! and the stress engine do is sized from them, so they live in one place.

use super::format::KvFormat;
use thiserror::Error;

/// The KV-relevant shape of a transformer. No weights: layers, heads and head dim fully
/// determine how many bytes each cached token costs and how attention reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ModelGeometry {
    /// Preset or user-given name, printed in results so a reader knows which model was meant.
    pub name: String,
    /// Decoder layers; each has its own K and V pool.
    pub layers: u32,
    /// Query heads.
    pub q_heads: u32,
    /// Key/value heads; fewer than `q_heads` means GQA (or MQA at 1).
    pub kv_heads: u32,
    /// Elements per head vector.
    pub head_dim: u32,
}

/// Why a geometry cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum GeometryError {
    /// A size was zero.
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    /// GQA needs every KV head to serve the same number of query heads.
    #[error("q_heads ({q_heads}) is not a multiple of kv_heads ({kv_heads})")]
    GroupMismatch {
        /// Query heads given.
        q_heads: u32,
        /// KV heads given.
        kv_heads: u32,
    },
    /// The kernels are generated for a fixed set of head dims.
    #[error("head_dim {0} is not supported; supported head dims are {SUPPORTED_HEAD_DIMS:?}")]
    HeadDim(u32),
}

/// Head dims the attention kernels are generated for (see `kernels` for why variants).
pub const SUPPORTED_HEAD_DIMS: [u32; 5] = [64, 80, 96, 128, 256];

/// Block sizes (tokens per page) the cache supports.
pub const SUPPORTED_BLOCK_SIZES: [u32; 3] = [8, 16, 32];

impl ModelGeometry {
    /// Qwen2.5-0.5B from its published config.json: the reference report's "0.5B".
    pub fn qwen2_5_0_5b() -> Self {
        Self::new("qwen2.5-0.5b", 24, 14, 2, 64)
    }

    /// Qwen2.5-7B from its published config.json: the reference report's "7B".
    pub fn qwen2_5_7b() -> Self {
        Self::new("qwen2.5-7b", 28, 28, 4, 128)
    }

    /// Builds a geometry without validating it; call [`ModelGeometry::validate`] before use.
    pub fn new(name: &str, layers: u32, q_heads: u32, kv_heads: u32, head_dim: u32) -> Self {
        Self {
            name: name.to_string(),
            layers,
            q_heads,
            kv_heads,
            head_dim,
        }
    }

    /// Built-in presets by name, so the CLI and scenario files can say `qwen2.5-7b`.
    pub fn preset(name: &str) -> Option<Self> {
        Self::presets().into_iter().find(|g| g.name == name)
    }

    /// Every built-in preset.
    pub fn presets() -> Vec<Self> {
        vec![Self::qwen2_5_0_5b(), Self::qwen2_5_7b()]
    }

    /// Rejects geometries no kernel can run, with the reason.
    pub fn validate(&self) -> Result<(), GeometryError> {
        for (key, value) in [
            ("layers", self.layers),
            ("q_heads", self.q_heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
        ] {
            if value == 0 {
                return Err(GeometryError::Zero(key));
            }
        }
        if !self.q_heads.is_multiple_of(self.kv_heads) {
            return Err(GeometryError::GroupMismatch {
                q_heads: self.q_heads,
                kv_heads: self.kv_heads,
            });
        }
        if !SUPPORTED_HEAD_DIMS.contains(&self.head_dim) {
            return Err(GeometryError::HeadDim(self.head_dim));
        }
        Ok(())
    }

    /// Query heads that share one KV head (1 = MHA, q_heads = MQA).
    pub fn group_size(&self) -> u32 {
        self.q_heads / self.kv_heads
    }
}

/// Geometry plus paging choices: everything needed to turn a byte budget into blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CacheLayout {
    /// The model whose KV is cached.
    pub geometry: ModelGeometry,
    /// Tokens per block.
    pub block_size: u32,
    /// How K and V are stored (the key is `dtype` in files and flags).
    pub dtype: KvFormat,
}

impl CacheLayout {
    /// Bytes one token costs across all layers, K and V (values plus any scales).
    pub fn bytes_per_token(&self) -> u64 {
        let g = &self.geometry;
        2 * g.layers as u64 * g.kv_heads as u64 * self.dtype.row_bytes(g.head_dim)
    }

    /// Bytes of one block in one layer's K (or V) pool: `[kv_heads][block_size]` rows.
    pub fn block_bytes_per_layer(&self) -> u64 {
        let g = &self.geometry;
        g.kv_heads as u64 * self.block_size as u64 * self.dtype.row_bytes(g.head_dim)
    }

    /// Bytes of one block across all layers, K and V.
    pub fn block_bytes(&self) -> u64 {
        self.block_size as u64 * self.bytes_per_token()
    }

    /// Elements of one block in one layer's K (or V) pool: `[kv_heads][block_size][head_dim]`.
    pub fn block_elements_per_layer(&self) -> u64 {
        let g = &self.geometry;
        g.kv_heads as u64 * self.block_size as u64 * g.head_dim as u64
    }

    /// Blocks a budget buys: `floor(budget / block bytes)`.
    pub fn blocks_for_budget(&self, budget_bytes: u64) -> u32 {
        (budget_bytes / self.block_bytes()).min(u32::MAX as u64) as u32
    }

    /// Blocks needed to hold `tokens` tokens of one sequence.
    pub fn blocks_for_tokens(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.block_size as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_bytes_per_token_match_published_configs() {
        let small = CacheLayout {
            geometry: ModelGeometry::qwen2_5_0_5b(),
            block_size: 16,
            dtype: KvFormat::F16,
        };
        // 2 * 24 layers * 2 heads * 64 dims * 2 bytes
        assert_eq!(small.bytes_per_token(), 12_288);
        let big = CacheLayout {
            geometry: ModelGeometry::qwen2_5_7b(),
            block_size: 16,
            dtype: KvFormat::F16,
        };
        assert_eq!(big.bytes_per_token(), 57_344);
        assert_eq!(big.block_bytes(), 16 * 57_344);
    }

    #[test]
    fn validation_names_the_problem() {
        let bad = ModelGeometry::new("x", 2, 14, 4, 64);
        assert!(matches!(
            bad.validate(),
            Err(GeometryError::GroupMismatch { .. })
        ));
        let zero = ModelGeometry::new("x", 0, 4, 4, 64);
        assert_eq!(zero.validate(), Err(GeometryError::Zero("layers")));
        assert_eq!(
            ModelGeometry::new("x", 1, 4, 4, 72).validate(),
            Err(GeometryError::HeadDim(72))
        );
        assert!(ModelGeometry::qwen2_5_7b().validate().is_ok());
    }
}
