// The tiled attention core of decode and prefill: one workgroup streams the keys of one
// sequence and one KV head through workgroup memory, tile by tile, for up to ROWS query rows
// ((query token, head of the GQA group) pairs), keeping an online softmax per row. Every K/V
// row is read once per workgroup however many query heads share it. Follows
// attention_bindings.wgsl and the pool's load file (tiles_pool_chunks.wgsl, or
// tiles_pool_elements.wgsl for rows that are not whole 16-byte chunks), which defines
// stage_rows; the composer appends `update_softmax` (softmax_serial.wgsl, or
// softmax_subgroup.wgsl where the adapter has subgroups).

// The pools are storage buffers (GPUs stream them at full speed); a KvVec is what one load
// reads, a 16-byte chunk or a storage element, as the pool's load file decodes it.
@group(0) @binding(2) var<storage, read> k_cache: array<KvVec>;
@group(0) @binding(3) var<storage, read> v_cache: array<KvVec>;

// Element `i` of the V pool (v) or the K pool.
fn pool_load(v: bool, i: u32) -> KvVec {
    if (v) {
        return v_cache[i];
    }
    return k_cache[i];
}

// Where key `tok` of `seq` is in this shard's pool: (its row's first KvVec, its row's first
// scale word), or x = INVALID when another shard holds it. A block is its rows' values, then
// their scales (src/cache/format.rs); the load file says how many KvVecs a row takes
// (ROW_LOADS) and how many scale words one holds (WORDS_PER_LOAD). Without scales the second
// index is unused.
fn key_at(seq: u32, kv_head: u32, tok: u32) -> vec2<u32> {
    let place = block_place(seq, kv_head, tok / params.block_size);
    if (place.y == INVALID) {
        return vec2<u32>(INVALID, 0u);
    }
    let rpb = rows_per_block();
    let row = place.x + tok % params.block_size;
    let start = place.y * (rpb * ROW_LOADS + rpb * ROW_SCALES / WORDS_PER_LOAD);
    let scales = (start + rpb * ROW_LOADS) * WORDS_PER_LOAD;
    return vec2<u32>(start + row * ROW_LOADS, scales + row * ROW_SCALES);
}

var<workgroup> q_tile: array<vec4<f32>, ROWS * HD4>;
// Key kk's slices start at kk * KV_STRIDE: one slice of padding per row, so the threads of a
// warp scoring consecutive keys read slice i of rows that fall in different memory banks (an
// unpadded row of 16..64 slices puts every row's slice i in the same bank).
const KV_STRIDE: u32 = HD4 + 1u;
var<workgroup> kv_tile: array<vec4<f32>, TILE_KEYS * KV_STRIDE>;
var<workgroup> p_tile: array<f32, ROWS * TILE_KEYS>;
var<workgroup> key_slot: array<vec2<u32>, TILE_KEYS>;
var<workgroup> row_m: array<f32, ROWS>;
var<workgroup> row_l: array<f32, ROWS>;
var<workgroup> row_alpha: array<f32, ROWS>;
// Keys at positions in [row_first[r], row_limit[r]) are visible to row r (the causal mask and
// the sliding window).
var<workgroup> row_first: array<u32, ROWS>;
var<workgroup> row_limit: array<u32, ROWS>;

var<private> acc: array<vec4<f32>, ACC_SLOTS>;

// The score phase gives thread tid key tid % TILE_KEYS of the tile and rows tid / TILE_KEYS,
// + SCORE_STEP, ... (SCORE_ROWS of them): one K slice load serves all of its rows, and the
// threads sharing a row read the same Q slice (a broadcast). TILE_KEYS <= WG.
const SCORE_STEP: u32 = WG / TILE_KEYS;
const SCORE_ROWS: u32 = (ROWS + SCORE_STEP - 1u) / SCORE_STEP;

// Threads 0..TILE_KEYS write the places of keys [tile_start, tile_start + TILE_KEYS) into
// key_slot, INVALID from key_end on.
fn look_up_keys(seq: u32, kv_head: u32, tile_start: u32, key_end: u32, tid: u32) {
    if (tid < TILE_KEYS) {
        let tok = tile_start + tid;
        var at = vec2<u32>(INVALID, 0u);
        if (tok < key_end) {
            at = key_at(seq, kv_head, tok);
        }
        key_slot[tid] = at;
    }
}

