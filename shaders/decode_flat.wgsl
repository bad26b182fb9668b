// Decode attention without workgroup memory or barriers: one invocation per (sequence, query
// head, context split) streams its keys straight from the paged pool, with the query and the
// accumulator in registers and an online softmax per key. Follows attention_bindings.wgsl.
//
// This is the decode pagekv builds for CPU adapters (lavapipe, SwiftShader): there a barrier
// turns the whole shader into coroutines and every workgroup-memory access into a scalarised
// gather, which made the tiled kernel (decode.wgsl) several times slower than this one.
// Neighbouring invocations are neighbouring query heads of one sequence and split, so the
// heads of a GQA group read the same K/V row at the same time. Output is the same partial
// softmax state the tiled kernel writes; combine.wgsl merges it.

@compute @workgroup_size(WG)
fn decode(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let flat = wg.x * WG + lid;
    let split = flat / params.q_heads;
    let head = flat % params.q_heads;
    if (split >= params.splits) {
        return;
    }
    let seq = wg.z;
    let kv_head = head / params.group;
    let context = seq_info[seq].x;
    let key_begin = min(split * params.partition_tokens, context);
    let key_end = min(key_begin + params.partition_tokens, context);
    let row = seq * params.q_heads + head;

    var qv: array<vec4<f32>, HD4>;
    var acc: array<vec4<f32>, HD4>;
    for (var i = 0u; i < HD4; i++) {
        qv[i] = q[row * HD4 + i] * params.scale;
        acc[i] = vec4<f32>(0.0);
    }
    var m = MASKED;
    var l = 0.0;
    for (var tok = key_begin; tok < key_end; tok++) {
        let base = key_base(seq, kv_head, tok);
        if (base == INVALID) {
            continue;
        }
        var d = vec4<f32>(0.0);
        for (var i = 0u; i < HD4; i++) {
            d += qv[i] * kv_load(k_cache[base + i]);
        }
        let score = d.x + d.y + d.z + d.w;
        let m_new = max(m, score);
        let alpha = exp(m - m_new);
        let p = exp(score - m_new);
        l = l * alpha + p;
        for (var i = 0u; i < HD4; i++) {
            acc[i] = acc[i] * alpha + p * kv_load(v_cache[base + i]);
        }
        m = m_new;
    }
    let part = params.partition_base + split;
    for (var i = 0u; i < HD4; i++) {
        partial_acc[(row * params.num_partitions + part) * HD4 + i] = acc[i];
    }
    partial_ml[row * params.num_partitions + part] = vec2<f32>(m, l);
}
