// Synthetic Q/K/V for the stress engine, generated on the GPU. Every element is a pure
// function of (layer, head, position, token id, dim) for K and V, plus the request seed for Q,
// so a request preempted and recomputed, or swapped out and back, sees exactly the same K/V,
// and identical prompt prefixes produce identical (shareable) cache blocks. The CPU mirror is
// `pagekv::kernels::generate::synthetic_value`. The composer prepends HEAD_DIM, HD4 and WG.

struct GenerateParams {
    num_tokens: u32,
    layer: u32,
    q_heads: u32,
    kv_heads: u32,
    grid_x_threads: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: GenerateParams;
// Per token: (token id, position, seed low bits, seed high bits).
@group(0) @binding(1) var<storage, read> tokens: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> q_out: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> k_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v_out: array<vec4<f32>>;

// Chris Wellons' lowbias32: a cheap integer hash with good avalanche.
fn mix32(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// Uniform in [-1, 1): 24 hash bits, exact in f32 on every backend.
fn unit(h: u32) -> f32 {
    return f32(h >> 8u) * (2.0 / 16777216.0) - 1.0;
}

fn row_seed(kind: u32, layer: u32, head: u32, position: u32, token: u32, seed: vec2<u32>) -> u32 {
    var h = mix32(kind ^ 0x9e3779b9u);
    h = mix32(h ^ layer);
    h = mix32(h ^ head);
    h = mix32(h ^ position);
    h = mix32(h ^ token);
    h = mix32(h ^ seed.x);
    return mix32(h ^ seed.y);
}

fn row4(base: u32, i: u32) -> vec4<f32> {
    let d = i * 4u;
    return vec4<f32>(
        unit(mix32(base ^ d)),
        unit(mix32(base ^ (d + 1u))),
        unit(mix32(base ^ (d + 2u))),
        unit(mix32(base ^ (d + 3u))),
    );
}

@compute @workgroup_size(64)
fn generate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let rows_per_token = params.q_heads + 2u * params.kv_heads;
    if (idx >= params.num_tokens * rows_per_token * HD4) {
        return;
    }
    let i = idx % HD4;
    let row = idx / HD4;
    let t = row / rows_per_token;
    let r = row % rows_per_token;
    let info = tokens[t];
    let no_seed = vec2<u32>(0u, 0u);
    if (r < params.q_heads) {
        let base = row_seed(0u, params.layer, r, info.y, info.x, info.zw);
        q_out[(t * params.q_heads + r) * HD4 + i] = row4(base, i);
    } else if (r < params.q_heads + params.kv_heads) {
        let head = r - params.q_heads;
        let base = row_seed(1u, params.layer, head, info.y, info.x, no_seed);
        k_out[(t * params.kv_heads + head) * HD4 + i] = row4(base, i);
    } else {
        let head = r - params.q_heads - params.kv_heads;
        let base = row_seed(2u, params.layer, head, info.y, info.x, no_seed);
        v_out[(t * params.kv_heads + head) * HD4 + i] = row4(base, i);
    }
}
