//! The embedding API, [`KvCache`], on every adapter present and both attention algorithms:
//! a prefill + decode round trip against the f64 reference through buffer ranges, typed
//! refusals of misuse, and no GPU objects created by steady-state steps.

mod common;

use pagekv::kernels::{AttentionAlgorithm, AttentionOptions};
use pagekv::reference::{self, AttentionShape, Tolerance};
use pagekv::{
    AppendInput, AppendStep, AttentionIo, Capacity, DecodeStep, KvCache, KvCacheConfig, KvError,
    ModelGeometry, PrefillStep, SeqId,
};

fn config() -> KvCacheConfig {
    KvCacheConfig {
        layers: Some(1),
        ..KvCacheConfig::new(ModelGeometry::qwen2_5_0_5b(), Capacity::Blocks(32))
    }
}

fn buffer(ctx: &pagekv::gpu::GpuContext, data: &[f32], extra: u64) -> wgpu::Buffer {
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: data.len() as u64 * 4 + extra,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&buffer, extra, bytemuck::cast_slice(data));
    buffer
}

/// Prefill a 19-token prompt, then decode its 20th token, reading Q/K/V at a nonzero offset
/// of the buffers; both outputs match the reference. Once with the output in its own buffer
/// (a one-partition step writes it from the attention pass) and once behind the queries in
/// theirs (a dispatch may not bind one buffer read-only and writable, so it goes through the
/// combine pass).
#[test]
fn prefill_then_decode_matches_the_reference_through_buffer_ranges() {
    let algorithms = [AttentionAlgorithm::Tiled, AttentionAlgorithm::Flat];
    for ctx in common::contexts() {
        for (algorithm, shared) in algorithms.into_iter().flat_map(|a| [(a, false), (a, true)]) {
            let options = AttentionOptions {
                algorithm: Some(algorithm),
                ..Default::default()
            };
            let mut cache = KvCache::with_context(&ctx, &config(), options).unwrap();
            let g = ModelGeometry::qwen2_5_0_5b();
            let (qh, kvh, hd) = (g.q_heads as usize, g.kv_heads as usize, g.head_dim as usize);
            let (k, v) = (
                reference::sample_values(20 * kvh * hd, 1),
                reference::sample_values(20 * kvh * hd, 2),
            );
            let q = reference::sample_values(20 * qh * hd, 3);
            let offset = ctx.device.limits().min_storage_buffer_offset_alignment as u64;
            let id = SeqId(7);
            cache.add_sequence(id).unwrap();
            let mut append = AppendStep::default();
            let mut outputs = Vec::new();
            for (first, len) in [(0usize, 19usize), (19, 1)] {
                let tokens: Vec<u32> = (first as u32..(first + len) as u32).collect();
                cache.prepare_append(&mut append, &[(id, &tokens)]).unwrap();
                let rows = |x: &[f32], w: usize| x[first * w..(first + len) * w].to_vec();
                let (kb, vb) = (
                    buffer(&ctx, &rows(&k, kvh * hd), offset),
                    buffer(&ctx, &rows(&v, kvh * hd), offset),
                );
                // Shared: the output starts at the first aligned offset past the queries.
                let out_floats = len * qh * hd;
                let out_offset = if shared {
                    (offset + (out_floats * 4) as u64).next_multiple_of(offset)
                } else {
                    0
                };
                let mut q_and_out = rows(&q, qh * hd);
                if shared {
                    q_and_out.resize((out_offset - offset) as usize / 4 + out_floats, 0.0);
                }
                let qb = buffer(&ctx, &q_and_out, offset);
                let own_out = buffer(&ctx, &vec![0.0; out_floats], 0);
                let out = if shared { &qb } else { &own_out };
                fn range(buffer: &wgpu::Buffer, offset: u64) -> wgpu::BufferBinding<'_> {
                    wgpu::BufferBinding {
                        buffer,
                        offset,
                        size: None,
                    }
                }
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                let kv = AppendInput {
                    k: range(&kb, offset),
                    v: range(&vb, offset),
                };
                cache.record_append(&mut encoder, 0, &append, kv).unwrap();
                let io = AttentionIo {
                    q: wgpu::BufferBinding {
                        buffer: &qb,
                        offset,
                        size: std::num::NonZeroU64::new((out_floats * 4) as u64),
                    },
                    out: range(out, out_offset),
                };
                if len > 1 {
                    let mut step = PrefillStep::default();
                    cache
                        .prepare_prefill(&mut step, &[(id, len as u32)])
                        .unwrap();
                    cache.record_prefill(&mut encoder, 0, &step, io).unwrap();
                } else {
                    let mut step = DecodeStep::default();
                    cache.prepare_decode(&mut step, &[id]).unwrap();
                    cache.record_decode(&mut encoder, 0, &step, io).unwrap();
                }
                cache.submit(encoder);
                let skip = out_offset as usize / 4;
                let got = pagekv::gpu::read_buffer_f32(&ctx, out, skip + out_floats).unwrap();
                let got = got[skip..].to_vec();
                outputs.push((first, len, got));
            }
            let (k, v) = (
                reference::round_through_f16(&k),
                reference::round_through_f16(&v),
            );
            for (first, len, got) in outputs {
                let shape = AttentionShape {
                    q_heads: qh,
                    kv_heads: kvh,
                    head_dim: hd,
                    num_queries: len,
                    num_keys: first + len,
                };
                let keys = ..(first + len) * kvh * hd;
                let queries = &q[first * qh * hd..(first + len) * qh * hd];
                let want = reference::attention(queries, &k[keys], &v[keys], shape).unwrap();
                let (stats, pass) =
                    reference::check(&got, &want, Tolerance::for_format(pagekv::KvFormat::F16));
                assert!(
                    pass,
                    "{} {algorithm:?} (q and out in one buffer: {shared}) queries {first}..{}: {stats:?}",
                    ctx.describe(),
                    first + len
                );
            }
            let (k_back, _) = cache.read_kv(id, 0).unwrap();
            assert_eq!(k_back.len(), 20 * kvh * hd);
            assert!(
                reference::compare(&k_back, &k).max_abs < 1e-6,
                "K round trip"
            );
        }
    }
}

