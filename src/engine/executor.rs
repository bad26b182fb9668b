//! The GPU side of the engine: executes each [`StepPlan`] the scheduler hands it, for every
//! layer run, in the order the plan requires. It owns the KV pool, the kernels and all step
//! buffers (reused step after step), and makes no policy decisions.
//!
//! Per step: swap-outs are copied to host memory (and read back before anything else can
//! overwrite their blocks), swap-ins are written back with queue writes, then one command
//! buffer holds copy-on-write copies and, per layer, Q/K/V generation, the K/V append of every
//! new token, prefill attention and decode attention. The step ends when the GPU finished it,
//! as a serving engine's step ends when its tokens are sampled.

use std::collections::HashMap;

use super::request::StepPlan;
use super::timing::{FamilyTimes, PassTimer, TimedFamily};
use crate::cache::CacheLayout;
use crate::gpu::{DeviceLimit, GpuContext, GpuError, KvStorage, LimitExceeded};
use crate::kernels::batch::GrowBuffer;
use crate::kernels::{
    AppendBatch, AppendInput, AttentionIo, AttentionOptions, DecodeBatch, PagedAttention,
    PrefillBatch, SeqView,
};
use crate::tool_kernels::generate::{GenerateBatch, GenerateKernel, TokenKey};

/// Which attention group of a step a captured output row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// A prefill chunk's token.
    Prefill,
    /// A decode token.
    Decode,
}

/// An attention output row to copy out of a step for a spot check: token `row` of `group`,
/// in the plan's order (prefill tokens chunk by chunk; decode items in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Prefill or decode.
    pub group: Group,
    /// Token index within the group.
    pub row: u32,
}

/// Step inputs and outputs of one attention group, reused across steps.
#[derive(Default)]
struct GroupIo {
    generate: GenerateBatch,
    append: AppendBatch,
    /// The group's attention metadata: the prefill group uses `prefill`, the decode group
    /// `decode` (an unused one stays empty and allocates nothing).
    prefill: PrefillBatch,
    decode: DecodeBatch,
    q: GrowBuffer,
    k: GrowBuffer,
    v: GrowBuffer,
    out: GrowBuffer,
    tokens: u32,
}

/// Executes step plans on one device. Build once per scenario: pipeline creation is slow and
/// is not part of a measured run.
pub struct StepExecutor {
    ctx: GpuContext,
    storage: KvStorage,
    kernels: PagedAttention,
    generate: GenerateKernel,
    prefill: GroupIo,
    decode: GroupIo,
    captures: GrowBuffer,
    swapped: HashMap<u64, Vec<u8>>,
    timer: Option<PassTimer>,
    /// GPU seconds per kernel family so far (empty without timestamp queries).
    pub gpu_times: FamilyTimes,
}

/// Storage usage shared by the step buffers.
const STEP_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;

impl StepExecutor {
    /// Allocates a pool of `num_blocks` blocks of `layout` (all its layers) and builds the
    /// kernels, with a sliding window of `sliding_window` keys if given (the scheduler must
    /// plan with the same one). Fails with an explained error when the device cannot hold or
    /// run it.
    pub fn new(
        ctx: &GpuContext,
        layout: &CacheLayout,
        num_blocks: u32,
        sliding_window: Option<u32>,
    ) -> Result<Self, GpuError> {
        let layers = layout.geometry.layers;
        let storage = KvStorage::new(ctx, layout, num_blocks, layers, None)?;
        let options = AttentionOptions {
            sliding_window,
            ..AttentionOptions::default()
        };
        let kernels = PagedAttention::with_options(ctx, &storage, options)?;
        let generate = GenerateKernel::new(ctx, layout.geometry.head_dim)?;
        // Per layer: generate, append, prefill, decode; plus one copy pass.
        let timer = PassTimer::new(ctx, 4 * layers + 1);
        Ok(Self {
            ctx: ctx.clone(),
            storage,
            kernels,
            generate,
            prefill: GroupIo::default(),
            decode: GroupIo::default(),
            captures: GrowBuffer::default(),
            swapped: HashMap::new(),
            timer,
            gpu_times: FamilyTimes::new(),
        })
    }

