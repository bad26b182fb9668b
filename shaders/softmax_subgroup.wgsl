// The key tile's online-softmax update with subgroup shuffles. Every thread of the workgroup
// works: ROW_LANES = WG / ROWS neighbouring threads share a row (8 in decode, 4 in prefill's
// 16-row tiles), each scanning every ROW_LANES-th key of the tile, and they combine their max
// and then their sum in log2(ROW_LANES) butterfly steps of subgroupShuffleXor. The serial
// form leaves all but ROWS threads idle for the whole scan (two passes of TILE_KEYS, with an
// exp per key). Part of attention_tiles.wgsl; built only where the adapter's smallest
// subgroup holds a row's lanes (src/kernels/reductions.rs). Like most GPU compute code, it
// takes a subgroup of a one-dimensional workgroup to be a run of consecutive local invocation
// indices aligned to its size, so lanes tid and tid ^ mask (mask < ROW_LANES) share one.

const ROW_LANES: u32 = WG / ROWS;

fn update_softmax(rows: u32, tid: u32) {
    let r = tid / ROW_LANES;
    let lane = tid % ROW_LANES;
    let base = r * TILE_KEYS;
    var m_tile = MASKED;
    for (var kk = lane; kk < TILE_KEYS; kk += ROW_LANES) {
        m_tile = max(m_tile, p_tile[base + kk]);
    }
    for (var mask = 1u; mask < ROW_LANES; mask <<= 1u) {
        m_tile = max(m_tile, subgroupShuffleXor(m_tile, mask));
    }
    // Every lane reads the old max before lane 0 replaces it: lane 0's write below depends,
    // through the shuffles, on every lane's sum, and so on every lane's read.
    let m_old = row_m[r];
    let m_new = max(m_old, m_tile);
    var sum = 0.0;
    for (var kk = lane; kk < TILE_KEYS; kk += ROW_LANES) {
        let score = p_tile[base + kk];
        // Masked keys hold exactly MASKED. A NaN score (a NaN in K) fails every ordered
        // comparison, so it is not taken for masked and reaches the output, as in the reference.
        let p = select(exp(score - m_new), 0.0, score == MASKED);
        p_tile[base + kk] = p;
        sum += p;
    }
    for (var mask = 1u; mask < ROW_LANES; mask <<= 1u) {
        sum += subgroupShuffleXor(sum, mask);
    }
    if (lane == 0u && r < rows) {
        let alpha = exp(m_old - m_new);
        row_alpha[r] = alpha;
        row_l[r] = row_l[r] * alpha + sum;
        row_m[r] = m_new;
    }
}
