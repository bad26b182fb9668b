// A and B read from storage buffers, row-major f32 in vec4s (the texel-fed flat kernels bind
// textures here instead). Follows matmul_bindings.wgsl.

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
