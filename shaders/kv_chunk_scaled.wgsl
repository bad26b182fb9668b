// Load chunks of a scaled format (int8, int4, FP8) for the flat kernel: one vec4<u32> of
// codes. Follows the format's codec (codec_*.wgsl: CODE_BITS, SLICES_PER_VEC, decode4).
alias KvVec = vec4<u32>;

// Four-value slices per 16-byte chunk: four words of SLICES_PER_VEC slices each.
const SLICES_PER_CHUNK: u32 = 4u * SLICES_PER_VEC;

// Slice `h` of a chunk, given the scale of its group (see src/cache/format.rs).
fn chunk_slice(x: KvVec, h: u32, scale: f32) -> vec4<f32> {
    let word = x[h / SLICES_PER_VEC];
    return decode4(word >> ((h % SLICES_PER_VEC) * 4u * CODE_BITS)) * scale;
}

// Word `w` of a chunk (scale reads from a buffer-backed pool).
fn chunk_word(x: KvVec, w: u32) -> u32 {
    return x[w];
}

// A texture-backed pool's texel (rgba32uint) as a chunk: the same codes.
fn chunk_of_texel(t: vec4<u32>) -> KvVec {
    return t;
}
