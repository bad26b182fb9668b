//! End-to-end kernel verification against the CPU reference: builds a pool, pages random
//! sequences into shuffled blocks (optionally sharing a forked prefix, with copy-on-write),
//! prefills them in chunks, decodes one token, and compares every checked output row with
//! [`crate::reference::attention`] in f64. The integration tests and `pagekv verify` both use
//! it, so what the CLI reports is exactly what the tests assert.

use crate::accuracy::Divergence;
use crate::cache::{CacheLayout, GeometryError, KvFormat, ModelGeometry, SUPPORTED_BLOCK_SIZES};
use crate::gpu::{
    GpuContext, GpuError, KvBacking, KvStorage, KvStorageMode, host_available_bytes, human_bytes,
    read_buffer_f32, storage_buffer_init,
};
use crate::kernels::{
    AppendBatch, AppendInput, AttentionAlgorithm, AttentionIo, AttentionOptions, DecodeBatch,
    HalfDecode, PagedAttention, PrefillBatch, Reductions, SeqView,
};
use crate::reference::{self, AttentionShape, ErrorStats, Tolerance};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use thiserror::Error;

mod data;
pub use data::KvData;

/// One verification scenario.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyCase {
    /// Model geometry (only `layers_run` layers get pools).
    pub geometry: ModelGeometry,
    /// Layers to build and check.
    pub layers_run: u32,
    /// Tokens per block.
    pub block_size: u32,
    /// KV storage dtype.
    pub dtype: KvFormat,
    /// Final context length of each sequence: `len - 1` prompt tokens are prefilled, then one
    /// token is decoded.
    pub contexts: Vec<u32>,
    /// Prompt tokens per prefill chunk; 0 prefills each prompt in one chunk.
    pub prefill_chunk: u32,
    /// Tokens of sequence 0 that every other sequence shares by forking. A partial last
    /// shared block triggers copy-on-write on the fork's first append.
    pub shared_prefix_tokens: u32,
    /// Force shards of at most this many bytes (tests use 64 KiB to run the multi-shard path).
    pub max_shard_bytes: Option<u64>,
    /// Force the decode split length.
    pub partition_tokens: Option<u32>,
    /// Cap the partial-results scratch of a step (tests use a few KiB to merge pool shards
    /// in groups).
    pub max_partial_bytes: Option<u64>,
    /// Prefill rows checked per sequence and layer (0 = all); sampling keeps long contexts fast.
    pub sample_rows: usize,
    /// Append the prompts without running prefill attention, so only the decode rows are
    /// computed and checked: a long-context decode check without the quadratic prefill.
    pub decode_only: bool,
    /// RNG seed for data and block placement.
    pub seed: u64,
    /// Store f16 packed in u32 even where SHADER_F16 exists (tests both encodings).
    pub force_packed_f16: bool,
    /// Force an attention algorithm (decode and prefill) instead of the device class's default
    /// (tests run both).
    pub algorithm: Option<AttentionAlgorithm>,
    /// Force the tiled kernels' reduction form instead of the adapter's (subgroups where it
    /// has them); tests check the serial fallback on adapters with subgroups too.
    pub reductions: Option<Reductions>,
    /// Force the attention kernels' f16-to-f32 conversion instead of the adapter's (tests
    /// check both forms on every adapter).
    pub half_decode: Option<HalfDecode>,
    /// Force the pool's backing instead of the device's default (tests run the flat kernel on
    /// both); a forced tiled algorithm implies buffers, the only pools it reads.
    pub backing: Option<KvBacking>,
    /// What the K and V values look like.
    pub data: KvData,
    /// Sliding window: each query attends to at most this many newest keys.
    pub window: Option<u32>,
}

impl VerifyCase {
    /// A case with defaults for everything but geometry, dtype, block size and contexts.
    pub fn new(
        geometry: ModelGeometry,
        dtype: KvFormat,
        block_size: u32,
        contexts: Vec<u32>,
    ) -> Self {
        Self {
            layers_run: geometry.layers.min(2),
            geometry,
            block_size,
            dtype,
            contexts,
            prefill_chunk: 0,
            shared_prefix_tokens: 0,
            max_shard_bytes: None,
            partition_tokens: None,
            max_partial_bytes: None,
            sample_rows: 0,
            decode_only: false,
            seed: 7,
            force_packed_f16: false,
            algorithm: None,
            reductions: None,
            half_decode: None,
            backing: None,
            data: KvData::Uniform,
            window: None,
        }
    }
}

