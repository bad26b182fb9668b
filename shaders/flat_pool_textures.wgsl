// The flat attention's K and V pools as rgba32uint textures with one block per row (see
// src/gpu/shard.rs): a key's row is addressed by (its first texel in the block's row, the
// block's row in the shard). CPU adapters fetch texels through their vectorised sampler
// path, several times faster than the per-lane loop a storage-buffer load compiles to.

@group(0) @binding(2) var k_texels: texture_2d<u32>;
@group(0) @binding(3) var v_texels: texture_2d<u32>;

// Where `kv_head`'s rows of logical block `block` of `seq` start: (their first texel in the
// block's texture row, that row), or y = INVALID when another shard holds the block.
fn block_at(seq: u32, kv_head: u32, block: u32) -> vec2<u32> {
    let place = block_place(seq, kv_head, block);
    return vec2<u32>(place.x / VEC4_PER_CHUNK, place.y);
}

// Row `row` of the block whose rows start at `at`: the same texture row, further along.
fn row_at(at: vec2<u32>, row: u32) -> vec2<u32> {
    return vec2<u32>(at.x + row * (HD4 / VEC4_PER_CHUNK), at.y);
}

// The row index (see src/cache/format.rs) of the row starting at texel `at`: a texture row
// holds one block's kv_heads * block_size rows.
fn row_of(at: vec2<u32>) -> u32 {
    let kv_heads = params.q_heads / params.group;
    return at.y * kv_heads * params.block_size + at.x / (HD4 / VEC4_PER_CHUNK);
}

fn elsewhere(at: vec2<u32>) -> bool {
    return at.y == INVALID;
}

// Chunk `i` counted from `at`: the keys of a tile are consecutive rows of one block, and a
// block is one texture row.
fn load_k(at: vec2<u32>, i: u32) -> KvVec {
    return chunk_of_texel(textureLoad(k_texels, vec2<u32>(at.x + i, at.y), 0));
}

fn load_v(at: vec2<u32>, i: u32) -> KvVec {
    return chunk_of_texel(textureLoad(v_texels, vec2<u32>(at.x + i, at.y), 0));
}