/// Preparing a step again after recording it, before the recording was submitted, would
/// change what the recording reads: refused with a typed error, accepted after `submitted`.
/// Recording unprepared steps, out-of-range layers and short bindings is refused too.
#[test]
fn misuse_is_a_typed_error_not_a_silent_overwrite() {
    let Some(ctx) = common::contexts().into_iter().next() else {
        return;
    };
    let mut cache = KvCache::with_context(&ctx, &config(), AttentionOptions::default()).unwrap();
    let g = ModelGeometry::qwen2_5_0_5b();
    let row = (g.q_heads * g.head_dim) as usize;
    let id = SeqId(1);
    cache.add_sequence(id).unwrap();
    let mut append = AppendStep::default();
    cache
        .prepare_append(&mut append, &[(id, &[1, 2, 3])])
        .unwrap();
    let kv = buffer(&ctx, &vec![0.5; 3 * (g.kv_heads * g.head_dim) as usize], 0);
    let q = buffer(&ctx, &vec![0.5; row], 0);
    let out = buffer(&ctx, &vec![0.0; row], 0);
    let mut decode = DecodeStep::default();
    let mut encoder = ctx.device.create_command_encoder(&Default::default());

    let err = cache
        .record_decode(&mut encoder, 0, &decode, AttentionIo::whole(&q, &out))
        .unwrap_err();
    assert!(
        matches!(err, KvError::NotPrepared { step: "decode" }),
        "{err}"
    );

    cache.prepare_decode(&mut decode, &[id]).unwrap();
    let err = cache
        .record_decode(&mut encoder, 1, &decode, AttentionIo::whole(&q, &out))
        .unwrap_err();
    assert!(
        matches!(
            err,
            KvError::LayerOutOfRange {
                layer: 1,
                layers: 1
            }
        ),
        "{err}"
    );
    let short = AttentionIo {
        q: wgpu::BufferBinding {
            buffer: &q,
            offset: 0,
            size: std::num::NonZeroU64::new(16),
        },
        out: out.as_entire_buffer_binding(),
    };
    let err = cache
        .record_decode(&mut encoder, 0, &decode, short)
        .unwrap_err();
    assert!(
        matches!(
            err,
            KvError::BindingTooSmall {
                binding: "q",
                bytes: 16,
                ..
            }
        ),
        "{err}"
    );

    cache
        .record_append(&mut encoder, 0, &append, AppendInput::whole(&kv, &kv))
        .unwrap();
    cache
        .record_decode(&mut encoder, 0, &decode, AttentionIo::whole(&q, &out))
        .unwrap();
    let err = cache.prepare_decode(&mut decode, &[id]).unwrap_err();
    assert!(
        matches!(err, KvError::StepNotSubmitted { step: "decode" }),
        "{err}"
    );
    let err = cache
        .prepare_append(&mut append, &[(id, &[4])])
        .unwrap_err();
    assert!(
        matches!(err, KvError::StepNotSubmitted { step: "append" }),
        "{err}"
    );
    assert_eq!(
        cache.context_len(id),
        Some(3),
        "a refused prepare books nothing"
    );
    cache.submit(encoder);
    cache.prepare_decode(&mut decode, &[id]).unwrap();

    let err = cache
        .prepare_decode(&mut decode, &[id, SeqId(99)])
        .unwrap_err();
    assert!(matches!(err, KvError::Cache(_)), "{err}");
    let err = cache.prepare_decode(&mut decode, &[id, id]).unwrap_err();
    assert!(matches!(err, KvError::RepeatedSequence(_)), "{err}");
}

