//! GPU bench cases: the copy and matmul rooflines, decode attention bandwidth, prefill
//! FLOP/s and append bandwidth, each built from the library's own kernels on a paged pool
//! whose blocks are shuffled as a serving engine's would be.

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};

use super::stopwatch::{Record, Stopwatch, Timing};
use super::{MatmulTry, WorkingSetRates};
use crate::cache::{CacheLayout, KvFormat, ModelGeometry};
use crate::gpu::{GpuContext, GpuError, KvStorage, KvStorageMode, human_bytes};
use crate::kernels::batch::GrowBuffer;
use crate::kernels::{
    AppendBatch, AppendInput, AttentionAlgorithm, AttentionIo, AttentionOptions, DecodeBatch,
    PagedAttention, PrefillBatch, SeqView,
};
use crate::tool_kernels::copy::CopyKernel;
use crate::tool_kernels::matmul::{MatmulKernel, MatmulShape};
use crate::tool_kernels::read::{ReadKernel, ReadSource};
use crate::tool_kernels::write::{WriteKernel, WriteTarget};
use crate::tool_kernels::{AccessOrder, MemoryPath};

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;

/// Tokens per block in every attention case (vLLM's default).
pub const BENCH_BLOCK_SIZE: u32 = 16;

/// A scratch buffer of `bytes` (contents zero, as wgpu initialises them).
fn scratch(ctx: &GpuContext, label: &str, bytes: u64) -> wgpu::Buffer {
    let mut buffer = GrowBuffer::default();
    buffer.reserve(ctx, label, STORAGE, bytes);
    buffer.get().clone()
}

/// Copy roofline: (bytes read + written per second, buffer bytes).
pub fn copy_roofline(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    cap_bytes: u64,
) -> Result<(f64, u64), GpuError> {
    let caps = &ctx.capabilities;
    let bytes = caps.max_storage_binding.min(caps.max_buffer).min(cap_bytes) / 16 * 16;
    let kernel = CopyKernel::new(ctx)?;
    let (src, dst) = (
        scratch(ctx, "bench copy src", bytes),
        scratch(ctx, "bench copy dst", bytes),
    );
    let seconds = watch
        .time(ctx, repeats, |encoder, ts| {
            kernel.record(ctx, encoder, &src, &dst, ts);
            Ok(())
        })?
        .seconds;
    Ok((2.0 * bytes as f64 / seconds, bytes))
}

/// The streaming rooflines of one run, reads or writes: per path, the faster order's bytes
/// per second.
#[derive(Clone, Copy, Debug)]
pub struct StreamRooflines {
    /// Through a storage buffer: bytes per second and the order that reached it.
    pub buffer: (f64, AccessOrder),
    /// Through an `rgba32uint` storage texture.
    pub texture: (f64, AccessOrder),
    /// Bytes one pass moves.
    pub bytes: u64,
}

/// The fewest bytes one sample of a read or write roofline moves: a working set smaller than
/// this is passed over several times in one sample, so that even a 1 MiB one is timed over
/// milliseconds on a CPU adapter rather than over the dispatch's fixed cost.
const SAMPLE_BYTES: u64 = 8 << 20;

/// Times `record` through each path in each of its `orders` (buffer, texture) and keeps each
/// path's faster order, so the bound holds whichever order an adapter's kernels move their
/// bytes in.
fn fastest_orders(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    bytes: u64,
    orders: [&[AccessOrder]; 2],
    record: impl Fn(
        &mut wgpu::CommandEncoder,
        (MemoryPath, AccessOrder),
        u32,
        Option<wgpu::ComputePassTimestampWrites<'_>>,
    ),
) -> Result<StreamRooflines, GpuError> {
    // Every sample moves at least SAMPLE_BYTES, however small the working set.
    let passes = SAMPLE_BYTES.div_ceil(bytes.max(1)).max(1) as u32;
    let best = |path, orders: &[AccessOrder]| -> Result<(f64, AccessOrder), GpuError> {
        let mut best = (0.0, AccessOrder::Runs);
        for &order in orders {
            let seconds = watch
                .time(ctx, repeats, |encoder, ts| {
                    record(encoder, (path, order), passes, ts);
                    Ok(())
                })?
                .seconds;
            let rate = (bytes * u64::from(passes)) as f64 / seconds;
            if rate > best.0 {
                best = (rate, order);
            }
        }
        Ok(best)
    };
    Ok(StreamRooflines {
        buffer: best(MemoryPath::Buffer, orders[0])?,
        texture: best(MemoryPath::Texture, orders[1])?,
        bytes,
    })
}

