// The arithmetic roofline on CPU adapters: an f32 matmul C = A x B (row-major, every
// dimension a multiple of 64) with no workgroup memory or barriers. Each invocation owns a
// 16x16 block of C in registers and streams A and B straight from memory in vec4s, so every
// vec4 loaded feeds 64 multiply-adds. On lavapipe this is about 5x faster than the tiled
// matmul.wgsl (a barrier turns a shader into coroutines there; 8x8 and 16x8 blocks measured
// 2.0 and 2.9 GFLOP/s against 4.0 for 16x16), so it is the fair yardstick for the flat
// prefill. Straight-line code per row, as in attention_flat.wgsl: a private array indexed in
// a loop would live in per-lane scratch memory on llvmpipe.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// One invocation per 16x16 block of C, blocks numbered row-major; the host dispatches
// ceil(blocks / 8) workgroups.
@compute @workgroup_size(8)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let blocks_x = params.n / 16u;
    if (gid.x >= blocks_x * (params.m / 16u)) {
        return;
    }
    let col4 = (gid.x % blocks_x) * 4u;
    let row = (gid.x / blocks_x) * 16u;
    let k4 = params.k / 4u;
    let n4 = params.n / 4u;
    var c0_0 = vec4<f32>(0.0);
    var c0_1 = vec4<f32>(0.0);
    var c0_2 = vec4<f32>(0.0);
    var c0_3 = vec4<f32>(0.0);
    var c1_0 = vec4<f32>(0.0);
    var c1_1 = vec4<f32>(0.0);
    var c1_2 = vec4<f32>(0.0);
    var c1_3 = vec4<f32>(0.0);
    var c2_0 = vec4<f32>(0.0);
    var c2_1 = vec4<f32>(0.0);
    var c2_2 = vec4<f32>(0.0);
    var c2_3 = vec4<f32>(0.0);
    var c3_0 = vec4<f32>(0.0);
    var c3_1 = vec4<f32>(0.0);
    var c3_2 = vec4<f32>(0.0);
    var c3_3 = vec4<f32>(0.0);
    var c4_0 = vec4<f32>(0.0);
    var c4_1 = vec4<f32>(0.0);
    var c4_2 = vec4<f32>(0.0);
    var c4_3 = vec4<f32>(0.0);
    var c5_0 = vec4<f32>(0.0);
    var c5_1 = vec4<f32>(0.0);
    var c5_2 = vec4<f32>(0.0);
    var c5_3 = vec4<f32>(0.0);
    var c6_0 = vec4<f32>(0.0);
    var c6_1 = vec4<f32>(0.0);
    var c6_2 = vec4<f32>(0.0);
    var c6_3 = vec4<f32>(0.0);
    var c7_0 = vec4<f32>(0.0);
    var c7_1 = vec4<f32>(0.0);
    var c7_2 = vec4<f32>(0.0);
    var c7_3 = vec4<f32>(0.0);
    var c8_0 = vec4<f32>(0.0);
    var c8_1 = vec4<f32>(0.0);
    var c8_2 = vec4<f32>(0.0);
    var c8_3 = vec4<f32>(0.0);
    var c9_0 = vec4<f32>(0.0);
    var c9_1 = vec4<f32>(0.0);
    var c9_2 = vec4<f32>(0.0);
    var c9_3 = vec4<f32>(0.0);
    var c10_0 = vec4<f32>(0.0);
    var c10_1 = vec4<f32>(0.0);
    var c10_2 = vec4<f32>(0.0);
    var c10_3 = vec4<f32>(0.0);
    var c11_0 = vec4<f32>(0.0);
    var c11_1 = vec4<f32>(0.0);
    var c11_2 = vec4<f32>(0.0);
    var c11_3 = vec4<f32>(0.0);
    var c12_0 = vec4<f32>(0.0);
    var c12_1 = vec4<f32>(0.0);
    var c12_2 = vec4<f32>(0.0);
    var c12_3 = vec4<f32>(0.0);
    var c13_0 = vec4<f32>(0.0);
    var c13_1 = vec4<f32>(0.0);
    var c13_2 = vec4<f32>(0.0);
    var c13_3 = vec4<f32>(0.0);
    var c14_0 = vec4<f32>(0.0);
    var c14_1 = vec4<f32>(0.0);
    var c14_2 = vec4<f32>(0.0);
    var c14_3 = vec4<f32>(0.0);
    var c15_0 = vec4<f32>(0.0);
    var c15_1 = vec4<f32>(0.0);
    var c15_2 = vec4<f32>(0.0);
    var c15_3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < k4; kk++) {
        let b0_0 = b[(kk * 4u + 0u) * n4 + col4 + 0u];
        let b0_1 = b[(kk * 4u + 0u) * n4 + col4 + 1u];
        let b0_2 = b[(kk * 4u + 0u) * n4 + col4 + 2u];
        let b0_3 = b[(kk * 4u + 0u) * n4 + col4 + 3u];
        let b1_0 = b[(kk * 4u + 1u) * n4 + col4 + 0u];
        let b1_1 = b[(kk * 4u + 1u) * n4 + col4 + 1u];
        let b1_2 = b[(kk * 4u + 1u) * n4 + col4 + 2u];
        let b1_3 = b[(kk * 4u + 1u) * n4 + col4 + 3u];
        let b2_0 = b[(kk * 4u + 2u) * n4 + col4 + 0u];
        let b2_1 = b[(kk * 4u + 2u) * n4 + col4 + 1u];
        let b2_2 = b[(kk * 4u + 2u) * n4 + col4 + 2u];
        let b2_3 = b[(kk * 4u + 2u) * n4 + col4 + 3u];
        let b3_0 = b[(kk * 4u + 3u) * n4 + col4 + 0u];
        let b3_1 = b[(kk * 4u + 3u) * n4 + col4 + 1u];
        let b3_2 = b[(kk * 4u + 3u) * n4 + col4 + 2u];
        let b3_3 = b[(kk * 4u + 3u) * n4 + col4 + 3u];
        let a0 = a[(row + 0u) * k4 + kk];
        c0_0 += a0.x * b0_0 + a0.y * b1_0 + a0.z * b2_0 + a0.w * b3_0;
        c0_1 += a0.x * b0_1 + a0.y * b1_1 + a0.z * b2_1 + a0.w * b3_1;
        c0_2 += a0.x * b0_2 + a0.y * b1_2 + a0.z * b2_2 + a0.w * b3_2;
        c0_3 += a0.x * b0_3 + a0.y * b1_3 + a0.z * b2_3 + a0.w * b3_3;
        let a1 = a[(row + 1u) * k4 + kk];
        c1_0 += a1.x * b0_0 + a1.y * b1_0 + a1.z * b2_0 + a1.w * b3_0;
        c1_1 += a1.x * b0_1 + a1.y * b1_1 + a1.z * b2_1 + a1.w * b3_1;
        c1_2 += a1.x * b0_2 + a1.y * b1_2 + a1.z * b2_2 + a1.w * b3_2;
        c1_3 += a1.x * b0_3 + a1.y * b1_3 + a1.z * b2_3 + a1.w * b3_3;
        let a2 = a[(row + 2u) * k4 + kk];
        c2_0 += a2.x * b0_0 + a2.y * b1_0 + a2.z * b2_0 + a2.w * b3_0;
        c2_1 += a2.x * b0_1 + a2.y * b1_1 + a2.z * b2_1 + a2.w * b3_1;
        c2_2 += a2.x * b0_2 + a2.y * b1_2 + a2.z * b2_2 + a2.w * b3_2;
        c2_3 += a2.x * b0_3 + a2.y * b1_3 + a2.z * b2_3 + a2.w * b3_3;
        let a3 = a[(row + 3u) * k4 + kk];
        c3_0 += a3.x * b0_0 + a3.y * b1_0 + a3.z * b2_0 + a3.w * b3_0;
        c3_1 += a3.x * b0_1 + a3.y * b1_1 + a3.z * b2_1 + a3.w * b3_1;
        c3_2 += a3.x * b0_2 + a3.y * b1_2 + a3.z * b2_2 + a3.w * b3_2;
        c3_3 += a3.x * b0_3 + a3.y * b1_3 + a3.z * b2_3 + a3.w * b3_3;
        let a4 = a[(row + 4u) * k4 + kk];
        c4_0 += a4.x * b0_0 + a4.y * b1_0 + a4.z * b2_0 + a4.w * b3_0;
        c4_1 += a4.x * b0_1 + a4.y * b1_1 + a4.z * b2_1 + a4.w * b3_1;
        c4_2 += a4.x * b0_2 + a4.y * b1_2 + a4.z * b2_2 + a4.w * b3_2;
        c4_3 += a4.x * b0_3 + a4.y * b1_3 + a4.z * b2_3 + a4.w * b3_3;
        let a5 = a[(row + 5u) * k4 + kk];
        c5_0 += a5.x * b0_0 + a5.y * b1_0 + a5.z * b2_0 + a5.w * b3_0;
        c5_1 += a5.x * b0_1 + a5.y * b1_1 + a5.z * b2_1 + a5.w * b3_1;
        c5_2 += a5.x * b0_2 + a5.y * b1_2 + a5.z * b2_2 + a5.w * b3_2;
        c5_3 += a5.x * b0_3 + a5.y * b1_3 + a5.z * b2_3 + a5.w * b3_3;
        let a6 = a[(row + 6u) * k4 + kk];
        c6_0 += a6.x * b0_0 + a6.y * b1_0 + a6.z * b2_0 + a6.w * b3_0;
        c6_1 += a6.x * b0_1 + a6.y * b1_1 + a6.z * b2_1 + a6.w * b3_1;
        c6_2 += a6.x * b0_2 + a6.y * b1_2 + a6.z * b2_2 + a6.w * b3_2;
        c6_3 += a6.x * b0_3 + a6.y * b1_3 + a6.z * b2_3 + a6.w * b3_3;
        let a7 = a[(row + 7u) * k4 + kk];
        c7_0 += a7.x * b0_0 + a7.y * b1_0 + a7.z * b2_0 + a7.w * b3_0;
        c7_1 += a7.x * b0_1 + a7.y * b1_1 + a7.z * b2_1 + a7.w * b3_1;
        c7_2 += a7.x * b0_2 + a7.y * b1_2 + a7.z * b2_2 + a7.w * b3_2;
        c7_3 += a7.x * b0_3 + a7.y * b1_3 + a7.z * b2_3 + a7.w * b3_3;
        let a8 = a[(row + 8u) * k4 + kk];
        c8_0 += a8.x * b0_0 + a8.y * b1_0 + a8.z * b2_0 + a8.w * b3_0;
        c8_1 += a8.x * b0_1 + a8.y * b1_1 + a8.z * b2_1 + a8.w * b3_1;
        c8_2 += a8.x * b0_2 + a8.y * b1_2 + a8.z * b2_2 + a8.w * b3_2;
        c8_3 += a8.x * b0_3 + a8.y * b1_3 + a8.z * b2_3 + a8.w * b3_3;
        let a9 = a[(row + 9u) * k4 + kk];
        c9_0 += a9.x * b0_0 + a9.y * b1_0 + a9.z * b2_0 + a9.w * b3_0;
        c9_1 += a9.x * b0_1 + a9.y * b1_1 + a9.z * b2_1 + a9.w * b3_1;
        c9_2 += a9.x * b0_2 + a9.y * b1_2 + a9.z * b2_2 + a9.w * b3_2;
        c9_3 += a9.x * b0_3 + a9.y * b1_3 + a9.z * b2_3 + a9.w * b3_3;
        let a10 = a[(row + 10u) * k4 + kk];
        c10_0 += a10.x * b0_0 + a10.y * b1_0 + a10.z * b2_0 + a10.w * b3_0;
        c10_1 += a10.x * b0_1 + a10.y * b1_1 + a10.z * b2_1 + a10.w * b3_1;
        c10_2 += a10.x * b0_2 + a10.y * b1_2 + a10.z * b2_2 + a10.w * b3_2;
        c10_3 += a10.x * b0_3 + a10.y * b1_3 + a10.z * b2_3 + a10.w * b3_3;
        let a11 = a[(row + 11u) * k4 + kk];
        c11_0 += a11.x * b0_0 + a11.y * b1_0 + a11.z * b2_0 + a11.w * b3_0;
        c11_1 += a11.x * b0_1 + a11.y * b1_1 + a11.z * b2_1 + a11.w * b3_1;
        c11_2 += a11.x * b0_2 + a11.y * b1_2 + a11.z * b2_2 + a11.w * b3_2;
        c11_3 += a11.x * b0_3 + a11.y * b1_3 + a11.z * b2_3 + a11.w * b3_3;
        let a12 = a[(row + 12u) * k4 + kk];
        c12_0 += a12.x * b0_0 + a12.y * b1_0 + a12.z * b2_0 + a12.w * b3_0;
        c12_1 += a12.x * b0_1 + a12.y * b1_1 + a12.z * b2_1 + a12.w * b3_1;
        c12_2 += a12.x * b0_2 + a12.y * b1_2 + a12.z * b2_2 + a12.w * b3_2;
        c12_3 += a12.x * b0_3 + a12.y * b1_3 + a12.z * b2_3 + a12.w * b3_3;
        let a13 = a[(row + 13u) * k4 + kk];
        c13_0 += a13.x * b0_0 + a13.y * b1_0 + a13.z * b2_0 + a13.w * b3_0;
        c13_1 += a13.x * b0_1 + a13.y * b1_1 + a13.z * b2_1 + a13.w * b3_1;
        c13_2 += a13.x * b0_2 + a13.y * b1_2 + a13.z * b2_2 + a13.w * b3_2;
        c13_3 += a13.x * b0_3 + a13.y * b1_3 + a13.z * b2_3 + a13.w * b3_3;
        let a14 = a[(row + 14u) * k4 + kk];
        c14_0 += a14.x * b0_0 + a14.y * b1_0 + a14.z * b2_0 + a14.w * b3_0;
        c14_1 += a14.x * b0_1 + a14.y * b1_1 + a14.z * b2_1 + a14.w * b3_1;
        c14_2 += a14.x * b0_2 + a14.y * b1_2 + a14.z * b2_2 + a14.w * b3_2;
        c14_3 += a14.x * b0_3 + a14.y * b1_3 + a14.z * b2_3 + a14.w * b3_3;
        let a15 = a[(row + 15u) * k4 + kk];
        c15_0 += a15.x * b0_0 + a15.y * b1_0 + a15.z * b2_0 + a15.w * b3_0;
        c15_1 += a15.x * b0_1 + a15.y * b1_1 + a15.z * b2_1 + a15.w * b3_1;
        c15_2 += a15.x * b0_2 + a15.y * b1_2 + a15.z * b2_2 + a15.w * b3_2;
        c15_3 += a15.x * b0_3 + a15.y * b1_3 + a15.z * b2_3 + a15.w * b3_3;
    }
    c[(row + 0u) * n4 + col4 + 0u] = c0_0;
    c[(row + 0u) * n4 + col4 + 1u] = c0_1;
    c[(row + 0u) * n4 + col4 + 2u] = c0_2;
    c[(row + 0u) * n4 + col4 + 3u] = c0_3;
    c[(row + 1u) * n4 + col4 + 0u] = c1_0;
    c[(row + 1u) * n4 + col4 + 1u] = c1_1;
    c[(row + 1u) * n4 + col4 + 2u] = c1_2;
    c[(row + 1u) * n4 + col4 + 3u] = c1_3;
    c[(row + 2u) * n4 + col4 + 0u] = c2_0;
    c[(row + 2u) * n4 + col4 + 1u] = c2_1;
    c[(row + 2u) * n4 + col4 + 2u] = c2_2;
    c[(row + 2u) * n4 + col4 + 3u] = c2_3;
    c[(row + 3u) * n4 + col4 + 0u] = c3_0;
    c[(row + 3u) * n4 + col4 + 1u] = c3_1;
    c[(row + 3u) * n4 + col4 + 2u] = c3_2;
    c[(row + 3u) * n4 + col4 + 3u] = c3_3;
    c[(row + 4u) * n4 + col4 + 0u] = c4_0;
    c[(row + 4u) * n4 + col4 + 1u] = c4_1;
    c[(row + 4u) * n4 + col4 + 2u] = c4_2;
    c[(row + 4u) * n4 + col4 + 3u] = c4_3;
    c[(row + 5u) * n4 + col4 + 0u] = c5_0;
    c[(row + 5u) * n4 + col4 + 1u] = c5_1;
    c[(row + 5u) * n4 + col4 + 2u] = c5_2;
    c[(row + 5u) * n4 + col4 + 3u] = c5_3;
    c[(row + 6u) * n4 + col4 + 0u] = c6_0;
    c[(row + 6u) * n4 + col4 + 1u] = c6_1;
    c[(row + 6u) * n4 + col4 + 2u] = c6_2;
    c[(row + 6u) * n4 + col4 + 3u] = c6_3;
    c[(row + 7u) * n4 + col4 + 0u] = c7_0;
    c[(row + 7u) * n4 + col4 + 1u] = c7_1;
    c[(row + 7u) * n4 + col4 + 2u] = c7_2;
    c[(row + 7u) * n4 + col4 + 3u] = c7_3;
    c[(row + 8u) * n4 + col4 + 0u] = c8_0;
    c[(row + 8u) * n4 + col4 + 1u] = c8_1;
    c[(row + 8u) * n4 + col4 + 2u] = c8_2;
    c[(row + 8u) * n4 + col4 + 3u] = c8_3;
    c[(row + 9u) * n4 + col4 + 0u] = c9_0;
    c[(row + 9u) * n4 + col4 + 1u] = c9_1;
    c[(row + 9u) * n4 + col4 + 2u] = c9_2;
    c[(row + 9u) * n4 + col4 + 3u] = c9_3;
    c[(row + 10u) * n4 + col4 + 0u] = c10_0;
    c[(row + 10u) * n4 + col4 + 1u] = c10_1;
    c[(row + 10u) * n4 + col4 + 2u] = c10_2;
    c[(row + 10u) * n4 + col4 + 3u] = c10_3;
    c[(row + 11u) * n4 + col4 + 0u] = c11_0;
    c[(row + 11u) * n4 + col4 + 1u] = c11_1;
    c[(row + 11u) * n4 + col4 + 2u] = c11_2;
    c[(row + 11u) * n4 + col4 + 3u] = c11_3;
    c[(row + 12u) * n4 + col4 + 0u] = c12_0;
    c[(row + 12u) * n4 + col4 + 1u] = c12_1;
    c[(row + 12u) * n4 + col4 + 2u] = c12_2;
    c[(row + 12u) * n4 + col4 + 3u] = c12_3;
    c[(row + 13u) * n4 + col4 + 0u] = c13_0;
    c[(row + 13u) * n4 + col4 + 1u] = c13_1;
    c[(row + 13u) * n4 + col4 + 2u] = c13_2;
    c[(row + 13u) * n4 + col4 + 3u] = c13_3;
    c[(row + 14u) * n4 + col4 + 0u] = c14_0;
    c[(row + 14u) * n4 + col4 + 1u] = c14_1;
    c[(row + 14u) * n4 + col4 + 2u] = c14_2;
    c[(row + 14u) * n4 + col4 + 3u] = c14_3;
    c[(row + 15u) * n4 + col4 + 0u] = c15_0;
    c[(row + 15u) * n4 + col4 + 1u] = c15_1;
    c[(row + 15u) * n4 + col4 + 2u] = c15_2;
    c[(row + 15u) * n4 + col4 + 3u] = c15_3;
}