    /// Whether per-family GPU times come from timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.timer.is_some()
    }

    /// The device-side pool (for checks that read it back).
    pub fn storage(&self) -> &KvStorage {
        &self.storage
    }

    /// Requests currently held in host memory by swap-outs.
    pub fn swapped_requests(&self) -> usize {
        self.swapped.len()
    }

    /// Runs `plan` to completion on the GPU and returns the captured output rows, each
    /// `[layers][q_heads][head_dim]` f32, in the order of `captures`.
    pub fn execute(
        &mut self,
        plan: &StepPlan,
        captures: &[Capture],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let scope = self
            .ctx
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        self.swap_out(plan)?;
        self.swap_in(plan)?;
        self.prepare_groups(plan)?;
        let g = &self.storage.layout.geometry;
        let row_bytes = (g.q_heads * g.head_dim) as u64 * 4;
        let layers = self.storage.layers;
        let capture_bytes = captures.len() as u64 * layers as u64 * row_bytes;
        if !captures.is_empty() {
            self.captures.reserve(
                &self.ctx,
                "pagekv spot-check rows",
                STEP_USAGE,
                capture_bytes,
            );
        }
        if let Some(timer) = &mut self.timer {
            timer.begin_step();
        }
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        self.record_copies(&mut encoder, plan)?;
        for layer in 0..layers {
            self.record_layer(&mut encoder, layer)?;
            for (i, capture) in captures.iter().enumerate() {
                let io = match capture.group {
                    Group::Prefill => &self.prefill,
                    Group::Decode => &self.decode,
                };
                let dst = (i as u64 * layers as u64 + layer as u64) * row_bytes;
                encoder.copy_buffer_to_buffer(
                    io.out.get(),
                    capture.row as u64 * row_bytes,
                    self.captures.get(),
                    dst,
                    row_bytes,
                );
            }
        }
        if let Some(timer) = &self.timer {
            timer.resolve(&mut encoder);
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.ctx.wait_idle()?;
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(format!("a step failed validation: {err}")));
        }
        if let Some(timer) = &self.timer {
            timer.collect(&self.ctx, &mut self.gpu_times)?;
        }
        if captures.is_empty() {
            return Ok(Vec::new());
        }
        let values = crate::gpu::read_buffer_f32(
            &self.ctx,
            self.captures.get(),
            (capture_bytes / 4) as usize,
        )?;
        let per_capture = (layers as u64 * row_bytes / 4) as usize;
        Ok(values.chunks(per_capture).map(<[f32]>::to_vec).collect())
    }

    /// Copies every swapped-out block (all layers, K then V) to host memory, keyed by request.
    fn swap_out(&mut self, plan: &StepPlan) -> Result<(), GpuError> {
        if plan.swap_out.is_empty() {
            return Ok(());
        }
        let block_bytes = self.storage.plan.block_bytes_per_layer;
        let per_block = block_bytes * 2 * self.storage.layers as u64;
        let total: u64 = plan
            .swap_out
            .iter()
            .map(|s| s.blocks.len() as u64 * per_block)
            .sum();
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pagekv swap-out staging"),
            size: total.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        let mut offset = 0;
        for swap in &plan.swap_out {
            for &block in &swap.blocks {
                offset = self
                    .storage
                    .record_block_save(&mut encoder, block, &staging, offset)?;
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx.wait_idle()?;
        rx.recv()
            .map_err(|e| GpuError::Device(format!("swap-out channel closed: {e}")))?
            .map_err(|e| GpuError::Device(format!("swap-out map failed: {e}")))?;
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Device(format!("swap-out range unavailable: {e}")))?;
            let mut start = 0usize;
            for swap in &plan.swap_out {
                let len = (swap.blocks.len() as u64 * per_block) as usize;
                self.swapped
                    .insert(swap.request, view[start..start + len].to_vec());
                start += len;
            }
        }
        staging.unmap();
        Ok(())
    }

    /// Writes each swapped-in request's saved blocks into its new blocks.
    fn swap_in(&mut self, plan: &StepPlan) -> Result<(), GpuError> {
        let block_bytes = self.storage.plan.block_bytes_per_layer as usize;
        for swap in &plan.swap_in {
            let saved = self.swapped.remove(&swap.request).ok_or_else(|| {
                GpuError::Device(format!(
                    "request {} is swapped in but was never swapped out",
                    swap.request
                ))
            })?;
            let per_block = block_bytes * 2 * self.storage.layers as usize;
            if saved.len() != swap.blocks.len() * per_block {
                return Err(GpuError::Device(format!(
                    "request {} swapped out {} bytes but swaps in {} blocks",
                    swap.request,
                    saved.len(),
                    swap.blocks.len()
                )));
            }
            for (&block, bytes) in swap.blocks.iter().zip(saved.chunks(per_block)) {
                self.storage.write_block(&self.ctx.queue, block, bytes)?;
            }
        }
        Ok(())
    }

    /// Uploads the generator keys, slots and attention metadata of both groups.
    fn prepare_groups(&mut self, plan: &StepPlan) -> Result<(), GpuError> {
        let g = self.storage.layout.geometry.clone();
        let layers = self.storage.layers;
        let mut keys = Vec::new();
        let mut slots = Vec::new();
        for chunk in &plan.prefill {
            for (i, (&token, &slot)) in chunk.tokens.iter().zip(&chunk.slots).enumerate() {
                keys.push(TokenKey {
                    token,
                    position: chunk.first_position + i as u32,
                    seed: chunk.seed,
                });
                slots.push(slot);
            }
        }
        let views: Vec<SeqView<'_>> = plan
            .prefill
            .iter()
            .map(|c| SeqView {
                block_table: &c.block_table,
                context_len: c.context_len,
                query_len: c.tokens.len() as u32,
            })
            .collect();
        self.prepare_group(Group::Prefill, &g, layers, &keys, &slots, &views)?;
        let keys: Vec<TokenKey> = plan
            .decode
            .iter()
            .map(|d| TokenKey {
                token: d.token,
                position: d.position,
                seed: d.seed,
            })
            .collect();
        let slots: Vec<u32> = plan.decode.iter().map(|d| d.slot).collect();
        let views: Vec<SeqView<'_>> = plan
            .decode
            .iter()
            .map(|d| SeqView {
                block_table: &d.block_table,
                context_len: d.context_len,
                query_len: 1,
            })
            .collect();
        self.prepare_group(Group::Decode, &g, layers, &keys, &slots, &views)
    }

    fn prepare_group(
        &mut self,
        group: Group,
        g: &crate::cache::ModelGeometry,
        layers: u32,
        keys: &[TokenKey],
        slots: &[u32],
        views: &[SeqView<'_>],
    ) -> Result<(), GpuError> {
        let (ctx, storage) = (&self.ctx, &self.storage);
        let io = match group {
            Group::Prefill => &mut self.prefill,
            Group::Decode => &mut self.decode,
        };
        io.tokens = keys.len() as u32;
        if keys.is_empty() {
            return Ok(());
        }
        self.generate
            .prepare(ctx, g, layers, &mut io.generate, keys)?;
        self.kernels
            .prepare_append(storage, &mut io.append, slots)?;
        match group {
            Group::Prefill => self
                .kernels
                .prepare_prefill(storage, &mut io.prefill, views)?,
            Group::Decode => self
                .kernels
                .prepare_decode(storage, &mut io.decode, views)?,
        }
        let n = keys.len() as u64;
        let (q_row, kv_row) = (
            (g.q_heads * g.head_dim) as u64 * 4,
            (g.kv_heads * g.head_dim) as u64 * 4,
        );
        let max_binding = ctx.capabilities.max_storage_binding;
        if n * q_row > max_binding {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("{n} tokens of queries"),
                limit: DeviceLimit::StorageBindingSize,
                needed: n * q_row,
                allowed: max_binding,
                remedy: "lower the step token budget",
            }));
        }
        io.q.reserve(ctx, "pagekv step q", STEP_USAGE, n * q_row);
        io.out
            .reserve(ctx, "pagekv step out", STEP_USAGE, n * q_row);
        io.k.reserve(ctx, "pagekv step k", STEP_USAGE, n * kv_row);
        io.v.reserve(ctx, "pagekv step v", STEP_USAGE, n * kv_row);
        Ok(())
    }

    fn record_copies(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        plan: &StepPlan,
    ) -> Result<(), GpuError> {
        if plan.copies.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(u32, u32)> = plan.copies.iter().map(|c| (c.src, c.dst)).collect();
        // Copies record their own passes; time them as one span of marker passes.
        let pass = self
            .timer
            .as_mut()
            .and_then(|t| t.reserve(TimedFamily::Copy));
        if let (Some(timer), Some(pass)) = (&self.timer, pass) {
            let writes = timer.writes(pass);
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("pagekv copy start"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    end_of_pass_write_index: None,
                    ..writes
                }),
            });
            self.kernels
                .record_block_copies(encoder, &self.storage, &pairs)?;
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("pagekv copy end"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    beginning_of_pass_write_index: None,
                    ..timer.writes(pass)
                }),
            });
            Ok(())
        } else {
            self.kernels
                .record_block_copies(encoder, &self.storage, &pairs)
        }
    }

    /// Records one layer: generate, append, prefill attention, decode attention.
    fn record_layer(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        layer: u32,
    ) -> Result<(), GpuError> {
        let groups = [&self.prefill, &self.decode];
        if groups.iter().all(|io| io.tokens == 0) {
            return Ok(());
        }
        let slot =
            |timer: &mut Option<PassTimer>, family| timer.as_mut().and_then(|t| t.reserve(family));
        let generate_slot = slot(&mut self.timer, TimedFamily::Generate);
        let append_slot = slot(&mut self.timer, TimedFamily::Append);
        let prefill_slot = if self.prefill.tokens > 0 {
            slot(&mut self.timer, TimedFamily::Prefill)
        } else {
            None
        };
        let decode_slot = if self.decode.tokens > 0 {
            slot(&mut self.timer, TimedFamily::Decode)
        } else {
            None
        };
        let timer = self.timer.as_ref();
        let writes = |pass: Option<u32>| timer.zip(pass).map(|(t, p)| t.writes(p));
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("pagekv generate"),
                timestamp_writes: writes(generate_slot),
            });
            for io in groups.iter().filter(|io| io.tokens > 0) {
                self.generate.record(
                    &self.ctx,
                    &mut pass,
                    layer,
                    &io.generate,
                    io.q.get(),
                    io.k.get(),
                    io.v.get(),
                );
            }
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("pagekv append"),
                timestamp_writes: writes(append_slot),
            });
            for io in groups.iter().filter(|io| io.tokens > 0) {
                self.kernels.record_append_in(
                    &mut pass,
                    &self.storage,
                    layer,
                    &io.append,
                    AppendInput::whole(io.k.get(), io.v.get()),
                )?;
            }
        }
        if self.prefill.tokens > 0 {
            let io = &self.prefill;
            self.kernels.record_prefill(
                encoder,
                &self.storage,
                layer,
                &io.prefill,
                AttentionIo::whole(io.q.get(), io.out.get()),
                writes(prefill_slot),
            )?;
        }
        if self.decode.tokens > 0 {
            let io = &self.decode;
            self.kernels.record_decode(
                encoder,
                &self.storage,
                layer,
                &io.decode,
                AttentionIo::whole(io.q.get(), io.out.get()),
                writes(decode_slot),
            )?;
        }
        Ok(())
    }
}
