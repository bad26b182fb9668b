//! The roofline kernels `pagekv bench` measures against, checked like every other kernel:
//! the copy must copy exactly, the matmul must match an f64 CPU matmul, on every adapter.
//! Also how a bench run hands out its figures (no speed is asserted anywhere).

#![cfg(feature = "tool")]

mod common;

use pagekv::bench::kernels::{Alternation, AttentionCase, BenchSkip, decode_interleaved};
use pagekv::bench::{BenchEvent, BenchOptions, LongContextOptions, Section, Stopwatch, run_bench};
use pagekv::gpu::{read_buffer_f32, storage_buffer_init};
use pagekv::kernels::AttentionAlgorithm;
use pagekv::tool_kernels::copy::CopyKernel;
use pagekv::tool_kernels::matmul::{MatmulKernel, MatmulShape};
use pagekv::tool_kernels::read::{ReadKernel, ReadSource};
use pagekv::tool_kernels::write::{WriteKernel, WriteTarget};
use pagekv::tool_kernels::{AccessOrder, MemoryPath};
use pagekv::{KvFormat, ModelGeometry};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

#[test]
fn copy_copies_every_element() {
    let mut rng = StdRng::seed_from_u64(3);
    let data = random(&mut rng, 4 * 70_001);
    for ctx in common::contexts() {
        let kernel = CopyKernel::new(&ctx).unwrap();
        let src = storage_buffer_init(&ctx, "src", bytemuck::cast_slice(&data));
        let dst = storage_buffer_init(&ctx, "dst", &vec![0u8; data.len() * 4]);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        kernel.record(&ctx, &mut encoder, &src, &dst, None);
        ctx.queue.submit([encoder.finish()]);
        let got = read_buffer_f32(&ctx, &dst, data.len()).unwrap();
        assert_eq!(got, data, "{}", ctx.describe());
    }
}

/// Both read rooflines, in both orders, load every element of their source exactly once, on
/// every adapter: a roofline that skipped some would overstate the bandwidth every
/// memory-bound bound is taken from.
#[test]
fn reads_visit_every_element_once() {
    for ctx in common::contexts() {
        let kernel = ReadKernel::new(&ctx).unwrap();
        // 4 MiB: whole 4096-texel rows, 1024 runs of 64.
        let source = ReadSource::new(&ctx, 4 << 20).unwrap();
        for path in [MemoryPath::Buffer, MemoryPath::Texture] {
            for order in AccessOrder::ALL {
                assert!(
                    kernel
                        .reads_every_element_once(&ctx, &source, (path, order))
                        .unwrap(),
                    "{path:?} {order:?} on {}",
                    ctx.describe()
                );
            }
        }
    }
}

/// Both write rooflines, in both orders, store every element of their target in its place
/// on every adapter: a roofline that skipped some would overstate the write rate append's
/// bound is taken from.
#[test]
fn writes_store_every_element_in_its_place() {
    for ctx in common::contexts() {
        let kernel = WriteKernel::new(&ctx).unwrap();
        let target = WriteTarget::new(&ctx, 4 << 20).unwrap();
        for path in [MemoryPath::Buffer, MemoryPath::Texture] {
            for order in AccessOrder::ALL {
                assert!(
                    kernel
                        .writes_every_element(&ctx, &target, (path, order))
                        .unwrap(),
                    "{path:?} {order:?} on {}",
                    ctx.describe()
                );
            }
        }
    }
}

