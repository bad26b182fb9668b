//! The tiled attention kernels (decode.wgsl, prefill.wgsl and the split combine: what GPUs
//! run) forced on every adapter present and checked against the f64 reference, decode and
//! prefill alike. CPU adapters run the flat kernels by default, so without this file the
//! tiled path would be checked there only at the presets' head dims.
//!
//! Mesa compiles each shader variant on first use, and a tiled variant is fixed by (KV
//! encoding, head dim) alone: GQA group, block size, shards, splits and chunking are runtime
//! parameters. So the matrix is a Latin square, not a cross product: every supported head dim,
//! every GQA group size 1..=8, each block size and each pool feature (several shards, a forked
//! prefix with copy-on-write, chunked prefill) appears at least twice, paired with different
//! partners, and a quantized format rides on three rows. Every case forces short context splits
//! so the combine pass always merges several partitions. Every adapter runs every row.
//! Adapters with subgroups run half the rows in the subgroup reduction form and half forced
//! to the serial fallback; GL (no subgroups) runs the fallback.

#![cfg(feature = "tool")]

mod common;

use pagekv::CacheLayout;
use pagekv::cache::{KvFormat, ModelGeometry, SUPPORTED_BLOCK_SIZES, SUPPORTED_HEAD_DIMS};
use pagekv::gpu::GpuContext;
use pagekv::kernels::{AttentionAlgorithm, Reductions};
use pagekv::verify::{VerifyCase, run_case};

/// One row of the matrix.
struct Row {
    /// Force the serial reductions on an adapter with subgroups (it runs the subgroup form
    /// otherwise), so both forms are checked there; adapters without subgroups run serial.
    serial: bool,
    q_heads: u32,
    kv_heads: u32,
    head_dim: u32,
    block_size: u32,
    dtype: KvFormat,
    /// Split the pool into shards of this many blocks.
    shard_blocks: Option<u64>,
    /// Tokens of sequence 0 the others share by forking (not a block multiple: copy-on-write).
    shared_prefix: u32,
    /// Prompt tokens per prefill chunk (0: one chunk).
    chunk: u32,
}

const fn row(q_heads: u32, kv_heads: u32, head_dim: u32, block_size: u32, dtype: KvFormat) -> Row {
    Row {
        serial: false,
        q_heads,
        kv_heads,
        head_dim,
        block_size,
        dtype,
        shard_blocks: None,
        shared_prefix: 0,
        chunk: 0,
    }
}

/// GQA groups 1..=8 in order; head dims and block sizes cycle against them.
static MATRIX: [Row; 8] = [
    Row {
        shard_blocks: Some(3),
        chunk: 5,
        ..row(2, 2, 64, 8, KvFormat::F16)
    },
    Row {
        shared_prefix: 21,
        serial: true,
        ..row(4, 2, 80, 16, KvFormat::F16)
    },
    Row {
        chunk: 7,
        shard_blocks: Some(2),
        serial: true,
        ..row(3, 1, 96, 32, KvFormat::F16)
    },
    Row {
        shard_blocks: Some(3),
        shared_prefix: 13,
        ..row(8, 2, 128, 8, KvFormat::Int8)
    },
    Row {
        shared_prefix: 20,
        chunk: 9,
        ..row(5, 1, 256, 16, KvFormat::F16)
    },
    Row {
        chunk: 11,
        serial: true,
        ..row(6, 1, 128, 16, KvFormat::Int8)
    },
    Row {
        shard_blocks: Some(4),
        shared_prefix: 9,
        serial: true,
        ..row(7, 1, 64, 32, KvFormat::Int8)
    },
    Row {
        shared_prefix: 37,
        chunk: 16,
        ..row(8, 1, 80, 8, KvFormat::F16)
    },
];

fn case_for(r: &Row) -> VerifyCase {
    let geometry = ModelGeometry::new(
        &format!("q{}kv{}d{}", r.q_heads, r.kv_heads, r.head_dim),
        1,
        r.q_heads,
        r.kv_heads,
        r.head_dim,
    );
    let bs = r.block_size;
    // Around block boundaries, plus one long enough for several splits and shards.
    let mut case = VerifyCase::new(
        geometry.clone(),
        r.dtype,
        bs,
        vec![3 * bs + 5, 1, bs - 1, bs + 1, 70],
    );
    case.algorithm = Some(AttentionAlgorithm::Tiled);
    case.reductions = r.serial.then_some(Reductions::Serial);
    case.partition_tokens = Some(16);
    case.prefill_chunk = r.chunk;
    case.shared_prefix_tokens = r.shared_prefix;
    if r.shared_prefix > 0 {
        // Every sequence must hold the shared prompt and one decoded token.
        for c in &mut case.contexts {
            *c = (*c).max(r.shared_prefix + 2);
        }
    }
    case.max_shard_bytes = r.shard_blocks.map(|blocks| {
        let layout = CacheLayout {
            geometry,
            block_size: bs,
            dtype: r.dtype,
        };
        blocks * layout.block_bytes_per_layer()
    });
    case
}

