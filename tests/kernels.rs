//! GPU kernels against the f64 CPU reference, on every adapter present (Vulkan via lavapipe
//! and GL via llvmpipe on the CI machine). Each case pages sequences into shuffled blocks,
//! prefills (chunked where stated), decodes one token, reads the pool back, and compares
//! every checked row; see `pagekv::verify`.

#![cfg(feature = "tool")]

mod common;

use pagekv::cache::{KvFormat, ModelGeometry, SUPPORTED_HEAD_DIMS};
use pagekv::gpu::{
    DeviceLimit, GpuContext, GpuError, KvBacking, KvStorage, KvStorageMode, LimitExceeded,
};
use pagekv::kernels::AttentionAlgorithm;
use pagekv::kernels::{AttentionOptions, PagedAttention};
use pagekv::verify::{VerifyCase, VerifyOutcome, run_case};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn geometry(q_heads: u32, kv_heads: u32, head_dim: u32) -> ModelGeometry {
    ModelGeometry::new(
        &format!("q{q_heads}kv{kv_heads}d{head_dim}"),
        2,
        q_heads,
        kv_heads,
        head_dim,
    )
}

fn check(ctx: &GpuContext, case: &VerifyCase) -> VerifyOutcome {
    let outcome = run_case(ctx, case, false)
        .unwrap_or_else(|e| panic!("{} on {}: {e}", describe(case), ctx.describe()));
    assert!(
        outcome.passed,
        "{} on {}: prefill {:?} decode {:?} cache {:?} tolerance {:?}",
        describe(case),
        ctx.describe(),
        outcome.prefill,
        outcome.decode,
        outcome.cache_roundtrip,
        outcome.tolerance
    );
    outcome
}

fn describe(case: &VerifyCase) -> String {
    format!(
        "{} {} bs{} contexts {:?} chunk {} shared {} shard {:?} partition {:?} packed {}",
        case.geometry.name,
        case.dtype.name(),
        case.block_size,
        case.contexts,
        case.prefill_chunk,
        case.shared_prefix_tokens,
        case.max_shard_bytes,
        case.partition_tokens,
        case.force_packed_f16
    )
}

#[test]
fn context_lengths_around_block_boundaries() {
    let mut rng = StdRng::seed_from_u64(11);
    for ctx in common::contexts() {
        for block_size in [8, 16, 32] {
            for dtype in [KvFormat::F32, KvFormat::F16] {
                let random: Vec<u32> = (0..2).map(|_| rng.random_range(2..300)).collect();
                let mut contexts = vec![1, block_size - 1, block_size, block_size + 1];
                contexts.extend(random);
                let mut case = VerifyCase::new(geometry(4, 2, 64), dtype, block_size, contexts);
                case.prefill_chunk = 37;
                check(&ctx, &case);
            }
        }
    }
}

/// f16 at every supported head dim, f32 at the two that stress the chunk loops most (80,
/// five chunks of a 16-value row slice, and 256, the longest row); f32 at 64 runs in
/// `context_lengths_around_block_boundaries`. A designed matrix: each new variant costs a
/// cold Mesa compile, and f32's decode (a chunk is one slice as it is) does not vary by head
/// dim the way f16's does.
#[test]
fn every_head_dim_and_dtype() {
    for ctx in common::contexts() {
        for head_dim in SUPPORTED_HEAD_DIMS {
            let dtypes: &[KvFormat] = match head_dim {
                80 | 256 => &[KvFormat::F32, KvFormat::F16],
                _ => &[KvFormat::F16],
            };
            for &dtype in dtypes {
                let case = VerifyCase::new(geometry(4, 2, head_dim), dtype, 16, vec![1, 33, 130]);
                check(&ctx, &case);
            }
        }
    }
}

#[test]
fn gqa_ratios_including_more_heads_than_one_workgroup_or_invocation() {
    for ctx in common::contexts() {
        // Groups of 1, 2, 3, 7, 8, 16 and 11 heads: the flat decode serves 11 as chunks of 6
        // and 5 (its last chunk repeats a head), 16 as two chunks of 8.
        for (q_heads, kv_heads) in [(2, 2), (4, 2), (9, 3), (14, 2), (16, 2), (16, 1), (22, 2)] {
            let case = VerifyCase::new(
                geometry(q_heads, kv_heads, 64),
                KvFormat::F16,
                16,
                vec![5, 70],
            );
            check(&ctx, &case);
        }
    }
}

