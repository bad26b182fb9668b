//! Kernel families, one module and one shader file each: append (and block copy), decode,
//! prefill and combine; generate for the stress engine; copy and matmul, the rooflines
//! `pagekv bench` measures the others against. Modules own pipelines, bind layouts and dispatch; they make no policy
//! decisions (which blocks, which sequences, when) — the bookkeeping in [`crate::cache`] does.
//!
//! Everything records into a caller's `wgpu::CommandEncoder`, so a host application can put
//! pagekv's work in the same submission as its own.

pub mod append;
pub(crate) mod batch;
pub mod combine;
pub mod copy;
pub mod decode;
pub mod flat;
mod flat_source;
pub mod generate;
pub mod matmul;
pub mod params;
pub(crate) mod pipeline;
pub mod portability;
pub mod prefill;
pub mod read;
pub mod variant;

pub use append::{AppendBatch, AppendKernel, SKIP_SLOT};
pub use batch::{AttentionBatch, SeqView};
pub use combine::CombineKernel;
pub use decode::DecodeKernel;
pub use flat::{AttentionAlgorithm, SplitPolicy};
pub use prefill::PrefillKernel;
pub use variant::{Family, TileShape, Variant};

use crate::gpu::{GpuContext, GpuError, KvStorage};

/// All kernels for one KV pool, built once (pipeline creation is the slow part) and then
/// recorded step after step.
pub struct PagedAttention {
    ctx: GpuContext,
    /// Scatter of new K/V and copy-on-write.
    pub append: AppendKernel,
    /// Single-query attention with context splits.
    pub decode: DecodeKernel,
    /// Causal chunk attention.
    pub prefill: PrefillKernel,
    /// Merge of partial softmax states.
    pub combine: CombineKernel,
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
    /// Builds every pipeline `storage` needs on the context's device.
    pub fn new(ctx: &GpuContext, storage: &KvStorage) -> Result<Self, GpuError> {
        Ok(Self {
            ctx: ctx.clone(),
            append: AppendKernel::new(ctx, storage)?,
            decode: DecodeKernel::new(ctx, storage)?,
            prefill: PrefillKernel::new(ctx, storage)?,
            combine: CombineKernel::new(ctx, storage.layout.geometry.head_dim)?,
        })
    }

    /// Uploads the slots of a step's new tokens.
    pub fn prepare_append(
        &self,
        storage: &KvStorage,
        batch: &mut AppendBatch,
        slots: &[u32],
    ) -> Result<(), GpuError> {
        self.append.prepare(&self.ctx, storage, batch, slots)
    }

    /// Records the append of `new_k`/`new_v` into `layer`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_append(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        layer: u32,
        batch: &AppendBatch,
        new_k: &wgpu::Buffer,
        new_v: &wgpu::Buffer,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let mut pass = compute_pass(encoder, "pagekv append", timestamps);
        self.append
            .record(&self.ctx, &mut pass, storage, layer, batch, new_k, new_v);
    }

    /// Records copy-on-write block copies for every layer.
    pub fn record_block_copies(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        copies: &[(u32, u32)],
    ) -> Result<(), GpuError> {
        self.append
            .record_copies(&self.ctx, encoder, storage, copies)
    }

    /// Uploads a decode step's metadata.
    pub fn prepare_decode(
        &self,
        storage: &KvStorage,
        batch: &mut AttentionBatch,
        seqs: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        self.decode.prepare(&self.ctx, storage, batch, seqs)
    }

    /// Records decode attention of `layer` into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_decode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        layer: u32,
        batch: &AttentionBatch,
        q: &wgpu::Buffer,
        out: &wgpu::Buffer,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let mut pass = compute_pass(encoder, "pagekv decode", timestamps);
        self.decode.record(
            &self.ctx,
            &mut pass,
            &self.combine,
            storage,
            layer,
            batch,
            q,
            out,
        );
    }

    /// Uploads a prefill step's metadata.
    pub fn prepare_prefill(
        &self,
        storage: &KvStorage,
        batch: &mut AttentionBatch,
        seqs: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        self.prefill.prepare(&self.ctx, storage, batch, seqs)
    }

    /// Records prefill attention of `layer` into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_prefill(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        storage: &KvStorage,
        layer: u32,
        batch: &AttentionBatch,
        q: &wgpu::Buffer,
        out: &wgpu::Buffer,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let mut pass = compute_pass(encoder, "pagekv prefill", timestamps);
        self.prefill.record(
            &self.ctx,
            &mut pass,
            &self.combine,
            storage,
            layer,
            batch,
            q,
            out,
        );
    }
}
