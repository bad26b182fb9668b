//! Checks one row of a plan on the GPU: the engine runs the row's 100% boundary batch, scaled,
//! and one request more. The boundary should complete without preemption with its peak KV
//! use where the plan put it; the point past it should have to preempt or queue.
//!
//! Scaling divides tokens and requests by powers of two and the budget by the same product
//! (see [`crate::scenario::ScalePreset`]), so demand % is kept. Blocks do not scale, though: a
//! request's tokens divided too far no longer fill whole blocks the way the full-size request
//! does. So the token divisor is lowered until a scaled request holds exactly the full-size
//! blocks divided by it, and the scaled boundary is computed by the same arithmetic as the plan
//! ([`PlanInput::fits`]) on what actually runs.

use serde::Serialize;

use super::plan::PlanInput;
use crate::cache::{CacheLayout, ModelGeometry};
use crate::engine::alerts::AlertRules;
use crate::engine::{EngineError, Measurement, RunConfig, run_scenario_with};
use crate::gpu::GpuContext;
use crate::scenario::{ScaleFactors, ScalePreset, ScaledScenario};

/// Which of the two validation points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PointKind {
    /// The largest batch the plan says fits 100% of the budget.
    Boundary,
    /// One request more.
    Past,
}

/// One point as planned and (once run) as measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Boundary or past it.
    pub kind: PointKind,
    /// Full-size batch this point stands for (scaled requests x the request divisor).
    pub full_batch: u64,
    /// Full-size KV of that batch as % of the full budget, by the plan.
    pub full_use_pct: f64,
    /// The scaled scenario the engine runs.
    pub scaled: ScaledScenario,
    /// The scaled batch's KV as % of the scaled budget, by the plan's arithmetic.
    pub planned_use_pct: f64,
    /// What the run measured, if it ran.
    pub measured: Option<Measured>,
    /// Why the point contradicts the plan, one sentence each (empty: it agrees).
    pub contradictions: Vec<String>,
}

/// The figures a point is judged on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measured {
    /// Most blocks in use x block bytes / budget, percent.
    pub peak_use_pct: f64,
    /// Preemptions.
    pub preemptions: u64,
    /// Most requests waiting for admission after any step.
    pub max_waiting: u32,
    /// Requests completed.
    pub completed: u64,
    /// Requests run.
    pub requests: u64,
}

impl Measured {
    /// The figures of a measurement.
    pub fn of(m: &Measurement) -> Self {
        Self {
            peak_use_pct: m.peak_use_pct,
            preemptions: m.preemptions,
            max_waiting: m
                .series
                .samples
                .iter()
                .map(|s| s.waiting)
                .max()
                .unwrap_or(0),
            completed: m.completed,
            requests: m.requests,
        }
    }
}

/// The two points of one row, ready to run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Validation {
    /// Prompt length of the row.
    pub seq_len: u32,
    /// Scale preset name.
    pub preset: String,
    /// The divisors the points run with.
    pub factors: ScaleFactors,
    /// Boundary, then past it.
    pub points: Vec<Point>,
    /// The adapter the points ran on, once they ran.
    pub adapter: Option<String>,
}

/// Why a row cannot be validated.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Not one request of the row fits the budget, so there is no boundary to run.
    #[error("not one request of {seq_len} + {generation} tokens fits the budget")]
    NothingFits {
        /// Prompt tokens.
        seq_len: u32,
        /// Generated tokens.
        generation: u32,
    },
    /// The engine stopped with an error.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The largest power of two at most `start` that divides the prompt and the generation and
/// leaves a scaled request holding exactly its full-size blocks divided by it (1 always does).
fn aligned_token_divisor(start: u32, input: &PlanInput, seq_len: u32) -> u32 {
    let layout = input.layout();
    let full = layout.blocks_for_tokens(seq_len as u64 + input.generation as u64);
    let mut t = start.max(1);
    while t > 1 {
        let divides = seq_len.is_multiple_of(t) && input.generation.is_multiple_of(t);
        let tokens = (seq_len / t + input.generation / t) as u64;
        if divides && layout.blocks_for_tokens(tokens) * t as u64 == full {
            break;
        }
        t /= 2;
    }
    t
}

