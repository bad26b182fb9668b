//! Every host mirror of a WGSL uniform struct has the size and member offsets naga computes
//! for the WGSL struct of the same name (padding members excepted, which only fill space).

use pagekv::gpu::KvStorageMode;
use pagekv::kernels::params::{AppendParams, AttnParams, CombineParams, ProbeParams};
use pagekv::kernels::{Family, Variant, WgslModule};
use std::mem::{offset_of, size_of};

fn core(family: Family) -> WgslModule {
    Variant::for_device(family, KvStorageMode::F32, 64, 32 * 1024)
        .unwrap()
        .module()
}

/// (size, [(member, offset)]) of struct `name` in `shader`, padding members skipped.
fn naga_layout(shader: WgslModule, name: &str) -> (u32, Vec<(String, u32)>) {
    let variant = shader;
    let module = naga::front::wgsl::parse_str(&variant.source).unwrap();
    let ty = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in {}", variant.name))
        .1;
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{name} is not a struct");
    };
    let members = members
        .iter()
        .filter_map(|m| {
            let n = m.name.clone().unwrap_or_default();
            (!n.starts_with("_pad")).then_some((n, m.offset))
        })
        .collect();
    (*span, members)
}

fn assert_layout(shader: WgslModule, name: &str, size: usize, host: &[(&str, usize)]) {
    let (span, members) = naga_layout(shader, name);
    assert_eq!(span as usize, size, "{name}: size");
    let host: Vec<(String, u32)> = host
        .iter()
        .map(|&(n, o)| (n.to_string(), o as u32))
        .collect();
    assert_eq!(members, host, "{name}: member offsets");
}

macro_rules! fields {
    ($t:ty: $($f:ident),*) => {
        &[$((stringify!($f), offset_of!($t, $f))),*]
    };
}

#[test]
fn host_structs_match_wgsl() {
    assert_layout(
        pagekv::kernels::occupancy::module(4096),
        "ProbeParams",
        size_of::<ProbeParams>(),
        fields!(ProbeParams: iterations, one),
    );
    assert_layout(
        core(Family::Decode),
        "AttnParams",
        size_of::<AttnParams>(),
        fields!(AttnParams: num_seqs, q_heads, group, group_chunks, block_size, table_stride,
            partition_tokens, splits, num_partitions, partition_base, shard_first_block,
            shard_blocks, scale, shard_lists, window, texture_row_shift),
    );
    assert_layout(
        core(Family::Append),
        "AppendParams",
        size_of::<AppendParams>(),
        fields!(AppendParams: count, kv_heads, block_size, shard_first_block, shard_blocks,
            grid_x_threads, texture_row_shift),
    );
    assert_layout(
        core(Family::Combine),
        "CombineParams",
        size_of::<CombineParams>(),
        fields!(CombineParams: rows, num_partitions, row_span, carry_read, carry_write),
    );
}

/// The stress tool's kernels' uniforms, likewise.
#[cfg(feature = "tool")]
#[test]
fn tool_structs_match_wgsl() {
    use pagekv::tool_kernels::StreamParams;
    use pagekv::tool_kernels::ToolKernel;
    use pagekv::tool_kernels::copy::CopyParams;
    use pagekv::tool_kernels::generate::GenerateParams;
    use pagekv::tool_kernels::matmul::MatmulParams;
    assert_layout(
        ToolKernel::Generate.module(64),
        "GenerateParams",
        size_of::<GenerateParams>(),
        fields!(GenerateParams: num_tokens, layer, q_heads, kv_heads, grid_x_threads),
    );
    assert_layout(
        ToolKernel::Copy.module(0),
        "CopyParams",
        size_of::<CopyParams>(),
        fields!(CopyParams: count, grid_x_threads),
    );
    for stream in [ToolKernel::Read, ToolKernel::Write] {
        assert_layout(
            stream.module(0),
            "StreamParams",
            size_of::<StreamParams>(),
            fields!(StreamParams: count, per_thread, width, grid_x_threads),
        );
    }
    for matmul in [ToolKernel::Matmul, ToolKernel::MatmulWide] {
        assert_layout(
            matmul.module(0),
            "MatmulParams",
            size_of::<MatmulParams>(),
            fields!(MatmulParams: m, n, k),
        );
    }
}