/// Logical tensors of one sequence and layer, in the shapes `--dump` writes.
#[derive(Clone, Debug)]
pub struct SequenceDump {
    /// Sequence index in the case.
    pub sequence: usize,
    /// Layer index.
    pub layer: u32,
    /// Position of the first query row in `q`/`out`.
    pub first_query: u32,
    /// `[queries][q_heads][head_dim]`.
    pub q: Vec<f32>,
    /// `[context][kv_heads][head_dim]`, read back from the device pool.
    pub k: Vec<f32>,
    /// Same shape as `k`.
    pub v: Vec<f32>,
    /// A scaled format's K scales, `[context][kv_heads][scales per row]` (empty otherwise).
    pub k_scales: Vec<f32>,
    /// V scales, same shape.
    pub v_scales: Vec<f32>,
    /// `[queries][q_heads][head_dim]` GPU output.
    pub out: Vec<f32>,
}

/// What a verification found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyOutcome {
    /// Worst prefill error over checked rows.
    pub prefill: ErrorStats,
    /// Worst decode error.
    pub decode: ErrorStats,
    /// Worst difference between K/V read back from the pool and what the CPU reference
    /// quantizer keeps of what was appended: checks append (bit for bit for every format),
    /// copy-on-write and paging on their own.
    pub cache_roundtrip: ErrorStats,
    /// Attention outputs against the reference fed the *unquantized* K/V: what the format
    /// costs (0 for f32 up to f32 arithmetic).
    pub output_vs_exact: Divergence,
    /// K read back from the pool against the unquantized K.
    pub k_vs_exact: Divergence,
    /// V read back from the pool against the unquantized V.
    pub v_vs_exact: Divergence,
    /// Tolerance applied.
    pub tolerance: Tolerance,
    /// Whether every checked value is within tolerance.
    pub passed: bool,
    /// Pool shards per layer.
    pub shards: u32,
    /// Decode partitions (splits x shards).
    pub decode_partitions: u32,
    /// Most partitions (splits x shards) of any prefill step: more than the shards where a
    /// prefill split its keys (the flat kernel's long contexts, or the tiled one on a CPU
    /// adapter).
    pub prefill_partitions: u32,
    /// Most groups any step merged its pool shards in (1 unless a step's partial results
    /// outgrew `max_partial_bytes` or the device's largest binding).
    pub shard_groups: u32,
    /// Copy-on-write block copies performed.
    pub cow_copies: usize,
    /// The attention algorithm that ran (forced by the case, or the adapter's default).
    pub algorithm: AttentionAlgorithm,
    /// Shader variants used.
    pub variants: Vec<String>,
    /// Per-sequence tensors, filled only when requested.
    #[serde(skip)]
    pub dumps: Vec<SequenceDump>,
}

