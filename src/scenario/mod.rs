//! Scenario files, model presets, reference numbers and scale presets.
//!
//! A scenario is one row of the CUDA reference report (`scenarios/NN-slug.toml`): the workload
//! (model, batch size, prompt and generation lengths, concurrency, shared prefix), the paging
//! choices, and the numbers the report measured, so every run can print its measurements next
//! to them. Model geometry comes from `scenarios/models.toml`. Full-size scenarios are far too
//! big to run everywhere, so a [`ScalePreset`] shrinks them by stated factors that keep demand % fixed.

mod budget;
mod error;
mod load;
mod presets;
mod scale;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use budget::Budget;
pub use error::{Problem, ScenarioError};
pub use load::{load_dir, load_dir_with, load_scenario};
pub use presets::{ModelPreset, ModelPresets};
pub use scale::{ScaleFactors, ScalePreset, ScaledScenario, held_blocks};

use crate::cache::{CacheLayout, KvFormat, ModelGeometry};

/// Bytes in the report's "GB". The report's card is a "24 GB" card; such cards (RTX 3090/4090,
/// A10/L4-class) have 24 GiB of memory, so a budget of `budget_gb` means `budget_gb` x 2^30
/// bytes.
pub const BYTES_PER_GB: u64 = 1 << 30;

/// One stress scenario as its file states it, after validation (all sizes >= 1, prefix within
/// the prompt, model known, cache options supported).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Human-readable title, as the report names the scenario.
    pub name: String,
    /// Key of a preset in `models.toml`.
    pub model: String,
    /// Requests per stream.
    pub batch_size: u32,
    /// Prompt tokens per request.
    pub sequence_length: u32,
    /// Independent request streams sharing one KV pool.
    pub concurrency: u32,
    /// Decode steps per request.
    pub generation_length: u32,
    /// Prompt tokens every request of a stream shares (a system prompt), so prefix caching
    /// has something real to hit; 0 means no sharing.
    pub shared_prefix_tokens: u32,
    /// Paging choices; defaults when the file has no `[cache]` table.
    #[serde(default)]
    pub cache: CacheOptions,
    /// What the CUDA report measured for this scenario.
    pub reference: ReferenceResult,
}

/// Paging choices a scenario may override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheOptions {
    /// Tokens per block; one of [`crate::cache::SUPPORTED_BLOCK_SIZES`].
    pub block_size: u32,
    /// Storage dtype of K and V.
    pub kv_dtype: KvFormat,
    /// Sliding-window attention: each query attends to at most this many newest keys, and a
    /// request holds only the blocks its window still sees. At most the model's context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<u32>,
}

impl Default for CacheOptions {
    /// 16 tokens per block (vLLM's default), f16 storage (how these models are served) and
    /// full attention.
    fn default() -> Self {
        Self {
            block_size: 16,
            kv_dtype: KvFormat::F16,
            sliding_window: None,
        }
    }
}

/// The report's verdict for a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReferenceStatus {
    /// "✓ PASS".
    Pass,
    /// "✗ FAIL".
    Fail,
}

/// The numbers the CUDA report printed for a scenario, copied verbatim so runs can be compared
/// with them. They are claims, not ground truth: e.g. its "utilization" is demand over budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceResult {
    /// "KV Cache Peak" in GB.
    pub kv_peak_gb: f64,
    /// "utilization" in percent; can exceed 100 (it is demand, not residency).
    pub utilization_pct: f64,
    /// "Throughput" in requests per second.
    pub throughput_req_s: f64,
    /// "Cache Hit Rate" in percent.
    pub hit_rate_pct: f64,
    /// "Cache Evictions" in percent.
    pub evictions_pct: f64,
    /// PASS or FAIL.
    pub status: ReferenceStatus,
    /// The report's parenthetical after the status (e.g. "exceeds GPU memory"), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_note: Option<String>,
    /// Memory of the report's card in GB (see [`BYTES_PER_GB`]): the full-size KV budget.
    pub budget_gb: f64,
}

