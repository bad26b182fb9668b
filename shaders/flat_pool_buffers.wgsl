// The flat attention's K and V pools as storage buffers of load chunks (KvVec, from
// kv_chunk_*.wgsl): a key's row is addressed by the index of its first chunk in the shard.

@group(0) @binding(2) var<storage, read> k_cache: array<KvVec>;
@group(0) @binding(3) var<storage, read> v_cache: array<KvVec>;

// Where `kv_head`'s rows of logical block `block` of `seq` start, in chunks, or INVALID when
// another shard holds the block.
fn block_at(seq: u32, kv_head: u32, block: u32) -> u32 {
    let base = place_index(block_place(seq, kv_head, block));
    if (base == INVALID) {
        return INVALID;
    }
    return base / VEC4_PER_CHUNK;
}

// Row `row` of the block whose rows start at `at`.
fn row_at(at: u32, row: u32) -> u32 {
    return at + row * (HD4 / VEC4_PER_CHUNK);
}

// The row index (see src/cache/format.rs) of the row whose first chunk is `at`.
fn row_of(at: u32) -> u32 {
    return at / (HD4 / VEC4_PER_CHUNK);
}

fn elsewhere(at: u32) -> bool {
    return at == INVALID;
}

// Chunk `i` counted from `at`: the keys of a tile are consecutive rows of one block.
fn load_k(at: u32, i: u32) -> KvVec {
    return k_cache[at + i];
}

fn load_v(at: u32, i: u32) -> KvVec {
    return v_cache[at + i];
}
