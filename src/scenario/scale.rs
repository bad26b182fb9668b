//! Scale presets: shrinking a scenario so it runs in bounded time without changing demand %.
//!
//! Full-size scenarios need up to 1.3 TB of KV and hours of attention. A scale divides tokens
//! per sequence by a power of two, requests by a power of two, and runs a subset of layers; the
//! budget is divided by the same product, so demand / budget is what the full scenario has.
//! Results at the same preset are comparable across devices because the factors are a pure
//! function of the scenario and the preset.
//!
//! Rounding: each scaled count is `ceil(count / factor)` (at least 1 for prompt, generation,
//! streams and requests per stream), and the budget is `floor(budget x layers_run / (layers x
//! token factor x request factor))`. When the factors divide the counts evenly (all 11 report
//! scenarios: their sizes are powers of two) the only error is the budget's floor, below one
//! byte in the budget; otherwise a ceil can raise scaled demand by up to one token per count.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::LoadedScenario;
use crate::cache::{CacheLayout, ModelGeometry};

/// The preset table: (name, max_requests, max_tokens_per_sequence, layers_run, min_resident).
/// Retune here; nothing else hard-codes these numbers. `full` runs the scenario as stated.
/// `long` keeps sequences about 10x longer than `default` (one layer instead of two, fewer
/// requests), so a 2048-token sliding window still spans 4+ blocks of 16 after scaling;
/// `pagekv whatif` uses it.
const PRESETS: [(&str, u32, u32, u32, u32); 4] = [
    ("ci", 16, 128, 1, 2),
    ("default", 32, 128, 2, 4),
    ("long", 32, 1536, 1, 2),
    ("full", u32::MAX, u32::MAX, u32::MAX, 1),
];

/// Caps that fix how far a scenario is scaled down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalePreset {
    /// Name printed with every result (`ci`, `default`, `long`, `full`).
    pub name: String,
    /// Most requests a scaled scenario keeps, unless fewer would leave a pool that cannot hold
    /// `min_resident` finished requests at once (see [`ScalePreset::factors`]).
    pub max_requests: u32,
    /// Most tokens (prompt + generation) a scaled request keeps.
    pub max_tokens_per_sequence: u32,
    /// Most layers run (capped at the model's layer count).
    pub layers_run: u32,
    /// Finished requests the scaled pool must still hold at once (when the full-size pool
    /// holds that many). Dividing requests divides the budget too, so without this floor an
    /// overcommitted scenario scaled far enough gets a pool smaller than one request, and
    /// preemption, queueing and prefix reuse would never be exercised.
    pub min_resident: u32,
}

/// The divisors one scenario gets under one preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleFactors {
    /// Prompt, generation and shared-prefix tokens are divided by this power of two.
    pub tokens: u32,
    /// Requests are divided by this power of two (batch size first, then concurrency).
    pub requests: u32,
    /// (layers run, model layers).
    pub layers: (u32, u32),
}

/// A scenario after scaling: the counts the engine actually runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaledScenario {
    /// Scenario id (the report's number).
    pub id: u32,
    /// Scenario name.
    pub name: String,
    /// Preset name, stated with every result.
    pub preset: String,
    /// The layout to allocate: the model's geometry with `layers` set to `layers_run`, plus the
    /// scenario's block size and dtype. Its bytes per token are what the scaled budget buys.
    pub layout: CacheLayout,
    /// Prompt tokens per request.
    pub prompt_tokens: u32,
    /// Decode steps per request (at least 1).
    pub generation_tokens: u32,
    /// Shared prompt prefix per stream (at most `prompt_tokens`).
    pub shared_prefix_tokens: u32,
    /// Independent request streams (scaled concurrency).
    pub streams: u32,
    /// Requests per stream (scaled batch size).
    pub requests_per_stream: u32,
    /// Layers run, the same as `layout.geometry.layers`.
    pub layers_run: u32,
    /// KV budget in bytes for the run layout.
    pub budget_bytes: u64,
    /// The divisors applied.
    pub factors: ScaleFactors,
    /// Sliding window in scaled tokens (the scenario's, divided like every token count and
    /// rounded up), or `None` for full attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<u32>,
    /// The model's context length in scaled tokens: what a contiguous cache would reserve
    /// per request (for the waste comparison).
    #[serde(default)]
    pub max_context: u32,
}

impl ScalePreset {
    /// The preset with this name (`ci`, `default`, `long`, `full`).
    pub fn by_name(name: &str) -> Option<Self> {
        Self::all().into_iter().find(|p| p.name == name)
    }

    /// Every preset, smallest first.
    pub fn all() -> Vec<Self> {
        PRESETS
            .iter()
            .map(
                |&(name, max_requests, max_tokens, layers_run, min_resident)| Self {
                    name: name.to_string(),
                    max_requests,
                    max_tokens_per_sequence: max_tokens,
                    layers_run,
                    min_resident,
                },
            )
            .collect()
    }