#[test]
fn both_f16_encodings() {
    for ctx in common::contexts() {
        for packed in [false, true] {
            if !packed && !ctx.capabilities.shader_f16 {
                // Native f16 needs SHADER_F16: check pagekv says so rather than failing obscurely.
                let mut case = VerifyCase::new(geometry(4, 2, 128), KvFormat::F16, 16, vec![9]);
                case.force_packed_f16 = false;
                let out = run_case(&ctx, &case, false).expect("falls back to packed f16");
                assert!(
                    out.variants.iter().any(|v| v.contains("f16packed")),
                    "{:?}",
                    out.variants
                );
                continue;
            }
            let mut case = VerifyCase::new(geometry(8, 2, 128), KvFormat::F16, 16, vec![3, 100]);
            case.force_packed_f16 = packed;
            let out = check(&ctx, &case);
            let wanted = if packed { "f16packed" } else { "_f16_" };
            assert!(
                out.variants.iter().any(|v| v.contains(wanted)),
                "{:?}",
                out.variants
            );
        }
    }
}

#[test]
fn long_context_with_context_splits() {
    for ctx in common::contexts() {
        // Qwen2.5-7B's group shape (7 query heads per KV head), a few thousand tokens.
        let mut case = VerifyCase::new(
            ModelGeometry::new("qwen7b-like", 1, 28, 4, 128),
            KvFormat::F16,
            16,
            vec![3001, 1200],
        );
        case.prefill_chunk = 1024;
        case.sample_rows = 6;
        let out = check(&ctx, &case);
        assert!(
            out.decode_partitions > 1,
            "default split policy should split 3001 keys"
        );
        let mut forced = VerifyCase::new(geometry(2, 1, 64), KvFormat::F32, 32, vec![2048, 77]);
        forced.partition_tokens = Some(64);
        forced.sample_rows = 4;
        let out = check(&ctx, &forced);
        assert_eq!(out.decode_partitions, 32);
    }
}

#[test]
fn forked_prefixes_share_blocks_and_copy_on_write() {
    for ctx in common::contexts() {
        for (shared, cow) in [(32, 0), (40, 2)] {
            let mut case = VerifyCase::new(geometry(4, 2, 64), KvFormat::F16, 16, vec![60, 45, 90]);
            case.shared_prefix_tokens = shared;
            case.prefill_chunk = 16;
            let out = check(&ctx, &case);
            assert_eq!(out.cow_copies, cow);
        }
    }
}

#[test]
fn multi_shard_pools() {
    for ctx in common::contexts() {
        // 64 KiB shards: 8 blocks of 8 KiB each (2 KV heads x 16 tokens x 64 dims x f32).
        let mut case =
            VerifyCase::new(geometry(4, 2, 64), KvFormat::F32, 16, vec![200, 17, 150, 1]);
        case.max_shard_bytes = Some(64 * 1024);
        case.shared_prefix_tokens = 24;
        case.prefill_chunk = 50;
        case.partition_tokens = Some(32);
        let out = check(&ctx, &case);
        assert!(
            out.shards >= 3,
            "expected several shards, got {}",
            out.shards
        );
        assert_eq!(out.decode_partitions % out.shards, 0);
        let mut half = case.clone();
        half.dtype = KvFormat::F16;
        half.max_shard_bytes = Some(16 * 1024);
        let out = check(&ctx, &half);
        assert!(out.shards >= 6, "expected many shards, got {}", out.shards);
    }
}

/// A step whose partial results outgrow the scratch budget merges its pool shards a group
/// at a time (each group's combine folding in the output so far), and takes fewer splits
/// when even one shard's do not fit: both algorithms, prefill and decode, against the
/// reference.
#[test]
fn partial_results_over_budget_merge_shards_in_groups() {
    for ctx in common::contexts() {
        for algorithm in [AttentionAlgorithm::Flat, AttentionAlgorithm::Tiled] {
            // 16 KiB shards of 4 KiB blocks: 15 shards for these contexts. A prefill step's
            // partition is at most 4 sequences x 8 tokens x 4 heads x 256 B = 32 KiB, so two
            // fit in 64 KiB; decode's 4 KiB partitions fit 16, seven 32-key splits per shard.
            let mut case =
                VerifyCase::new(geometry(4, 2, 64), KvFormat::F16, 16, vec![200, 17, 150, 1]);
            case.algorithm = Some(algorithm);
            case.max_shard_bytes = Some(16 * 1024);
            case.shared_prefix_tokens = 24;
            case.prefill_chunk = 8;
            case.partition_tokens = Some(32);
            case.max_partial_bytes = Some(64 * 1024);
            let out = check(&ctx, &case);
            assert!(out.shards >= 6, "expected many shards, got {}", out.shards);
            assert!(
                out.shard_groups >= 3,
                "{algorithm:?}: {} shards merged in {} groups",
                out.shards,
                out.shard_groups
            );
            assert_eq!(out.decode_partitions, 7 * out.shards, "splits kept");
            // 16 KiB: decode keeps 4 of its 7 splits, one shard per group; a prefill step's
            // 12 KiB partition fits once, so each group is one normalised partition.
            let mut tight = case.clone();
            tight.prefill_chunk = 3;
            tight.max_partial_bytes = Some(16 * 1024);
            let out = check(&ctx, &tight);
            assert_eq!(
                out.shard_groups, out.shards,
                "{algorithm:?}: one shard per group"
            );
            assert!(
                out.decode_partitions <= 4 * out.shards,
                "{algorithm:?}: {} partitions over {} shards",
                out.decode_partitions,
                out.shards
            );
        }
    }
}