/// Builds both points of the row at `seq_len`, scaled with `preset`.
pub fn points(
    input: &PlanInput,
    model_key: &str,
    seq_len: u32,
    preset: &ScalePreset,
) -> Result<Validation, ValidateError> {
    let boundary = input.pool_blocks() / input.blocks_per_request(seq_len).max(1);
    if boundary == 0 {
        return Err(ValidateError::NothingFits {
            seq_len,
            generation: input.generation,
        });
    }
    let generation = input.generation;
    // The preset's divisors for the boundary as a scenario of one stream.
    let loaded = crate::scenario::LoadedScenario {
        id: 0,
        path: "plan".into(),
        scenario: crate::scenario::Scenario {
            name: format!("plan row {seq_len}"),
            model: model_key.to_string(),
            batch_size: u32::try_from(boundary).unwrap_or(u32::MAX),
            sequence_length: seq_len,
            concurrency: 1,
            generation_length: generation,
            shared_prefix_tokens: 0,
            cache: crate::scenario::CacheOptions {
                block_size: input.block_size,
                kv_dtype: input.format,
                sliding_window: input.window,
            },
            reference: crate::scenario::ReferenceResult {
                kv_peak_gb: 0.0,
                utilization_pct: 0.0,
                throughput_req_s: 0.0,
                hit_rate_pct: 0.0,
                evictions_pct: 0.0,
                status: crate::scenario::ReferenceStatus::Pass,
                status_note: None,
                budget_gb: input.budget_bytes as f64 / crate::scenario::BYTES_PER_GB as f64,
            },
        },
        geometry: input.geometry.clone(),
        max_context: input.max_context,
    };
    let base = loaded.scale_with_budget(preset, input.budget_bytes);
    let tokens = aligned_token_divisor(base.factors.tokens, input, seq_len);
    let factors = ScaleFactors {
        tokens,
        ..base.factors
    };
    let (layers_run, layers) = factors.layers;
    let g = &input.geometry;
    let layout = CacheLayout {
        geometry: ModelGeometry::new(&g.name, layers_run, g.q_heads, g.kv_heads, g.head_dim),
        block_size: input.block_size,
        dtype: input.format,
    };
    let budget = input.budget_bytes as u128 * layers_run as u128
        / (layers as u128 * tokens as u128 * factors.requests as u128);
    let scaled_input = PlanInput {
        geometry: layout.geometry.clone(),
        max_context: input.max_context.div_ceil(tokens),
        generation: generation.div_ceil(tokens).max(1),
        window: input.window.map(|w| w.div_ceil(tokens)),
        budget_bytes: budget as u64,
        ..input.clone()
    };
    let prompt = seq_len.div_ceil(tokens);
    let per_request = scaled_input.blocks_per_request(prompt);
    let fit = (scaled_input.pool_blocks() / per_request.max(1)).max(1);
    let full_per_request = input.blocks_per_request(seq_len);
    let make = |kind: PointKind, requests: u64| {
        let scaled = ScaledScenario {
            id: 0,
            name: format!("plan row {seq_len}, {kind:?}"),
            preset: preset.name.clone(),
            layout: layout.clone(),
            prompt_tokens: prompt,
            generation_tokens: scaled_input.generation,
            shared_prefix_tokens: 0,
            streams: 1,
            requests_per_stream: u32::try_from(requests).unwrap_or(u32::MAX),
            layers_run,
            budget_bytes: scaled_input.budget_bytes,
            factors,
            sliding_window: scaled_input.window,
            max_context: scaled_input.max_context,
        };
        let full_batch = requests * factors.requests as u64;
        Point {
            kind,
            full_batch,
            full_use_pct: input.use_pct(full_batch * full_per_request),
            planned_use_pct: scaled_input.use_pct(requests * per_request),
            scaled,
            measured: None,
            contradictions: Vec::new(),
        }
    };
    Ok(Validation {
        seq_len,
        preset: preset.name.clone(),
        factors,
        points: vec![
            make(PointKind::Boundary, fit),
            make(PointKind::Past, fit + 1),
        ],
        adapter: None,
    })
}

/// The engine settings a validation runs with: every request prefilled in the first step and
/// running at once, so the only limit on residency is the KV pool the plan sizes.
pub fn engine_config(validation: &Validation) -> RunConfig {
    let most = validation
        .points
        .iter()
        .map(|p| p.scaled.requests())
        .max()
        .unwrap_or(1);
    let tokens = validation
        .points
        .first()
        .map_or(1, |p| p.scaled.tokens_per_request());
    let defaults = RunConfig::default();
    RunConfig {
        max_step_tokens: defaults
            .max_step_tokens
            .max(u32::try_from(most * tokens).unwrap_or(u32::MAX)),
        max_running: defaults
            .max_running
            .max(u32::try_from(most).unwrap_or(u32::MAX)),
        ..defaults
    }
}

