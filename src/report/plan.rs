//! Capacity planning from real KV geometry: how many requests of a given length a KV budget
//! holds at once, at the utilization thresholds the CUDA reference report alerts on, beside
//! the batch and concurrency tables that report recommends.
//!
//! Everything here is arithmetic on [`CacheLayout`]: a request holds whole blocks of
//! `block_size` tokens for its prompt plus its generated tokens (or, with a sliding window,
//! only the blocks its window spans), and a budget buys `floor(budget / block bytes)` blocks.
//! Quantized formats cost their real bytes per token, scales included. No GPU is involved;
//! [`super::plan_validate`] checks one boundary on the engine.

use serde::Serialize;

use crate::cache::{CacheLayout, KvFormat, ModelGeometry};
use crate::scenario::{BYTES_PER_GB, held_blocks};

/// The utilization thresholds a plan reports, in percent of the budget: the report's
/// "performance degradation" (60) and "critical" (80) thresholds, and the whole budget.
pub const THRESHOLDS_PCT: [u32; 3] = [60, 80, 100];

/// The report's "Batch Size Optimization" table: (sequence length, safe max batch,
/// recommended batch).
pub const REFERENCE_BATCH: [(u32, u64, u64); 6] = [
    (1024, 512, 256),
    (2048, 256, 128),
    (4096, 128, 64),
    (8192, 64, 32),
    (16384, 32, 16),
    (32768, 16, 8),
];

/// The report's "Concurrency Limits" table: (batch size, safe concurrency).
pub const REFERENCE_CONCURRENCY: [(u32, u64); 5] =
    [(32, 16), (64, 8), (128, 4), (256, 2), (512, 1)];

/// Sequence lengths a plan covers: the report's, 1K to 32K, capped at the model's context.
pub const PLAN_SEQUENCES: [u32; 6] = [1024, 2048, 4096, 8192, 16384, 32768];

/// Generated tokens per request when the user gives none: the longest generation the report's
/// scenarios use.
pub const DEFAULT_GENERATION: u32 = 512;

/// Sequence length of the concurrency table when the user gives none. The report does not say
/// which length its "32GB cache utilization" assumes; 4096 is its recommended configurations'
/// usual prompt length.
pub const DEFAULT_CONCURRENCY_SEQ: u32 = 4096;

/// What a plan is computed for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanInput {
    /// The model's KV geometry.
    pub geometry: ModelGeometry,
    /// The model's native context: the longest prompt the plan considers.
    pub max_context: u32,
    /// KV storage format.
    pub format: KvFormat,
    /// Tokens per block.
    pub block_size: u32,
    /// Sliding-window attention over this many newest keys, if any.
    pub window: Option<u32>,
    /// Generated tokens per request, held on top of the prompt.
    pub generation: u32,
    /// The KV budget in bytes.
    pub budget_bytes: u64,
    /// Prompt length of the concurrency table.
    pub concurrency_seq: u32,
}

/// The largest count that fits under one threshold, and the budget share it really uses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// The threshold, percent of the budget.
    pub threshold_pct: u32,
    /// Largest count (requests, or streams) whose blocks stay within the threshold.
    pub count: u64,
    /// Blocks those requests hold x block bytes / budget, in percent.
    pub use_pct: f64,
}

/// One sequence length of the batch table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchRow {
    /// Prompt tokens per request.
    pub seq_len: u32,
    /// Blocks one finished request holds (prompt plus generation, or its window's).
    pub blocks_per_request: u64,
    /// Those blocks in bytes.
    pub bytes_per_request: u64,
    /// Largest batch under 60, 80 and 100% of the budget, in [`THRESHOLDS_PCT`] order.
    pub fits: Vec<Fit>,
    /// The report's (safe max, recommended) batch at this length, if it has one.
    pub reference: Option<(u64, u64)>,
}

impl BatchRow {
    /// The fit under `threshold_pct`, if the plan computed that threshold.
    pub fn fit(&self, threshold_pct: u32) -> Option<Fit> {
        self.fits
            .iter()
            .copied()
            .find(|f| f.threshold_pct == threshold_pct)
    }

