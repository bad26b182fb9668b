//! Kernel families, one module and one shader file each: append (and block copy), decode,
//! prefill and combine; what decode and prefill share (building under either algorithm, the
//! per-shard params, recording) is in `attention`, the flat kernel that serves both in `flat`.
//! Modules own pipelines, bind layouts and dispatch; they make no policy decisions (which
//! blocks, which sequences, when) — the bookkeeping in [`crate::cache`] does.
//!
//! Everything records into a caller's `wgpu::CommandEncoder`, so a host application can put
//! pagekv's work in the same submission as its own.

mod append;
mod attention;
pub(crate) mod batch;
pub(crate) mod bind_cache;
mod combine;
mod decode;
mod flat;
mod flat_source;
mod halves;
mod layouts;
pub mod occupancy;
pub mod params;
mod partials;
pub(crate) mod pipeline;
pub mod portability;
mod prefill;
mod prelude;
mod reductions;
pub mod variant;

pub use append::{AppendBatch, AppendInput, SKIP_SLOT};
pub use batch::{AttentionIo, SeqView};
pub use flat::{AttentionAlgorithm, LLVMPIPE_LOOP_ITERATIONS, MAX_TILED_PARTITION_TILES};
pub use halves::HalfDecode;
pub use prelude::codec_source;
pub use reductions::{ROW_LANES_MAX, Reductions};
pub use variant::{Family, TileShape, Variant, WgslModule};

use append::AppendKernel;
use attention::{AttentionKernel, StepKind};
use batch::AttentionBatch;
use combine::CombineKernel;

use crate::gpu::{GpuContext, GpuError, KvStorage};

/// Every WGSL module the core builds: the attention variants ([`Variant::all`]) and the
/// occupancy probe at a decode tile's footprint. `portability` checks them all.
pub fn all_modules() -> Vec<WgslModule> {
    let mut out: Vec<WgslModule> = Variant::all().iter().map(Variant::module).collect();
    let tile = TileShape::choose(Family::Decode, 128, 32 * 1024).expect("fits 32 KiB");
    out.push(occupancy::module(tile.bytes(128)));
    out
}

/// Reusable metadata of a decode step (one query per sequence). A distinct type from
/// [`PrefillBatch`], so a batch prepared for one kind of step cannot be recorded as the other.
#[derive(Debug, Default)]
pub struct DecodeBatch(AttentionBatch);

/// Reusable metadata of a prefill step (a chunk of queries per sequence, causal).
#[derive(Debug, Default)]
pub struct PrefillBatch(AttentionBatch);

macro_rules! batch_accessors {
    ($t:ty) => {
        impl $t {
            /// Sequences in the prepared step.
            pub fn num_seqs(&self) -> u32 {
                self.0.num_seqs
            }
            /// Output rows (query tokens x q_heads) of the prepared step.
            pub fn rows(&self) -> u32 {
                self.0.rows
            }
            /// Partial results per row (context splits x pool shards) the combine merges.
            pub fn num_partitions(&self) -> u32 {
                self.0.num_partitions
            }
            /// Keys per context split.
            pub fn partition_tokens(&self) -> u32 {
                self.0.partition_tokens
            }
            /// Groups in which the step's pool shards are merged (1 unless its partial
            /// results outgrow [`AttentionOptions::partial_budget`]).
            pub fn shard_groups(&self) -> u32 {
                self.0.partials.groups
            }
        }
    };
}
batch_accessors!(DecodeBatch);
batch_accessors!(PrefillBatch);

/// How [`PagedAttention`] builds its attention kernels. The defaults are what the adapter's
/// class runs best; tests and `verify` force the other algorithm or a split length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttentionOptions {
    /// Tiled (workgroup memory) or flat kernels; `None` picks by adapter class.
    pub algorithm: Option<AttentionAlgorithm>,
    /// Force decode's context split length in keys; `None` sizes splits to fill the device.
    pub decode_partition_tokens: Option<u32>,
    /// Sliding-window attention: each query attends to at most this many newest keys (its
    /// own included), as models such as Mistral and Gemma's local layers do; `None` attends
    /// to the whole context.
    pub sliding_window: Option<u32>,
    /// How the tiled kernels reduce across threads; `None` takes subgroups where the
    /// adapter has them ([`Reductions::for_device`]). Ignored by the flat kernels.
    pub reductions: Option<Reductions>,
    /// How the attention kernels convert stored halves (f16 and FP8 pools) to f32; `None`
    /// takes what runs best on the adapter ([`HalfDecode::for_device`]).
    pub half_decode: Option<HalfDecode>,
    /// Workgroups the tiled decode splits a step's contexts to fill; `None` measures how
    /// many the device runs at once ([`occupancy`]: a few dozen short dispatches, once per
    /// device and tile footprint). Ignored when `decode_partition_tokens` forces a split
    /// length.
    pub decode_target_workgroups: Option<u32>,
    /// Most bytes of partial-softmax scratch one step may use; `None` (and any larger value)
    /// means the device's largest storage binding. A step whose splits and pool shards need
    /// more takes fewer splits, then merges its shards in groups, a combine pass per group,
    /// instead of failing: a long prefill over a pool of many shards still runs on a device
    /// with 128 MiB bindings. Lower it to bound the scratch an app lends the cache.
    pub partial_budget: Option<u64>,
}