/// All or nothing across a step's sequences: when the pool cannot take every sequence's
/// tokens, none is booked.
#[test]
fn an_append_the_pool_cannot_hold_books_nothing() {
    let Some(ctx) = common::contexts().into_iter().next() else {
        return;
    };
    let config = KvCacheConfig {
        capacity: Capacity::Blocks(3),
        ..config()
    };
    let mut cache = KvCache::with_context(&ctx, &config, AttentionOptions::default()).unwrap();
    let (a, b) = (SeqId(1), SeqId(2));
    cache.add_sequence(a).unwrap();
    cache.add_sequence(b).unwrap();
    let mut append = AppendStep::default();
    let long: Vec<u32> = (0..40).collect();
    let err = cache
        .prepare_append(&mut append, &[(a, &[1]), (b, &long)])
        .unwrap_err();
    assert!(
        matches!(
            err,
            KvError::Cache(pagekv::cache::CacheError::OutOfBlocks { .. })
        ),
        "{err}"
    );
    assert_eq!(cache.context_len(a), Some(0));
    assert_eq!(cache.manager().num_used_blocks(), 0);
}

/// After the first steps have sized the step objects and made their bind groups, further
/// decode steps of the same shape create no buffer, texture or bind group. (A step whose
/// context split count grows may still grow a scratch buffer, as the first ones do: the
/// sequences start at 100 tokens so the split count is settled.)
#[test]
fn steady_state_steps_create_no_gpu_objects() {
    for ctx in common::contexts() {
        let mut cache =
            KvCache::with_context(&ctx, &config(), AttentionOptions::default()).unwrap();
        let g = ModelGeometry::qwen2_5_0_5b();
        let ids = [SeqId(1), SeqId(2)];
        let prompt: Vec<u32> = (0..100).collect();
        let mut append = AppendStep::default();
        for id in ids {
            cache.add_sequence(id).unwrap();
        }
        cache
            .prepare_append(&mut append, &[(ids[0], &prompt), (ids[1], &prompt)])
            .unwrap();
        let kv_row = (g.kv_heads * g.head_dim) as usize;
        let prompt_kv = buffer(&ctx, &vec![0.25; 200 * kv_row], 0);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let input = AppendInput::whole(&prompt_kv, &prompt_kv);
        cache
            .record_append(&mut encoder, 0, &append, input)
            .unwrap();
        cache.submit(encoder);

        let kv = buffer(&ctx, &vec![0.25; 2 * kv_row], 0);
        let q = buffer(&ctx, &vec![0.25; 2 * (g.q_heads * g.head_dim) as usize], 0);
        let out = buffer(&ctx, &vec![0.0; 2 * (g.q_heads * g.head_dim) as usize], 0);
        let mut decode = DecodeStep::default();
        let mut created = Vec::new();
        for step in 0..6u32 {
            let before = cache.gpu_objects_created();
            let token = [1000 + step];
            cache
                .prepare_append(&mut append, &[(ids[0], &token), (ids[1], &token)])
                .unwrap();
            cache.prepare_decode(&mut decode, &ids).unwrap();
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            cache
                .record_append(&mut encoder, 0, &append, AppendInput::whole(&kv, &kv))
                .unwrap();
            cache
                .record_decode(&mut encoder, 0, &decode, AttentionIo::whole(&q, &out))
                .unwrap();
            cache.submit(encoder);
            created.push(cache.gpu_objects_created() - before);
        }
        ctx.wait_idle().unwrap();
        assert!(created[0] > 0, "the first decode step creates its buffers");
        assert_eq!(
            &created[2..],
            &[0, 0, 0, 0],
            "{}: objects per step {created:?}",
            ctx.describe()
        );
    }
}

