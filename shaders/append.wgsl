// Cache writes, like vLLM's reshape_and_cache: an append entry point scatters the K/V rows of
// many new tokens of many sequences into their slots in one dispatch (append_plain.wgsl for
// f32 and f16, append_scaled.wgsl for formats with scales, each for buffer- and
// texture-backed pools); `copy_blocks` performs the block copies copy-on-write asks for in
// buffer-backed pools (texture-backed pools use the driver's texture copies). One dispatch
// per pool shard; each ignores other shards' blocks.
// The composer prepends the KvVec prelude, HEAD_DIM, HD4, ROW_SCALES and SCALE_GROUP.

struct AppendParams {
    count: u32,
    kv_heads: u32,
    block_size: u32,
    shard_first_block: u32,
    shard_blocks: u32,
    grid_x_threads: u32,
    // Texture-backed pools: log2 of the blocks side by side in a texture row.
    texture_row_shift: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: AppendParams;
// New rows, [token][kv_head][head_dim], f32.
@group(0) @binding(1) var<storage, read> new_k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> new_v: array<vec4<f32>>;
// append: slot (block * block_size + offset) per token, 0xffffffff to skip.
// copy_blocks: (src, dst) block pairs, both local to this shard.
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<KvVec>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<KvVec>;
// Texture-backed pools: rgba32uint values and a scaled format's scales in r32uint, one per
// texel, with 2^texture_row_shift blocks side by side in each texture row (gpu::TextureRows).
@group(0) @binding(6) var k_texels: texture_storage_2d<rgba32uint, write>;
@group(0) @binding(7) var v_texels: texture_storage_2d<rgba32uint, write>;
@group(0) @binding(8) var k_scale_texels: texture_storage_2d<r32uint, write>;
@group(0) @binding(9) var v_scale_texels: texture_storage_2d<r32uint, write>;

// KvVec elements holding one row's values; a block is its rows' values, then their scales.
const ROW_VECS: u32 = HD4 / SLICES_PER_VEC;

const SKIP: u32 = 0xffffffffu;

// Where new token `token` goes in this dispatch's shard: (block within the shard, row within
// the block), or x = SKIP when the token is padding or another shard holds its block.
fn token_place(token: u32) -> vec2<u32> {
    let slot = indices[token];
    if (slot == SKIP) {
        return vec2<u32>(SKIP, 0u);
    }
    let block = slot / params.block_size;
    if (block < params.shard_first_block || block >= params.shard_first_block + params.shard_blocks) {
        return vec2<u32>(SKIP, 0u);
    }
    return vec2<u32>(block - params.shard_first_block, slot % params.block_size);
}

// Texel `texel` of local block `block`'s span in a texture whose block spans are `span`
// texels wide.
fn block_texel(block: u32, span: u32, texel: u32) -> vec2<u32> {
    let column = block & ((1u << params.texture_row_shift) - 1u);
    return vec2<u32>(column * span + texel, block >> params.texture_row_shift);
}

@compute @workgroup_size(64)
fn copy_blocks(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let per_block = params.kv_heads * params.block_size * (ROW_VECS + ROW_SCALES);
    let pair = idx / per_block;
    if (pair >= params.count) {
        return;
    }
    let offset = idx % per_block;
    let src = indices[2u * pair] * per_block + offset;
    let dst = indices[2u * pair + 1u] * per_block + offset;
    k_cache[dst] = k_cache[src];
    v_cache[dst] = v_cache[src];
}

