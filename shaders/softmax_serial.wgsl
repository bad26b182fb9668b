// The key tile's online-softmax update for adapters without subgroup operations: row r's
// leader (thread r) scans its TILE_KEYS scores for the new max, turns them into probabilities
// and sums them, while the workgroup's other threads load V. Part of attention_tiles.wgsl.

fn update_softmax(rows: u32, tid: u32) {
    if (tid < rows) {
        let m_old = row_m[tid];
        var m_tile = MASKED;
        for (var kk = 0u; kk < TILE_KEYS; kk++) {
            m_tile = max(m_tile, p_tile[tid * TILE_KEYS + kk]);
        }
        let m_new = max(m_old, m_tile);
        var sum = 0.0;
        for (var kk = 0u; kk < TILE_KEYS; kk++) {
            let score = p_tile[tid * TILE_KEYS + kk];
            // Masked keys hold exactly MASKED. A NaN score (a NaN in K) fails every ordered
            // comparison, so it is not taken for masked and reaches the output, as in the reference.
            let p = select(exp(score - m_new), 0.0, score == MASKED);
            p_tile[tid * TILE_KEYS + kk] = p;
            sum += p;
        }
        let alpha = exp(m_old - m_new);
        row_alpha[tid] = alpha;
        row_l[tid] = row_l[tid] * alpha + sum;
        row_m[tid] = m_new;
    }
}
