//! Sliding-window attention on every adapter present: prefill and decode against the f64
//! reference restricted to each query's last W keys, for windows smaller than, equal to and
//! larger than the context and on both sides of block boundaries, through the tiled kernels,
//! the flat kernel over buffers and over textures, multi-shard pools (whose flat kernel walks
//! per-shard block lists), chunked prefill, forced context splits and a quantized format.

#![cfg(feature = "tool")]

mod common;

use pagekv::cache::{KvFormat, ModelGeometry};
use pagekv::gpu::KvBacking;
use pagekv::kernels::AttentionAlgorithm;
use pagekv::verify::{VerifyCase, run_case};

fn geometry(q_heads: u32, kv_heads: u32, head_dim: u32) -> ModelGeometry {
    ModelGeometry::new(
        &format!("q{q_heads}kv{kv_heads}d{head_dim}"),
        1,
        q_heads,
        kv_heads,
        head_dim,
    )
}

#[test]
fn windows_around_block_boundaries_on_every_path() {
    let paths = [
        (AttentionAlgorithm::Tiled, KvBacking::Buffers),
        (AttentionAlgorithm::Flat, KvBacking::Buffers),
        (AttentionAlgorithm::Flat, KvBacking::Textures),
    ];
    for ctx in common::contexts() {
        for (algorithm, backing) in paths {
            for (window, format) in [
                (1, KvFormat::F32),
                (15, KvFormat::F16),
                (16, KvFormat::F32),
                (17, KvFormat::Int8),
                (70, KvFormat::F16),
                (1000, KvFormat::F16),
            ] {
                let mut case =
                    VerifyCase::new(geometry(4, 2, 64), format, 16, vec![1, 16, 17, 33, 150]);
                case.algorithm = Some(algorithm);
                case.backing = Some(backing);
                case.window = Some(window);
                case.prefill_chunk = 23;
                case.partition_tokens = Some(32);
                let out = run_case(&ctx, &case, false).unwrap();
                assert!(
                    out.passed,
                    "window {window} {} {algorithm:?} {backing:?} on {}: prefill {:?} decode {:?}",
                    format.name(),
                    ctx.describe(),
                    out.prefill,
                    out.decode
                );
            }
        }
    }
}

/// Shards and a forked prefix: the flat kernel walks per-shard block lists, and the window
/// starts inside a shared block.
#[test]
fn windows_over_shards_and_shared_prefixes() {
    for ctx in common::contexts() {
        for algorithm in [AttentionAlgorithm::Tiled, AttentionAlgorithm::Flat] {
            let head_dim = 128;
            let mut case = VerifyCase::new(
                geometry(2, 1, head_dim),
                KvFormat::F16,
                16,
                vec![200, 61, 97],
            );
            case.algorithm = Some(algorithm);
            case.backing = Some(KvBacking::Buffers);
            case.window = Some(45);
            case.shared_prefix_tokens = 40;
            // Four blocks per shard: 16 tokens x head_dim f16 values each.
            case.max_shard_bytes = Some(4 * 16 * head_dim as u64 * 2);
            let out = run_case(&ctx, &case, false).unwrap();
            assert!(out.shards > 1, "shards exercised");
            assert!(
                out.passed,
                "{algorithm:?} on {}: prefill {:?} decode {:?}",
                ctx.describe(),
                out.prefill,
                out.decode
            );
        }
    }
}

/// A window narrower than the context changes the result: the check is not vacuous.
#[test]
fn a_window_changes_what_attention_returns() {
    let ctx = common::contexts().into_iter().next();
    let Some(ctx) = ctx else { return };
    let mut windowed = VerifyCase::new(geometry(2, 1, 64), KvFormat::F32, 16, vec![90]);
    windowed.window = Some(20);
    let mut whole = windowed.clone();
    whole.window = None;
    let (a, b) = (
        run_case(&ctx, &windowed, true).unwrap(),
        run_case(&ctx, &whole, true).unwrap(),
    );
    assert!(a.passed && b.passed);
    let (oa, ob) = (&a.dumps[0].out, &b.dumps[0].out);
    // The first 20 rows see the same keys; the later ones do not.
    let row = 2 * 64;
    assert_eq!(oa[..20 * row], ob[..20 * row]);
    assert_ne!(oa[80 * row..], ob[80 * row..]);
}