#[test]
fn matmul_matches_the_f64_reference() {
    let mut rng = StdRng::seed_from_u64(5);
    for (m, n, k) in [
        (64, 64, 64),
        (128, 64, 192),
        (64, 256, 128),
        (256, 128, 384),
    ] {
        let a = random(&mut rng, (m * k) as usize);
        let b = random(&mut rng, (k * n) as usize);
        let mut want = vec![0f64; (m * n) as usize];
        for i in 0..m as usize {
            for j in 0..n as usize {
                want[i * n as usize + j] = (0..k as usize)
                    .map(|p| a[i * k as usize + p] as f64 * b[p * n as usize + j] as f64)
                    .sum();
            }
        }
        // Both tiled kernels and the default flat one on every adapter; every generated
        // register block, buffer- and texel-fed, on the first. Each runs the shapes its tile
        // divides (the wide kernel only the last).
        let contexts = common::contexts();
        let mut runs: Vec<_> = contexts
            .iter()
            .flat_map(|ctx| {
                [AttentionAlgorithm::Tiled, AttentionAlgorithm::Flat]
                    .map(|a| (ctx.clone(), MatmulKernel::with_algorithm(ctx, a).unwrap()))
                    .into_iter()
                    .chain([(
                        ctx.clone(),
                        MatmulKernel::with_shape(ctx, MatmulShape::TiledWide).unwrap(),
                    )])
            })
            .collect();
        if let Some(ctx) = contexts.first() {
            runs.extend(
                MatmulShape::FLAT_EXTRA
                    .into_iter()
                    .chain(MatmulShape::FLAT_TEXELS)
                    .map(|s| (ctx.clone(), MatmulKernel::with_shape(ctx, s).unwrap())),
            );
        }
        runs.retain(|(_, kernel)| [m, n, k].iter().all(|d| d % kernel.shape.tile() == 0));
        for (ctx, kernel) in runs {
            let algorithm = kernel.shape;
            let (ab, bb) = (
                storage_buffer_init(&ctx, "a", bytemuck::cast_slice(&a)),
                storage_buffer_init(&ctx, "b", bytemuck::cast_slice(&b)),
            );
            let cb = storage_buffer_init(&ctx, "c", &vec![0u8; (m * n * 4) as usize]);
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            kernel
                .record(&ctx, &mut encoder, (m, n, k), &ab, &bb, &cb, None)
                .unwrap();
            ctx.queue.submit([encoder.finish()]);
            let got = read_buffer_f32(&ctx, &cb, (m * n) as usize).unwrap();
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let tol = 1e-5 * k as f64 + 1e-5 * w.abs();
                assert!(
                    (g as f64 - w).abs() <= tol,
                    "{algorithm:?} {m}x{n}x{k} element {i}: {g} vs {w} on {}",
                    ctx.describe()
                );
            }
        }
    }
    // Dimensions off the tile grid are refused, not silently truncated.
    if let Some(ctx) = common::contexts().into_iter().next() {
        let kernel = MatmulKernel::new(&ctx).unwrap();
        let buf = storage_buffer_init(&ctx, "x", &[0u8; 64]);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let err = kernel.record(&ctx, &mut encoder, (65, 64, 64), &buf, &buf, &buf, None);
        assert!(err.is_err());
        let wide = MatmulKernel::with_shape(&ctx, MatmulShape::TiledWide).unwrap();
        let err = wide.record(&ctx, &mut encoder, (128, 64, 128), &buf, &buf, &buf, None);
        assert!(
            err.is_err(),
            "the wide kernel refuses a dimension its tile does not divide"
        );
    }
}

