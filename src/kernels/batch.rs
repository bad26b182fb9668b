//! Per-step metadata for attention dispatches: block tables, per-sequence info, per-shard
//! uniforms and the partial-softmax scratch. A batch is reused step after step; buffers grow
//! when a step needs more and are otherwise only rewritten, so the steady state creates no
//! buffers.

use crate::gpu::GpuContext;
use crate::kernels::pipeline::ComputeKernel;

/// A buffer slot that grows to fit and is rewritten in place otherwise.
#[derive(Default, Debug)]
pub(crate) struct GrowBuffer {
    buffer: Option<wgpu::Buffer>,
    /// Bumped whenever the buffer is replaced, so bind groups naming the old one are dropped.
    generation: u64,
}

impl GrowBuffer {
    /// Writes `data`, replacing the buffer only when it is too small.
    pub(crate) fn write(
        &mut self,
        ctx: &GpuContext,
        label: &str,
        usage: wgpu::BufferUsages,
        data: &[u8],
    ) -> &wgpu::Buffer {
        self.reserve(ctx, label, usage, data.len() as u64);
        let buffer = self.buffer.as_ref().expect("reserved above");
        if !data.is_empty() {
            ctx.queue.write_buffer(buffer, 0, data);
        }
        buffer
    }

    /// Ensures at least `bytes` of capacity (contents undefined).
    pub(crate) fn reserve(
        &mut self,
        ctx: &GpuContext,
        label: &str,
        usage: wgpu::BufferUsages,
        bytes: u64,
    ) -> &wgpu::Buffer {
        let needed = bytes.max(16).next_multiple_of(16);
        if self.buffer.as_ref().is_none_or(|b| b.size() < needed) {
            ctx.count_created();
            self.generation += 1;
            self.buffer = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: needed.next_power_of_two(),
                usage: usage | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }));
        }
        self.buffer.as_ref().expect("created above")
    }

    /// How many times the buffer has been (re)created.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The current buffer; callers only use it after a write or reserve.
    pub(crate) fn get(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("GrowBuffer used before it was written")
    }
}

pub(crate) use super::bind_cache::{BindCache, BindKey, range_key};

/// Packs `items` at the device's uniform offset alignment, one per shard.
pub(crate) fn pack_uniforms<T: bytemuck::Pod>(ctx: &GpuContext, items: &[T]) -> (Vec<u8>, u64) {
    let align = ctx.device.limits().min_uniform_buffer_offset_alignment as u64;
    let stride = (std::mem::size_of::<T>() as u64).next_multiple_of(align);
    let mut bytes = vec![0u8; (stride * items.len() as u64) as usize];
    for (i, item) in items.iter().enumerate() {
        let start = i * stride as usize;
        bytes[start..start + std::mem::size_of::<T>()].copy_from_slice(bytemuck::bytes_of(item));
    }
    (bytes, stride)
}

/// Binding for the `index`-th packed uniform.
pub(crate) fn uniform_at<T>(
    buffer: &wgpu::Buffer,
    stride: u64,
    index: u32,
) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: stride * index as u64,
        size: std::num::NonZeroU64::new(std::mem::size_of::<T>() as u64),
    })
}

/// One sequence of an attention step as the bookkeeping describes it.
#[derive(Clone, Copy, Debug)]
pub struct SeqView<'a> {
    /// Physical block ids in logical order; must cover `context_len` tokens.
    pub block_table: &'a [u32],
    /// Tokens in the cache for this sequence, including this step's new ones.
    pub context_len: u32,
    /// Query tokens this step (1 for decode; the chunk length for prefill).
    pub query_len: u32,
}

/// Where an attention dispatch reads its queries and writes its output: ranges of the
/// caller's buffers, so Q and the output can live inside an app's activation arena.
/// Both are `[rows][head_dim]` f32, rows = query tokens x q_heads in step order.
#[derive(Clone, Debug)]
pub struct AttentionIo<'a> {
    /// The queries.
    pub q: wgpu::BufferBinding<'a>,
    /// The attention output.
    pub out: wgpu::BufferBinding<'a>,
}

impl<'a> AttentionIo<'a> {
    /// Whole buffers for Q and the output.
    pub fn whole(q: &'a wgpu::Buffer, out: &'a wgpu::Buffer) -> Self {
        Self {
            q: q.as_entire_buffer_binding(),
            out: out.as_entire_buffer_binding(),
        }
    }
}