    /// pagekv's 100% batch over the report's safe max batch.
    pub fn safe_ratio(&self) -> Option<f64> {
        let (safe, _) = self.reference?;
        Some(self.fit(100)?.count as f64 / safe as f64)
    }

    /// pagekv's 60% batch over the report's recommended batch.
    pub fn recommended_ratio(&self) -> Option<f64> {
        let (_, recommended) = self.reference?;
        Some(self.fit(60)?.count as f64 / recommended as f64)
    }
}

/// One batch size of the concurrency table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConcurrencyRow {
    /// Requests per stream.
    pub batch: u32,
    /// Largest number of streams of `batch` requests under 60, 80 and 100% of the budget.
    pub fits: Vec<Fit>,
    /// The report's safe concurrency for this batch.
    pub reference: u64,
    /// What the report's concurrency would really hold: batch x reference streams of this
    /// plan's requests, in bytes (the report calls it "32GB cache utilization").
    pub reference_bytes: u64,
}

impl ConcurrencyRow {
    /// The fit under `threshold_pct`, if the plan computed that threshold.
    pub fn fit(&self, threshold_pct: u32) -> Option<Fit> {
        self.fits
            .iter()
            .copied()
            .find(|f| f.threshold_pct == threshold_pct)
    }

    /// pagekv's 100% concurrency over the report's.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.fit(100)?.count as f64 / self.reference as f64)
    }
}

/// A workload to place on a plan: one of the production configurations, say.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarkerInput {
    /// Short name, e.g. `A Low Latency`.
    pub label: String,
    /// Requests per stream.
    pub batch: u32,
    /// Prompt tokens per request.
    pub seq_len: u32,
    /// Streams.
    pub concurrency: u32,
    /// Generated tokens per request.
    pub generation: u32,
    /// The budget the workload was sized for, when it names one (the report sizes its
    /// configuration D for a 40 GB card).
    pub budget_bytes: Option<u64>,
}

/// Where a workload lands on a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Marker {
    /// The workload placed.
    pub input: MarkerInput,
    /// The batch table's row at the workload's sequence length, if the plan has one.
    pub row: Option<u32>,
    /// Its KV (whole blocks, at this plan's format and block size) as a % of the budget.
    pub use_pct: f64,
    /// The smallest threshold it stays within (60, 80 or 100), or `None` past the budget.
    pub within_pct: Option<u32>,
    /// The same blocks as a % of the workload's own budget, when it names one.
    pub own_budget_use_pct: Option<f64>,
}

/// A complete plan for one model, format and budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// What it was computed for.
    pub input: PlanInput,
    /// Bytes one token costs (all layers, K and V, scales included).
    pub bytes_per_token: u64,
    /// Bytes one block costs.
    pub block_bytes: u64,
    /// Blocks the budget buys.
    pub pool_blocks: u64,
    /// Largest batch per sequence length.
    pub batch: Vec<BatchRow>,
    /// Largest concurrency per batch size at [`PlanInput::concurrency_seq`].
    pub concurrency: Vec<ConcurrencyRow>,
    /// Where the given workloads land.
    pub markers: Vec<Marker>,
}

impl PlanInput {
    /// The paged layout the plan sizes.
    pub fn layout(&self) -> CacheLayout {
        CacheLayout {
            geometry: self.geometry.clone(),
            block_size: self.block_size,
            dtype: self.format,
        }
    }

    /// Blocks one finished request with a `seq_len`-token prompt holds.
    pub fn blocks_per_request(&self, seq_len: u32) -> u64 {
        let tokens = seq_len as u64 + self.generation as u64;
        held_blocks(&self.layout(), tokens, self.window)
    }

    /// Blocks the budget buys.
    pub fn pool_blocks(&self) -> u64 {
        self.layout().blocks_for_budget(self.budget_bytes) as u64
    }

