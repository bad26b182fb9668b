//! Shader variants: how a kernel family, a KV storage mode and a head dim become one WGSL
//! module.
//!
//! Why generated variants rather than pipeline-overridable constants: the tile sizes are
//! workgroup-array lengths and private-array lengths. WGSL allows override-sized workgroup
//! arrays only, not private ones, and naga's MSL/HLSL/GLSL writers need the sizes resolved
//! anyway. Generating a constant header per (head dim, tile shape) gives every backend a fully
//! constant module, lets the compilers unroll the head-dim loops, and makes each variant a
//! standalone file a user can feed to a vendor compiler (`pagekv shaders --emit`).
//! The KV dtype is a generated choice too, because it changes the binding's element type.

use super::halves::HalfDecode;
use super::reductions::Reductions;
use crate::cache::SUPPORTED_HEAD_DIMS;
use crate::gpu::{KvBacking, KvStorageMode};

const ATTENTION_BINDINGS: &str = include_str!("../../shaders/attention_bindings.wgsl");
const ATTENTION_TILES: &str = include_str!("../../shaders/attention_tiles.wgsl");
const TILES_POOL_CHUNKS: &str = include_str!("../../shaders/tiles_pool_chunks.wgsl");
const TILES_POOL_ELEMENTS: &str = include_str!("../../shaders/tiles_pool_elements.wgsl");
const DECODE: &str = include_str!("../../shaders/decode.wgsl");
const DECODE_FLAT: &str = include_str!("../../shaders/attention_flat.wgsl");
const FLAT_POOL_BUFFERS: &str = include_str!("../../shaders/flat_pool_buffers.wgsl");
const FLAT_POOL_TEXTURES: &str = include_str!("../../shaders/flat_pool_textures.wgsl");
const PREFILL: &str = include_str!("../../shaders/prefill.wgsl");
const COMBINE: &str = include_str!("../../shaders/combine.wgsl");
const APPEND: &str = include_str!("../../shaders/append.wgsl");
const APPEND_PLAIN: &str = include_str!("../../shaders/append_plain.wgsl");
const APPEND_SCALED: &str = include_str!("../../shaders/append_scaled.wgsl");

/// Threads per attention workgroup. 64 is a multiple of every vendor's SIMD width (NVIDIA 32,
/// AMD 32/64, Intel 8-32, Apple 32, lavapipe 8) and keeps tiles within 16 KiB of shared memory.
pub const WORKGROUP_SIZE: u32 = 64;

/// Keys per iteration of the flat attention's value loop ([`Variant::flat_key_tile`]).
pub const FLAT_KEY_TILE: u32 = 2;

/// Threads per flat-decode workgroup. CPU adapters run a workgroup on one thread in SIMD
/// chunks (8 lanes on lavapipe with AVX2), so a small workgroup spreads a small decode over
/// every core.
pub const FLAT_WORKGROUP_SIZE: u32 = 8;

/// Most query heads one flat-decode invocation serves; larger GQA groups are split into
/// chunks of at most this many heads (registers per invocation grow with it).
pub const MAX_FLAT_GROUP: u32 = 8;

/// Workgroup memory pagekv plans tiles for at most; more rarely helps and costs occupancy.
pub const MAX_TILE_BYTES: u32 = 32 * 1024;

/// The kernel families, one shader file and one Rust module each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Scatter new K/V rows into slots, and copy-on-write block copies.
    Append,
    /// One query per sequence, split over the context, tiled through workgroup memory (GPUs).
    Decode,
    /// Decode and prefill without workgroup memory or barriers (CPU adapters).
    Flat,
    /// Causal attention over a chunk of queries.
    Prefill,
    /// Merge of partial softmax states, a workgroup per output row (GPUs).
    Combine,
    /// The same merge with an invocation per output row (CPU adapters).
    CombineFlat,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 6] = [
        Family::Append,
        Family::Decode,
        Family::Flat,
        Family::Prefill,
        Family::Combine,
        Family::CombineFlat,
    ];

    /// Lowercase name, used in shader names; decode, prefill and combine are also their
    /// entry points.
    pub fn name(self) -> &'static str {
        match self {
            Family::Append => "append",
            Family::Decode => "decode",
            Family::Flat => "flat",
            Family::Prefill => "prefill",
            Family::Combine => "combine",
            Family::CombineFlat => "combineflat",
        }
    }

    fn uses_kv(self) -> bool {
        match self {
            Family::Append | Family::Decode | Family::Flat | Family::Prefill => true,
            Family::Combine | Family::CombineFlat => false,
        }
    }

    fn uses_tiles(self) -> bool {
        matches!(self, Family::Decode | Family::Prefill)
    }

    /// The families that read K/V for attention (and so decode stored halves: [`HalfDecode`]).
    fn attends(self) -> bool {
        matches!(self, Family::Decode | Family::Flat | Family::Prefill)
    }

    /// The families with a subgroup form ([`Reductions`]).
    fn reduces_across_threads(self) -> bool {
        matches!(self, Family::Decode | Family::Prefill | Family::Combine)
    }
}