/// The lower-level API refuses caller mistakes with values, never by panicking: a pool other
/// than the kind the kernels were built for, a layer the pool lacks, block ids outside the
/// pool, and a saved block of the wrong size.
#[test]
fn kernels_and_pools_refuse_bad_arguments() {
    use pagekv::gpu::{GpuError, KvStorage};
    use pagekv::kernels::{AppendBatch, PagedAttention, SeqView};
    let Some(ctx) = common::contexts().into_iter().next() else {
        return;
    };
    let layout = |dtype| pagekv::CacheLayout {
        geometry: ModelGeometry::qwen2_5_0_5b(),
        block_size: 16,
        dtype,
    };
    let f16 = KvStorage::new(&ctx, &layout(pagekv::KvFormat::F16), 4, 1, None).unwrap();
    let f32 = KvStorage::new(&ctx, &layout(pagekv::KvFormat::F32), 4, 1, None).unwrap();
    let kernels = PagedAttention::new(&ctx, &f16).unwrap();
    let mut append = AppendBatch::default();
    let argument = |e: GpuError| match e {
        GpuError::InvalidInput { argument, .. } => argument,
        other => panic!("expected invalid input, got {other}"),
    };
    let wrong_pool = kernels.prepare_append(&f32, &mut append, &[0]).unwrap_err();
    assert_eq!(argument(wrong_pool), "storage");
    kernels.prepare_append(&f16, &mut append, &[0]).unwrap();
    let buf = buffer(&ctx, &[0.0; 2 * 64], 0);
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    let input = AppendInput::whole(&buf, &buf);
    let bad_layer = kernels
        .record_append(&mut encoder, &f16, 1, &append, input, None)
        .unwrap_err();
    assert_eq!(argument(bad_layer), "layer");
    let bad_copy = kernels
        .record_block_copies(&mut encoder, &f16, &[(0, 9)])
        .unwrap_err();
    assert_eq!(argument(bad_copy), "block");
    let short = f16.write_block(&ctx.queue, 0, &[0u8; 7]).unwrap_err();
    assert_eq!(argument(short), "saved block");
    let outside = f16.gather(&ctx, 0, &[9], 1).unwrap_err();
    assert_eq!(argument(outside), "block");
    let views = [SeqView {
        block_table: &[0],
        context_len: 1,
        query_len: 2,
    }];
    let odd_block = pagekv::CacheLayout {
        block_size: 12,
        ..layout(pagekv::KvFormat::F16)
    };
    let refused = KvStorage::new(&ctx, &odd_block, 4, 1, None).err().unwrap();
    assert_eq!(argument(refused), "block size");
    let mut decode = pagekv::kernels::DecodeBatch::default();
    let two_queries = kernels
        .prepare_decode(&f16, &mut decode, &views)
        .unwrap_err();
    assert_eq!(argument(two_queries), "query_len");
}

