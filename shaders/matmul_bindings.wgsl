// What every matmul kernel shares: the dimensions (m rows of A and C, n columns of B and C,
// k columns of A and rows of B, each a multiple of the kernel's tile) and the output C,
// row-major f32 in vec4s. Each kernel adds how it reads A (binding 1) and B (binding 2).

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