/// Names of the compiled variants, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantNames {
    /// Append (and block copy).
    pub append: String,
    /// Prefill.
    pub prefill: String,
    /// Decode.
    pub decode: String,
    /// Combine.
    pub combine: String,
}

/// All kernels for one KV pool, built once (pipeline creation is the slow part) and then
/// recorded step after step. The fields are private: the pipelines are built in one place,
/// for one pool's format, backing and geometry, and cannot be swapped from outside.
pub struct PagedAttention {
    ctx: GpuContext,
    /// What the pipelines were built for: every call checks its pool against it.
    built_for: (
        crate::cache::CacheLayout,
        crate::gpu::KvStorageMode,
        crate::gpu::KvBacking,
    ),
    append: AppendKernel,
    decode: AttentionKernel,
    prefill: AttentionKernel,
    combine: CombineKernel,
    algorithm: AttentionAlgorithm,
}

fn compute_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    label: &str,
    timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
) -> wgpu::ComputePass<'e> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: timestamps,
    })
}

impl PagedAttention {
    /// Builds every pipeline `storage` needs on the context's device, with the algorithm the
    /// adapter's class runs best.
    pub fn new(ctx: &GpuContext, storage: &KvStorage) -> Result<Self, GpuError> {
        Self::with_options(ctx, storage, AttentionOptions::default())
    }

    /// Builds every pipeline `storage` needs, as `options` say.
    pub fn with_options(
        ctx: &GpuContext,
        storage: &KvStorage,
        options: AttentionOptions,
    ) -> Result<Self, GpuError> {
        let algorithm = options
            .algorithm
            .unwrap_or_else(|| AttentionAlgorithm::for_storage(ctx, storage));
        if options.sliding_window == Some(0) {
            return Err(GpuError::InvalidInput {
                argument: "sliding window",
                value: "0".into(),
                problem: "a window must hold at least one key".into(),
            });
        }
        let reductions = options
            .reductions
            .unwrap_or_else(|| Reductions::for_device(ctx));
        let half_decode = options
            .half_decode
            .unwrap_or_else(|| HalfDecode::for_device(ctx));
        let mut decode = AttentionKernel::with_algorithm(
            ctx,
            storage,
            StepKind::Decode,
            algorithm,
            reductions,
            half_decode,
        )?;
        decode.splits = match options.decode_partition_tokens {
            Some(tokens) => flat::SplitPolicy {
                forced_partition_tokens: Some(tokens),
                ..decode.splits
            },
            None => flat::SplitPolicy::for_device(
                ctx,
                &decode.variant,
                options.decode_target_workgroups,
            )?,
        };
        decode.window = options.sliding_window;
        decode.partial_budget = options.partial_budget;
        let mut prefill = AttentionKernel::with_algorithm(
            ctx,
            storage,
            StepKind::Prefill,
            algorithm,
            reductions,
            half_decode,
        )?;
        prefill.window = options.sliding_window;
        prefill.partial_budget = options.partial_budget;
        Ok(Self {
            ctx: ctx.clone(),
            built_for: (storage.layout.clone(), storage.mode, storage.backing),
            append: AppendKernel::new(ctx, storage)?,
            decode,
            prefill,
            combine: CombineKernel::with_algorithm(
                ctx,
                storage.layout.geometry.head_dim,
                algorithm,
                reductions,
            )?,
            algorithm,
        })
    }