    /// The factors for `scenario` under a full-size budget of `full_budget_bytes` (the same
    /// whatever its KV format and sliding window): the
    /// smallest power of two that brings tokens per request under the cap, but never past the
    /// generation length (generation stays at least one whole token, so the prompt:generation
    /// ratio is kept exactly where both are powers of two);
    /// the smallest power of two that brings requests under the cap, but never so large that
    /// the scaled pool holds fewer than `min_resident` finished requests (or fewer than the
    /// full pool holds, when that is less); and the layers capped at the model's.
    pub fn factors(&self, scenario: &LoadedScenario, full_budget_bytes: u64) -> ScaleFactors {
        let s = &scenario.scenario;
        let (prompt, generation) = (s.sequence_length, s.generation_length);
        let tokens = smallest_divisor(|d| {
            let total = prompt.div_ceil(d) as u64 + generation.div_ceil(d) as u64;
            // Never divide generation below one token: a larger divisor would only round.
            let floor = total <= 2 || d.saturating_mul(2) > generation;
            (total <= self.max_tokens_per_sequence as u64, floor)
        });
        let total_layers = scenario.geometry.layers;
        let layers = (self.layers_run.clamp(1, total_layers), total_layers);
        // The factors depend on the workload, not on how its KV is stored: resident counts
        // are those of f16 with full attention, so a format or window remedy runs exactly the
        // same scaled requests as the baseline it is compared with.
        let mut workload = scenario.clone();
        workload.scenario.cache.kv_dtype = crate::cache::KvFormat::F16;
        workload.scenario.cache.sliding_window = None;
        let resident = |r: u32| {
            let run = ScaleRun::new(&workload, tokens, r, layers, full_budget_bytes);
            run.sequences_that_fit()
        };
        let floor = resident(1).min(self.min_resident as u64);
        let requests = smallest_divisor(|r| {
            let (per_stream, streams) = split_requests(s.batch_size, s.concurrency, r);
            let total = per_stream as u64 * streams as u64;
            let next_too_small = resident(r.saturating_mul(2)) < floor;
            (
                total <= self.max_requests as u64,
                total <= 1 || next_too_small,
            )
        });
        ScaleFactors {
            tokens,
            requests,
            layers,
        }
    }
}

/// The counts of one scenario under given divisors; the single place the scaled budget and
/// sizes are computed, shared by [`ScalePreset::factors`] (to test a divisor) and
/// [`LoadedScenario::scale_with_budget`].
struct ScaleRun {
    layout: CacheLayout,
    prompt_tokens: u32,
    generation_tokens: u32,
    requests_per_stream: u32,
    streams: u32,
    budget_bytes: u64,
    sliding_window: Option<u32>,
}

impl ScaleRun {
    fn new(
        scenario: &LoadedScenario,
        tokens: u32,
        requests: u32,
        (layers_run, layers): (u32, u32),
        full_budget_bytes: u64,
    ) -> Self {
        let s = &scenario.scenario;
        let g = &scenario.geometry;
        let (requests_per_stream, streams) = split_requests(s.batch_size, s.concurrency, requests);
        let budget = full_budget_bytes as u128 * layers_run as u128
            / (layers as u128 * tokens as u128 * requests as u128);
        Self {
            layout: CacheLayout {
                geometry: ModelGeometry::new(
                    &g.name, layers_run, g.q_heads, g.kv_heads, g.head_dim,
                ),
                block_size: s.cache.block_size,
                dtype: s.cache.kv_dtype,
            },
            prompt_tokens: s.sequence_length.div_ceil(tokens),
            generation_tokens: s.generation_length.div_ceil(tokens).max(1),
            requests_per_stream,
            streams,
            budget_bytes: budget as u64,
            sliding_window: s.cache.sliding_window.map(|w| w.div_ceil(tokens)),
        }
    }

    fn sequences_that_fit(&self) -> u64 {
        let tokens = self.prompt_tokens as u64 + self.generation_tokens as u64;
        let per_request = held_blocks(&self.layout, tokens, self.sliding_window).max(1);
        self.layout.blocks_for_budget(self.budget_bytes) as u64 / per_request
    }
}

/// Blocks a finished request of `tokens` tokens holds: all of its blocks, or under a sliding
/// window those its window's keys span (a window starting mid-block spans one more). Shared
/// with capacity planning so a plan and a scaled run count blocks the same way.
pub fn held_blocks(layout: &CacheLayout, tokens: u64, window: Option<u32>) -> u64 {
    let all = layout.blocks_for_tokens(tokens);
    window.map_or(all, |w| {
        let bs = layout.block_size as u64;
        all.min((w as u64).div_ceil(bs) + 1)
    })
}

