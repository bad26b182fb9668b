//! The deterministic synthetic workload of a scaled scenario.
//!
//! Each stream (one unit of the scenario's concurrency) has its own shared prompt prefix, like
//! a system prompt, so prefix caching has something real to hit and its hit rate is measured
//! rather than assumed. Everything is a pure function of the scenario, so two runs (or two
//! devices) see exactly the same token ids.

use super::request::{RequestSpec, mix64};
use crate::scenario::ScaledScenario;

const PREFIX_SALT: u64 = 0x7072_6566_0000_0000;
const PROMPT_SALT: u64 = 0x7072_6f6d_0000_0000;
const SEED_SALT: u64 = 0x7365_6564_0000_0000;

/// Token `i` of stream `stream`'s shared prefix: the same for every request of the stream.
fn prefix_token(stream: u32, i: u32) -> u32 {
    (mix64(PREFIX_SALT ^ ((stream as u64) << 32) ^ i as u64) >> 33) as u32
}

/// Token at `position` of the unique (non-shared) part of a prompt, from the request's seed.
fn unique_token(seed: u64, position: u32) -> u32 {
    (mix64(seed ^ mix64(PROMPT_SALT ^ position as u64)) >> 33) as u32
}

/// The scenario's requests in submission order: round-robin across streams (stream 0's first
/// request, stream 1's first, ..., then everyone's second), with ids `0..n` in that order, so
/// streams contend for the pool from the start. Each prompt is the stream's shared prefix
/// followed by tokens unique to the request.
pub fn build_requests(s: &ScaledScenario) -> Vec<RequestSpec> {
    let prefix = s.shared_prefix_tokens.min(s.prompt_tokens);
    let mut out = Vec::with_capacity(s.requests() as usize);
    for _ in 0..s.requests_per_stream {
        for stream in 0..s.streams {
            let id = out.len() as u64;
            let seed = mix64(SEED_SALT ^ ((s.id as u64) << 48) ^ id);
            let prompt = (0..s.prompt_tokens)
                .map(|i| {
                    if i < prefix {
                        prefix_token(stream, i)
                    } else {
                        unique_token(seed, i)
                    }
                })
                .collect();
            out.push(RequestSpec {
                id,
                stream,
                prompt,
                generation_len: s.generation_tokens,
                seed,
            });
        }
    }
    out
}

/// Prompt tokens of each request (indexed like [`build_requests`]) that could possibly be
/// served from the prefix cache: the full blocks of the stream's shared prefix, never the
/// block holding the prompt's last token (that token is always computed), and nothing for the
/// first request of a stream (nobody computed its prefix before). Reports set the measured hit
/// rate beside this, so a miss is never confused with "nothing to share".
pub fn shareable_prompt_tokens(s: &ScaledScenario) -> Vec<u32> {
    let bs = s.layout.block_size.max(1);
    let prefix = s.shared_prefix_tokens.min(s.prompt_tokens);
    let per_request = (prefix / bs * bs).min(s.prompt_tokens.saturating_sub(1) / bs * bs);
    (0..s.requests_per_stream)
        .flat_map(|round| (0..s.streams).map(move |_| if round == 0 { 0 } else { per_request }))
        .collect()
}

/// Sum of [`shareable_prompt_tokens`]: the "could have hit" total of the whole scenario.
pub fn total_shareable_tokens(s: &ScaledScenario) -> u64 {
    shareable_prompt_tokens(s).iter().map(|&t| t as u64).sum()
}

#[cfg(test)]
/// A small scaled scenario for tests of the workload and scheduler.
pub(crate) fn test_scenario(
    streams: u32,
    per_stream: u32,
    prompt: u32,
    prefix: u32,
) -> ScaledScenario {
    ScaledScenario {
        id: 1,
        name: "test".into(),
        preset: "test".into(),
        layout: crate::cache::CacheLayout {
            geometry: crate::cache::ModelGeometry::new("t", 1, 2, 1, 64),
            block_size: 4,
            dtype: crate::cache::KvFormat::F16,
        },
        prompt_tokens: prompt,
        generation_tokens: 3,
        shared_prefix_tokens: prefix,
        streams,
        requests_per_stream: per_stream,
        layers_run: 1,
        budget_bytes: 1 << 20,
        factors: crate::scenario::ScaleFactors {
            tokens: 1,
            requests: 1,
            layers: (1, 1),
        },
        sliding_window: None,
        max_context: 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(streams: u32, per_stream: u32, prompt: u32, prefix: u32) -> ScaledScenario {
        test_scenario(streams, per_stream, prompt, prefix)
    }

    #[test]
    fn requests_are_round_robin_and_share_their_stream_prefix() {
        let s = scenario(2, 3, 10, 6);
        let reqs = build_requests(&s);
        assert_eq!(reqs.len(), 6);
        let streams: Vec<u32> = reqs.iter().map(|r| r.stream).collect();
        assert_eq!(streams, vec![0, 1, 0, 1, 0, 1]);
        assert!(reqs.iter().enumerate().all(|(i, r)| r.id == i as u64));
        assert!(
            reqs.iter()
                .all(|r| r.prompt.len() == 10 && r.generation_len == 3)
        );
        assert_eq!(reqs[0].prompt[..6], reqs[2].prompt[..6]);
        assert_ne!(reqs[0].prompt[..6], reqs[1].prompt[..6]);
        assert_ne!(reqs[0].prompt[6..], reqs[2].prompt[6..]);
        assert!(reqs.iter().flat_map(|r| &r.prompt).all(|&t| t < 1 << 31));
        assert_eq!(reqs, build_requests(&s), "deterministic");
    }

    #[test]
    fn shareable_counts_full_prefix_blocks_after_each_streams_first_request() {
        // Prefix 6 with block 4: one full block per later request.
        assert_eq!(
            shareable_prompt_tokens(&scenario(2, 3, 10, 6)),
            vec![0, 0, 4, 4, 4, 4]
        );
        // Whole prompt shared: the last token's block is never shareable.
        assert_eq!(shareable_prompt_tokens(&scenario(1, 2, 8, 8)), vec![0, 4]);
        assert_eq!(total_shareable_tokens(&scenario(1, 3, 9, 9)), 16);
        assert_eq!(total_shareable_tokens(&scenario(3, 1, 9, 9)), 0);
    }
}