/// Reusable device-side metadata for decode or prefill steps.
#[derive(Default, Debug)]
pub struct AttentionBatch {
    pub(crate) tables: GrowBuffer,
    pub(crate) seq_info: GrowBuffer,
    pub(crate) uniforms: GrowBuffer,
    pub(crate) combine_uniform: GrowBuffer,
    pub(crate) partial_acc: GrowBuffer,
    pub(crate) partial_ml: GrowBuffer,
    /// Each row's merged max and sum after a shard group's combine, in two halves: a group
    /// reads the previous group's half and writes the other.
    pub(crate) carry_ml: GrowBuffer,
    pub(crate) uniform_stride: u64,
    /// Stride of the per-group combine params in `combine_uniform`.
    pub(crate) combine_stride: u64,
    /// How the step's partitions share the scratch.
    pub(crate) partials: super::partials::PartialLayout,
    /// Sequences in the current step.
    pub num_seqs: u32,
    /// Output rows (query tokens x q_heads) of the current step.
    pub rows: u32,
    /// Partitions per row (splits x shards), across all shard groups.
    pub num_partitions: u32,
    /// Workgroup grid of the attention dispatch.
    pub(crate) grid: [u32; 3],
    /// Grid of the combine dispatch in rows: (rows per grid row, grid rows).
    pub(crate) combine_grid: [u32; 2],
    /// Context split length in keys (decode), for reporting.
    pub partition_tokens: u32,
    /// Bind groups of the attention and combine dispatches.
    pub(crate) groups: BindCache,
}

/// Flattens block tables to `[num_seqs][stride]` and builds `(context, first row, queries, 0)`.
pub(crate) fn flatten(seqs: &[SeqView<'_>]) -> (Vec<u32>, u32, Vec<[u32; 4]>) {
    let stride = seqs
        .iter()
        .map(|s| s.block_table.len())
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let mut tables = vec![0u32; seqs.len().max(1) * stride as usize];
    let mut info = Vec::with_capacity(seqs.len());
    let mut first_row = 0u32;
    for (i, s) in seqs.iter().enumerate() {
        tables[i * stride as usize..i * stride as usize + s.block_table.len()]
            .copy_from_slice(s.block_table);
        info.push([s.context_len, first_row, s.query_len, 0]);
        first_row += s.query_len;
    }
    (tables, stride, info)
}

/// The size of an attention step's dispatch: output rows, head dim and workgroup grid.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepShape {
    /// Query tokens x q_heads.
    pub(crate) rows: u32,
    /// Values per row.
    pub(crate) head_dim: u32,
    /// Workgroups of the attention dispatch.
    pub(crate) grid: [u32; 3],
}

