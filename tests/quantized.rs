//! The quantized KV formats (int8, int4, FP8 E4M3 and E5M2) on every adapter present: the
//! kernels against the f64 reference fed the values the cache holds, on every path (tiled,
//! flat over buffers, flat over textures) with shards, a shared prefix and copy-on-write; the
//! append's codes against the CPU quantizer bit for bit; each format's loss against the
//! unquantized inputs, pinned per format at head dims 64, 128 and 256, contexts 300 and 8K,
//! and adversarial data; and FP8's NaN codes through attention.

#![cfg(feature = "tool")]

mod common;

use pagekv::cache::{KvFormat, ModelGeometry};
use pagekv::gpu::{GpuError, KvBacking, KvStorage, KvStorageMode};
use pagekv::kernels::{AttentionAlgorithm, AttentionOptions, PagedAttention};
use pagekv::verify::{KvData, VerifyCase, VerifyOutcome, run_case};

const SCALED: [KvFormat; 4] = [
    KvFormat::Int8,
    KvFormat::Int4,
    KvFormat::Fp8E4M3,
    KvFormat::Fp8E5M2,
];

fn geometry(q_heads: u32, kv_heads: u32, head_dim: u32) -> ModelGeometry {
    ModelGeometry::new(
        &format!("q{q_heads}kv{kv_heads}d{head_dim}"),
        2,
        q_heads,
        kv_heads,
        head_dim,
    )
}

fn run(ctx: &pagekv::gpu::GpuContext, case: &VerifyCase) -> VerifyOutcome {
    let outcome = run_case(ctx, case, false).unwrap_or_else(|e| {
        panic!(
            "{} {} on {}: {e}",
            case.geometry.name,
            case.dtype.name(),
            ctx.describe()
        )
    });
    assert!(
        outcome.passed,
        "{} {} {:?} on {}: prefill {:?} decode {:?} cache {:?}",
        case.geometry.name,
        case.dtype.name(),
        case.data,
        ctx.describe(),
        outcome.prefill,
        outcome.decode,
        outcome.cache_roundtrip
    );
    // The append stores exactly the CPU quantizer's codes and scales.
    assert_eq!(
        outcome.cache_roundtrip.max_abs,
        0.0,
        "{} codes differ from the CPU quantizer on {}",
        case.dtype.name(),
        ctx.describe()
    );
    outcome
}

/// Each scaled format through every kernel path, with a multi-shard pool, a forked prefix
/// whose partial block is copied on write, chunked prefill and context splits. Head dims
/// rotate over the formats (a designed matrix: each new variant costs a Mesa compile), and
/// the flat kernel reads buffers for int4 and E4M3 only: the two pool readers differ in how
/// a chunk is fetched, not in how it decodes, and those two formats are the widest (int4's
/// eight slices a chunk) and the most involved (E4M3's widening to halves) decodes.
#[test]
fn every_scaled_format_on_every_path() {
    for ctx in common::contexts() {
        for (format, head_dim) in SCALED.into_iter().zip([96, 64, 128, 80]) {
            for (algorithm, backing) in [
                (AttentionAlgorithm::Tiled, KvBacking::Buffers),
                (AttentionAlgorithm::Flat, KvBacking::Buffers),
                (AttentionAlgorithm::Flat, KvBacking::Textures),
            ] {
                let same_decode_other_reader = (algorithm, backing)
                    == (AttentionAlgorithm::Flat, KvBacking::Buffers)
                    && !matches!(format, KvFormat::Int4 | KvFormat::Fp8E4M3);
                if same_decode_other_reader {
                    continue;
                }
                let mut case =
                    VerifyCase::new(geometry(4, 2, head_dim), format, 16, vec![130, 45, 33]);
                case.algorithm = Some(algorithm);
                case.backing = Some(backing);
                case.shared_prefix_tokens = 24;
                case.prefill_chunk = 37;
                case.partition_tokens = Some(64);
                let block = 2 * 16 * format.row_bytes(head_dim);
                case.max_shard_bytes = Some(4 * block);
                let out = run(&ctx, &case);
                assert!(out.shards > 1, "shards exercised");
                assert_eq!(out.cow_copies, 2, "copy-on-write exercised");
                assert!(out.decode_partitions > out.shards, "splits exercised");
            }
        }
    }
}