/// The entry points of the append family for a storage mode and backing: the append itself,
/// and the in-shard block copy of buffer-backed pools.
pub(crate) fn append_entries(mode: KvStorageMode, backing: KvBacking) -> (&'static str, bool) {
    let scaled = mode.format().codec().is_some();
    match (backing, scaled) {
        (KvBacking::Buffers, false) => ("append", true),
        (KvBacking::Buffers, true) => ("append_scaled", true),
        (KvBacking::Textures, false) => ("append_texels", false),
        (KvBacking::Textures, true) => ("append_scaled_texels", false),
    }
}

/// Rows and keys per attention tile, chosen from the workgroup memory limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileShape {
    /// Query rows per workgroup.
    pub rows: u32,
    /// Keys streamed through workgroup memory per step.
    pub keys: u32,
}

impl TileShape {
    /// Workgroup bytes the attention core declares for this shape.
    pub fn bytes(self, head_dim: u32) -> u32 {
        let (r, k) = (self.rows, self.keys);
        // K/V rows carry one padding slice (KV_STRIDE in attention_tiles.wgsl).
        4 * (r * head_dim + k * (head_dim + 4) + r * k + 2 * k + 5 * r)
    }

    /// The largest key tile (a power of two, 4..=32) whose footprint fits `limit` bytes.
    /// Decode packs up to 8 query heads of a GQA group per workgroup; prefill packs 16 rows
    /// ((token, head) pairs) for head dims up to 128 to reuse each K/V tile more.
    pub fn choose(family: Family, head_dim: u32, limit: u32) -> Option<Self> {
        let rows = match family {
            Family::Prefill if head_dim <= 128 => 16,
            _ => 8,
        };
        let limit = limit.min(MAX_TILE_BYTES);
        [32, 16, 8, 4]
            .into_iter()
            .map(|keys| TileShape { rows, keys })
            .find(|t| t.bytes(head_dim) <= limit)
    }
}

/// A WGSL module ready to compile or translate: its systematic name (also the file name of
/// `pagekv shaders --emit`), its full source, and whether it needs SHADER_F16. Attention
/// variants and the stress tool's own kernels both become one, so pipeline creation and
/// the naga portability check treat every shader alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgslModule {
    /// Systematic name, e.g. `decode_f16packed_hd128_r8_k16`.
    pub name: String,
    /// Complete WGSL source.
    pub source: String,
    /// Whether the module uses `enable f16;`.
    pub needs_f16: bool,
    /// Whether the module uses subgroup operations (the `SUBGROUP` feature).
    pub needs_subgroups: bool,
}

/// One concrete, fully constant WGSL module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    /// Kernel family.
    pub family: Family,
    /// KV element encoding (ignored by combine).
    pub mode: KvStorageMode,
    /// Head dimension.
    pub head_dim: u32,
    /// Tile shape (attention families only).
    pub tiles: Option<TileShape>,
    /// Query heads per invocation (flat decode only; 0 otherwise).
    pub group: u32,
    /// Query tokens per invocation (flat only: 1 for decode, more for prefill, whose tokens
    /// share every K/V row they read; 0 for the other families).
    pub queries: u32,
    /// What the pool is read from: the flat kernel reads buffers or textures, every other
    /// family buffers (append picks its entry point instead).
    pub backing: KvBacking,
    /// How the tiled families (decode, prefill, combine) reduce across threads; always
    /// `Serial` for the others, which have no cross-thread reductions.
    pub reductions: Reductions,
    /// How the attention families convert stored halves to f32; always `Builtin` for the
    /// other families and for formats that hold no halves.
    pub half_decode: HalfDecode,
}

