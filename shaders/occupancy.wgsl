// The occupancy probe: how many workgroups of the attention kernels' shape a device runs at
// once. Each workgroup of WG threads holds SHARED_VEC4S of workgroup memory (the attention
// tile's footprint, which is what usually caps how many workgroups a compute unit holds),
// touches it, and then every thread runs a chain of `iterations` dependent multiply-adds. A
// dispatch takes one chain's time while the device runs all its workgroups together, and
// grows once they queue: src/kernels/occupancy.rs times dispatches of doubling size and finds
// where. The composer prepends WG and SHARED_VEC4S.

struct ProbeParams {
    iterations: u32,
    // 1.0 at run time, unknown to the compiler, so the chain cannot be folded away.
    one: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ProbeParams;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

var<workgroup> tile: array<vec4<f32>, SHARED_VEC4S>;

@compute @workgroup_size(WG)
fn probe(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    for (var i = tid; i < SHARED_VEC4S; i += WG) {
        tile[i] = vec4<f32>(f32(i) * params.one);
    }
    workgroupBarrier();
    var x = tile[(tid * 7u) % SHARED_VEC4S].x + f32(wg.x);
    for (var i = 0u; i < params.iterations; i++) {
        x = fma(x, params.one, 1.0e-7);
    }
    // Never true (x stays near its start): the store only keeps the chain alive.
    if (x < -1.0) {
        sink[0] = x;
    }
}
