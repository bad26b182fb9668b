// int8 codes: symmetric integers in [-127, 127], four per u32 (value 0 in the lowest byte),
// two's complement, rounded to nearest even. unpack4xI8/pack4xI8 are core WGSL built-ins;
// naga lowers them to shifts where a backend has no instruction.
const CODE_BITS: u32 = 8u;
const SLICES_PER_VEC: u32 = 1u;

fn decode4(bits: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xI8(bits));
}

// Four values already divided by their scale, as four codes in one word.
fn encode4(y: vec4<f32>) -> u32 {
    return pack4xI8(vec4<i32>(clamp(round(y), vec4<f32>(-127.0), vec4<f32>(127.0))));
}