/// Read rooflines: bytes read per second through a storage buffer and through a texture
/// (the same bytes).
pub fn read_rooflines(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    cap_bytes: u64,
) -> Result<StreamRooflines, GpuError> {
    let kernel = ReadKernel::new(ctx)?;
    reads_in(
        ctx,
        watch,
        repeats,
        &kernel,
        cap_bytes,
        [&AccessOrder::ALL; 2],
    )
}

/// The read rooflines over a source of up to `cap_bytes`, each path in its `orders`.
fn reads_in(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    kernel: &ReadKernel,
    cap_bytes: u64,
    orders: [&[AccessOrder]; 2],
) -> Result<StreamRooflines, GpuError> {
    let source = ReadSource::new(ctx, cap_bytes)?;
    fastest_orders(
        ctx,
        watch,
        repeats,
        source.bytes(),
        orders,
        |encoder, key, passes, ts| kernel.record(ctx, encoder, &source, key, passes, ts),
    )
}

/// Write rooflines: bytes written per second into a storage buffer and into a texture.
pub fn write_rooflines(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    cap_bytes: u64,
) -> Result<StreamRooflines, GpuError> {
    let kernel = WriteKernel::new(ctx)?;
    writes_in(
        ctx,
        watch,
        repeats,
        &kernel,
        cap_bytes,
        [&AccessOrder::ALL; 2],
    )
}

/// The write rooflines into a target of up to `cap_bytes`, each path in its `orders`.
fn writes_in(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    kernel: &WriteKernel,
    cap_bytes: u64,
    orders: [&[AccessOrder]; 2],
) -> Result<StreamRooflines, GpuError> {
    let target = WriteTarget::new(ctx, cap_bytes)?;
    fastest_orders(
        ctx,
        watch,
        repeats,
        target.bytes(),
        orders,
        |encoder, key, passes, ts| kernel.record(ctx, encoder, &target, key, passes, ts),
    )
}

/// The four rooflines on each working set of `sizes` (multiples of 16, smaller than the
/// streaming source), each path timed only in the order that won on the streaming source
/// (`reads`, `writes`): the rungs cases are bounded at, smallest first as `sizes` is.
pub fn working_set_rooflines(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    sizes: &[u64],
    (reads, writes): (&StreamRooflines, &StreamRooflines),
) -> Result<Vec<WorkingSetRates>, GpuError> {
    let (read_kernel, write_kernel) = (ReadKernel::new(ctx)?, WriteKernel::new(ctx)?);
    let read_orders: [&[AccessOrder]; 2] = [&[reads.buffer.1], &[reads.texture.1]];
    let write_orders: [&[AccessOrder]; 2] = [&[writes.buffer.1], &[writes.texture.1]];
    sizes
        .iter()
        .map(|&bytes| {
            let read = reads_in(ctx, watch, repeats, &read_kernel, bytes, read_orders)?;
            let written = writes_in(ctx, watch, repeats, &write_kernel, bytes, write_orders)?;
            Ok(WorkingSetRates {
                bytes: read.bytes,
                buffer_read: read.buffer.0,
                texture_read: read.texture.0,
                buffer_write: written.buffer.0,
                texture_write: written.texture.0,
            })
        })
        .collect()
}

