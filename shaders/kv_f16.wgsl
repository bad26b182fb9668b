// KV storage as native f16 (needs SHADER_F16; the composer puts `enable f16;` first).
alias KvVec = vec4<f16>;

fn kv_load(x: KvVec) -> vec4<f32> {
    return vec4<f32>(x);
}

fn kv_store(x: vec4<f32>) -> KvVec {
    return vec4<f16>(x);
}