/// int4 rows at head dim 80 are 40 bytes: not whole 16-byte chunks or texels. The flat kernel
/// says so; the default picks the tiled kernels over a buffer-backed pool, and they are right.
#[test]
fn int4_at_head_dim_80_uses_the_tiled_kernels() {
    for ctx in common::contexts() {
        let layout = pagekv::CacheLayout {
            geometry: geometry(4, 1, 80),
            block_size: 16,
            dtype: KvFormat::Int4,
        };
        let storage = KvStorage::new(&ctx, &layout, 8, 1, None).expect("pool");
        assert_eq!(storage.backing(), KvBacking::Buffers);
        let flat = AttentionOptions {
            algorithm: Some(AttentionAlgorithm::Flat),
            ..Default::default()
        };
        match PagedAttention::with_options(&ctx, &storage, flat) {
            Err(GpuError::InvalidInput { problem, .. }) => {
                assert!(problem.contains("40 bytes"), "{problem}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("the flat kernel cannot read 40-byte rows"),
        }
        let kernels = PagedAttention::new(&ctx, &storage).expect("tiled fallback");
        assert_eq!(kernels.algorithm(), AttentionAlgorithm::Tiled);
        let out = run(
            &ctx,
            &VerifyCase::new(geometry(4, 1, 80), KvFormat::Int4, 16, vec![1, 70]),
        );
        assert!(out.variants.iter().any(|v| v.starts_with("decode_int4")));
        let _ = KvStorageMode::Int4;
    }
}

/// What each format costs against the unquantized inputs, pinned per format: upper bounds on
/// the mean relative error of the attention outputs and lower bounds on their cosine
/// similarity (`Bound`), each about twice the loss measured on lavapipe and llvmpipe. The
/// kernels themselves are checked tightly in every case.
#[test]
fn each_format_loses_no_more_than_its_bound() {
    struct Bound {
        format: KvFormat,
        uniform: (f64, f64),
        outlier: (f64, f64),
    }
    let bounds = [
        Bound {
            format: KvFormat::F32,
            uniform: (1e-5, 0.999_999),
            outlier: (1e-5, 0.999_999),
        },
        Bound {
            format: KvFormat::F16,
            uniform: (5e-4, 0.999_99),
            outlier: (2e-3, 0.999_9),
        },
        Bound {
            format: KvFormat::Int8,
            uniform: (8e-3, 0.999_9),
            outlier: (8e-2, 0.99),
        },
        Bound {
            format: KvFormat::Int4,
            uniform: (1.5e-1, 0.99),
            outlier: (7e-1, 0.3),
        },
        Bound {
            format: KvFormat::Fp8E4M3,
            uniform: (6e-2, 0.998),
            outlier: (4e-2, 0.997),
        },
        Bound {
            format: KvFormat::Fp8E5M2,
            uniform: (1.2e-1, 0.995),
            outlier: (1e-1, 0.94),
        },
    ];
    // A format's loss is the adapter's only through the kernels, whose codes and outputs
    // every other test here checks on every adapter; the bounds are checked on the first
    // adapter, which halves the shader variants a cold Mesa compiles for this test.
    for ctx in common::contexts().into_iter().take(1) {
        for b in &bounds {
            let cases = [
                (64, vec![300], KvData::Uniform, b.uniform),
                (256, vec![300], KvData::Uniform, b.uniform),
                (128, vec![8192], KvData::Uniform, b.uniform),
                (128, vec![300], KvData::Outlier, b.outlier),
                (64, vec![300], KvData::NearMax, b.uniform),
                (64, vec![40], KvData::Zeros, (0.0, 1.0)),
            ];
            for (head_dim, contexts, data, (mean_rel, min_cosine)) in cases {
                // Two query heads per KV head: the loss does not depend on the group, and the
                // flat kernel's generated code (compiled per variant, cold) grows with it.
                let mut case = VerifyCase::new(geometry(2, 1, head_dim), b.format, 16, contexts);
                case.layers_run = 1;
                case.data = data;
                case.prefill_chunk = 1024;
                case.sample_rows = 8;
                // At 8K the decode row is checked; prefill at long contexts is checked by
                // the f16 and f32 suites (tests/kernels.rs).
                case.decode_only = case.contexts[0] > 4096;
                let out = run(&ctx, &case);
                let d = out.output_vs_exact;
                eprintln!(
                    "{} hd{head_dim} {:?} {:?}: mean rel {:.3e} min cos {:.6} K rel {:.3e}",
                    b.format.name(),
                    case.contexts,
                    data,
                    d.mean_rel,
                    d.min_cosine,
                    out.k_vs_exact.mean_rel
                );
                assert!(
                    d.mean_rel <= mean_rel && d.min_cosine >= min_cosine,
                    "{} hd{head_dim} {:?} {data:?} on {}: mean rel {:.3e} (bound {mean_rel:.1e}), min cosine {:.6} (bound {min_cosine})",
                    b.format.name(),
                    case.contexts,
                    ctx.describe(),
                    d.mean_rel,
                    d.min_cosine
                );
            }
        }
    }
}

/// FP8 encoding on the GPU at every rounding edge: each row's largest value is the format's
/// maximum, which makes the scale exactly 1, and the rest are every code's value, every
/// midpoint between neighbouring codes (ties go to the even code) and the floats just either
/// side of it, the subnormal codes and negative zero. The append kernel must store what the
/// CPU encoder computes, through the texture- or buffer-backed pool the adapter uses.
#[test]
fn fp8_append_rounds_every_midpoint_like_the_cpu_encoder() {
    use pagekv::cache::quant::Fp8;
    use pagekv::{AppendInput, AppendStep, Capacity, KvCache, KvCacheConfig, SeqId};
    for ctx in common::contexts() {
        for (format, fp8) in [
            (KvFormat::Fp8E4M3, Fp8::E4M3),
            (KvFormat::Fp8E5M2, Fp8::E5M2),
        ] {
            let max = fp8.max_value();
            assert_eq!(
                max * format.codec().unwrap().inv_max(),
                1.0,
                "scale exactly 1"
            );
            let codes: Vec<f32> = (0..fp8.max_code()).map(|c| fp8.decode(c)).collect();
            let mut probes = vec![-0.0];
            for w in codes.windows(2) {
                let mid = (w[0] + w[1]) / 2.0;
                probes.extend([w[0], mid, mid.next_up(), mid.next_down(), -mid]);
            }
            let hd = 64usize;
            let rows: Vec<f32> = probes
                .chunks(hd - 1)
                .flat_map(|chunk| {
                    let mut row = vec![max];
                    row.extend_from_slice(chunk);
                    row.resize(hd, 0.0);
                    row
                })
                .collect();
            let tokens = rows.len() / hd;
            let config = KvCacheConfig {
                layers: Some(1),
                dtype: format,
                ..KvCacheConfig::new(geometry(1, 1, hd as u32), Capacity::Blocks(64))
            };
            let mut cache = KvCache::with_context(&ctx, &config, Default::default()).unwrap();
            let id = SeqId(1);
            cache.add_sequence(id).unwrap();
            let ids: Vec<u32> = (0..tokens as u32).collect();
            let mut append = AppendStep::default();
            cache.prepare_append(&mut append, &[(id, &ids)]).unwrap();
            let buffer =
                pagekv::gpu::storage_buffer_init(&ctx, "rows", bytemuck::cast_slice(&rows));
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            cache
                .record_append(
                    &mut encoder,
                    0,
                    &append,
                    AppendInput::whole(&buffer, &buffer),
                )
                .unwrap();
            cache.submit(encoder);
            let (k, v) = cache.read_kv(id, 0).unwrap();
            let want = format.quantize(&rows, hd);
            for got in [k, v] {
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{} on {}: {:e} stored as {g:e}, CPU {w:e}",
                        format.name(),
                        ctx.describe(),
                        rows[i]
                    );
                }
            }
        }
    }
}