/// The matmul yardstick at `size`^3: each of `shapes` (the adapter's
/// [`MatmulShape::candidates`] at the start of a run, the chosen one again at its end) timed
/// in turn, each with its FLOP/s or why it has none. Fails only when no shape ran.
pub fn matmul_yardstick(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    size: u32,
    shapes: &[MatmulShape],
) -> Result<Vec<MatmulTry>, GpuError> {
    let bytes = size as u64 * size as u64 * 4;
    // A and B are also copy sources: the texel-fed shapes read texture copies of them.
    let input = |label| {
        let mut buffer = GrowBuffer::default();
        buffer.reserve(ctx, label, STORAGE | wgpu::BufferUsages::COPY_SRC, bytes);
        buffer.get().clone()
    };
    let (a, b, c) = (
        input("bench a"),
        input("bench b"),
        scratch(ctx, "bench c", bytes),
    );
    let mut tries = Vec::new();
    let mut last_error = None;
    for &shape in shapes {
        let timed = MatmulKernel::with_shape(ctx, shape).and_then(|kernel| {
            watch.time(ctx, repeats, |encoder, ts| {
                kernel.record(ctx, encoder, (size, size, size), &a, &b, &c, ts)
            })
        });
        tries.push(match timed {
            Ok(timing) => MatmulTry {
                kernel: shape.name(),
                flops: Some(2.0 * (size as f64).powi(3) / timing.seconds),
                error: None,
            },
            Err(e) => {
                let message = e.to_string();
                last_error = Some(e);
                MatmulTry {
                    kernel: shape.name(),
                    flops: None,
                    error: Some(message),
                }
            }
        });
    }
    match last_error {
        Some(e) if tries.iter().all(|t| t.flops.is_none()) => Err(e),
        _ => Ok(tries),
    }
}

/// One attention shape to bench: geometry (one layer), dtype, batch, context.
#[derive(Clone, Debug)]
pub struct AttentionCase {
    /// Geometry; only one layer is allocated.
    pub geometry: ModelGeometry,
    /// KV dtype.
    pub dtype: KvFormat,
    /// Sequences.
    pub batch: u32,
    /// Tokens per sequence.
    pub context: u32,
    /// The kernel choices the run forces (algorithm, reductions, half-float conversion);
    /// the defaults let the adapter choose.
    pub kernels: AttentionOptions,
}

impl AttentionCase {
    /// The one-layer layout its pool is built with (the pool's backing follows from it).
    pub fn layout(&self) -> CacheLayout {
        CacheLayout {
            geometry: ModelGeometry::new(
                &self.geometry.name,
                1,
                self.geometry.q_heads,
                self.geometry.kv_heads,
                self.geometry.head_dim,
            ),
            block_size: BENCH_BLOCK_SIZE,
            dtype: self.dtype,
        }
    }

    /// K plus V bytes the case holds (and decode reads once).
    pub fn kv_bytes(&self) -> u64 {
        let g = &self.geometry;
        self.batch as u64
            * self.context as u64
            * g.kv_heads as u64
            * self.dtype.row_bytes(g.head_dim)
            * 2
    }

    /// f32 query and output bytes of a step with `query_len` queries per sequence (read from
    /// and written to storage buffers).
    pub fn io_bytes(&self, query_len: u32) -> u64 {
        let g = &self.geometry;
        2 * self.batch as u64 * query_len as u64 * (g.q_heads * g.head_dim) as u64 * 4
    }

    /// A pool holding the case, each sequence's blocks shuffled over the pool, and the kernels.
    fn setup(
        &self,
        ctx: &GpuContext,
        max_pool_bytes: u64,
    ) -> Result<(KvStorage, PagedAttention, Vec<Vec<u32>>), BenchSkip> {
        if self.kv_bytes() > max_pool_bytes {
            return Err(BenchSkip::Skipped(format!(
                "its {} pool exceeds the bench cap of {} (--max-pool-gib)",
                human_bytes(self.kv_bytes()),
                human_bytes(max_pool_bytes)
            )));
        }
        let layout = self.layout();
        let per_seq = self.context.div_ceil(layout.block_size);
        let blocks = per_seq * self.batch;
        let mode = KvStorageMode::choose(layout.dtype, ctx.capabilities.shader_f16);
        let backing = AttentionAlgorithm::pool_backing(self.kernels.algorithm, ctx, &layout);
        let storage = KvStorage::with_backing(ctx, &layout, blocks, 1, None, mode, backing)
            .map_err(BenchSkip::from)?;
        let kernels = PagedAttention::with_options(ctx, &storage, self.kernels)?;
        let mut ids: Vec<u32> = (0..blocks).collect();
        ids.shuffle(&mut StdRng::seed_from_u64(11));
        let tables = ids.chunks(per_seq as usize).map(<[u32]>::to_vec).collect();
        Ok((storage, kernels, tables))
    }
}

