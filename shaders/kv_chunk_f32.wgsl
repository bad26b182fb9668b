// Load chunks of f32 KV for the flat decode: one vec4<f32>, four elements.
alias KvVec = vec4<f32>;

// Chunks per four-element row slice: key_base counts in four-element units.
const VEC4_PER_CHUNK: u32 = 1u;

// The four values of chunk `c` of row `row` (see src/cache/format.rs).
fn chunk_lo(x: KvVec, row: u32, c: u32) -> vec4<f32> {
    return x;
}

// A texture-backed pool's texel (rgba32uint) as a chunk.
fn chunk_of_texel(t: vec4<u32>) -> KvVec {
    return bitcast<vec4<f32>>(t);
}
