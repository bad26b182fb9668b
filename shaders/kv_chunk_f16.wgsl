// Load chunks of f16 KV for the flat decode: one vec4<u32>, eight halves. Native and packed f16
// pools hold the same bytes, so both read through this without SHADER_F16.
alias KvVec = vec4<u32>;

// Chunks per four-element row slice: key_base counts in four-element units.
const VEC4_PER_CHUNK: u32 = 2u;

// The low and high four values of chunk `c` of row `row` (see src/cache/format.rs).
fn chunk_lo(x: KvVec, row: u32, c: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(x.x), unpack2x16float(x.y));
}

fn chunk_hi(x: KvVec, row: u32, c: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(x.z), unpack2x16float(x.w));
}

// A texture-backed pool's texel (rgba32uint) as a chunk: the same eight halves.
fn chunk_of_texel(t: vec4<u32>) -> KvVec {
    return t;
}
