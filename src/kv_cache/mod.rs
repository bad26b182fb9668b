//! [`KvCache`]: the paged KV cache as a wgpu app embeds it.
//!
//! One object owns the pool (device buffers or textures), the compiled kernels and the block
//! bookkeeping. The app keeps its own device, queue, encoder and activation buffers:
//!
//! 1. [`KvCache::new`] with the app's device and queue and a [`KvCacheConfig`].
//! 2. Sequences come and go with [`KvCache::add_sequence`], [`KvCache::admit`] (prefix
//!    caching), [`KvCache::fork`] and [`KvCache::free`]; pagekv picks every block and slot.
//! 3. Each step: `prepare_*` uploads the step's metadata into a reusable step object
//!    ([`AppendStep`], [`DecodeStep`], [`PrefillStep`]); `record_*` records one layer's
//!    dispatches into the app's encoder, reading Q/K/V and writing the output through
//!    [`wgpu::BufferBinding`] ranges of the app's buffers.
//! 4. After `queue.submit`, [`KvCache::submitted`] (or submit through [`KvCache::submit`]).
//!
//! The upload is explicit because wgpu applies `queue.write_buffer` at the next submit: a step
//! object prepared again after it was recorded, before that recording was submitted, would
//! silently change what the earlier recording reads. pagekv refuses that with
//! [`KvError::StepNotSubmitted`] instead. A steady-state step creates no GPU objects: step
//! objects keep their buffers and bind groups, and [`KvCache::gpu_objects_created`] lets a
//! test check it.

mod step;

pub use step::{AppendStep, DecodeStep, PrefillStep};

use crate::cache::{
    CacheError, CacheLayout, CacheStats, KvCacheManager, KvFormat, ModelGeometry, PrefixHit, SeqId,
};
use crate::gpu::{GpuContext, GpuError, KvStorage, KvStorageMode};
use crate::kernels::{
    AppendInput, AttentionAlgorithm, AttentionIo, AttentionOptions, PagedAttention, SeqView,
};
use thiserror::Error;

/// How much device memory the pool takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// Exactly this many blocks (per layer, for K and V each).
    Blocks(u32),
    /// As many blocks as fit in this many bytes of K and V over all pooled layers.
    Bytes(u64),
}

/// What [`KvCache::new`] builds: the model's KV geometry, the storage format, the paging
/// granularity and the pool size.
#[derive(Clone, Debug, PartialEq)]
pub struct KvCacheConfig {
    /// Heads, head dim and layer count of the model whose KV is cached.
    pub geometry: ModelGeometry,
    /// How K and V elements are stored.
    pub dtype: KvFormat,
    /// Tokens per block, one of [`crate::cache::SUPPORTED_BLOCK_SIZES`].
    pub block_size: u32,
    /// Layers that get a pool; `None` for all of the geometry's layers.
    pub layers: Option<u32>,
    /// Pool size.
    pub capacity: Capacity,
    /// Reuse full blocks of identical prompt prefixes across sequences ([`KvCache::admit`]).
    pub prefix_caching: bool,
    /// Sliding-window attention: every query attends to at most this many newest keys, and
    /// once a step is submitted the blocks no later query can see go back to the pool, so
    /// between steps a sequence holds at most `ceil(window / block_size) + 1` blocks however
    /// long it grows (a step appending n tokens needs room for n more while it runs).
    /// `None` (the default) attends to the whole context.
    pub sliding_window: Option<u32>,
}

impl KvCacheConfig {
    /// A config for `geometry` with f16 storage, 16-token blocks, every layer, prefix caching
    /// on, and `capacity`.
    pub fn new(geometry: ModelGeometry, capacity: Capacity) -> Self {
        Self {
            geometry,
            dtype: KvFormat::F16,
            block_size: 16,
            layers: None,
            capacity,
            prefix_caching: true,
            sliding_window: None,
        }
    }
}

