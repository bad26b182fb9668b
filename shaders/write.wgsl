// The write rooflines: one streaming write of 16-byte elements, once into a storage buffer
// and once into an rgba32uint write-only storage texture, the two paths append stores a KV
// pool through (buffers on GPUs, textures on CPU adapters). Their bytes/s bound how fast a
// kernel can store through each path, as the read rooflines (read.wgsl) bound its loads.
// Each path is written in the same two orders as the reads, and the bench keeps the faster.
// Every element receives its own index, so a test can check that each was written once, in
// its place.

struct StreamParams {
    // Elements (texels) in the target.
    count: u32,
    // Elements each invocation writes; divides the texture's width and the element count.
    per_thread: u32,
    // Texture width in texels.
    width: u32,
    // Threads along x of the 2-D grid.
    grid_x_threads: u32,
}

@group(0) @binding(0) var<uniform> params: StreamParams;
@group(0) @binding(1) var<storage, read_write> dst_buffer: array<vec4<u32>>;
@group(0) @binding(2) var dst_texture: texture_storage_2d<rgba32uint, write>;

// The invocation's index in the 2-D grid.
fn thread_of(gid: vec3<u32>) -> u32 {
    return gid.y * params.grid_x_threads + gid.x;
}

// Runs: invocation t writes elements [t * per_thread, (t + 1) * per_thread).
@compute @workgroup_size(WG)
fn write_buffer(@builtin(global_invocation_id) gid: vec3<u32>) {
    let first = thread_of(gid) * params.per_thread;
    if (first >= params.count) {
        return;
    }
    for (var i = first; i < first + params.per_thread; i++) {
        dst_buffer[i] = vec4<u32>(i);
    }
}

@compute @workgroup_size(WG)
fn write_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    let first = thread_of(gid) * params.per_thread;
    if (first >= params.count) {
        return;
    }
    let row = first / params.width;
    let column = first % params.width;
    for (var i = 0u; i < params.per_thread; i++) {
        textureStore(dst_texture, vec2<u32>(column + i, row), vec4<u32>(first + i));
    }
}

// Interleaved: invocation t of T writes elements t, t + T, t + 2T, ...
@compute @workgroup_size(WG)
fn write_buffer_interleaved(@builtin(global_invocation_id) gid: vec3<u32>) {
    let thread = thread_of(gid);
    let threads = params.count / params.per_thread;
    if (thread >= threads) {
        return;
    }
    for (var i = 0u; i < params.per_thread; i++) {
        let element = thread + i * threads;
        dst_buffer[element] = vec4<u32>(element);
    }
}

@compute @workgroup_size(WG)
fn write_texture_interleaved(@builtin(global_invocation_id) gid: vec3<u32>) {
    let thread = thread_of(gid);
    let threads = params.count / params.per_thread;
    if (thread >= threads) {
        return;
    }
    for (var i = 0u; i < params.per_thread; i++) {
        let element = thread + i * threads;
        textureStore(dst_texture, vec2<u32>(element % params.width, element / params.width), vec4<u32>(element));
    }
}