fn check(ctx: &GpuContext, r: &Row) {
    let case = case_for(r);
    let what = format!(
        "{} {} bs{} shards of {:?} blocks, shared {}, chunk {} on {}",
        case.geometry.name,
        r.dtype.name(),
        r.block_size,
        r.shard_blocks,
        r.shared_prefix,
        r.chunk,
        ctx.describe()
    );
    let start = std::time::Instant::now();
    let out = run_case(ctx, &case, false).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Cold Mesa caches compile each new variant here; the time shows where a slow run goes.
    eprintln!("{what}: {:.1} s", start.elapsed().as_secs_f64());
    assert!(
        out.passed,
        "{what}: prefill {:?} decode {:?} cache {:?} tolerance {:?}",
        out.prefill, out.decode, out.cache_roundtrip, out.tolerance
    );
    assert_eq!(out.algorithm, AttentionAlgorithm::Tiled, "{what}");
    // Decode, prefill and combine are built in the subgroup form exactly where the adapter
    // has it and the row does not force the serial one.
    let subgroups = Reductions::supported(ctx) && !r.serial;
    for v in out.variants.iter().filter(|v| !v.starts_with("append")) {
        assert_eq!(v.ends_with("_sg"), subgroups, "{what}: variant {v}");
    }
    for family in ["decode_", "prefill_", "combine_"] {
        assert!(
            out.variants.iter().any(|v| v.starts_with(family)),
            "{what}: no tiled {family} variant in {:?}",
            out.variants
        );
    }
    assert!(
        out.decode_partitions > out.shards,
        "{what}: split-K not exercised ({} partitions over {} shards)",
        out.decode_partitions,
        out.shards
    );
    if r.shard_blocks.is_some() {
        assert!(out.shards > 2, "{what}: only {} shards", out.shards);
    }
    if r.shared_prefix > 0 {
        assert!(out.cow_copies > 0, "{what}: no copy-on-write");
    }
}