impl Variant {
    /// The variant a device with `workgroup_limit` bytes of shared memory builds; `None` when
    /// the tiles do not fit, or the flat kernel cannot read the format at this head dim.
    pub fn for_device(
        family: Family,
        mode: KvStorageMode,
        head_dim: u32,
        workgroup_limit: u32,
    ) -> Option<Self> {
        let tiles = if family.uses_tiles() {
            Some(TileShape::choose(family, head_dim, workgroup_limit)?)
        } else {
            None
        };
        let chunked = super::prelude::chunks_fit(mode.format(), head_dim);
        if family == Family::Flat && !chunked {
            return None;
        }
        let mode = match family {
            Family::Flat | Family::Decode | Family::Prefill if chunked => {
                super::prelude::chunk_mode(mode)
            }
            Family::Flat | Family::Append | Family::Decode | Family::Prefill => mode,
            // Combine reads no KV; one variant serves every format.
            Family::Combine | Family::CombineFlat => KvStorageMode::F32,
        };
        Some(Self {
            family,
            mode,
            head_dim,
            tiles,
            group: if family == Family::Flat { 1 } else { 0 },
            queries: if family == Family::Flat { 1 } else { 0 },
            backing: KvBacking::Buffers,
            reductions: Reductions::Serial,
            half_decode: HalfDecode::Builtin,
        })
    }

    /// This variant with `reductions`; families without cross-thread reductions keep the
    /// serial form (there is nothing to reduce).
    pub fn with_reductions(self, reductions: Reductions) -> Self {
        let reductions = if self.family.reduces_across_threads() {
            reductions
        } else {
            Reductions::Serial
        };
        Self { reductions, ..self }
    }

    /// This variant with `half_decode`; only attention over f16 or FP8 converts halves, so
    /// every other variant keeps the built-in (one variant, not two alike).
    pub fn with_half_decode(self, half_decode: HalfDecode) -> Self {
        let half_decode = if self.family.attends() && HalfDecode::applies_to(self.mode.format()) {
            half_decode
        } else {
            HalfDecode::Builtin
        };
        Self {
            half_decode,
            ..self
        }
    }

    /// The flat variant reading a pool held in `backing`.
    pub fn with_backing(self, backing: KvBacking) -> Self {
        debug_assert!(self.family == Family::Flat || backing == KvBacking::Buffers);
        Self { backing, ..self }
    }

    /// The flat decode variant serving `group` query heads per invocation (1..=MAX_FLAT_GROUP).
    pub fn with_group(self, group: u32) -> Self {
        debug_assert!(self.family == Family::Flat && (1..=MAX_FLAT_GROUP).contains(&group));
        Self { group, ..self }
    }

    /// The flat variant serving `queries` consecutive query tokens per invocation (prefill:
    /// see `flat::prefill_queries`).
    pub fn with_queries(self, queries: u32) -> Self {
        debug_assert!(self.family == Family::Flat && queries >= 1);
        Self { queries, ..self }
    }

    /// Keys per iteration of the flat kernel's value loop (its score loop takes one key per
    /// iteration, and the accumulators are rescaled once per block). Two: each accumulator
    /// slice is loaded and stored once per two keys, while the loop body stays a fraction
    /// of the size that runs from llvmpipe's L2 cache (two keys in the score loop too
    /// measured no faster). Every supported block size is a multiple of it, so a tile never
    /// crosses a block.
    pub fn flat_key_tile(&self) -> u32 {
        FLAT_KEY_TILE
    }

    /// Whether this kernel reads its pool in 16-byte chunks: the flat kernel always, the tiled
    /// attention wherever a row is whole chunks (every format and head dim but int4 at 80).
    pub fn loads_chunks(&self) -> bool {
        match self.family {
            Family::Flat => true,
            Family::Decode | Family::Prefill => {
                super::prelude::chunks_fit(self.mode.format(), self.head_dim)
            }
            Family::Append | Family::Combine | Family::CombineFlat => false,
        }
    }

