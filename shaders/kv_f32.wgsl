// KV storage as plain f32: four elements per array entry.
alias KvVec = vec4<f32>;

fn kv_load(x: KvVec) -> vec4<f32> {
    return x;
}

fn kv_store(x: vec4<f32>) -> KvVec {
    return x;
}
