// The flat attention's K and V pools as storage buffers of load chunks (KvVec, from
// kv_chunk_*.wgsl).

@group(0) @binding(2) var<storage, read> k_cache: array<KvVec>;
@group(0) @binding(3) var<storage, read> v_cache: array<KvVec>;

// Load chunks holding one row's values.
const ROW_CHUNKS: u32 = HD4 / SLICES_PER_CHUNK;

// A run of consecutive rows of one block: the first row's first value chunk and first scale
// word, both counted from the start of the shard.
struct Rows {
    chunk: u32,
    scale: u32,
}

// `kv_head`'s rows of logical block `block` of `seq`, or chunk = INVALID when another shard
// holds the block. A block is its rows' values, then their scales (src/cache/format.rs).
fn block_at(seq: u32, kv_head: u32, block: u32) -> Rows {
    let place = block_place(seq, kv_head, block);
    if (place.y == INVALID) {
        return Rows(INVALID, 0u);
    }
    let rpb = rows_per_block();
    let start = place.y * (rpb * ROW_CHUNKS + rpb * ROW_SCALES / 4u);
    return Rows(start + place.x * ROW_CHUNKS, (start + rpb * ROW_CHUNKS) * 4u + place.x * ROW_SCALES);
}

// Row `row` of the run starting at `at`.
fn row_at(at: Rows, row: u32) -> Rows {
    return Rows(at.chunk + row * ROW_CHUNKS, at.scale + row * ROW_SCALES);
}

fn elsewhere(at: Rows) -> bool {
    return at.chunk == INVALID;
}

// Chunk `i` counted from `at`: the keys of a tile are consecutive rows of one block.
fn load_k(at: Rows, i: u32) -> KvVec {
    return k_cache[at.chunk + i];
}

fn load_v(at: Rows, i: u32) -> KvVec {
    return v_cache[at.chunk + i];
}

// Scale `g` of row `row` counted from `at` (formats with scales only) times CODE_UNIT: the
// factor decode4's values take.
fn k_scale(at: Rows, row: u32, g: u32) -> f32 {
    let w = at.scale + row * ROW_SCALES + g;
    return bitcast<f32>(chunk_word(k_cache[w / 4u], w % 4u)) * CODE_UNIT;
}

fn v_scale(at: Rows, row: u32, g: u32) -> f32 {
    let w = at.scale + row * ROW_SCALES + g;
    return bitcast<f32>(chunk_word(v_cache[w / 4u], w % 4u)) * CODE_UNIT;
}