/// Why a case produced no figure.
#[derive(Debug)]
pub enum BenchSkip {
    /// The case is too big for this device or the cap; the reason is printed.
    Skipped(String),
    /// The device failed.
    Failed(GpuError),
}

impl From<GpuError> for BenchSkip {
    fn from(e: GpuError) -> Self {
        match e {
            refused if refused.is_refusal() => BenchSkip::Skipped(refused.to_string()),
            other => BenchSkip::Failed(other),
        }
    }
}

/// Which attention kernel a case times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attention {
    Decode,
    Prefill,
}

/// A prepared decode or prefill step.
enum StepBatch {
    Decode(DecodeBatch),
    Prefill(PrefillBatch),
}

/// A case's pool, kernels, step and scratch buffers, ready to record `kind` again and again.
struct PreparedAttention {
    storage: KvStorage,
    kernels: PagedAttention,
    batch: StepBatch,
    q: wgpu::Buffer,
    out: wgpu::Buffer,
}

impl PreparedAttention {
    /// One query per sequence for decode, the whole context as one chunk for prefill.
    fn new(
        ctx: &GpuContext,
        case: &AttentionCase,
        max_pool_bytes: u64,
        kind: Attention,
    ) -> Result<Self, BenchSkip> {
        let (storage, kernels, tables) = case.setup(ctx, max_pool_bytes)?;
        let query_len = match kind {
            Attention::Decode => 1,
            Attention::Prefill => case.context,
        };
        let views: Vec<SeqView<'_>> = tables
            .iter()
            .map(|t| SeqView {
                block_table: t,
                context_len: case.context,
                query_len,
            })
            .collect();
        let batch = match kind {
            Attention::Decode => {
                let mut batch = DecodeBatch::default();
                kernels.prepare_decode(&storage, &mut batch, &views)?;
                StepBatch::Decode(batch)
            }
            Attention::Prefill => {
                let mut batch = PrefillBatch::default();
                kernels.prepare_prefill(&storage, &mut batch, &views)?;
                StepBatch::Prefill(batch)
            }
        };
        let g = &case.geometry;
        let bytes = case.batch as u64 * query_len as u64 * (g.q_heads * g.head_dim) as u64 * 4;
        Ok(Self {
            q: scratch(ctx, "bench q", bytes),
            out: scratch(ctx, "bench out", bytes),
            storage,
            kernels,
            batch,
        })
    }

    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ts: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> Result<(), GpuError> {
        let (storage, io) = (&self.storage, AttentionIo::whole(&self.q, &self.out));
        match &self.batch {
            StepBatch::Decode(batch) => self
                .kernels
                .record_decode(encoder, storage, 0, batch, io, ts),
            StepBatch::Prefill(batch) => self
                .kernels
                .record_prefill(encoder, storage, 0, batch, io, ts),
        }
    }
}

/// Times `kind` on the case's pool, per dispatch.
fn attention(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    case: &AttentionCase,
    max_pool_bytes: u64,
    kind: Attention,
) -> Result<Timing, BenchSkip> {
    let prepared = PreparedAttention::new(ctx, case, max_pool_bytes, kind)?;
    Ok(watch.time(ctx, repeats, |encoder, ts| prepared.record(encoder, ts))?)
}

/// How [`decode_interleaved`] takes turns between its cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternation {
    /// One sample of each in turn ([`Stopwatch::time_interleaved`]): for cases of the same
    /// memory size, such as the ggml shape at GQA 1 and GQA 4.
    EverySample,
    /// Each case timed whole in turn, `rounds` times ([`Stopwatch::time_in_blocks`]): for
    /// cases of different sizes, such as a long-context curve's 4K and longest points.
    Blocks {
        /// How many times each case is timed.
        rounds: u32,
    },
}

