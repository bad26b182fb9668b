// The read rooflines: one streaming read of 16-byte elements, once from a storage buffer and
// once from an rgba32uint read-only storage texture, the path the flat attention reads its
// KV textures through. Their bytes/s says how fast this adapter can feed a read-only kernel
// through each path: GPUs read both at memory speed, while CPU adapters compile a buffer load
// to a per-lane scalar loop and a texture load to their vectorised image code, which is why
// pagekv keeps KV in textures there. Each path is read in two
// orders and the bench keeps the faster: every invocation summing its own contiguous run
// (the flat attention's context splits, what CPU adapters want), or interleaved, neighbouring
// invocations reading neighbouring elements (the coalesced loads GPUs want, as the tiled
// attention's cooperative tile loads do).

struct StreamParams {
    // Elements (texels) in the source.
    count: u32,
    // Elements each invocation reads; divides the texture's width, so a run stays in one row,
    // and the element count, so every invocation of an interleaved read reads as many.
    per_thread: u32,
    // Texture width in texels.
    width: u32,
    // Threads along x of the 2-D grid.
    grid_x_threads: u32,
}

@group(0) @binding(0) var<uniform> params: StreamParams;
@group(0) @binding(1) var<storage, read> src_buffer: array<vec4<u32>>;
@group(0) @binding(2) var src_texture: texture_storage_2d<rgba32uint, read>;
// One sum per invocation, so the reads are not optimised away.
@group(0) @binding(3) var<storage, read_write> sums: array<vec4<u32>>;

// The invocation's index in the 2-D grid.
fn thread_of(gid: vec3<u32>) -> u32 {
    return gid.y * params.grid_x_threads + gid.x;
}

// The buffer reads load 8 elements per loop iteration into four independent sums: on
// llvmpipe a buffer load is a per-lane loop of its own, and a loop counter, compare and
// branch per element cost it a third of its rate (5.8-6.3 GB/s with one element per
// iteration, 8.5-9.6 with eight, Vulkan and GL alike). Kernels load several elements per
// iteration (a K or V row, a tile, a token's K/V in append), so the roofline must not pay
// that overhead either.
// The texture reads keep one element per iteration: eight per iteration measured no faster
// on lavapipe and 5-10% slower on llvmpipe's GL. STREAM_RUN is a multiple of 8.

// Runs: invocation t reads elements [t * per_thread, (t + 1) * per_thread).
@compute @workgroup_size(WG)
fn read_buffer(@builtin(global_invocation_id) gid: vec3<u32>) {
    let thread = thread_of(gid);
    let first = thread * params.per_thread;
    if (first >= params.count) {
        return;
    }
    var s0 = vec4<u32>(0u);
    var s1 = vec4<u32>(0u);
    var s2 = vec4<u32>(0u);
    var s3 = vec4<u32>(0u);
    for (var i = first; i < first + params.per_thread; i += 8u) {
        s0 += src_buffer[i];
        s1 += src_buffer[i + 1u];
        s2 += src_buffer[i + 2u];
        s3 += src_buffer[i + 3u];
        s0 += src_buffer[i + 4u];
        s1 += src_buffer[i + 5u];
        s2 += src_buffer[i + 6u];
        s3 += src_buffer[i + 7u];
    }
    sums[thread] = s0 + s1 + s2 + s3;
}

@compute @workgroup_size(WG)
fn read_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    let thread = thread_of(gid);
    let first = thread * params.per_thread;
    if (first >= params.count) {
        return;
    }
    let row = first / params.width;
    let column = first % params.width;
    var sum = vec4<u32>(0u);
    for (var i = 0u; i < params.per_thread; i++) {
        sum += textureLoad(src_texture, vec2<u32>(column + i, row));
    }
    sums[thread] = sum;
}

// Interleaved: invocation t of T reads elements t, t + T, t + 2T, ...
@compute @workgroup_size(WG)
fn read_buffer_interleaved(@builtin(global_invocation_id) gid: vec3<u32>) {
    let thread = thread_of(gid);
    let threads = params.count / params.per_thread;
    if (thread >= threads) {
        return;
    }
    var s0 = vec4<u32>(0u);
    var s1 = vec4<u32>(0u);
    var s2 = vec4<u32>(0u);
    var s3 = vec4<u32>(0u);
    for (var e = thread; e < params.count; e += 8u * threads) {
        s0 += src_buffer[e];
        s1 += src_buffer[e + threads];
        s2 += src_buffer[e + 2u * threads];
        s3 += src_buffer[e + 3u * threads];
        s0 += src_buffer[e + 4u * threads];
        s1 += src_buffer[e + 5u * threads];
        s2 += src_buffer[e + 6u * threads];
        s3 += src_buffer[e + 7u * threads];
    }
    sums[thread] = s0 + s1 + s2 + s3;
}

@compute @workgroup_size(WG)
fn read_texture_interleaved(@builtin(global_invocation_id) gid: vec3<u32>) {
    let thread = thread_of(gid);
    let threads = params.count / params.per_thread;
    if (thread >= threads) {
        return;
    }
    var sum = vec4<u32>(0u);
    for (var i = 0u; i < params.per_thread; i++) {
        let element = thread + i * threads;
        sum += textureLoad(src_texture, vec2<u32>(element % params.width, element / params.width));
    }
    sums[thread] = sum;
}