/// A sliding window over a long generation: a 70-token prompt, then 200 decode steps with a
/// window of 40 keys. After every submitted step the sequence holds at most
/// ceil(40 / 16) + 1 blocks, every decode output matches the reference over the last 40
/// keys, and the released tokens read back as NaN. Both algorithms, every adapter.
#[test]
fn a_sliding_window_bounds_the_pool_over_a_long_generation() {
    let (window, bs) = (40usize, 16usize);
    for ctx in common::contexts() {
        for algorithm in [AttentionAlgorithm::Tiled, AttentionAlgorithm::Flat] {
            let config = KvCacheConfig {
                sliding_window: Some(window as u32),
                ..config()
            };
            let options = AttentionOptions {
                algorithm: Some(algorithm),
                ..Default::default()
            };
            let mut cache = KvCache::with_context(&ctx, &config, options).unwrap();
            let g = ModelGeometry::qwen2_5_0_5b();
            let (qh, kvh, hd) = (g.q_heads as usize, g.kv_heads as usize, g.head_dim as usize);
            let total = 270usize;
            let k = reference::round_through_f16(&reference::sample_values(total * kvh * hd, 4));
            let v = reference::round_through_f16(&reference::sample_values(total * kvh * hd, 5));
            let q = reference::sample_values(total * qh * hd, 6);
            let id = SeqId(3);
            cache.add_sequence(id).unwrap();
            let (mut append, mut decode, mut prefill) = (
                AppendStep::default(),
                DecodeStep::default(),
                PrefillStep::default(),
            );
            let bound = window.div_ceil(bs) + 1;
            let mut first = 0usize;
            while first < total {
                let len = if first == 0 { 70 } else { 1 };
                let tokens: Vec<u32> = (first as u32..(first + len) as u32).collect();
                cache.prepare_append(&mut append, &[(id, &tokens)]).unwrap();
                let kb = buffer(&ctx, &k[first * kvh * hd..(first + len) * kvh * hd], 0);
                let vb = buffer(&ctx, &v[first * kvh * hd..(first + len) * kvh * hd], 0);
                let qb = buffer(&ctx, &q[first * qh * hd..(first + len) * qh * hd], 0);
                let out = buffer(&ctx, &vec![0.0; len * qh * hd], 0);
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                let kv = AppendInput::whole(&kb, &vb);
                cache.record_append(&mut encoder, 0, &append, kv).unwrap();
                let io = AttentionIo::whole(&qb, &out);
                if len > 1 {
                    cache
                        .prepare_prefill(&mut prefill, &[(id, len as u32)])
                        .unwrap();
                    cache.record_prefill(&mut encoder, 0, &prefill, io).unwrap();
                } else {
                    cache.prepare_decode(&mut decode, &[id]).unwrap();
                    cache.record_decode(&mut encoder, 0, &decode, io).unwrap();
                }
                cache.submit(encoder);
                let held = cache.manager().num_used_blocks() as usize;
                assert!(held <= bound, "{held} blocks after {} tokens", first + len);
                // The step's last query against the reference over its window.
                let got = pagekv::gpu::read_buffer_f32(&ctx, &out, len * qh * hd).unwrap();
                let last = first + len - 1;
                let from = (last + 1).saturating_sub(window);
                let shape = AttentionShape {
                    q_heads: qh,
                    kv_heads: kvh,
                    head_dim: hd,
                    num_queries: 1,
                    num_keys: last + 1 - from,
                };
                let keys = from * kvh * hd..(last + 1) * kvh * hd;
                let query = &q[last * qh * hd..(last + 1) * qh * hd];
                let want = reference::attention(query, &k[keys.clone()], &v[keys], shape).unwrap();
                let tol = Tolerance::for_format(pagekv::KvFormat::F16);
                let (stats, pass) = reference::check(&got[(len - 1) * qh * hd..], &want, tol);
                assert!(
                    pass,
                    "{} {algorithm:?} token {last}: {stats:?}",
                    ctx.describe()
                );
                first += len;
            }
            let (k_back, _) = cache.read_kv(id, 0).unwrap();
            let released = (total + 1 - window) / bs * bs;
            assert!(k_back[..released * kvh * hd].iter().all(|x| x.is_nan()));
            assert_eq!(k_back[released * kvh * hd..], k[released * kvh * hd..]);
            cache.free(id).unwrap();
            assert_eq!(cache.manager().num_used_blocks(), 0);
        }
    }
}