/// llvmpipe ends every loop of an invocation after 65535 iterations in all, silently: a flat
/// split asked to walk 64K keys (about 106K loop iterations) is held to 32K keys, and the
/// decode row still matches the reference.
#[test]
fn flat_splits_stay_within_llvmpipes_loop_budget() {
    for ctx in common::contexts() {
        let mut case = VerifyCase::new(geometry(2, 1, 64), KvFormat::F16, 8, vec![65_535]);
        case.algorithm = Some(AttentionAlgorithm::Flat);
        case.layers_run = 1;
        case.decode_only = true;
        case.partition_tokens = Some(65_536);
        let out = check(&ctx, &case);
        assert_eq!(out.decode_partitions, 2, "two splits of at most 32768 keys");
    }
}

/// The flat prefill serves several query tokens per invocation (four for this group): chunks
/// of 7 leave a block of one token, and short chunks at these contexts split each context
/// over several invocations (the split policy wants dozens of invocations per host core),
/// with and without a window that starts inside a split.
#[test]
fn flat_prefill_token_blocks_over_split_contexts() {
    for ctx in common::contexts() {
        for window in [None, Some(600)] {
            let mut case = VerifyCase::new(geometry(4, 2, 64), KvFormat::F16, 16, vec![900, 641]);
            case.algorithm = Some(AttentionAlgorithm::Flat);
            case.window = window;
            case.prefill_chunk = 7;
            case.sample_rows = 8;
            let out = check(&ctx, &case);
            assert!(
                out.variants
                    .iter()
                    .any(|v| v.starts_with("flat_") && v.contains("_q4")),
                "{:?}",
                out.variants
            );
        }
    }
}

#[test]
fn chunked_prefill_equals_single_chunk() {
    for ctx in common::contexts() {
        for chunk in [0, 1, 7, 64] {
            let mut case = VerifyCase::new(geometry(14, 2, 64), KvFormat::F32, 16, vec![97, 64]);
            case.prefill_chunk = chunk;
            check(&ctx, &case);
        }
    }
}

#[test]
fn small_device_limits_are_reported_or_worked_around() {
    let adapters = common::adapters();
    for adapter in adapters {
        let Some(ctx) = common::with_workgroup_storage(&adapter, 8192) else {
            continue;
        };
        // head dim 256 cannot fit any attention tile in 8 KiB: pagekv must say which limit.
        let layout = pagekv::CacheLayout {
            geometry: geometry(4, 2, 256),
            block_size: 8,
            dtype: KvFormat::F32,
        };
        // The tiled kernels read buffer-backed pools only, and say so for a texture-backed one.
        let textures = KvStorage::with_backing(
            &ctx,
            &layout,
            16,
            1,
            None,
            KvStorageMode::F32,
            KvBacking::Textures,
        )
        .expect("small texture pool");
        let tiled = AttentionOptions {
            algorithm: Some(AttentionAlgorithm::Tiled),
            ..Default::default()
        };
        let flat = AttentionOptions {
            algorithm: Some(AttentionAlgorithm::Flat),
            ..Default::default()
        };
        match PagedAttention::with_options(&ctx, &textures, tiled) {
            Err(GpuError::InvalidInput {
                argument, problem, ..
            }) => {
                assert_eq!(argument, "algorithm");
                assert!(problem.contains("buffer-backed"), "{problem}");
            }
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("the tiled kernels cannot read a texture-backed pool"),
        }
        let storage = KvStorage::with_backing(
            &ctx,
            &layout,
            16,
            1,
            None,
            KvStorageMode::F32,
            KvBacking::Buffers,
        )
        .expect("small pool");
        match PagedAttention::with_options(&ctx, &storage, tiled) {
            Err(GpuError::Limit(limit)) => assert_workgroup_memory(&limit),
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("head dim 256 should not fit 8 KiB of workgroup memory"),
        }
        // The barrier-free kernels need no workgroup memory, so they still build.
        PagedAttention::with_options(&ctx, &storage, flat)
            .expect("the flat kernels use no workgroup memory");
        // The default kernel set is refused with the reason where it is tiled (GPUs) and
        // builds where it is flat (CPU adapters).
        match (
            PagedAttention::new(&ctx, &storage),
            AttentionAlgorithm::for_device(&ctx),
        ) {
            (Err(GpuError::Limit(limit)), AttentionAlgorithm::Tiled) => {
                assert_workgroup_memory(&limit)
            }
            (Ok(_), AttentionAlgorithm::Flat) => {}
            (Err(e), algorithm) => panic!("{algorithm:?}: unexpected error {e}"),
            (Ok(_), _) => panic!("tiled head dim 256 should not fit 8 KiB of workgroup memory"),
        }
        // head dim 64 still fits 8 KiB with smaller tiles, and stays correct.
        let mut case = VerifyCase::new(geometry(4, 2, 64), KvFormat::F32, 16, vec![40, 20]);
        case.algorithm = Some(AttentionAlgorithm::Tiled);
        check(&ctx, &case);
    }
}

