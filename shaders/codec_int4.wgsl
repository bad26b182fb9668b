// int4 codes: symmetric integers in [-7, 7] as two's-complement nibbles, eight per u32
// (value 0 in the lowest nibble), rounded to nearest even. One word holds two four-value
// slices; decode4 reads the low 16 bits.
const CODE_BITS: u32 = 4u;
const SLICES_PER_VEC: u32 = 2u;

fn decode4(bits: u32) -> vec4<f32> {
    // Each nibble moved to the top and shifted back arithmetically: sign extension.
    let top = vec4<u32>(bits << 28u, bits << 24u, bits << 20u, bits << 16u);
    return vec4<f32>(bitcast<vec4<i32>>(top) >> vec4<u32>(28u));
}

// Four values already divided by their scale, as four nibbles in the low 16 bits.
fn encode4(y: vec4<f32>) -> u32 {
    let codes = vec4<i32>(clamp(round(y), vec4<f32>(-7.0), vec4<f32>(7.0)));
    let c = bitcast<vec4<u32>>(codes) & vec4<u32>(0xfu);
    return c.x | (c.y << 4u) | (c.z << 8u) | (c.w << 12u);
}