// Streams keys [key_begin, key_end) against q_tile rows [0, rows). Callers fill q_tile (already
// scaled), row_first and row_limit first. Leaves the result in acc, row_m and row_l.
fn attend(seq: u32, kv_head: u32, key_begin: u32, key_end: u32, rows: u32, tid: u32) {
    for (var j = 0u; j < ACC_SLOTS; j++) {
        acc[j] = vec4<f32>(0.0);
    }
    if (tid < ROWS) {
        row_m[tid] = MASKED;
        row_l[tid] = 0.0;
        row_alpha[tid] = 1.0;
    }
    var tile_start = key_begin;
    // The next tile's keys are looked up during this tile's accumulate phase, when no thread
    // reads key_slot any more (its last reads, the V loads, end at the barrier before), so
    // the block-table loads overlap the arithmetic and the loop top's barrier publishes them:
    // four barriers per tile, not five.
    look_up_keys(seq, kv_head, tile_start, key_end, tid);
    loop {
        if (tile_start >= key_end) {
            break;
        }
        workgroupBarrier();
        stage_rows(false, tid);
        workgroupBarrier();
        // Scores: this thread's key against each of its rows, reading each K slice once for
        // all of them.
        let own = tid % TILE_KEYS;
        let key = tile_start + own;
        var dots: array<vec4<f32>, SCORE_ROWS>;
        for (var i = 0u; i < HD4; i++) {
            let k = kv_tile[own * KV_STRIDE + i];
            for (var n = 0u; n < SCORE_ROWS; n++) {
                let r = tid / TILE_KEYS + n * SCORE_STEP;
                if (r < rows) {
                    dots[n] += q_tile[r * HD4 + i] * k;
                }
            }
        }
        for (var n = 0u; n < SCORE_ROWS; n++) {
            let r = tid / TILE_KEYS + n * SCORE_STEP;
            if (r < ROWS) {
                var score = MASKED;
                if (r < rows && key_slot[own].x != INVALID && key < row_limit[r] && key >= row_first[r]) {
                    score = dot(dots[n], vec4<f32>(1.0));
                }
                p_tile[r * TILE_KEYS + own] = score;
            }
        }
        workgroupBarrier();
        // K is no longer needed: load V into the same tile, then update the rows' softmax state.
        stage_rows(true, tid);
        update_softmax(rows, tid);
        workgroupBarrier();
        for (var j = 0u; j < ACC_SLOTS; j++) {
            let r = (tid + j * WG) / HD4;
            if (r < rows) {
                acc[j] *= row_alpha[r];
            }
        }
        // Keys outer, this thread's output slices inner: where HD4 divides WG all of a
        // thread's slices are the same slice of different rows, so each V slice is read once
        // for all of them.
        for (var kk = 0u; kk < TILE_KEYS; kk++) {
            for (var j = 0u; j < ACC_SLOTS; j++) {
                let pair = tid + j * WG;
                let r = pair / HD4;
                if (r < rows) {
                    acc[j] += p_tile[r * TILE_KEYS + kk] * kv_tile[kk * KV_STRIDE + pair % HD4];
                }
            }
        }
        tile_start += TILE_KEYS;
        look_up_keys(seq, kv_head, tile_start, key_end, tid);
    }
}

// Writes this workgroup's partial state for `partition`. Each kernel file defines
// `output_row(r)`, the global row (query token x q_heads + head) of local row r. With one
// partition the rows are final (`output_factor`).
fn write_partials(rows: u32, tid: u32, part: u32) {
    // Publishes row_l to every thread even when attend streamed no tile (its barriers then
    // never ran).
    workgroupBarrier();
    for (var j = 0u; j < ACC_SLOTS; j++) {
        let pair = tid + j * WG;
        let r = pair / HD4;
        if (r < rows) {
            let row = output_row(r);
            let factor = output_factor(row_l[r]);
            partial_acc[(row * params.num_partitions + part) * HD4 + pair % HD4] = acc[j] * factor;
        }
    }
    if (tid < rows) {
        partial_ml[output_row(tid) * params.num_partitions + part] = vec2<f32>(row_m[tid], row_l[tid]);
    }
}