    /// Blocks allowed under `threshold_pct` of the budget.
    fn blocks_under(&self, threshold_pct: u32) -> u64 {
        let bytes = self.budget_bytes as u128 * threshold_pct as u128 / 100;
        (bytes / self.layout().block_bytes() as u128) as u64
    }

    /// `blocks` blocks as a percentage of the budget.
    pub fn use_pct(&self, blocks: u64) -> f64 {
        100.0 * blocks as f64 * self.layout().block_bytes() as f64 / self.budget_bytes as f64
    }

    /// The largest count of units of `unit_blocks` blocks under each threshold.
    pub fn fits(&self, unit_blocks: u64) -> Vec<Fit> {
        THRESHOLDS_PCT
            .into_iter()
            .map(|threshold_pct| {
                let count = self.blocks_under(threshold_pct) / unit_blocks.max(1);
                Fit {
                    threshold_pct,
                    count,
                    use_pct: self.use_pct(count * unit_blocks),
                }
            })
            .collect()
    }

    /// Sequence lengths of the batch table: [`PLAN_SEQUENCES`] up to the model's context.
    pub fn sequences(&self) -> Vec<u32> {
        PLAN_SEQUENCES
            .into_iter()
            .filter(|&s| s <= self.max_context)
            .collect()
    }

    /// Places a workload: its blocks (its own generation length, this plan's layout and
    /// window) against this plan's budget.
    pub fn mark(&self, input: &MarkerInput) -> Marker {
        let tokens = input.seq_len as u64 + input.generation as u64;
        let blocks = held_blocks(&self.layout(), tokens, self.window)
            * input.batch as u64
            * input.concurrency as u64;
        let bytes = blocks as f64 * self.layout().block_bytes() as f64;
        let use_pct = self.use_pct(blocks);
        let within_pct = THRESHOLDS_PCT
            .into_iter()
            .find(|&t| blocks <= self.blocks_under(t));
        Marker {
            input: input.clone(),
            row: self.sequences().into_iter().find(|&s| s == input.seq_len),
            use_pct,
            within_pct,
            own_budget_use_pct: input.budget_bytes.map(|b| 100.0 * bytes / b as f64),
        }
    }

    /// Computes the batch and concurrency tables and places `markers`.
    pub fn plan(&self, markers: &[MarkerInput]) -> Plan {
        let layout = self.layout();
        let reference_batch = |seq: u32| {
            REFERENCE_BATCH
                .iter()
                .find(|r| r.0 == seq)
                .map(|&(_, safe, rec)| (safe, rec))
        };
        let batch = self
            .sequences()
            .into_iter()
            .map(|seq_len| {
                let blocks = self.blocks_per_request(seq_len);
                BatchRow {
                    seq_len,
                    blocks_per_request: blocks,
                    bytes_per_request: blocks * layout.block_bytes(),
                    fits: self.fits(blocks),
                    reference: reference_batch(seq_len),
                }
            })
            .collect();
        let per_request = self.blocks_per_request(self.concurrency_seq);
        let concurrency = REFERENCE_CONCURRENCY
            .into_iter()
            .map(|(batch, reference)| {
                let stream = per_request * batch as u64;
                ConcurrencyRow {
                    batch,
                    fits: self.fits(stream),
                    reference,
                    reference_bytes: stream * reference * layout.block_bytes(),
                }
            })
            .collect();
        Plan {
            input: self.clone(),
            bytes_per_token: layout.bytes_per_token(),
            block_bytes: layout.block_bytes(),
            pool_blocks: self.pool_blocks(),
            batch,
            concurrency,
            markers: markers.iter().map(|m| self.mark(m)).collect(),
        }
    }
}

impl Plan {
    /// The budget in GiB, for headers.
    pub fn budget_gib(&self) -> f64 {
        self.input.budget_bytes as f64 / BYTES_PER_GB as f64
    }

    /// The row for `seq_len`, if the plan has one.
    pub fn row(&self, seq_len: u32) -> Option<&BatchRow> {
        self.batch.iter().find(|r| r.seq_len == seq_len)
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