impl AttentionBatch {
    /// Uploads one step's metadata. `params` holds one entry per pool shard; `extra_tables`
    /// goes into the block-table buffer after the flattened tables (the flat kernel's
    /// per-shard block lists).
    pub(crate) fn upload(
        &mut self,
        ctx: &GpuContext,
        seqs: &[SeqView<'_>],
        params: &[crate::kernels::params::AttnParams],
        extra_tables: &[u32],
        shape: StepShape,
        partials: super::partials::PartialLayout,
    ) -> Result<(), crate::gpu::GpuError> {
        let StepShape {
            rows,
            head_dim,
            grid,
        } = shape;
        use crate::gpu::{DeviceLimit, GpuError, LimitExceeded};
        let caps = &ctx.capabilities;
        let widest = grid.iter().copied().max().unwrap_or(0);
        if widest > caps.max_workgroups_per_dimension {
            return Err(GpuError::Limit(LimitExceeded {
                what: format!("the attention grid {grid:?}"),
                limit: DeviceLimit::WorkgroupsPerDimension,
                needed: widest as u64,
                allowed: caps.max_workgroups_per_dimension as u64,
                remedy: "use smaller batches",
            }));
        }
        // The scratch holds one shard group's partitions at a time; `partials` was fitted to
        // the device's largest binding (`partials::fit`), so it binds whole.
        let scratch_partitions = partials.group_partitions(0);
        let acc_bytes = rows as u64 * scratch_partitions as u64 * head_dim as u64 * 4;
        let storage = wgpu::BufferUsages::STORAGE;
        let (mut tables, _, info) = flatten(seqs);
        tables.extend_from_slice(extra_tables);
        self.tables.write(
            ctx,
            "pagekv block tables",
            storage,
            bytemuck::cast_slice(&tables),
        );
        self.seq_info
            .write(ctx, "pagekv seq info", storage, bytemuck::cast_slice(&info));
        let (bytes, stride) = pack_uniforms(ctx, params);
        self.uniforms.write(
            ctx,
            "pagekv attention params",
            wgpu::BufferUsages::UNIFORM,
            &bytes,
        );
        self.uniform_stride = stride;
        self.partial_acc
            .reserve(ctx, "pagekv partial acc", storage, acc_bytes);
        self.partial_ml.reserve(
            ctx,
            "pagekv partial ml",
            storage,
            rows as u64 * scratch_partitions as u64 * 8,
        );
        let carried_rows = if partials.groups > 1 { 2 * rows } else { 0 };
        self.carry_ml
            .reserve(ctx, "pagekv carried ml", storage, carried_rows as u64 * 8);
        let (combine, combine_grid) =
            crate::kernels::combine::CombineKernel::params(ctx, rows, &partials);
        let (bytes, stride) = pack_uniforms(ctx, &combine);
        self.combine_uniform.write(
            ctx,
            "pagekv combine params",
            wgpu::BufferUsages::UNIFORM,
            &bytes,
        );
        self.combine_stride = stride;
        self.groups.sync(
            [
                &self.tables,
                &self.seq_info,
                &self.uniforms,
                &self.combine_uniform,
                &self.partial_acc,
                &self.partial_ml,
                &self.carry_ml,
            ]
            .iter()
            .map(|b| b.generation())
            .sum(),
        );
        self.num_seqs = seqs.len() as u32;
        self.rows = rows;
        self.num_partitions = partials.total_partitions();
        self.partials = partials;
        self.grid = grid;
        self.combine_grid = combine_grid;
        Ok(())
    }

    /// Whether the attention dispatch writes the caller's output itself (see `record`).
    fn writes_output(&self, io: &AttentionIo<'_>) -> bool {
        self.num_partitions == 1 && io.q.buffer != io.out.buffer
    }

    /// Records the attention dispatch for every shard of `layer`, then the combine into `out`.
    pub(crate) fn record(
        &self,
        kernels: (&ComputeKernel, &crate::kernels::combine::CombineKernel),
        pass: &mut wgpu::ComputePass<'_>,
        storage: &crate::gpu::KvStorage,
        layer: u32,
        io: AttentionIo<'_>,
    ) {
        if self.num_seqs == 0 || self.rows == 0 {
            return;
        }
        let (pipeline, combine) = kernels;
        let ctx = storage.context();
        // With one partition per row the kernel normalises its rows itself, and they go
        // straight into the caller's output, whose layout ([rows][head_dim]) is the partial
        // results' layout at one partition: no combine pass (on lavapipe a dispatch costs
        // about 0.08 ms, a fifth of a batch-1 decode step at 4K). Not when the output shares
        // a buffer with the queries: one dispatch may not bind a buffer both read-only and
        // writable, so the rows go through the partials and a combine pass that copies them.
        let direct = self.writes_output(&io);
        for group in 0..self.partials.groups {
            pipeline.set(pass);
            for shard in self.partials.group_shards(group) {
                self.record_shard(pipeline, pass, storage, layer, shard, &io);
            }
            // The next group's shards overwrite the scratch this combine reads; wgpu orders
            // the two, as it orders every storage write after a read in one pass.
            if !direct {
                combine.record(ctx, pass, self, group, io.out.clone());
            }
        }
    }

    /// Records one shard's attention dispatch for `layer`.
    fn record_shard(
        &self,
        pipeline: &ComputeKernel,
        pass: &mut wgpu::ComputePass<'_>,
        storage: &crate::gpu::KvStorage,
        layer: u32,
        shard: u32,
        io: &AttentionIo<'_>,
    ) {
        let ctx = storage.context();
        let direct = self.writes_output(io);
        let key = BindKey {
            slot: 0,
            layer,
            shard,
            ranges: [Some(range_key(&io.q)), direct.then(|| range_key(&io.out))],
        };
        let group = self.groups.get(key, || {
            let (k, v) = (storage.k(layer, shard), storage.v(layer, shard));
            let mut entries = vec![
                (
                    0,
                    uniform_at::<crate::kernels::params::AttnParams>(
                        self.uniforms.get(),
                        self.uniform_stride,
                        shard,
                    ),
                ),
                (1, wgpu::BindingResource::Buffer(io.q.clone())),
                (2, k.binding()),
                (3, v.binding()),
                (4, self.tables.get().as_entire_binding()),
                (5, self.seq_info.get().as_entire_binding()),
                (
                    6,
                    if direct {
                        wgpu::BindingResource::Buffer(io.out.clone())
                    } else {
                        self.partial_acc.get().as_entire_binding()
                    },
                ),
                (7, self.partial_ml.get().as_entire_binding()),
            ];
            // A texture-backed pool of a scaled format keeps its scales in textures too.
            entries.extend(k.scale_binding().map(|r| (8, r)));
            entries.extend(v.scale_binding().map(|r| (9, r)));
            crate::kernels::pipeline::bind(ctx, pipeline, "pagekv attention", &entries)
        });
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
    }
}