    /// The tiled attention's row staging (`stage_rows`) for this variant's loads.
    fn tiled_pool_source(&self) -> &'static str {
        if self.loads_chunks() {
            TILES_POOL_CHUNKS
        } else {
            TILES_POOL_ELEMENTS
        }
    }

    /// Output rows one combine workgroup merges: a GPU gives a row the whole workgroup (its
    /// threads split the head dim); a CPU adapter gives each SIMD lane its own row, so the
    /// scan over a row's partitions runs once per row instead of once per thread.
    pub fn combine_rows(&self) -> u32 {
        match self.family {
            Family::CombineFlat => FLAT_WORKGROUP_SIZE,
            _ => 1,
        }
    }

    /// Threads per workgroup of this variant.
    pub fn workgroup_size(&self) -> u32 {
        if matches!(self.family, Family::Flat | Family::CombineFlat) {
            FLAT_WORKGROUP_SIZE
        } else {
            WORKGROUP_SIZE
        }
    }

    /// Systematic file name stem, e.g. `decode_f16packed_hd128_r8_k16`.
    pub fn name(&self) -> String {
        let mut name = self.family.name().to_string();
        if self.family.uses_kv() {
            name += &format!("_{}", self.mode.name());
        }
        name += &format!("_hd{}", self.head_dim);
        if let Some(t) = self.tiles {
            name += &format!("_r{}_k{}", t.rows, t.keys);
        }
        if self.group > 0 {
            name += &format!("_g{}", self.group);
        }
        if self.queries > 1 {
            name += &format!("_q{}", self.queries);
        }
        if self.backing == KvBacking::Textures {
            name += "_tex";
        }
        name + self.reductions.suffix() + self.half_decode.suffix()
    }

    /// Whether this variant needs the SHADER_F16 feature.
    pub fn needs_f16(&self) -> bool {
        self.family.uses_kv() && self.mode.needs_shader_f16()
    }

    /// The module to compile: name, source and feature needs.
    pub fn module(&self) -> WgslModule {
        WgslModule {
            name: self.name(),
            source: self.source(),
            needs_f16: self.needs_f16(),
            needs_subgroups: self.reductions.needs_subgroups(),
        }
    }

    /// The complete WGSL source: enables, dtype prelude, constants, then the family's code.
    pub fn source(&self) -> String {
        let mut src = format!("// pagekv generated variant `{}`.\n", self.name());
        if self.needs_f16() {
            src += "enable f16;\n";
        }
        src += "\n";
        if self.loads_chunks() {
            src += &super::prelude::chunks(self.mode.format(), self.head_dim, self.half_decode).0;
        } else if self.family.uses_kv() {
            src += &super::prelude::elements(self.mode, self.head_dim, self.half_decode);
        }
        src += "\n";
        src += &format!(
            "const HEAD_DIM: u32 = {}u;\nconst HD4: u32 = {}u;\nconst WG: u32 = {}u;\n",
            self.head_dim,
            self.head_dim / 4,
            self.workgroup_size()
        );
        if self.family == Family::Flat {
            src += &format!(
                "const GROUP: u32 = {}u;\nconst QUERIES: u32 = {}u;\nconst KEY_TILE: u32 = {}u;\n",
                self.group,
                self.queries,
                self.flat_key_tile()
            );
        }
        if let Some(t) = self.tiles {
            let acc_slots = (t.rows * self.head_dim / 4).div_ceil(WORKGROUP_SIZE);
            src += &format!(
                "const ROWS: u32 = {}u;\nconst TILE_KEYS: u32 = {}u;\nconst ACC_SLOTS: u32 = {}u;\n",
                t.rows, t.keys, acc_slots
            );
        }
        src += "\n";
        match self.family {
            Family::Append => {
                src += APPEND;
                src += "\n";
                src += match self.mode.format().codec() {
                    None => APPEND_PLAIN,
                    Some(_) => APPEND_SCALED,
                };
            }
            Family::Combine | Family::CombineFlat => {
                src += &format!("const COMBINE_ROWS: u32 = {}u;\n\n", self.combine_rows());
                src += COMBINE;
                src += "\n";
                src += self.reductions.combine_scan_source();
            }
            Family::Decode => {
                src += ATTENTION_BINDINGS;
                src += "\n";
                src += self.tiled_pool_source();
                src += "\n";
                src += ATTENTION_TILES;
                src += "\n";
                src += self.reductions.softmax_source();
                src += "\n";
                src += DECODE;
            }
            Family::Flat => {
                src += ATTENTION_BINDINGS;
                src += "\n";
                src += match self.backing {
                    KvBacking::Buffers => FLAT_POOL_BUFFERS,
                    KvBacking::Textures => FLAT_POOL_TEXTURES,
                };
                src += "\n";
                let (_, chunk) =
                    super::prelude::chunks(self.mode.format(), self.head_dim, self.half_decode);
                src += &super::flat_source::fill(
                    DECODE_FLAT,
                    self.group,
                    self.queries,
                    self.head_dim,
                    chunk,
                    self.flat_key_tile(),
                );
            }
            Family::Prefill => {
                src += ATTENTION_BINDINGS;
                src += "\n";
                src += self.tiled_pool_source();
                src += "\n";
                src += ATTENTION_TILES;
                src += "\n";
                src += self.reductions.softmax_source();
                src += "\n";
                src += PREFILL;
            }
        }
        src
    }

    /// Every variant pagekv can build: all families, storage modes and head dims, for the
    /// 16 KiB (WebGPU default) and 32 KiB workgroup-memory classes, in both reduction forms.
    pub fn all() -> Vec<Variant> {
        let mut out = Vec::new();
        for limit in [16 * 1024, 32 * 1024] {
            for family in Family::ALL {
                let modes: &[KvStorageMode] = if family.uses_kv() {
                    &KvStorageMode::ALL
                } else {
                    &[KvStorageMode::F32]
                };
                for &mode in modes {
                    for head_dim in SUPPORTED_HEAD_DIMS {
                        let Some(v) = Variant::for_device(family, mode, head_dim, limit) else {
                            continue;
                        };
                        let (groups, backings): (_, &[KvBacking]) = if family == Family::Flat {
                            (
                                1..=MAX_FLAT_GROUP,
                                &[KvBacking::Buffers, KvBacking::Textures],
                            )
                        } else {
                            (v.group..=v.group, &[KvBacking::Buffers])
                        };
                        for group in groups {
                            // Flat decode serves one query token; flat prefill as many as
                            // its policy picks for the group.
                            let queries = if family == Family::Flat {
                                vec![1, super::flat::prefill_queries(group, head_dim)]
                            } else {
                                vec![v.queries]
                            };
                            for &backing in backings {
                                for &queries in &queries {
                                    for reductions in [Reductions::Serial, Reductions::Subgroup] {
                                        for half_decode in
                                            [HalfDecode::Builtin, HalfDecode::Integer]
                                        {
                                            let v = Variant {
                                                group,
                                                queries,
                                                backing,
                                                ..v
                                            }
                                            .with_reductions(reductions)
                                            .with_half_decode(half_decode);
                                            if !out.contains(&v) {
                                                out.push(v);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_fit_the_webgpu_default_limit() {
        for family in [Family::Decode, Family::Prefill] {
            for hd in SUPPORTED_HEAD_DIMS {
                let t = TileShape::choose(family, hd, 16 * 1024).expect("fits 16 KiB");
                assert!(t.bytes(hd) <= 16 * 1024, "{family:?} hd{hd} {t:?}");
            }
        }
        assert!(TileShape::choose(Family::Decode, 256, 2048).is_none());
        assert!(TileShape::choose(Family::Prefill, 256, 8192).is_none());
    }

    #[test]
    fn flat_key_tiles_divide_every_block_size() {
        for hd in SUPPORTED_HEAD_DIMS {
            let v = Variant::for_device(Family::Flat, KvStorageMode::F16Native, hd, 0).unwrap();
            assert_eq!(v.mode, KvStorageMode::F16Packed, "read as u32 words");
            for bs in crate::cache::SUPPORTED_BLOCK_SIZES {
                assert_eq!(bs % v.flat_key_tile(), 0, "hd{hd} block size {bs}");
            }
        }
    }

    #[test]
    fn tiled_attention_loads_whole_chunks_where_rows_allow() {
        for family in [Family::Decode, Family::Prefill] {
            // f16 reads 16-byte chunks of u32 words, so a native f16 pool needs no SHADER_F16.
            let f16 = Variant::for_device(family, KvStorageMode::F16Native, 128, 16 * 1024)
                .expect("fits");
            assert!(f16.loads_chunks() && !f16.needs_f16(), "{family:?}");
            let source = f16.source();
            assert!(source.contains("alias KvVec = vec4<u32>;"), "{family:?}");
            assert!(
                source.contains("fn stage_rows(") && source.contains("WORDS_PER_LOAD: u32 = 4u")
            );
            // int4 rows at head dim 80 are 40 bytes: staged an element (a word) per load.
            let int4 =
                Variant::for_device(family, KvStorageMode::Int4, 80, 16 * 1024).expect("fits");
            assert!(!int4.loads_chunks(), "{family:?}");
            let source = int4.source();
            assert!(source.contains("alias KvVec = u32;"));
            assert!(source.contains("WORDS_PER_LOAD: u32 = 1u"));
        }
        // Append stores through the element prelude whatever the head dim.
        let append = Variant::for_device(Family::Append, KvStorageMode::F16Native, 128, 0);
        assert!(append.is_some_and(|v| !v.loads_chunks() && v.needs_f16()));
    }

    #[test]
    fn names_are_unique() {
        let all = Variant::all();
        let mut names: Vec<_> = all.iter().map(Variant::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