/// Every figure reaches the observer as soon as it is measured, in a report marked
/// incomplete, so a run that fails part-way can save what it had; the returned report is
/// complete and holds the same figures. A kernel case carries the machine check around it.
#[test]
fn bench_reports_each_figure_as_it_is_measured() {
    let options = BenchOptions {
        quick: true,
        max_pool_bytes: 1 << 30,
        sections: vec![Section::Append, Section::Host],
        cases: ["qwen2.5-0.5b f16", "block pool", "fork", "prefix lookup"]
            .map(String::from)
            .to_vec(),
        kernels: Default::default(),
        long_context: None,
    };
    for ctx in common::contexts() {
        let mut seen = Vec::new();
        let mut started = Vec::new();
        let report = run_bench(&ctx, &options, &mut |event| match event {
            BenchEvent::Starting(case) => started.push(case.to_string()),
            BenchEvent::Measured(partial) => {
                assert!(!partial.complete);
                seen.push(partial.figures.len());
            }
        })
        .unwrap();
        // copy, buffer and texture read, buffer and texture write, matmul, one append case,
        // then the three host figures.
        let count = 10;
        assert_eq!(seen, (1..=count).collect::<Vec<_>>(), "{}", ctx.describe());
        assert!(report.complete);
        assert_eq!(report.figures.len(), count);
        let append = &report.figures[count - 4];
        assert_eq!(append.section, Section::Append, "{append:?}");
        // The same copy timed before and after the case: near 1 on a steady machine, far
        // outside this range only if the check compared the wrong things.
        assert!(
            append.machine_speed.is_some_and(|s| s > 0.2 && s < 5.0),
            "{append:?}"
        );
        assert!(
            report.figures[count - 3..]
                .iter()
                .all(|f| f.machine_speed.is_none())
        );
        for stream in &report.figures[1..5] {
            assert!(stream.value.is_some_and(|v| v > 0.0), "{stream:?}");
            assert!(stream.ratio.is_some_and(|r| r > 0.0), "{stream:?}");
        }
        assert!(report.figures[3].case.starts_with("buffer write"));
        // The working sets go from the smallest up to below the streaming source, every
        // rate measured.
        let streaming = report.figures[1].seconds.unwrap() * report.figures[1].value.unwrap() * 1e9;
        let rungs: Vec<u64> = report.working_sets.iter().map(|w| w.bytes).collect();
        let want: Vec<u64> = pagekv::bench::working_set_sizes((streaming * 1.001) as u64)
            .into_iter()
            .filter(|&b| (b as f64) < streaming * 0.999)
            .collect();
        assert_eq!(rungs, want, "{}", ctx.describe());
        for w in &report.working_sets {
            let rates = [
                w.buffer_read,
                w.texture_read,
                w.buffer_write,
                w.texture_write,
            ];
            assert!(rates.iter().all(|&r| r > 0.0), "{w:?}");
        }
        // The append's bytes (reads and writes, a few MiB) are bounded at the smallest
        // working set holding them (the 0.5B append's are exactly 1.5 MiB, a rung).
        let bytes = append.value.unwrap() * 1e9 * append.seconds.unwrap();
        let holding = report
            .working_sets
            .iter()
            .map(|w| w.bytes)
            .find(|&b| b as f64 >= bytes * 0.999);
        assert!(holding.is_some(), "{bytes} bytes, rungs {rungs:?}");
        assert_eq!(append.bound_working_set, holding, "{append:?}");
        assert!(report.texture_write_bytes_per_s.is_some_and(|w| w > 0.0));
        assert!(report.copy_end_bytes_per_s.is_some_and(|c| c > 0.0));
        assert!(report.buffer_read_end_bytes_per_s.is_some_and(|r| r > 0.0));
        assert!(report.texture_read_end_bytes_per_s.is_some_and(|r| r > 0.0));
        assert!(report.bounds_use_faster_read);
        assert!(report.matmul_end_flops.is_some_and(|m| m > 0.0));
        assert_eq!(started.first().map(String::as_str), Some("copy roofline"));
    }
}

/// Cases timed in alternation come back in order, one median each, and a case the pool cap
/// refuses is skipped with its reason while the others are still timed.
#[test]
fn interleaved_decode_times_each_case_and_skips_only_the_refused_one() {
    let case = |batch, context| AttentionCase {
        geometry: ModelGeometry::new("small", 1, 4, 2, 64),
        dtype: KvFormat::F16,
        batch,
        context,
        kernels: Default::default(),
    };
    let cases = [case(1, 256), case(64, 4096), case(2, 512)];
    let cap = cases[2].kv_bytes();
    for ctx in common::contexts() {
        let watch = Stopwatch::new(&ctx, 0.0);
        let results = decode_interleaved(&ctx, &watch, 2, &cases, cap, Alternation::EverySample);
        assert_eq!(results.len(), 3);
        for i in [0, 2] {
            assert!(
                matches!(results[i], Ok(t) if t.seconds > 0.0 && t.spread >= 0.0 && t.samples >= 2),
                "case {i} on {}",
                ctx.describe()
            );
        }
        assert!(
            matches!(&results[1], Err(BenchSkip::Skipped(reason)) if reason.contains("--max-pool-gib")),
            "{}",
            ctx.describe()
        );
    }
}

