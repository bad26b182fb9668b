// Four f16 values, two per u32 word (low half first), as f32: the WGSL built-in, which
// GPU drivers and lavapipe turn into a hardware conversion.
fn halves4(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
