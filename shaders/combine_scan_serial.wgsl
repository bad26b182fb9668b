// A row's largest partial max M and its rescaled sum sum_p exp(m_p - M) l_p over the row's
// partitions starting at `first`, for adapters without subgroup operations: every thread
// scans all partitions itself (the same loads in each thread). Part of combine.wgsl.

fn row_state(first: u32) -> vec2<f32> {
    var m = MASKED;
    for (var p = 0u; p < params.num_partitions; p++) {
        m = max(m, partial_ml[first + p].x);
    }
    var l = 0.0;
    for (var p = 0u; p < params.num_partitions; p++) {
        let ml = partial_ml[first + p];
        l += exp(ml.x - m) * ml.y;
    }
    return vec2<f32>(m, l);
}
