// Load chunks of f32 KV for the flat kernel: one vec4<f32>, four elements.
alias KvVec = vec4<f32>;

// Four-value slices per 16-byte chunk.
const SLICES_PER_CHUNK: u32 = 1u;

// Slice `h` of a chunk (see src/cache/format.rs); no scales, so `scale` is 1.
fn chunk_slice(x: KvVec, h: u32, scale: f32) -> vec4<f32> {
    return x;
}

// Word `w` of a chunk (scale reads; unused without scales).
fn chunk_word(x: KvVec, w: u32) -> u32 {
    return bitcast<vec4<u32>>(x)[w];
}

// A texture-backed pool's texel (rgba32uint) as a chunk.
fn chunk_of_texel(t: vec4<u32>) -> KvVec {
    return bitcast<vec4<f32>>(t);
}