/// Judges a measured point against the plan. The boundary must complete every request without
/// preemption, with peak use within half a request's blocks of the planned use (every request
/// prefills in the first step and decodes in lockstep, so all hold their last block at once).
/// The point past it must preempt or leave requests waiting.
pub fn judge(point: &Point, m: &Measured) -> Vec<String> {
    let mut out = Vec::new();
    let requests = point.scaled.requests().max(1);
    let half_request = 0.5 * point.planned_use_pct / requests as f64;
    if m.completed != m.requests {
        out.push(format!(
            "only {} of {} requests completed",
            m.completed, m.requests
        ));
    }
    match point.kind {
        PointKind::Boundary => {
            if m.preemptions > 0 {
                out.push(format!(
                    "the boundary batch preempted {} times although the plan says it fits",
                    m.preemptions
                ));
            }
            if (m.peak_use_pct - point.planned_use_pct).abs() > half_request {
                out.push(format!(
                    "peak use {:.2}% is not the planned {:.2}%",
                    m.peak_use_pct, point.planned_use_pct
                ));
            }
        }
        PointKind::Past => {
            if m.preemptions == 0 && m.max_waiting == 0 {
                out.push("one request past the boundary ran without preempting or queueing".into());
            }
        }
    }
    out
}

/// Runs both points on `ctx` and judges them.
pub fn run(ctx: &GpuContext, validation: &mut Validation) -> Result<(), ValidateError> {
    let config = engine_config(validation);
    validation.adapter = Some(ctx.describe());
    for point in &mut validation.points {
        let m = run_scenario_with(
            ctx,
            &point.scaled,
            &config,
            &AlertRules::default(),
            &mut |_| {},
        )?;
        let measured = Measured::of(&m);
        point.contradictions = judge(point, &measured);
        point.measured = Some(measured);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::KvFormat;

    fn input() -> PlanInput {
        PlanInput {
            geometry: ModelGeometry::qwen2_5_0_5b(),
            max_context: 32768,
            format: KvFormat::F16,
            block_size: 16,
            window: None,
            generation: 512,
            budget_bytes: 24 << 30,
            concurrency_seq: 4096,
        }
    }

    #[test]
    fn token_divisor_keeps_whole_blocks() {
        // 4096 + 512 at /64 is 72 tokens: 5 blocks, not 288 / 64 = 4.5. /32 gives 144 = 9.
        assert_eq!(aligned_token_divisor(64, &input(), 4096), 32);
        assert_eq!(aligned_token_divisor(16, &input(), 4096), 16);
        let mut odd = input();
        odd.generation = 100;
        // 4196 tokens are 263 blocks; /4 gives 1049 tokens = 66 blocks (x4 = 264), /2 gives
        // 2098 = 132 (x2 = 264): only the full length keeps the blocks.
        assert_eq!(aligned_token_divisor(64, &odd, 4096), 1);
    }

    #[test]
    fn ci_points_straddle_the_scaled_boundary() {
        let preset = ScalePreset::by_name("ci").unwrap();
        let v = points(&input(), "qwen2.5-0.5b", 4096, &preset).unwrap();
        // 455 requests of 288 blocks at full size; /32 requests, /32 tokens, 1 of 24 layers:
        // 1 MiB of 8 KiB blocks = 128 blocks, 9 a request: 14 fit (126 blocks, 98.4%).
        assert_eq!(v.factors.tokens, 32);
        assert_eq!(v.factors.requests, 32);
        let (b, p) = (&v.points[0], &v.points[1]);
        assert_eq!(b.scaled.requests(), 14);
        assert_eq!(b.scaled.num_blocks(), 128);
        assert!((b.planned_use_pct - 100.0 * 126.0 / 128.0).abs() < 1e-9);
        assert_eq!(b.full_batch, 448);
        assert_eq!(p.scaled.requests(), 15);
        assert!(p.planned_use_pct > 100.0);
        let config = engine_config(&v);
        assert!(config.max_step_tokens as u64 >= 15 * 144);
    }

    #[test]
    fn judging_needs_the_boundary_clean_and_the_past_point_pressed() {
        let preset = ScalePreset::by_name("ci").unwrap();
        let v = points(&input(), "qwen2.5-0.5b", 4096, &preset).unwrap();
        let good = Measured {
            peak_use_pct: v.points[0].planned_use_pct,
            preemptions: 0,
            max_waiting: 0,
            completed: 14,
            requests: 14,
        };
        assert!(judge(&v.points[0], &good).is_empty());
        let low = Measured {
            peak_use_pct: 50.0,
            ..good.clone()
        };
        assert_eq!(judge(&v.points[0], &low).len(), 1);
        let preempted = Measured {
            preemptions: 2,
            ..good.clone()
        };
        assert_eq!(judge(&v.points[0], &preempted).len(), 1);
        let past_free = Measured {
            completed: 15,
            requests: 15,
            ..good.clone()
        };
        assert_eq!(judge(&v.points[1], &past_free).len(), 1);
        let past_pressed = Measured {
            preemptions: 3,
            ..past_free
        };
        assert!(judge(&v.points[1], &past_pressed).is_empty());
    }
}