/// A device allowing fewer storage textures per shader stage than a texture-backed pool binds
/// (K and V, plus two scale textures for a scaled format) keeps that pool in buffers, and a
/// forced texture backing is refused naming the limit.
#[test]
fn too_few_storage_textures_keep_the_pool_in_buffers() {
    let adapters = common::adapters();
    let layout = |dtype| pagekv::CacheLayout {
        geometry: geometry(4, 2, 64),
        block_size: 16,
        dtype,
    };
    for adapter in adapters {
        let cpu = adapter.get_info().device_type == wgpu::DeviceType::Cpu;
        for (allowed, f16_textures, int8_textures) in [(2, cpu, false), (1, false, false)] {
            let Some(ctx) = common::with_limits(&adapter, |limits| {
                limits.max_storage_textures_per_shader_stage = allowed
            }) else {
                continue;
            };
            for (dtype, textures) in [
                (KvFormat::F16, f16_textures),
                (KvFormat::Int8, int8_textures),
            ] {
                let want = if textures {
                    KvBacking::Textures
                } else {
                    KvBacking::Buffers
                };
                assert_eq!(
                    KvBacking::for_device(&ctx, &layout(dtype)),
                    want,
                    "{} allowing {allowed}: {dtype:?}",
                    ctx.describe()
                );
            }
            let refused = KvStorage::with_backing(
                &ctx,
                &layout(KvFormat::Int8),
                16,
                1,
                None,
                KvStorageMode::choose(KvFormat::Int8, ctx.capabilities.shader_f16),
                KvBacking::Textures,
            );
            match refused {
                Err(GpuError::Limit(limit)) => {
                    assert_eq!(limit.limit, DeviceLimit::StorageTexturesPerStage, "{limit}");
                    assert_eq!(
                        (limit.needed, limit.allowed),
                        (4, allowed as u64),
                        "{limit}"
                    );
                    assert!(
                        limit
                            .to_string()
                            .contains("max_storage_textures_per_shader_stage")
                    );
                }
                Err(e) => panic!("wrong error kind: {e}"),
                Ok(_) => panic!("an int8 texture pool binds four storage textures"),
            }
        }
    }
}

