// The arithmetic roofline: a tiled f32 matmul C = A x B (row-major, every dimension a multiple
// of 64). A 64x64 tile of C per workgroup of 16x16 threads, each thread owning a 4x4 block in
// registers; A and B stream through workgroup memory 16 columns / rows at a time, so every
// value loaded from memory feeds 64 (A) or 64 (B) multiply-adds. `pagekv bench` sets prefill's
// FLOP/s beside this kernel's on the same adapter. Follows matmul_bindings.wgsl and
// matmul_buffers.wgsl.

const TILE: u32 = 64u;
const BK: u32 = 16u;
const TILE4: u32 = 16u;

// a_tile[kk][row]: A transposed, so a thread's four rows are adjacent.
var<workgroup> a_tile: array<f32, BK * TILE>;
// b_tile[kk][col / 4].
var<workgroup> b_tile: array<vec4<f32>, BK * TILE4>;

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let k4 = params.k / 4u;
    let n4 = params.n / 4u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < params.k; k0 += BK) {
        // A: 64 rows x 16 k = 256 vec4, one per thread, stored transposed.
        let r = tid / 4u;
        let kq = tid % 4u;
        let av = a[(row0 + r) * k4 + k0 / 4u + kq];
        workgroupBarrier();
        a_tile[(kq * 4u + 0u) * TILE + r] = av.x;
        a_tile[(kq * 4u + 1u) * TILE + r] = av.y;
        a_tile[(kq * 4u + 2u) * TILE + r] = av.z;
        a_tile[(kq * 4u + 3u) * TILE + r] = av.w;
        // B: 16 k x 64 cols = 256 vec4, one per thread.
        let kk_b = tid / TILE4;
        let c4 = tid % TILE4;
        b_tile[kk_b * TILE4 + c4] = b[(k0 + kk_b) * n4 + col0 / 4u + c4];
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let bv = b_tile[kk * TILE4 + lid.x];
            let base = kk * TILE + lid.y * 4u;
            let av4 = vec4<f32>(a_tile[base], a_tile[base + 1u], a_tile[base + 2u], a_tile[base + 3u]);
            acc0 += av4.x * bv;
            acc1 += av4.y * bv;
            acc2 += av4.z * bv;
            acc3 += av4.w * bv;
        }
    }
    let out_row = row0 + lid.y * 4u;
    let out_col4 = col0 / 4u + lid.x;
    c[(out_row + 0u) * n4 + out_col4] = acc0;
    c[(out_row + 1u) * n4 + out_col4] = acc1;
    c[(out_row + 2u) * n4 + out_col4] = acc2;
    c[(out_row + 3u) * n4 + out_col4] = acc3;
}