impl ReferenceResult {
    /// The report's card memory in bytes: the budget a full-size run gets.
    pub fn budget_bytes(&self) -> u64 {
        (self.budget_gb * BYTES_PER_GB as f64).round() as u64
    }
}

impl Scenario {
    /// Requests in the scenario: batch_size x concurrency.
    pub fn requests(&self) -> u64 {
        self.batch_size as u64 * self.concurrency as u64
    }

    /// Tokens one finished request holds: prompt plus generation.
    pub fn tokens_per_request(&self) -> u64 {
        self.sequence_length as u64 + self.generation_length as u64
    }

    /// Tokens one finished request keeps cached: all of them, or with a sliding window the
    /// window's worth.
    pub fn held_tokens_per_request(&self) -> u64 {
        let all = self.tokens_per_request();
        self.cache.sliding_window.map_or(all, |w| all.min(w as u64))
    }

    /// Bytes the workload would hold if every request were resident and finished at once
    /// (the demand; with a sliding window, each request's window). Saturates at `u64::MAX`,
    /// far above any real scenario (scenario 11 is about 3.4e12).
    pub fn demand_bytes(&self, layout: &CacheLayout) -> u64 {
        let bytes = self.requests() as u128
            * self.held_tokens_per_request() as u128
            * layout.bytes_per_token() as u128;
        bytes.min(u64::MAX as u128) as u64
    }

    /// Demand as a percentage of `budget_bytes`; above 100 means the pool is overcommitted.
    pub fn demand_pct(&self, layout: &CacheLayout, budget_bytes: u64) -> f64 {
        100.0 * self.demand_bytes(layout) as f64 / budget_bytes as f64
    }
}

/// A validated scenario with what the file name and model preset add to it.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedScenario {
    /// The `NN` of `NN-slug.toml`: the report's scenario number.
    pub id: u32,
    /// Where it was loaded from, for messages and results.
    pub path: PathBuf,
    /// The file's contents.
    pub scenario: Scenario,
    /// The model preset's geometry (validated).
    pub geometry: ModelGeometry,
    /// The model's native context length (the preset's `max_context`): bounds prompts and
    /// sliding windows, and is what a contiguous cache reserves per request.
    pub max_context: u32,
}

impl LoadedScenario {
    /// The full-size cache layout: the model's geometry with the scenario's paging choices.
    pub fn layout(&self) -> CacheLayout {
        CacheLayout {
            geometry: self.geometry.clone(),
            block_size: self.scenario.cache.block_size,
            dtype: self.scenario.cache.kv_dtype,
        }
    }

    /// The full-size KV budget: the reference card's memory.
    pub fn budget_bytes(&self) -> u64 {
        self.scenario.reference.budget_bytes()
    }

    /// Full-size demand in bytes (see [`Scenario::demand_bytes`]).
    pub fn demand_bytes(&self) -> u64 {
        self.scenario.demand_bytes(&self.layout())
    }

    /// Full-size demand as a percentage of the reference budget.
    pub fn demand_pct(&self) -> f64 {
        self.scenario
            .demand_pct(&self.layout(), self.budget_bytes())
    }

    /// Runs the scenario with a sliding window of `window` keys (`None`: full attention),
    /// refusing a window of 0 or one longer than the model's context.
    pub fn set_sliding_window(&mut self, window: Option<u32>) -> Result<(), Problem> {
        if let Some(w) = window {
            load::check_window(w, &self.scenario.model, self.max_context)?;
        }
        self.scenario.cache.sliding_window = window;
        Ok(())
    }

    /// Short label for tables and logs, e.g. `04 Very Large Sequence, Extreme Stress`.
    pub fn label(&self) -> String {
        format!("{:02} {}", self.id, self.scenario.name)
    }
}