/// A NaN stored in an FP8 pool stays NaN through attention, as it does through the f64
/// reference: the codec must turn the NaN codes (E4M3's `S.1111.111`, which has no infinity
/// beside it, and E5M2's) back into NaN rather than into a finite value (480 for E4M3's), and
/// the tiled softmax must not take a NaN score for a masked key. A NaN key poisons every head
/// of its group, a NaN value at least its own output dimension, and a sequence without NaN in
/// the same step stays finite. WGSL lets an implementation assume no NaN; an adapter that
/// does fails here, by name.
#[test]
fn fp8_nan_codes_reach_the_output_on_every_path() {
    use pagekv::{
        AppendInput, AppendStep, AttentionIo, Capacity, DecodeStep, KvCache, KvCacheConfig, SeqId,
    };
    let (qh, kvh, hd, tokens) = (4usize, 2usize, 64usize, 9usize);
    let group = qh / kvh;
    for ctx in common::contexts() {
        for format in [KvFormat::Fp8E4M3, KvFormat::Fp8E5M2] {
            for algorithm in [AttentionAlgorithm::Tiled, AttentionAlgorithm::Flat] {
                let config = KvCacheConfig {
                    layers: Some(1),
                    dtype: format,
                    ..KvCacheConfig::new(
                        geometry(qh as u32, kvh as u32, hd as u32),
                        Capacity::Blocks(8),
                    )
                };
                let options = AttentionOptions {
                    algorithm: Some(algorithm),
                    ..Default::default()
                };
                let mut cache = KvCache::with_context(&ctx, &config, options).unwrap();
                let (poisoned, clean) = (SeqId(1), SeqId(2));
                let k = pagekv::reference::sample_values(tokens * kvh * hd, 11);
                let v = pagekv::reference::sample_values(tokens * kvh * hd, 12);
                let q = pagekv::reference::sample_values(2 * qh * hd, 13);
                // Key of token 3, KV head 0, dimension 5; value of token 5, KV head 1, dimension 7.
                let (mut k_nan, mut v_nan) = (k.clone(), v.clone());
                k_nan[(3 * kvh) * hd + 5] = f32::NAN;
                v_nan[(5 * kvh + 1) * hd + 7] = f32::NAN;
                let ids: Vec<u32> = (0..tokens as u32).collect();
                for (id, k, v) in [(poisoned, &k_nan, &v_nan), (clean, &k, &v)] {
                    cache.add_sequence(id).unwrap();
                    let mut append = AppendStep::default();
                    cache.prepare_append(&mut append, &[(id, &ids)]).unwrap();
                    let kb = pagekv::gpu::storage_buffer_init(&ctx, "k", bytemuck::cast_slice(k));
                    let vb = pagekv::gpu::storage_buffer_init(&ctx, "v", bytemuck::cast_slice(v));
                    let mut encoder = ctx.device.create_command_encoder(&Default::default());
                    cache
                        .record_append(&mut encoder, 0, &append, AppendInput::whole(&kb, &vb))
                        .unwrap();
                    cache.submit(encoder);
                }
                let qb = pagekv::gpu::storage_buffer_init(&ctx, "q", bytemuck::cast_slice(&q));
                let out = pagekv::gpu::storage_buffer_init(
                    &ctx,
                    "out",
                    bytemuck::cast_slice(&vec![0f32; 2 * qh * hd]),
                );
                let mut decode = DecodeStep::default();
                cache
                    .prepare_decode(&mut decode, &[poisoned, clean])
                    .unwrap();
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                cache
                    .record_decode(&mut encoder, 0, &decode, AttentionIo::whole(&qb, &out))
                    .unwrap();
                cache.submit(encoder);
                let got = pagekv::gpu::read_buffer_f32(&ctx, &out, 2 * qh * hd).unwrap();
                let what = format!("{} {algorithm:?} on {}", format.name(), ctx.describe());
                let head =
                    |seq: usize, h: usize| &got[(seq * qh + h) * hd..(seq * qh + h + 1) * hd];
                for h in 0..group {
                    assert!(
                        head(0, h).iter().all(|x| x.is_nan()),
                        "{what}: NaN key, head {h}: {:?}",
                        head(0, h)
                    );
                }
                for h in group..qh {
                    assert!(
                        head(0, h)[7].is_nan(),
                        "{what}: NaN value, head {h}: {:?}",
                        head(0, h)
                    );
                }
                assert!(
                    got[qh * hd..].iter().all(|x| x.is_finite()),
                    "{what}: the clean sequence"
                );
            }
        }
    }
}
