// Merges partial softmax states (from context splits and pool shards) into the final output:
// out = sum_p exp(m_p - M) acc_p / sum_p exp(m_p - M) l_p, with M the largest m_p.
// A step whose partials outgrow one binding merges its pool shards a group at a time: each
// group's pass folds the output so far in as one more partition (its accumulator is the
// normalised output times the carried sum) and carries the merged max and sum to the next.
// COMBINE_ROWS output rows per workgroup, WG / COMBINE_ROWS threads per row splitting its head
// dim: GPUs give a row a whole workgroup; CPU adapters (combineflat) give each SIMD lane its
// own row, since there every thread's scan of the partitions is a per-lane loop of scalar
// loads. The composer prepends HEAD_DIM, HD4, WG and COMBINE_ROWS, and appends `row_state`
// (combine_scan_serial.wgsl, or combine_scan_subgroup.wgsl where the adapter has subgroups).

struct CombineParams {
    rows: u32,
    num_partitions: u32,
    // Rows covered by one row of the 2-D grid (a multiple of every COMBINE_ROWS).
    row_span: u32,
    // Row offsets of the carried (max, sum) this pass reads and writes; NO_CARRY for none.
    carry_read: u32,
    carry_write: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const ROW_THREADS: u32 = WG / COMBINE_ROWS;

@group(0) @binding(0) var<uniform> params: CombineParams;
@group(0) @binding(1) var<storage, read> partial_acc: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> partial_ml: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> carry_ml: array<vec2<f32>>;

const MASKED: f32 = -3.0e38;
const NO_CARRY: u32 = 0xffffffffu;

@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let row = wg.y * params.row_span + wg.x * COMBINE_ROWS + tid / ROW_THREADS;
    let lane = tid % ROW_THREADS;
    if (row >= params.rows) {
        return;
    }
    let first = row * params.num_partitions;
    let state = row_state(first);
    let m = state.x;
    let l = state.y;
    // One partition arrives normalised already (the attention kernel writes final rows when
    // a step has one partition; the host runs this pass then only when the caller's output
    // shares a buffer with its queries): a copy.
    let one = params.num_partitions == 1u;
    let inv_l = select(select(0.0, 1.0 / l, l > 0.0), 1.0, one);
    // The state carried from the previous shard group, if any, and the merge with it.
    var carried = vec2<f32>(MASKED, 0.0);
    let merging = params.carry_read != NO_CARRY;
    if (merging) {
        carried = carry_ml[params.carry_read + row];
    }
    let merged_m = max(m, carried.x);
    // This group's accumulator weight; a normalised single partition is scaled back by l.
    let own = exp(m - merged_m) * select(1.0, l, one);
    let previous = exp(carried.x - merged_m) * carried.y;
    let merged_l = exp(m - merged_m) * l + previous;
    let inv_merged = select(0.0, 1.0 / merged_l, merged_l > 0.0);
    for (var i = lane; i < HD4; i += ROW_THREADS) {
        var o = vec4<f32>(0.0);
        for (var p = 0u; p < params.num_partitions; p++) {
            o += exp(partial_ml[first + p].x - m) * partial_acc[(first + p) * HD4 + i];
        }
        if (merging) {
            out[row * HD4 + i] = (o * own + out[row * HD4 + i] * previous) * inv_merged;
        } else {
            out[row * HD4 + i] = o * inv_l;
        }
    }
    if (params.carry_write != NO_CARRY && lane == 0u) {
        carry_ml[params.carry_write + row] = vec2<f32>(merged_m, merged_l);
    }
}