/// Decode steps of `cases` timed in alternation, for figures whose ratio to each other is
/// the point: each step's timing, in order. A case that cannot be set up carries its
/// reason; the others are still timed.
pub fn decode_interleaved(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    cases: &[AttentionCase],
    max_pool_bytes: u64,
    alternation: Alternation,
) -> Vec<Result<Timing, BenchSkip>> {
    let prepared: Vec<Result<PreparedAttention, BenchSkip>> = cases
        .iter()
        .map(|case| PreparedAttention::new(ctx, case, max_pool_bytes, Attention::Decode))
        .collect();
    let timed = {
        let mut records: Vec<Box<Record<'_>>> = prepared
            .iter()
            .flatten()
            .map(|p| -> Box<Record<'_>> { Box::new(move |encoder, ts| p.record(encoder, ts)) })
            .collect();
        let mut refs: Vec<&mut Record<'_>> = records.iter_mut().map(|r| &mut **r).collect();
        match alternation {
            Alternation::EverySample => watch.time_interleaved(ctx, repeats, &mut refs),
            Alternation::Blocks { rounds } => watch.time_in_blocks(ctx, repeats, rounds, &mut refs),
        }
    };
    match timed {
        Ok(timings) => {
            let mut timings = timings.into_iter();
            prepared
                .into_iter()
                .map(|p| p.map(|_| timings.next().expect("one timing per prepared case")))
                .collect()
        }
        Err(e) => {
            let reason = e.to_string();
            prepared
                .into_iter()
                .map(|p| p.and_then(|_| Err(GpuError::Device(reason.clone()).into())))
                .collect()
        }
    }
}

/// Decode attention: the case's time per step.
pub fn decode(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    case: &AttentionCase,
    max_pool_bytes: u64,
) -> Result<Timing, BenchSkip> {
    attention(ctx, watch, repeats, case, max_pool_bytes, Attention::Decode)
}

/// Prefill of each sequence's whole `context` as one chunk: its time.
pub fn prefill(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    case: &AttentionCase,
    max_pool_bytes: u64,
) -> Result<Timing, BenchSkip> {
    attention(
        ctx,
        watch,
        repeats,
        case,
        max_pool_bytes,
        Attention::Prefill,
    )
}

/// Append of `case.batch * case.context` tokens into shuffled slots: its time.
pub fn append(
    ctx: &GpuContext,
    watch: &Stopwatch,
    repeats: u32,
    case: &AttentionCase,
    max_pool_bytes: u64,
) -> Result<Timing, BenchSkip> {
    let (storage, kernels, tables) = case.setup(ctx, max_pool_bytes)?;
    let bs = storage.layout.block_size;
    let slots: Vec<u32> = tables
        .iter()
        .flat_map(|t| (0..case.context).map(move |p| t[(p / bs) as usize] * bs + p % bs))
        .collect();
    let mut batch = AppendBatch::default();
    kernels.prepare_append(&storage, &mut batch, &slots)?;
    let g = &case.geometry;
    let bytes = slots.len() as u64 * (g.kv_heads * g.head_dim) as u64 * 4;
    let (k, v) = (
        scratch(ctx, "bench k", bytes),
        scratch(ctx, "bench v", bytes),
    );
    Ok(watch.time(ctx, repeats, |encoder, ts| {
        kernels.record_append(encoder, &storage, 0, &batch, AppendInput::whole(&k, &v), ts)?;
        Ok(())
    })?)
}

/// Bytes an append moves: (f32 K and V read, the same rows stored in the pool's dtype,
/// scales included).
pub fn append_bytes(case: &AttentionCase) -> (u64, u64) {
    let g = &case.geometry;
    let tokens = case.batch as u64 * case.context as u64;
    let rows = tokens * g.kv_heads as u64 * 2;
    (
        rows * g.head_dim as u64 * 4,
        rows * case.dtype.row_bytes(g.head_dim),
    )
}