/// `bench --long-context --quick` gives a curve per model from 1K up, each point with its
/// time per position and share of its bound, a flatness where the curve passes 4K (or the
/// reason it stopped), and the flatness target judged; the report survives a JSON round trip.
#[test]
fn long_context_quick_produces_a_curve_per_model() {
    let Some(ctx) = common::contexts().into_iter().next() else {
        return;
    };
    let options = BenchOptions {
        quick: true,
        max_pool_bytes: 1 << 30,
        sections: Vec::new(),
        cases: Vec::new(),
        long_context: Some(LongContextOptions::quick()),
        kernels: Default::default(),
    };
    let report = run_bench(&ctx, &options, &mut |_| {}).unwrap();
    let long = report.long_context.as_ref().expect("long-context curves");
    assert_eq!(long.contexts, [1024, 2048, 4096, 8192, 16384]);
    let labels: Vec<String> = long.curves.iter().map(|c| c.label()).collect();
    assert_eq!(
        labels,
        ["qwen2.5-0.5b f16 batch 1", "qwen2.5-7b f16 batch 1"]
    );
    for curve in &long.curves {
        assert_eq!(
            curve.points.first().map(|p| p.context),
            Some(1024),
            "{curve:?}"
        );
        assert!(
            curve
                .points
                .windows(2)
                .all(|w| w[1].context == 2 * w[0].context)
        );
        for p in &curve.points {
            let ns = p.seconds * 1e9 / p.context as f64;
            assert!((p.ns_per_position - ns).abs() <= 1e-9 * ns, "{p:?}");
            assert!(p.of_bound > 0.0 && p.of_bound.is_finite(), "{p:?}");
            // The machine check ran after the point: a share of the run's fastest check.
            assert!(
                p.machine_speed.is_some_and(|s| s > 0.0 && s <= 1.0),
                "{p:?}"
            );
        }
        // Either it reached 16K and has a flatness, from its 4K and 16K points timed again
        // in alternation, or it says why it stopped.
        match curve.points.len() {
            5 => {
                let pair = curve.flatness_pair.expect("a pair timed in alternation");
                assert!(pair.seconds.iter().all(|&s| s > 0.0), "{pair:?}");
                assert!(pair.spreads.iter().all(|&s| s >= 0.0), "{pair:?}");
                assert!(pair.machine_speed.is_some_and(|s| s > 0.0 && s <= 1.0));
                let want = (pair.seconds[1] / 16384.0) / (pair.seconds[0] / 4096.0);
                let flatness = curve.flatness().unwrap();
                assert!((flatness - want).abs() <= 1e-9 * want, "{curve:?}");
            }
            _ => assert!(curve.stopped.is_some(), "{curve:?}"),
        }
    }
    assert!(
        report
            .targets
            .iter()
            .any(|t| t.target.starts_with("long context") && t.met.is_some())
    );
    // No grid ran: only the rooflines are figures.
    assert!(
        report
            .figures
            .iter()
            .all(|f| matches!(f.section, Section::Copy | Section::Matmul))
    );
    let text = serde_json::to_string(&report).unwrap();
    let back: pagekv::bench::BenchReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);

    // `--case` reruns one curve alone (here its first two points).
    let one_curve = BenchOptions {
        long_context: Some(LongContextOptions {
            contexts: vec![1024, 2048],
            curves: vec!["7b".into()],
            ..LongContextOptions::quick()
        }),
        ..options
    };
    let report = run_bench(&ctx, &one_curve, &mut |_| {}).unwrap();
    let curves = &report.long_context.as_ref().unwrap().curves;
    let labels: Vec<String> = curves.iter().map(|c| c.label()).collect();
    assert_eq!(labels, ["qwen2.5-7b f16 batch 1"]);
    assert_eq!(curves[0].points.len(), 2);
}
