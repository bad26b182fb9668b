//! Host bookkeeping: block-pool allocate+free pairs, forks and prefix lookups (the same
//! operations `pagekv bench` reports as its `host` section).

use criterion::{Criterion, criterion_group, criterion_main};
use pagekv::bench::host;

fn bookkeeping(c: &mut Criterion) {
    c.bench_function("block pool allocate+free x1000", |b| {
        b.iter(|| host::pool_pairs_per_s(1000))
    });
    c.bench_function("fork+free x100", |b| b.iter(|| host::forks_per_s(100)));
    c.bench_function("prefix lookup x100", |b| {
        b.iter(|| host::prefix_lookups_per_s(100))
    });
}

criterion_group!(benches, bookkeeping);
criterion_main!(benches);