/// Why a [`KvCache`] call was refused. The variants separate the caller's mistakes, the
/// bookkeeping's expected refusals (out of blocks) and the device's limits and failures.
#[derive(Debug, Error)]
pub enum KvError {
    /// A config field is invalid.
    #[error("invalid KvCacheConfig: {field} = {value}: {problem}")]
    InvalidConfig {
        /// The field at fault.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The bookkeeping refused (out of blocks, unknown or duplicate sequence); the cache is
    /// unchanged.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The device refused (a limit) or failed.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// A layer index beyond the pooled layers.
    #[error("layer {layer} is out of range: the cache pools {layers} layers")]
    LayerOutOfRange {
        /// The layer asked for.
        layer: u32,
        /// Layers with a pool.
        layers: u32,
    },
    /// The same sequence appears twice in one step.
    #[error("sequence {0} appears twice in one step")]
    RepeatedSequence(SeqId),
    /// A step object was recorded before it was prepared.
    #[error("the {step} step was recorded before it was prepared")]
    NotPrepared {
        /// Which kind of step.
        step: &'static str,
    },
    /// A step object was prepared again after a recording that has not been submitted.
    #[error(
        "the {step} step was recorded and not yet submitted; submit it and call KvCache::submitted before preparing it again, or use a second step object"
    )]
    StepNotSubmitted {
        /// Which kind of step.
        step: &'static str,
    },
    /// A step object was prepared by a different cache.
    #[error("the {step} step was prepared by another KvCache")]
    ForeignStep {
        /// Which kind of step.
        step: &'static str,
    },
    /// A buffer range is smaller than the step reads or writes.
    #[error("the {binding} binding holds {bytes} bytes but this step needs {needed}")]
    BindingTooSmall {
        /// Which binding (q, out, k or v).
        binding: &'static str,
        /// Bytes in the range given.
        bytes: u64,
        /// Bytes the step needs.
        needed: u64,
    },
}

/// The paged KV cache on an app's device: pool, kernels and block bookkeeping in one object.
pub struct KvCache {
    storage: KvStorage,
    kernels: PagedAttention,
    manager: KvCacheManager,
    /// Identifies this cache to the step objects it prepares.
    id: u64,
    /// Submissions the app has reported; a step recorded in the current epoch is in flight.
    epoch: u64,
}

