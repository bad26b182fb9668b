// Cache writes, like vLLM's reshape_and_cache: `append` scatters the K/V rows of many new
// tokens of many sequences into their slots in one dispatch; `copy_blocks` performs the block
// copies copy-on-write asks for; `append_texels` is `append` for texture-backed pools
// (src/gpu/shard.rs), whose block copies are the driver's texture copies. One dispatch per pool
// shard; each ignores other shards' blocks.
// The composer prepends the KvVec prelude and HEAD_DIM, HD4.

struct AppendParams {
    count: u32,
    kv_heads: u32,
    block_size: u32,
    shard_first_block: u32,
    shard_blocks: u32,
    grid_x_threads: u32,
    _pad: vec2<u32>,
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
// Texture-backed pools: rgba32uint, one block per row.
@group(0) @binding(6) var k_texels: texture_storage_2d<rgba32uint, write>;
@group(0) @binding(7) var v_texels: texture_storage_2d<rgba32uint, write>;

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

@compute @workgroup_size(64)
fn append(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let per_token = params.kv_heads * HD4;
    if (idx >= params.count * per_token) {
        return;
    }
    let place = token_place(idx / per_token);
    if (place.x == SKIP) {
        return;
    }
    let head = (idx % per_token) / HD4;
    let row = (place.x * params.kv_heads + head) * params.block_size + place.y;
    let dst = row * HD4 + idx % HD4;
    k_cache[dst] = kv_store(new_k[idx], row, idx % HD4);
    v_cache[dst] = kv_store(new_v[idx], row, idx % HD4);
}

@compute @workgroup_size(64)
fn copy_blocks(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let per_block = params.kv_heads * params.block_size * HD4;
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

// One invocation per 16-byte texel (VEC4_PER_TEXEL four-element slices of a row). A block's
// row of texels holds the same bytes as its range of a buffer-backed shard.
@compute @workgroup_size(64)
fn append_texels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let per_head = HD4 / VEC4_PER_TEXEL;
    let per_token = params.kv_heads * per_head;
    if (idx >= params.count * per_token) {
        return;
    }
    let token = idx / per_token;
    let place = token_place(token);
    if (place.x == SKIP) {
        return;
    }
    let head = (idx % per_token) / per_head;
    let texel = idx % per_head;
    let at = vec2<u32>((head * params.block_size + place.y) * per_head + texel, place.x);
    // For one slice per texel the second operand is ignored; reading the same slice keeps
    // the index in bounds.
    let src = (token * params.kv_heads + head) * HD4 + texel * VEC4_PER_TEXEL;
    let last = src + VEC4_PER_TEXEL - 1u;
    let row = (place.x * params.kv_heads + head) * params.block_size + place.y;
    textureStore(k_texels, at, kv_texel(new_k[src], new_k[last], row, texel));
    textureStore(v_texels, at, kv_texel(new_v[src], new_v[last], row, texel));
}