/// Texture-backed pools put small blocks side by side in each texture row, so a pool of more
/// blocks than a texture has rows is still one shard (a Qwen2.5-0.5B INT4 block is 64 texels;
/// one block per row capped a shard at 16 MiB, and a 1 GiB pool's 64 shards overflowed the
/// partial-results binding of a 2048-token prefill), and blocks in any row and column read
/// back what was written to them.
#[test]
fn texture_pools_pack_blocks_side_by_side() {
    let layout = pagekv::CacheLayout {
        geometry: geometry(14, 2, 64),
        block_size: 16,
        dtype: KvFormat::Int4,
    };
    for ctx in common::contexts() {
        if KvBacking::for_device(&ctx, &layout) != KvBacking::Textures {
            continue;
        }
        let blocks = 3 * ctx.device.limits().max_texture_dimension_2d;
        let storage = KvStorage::new(&ctx, &layout, blocks, 1, None).unwrap();
        assert_eq!(storage.plan().num_shards(), 1, "{}", ctx.describe());
        assert!(storage.texture_row_shift() >= 2, "{}", ctx.describe());
        let per_block = 2 * storage.plan().block_bytes_per_layer;
        let written = |block: u32| -> Vec<u8> {
            (0..per_block as u32)
                .map(|i| (i.wrapping_mul(7) ^ block.wrapping_mul(2_654_435_761)) as u8)
                .collect()
        };
        let probes = [0, 1, blocks / 2 + 5, blocks - 2, blocks - 1];
        for &block in &probes {
            storage
                .write_block(&ctx.queue, block, &written(block))
                .unwrap();
        }
        let saved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: per_block * probes.len() as u64,
            usage: wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut offset = 0;
        for &block in &probes {
            offset = storage
                .record_block_save(&mut encoder, block, &saved, offset)
                .unwrap();
        }
        ctx.queue.submit([encoder.finish()]);
        let words = pagekv::gpu::read_buffer_u32(&ctx, &saved, offset as usize / 4).unwrap();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for (i, &block) in probes.iter().enumerate() {
            let at = i * per_block as usize;
            assert!(
                bytes[at..at + per_block as usize] == written(block)[..],
                "block {block} of {blocks} on {}",
                ctx.describe()
            );
        }
        // The whole-shard readback (verify's and the dumps' path) finds them in place too.
        let (k, _) = storage.gather(&ctx, 0, &[blocks - 1], 16).unwrap();
        let half = per_block as usize / 2;
        let want = KvFormat::Int4.decode_block(&written(blocks - 1)[..half], 32, 64);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut in_token_order = vec![0.0; want.len()];
        for head in 0..2 {
            for token in 0..16 {
                let (from, to) = ((head * 16 + token) * 64, (token * 2 + head) * 64);
                in_token_order[to..to + 64].copy_from_slice(&want[from..from + 64]);
            }
        }
        assert_eq!(bits(&k), bits(&in_token_order), "{}", ctx.describe());
    }
}

/// The refusal names the workgroup memory limit and the numbers behind it.
fn assert_workgroup_memory(limit: &LimitExceeded) {
    assert_eq!(limit.limit, DeviceLimit::WorkgroupStorageSize, "{limit}");
    assert_eq!(limit.allowed, 8192, "{limit}");
    assert!(limit.needed > limit.allowed, "{limit}");
}

/// CPU adapters default to the flat decode and prefill (no barriers) reading texture-backed
/// pools; the tiled kernels GPUs get, and the flat kernel reading buffers, are checked here as
/// well, on every adapter, over context splits, pool shards and both presets' head dims and
/// GQA groups (8 and 16 query heads per KV head cover one and two group chunks of either
/// algorithm). The tiled kernels take the group at run time, so 7 heads at head dim 64 costs
/// them no new variant.
#[test]
fn tiled_and_flat_decode_both_match_the_reference() {
    for ctx in common::contexts() {
        for (algorithm, backing) in [
            (AttentionAlgorithm::Tiled, KvBacking::Buffers),
            (AttentionAlgorithm::Flat, KvBacking::Buffers),
            (AttentionAlgorithm::Flat, KvBacking::Textures),
        ] {
            for (q, kv, hd) in [(14, 2, 64), (28, 4, 128), (16, 1, 64)] {
                // The flat kernels compile a variant per group chunk and head dim; a chunk of
                // 7 heads is checked at head dim 128, and head dim 64 with 16 heads.
                if (q, kv, hd) == (14, 2, 64) && algorithm == AttentionAlgorithm::Flat {
                    continue;
                }
                let mut case =
                    VerifyCase::new(geometry(q, kv, hd), KvFormat::F16, 16, vec![1, 17, 130]);
                case.algorithm = Some(algorithm);
                case.backing = Some(backing);
                case.partition_tokens = Some(64);
                let outcome = check(&ctx, &case);
                assert!(outcome.decode_partitions > 1, "splits exercised");
            }
            let mut case =
                VerifyCase::new(geometry(8, 2, 64), KvFormat::F32, 16, vec![200, 45, 90]);
            case.max_shard_bytes = Some(16 * 1024);
            case.algorithm = Some(algorithm);
            case.backing = Some(backing);
            case.shared_prefix_tokens = 40;
            let outcome = check(&ctx, &case);
            assert!(outcome.shards > 1, "shards exercised");
            assert!(outcome.cow_copies > 0, "copy-on-write exercised");
        }
    }
}
