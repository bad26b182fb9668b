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

// Where row `r` of token `t` goes (rows are the token's Q heads, then its K heads, then its
// V heads): its tensor (0 Q, 1 K, 2 V), its hash and its first slice in that tensor.
struct RowTarget {
    tensor: u32,
    base: u32,
    first: u32,
}

fn row_target(t: u32, r: u32) -> RowTarget {
    let info = tokens[t];
    if (r < params.q_heads) {
        let base = row_seed(0u, params.layer, r, info.y, info.x, info.zw);
        return RowTarget(0u, base, (t * params.q_heads + r) * HD4);
    }
    // K and V ignore the request seed, so identical prefixes give identical cache blocks.
    var tensor = 1u;
    var head = r - params.q_heads;
    if (head >= params.kv_heads) {
        tensor = 2u;
        head -= params.kv_heads;
    }
    let base = row_seed(tensor, params.layer, head, info.y, info.x, vec2<u32>(0u, 0u));
    return RowTarget(tensor, base, (t * params.kv_heads + head) * HD4);
}

// Slice `i` of the row `dest` names.
fn write_slice(dest: RowTarget, i: u32) {
    let value = row4(dest.base, i);
    switch dest.tensor {
        case 0u: {
            q_out[dest.first + i] = value;
        }
        case 1u: {
            k_out[dest.first + i] = value;
        }
        default: {
            v_out[dest.first + i] = value;
        }
    }
}

// One invocation per four-value slice (GPUs): neighbouring invocations write neighbouring
// slices.
@compute @workgroup_size(64)
fn generate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.grid_x_threads;
    let rows_per_token = params.q_heads + 2u * params.kv_heads;
    if (idx >= params.num_tokens * rows_per_token * HD4) {
        return;
    }
    let row = idx / HD4;
    let t = row / rows_per_token;
    write_slice(row_target(t, row - t * rows_per_token), idx % HD4);
}

// One invocation per row (CPU adapters): the row's seven hashes, its token's load and its
// placement's divisions, per-lane scalar work on llvmpipe, happen once per row rather than
// once per slice.
@compute @workgroup_size(64)
fn generate_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x + gid.y * params.grid_x_threads;
    let rows_per_token = params.q_heads + 2u * params.kv_heads;
    if (row >= params.num_tokens * rows_per_token) {
        return;
    }
    let t = row / rows_per_token;
    let dest = row_target(t, row - t * rows_per_token);
    for (var i = 0u; i < HD4; i++) {
        write_slice(dest, i);
    }
}
