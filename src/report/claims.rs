//! Every quantitative claim the reference report makes about its remedies, checked twice:
//! against full-size arithmetic from the real model geometry, and against a remedy sweep
//! ([`super::remedies`]) run at a stated scale.

use super::ScenarioResult;
use super::formats::Holds;
use super::remedies::{REPORT_WINDOW, RemedyRun};
use crate::cache::{CacheLayout, KvFormat, ModelGeometry};
use crate::engine::Measurement;
use crate::scenario::{BYTES_PER_GB, LoadedScenario};

/// One remedy claim with both kinds of evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct RemedyClaim {
    /// The claim as the report words it.
    pub claim: &'static str,
    /// What the real geometry says at full size.
    pub arithmetic: String,
    /// What the scaled sweep measured (`-` without one).
    pub measured: String,
    /// The verdict.
    pub holds: Holds,
}

/// Tokens in the report's "32K sequences".
const SEQ_32K: u64 = 32768;

fn layout(geometry: ModelGeometry, format: KvFormat) -> CacheLayout {
    CacheLayout {
        geometry,
        block_size: 16,
        dtype: format,
    }
}

/// Bytes a request of `tokens` tokens holds in blocks of 16: all of them, or under a
/// sliding window the window's blocks plus the one it starts in.
fn held_bytes(layout: &CacheLayout, tokens: u64, window: Option<u32>) -> u64 {
    let blocks = layout.blocks_for_tokens(tokens);
    let blocks = window.map_or(blocks, |w| blocks.min((w as u64).div_ceil(16) + 1));
    blocks * layout.block_bytes()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The sweep's results for scenario `id` under the remedy with `format` and `window`.
fn result(
    runs: &[RemedyRun],
    id: u32,
    format: KvFormat,
    window: Option<u32>,
) -> Option<&ScenarioResult> {
    runs.iter()
        .find(|r| r.remedy.format == format && r.remedy.window.is_some() == window.is_some())
        .and_then(|r| r.results.scenario(id))
}

fn measured(r: Option<&ScenarioResult>) -> Option<(&ScenarioResult, &Measurement)> {
    r.and_then(|s| s.measured.as_ref().map(|m| (s, m)))
}

/// The scenario the 32K claims are about: scenario 5 if swept, else the first swept.
fn focus(runs: &[RemedyRun]) -> Option<u32> {
    let ids: Vec<u32> = runs
        .first()?
        .results
        .scenarios
        .iter()
        .map(|s| s.id)
        .collect();
    ids.iter()
        .copied()
        .find(|&id| id == 5)
        .or(ids.first().copied())
}

/// The report's remedy claims for a budget of `budget_bytes`, with `scenarios` (full size,
/// as their files state them) for the arithmetic and `runs` (possibly empty) for the
/// measured column.
pub fn remedy_claims(
    scenarios: &[LoadedScenario],
    runs: &[RemedyRun],
    budget_bytes: u64,
) -> Vec<RemedyClaim> {
    let small = |f| layout(ModelGeometry::qwen2_5_0_5b(), f);
    let big = |f| layout(ModelGeometry::qwen2_5_7b(), f);
    let focus = focus(runs);
    let mut claims = Vec::new();
    for (format, claim, target) in [
        (
            KvFormat::Int8,
            "INT8 quantization: 50% memory reduction",
            0.5,
        ),
        (
            KvFormat::Int4,
            "INT4 quantization: 75% memory reduction",
            0.75,
        ),
    ] {
        let cut = |l: &dyn Fn(KvFormat) -> CacheLayout| {
            1.0 - l(format).bytes_per_token() as f64 / l(KvFormat::F16).bytes_per_token() as f64
        };
        let (cut_small, cut_big) = (cut(&small), cut(&big));
        let swept = focus.and_then(|id| {
            let (fs, fm) = measured(result(runs, id, KvFormat::F16, None))?;
            let (qs, qm) = measured(result(runs, id, format, None))?;
            Some(format!(
                "scenario {id:02}: the same budget holds x{:.2} the blocks ({} vs {}); \
                 evictions {} -> {}, req/s x{:.2}",
                qs.scaled.num_blocks() as f64 / fs.scaled.num_blocks() as f64,
                qs.scaled.num_blocks(),
                fs.scaled.num_blocks(),
                pct(fm.evictions_pct),
                pct(qm.evictions_pct),
                qm.requests_per_s / fm.requests_per_s.max(f64::MIN_POSITIVE),
            ))
        });
        claims.push(RemedyClaim {
            claim,
            arithmetic: format!(
                "{:.1}% less than f16 (0.5B), {:.1}% (7B): the f32 scales per 32 values cost the rest",
                100.0 * cut_small,
                100.0 * cut_big
            ),
            measured: swept.unwrap_or_else(|| "-".into()),
            holds: if cut_small.min(cut_big) >= target - 0.005 {
                Holds::Yes
            } else {
                Holds::No
            },
        });
    }

    let range =
        |f| small(KvFormat::F16).bytes_per_token() as f64 / small(f).bytes_per_token() as f64;
    let demand_line = |format| {
        scenarios
            .iter()
            .filter_map(|s| {
                let mut s = s.clone();
                s.scenario.cache.kv_dtype = format;
                s.set_sliding_window(None).ok()?;
                Some(format!("{:02} {:.0}%", s.id, s.demand_pct()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (int8, int4) = (range(KvFormat::Int8), range(KvFormat::Int4));
    claims.push(RemedyClaim {
        claim: "Extend safe operating range by 2x",
        arithmetic: format!(
            "requests under any utilization threshold vs f16: int8 x{int8:.2}, fp8 x{:.2}, int4 x{int4:.2}",
            range(KvFormat::Fp8E4M3)
        ),
        measured: format!(
            "demand of the failing scenarios, f16: {}; int8: {}",
            demand_line(KvFormat::F16),
            demand_line(KvFormat::Int8)
        ),
        holds: Holds::OnlyIf(format!(
            "\"quantization\" means int4 (x{int4:.2}); int8 gives x{int8:.2}, and no failing scenario gets under 100%"
        )),
    });

    let f16 = small(KvFormat::F16);
    let per_window: Vec<String> = [1024u32, 2048, 4096, 8192]
        .iter()
        .map(|&w| format!("{w}: {}", mib(held_bytes(&f16, SEQ_32K, Some(w)))))
        .collect();
    let window_swept = focus.and_then(|id| {
        let (bs, bm) = measured(result(runs, id, KvFormat::F16, None))?;
        let (ws, wm) = measured(result(runs, id, KvFormat::F16, Some(REPORT_WINDOW)))?;
        Some(format!(
            "scenario {id:02}: peak use {:.1}% with the window (its demand {:.1}%) against {:.1}% \
             without (demand {:.1}%); preemptions {} -> {}",
            wm.peak_use_pct,
            ws.scaled.demand_pct(),
            bm.peak_use_pct,
            bs.scaled.demand_pct(),
            bm.preemptions,
            wm.preemptions
        ))
    });
    claims.push(RemedyClaim {
        claim: "Sliding window: linear memory scaling with window size",
        arithmetic: format!(
            "a 0.5B f16 request holds ceil(W/16)+1 blocks whatever its length: {}",
            per_window.join(", ")
        ),
        measured: window_swept.unwrap_or_else(|| "-".into()),
        holds: Holds::Yes,
    });

    let savings: Vec<(u32, f64)> = scenarios
        .iter()
        .map(|s| {
            let c = &s.scenario;
            let final_len = c.tokens_per_request();
            let reserved = final_len.max(s.max_context as u64);
            let paged = f16.blocks_for_tokens(final_len) * 16;
            (s.id, 1.0 - paged as f64 / reserved as f64)
        })
        .collect();
    let measured_savings: Vec<String> = runs
        .first()
        .map(|r| {
            r.results
                .scenarios
                .iter()
                .filter_map(|s| {
                    let m = s.measured.as_ref()?;
                    let paged = m.fragmentation_pct / 100.0;
                    let save = |waste: f64| 100.0 * (1.0 - (1.0 - waste) / (1.0 - paged));
                    Some(format!(
                        "{:02} {:.1}% | {:.1}%",
                        s.id,
                        save(m.scheduler.mean_contiguous_waste_fraction),
                        save(m.scheduler.mean_max_context_waste_fraction)
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let (lo, hi) = savings
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, s)| {
            (lo.min(s), hi.max(s))
        });
    claims.push(RemedyClaim {
        claim: "PagedAttention reduces KV cache memory by 20-30%",
        arithmetic: format!(
            "against a contiguous cache reserving the model's context per request, finished \
             requests save: {}",
            savings
                .iter()
                .map(|(id, s)| format!("{id:02} {:.1}%", 100.0 * s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        measured: if measured_savings.is_empty() {
            "-".into()
        } else {
            format!(
                "f16 runs, mean over steps, saved against reserving the final length | the \
                 context: {}",
                measured_savings.join(", ")
            )
        },
        holds: Holds::OnlyIf(format!(
            "requests fill 70-80% of what a contiguous cache reserves; these scenarios save \
             {:.0}% to {:.0}%",
            100.0 * lo,
            100.0 * hi
        )),
    });

    let under = |l: &CacheLayout, window| {
        (0.6 * budget_bytes as f64 / held_bytes(l, SEQ_32K, window) as f64).floor() as u64
    };
    let (n_small, n_big) = (under(&f16, None), under(&big(KvFormat::F16), None));
    let n_int8_window = under(&small(KvFormat::Int8), Some(REPORT_WINDOW));
    let budget_gib = budget_bytes as f64 / BYTES_PER_GB as f64;
    let swept_32k = focus.and_then(|id| {
        let (_, bm) = measured(result(runs, id, KvFormat::F16, None))?;
        let (ws, wm) = measured(result(runs, id, KvFormat::Int8, Some(REPORT_WINDOW)))?;
        Some(format!(
            "scenario {id:02}: peak use {:.1}% in f16, {:.1}% with int8 + window {REPORT_WINDOW} \
             (demand {:.1}%)",
            bm.peak_use_pct,
            wm.peak_use_pct,
            ws.scaled.demand_pct()
        ))
    });
    claims.push(RemedyClaim {
        claim: "PagedAttention would allow 32K sequences on 24GB GPU with <60% utilization",
        arithmetic: format!(
            "60% of {budget_gib:.0} GiB holds {n_small} 0.5B or {n_big} 7B f16 sequences of 32K \
             tokens ({} and {} each); {n_int8_window} 0.5B ones with int8 + window {REPORT_WINDOW}",
            mib(held_bytes(&f16, SEQ_32K, None)),
            mib(held_bytes(&big(KvFormat::F16), SEQ_32K, None)),
        ),
        measured: swept_32k.unwrap_or_else(|| "-".into()),
        holds: Holds::OnlyIf(format!(
            "at most {n_small} (0.5B) or {n_big} (7B) such sequences are resident at once; \
             paging alone saves nothing on a full 32K context"
        )),
    });
    claims
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.1}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arithmetic_follows_the_real_geometry() {
        let claims = remedy_claims(&[], &[], 24 * BYTES_PER_GB);
        assert_eq!(claims.len(), 6);
        // int8 keeps an f32 scale per 32 one-byte values: 36/64 of f16's bytes.
        assert!(claims[0].arithmetic.starts_with("43.8% less"), "{claims:?}");
        assert_eq!(claims[0].holds, Holds::No);
        assert_eq!(claims[0].measured, "-");
        // A 2048 window holds 129 blocks of 16 tokens of 12 KiB: 24.2 MiB.
        assert!(
            claims[3].arithmetic.contains("2048: 24.2 MiB"),
            "{claims:?}"
        );
        // 60% of 24 GiB over 384 MiB per 0.5B sequence, 1792 MiB per 7B one.
        assert!(
            claims[5].arithmetic.contains("holds 38 0.5B or 8 7B"),
            "{claims:?}"
        );
    }
}
