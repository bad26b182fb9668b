// Prefill attention: causal attention for a chunk of query tokens per sequence, whose earlier
// tokens may already be cached (a prefix hit or an earlier chunk). Workgroup (x, y, z) =
// (tile of ROWS query rows, kv_head, sequence); a row is one (query token, head of the GQA
// group) pair, so K/V tiles are shared by the whole group. The chunk's own K/V must be
// appended before this runs. On CPU adapters the keys a tile sees are split
// (params.splits > 1, x enumerating (row tile, split)) so that no invocation runs past
// llvmpipe's loop budget; combine.wgsl then merges the splits. GPUs run one split.

var<private> first_token_row: u32;
var<private> row0: u32;
var<private> kv_head_base: u32;

fn output_row(r: u32) -> u32 {
    let local = row0 + r;
    return (first_token_row + local / params.group) * params.q_heads + kv_head_base + local % params.group;
}

@compute @workgroup_size(WG)
fn prefill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let seq = wg.z;
    let kv_head = wg.y;
    let info = seq_info[seq];
    let context = info.x;
    let q_len = info.z;
    let total_rows = q_len * params.group;
    let split = wg.x % params.splits;
    let row_tile = wg.x / params.splits;
    if (row_tile * ROWS >= total_rows) {
        return;
    }
    row0 = row_tile * ROWS;
    first_token_row = info.y;
    kv_head_base = kv_head * params.group;
    let rows = min(ROWS, total_rows - row0);
    let first_position = context - q_len;

    for (var idx = tid; idx < ROWS * HD4; idx += WG) {
        let r = idx / HD4;
        var value = vec4<f32>(0.0);
        if (r < rows) {
            value = q[output_row(r) * HD4 + idx % HD4] * params.scale;
        }
        q_tile[idx] = value;
    }
    if (tid < ROWS) {
        var limit = 0u;
        if (tid < rows) {
            limit = first_position + (row0 + tid) / params.group + 1u;
        }
        row_first[tid] = window_start(limit);
        row_limit[tid] = limit;
    }
    // The tile's first row sees the earliest keys; with a window, nothing before its start.
    // Split `split` takes the next params.partition_tokens of them (all of them at one split).
    let tile_begin = window_start(first_position + row0 / params.group + 1u);
    let tile_end = first_position + (row0 + rows - 1u) / params.group + 1u;
    let key_begin = min(tile_begin + split * params.partition_tokens, tile_end);
    let key_end = select(tile_end, min(key_begin + params.partition_tokens, tile_end), params.splits > 1u);
    attend(seq, kv_head, key_begin, key_end, rows, tid);
    write_partials(rows, tid, params.partition_base + split);
}
