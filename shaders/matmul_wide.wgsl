// The arithmetic roofline with more work per thread, for GPUs with registers to spare: a
// 128x128 tile of C per workgroup of 16x16 threads, each thread owning an 8x8 block in
// registers (rows 4 ty.. and 64 + 4 ty.., vec4 columns tx and 16 + tx). A and B stream
// through workgroup memory 8 k at a time; per k a thread reads two vec4 of A and two of B
// for 64 multiply-adds (the 64x64 kernel in matmul.wgsl reads one vec4 of each for 16), and
// the next step's A and B are loaded into registers while this step's multiply-adds run.
// Every dimension must be a multiple of 128. Follows matmul_bindings.wgsl
// and matmul_buffers.wgsl.

const TILE: u32 = 128u;
const HALF: u32 = 64u;
const BK: u32 = 8u;
const TILE4: u32 = 32u;

// a_tile[kk][row]: A transposed, so a thread's four consecutive rows are adjacent.
var<workgroup> a_tile: array<f32, BK * TILE>;
// b_tile[kk][col / 4].
var<workgroup> b_tile: array<vec4<f32>, BK * TILE4>;

fn a_rows(kk: u32, row: u32) -> vec4<f32> {
    let i = kk * TILE + row;
    return vec4<f32>(a_tile[i], a_tile[i + 1u], a_tile[i + 2u], a_tile[i + 3u]);
}

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
    // What this thread stages per step: A row a_row's k quad a_kq (two threads per 32-byte
    // row segment), and B row b_k's vec4 column b_c4 (a warp reads 512 contiguous bytes).
    let a_row = tid / 2u;
    let a_kq = tid % 2u;
    let b_k = tid / TILE4;
    let b_c4 = tid % TILE4;
    var next_a = a[(row0 + a_row) * k4 + a_kq];
    var next_b = b[b_k * n4 + col0 / 4u + b_c4];
    var c00 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < params.k; k0 += BK) {
        // Every thread is done reading the previous step's tiles.
        workgroupBarrier();
        a_tile[(a_kq * 4u + 0u) * TILE + a_row] = next_a.x;
        a_tile[(a_kq * 4u + 1u) * TILE + a_row] = next_a.y;
        a_tile[(a_kq * 4u + 2u) * TILE + a_row] = next_a.z;
        a_tile[(a_kq * 4u + 3u) * TILE + a_row] = next_a.w;
        b_tile[b_k * TILE4 + b_c4] = next_b;
        workgroupBarrier();
        let k_next = k0 + BK;
        if (k_next < params.k) {
            next_a = a[(row0 + a_row) * k4 + k_next / 4u + a_kq];
            next_b = b[(k_next + b_k) * n4 + col0 / 4u + b_c4];
        }
        for (var kk = 0u; kk < BK; kk++) {
            let lo = a_rows(kk, lid.y * 4u);
            let hi = a_rows(kk, HALF + lid.y * 4u);
            let b0 = b_tile[kk * TILE4 + lid.x];
            let b1 = b_tile[kk * TILE4 + 16u + lid.x];
            c00 += lo.x * b0;
            c01 += lo.x * b1;
            c10 += lo.y * b0;
            c11 += lo.y * b1;
            c20 += lo.z * b0;
            c21 += lo.z * b1;
            c30 += lo.w * b0;
            c31 += lo.w * b1;
            c40 += hi.x * b0;
            c41 += hi.x * b1;
            c50 += hi.y * b0;
            c51 += hi.y * b1;
            c60 += hi.z * b0;
            c61 += hi.z * b1;
            c70 += hi.w * b0;
            c71 += hi.w * b1;
        }
    }
    let lo_row = row0 + lid.y * 4u;
    let hi_row = lo_row + HALF;
    let col_a = col0 / 4u + lid.x;
    let col_b = col_a + 16u;
    c[(lo_row + 0u) * n4 + col_a] = c00;
    c[(lo_row + 0u) * n4 + col_b] = c01;
    c[(lo_row + 1u) * n4 + col_a] = c10;
    c[(lo_row + 1u) * n4 + col_b] = c11;
    c[(lo_row + 2u) * n4 + col_a] = c20;
    c[(lo_row + 2u) * n4 + col_b] = c21;
    c[(lo_row + 3u) * n4 + col_a] = c30;
    c[(lo_row + 3u) * n4 + col_b] = c31;
    c[(hi_row + 0u) * n4 + col_a] = c40;
    c[(hi_row + 0u) * n4 + col_b] = c41;
    c[(hi_row + 1u) * n4 + col_a] = c50;
    c[(hi_row + 1u) * n4 + col_b] = c51;
    c[(hi_row + 2u) * n4 + col_a] = c60;
    c[(hi_row + 2u) * n4 + col_b] = c61;
    c[(hi_row + 3u) * n4 + col_a] = c70;
    c[(hi_row + 3u) * n4 + col_b] = c71;
}
