// The flat attention's K and V pools as textures (see src/gpu/shard.rs): the values in
// rgba32uint texels, and a scaled format's scales in an r32uint texture of their own, one
// scale per texel (the append kernel writes whole texels, and a row's scales need not fill
// one). Each texture row holds 2^texture_row_shift blocks side by side, block b at row
// b >> texture_row_shift. CPU adapters load texels through their vectorised
// image code, about twice as fast as the per-lane loop a storage-buffer load compiles to.
// The values are read-only storage textures rather than sampled ones: llvmpipe's image load
// skips the sampler's level-of-detail work, and GL gets no bounds-check calls around each
// load (Qwen2.5-0.5B f16 decode at batch 8, 4K, on lavapipe: 15-20% less time). The scale
// textures stay sampled: read as storage too, the FP8 decodes at head dim 128 ran about 5%
// slower.

@group(0) @binding(2) var k_texels: texture_storage_2d<rgba32uint, read>;
@group(0) @binding(3) var v_texels: texture_storage_2d<rgba32uint, read>;
@group(0) @binding(8) var k_scale_texels: texture_2d<u32>;
@group(0) @binding(9) var v_scale_texels: texture_2d<u32>;

// Load chunks (texels) holding one row's values.
const ROW_CHUNKS: u32 = HD4 / SLICES_PER_CHUNK;

// A run of consecutive rows of one block: the first row's first value texel and first scale
// texel within the block's texture row, and that texture row.
struct Rows {
    chunk: u32,
    scale: u32,
    block: u32,
}

// `kv_head`'s rows of logical block `block` of `seq`, or block = INVALID when another shard
// holds it.
fn block_at(seq: u32, kv_head: u32, block: u32) -> Rows {
    let place = block_place(seq, kv_head, block);
    if (place.y == INVALID) {
        return Rows(0u, 0u, INVALID);
    }
    let rows = rows_per_block();
    let column = place.y & ((1u << params.texture_row_shift) - 1u);
    let first_row = column * rows + place.x;
    return Rows(first_row * ROW_CHUNKS, first_row * ROW_SCALES, place.y >> params.texture_row_shift);
}

// Row `row` of the run starting at `at`: the same texture row, further along.
fn row_at(at: Rows, row: u32) -> Rows {
    return Rows(at.chunk + row * ROW_CHUNKS, at.scale + row * ROW_SCALES, at.block);
}

fn elsewhere(at: Rows) -> bool {
    return at.block == INVALID;
}

// Chunk `i` counted from `at`: the keys of a tile are consecutive rows of one block, and a
// block is one span of one texture row.
fn load_k(at: Rows, i: u32) -> KvVec {
    return chunk_of_texel(textureLoad(k_texels, vec2<u32>(at.chunk + i, at.block)));
}

fn load_v(at: Rows, i: u32) -> KvVec {
    return chunk_of_texel(textureLoad(v_texels, vec2<u32>(at.chunk + i, at.block)));
}

// Scale `g` of row `row` counted from `at` (formats with scales only) times CODE_UNIT: the
// factor decode4's values take.
fn k_scale(at: Rows, row: u32, g: u32) -> f32 {
    return bitcast<f32>(textureLoad(k_scale_texels, vec2<u32>(at.scale + row * ROW_SCALES + g, at.block), 0).x) * CODE_UNIT;
}

fn v_scale(at: Rows, row: u32, g: u32) -> f32 {
    return bitcast<f32>(textureLoad(v_scale_texels, vec2<u32>(at.scale + row * ROW_SCALES + g, at.block), 0).x) * CODE_UNIT;
}
