// Load chunks of f16 KV for the flat kernel: one vec4<u32>, eight halves. Native and packed
// f16 pools hold the same bytes, so both read through this without SHADER_F16.
alias KvVec = vec4<u32>;

// Four-value slices per 16-byte chunk.
const SLICES_PER_CHUNK: u32 = 2u;

// Slice `h` of a chunk (see src/cache/format.rs); no scales, so `scale` is 1.
fn chunk_slice(x: KvVec, h: u32, scale: f32) -> vec4<f32> {
    return halves4(vec2<u32>(x[2u * h], x[2u * h + 1u]));
}

// Word `w` of a chunk (scale reads; unused without scales).
fn chunk_word(x: KvVec, w: u32) -> u32 {
    return x[w];
}

// A texture-backed pool's texel (rgba32uint) as a chunk: the same eight halves.
fn chunk_of_texel(t: vec4<u32>) -> KvVec {
    return t;
}