    /// Refuses a pool other than the kind the pipelines were built for, and a layer it lacks.
    fn check(&self, storage: &KvStorage, layer: Option<u32>) -> Result<(), GpuError> {
        let (layout, mode, backing) = &self.built_for;
        if (&storage.layout, storage.mode, storage.backing) != (layout, *mode, *backing) {
            return Err(GpuError::InvalidInput {
                argument: "storage",
                value: format!(
                    "{} {} {}",
                    storage.layout.geometry.name,
                    storage.mode.name(),
                    storage.backing.name()
                ),
                problem: format!(
                    "these kernels were built for {} {} {}",
                    layout.geometry.name,
                    mode.name(),
                    backing.name()
                ),
            });
        }
        if let Some(layer) = layer.filter(|&l| l >= storage.layers) {
            return Err(GpuError::InvalidInput {
                argument: "layer",
                value: layer.to_string(),
                problem: format!("the pool has {} layers", storage.layers),
            });
        }
        Ok(())
    }

    /// The attention algorithm built.
    pub fn algorithm(&self) -> AttentionAlgorithm {
        self.algorithm
    }

    /// The sliding window the attention kernels apply, if any.
    pub fn sliding_window(&self) -> Option<u32> {
        self.decode.window
    }

    /// The compiled variants' names.
    pub fn variant_names(&self) -> VariantNames {
        VariantNames {
            append: self.append.variant.name(),
            prefill: self.prefill.variant.name(),
            decode: self.decode.variant.name(),
            combine: self.combine.variant.name(),
        }
    }

    /// Uploads the slots of a step's new tokens.
    pub fn prepare_append(
        &self,
        storage: &KvStorage,
        batch: &mut AppendBatch,
        slots: &[u32],
    ) -> Result<(), GpuError> {
        self.check(storage, None)?;
        self.append.prepare(&self.ctx, storage, batch, slots)
    }

    /// Whether a step of `tokens` new tokens can be prepared on `storage`: the checks
    /// [`PagedAttention::prepare_append`] makes, without uploading, so a caller can refuse a
    /// step before its bookkeeping books slots.
    pub fn check_append(&self, storage: &KvStorage, tokens: u64) -> Result<(), GpuError> {
        self.check(storage, None)?;
        AppendKernel::check_tokens(&self.ctx, storage, tokens)
    }

    /// Records the append of the step's new K/V into `layer`, in a pass of its own.
    pub fn record_append(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        layer: u32,
        batch: &AppendBatch,
        input: AppendInput<'_>,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<(), GpuError> {
        self.check(storage, Some(layer))?;
        let mut pass = compute_pass(encoder, "pagekv append", timestamps);
        self.append.record(&mut pass, storage, layer, batch, input);
        Ok(())
    }

    /// Records the append into an open pass, so several batches can share one pass.
    pub fn record_append_in(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        storage: &KvStorage,
        layer: u32,
        batch: &AppendBatch,
        input: AppendInput<'_>,
    ) -> Result<(), GpuError> {
        self.check(storage, Some(layer))?;
        self.append.record(pass, storage, layer, batch, input);
        Ok(())
    }

    /// Records copy-on-write block copies for every layer.
    pub fn record_block_copies(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        copies: &[(u32, u32)],
    ) -> Result<(), GpuError> {
        self.check(storage, None)?;
        self.append
            .record_copies(&self.ctx, encoder, storage, copies)
    }

    /// Uploads a decode step's metadata.
    pub fn prepare_decode(
        &self,
        storage: &KvStorage,
        batch: &mut DecodeBatch,
        seqs: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        self.check(storage, None)?;
        self.decode.prepare(&self.ctx, storage, &mut batch.0, seqs)
    }

    /// Records decode attention of `layer`.
    pub fn record_decode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        layer: u32,
        batch: &DecodeBatch,
        io: AttentionIo<'_>,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<(), GpuError> {
        self.check(storage, Some(layer))?;
        let mut pass = compute_pass(encoder, "pagekv decode", timestamps);
        self.decode
            .record(&mut pass, &self.combine, storage, layer, &batch.0, io);
        Ok(())
    }

    /// Uploads a prefill step's metadata.
    pub fn prepare_prefill(
        &self,
        storage: &KvStorage,
        batch: &mut PrefillBatch,
        seqs: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        self.check(storage, None)?;
        self.prefill.prepare(&self.ctx, storage, &mut batch.0, seqs)
    }

    /// Records prefill attention of `layer`.
    pub fn record_prefill(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        layer: u32,
        batch: &PrefillBatch,
        io: AttentionIo<'_>,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<(), GpuError> {
        self.check(storage, Some(layer))?;
        let mut pass = compute_pass(encoder, "pagekv prefill", timestamps);
        self.prefill
            .record(&mut pass, &self.combine, storage, layer, &batch.0, io);
        Ok(())
    }
}
