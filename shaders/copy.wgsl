// The copy roofline: one vec4 read and one vec4 write per thread over a buffer far larger than
// any cache. Its bytes/s (read plus written) is the bandwidth a memory-bound kernel on this
// adapter can hope for; `pagekv bench` states every kernel's speed as a ratio to it.

struct CopyParams {
    count: u32,
    grid_x_threads: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: CopyParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.grid_x_threads + gid.x;
    if (i < params.count) {
        dst[i] = src[i];
    }
}
