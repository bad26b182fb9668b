// Cache writes, like vLLM's reshape_and_cache: `append` scatters the K/V rows of many new
// tokens of many sequences into their slots in one dispatch; `copy_blocks` performs the block
// copies copy-on-write asks for. One dispatch per pool shard; each ignores other shards' blocks.
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

const SKIP: u32 = 0xffffffffu;

@compute @workgroup_size(64)
fn append(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let per_token = params.kv_heads * HD4;
    if (idx >= params.count * per_token) {
        return;
    }
    let token = idx / per_token;
    let slot = indices[token];
    if (slot == SKIP) {
        return;
    }
    let block = slot / params.block_size;
    if (block < params.shard_first_block || block >= params.shard_first_block + params.shard_blocks) {
        return;
    }
    let head = (idx % per_token) / HD4;
    let dst = (((block - params.shard_first_block) * params.kv_heads + head) * params.block_size
        + slot % params.block_size) * HD4 + idx % HD4;
    k_cache[dst] = kv_store(new_k[idx]);
    v_cache[dst] = kv_store(new_v[idx]);
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
