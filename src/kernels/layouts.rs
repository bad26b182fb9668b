//! Explicit bind group layouts of the core kernels, written out rather than derived from the
//! shaders: the binding contract between a kernel's WGSL and its Rust module is then stated
//! in one place, checked by wgpu when the pipeline is built (a mismatch is a build error, not
//! a wrong binding at dispatch), and each layout is created once per kernel, never per step.

use crate::gpu::KvBacking;

/// What one binding slot holds, as the WGSL declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// `var<uniform>`.
    Uniform,
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `texture_storage_2d<rgba32uint, read>`.
    TexelsRead,
    /// `texture_2d<u32>` read with `textureLoad`: one scale per texel (sampled, not storage:
    /// see `flat_pool_textures.wgsl`).
    ScalesRead,
    /// `texture_storage_2d<rgba32uint, write>`.
    TexelsWrite,
    /// `texture_storage_2d<r32uint, write>`: one scale per texel.
    ScalesWrite,
}

/// A kernel entry point's bindings in group 0: `(binding, slot)`.
pub(crate) type Bindings = &'static [(u32, Slot)];

/// Decode and prefill (tiled or flat): params, Q, the K and V pools, block tables, sequence
/// info, partial accumulators and softmax state; a texture-backed pool of a scaled format adds
/// its K and V scale textures.
pub(crate) fn attention(backing: KvBacking, scaled: bool) -> Bindings {
    match (backing, scaled) {
        (KvBacking::Buffers, _) => &[
            (0, Slot::Uniform),
            (1, Slot::Read),
            (2, Slot::Read),
            (3, Slot::Read),
            (4, Slot::Read),
            (5, Slot::Read),
            (6, Slot::ReadWrite),
            (7, Slot::ReadWrite),
        ],
        (KvBacking::Textures, false) => &[
            (0, Slot::Uniform),
            (1, Slot::Read),
            (2, Slot::TexelsRead),
            (3, Slot::TexelsRead),
            (4, Slot::Read),
            (5, Slot::Read),
            (6, Slot::ReadWrite),
            (7, Slot::ReadWrite),
        ],
        (KvBacking::Textures, true) => &[
            (0, Slot::Uniform),
            (1, Slot::Read),
            (2, Slot::TexelsRead),
            (3, Slot::TexelsRead),
            (4, Slot::Read),
            (5, Slot::Read),
            (6, Slot::ReadWrite),
            (7, Slot::ReadWrite),
            (8, Slot::ScalesRead),
            (9, Slot::ScalesRead),
        ],
    }
}

/// Append into a pool: params, new K, new V, slots, then the K and V pools (and a
/// texture-backed scaled pool's scale textures).
pub(crate) fn append(backing: KvBacking, scaled: bool) -> Bindings {
    match (backing, scaled) {
        (KvBacking::Buffers, _) => &[
            (0, Slot::Uniform),
            (1, Slot::Read),
            (2, Slot::Read),
            (3, Slot::Read),
            (4, Slot::ReadWrite),
            (5, Slot::ReadWrite),
        ],
        (KvBacking::Textures, false) => &[
            (0, Slot::Uniform),
            (1, Slot::Read),
            (2, Slot::Read),
            (3, Slot::Read),
            (6, Slot::TexelsWrite),
            (7, Slot::TexelsWrite),
        ],
        (KvBacking::Textures, true) => &[
            (0, Slot::Uniform),
            (1, Slot::Read),
            (2, Slot::Read),
            (3, Slot::Read),
            (6, Slot::TexelsWrite),
            (7, Slot::TexelsWrite),
            (8, Slot::ScalesWrite),
            (9, Slot::ScalesWrite),
        ],
    }
}

/// The in-shard block copy: params, block pairs, the K and V pools.
pub(crate) const COPY_BLOCKS: Bindings = &[
    (0, Slot::Uniform),
    (3, Slot::Read),
    (4, Slot::ReadWrite),
    (5, Slot::ReadWrite),
];

/// Combine: params, partial accumulators, softmax state, output, state carried between
/// shard groups.
pub(crate) const COMBINE: Bindings = &[
    (0, Slot::Uniform),
    (1, Slot::Read),
    (2, Slot::Read),
    (3, Slot::ReadWrite),
    (4, Slot::ReadWrite),
];

/// The wgpu layout entries of `bindings`, visible to compute.
pub(crate) fn entries(bindings: Bindings) -> Vec<wgpu::BindGroupLayoutEntry> {
    bindings
        .iter()
        .map(|&(binding, slot)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match slot {
                Slot::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Slot::Read | Slot::ReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: slot == Slot::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Slot::ScalesRead => wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Uint,
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                Slot::TexelsRead | Slot::TexelsWrite | Slot::ScalesWrite => {
                    wgpu::BindingType::StorageTexture {
                        access: if slot == Slot::TexelsRead {
                            wgpu::StorageTextureAccess::ReadOnly
                        } else {
                            wgpu::StorageTextureAccess::WriteOnly
                        },
                        format: if matches!(slot, Slot::TexelsRead | Slot::TexelsWrite) {
                            wgpu::TextureFormat::Rgba32Uint
                        } else {
                            wgpu::TextureFormat::R32Uint
                        },
                        view_dimension: wgpu::TextureViewDimension::D2,
                    }
                }
            },
            count: None,
        })
        .collect()
}