fn next_cache_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl KvCache {
    /// Allocates the pool and builds the kernels on the app's `device`. Uses only the limits
    /// and features that device was created with (f16 storage works without SHADER_F16).
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        config: &KvCacheConfig,
    ) -> Result<Self, KvError> {
        let ctx = GpuContext::from_device(device.clone(), queue.clone(), device.adapter_info());
        Self::with_context(&ctx, config, AttentionOptions::default())
    }

    /// Like [`KvCache::new`] on a [`GpuContext`], with explicit kernel options.
    pub fn with_context(
        ctx: &GpuContext,
        config: &KvCacheConfig,
        options: AttentionOptions,
    ) -> Result<Self, KvError> {
        let invalid = |field, value: String, problem| KvError::InvalidConfig {
            field,
            value,
            problem,
        };
        let g = &config.geometry;
        g.validate()
            .map_err(|_| invalid("geometry", format!("{g:?}"), "not a valid KV geometry"))?;
        if !crate::cache::SUPPORTED_BLOCK_SIZES.contains(&config.block_size) {
            return Err(invalid(
                "block_size",
                config.block_size.to_string(),
                "must be 8, 16 or 32",
            ));
        }
        if config.sliding_window == Some(0) {
            return Err(invalid(
                "sliding_window",
                "0".into(),
                "a window must hold at least one key",
            ));
        }
        let options = AttentionOptions {
            sliding_window: config.sliding_window.or(options.sliding_window),
            ..options
        };
        let layers = config.layers.unwrap_or(g.layers);
        if layers == 0 || layers > g.layers {
            return Err(invalid(
                "layers",
                layers.to_string(),
                "must be between 1 and the geometry's layer count",
            ));
        }
        let layout = CacheLayout {
            geometry: g.clone(),
            block_size: config.block_size,
            dtype: config.dtype,
        };
        let per_block = layout.block_bytes_per_layer() * 2 * layers as u64;
        let blocks = match config.capacity {
            Capacity::Blocks(n) => n,
            Capacity::Bytes(bytes) => (bytes / per_block).min(u32::MAX as u64) as u32,
        };
        if blocks == 0 {
            return Err(invalid(
                "capacity",
                format!("{:?}", config.capacity),
                "holds no block; one block of this layout needs more",
            ));
        }
        let manager = KvCacheManager::new(layout.clone(), blocks, config.prefix_caching)?;
        let backing = AttentionAlgorithm::pool_backing(options.algorithm, ctx, &layout);
        let mode = KvStorageMode::choose(layout.dtype, ctx.capabilities.shader_f16);
        let storage = KvStorage::with_backing(ctx, &layout, blocks, layers, None, mode, backing)?;
        let kernels = PagedAttention::with_options(ctx, &storage, options)?;
        Ok(Self {
            storage,
            kernels,
            manager,
            id: next_cache_id(),
            epoch: 0,
        })
    }

    /// The block bookkeeping, read-only: tables, free blocks, prefix cache, stats.
    pub fn manager(&self) -> &KvCacheManager {
        &self.manager
    }

    /// The device pool, read-only (shards, bytes, readback for checks).
    pub fn storage(&self) -> &KvStorage {
        &self.storage
    }

    /// Layers with a pool.
    pub fn layers(&self) -> u32 {
        self.storage.layers
    }

    /// Cumulative bookkeeping counters (prefix hits, copy-on-write copies, evictions).
    pub fn stats(&self) -> CacheStats {
        self.manager.stats()
    }

    /// Tokens cached for `id`, or `None` if it is not a live sequence.
    pub fn context_len(&self, id: SeqId) -> Option<u32> {
        self.manager
            .contains(id)
            .then(|| self.manager.context_len(id))
    }

    /// Buffers, textures and bind groups pagekv has created on this cache's device. A
    /// steady-state step (same step objects, same buffer ranges, no growth) adds none.
    pub fn gpu_objects_created(&self) -> u64 {
        self.storage.context().objects_created()
    }

    /// Adds an empty sequence.
    pub fn add_sequence(&mut self, id: SeqId) -> Result<(), KvError> {
        Ok(self.manager.add_sequence(id)?)
    }

    /// Adds sequence `id` holding the longest cached prefix of `prompt` (whole blocks). The
    /// app then appends `prompt[hit.cached_tokens..]`; with prefix caching off, nothing is
    /// cached and it appends the whole prompt.
    pub fn admit(&mut self, id: SeqId, prompt: &[u32]) -> Result<PrefixHit, KvError> {
        Ok(self.manager.admit_with_prefix(id, prompt)?)
    }

    /// Creates `child` sharing all of `parent`'s tokens (parallel sampling, beam search);
    /// the first append to a shared partial block copies it on the GPU.
    pub fn fork(&mut self, parent: SeqId, child: SeqId) -> Result<(), KvError> {
        Ok(self.manager.fork(parent, child)?)
    }

    /// Removes `id` and releases its blocks (full prompt blocks stay cached for reuse).
    pub fn free(&mut self, id: SeqId) -> Result<(), KvError> {
        Ok(self.manager.free(id)?)
    }

    /// Tells the cache that everything recorded so far has been submitted, so step objects
    /// may be prepared again.
    pub fn submitted(&mut self) {
        self.epoch += 1;
        if let Some(window) = self.kernels.sliding_window() {
            // The step's reads are submitted; the next step's writes come after them in
            // queue order, so its appends may reuse what no query can see any more.
            let ids: Vec<SeqId> = self.manager.seq_ids().collect();
            for id in ids {
                let released = self.manager.release_outside_window(id, window);
                debug_assert!(released.is_ok(), "{released:?}");
            }
        }
    }

    /// Finishes `encoder`, submits it on the cache's queue and marks it submitted.
    pub fn submit(&mut self, encoder: wgpu::CommandEncoder) -> wgpu::SubmissionIndex {
        let index = self.storage.context().queue.submit([encoder.finish()]);
        self.submitted();
        index
    }

    fn check_layer(&self, layer: u32) -> Result<(), KvError> {
        if layer >= self.storage.layers {
            return Err(KvError::LayerOutOfRange {
                layer,
                layers: self.storage.layers,
            });
        }
        Ok(())
    }

    fn no_repeats(ids: impl Iterator<Item = SeqId>) -> Result<(), KvError> {
        let mut seen = std::collections::BTreeSet::new();
        for id in ids {
            if !seen.insert(id) {
                return Err(KvError::RepeatedSequence(id));
            }
        }
        Ok(())
    }

    /// Books slots for each sequence's new tokens (token ids, used for prefix hashing) and
    /// uploads them. The K/V rows the app records with must follow the same order: the
    /// first sequence's tokens, then the next one's. All or nothing: if the pool cannot take
    /// every sequence's tokens, no sequence changes.
    pub fn prepare_append(
        &mut self,
        step: &mut AppendStep,
        new_tokens: &[(SeqId, &[u32])],
    ) -> Result<(), KvError> {
        step.state.check_preparable(self.epoch, "append")?;
        Self::no_repeats(new_tokens.iter().map(|(id, _)| *id))?;
        let mut needed = 0u32;
        for (id, tokens) in new_tokens {
            needed = needed.saturating_add(
                self.manager
                    .blocks_needed_to_append(*id, tokens.len() as u32)?,
            );
        }
        let available = self.manager.num_free_blocks();
        if needed > available {
            return Err(CacheError::OutOfBlocks { needed, available }.into());
        }
        let tokens: u64 = new_tokens.iter().map(|(_, t)| t.len() as u64).sum();
        self.kernels.check_append(&self.storage, tokens)?;
        let mut slots = Vec::new();
        let mut copies = Vec::new();
        for (id, tokens) in new_tokens {
            let plan = self.manager.append_tokens(*id, tokens)?;
            slots.extend(plan.slots);
            copies.extend(plan.copies.iter().map(|c| (c.src, c.dst)));
        }
        self.kernels
            .prepare_append(&self.storage, &mut step.batch, &slots)?;
        step.copies = copies;
        step.copies_recorded.set(false);
        step.state.prepared(self.id);
        Ok(())
    }

    /// Records `layer`'s append of the step's new K/V into the app's encoder. The first
    /// record of a step also records its copy-on-write block copies (all layers).
    pub fn record_append(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        layer: u32,
        step: &AppendStep,
        input: AppendInput<'_>,
    ) -> Result<(), KvError> {
        step.state.check_recordable(self.id, "append")?;
        self.check_layer(layer)?;
        let g = &self.storage.layout.geometry;
        let needed = step.tokens() as u64 * (g.kv_heads * g.head_dim) as u64 * 4;
        check_binding("k", &input.k, needed)?;
        check_binding("v", &input.v, needed)?;
        if !step.copies.is_empty() && !step.copies_recorded.replace(true) {
            self.kernels
                .record_block_copies(encoder, &self.storage, &step.copies)?;
        }
        self.kernels
            .record_append(encoder, &self.storage, layer, &step.batch, input, None)?;
        step.state.recorded(self.epoch);
        Ok(())
    }

    fn views(&self, seqs: &[(SeqId, u32)]) -> Result<Vec<SeqView<'_>>, KvError> {
        Self::no_repeats(seqs.iter().map(|(id, _)| *id))?;
        seqs.iter()
            .map(|&(id, query_len)| {
                if !self.manager.contains(id) {
                    return Err(CacheError::UnknownSequence(id).into());
                }
                Ok(SeqView {
                    block_table: self.manager.block_table(id),
                    context_len: self.manager.context_len(id),
                    query_len,
                })
            })
            .collect()
    }

    /// Uploads a decode step: each sequence's newest token (appended already) attends to its
    /// whole cache.
    pub fn prepare_decode(&mut self, step: &mut DecodeStep, seqs: &[SeqId]) -> Result<(), KvError> {
        step.state.check_preparable(self.epoch, "decode")?;
        let seqs: Vec<(SeqId, u32)> = seqs.iter().map(|&id| (id, 1)).collect();
        let views = self.views(&seqs)?;
        self.kernels
            .prepare_decode(&self.storage, &mut step.batch, &views)?;
        step.state.prepared(self.id);
        Ok(())
    }

    /// Records `layer`'s decode attention: `io.q` holds `[sequences][q_heads][head_dim]` f32
    /// in the prepared order and `io.out` receives the same shape.
    pub fn record_decode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        layer: u32,
        step: &DecodeStep,
        io: AttentionIo<'_>,
    ) -> Result<(), KvError> {
        step.state.check_recordable(self.id, "decode")?;
        self.check_layer(layer)?;
        self.check_io(&io, step.batch.rows())?;
        self.kernels
            .record_decode(encoder, &self.storage, layer, &step.batch, io, None)?;
        step.state.recorded(self.epoch);
        Ok(())
    }

    /// Uploads a prefill step: for each `(sequence, queries)`, its newest `queries` tokens
    /// (appended already) attend causally to its cache.
    pub fn prepare_prefill(
        &mut self,
        step: &mut PrefillStep,
        seqs: &[(SeqId, u32)],
    ) -> Result<(), KvError> {
        step.state.check_preparable(self.epoch, "prefill")?;
        let views = self.views(seqs)?;
        self.kernels
            .prepare_prefill(&self.storage, &mut step.batch, &views)?;
        step.state.prepared(self.id);
        Ok(())
    }

    /// Records `layer`'s prefill attention: `io.q` holds `[query tokens][q_heads][head_dim]`
    /// f32, sequence after sequence in the prepared order; `io.out` the same shape.
    pub fn record_prefill(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        layer: u32,
        step: &PrefillStep,
        io: AttentionIo<'_>,
    ) -> Result<(), KvError> {
        step.state.check_recordable(self.id, "prefill")?;
        self.check_layer(layer)?;
        self.check_io(&io, step.batch.rows())?;
        self.kernels
            .record_prefill(encoder, &self.storage, layer, &step.batch, io, None)?;
        step.state.recorded(self.epoch);
        Ok(())
    }

    fn check_io(&self, io: &AttentionIo<'_>, rows: u32) -> Result<(), KvError> {
        let needed = rows as u64 * self.storage.layout.geometry.head_dim as u64 * 4;
        check_binding("q", &io.q, needed)?;
        check_binding("out", &io.out, needed)
    }

    /// Reads `id`'s K and V of `layer` back, `[tokens][kv_heads][head_dim]` f32 each, in
    /// logical order. Waits for the device: for tests and debugging, not the hot path.
    pub fn read_kv(&self, id: SeqId, layer: u32) -> Result<(Vec<f32>, Vec<f32>), KvError> {
        self.check_layer(layer)?;
        if !self.manager.contains(id) {
            return Err(CacheError::UnknownSequence(id).into());
        }
        Ok(self.storage.gather(
            self.storage.context(),
            layer,
            self.manager.block_table(id),
            self.manager.context_len(id),
        )?)
    }
}

/// Refuses a range smaller than `needed` bytes (wgpu would report a validation error at
/// submit, far from the cause).
fn check_binding(
    binding: &'static str,
    range: &wgpu::BufferBinding<'_>,
    needed: u64,
) -> Result<(), KvError> {
    let bytes = range
        .size
        .map_or(range.buffer.size().saturating_sub(range.offset), |s| {
            s.get()
        });
    if bytes < needed {
        return Err(KvError::BindingTooSmall {
            binding,
            bytes,
            needed,
        });
    }
    Ok(())
}
