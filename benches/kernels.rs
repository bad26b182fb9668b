//! The kernels `pagekv bench` measures, under criterion on the default adapter: the copy
//! roofline, decode and prefill attention and append, at small shapes (wall clock per
//! submission, as criterion measures; `pagekv bench` gives GPU-timestamp figures and ratios).
//! Without an adapter the group is skipped with a message.

use criterion::{Criterion, criterion_group, criterion_main};
use pagekv::bench::Stopwatch;
use pagekv::bench::kernels::{self, AttentionCase};
use pagekv::cache::{KvFormat, ModelGeometry};
use pagekv::gpu::{AdapterFilter, GpuContext};

fn gpu(c: &mut Criterion) {
    let Ok(ctx) = GpuContext::new(&AdapterFilter::default()) else {
        eprintln!("no GPU adapter: skipping kernel benches");
        return;
    };
    let watch = Stopwatch::new(&ctx, 0.0);
    let mut group = c.benchmark_group("kernels");
    group.sample_size(10);
    group.bench_function("copy roofline 16 MiB", |b| {
        b.iter(|| kernels::copy_roofline(&ctx, &watch, 1, 16 << 20).expect("copy runs"))
    });
    let case = AttentionCase {
        geometry: ModelGeometry::qwen2_5_0_5b(),
        dtype: KvFormat::F16,
        batch: 4,
        context: 1024,
        kernels: Default::default(),
    };
    group.bench_function("decode qwen2.5-0.5b f16 batch 4 ctx 1024", |b| {
        b.iter(|| {
            kernels::decode(&ctx, &watch, 1, &case, 1 << 30)
                .map_err(|_| ())
                .expect("decode runs")
        })
    });
    let prefill_case = AttentionCase {
        batch: 1,
        context: 128,
        ..case.clone()
    };
    group.bench_function("prefill qwen2.5-0.5b f16 128 tokens", |b| {
        b.iter(|| {
            kernels::prefill(&ctx, &watch, 1, &prefill_case, 1 << 30)
                .map_err(|_| ())
                .expect("prefill runs")
        })
    });
    group.bench_function("append qwen2.5-0.5b f16 4096 tokens", |b| {
        b.iter(|| {
            kernels::append(&ctx, &watch, 1, &case, 1 << 30)
                .map_err(|_| ())
                .expect("append runs")
        })
    });
    group.finish();
}

criterion_group!(benches, gpu);
criterion_main!(benches);
