//! Host-side bookkeeping rates: the block pool and the prefix cache run on the CPU once per
//! token or block, so they must stay far below a step's GPU time.

use std::hint::black_box;
use std::time::Instant;

use crate::cache::{BlockPool, CacheLayout, KvCacheManager, KvFormat, ModelGeometry, SeqId};

/// Allocate + free pairs per second on a pool of 65 536 blocks.
pub fn pool_pairs_per_s(pairs: u64) -> f64 {
    let mut pool = BlockPool::new(1 << 16);
    let start = Instant::now();
    for _ in 0..pairs {
        let block = pool
            .allocate()
            .expect("pool never runs dry: one block in use");
        pool.release(black_box(block)).expect("block was allocated");
    }
    pairs as f64 / start.elapsed().as_secs_f64()
}

fn manager(blocks: u32) -> KvCacheManager {
    let layout = CacheLayout {
        geometry: ModelGeometry::qwen2_5_0_5b(),
        block_size: 16,
        dtype: KvFormat::F16,
    };
    KvCacheManager::new(layout, blocks, true).expect("valid layout")
}

/// Forks (and frees) of a 1024-token sequence per second: 64 shared blocks each.
pub fn forks_per_s(forks: u64) -> f64 {
    let mut cache = manager(1 << 12);
    let parent = SeqId(0);
    cache.add_sequence(parent).expect("fresh id");
    let tokens: Vec<u32> = (0..1024).collect();
    cache
        .append_tokens(parent, &tokens)
        .expect("pool holds 64 blocks");
    let start = Instant::now();
    for i in 0..forks {
        let child = SeqId(1 + i);
        cache.fork(parent, child).expect("parent exists");
        cache.free(black_box(child)).expect("child exists");
    }
    forks as f64 / start.elapsed().as_secs_f64()
}

/// Prefix lookups of a 1024-token prompt whose 63 full blocks are cached, per second.
pub fn prefix_lookups_per_s(lookups: u64) -> f64 {
    let mut cache = manager(1 << 12);
    let tokens: Vec<u32> = (0..1024).map(|t| t * 7 + 3).collect();
    cache.add_sequence(SeqId(0)).expect("fresh id");
    cache
        .append_tokens(SeqId(0), &tokens)
        .expect("pool holds 64 blocks");
    cache.free(SeqId(0)).expect("exists");
    let start = Instant::now();
    let mut hits = 0u64;
    for _ in 0..lookups {
        hits += cache.cached_prefix_tokens(black_box(&tokens)) as u64;
    }
    assert!(
        hits > 0,
        "the prefix must be cached for the bench to mean anything"
    );
    lookups as f64 / start.elapsed().as_secs_f64()
}
