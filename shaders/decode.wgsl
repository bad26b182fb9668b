// Decode attention (flash-decoding): one query token per sequence. Workgroup (x, y, z) =
// (context split, kv_head x group chunk, sequence). Each split covers `partition_tokens` keys
// so a small batch with a long context still fills the device; combine.wgsl reduces splits.
// Follows attention_bindings.wgsl and attention_tiles.wgsl. Built for GPUs; CPU adapters
// (lavapipe) use attention_flat.wgsl, which has no barriers.

var<private> out_base: u32;

fn output_row(r: u32) -> u32 {
    return out_base + r;
}

@compute @workgroup_size(WG)
fn decode(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let seq = wg.z;
    let kv_head = wg.y / params.group_chunks;
    let g0 = (wg.y % params.group_chunks) * ROWS;
    let rows = min(ROWS, params.group - g0);
    let context = seq_info[seq].x;
    // Splits cover the keys the query sees: the whole context, or its last params.window.
    let first_key = window_start(context);
    let key_begin = min(first_key + wg.x * params.partition_tokens, context);
    let key_end = min(key_begin + params.partition_tokens, context);
    out_base = seq * params.q_heads + kv_head * params.group + g0;

    for (var idx = tid; idx < ROWS * HD4; idx += WG) {
        let r = idx / HD4;
        var value = vec4<f32>(0.0);
        if (r < rows) {
            value = q[(out_base + r) * HD4 + idx % HD4] * params.scale;
        }
        q_tile[idx] = value;
    }
    if (tid < ROWS) {
        row_first[tid] = first_key;
        row_limit[tid] = context;
    }
    attend(seq, kv_head, key_begin, key_end, rows, tid);
    write_partials(rows, tid, params.partition_base + wg.x);
}
