// A row's largest partial max M and its rescaled sum sum_p exp(m_p - M) l_p over the row's
// partitions starting at `first`, with subgroup reductions: each lane scans every n-th
// partition (n lanes in the subgroup) and subgroupMax / subgroupAdd combine the lanes, so a
// row of P partitions costs each thread P / n loads and exps instead of P. Every subgroup of
// the row's workgroup computes the same state, so no workgroup memory or barrier is needed.
// The lane index and width are counted over the active lanes, which are all of them: a
// workgroup returns early only as a whole. Part of combine.wgsl.

fn row_state(first: u32) -> vec2<f32> {
    let lane = subgroupExclusiveAdd(1u);
    let lanes = subgroupAdd(1u);
    var m = MASKED;
    for (var p = lane; p < params.num_partitions; p += lanes) {
        m = max(m, partial_ml[first + p].x);
    }
    m = subgroupMax(m);
    var l = 0.0;
    for (var p = lane; p < params.num_partitions; p += lanes) {
        let ml = partial_ml[first + p];
        l += exp(ml.x - m) * ml.y;
    }
    return vec2<f32>(m, subgroupAdd(l));
}