#[test]
fn the_matrix_covers_every_head_dim_group_block_size_and_feature() {
    let distinct = |f: fn(&Row) -> u32| {
        let mut v: Vec<u32> = MATRIX.iter().map(f).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    assert_eq!(distinct(|r| r.head_dim), SUPPORTED_HEAD_DIMS);
    assert_eq!(distinct(|r| r.block_size), SUPPORTED_BLOCK_SIZES);
    assert_eq!(
        distinct(|r| r.q_heads / r.kv_heads),
        (1..=8).collect::<Vec<_>>()
    );
    let count = |f: fn(&Row) -> bool| MATRIX.iter().filter(|r| f(r)).count();
    assert!(count(|r| r.shard_blocks.is_some()) >= 2);
    assert!(count(|r| r.shared_prefix % r.block_size != 0) >= 2);
    assert!(count(|r| r.chunk > 0) >= 2);
    assert!(count(|r| r.dtype.codec().is_some()) >= 1);
    assert!(count(|r| r.dtype == KvFormat::F16) >= 1);
    // Both reduction forms, each over at least three head dims and on a quantized row.
    for serial in [false, true] {
        let rows: Vec<&Row> = MATRIX.iter().filter(|r| r.serial == serial).collect();
        let mut dims: Vec<u32> = rows.iter().map(|r| r.head_dim).collect();
        dims.sort_unstable();
        dims.dedup();
        assert!(dims.len() >= 3, "serial {serial}: head dims {dims:?}");
        assert!(rows.iter().any(|r| r.dtype.codec().is_some()));
    }
}

#[test]
fn tiled_kernels_match_the_reference_on_every_adapter() {
    for ctx in common::contexts() {
        for r in &MATRIX {
            check(&ctx, r);
        }
    }
}

/// The smallest tiles, which a device with 16 KiB of workgroup memory gets (WebGPU's default
/// limit and Vulkan's minimum): head dim 128 takes 16-key decode and 8-key prefill tiles, 256
/// takes 4-key tiles. There a thread scores one key for up to two rows, or (4-key tiles) only
/// some threads score at all; the adapters' own limits never pick these shapes.
#[test]
fn the_smallest_tiles_match_the_reference() {
    let adapters = common::adapters();
    let small = [
        (
            Row {
                chunk: 6,
                ..row(7, 1, 128, 16, KvFormat::F16)
            },
            [("decode_", "_hd128_r8_k16"), ("prefill_", "_hd128_r16_k8")],
        ),
        (
            Row {
                serial: true,
                shared_prefix: 11,
                ..row(6, 2, 256, 8, KvFormat::F16)
            },
            [("decode_", "_hd256_r8_k4"), ("prefill_", "_hd256_r8_k4")],
        ),
    ];
    for adapter in &adapters {
        let Some(ctx) = common::with_workgroup_storage(adapter, 16 * 1024) else {
            continue;
        };
        for (r, variants) in &small {
            let out = run_case(&ctx, &case_for(r), false)
                .unwrap_or_else(|e| panic!("{}: {e}", ctx.describe()));
            // The KV encoding's name differs by adapter (f16, or f16packed without SHADER_F16).
            for (family, shape) in variants {
                assert!(
                    out.variants
                        .iter()
                        .any(|built| built.starts_with(family) && built.contains(shape)),
                    "{}: no {family}*{shape} in {:?}",
                    ctx.describe(),
                    out.variants
                );
            }
            eprintln!(
                "{} head dim {}: {:?}",
                ctx.describe(),
                r.head_dim,
                out.variants
            );
            assert!(
                out.passed,
                "{} head dim {}: prefill {:?} decode {:?}",
                ctx.describe(),
                r.head_dim,
                out.prefill,
                out.decode
            );
        }
    }
}

/// On a CPU adapter the tiled prefill splits each tile's keys into runs of at most
/// `MAX_TILED_PARTITION_TILES` tiles, as decode does, to stay within llvmpipe's loop budget
/// (one 12000-key run at head dim 256 returned wrong rows on lavapipe); GPUs walk them in one.
/// 16 KiB of workgroup memory gives head dim 256 its 4-key tiles, so a 1100-token prompt
/// takes three splits, cheaply; over two pool shards, whose partitions combine merges too.
#[test]
fn the_tiled_prefill_splits_long_contexts_on_cpu_adapters() {
    use pagekv::kernels::MAX_TILED_PARTITION_TILES;
    let r = Row {
        chunk: 700,
        shard_blocks: Some(40),
        ..row(6, 2, 256, 16, KvFormat::F16)
    };
    for adapter in &common::adapters() {
        let Some(ctx) = common::with_workgroup_storage(adapter, 16 * 1024) else {
            continue;
        };
        let mut case = case_for(&r);
        case.contexts = vec![1100, 40];
        case.partition_tokens = None;
        let out =
            run_case(&ctx, &case, false).unwrap_or_else(|e| panic!("{}: {e}", ctx.describe()));
        assert!(
            out.variants
                .iter()
                .any(|v| v.starts_with("prefill_") && v.contains("_k4")),
            "{}: {:?}",
            ctx.describe(),
            out.variants
        );
        assert_eq!(out.shards, 2, "{}", ctx.describe());
        let splits = out.prefill_partitions / out.shards;
        let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
        let want = if cpu {
            1100u32.div_ceil(MAX_TILED_PARTITION_TILES * 4)
        } else {
            1
        };
        assert_eq!(splits, want, "{}: prefill splits", ctx.describe());
        assert!(
            out.passed,
            "{}: prefill {:?} decode {:?}",
            ctx.describe(),
            out.prefill,
            out.decode
        );
    }
}

/// The occupancy probe (which sizes the tiled decode's splits) gives a count in range on every
/// adapter, measures once per device and footprint, and on a CPU adapter finds about as many
/// concurrent workgroups as the host has cores: thousands there would mean the probe's chain
/// was folded away and its time never grew.
#[test]
fn the_occupancy_probe_counts_concurrent_workgroups_once_per_footprint() {
    use pagekv::kernels::occupancy::{MAX_PROBE_WORKGROUPS, concurrent_workgroups};
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    for ctx in common::contexts() {
        let what = ctx.describe();
        let start = std::time::Instant::now();
        let count =
            concurrent_workgroups(&ctx, 12 * 1024).unwrap_or_else(|e| panic!("{what}: {e}"));
        eprintln!(
            "{what}: {count} concurrent workgroups of 12 KiB, measured in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        assert!(
            (1..=MAX_PROBE_WORKGROUPS).contains(&count),
            "{what}: {count}"
        );
        if ctx.info.device_type == wgpu::DeviceType::Cpu {
            assert!(count <= 8 * cores, "{what}: {count} on {cores} cores");
        }
        let objects = ctx.objects_created();
        assert_eq!(
            concurrent_workgroups(&ctx, 12 * 1024).unwrap(),
            count,
            "{what}"
        );
        assert_eq!(ctx.objects_created(), objects, "{what}: measured twice");
    }
}