/// Doubles a divisor from 1 until `check(d)` says it fits (first) or cannot shrink further
/// (second), or doubling would overflow.
fn smallest_divisor(check: impl Fn(u32) -> (bool, bool)) -> u32 {
    let mut d = 1u32;
    loop {
        let (fits, floor) = check(d);
        match d.checked_mul(2) {
            Some(next) if !fits && !floor => d = next,
            _ => return d,
        }
    }
}

/// Requests per stream and streams after dividing requests by `r`: batch size is divided
/// first, keeping every stream (streams are what share prefixes and contend for the pool);
/// once batch size reaches 1 the rest of the factor divides concurrency.
fn split_requests(batch: u32, concurrency: u32, r: u32) -> (u32, u32) {
    if r <= batch {
        (batch.div_ceil(r), concurrency)
    } else {
        let requests = batch as u64 * concurrency as u64;
        (1, requests.div_ceil(r as u64).max(1) as u32)
    }
}

impl ScaleFactors {
    /// True when nothing is scaled: the run is the scenario as stated.
    pub fn is_full(&self) -> bool {
        self.tokens == 1 && self.requests == 1 && self.layers.0 == self.layers.1
    }
}

impl fmt::Display for ScaleFactors {
    /// E.g. `tokens/8 requests/2 layers 1/24`, the form printed beside every result.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tokens/{} requests/{} layers {}/{}",
            self.tokens, self.requests, self.layers.0, self.layers.1
        )
    }
}

impl LoadedScenario {
    /// Scales the scenario with the reference budget (the report's 24 GB card).
    pub fn scale(&self, preset: &ScalePreset) -> ScaledScenario {
        self.scale_with_budget(preset, self.budget_bytes())
    }

    /// Scales the scenario for a full-size budget of `full_budget_bytes` (e.g. a user's own
    /// card): the budget is divided by the same product as the demand.
    pub fn scale_with_budget(
        &self,
        preset: &ScalePreset,
        full_budget_bytes: u64,
    ) -> ScaledScenario {
        let s = &self.scenario;
        let factors = preset.factors(self, full_budget_bytes);
        let run = ScaleRun::new(
            self,
            factors.tokens,
            factors.requests,
            factors.layers,
            full_budget_bytes,
        );
        ScaledScenario {
            id: self.id,
            name: s.name.clone(),
            preset: preset.name.clone(),
            layers_run: run.layout.geometry.layers,
            layout: run.layout,
            prompt_tokens: run.prompt_tokens,
            generation_tokens: run.generation_tokens,
            shared_prefix_tokens: s
                .shared_prefix_tokens
                .div_ceil(factors.tokens)
                .min(run.prompt_tokens),
            streams: run.streams,
            requests_per_stream: run.requests_per_stream,
            budget_bytes: run.budget_bytes,
            factors,
            sliding_window: run.sliding_window,
            max_context: self.max_context.div_ceil(factors.tokens),
        }
    }
}

impl ScaledScenario {
    /// Requests the scaled run completes: streams x requests per stream.
    pub fn requests(&self) -> u64 {
        self.streams as u64 * self.requests_per_stream as u64
    }

    /// Tokens one finished scaled request holds.
    pub fn tokens_per_request(&self) -> u64 {
        self.prompt_tokens as u64 + self.generation_tokens as u64
    }

    /// Tokens one finished scaled request keeps cached: all, or its sliding window's worth.
    pub fn held_tokens_per_request(&self) -> u64 {
        let all = self.tokens_per_request();
        self.sliding_window.map_or(all, |w| all.min(w as u64))
    }

    /// Scaled demand: requests x held tokens x bytes per token of the run layout.
    pub fn demand_bytes(&self) -> u64 {
        let bytes = self.requests() as u128
            * self.held_tokens_per_request() as u128
            * self.layout.bytes_per_token() as u128;
        bytes.min(u64::MAX as u128) as u64
    }

    /// Scaled demand over scaled budget, in percent: the full scenario's demand % up to the
    /// rounding described in the module docs.
    pub fn demand_pct(&self) -> f64 {
        100.0 * self.demand_bytes() as f64 / self.budget_bytes as f64
    }

    /// Blocks the scaled budget buys for the run layout.
    pub fn num_blocks(&self) -> u32 {
        self.layout.blocks_for_budget(self.budget_bytes)
    }

    /// Finished requests the pool can hold at once. Presets keep this at least at their
    /// `min_resident` where the full-size pool allows; a user budget (`--budget`) may still
    /// make it zero, and the engine then reports every request as unservable rather than hang.
    pub fn sequences_that_fit(&self) -> u64 {
        let per_request = held_blocks(&self.layout, self.tokens_per_request(), self.sliding_window);
        self.num_blocks() as u64 / per_request.max(1)
    }
}