/// Why a case could not run.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The geometry is invalid.
    #[error("invalid geometry: {0}")]
    Geometry(#[from] GeometryError),
    /// The case itself is malformed.
    #[error("{0}")]
    Case(String),
    /// The device could not run it.
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Refuses a case whose largest prefill step would need a query or K/V input larger than one
/// storage binding, before any data is made: every sequence's first chunk in one step.
fn check_step_sizes(ctx: &GpuContext, case: &VerifyCase) -> Result<(), VerifyError> {
    let g = &case.geometry;
    let caps = &ctx.capabilities;
    let largest = caps.max_storage_binding.min(caps.max_buffer);
    let tokens: u64 = case
        .contexts
        .iter()
        .map(|&c| match case.prefill_chunk {
            0 => c as u64 - 1,
            chunk => (c as u64 - 1).min(chunk as u64),
        })
        .sum();
    // Under decode_only the prompt steps only append: their largest input is K (or V).
    let (heads, what) = match case.decode_only {
        true => (g.kv_heads, "keys"),
        false => (g.q_heads.max(g.kv_heads), "queries"),
    };
    let needed = tokens * (heads * g.head_dim) as u64 * 4;
    if needed > largest {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        return Err(VerifyError::Case(format!(
            "a prefill step of {tokens} tokens needs {:.1} MiB of f32 {what}, more than the \
             adapter's largest storage binding ({:.1} MiB): prefill in chunks (--chunk) or \
             check fewer or shorter sequences",
            mib(needed),
            mib(largest)
        )));
    }
    Ok(())
}

/// Share of the host's available memory a case's own data may take.
const HOST_DATA_SHARE: f64 = 0.75;

/// Refuses a case whose host-side data would not fit in memory, before any of it is made:
/// verify keeps f32 copies of every sequence's K and V, its query and output rows, the pool
/// read back for the comparison (and for `--dump`), and on a CPU adapter the pool itself.
/// Without this a long context at a large batch ends in swap or the OOM killer.
fn check_host_data(
    ctx: &GpuContext,
    case: &VerifyCase,
    layout: &CacheLayout,
    (layers, shared): (u32, u32),
    keep_dumps: bool,
) -> Result<(), VerifyError> {
    let Some(available) = host_available_bytes() else {
        return Ok(());
    };
    let g = &case.geometry;
    let (q_row, kv_row) = (
        (g.q_heads * g.head_dim) as u64 * 4,
        (g.kv_heads * g.head_dim) as u64 * 4,
    );
    let mut bytes = 0u64;
    let mut blocks = 0u64;
    for (s, &c) in case.contexts.iter().enumerate() {
        let c = c as u64;
        let start = if s == 0 { 0 } else { shared as u64 };
        let query_rows = if case.decode_only { 1 } else { c - start };
        // Q and output rows, K and V; dumps keep the read-back K and V too.
        let kv_copies = if keep_dumps { 4 } else { 2 };
        bytes += layers as u64 * (2 * query_rows * q_row + kv_copies * c * kv_row);
        blocks += c.div_ceil(case.block_size as u64);
    }
    // The comparison reads one layer's pool back (its bytes and their staging copy), then
    // holds one sequence's K/V from it and their rounded reference at once.
    let layer_pool = 2 * blocks * layout.block_bytes_per_layer();
    let longest = case.contexts.iter().copied().max().unwrap_or(0) as u64;
    bytes += 2 * layer_pool + 4 * longest * kv_row;
    if ctx.info.device_type == wgpu::DeviceType::Cpu {
        bytes += layers as u64 * layer_pool;
    }
    let allowed = (available as f64 * HOST_DATA_SHARE) as u64;
    if bytes > allowed {
        return Err(VerifyError::Case(format!(
            "this case needs about {} of host memory for its data{}, more than {:.0}% of the \
             {} available: check fewer or shorter sequences (--batch, --context){}",
            human_bytes(bytes),
            if ctx.info.device_type == wgpu::DeviceType::Cpu {
                " and the CPU adapter's pool"
            } else {
                ""
            },
            HOST_DATA_SHARE * 100.0,
            human_bytes(available),
            if case.decode_only {
                ""
            } else {
                ", or --decode-only, which holds only the decode rows' queries"
            },
        )));
    }
    Ok(())
}

struct SeqData {
    /// Query rows from position `first_query` on (the rows a step attends and checks).
    q: Vec<Vec<f32>>,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    table: Vec<u32>,
    start: u32,
    /// First position whose query and output rows are held: `start`, or the decode row under
    /// `decode_only` (a 128K-token prompt's queries would otherwise take gigabytes of host
    /// memory that nothing reads).
    first_query: u32,
    /// Output rows from position `first_query` on, as the steps produce them.
    out: Vec<Vec<f32>>,
}

fn random_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Runs `case` on `ctx`. `keep_dumps` retains logical tensors for `--dump`.
pub fn run_case(
    ctx: &GpuContext,
    case: &VerifyCase,
    keep_dumps: bool,
) -> Result<VerifyOutcome, VerifyError> {
    case.geometry.validate()?;
    if !SUPPORTED_BLOCK_SIZES.contains(&case.block_size) {
        return Err(VerifyError::Case(format!(
            "block size {} is not one of {SUPPORTED_BLOCK_SIZES:?}",
            case.block_size
        )));
    }
    if case.contexts.is_empty() || case.contexts.contains(&0) {
        return Err(VerifyError::Case(
            "every context length must be at least 1".into(),
        ));
    }
    check_step_sizes(ctx, case)?;
    let g = &case.geometry;
    let layout = CacheLayout {
        geometry: g.clone(),
        block_size: case.block_size,
        dtype: case.dtype,
    };
    let (qh, kvh, hd, bs) = (
        g.q_heads as usize,
        g.kv_heads as usize,
        g.head_dim as usize,
        case.block_size,
    );
    let layers = case.layers_run.clamp(1, g.layers);
    let mut rng = StdRng::seed_from_u64(case.seed);

    // Shared prefix: only full prompt tokens of sequence 0 can be shared.
    let n = case.contexts.len();
    let shared = if n > 1 {
        let min_prompt = case.contexts.iter().map(|c| c - 1).min().unwrap_or(0);
        case.shared_prefix_tokens.min(min_prompt)
    } else {
        0
    };
    check_host_data(ctx, case, &layout, (layers, shared), keep_dumps)?;

    // Logical data per sequence and layer.
    let mut seqs: Vec<SeqData> = Vec::with_capacity(n);
    for (s, &context) in case.contexts.iter().enumerate() {
        let c = context as usize;
        let start = if s == 0 { 0 } else { shared };
        let first_query = if case.decode_only { context - 1 } else { start };
        let query_rows = c - first_query as usize;
        let mut data = SeqData {
            q: (0..layers)
                .map(|_| random_vec(&mut rng, query_rows * qh * hd))
                .collect(),
            k: (0..layers)
                .map(|_| random_vec(&mut rng, c * kvh * hd))
                .collect(),
            v: (0..layers)
                .map(|_| random_vec(&mut rng, c * kvh * hd))
                .collect(),
            table: Vec::new(),
            start,
            first_query,
            out: vec![Vec::new(); layers as usize],
        };
        for l in 0..layers as usize {
            case.data.shape_q(&mut data.q[l]);
            case.data.shape_kv(&mut data.k[l], hd);
            case.data.shape_kv(&mut data.v[l], hd);
        }
        if s > 0 {
            let prefix = shared as usize * kvh * hd;
            for l in 0..layers as usize {
                let (k0, v0) = (
                    seqs[0].k[l][..prefix].to_vec(),
                    seqs[0].v[l][..prefix].to_vec(),
                );
                data.k[l][..prefix].copy_from_slice(&k0);
                data.v[l][..prefix].copy_from_slice(&v0);
            }
        }
        seqs.push(data);
    }

    // Block placement: shuffled physical ids; forks share sequence 0's blocks covering the
    // shared prefix, and a partial last shared block is copied on write.
    let shared_full = shared / bs;
    let shared_partial = shared % bs != 0;
    let needed: u32 = case
        .contexts
        .iter()
        .enumerate()
        .map(|(s, &c)| c.div_ceil(bs) - if s == 0 { 0 } else { shared_full })
        .sum();
    let num_blocks = needed + 3;
    let mut free: Vec<u32> = (0..num_blocks).collect();
    free.shuffle(&mut rng);
    let mut cow = Vec::new();
    for s in 0..n {
        let blocks = case.contexts[s].div_ceil(bs);
        let mut table = Vec::with_capacity(blocks as usize);
        if s > 0 {
            table.extend_from_slice(&seqs[0].table[..shared_full as usize]);
        }
        while (table.len() as u32) < blocks {
            table.push(free.pop().expect("pool sized for every block"));
        }
        if s > 0 && shared_partial {
            cow.push((
                seqs[0].table[shared_full as usize],
                table[shared_full as usize],
            ));
        }
        seqs[s].table = table;
    }

    let mode = KvStorageMode::choose(
        case.dtype,
        ctx.capabilities.shader_f16 && !case.force_packed_f16,
    );
    let backing = case
        .backing
        .unwrap_or_else(|| AttentionAlgorithm::pool_backing(case.algorithm, ctx, &layout));
    let storage = KvStorage::with_backing(
        ctx,
        &layout,
        num_blocks,
        layers,
        case.max_shard_bytes,
        mode,
        backing,
    )?;
    let options = AttentionOptions {
        algorithm: case.algorithm,
        decode_partition_tokens: case.partition_tokens,
        sliding_window: case.window,
        reductions: case.reductions,
        half_decode: case.half_decode,
        decode_target_workgroups: None,
        partial_budget: case.max_partial_bytes,
    };
    let kernels = PagedAttention::with_options(ctx, &storage, options)?;

    // Prefill: sequence 0 first (it owns the shared prefix), then the forks, each in chunks.
    let groups: Vec<Vec<usize>> = if shared > 0 {
        vec![vec![0], (1..n).collect()]
    } else {
        vec![(0..n).collect()]
    };
    let mut batches = StepBatches::default();
    let mut shard_groups = 1;
    let mut prefill_partitions = 0;
    for (phase, members) in groups.iter().enumerate() {
        if phase == 1 && !cow.is_empty() {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            kernels.record_block_copies(&mut encoder, &storage, &cow)?;
            ctx.queue.submit([encoder.finish()]);
        }
        let mut pos: Vec<u32> = members.iter().map(|&s| seqs[s].start).collect();
        loop {
            let mut step: Vec<(usize, u32, u32)> = Vec::new();
            for (i, &s) in members.iter().enumerate() {
                let prompt = case.contexts[s] - 1;
                if pos[i] < prompt {
                    let len = if case.prefill_chunk == 0 {
                        prompt - pos[i]
                    } else {
                        case.prefill_chunk.min(prompt - pos[i])
                    };
                    step.push((s, pos[i], len));
                    pos[i] += len;
                }
            }
            if step.is_empty() {
                break;
            }
            run_step(
                ctx,
                &kernels,
                &storage,
                &mut batches,
                &mut seqs,
                &step,
                layers,
                g,
                if case.decode_only {
                    StepKind::AppendOnly
                } else {
                    StepKind::Prefill
                },
            )?;
            shard_groups = shard_groups.max(batches.prefill.shard_groups());
            if !case.decode_only {
                prefill_partitions = prefill_partitions.max(batches.prefill.num_partitions());
            }
        }
    }

    // Decode the last token of every sequence together.
    let step: Vec<(usize, u32, u32)> = (0..n).map(|s| (s, case.contexts[s] - 1, 1)).collect();
    run_step(
        ctx,
        &kernels,
        &storage,
        &mut batches,
        &mut seqs,
        &step,
        layers,
        g,
        StepKind::Decode,
    )?;
    let decode_partitions = batches.decode.num_partitions();
    shard_groups = shard_groups.max(batches.decode.shard_groups());

    // Compare.
    // The absolute allowance is for O(1) values: an output is a weighted sum of V rows, so f32
    // rounding grows with the largest |V|, not with the (possibly cancelled) result.
    let largest_v = seqs
        .iter()
        .flat_map(|d| d.v.iter().flatten())
        .fold(1.0f32, |m, x| m.max(x.abs()));
    let mut tolerance = Tolerance::for_format(case.dtype);
    tolerance.abs *= largest_v as f64;
    let round = |x: &[f32]| case.dtype.quantize(x, g.head_dim as usize);
    let mut outcome = VerifyOutcome {
        prefill: ErrorStats::default(),
        decode: ErrorStats::default(),
        cache_roundtrip: ErrorStats::default(),
        output_vs_exact: Divergence::default(),
        k_vs_exact: Divergence::default(),
        v_vs_exact: Divergence::default(),
        tolerance,
        passed: true,
        shards: storage.plan.num_shards(),
        decode_partitions,
        prefill_partitions,
        shard_groups,
        cow_copies: cow.len(),
        algorithm: kernels.algorithm(),
        variants: {
            let names = kernels.variant_names();
            vec![names.append, names.prefill, names.decode, names.combine]
        },
        dumps: Vec::new(),
    };
    // The rows checked per sequence (query rows from its first_query on): all, or a sample.
    let checked_rows: Vec<Vec<usize>> = seqs
        .iter()
        .zip(&case.contexts)
        .map(|(data, &c)| {
            let rows = (c - data.first_query) as usize;
            if case.sample_rows == 0 || rows <= case.sample_rows + 1 {
                return (0..rows).collect();
            }
            let mut picks = vec![0, rows - 2, rows - 1];
            while picks.len() < case.sample_rows + 1 {
                picks.push(rng.random_range(0..rows));
            }
            picks.sort_unstable();
            picks.dedup();
            picks
        })
        .collect();
    // Each layer's pool is read back once for all sequences.
    for l in 0..layers as usize {
        let snapshot = storage.snapshot(ctx, l as u32)?;
        for (s, data) in seqs.iter().enumerate() {
            let c = case.contexts[s];
            let rows = (c - data.first_query) as usize;
            let checked = &checked_rows[s];
            let (k_dev, v_dev) = snapshot.gather(&data.table, c)?;
            let (k_ref, v_ref) = (round(&data.k[l]), round(&data.v[l]));
            outcome.k_vs_exact = outcome
                .k_vs_exact
                .merge(Divergence::of(&k_dev, &data.k[l], hd));
            outcome.v_vs_exact = outcome
                .v_vs_exact
                .merge(Divergence::of(&v_dev, &data.v[l], hd));
            for (got, want) in [(&k_dev, &k_ref), (&v_dev, &v_ref)] {
                let (stats, ok) = reference::check(
                    got,
                    want,
                    Tolerance {
                        abs: 0.0,
                        rel: 1e-3,
                    },
                );
                outcome.cache_roundtrip = worst(outcome.cache_roundtrip, stats);
                outcome.passed &= ok;
            }
            for &r in checked {
                let position = data.first_query as usize + r;
                let q_row = &data.q[l][r * qh * hd..(r + 1) * qh * hd];
                // The keys this row sees: all up to its own position, or the window's last.
                let keys = position + 1;
                let first = case.window.map_or(0, |w| keys.saturating_sub(w as usize));
                let shape = AttentionShape {
                    q_heads: qh,
                    kv_heads: kvh,
                    head_dim: hd,
                    num_queries: 1,
                    num_keys: keys - first,
                };
                // The kernels are checked against the reference fed exactly the values the
                // cache holds; the format's own loss is measured against the unquantized
                // inputs.
                let seen = first * kvh * hd..keys * kvh * hd;
                let attend = |k: &[f32], v: &[f32]| {
                    reference::attention(q_row, &k[seen.clone()], &v[seen.clone()], shape)
                        .map_err(|e| VerifyError::Case(e.to_string()))
                };
                let want = attend(&k_dev, &v_dev)?;
                let exact = attend(&data.k[l], &data.v[l])?;
                let got = &data.out[l][r * qh * hd..(r + 1) * qh * hd];
                outcome.output_vs_exact = outcome
                    .output_vs_exact
                    .merge(Divergence::of(got, &exact, hd));
                let (stats, ok) = reference::check(got, &want, tolerance);
                outcome.passed &= ok;
                if r + 1 == rows {
                    outcome.decode = worst(outcome.decode, stats);
                } else {
                    outcome.prefill = worst(outcome.prefill, stats);
                }
            }
            if keep_dumps {
                let (k_scales, v_scales) = snapshot.gather_scales(&data.table, c)?;
                outcome.dumps.push(SequenceDump {
                    k_scales,
                    v_scales,
                    sequence: s,
                    layer: l as u32,
                    first_query: data.first_query,
                    q: data.q[l].clone(),
                    k: k_dev,
                    v: v_dev,
                    out: data.out[l].clone(),
                });
            }
        }
    }
    outcome.dumps.sort_by_key(|d| (d.sequence, d.layer));
    Ok(outcome)
}

fn worst(a: ErrorStats, b: ErrorStats) -> ErrorStats {
    ErrorStats {
        max_abs: a.max_abs.max(b.max_abs),
        max_rel: a.max_rel.max(b.max_rel),
        worst_index: if b.max_abs > a.max_abs {
            b.worst_index
        } else {
            a.worst_index
        },
    }
}

/// The reusable metadata of verify's steps.
#[derive(Default)]
struct StepBatches {
    append: AppendBatch,
    prefill: PrefillBatch,
    decode: DecodeBatch,
}

/// What one verify step runs after appending its tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// Causal prefill attention over the step's tokens.
    Prefill,
    /// Nothing: the rows have no queries or outputs (`decode_only` holds only decode rows).
    AppendOnly,
    /// Decode attention, one token per sequence.
    Decode,
}

/// Appends and attends one step: `(sequence, first position, tokens)` per member.
#[allow(clippy::too_many_arguments)]
fn run_step(
    ctx: &GpuContext,
    kernels: &PagedAttention,
    storage: &KvStorage,
    batches: &mut StepBatches,
    seqs: &mut [SeqData],
    step: &[(usize, u32, u32)],
    layers: u32,
    g: &ModelGeometry,
    kind: StepKind,
) -> Result<(), VerifyError> {
    let (qh, kvh, hd) = (g.q_heads as usize, g.kv_heads as usize, g.head_dim as usize);
    let bs = storage.layout.block_size;
    let mut slots = Vec::new();
    for &(s, first, len) in step {
        for p in first..first + len {
            slots.push(seqs[s].table[(p / bs) as usize] * bs + p % bs);
        }
    }
    kernels.prepare_append(storage, &mut batches.append, &slots)?;
    let views: Vec<SeqView<'_>> = step
        .iter()
        .map(|&(s, first, len)| SeqView {
            block_table: &seqs[s].table,
            context_len: first + len,
            query_len: len,
        })
        .collect();
    match kind {
        StepKind::Decode => kernels.prepare_decode(storage, &mut batches.decode, &views)?,
        StepKind::Prefill => kernels.prepare_prefill(storage, &mut batches.prefill, &views)?,
        StepKind::AppendOnly => {}
    }
    drop(views);
    let total: usize = step.iter().map(|&(_, _, len)| len as usize).sum();
    let attends = kind != StepKind::AppendOnly;
    for l in 0..layers as usize {
        let mut q = Vec::with_capacity(if attends { total * qh * hd } else { 0 });
        let mut k = Vec::with_capacity(total * kvh * hd);
        let mut v = Vec::with_capacity(total * kvh * hd);
        for &(s, first, len) in step {
            let (a, b) = (first as usize, (first + len) as usize);
            if attends {
                let held = seqs[s].first_query as usize;
                q.extend_from_slice(&seqs[s].q[l][(a - held) * qh * hd..(b - held) * qh * hd]);
            }
            k.extend_from_slice(&seqs[s].k[l][a * kvh * hd..b * kvh * hd]);
            v.extend_from_slice(&seqs[s].v[l][a * kvh * hd..b * kvh * hd]);
        }
        let k_buf = storage_buffer_init(ctx, "verify k", bytemuck::cast_slice(&k));
        let v_buf = storage_buffer_init(ctx, "verify v", bytemuck::cast_slice(&v));
        // An append-only step records no attention, so it binds no queries or outputs.
        let attention_io = attends.then(|| {
            let q_buf = storage_buffer_init(ctx, "verify q", bytemuck::cast_slice(&q));
            let out_buf = storage_buffer_init(ctx, "verify out", &vec![0u8; q.len() * 4]);
            (q_buf, out_buf)
        });
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        kernels.record_append(
            &mut encoder,
            storage,
            l as u32,
            &batches.append,
            AppendInput::whole(&k_buf, &v_buf),
            None,
        )?;
        if let Some((q_buf, out_buf)) = &attention_io {
            let io = AttentionIo::whole(q_buf, out_buf);
            let layer = l as u32;
            match kind {
                StepKind::Decode => {
                    let batch = &batches.decode;
                    kernels.record_decode(&mut encoder, storage, layer, batch, io, None)?
                }
                StepKind::Prefill => {
                    let batch = &batches.prefill;
                    kernels.record_prefill(&mut encoder, storage, layer, batch, io, None)?
                }
                StepKind::AppendOnly => {}
            }
        }
        ctx.queue.submit([encoder.finish()]);
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(err.to_string()).into());
        }
        let Some((_, out_buf)) = &attention_io else {
            // Waiting lets wgpu free this step's uploads before the next is made: a long run
            // of append-only steps (nothing read back) would otherwise queue them all.
            ctx.wait_idle()?;
            continue;
        };
        let out = read_buffer_f32(ctx, out_buf, q.len())?;
        let mut offset = 0;
        for &(s, _, len) in step {
            let n = len as usize * qh * hd;
            seqs[s].out[l].extend_from_slice(&out[offset..offset + n]);
            offset += n;
        }
    }
    Ok(())
}
