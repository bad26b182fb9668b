//! `pagekv verify`: prefill and decode on the chosen adapter, compared with the f64 CPU
//! reference through [`pagekv::verify::run_case`], the same routine the integration tests
//! assert with. `--dump` writes the tensors as NumPy files (`verify_dump`) so anyone can
//! re-check a result with their own code.

use super::algorithm::{AlgorithmChoice, HalfDecodeChoice, ReductionsChoice};
use super::{CliError, GlobalArgs, comma_list};
use clap::Args;
use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use pagekv::accuracy::Divergence;
use pagekv::cache::{KvFormat, ModelGeometry, SUPPORTED_BLOCK_SIZES, SUPPORTED_HEAD_DIMS};
use pagekv::gpu::GpuContext;
use pagekv::reference::ErrorStats;
use pagekv::verify::{KvData, VerifyCase, VerifyError, VerifyOutcome, run_case};
use std::path::PathBuf;
use std::time::Instant;

/// Contexts of the default shape set and of shape flags given without `--context`.
const DEFAULT_CONTEXTS: [u32; 6] = [1, 15, 16, 17, 100, 300];
/// Longest context accepted: the host keeps f32 Q/K/V of every position for the reference.
const MAX_CONTEXT: u32 = 131_072;
/// Most sequences in one case.
const MAX_SEQUENCES: usize = 4096;
/// Above this many tokens in any sequence, prefill rows are sampled unless `--sample-rows`.
const SAMPLE_ABOVE: u32 = 512;
/// Prefill rows checked per sequence and layer when sampling automatically.
const AUTO_SAMPLE_ROWS: usize = 16;

const DUMP_HELP: &str =
    "Write the tensors of every sequence and checked layer as NumPy .npy files \
(f32, little-endian, C order) plus manifest.json into DIR (created if needed; one \
subdirectory per case, named <model>_<dtype>_bs<block>, when several cases run).

For sequence S and layer L:
  seq{S}_layer{L}_q.npy    [queries, q_heads, head_dim]   query rows
  seq{S}_layer{L}_k.npy    [context, kv_heads, head_dim]  keys read back from the device pool
  seq{S}_layer{L}_v.npy    [context, kv_heads, head_dim]  values, same
  seq{S}_layer{L}_out.npy  [queries, q_heads, head_dim]   GPU attention output

K and V are gathered in logical token order from the paged pool, so with --dtype f16 they hold \
the f16-rounded values the kernels actually read. Query row i sits at position first_query + i \
(first_query is 0, the shared prefix length for forked sequences, or the decode position under \
--decode-only; see manifest.json) and attends keys 0..=first_query+i; query head h reads KV head h / (q_heads / kv_heads); \
out = softmax(q . k * scale) v with scale = 1/sqrt(head_dim).";

/// Flags of `pagekv verify`. Without any of --preset/--q-heads/--kv-heads/--head-dim it runs
/// the default shape set: both presets, f32 and f16, contexts 1,15,16,17,100,300, block size 16.
#[derive(Debug, Clone, Default, Args)]
pub struct VerifyArgs {
    /// Model geometry preset: qwen2.5-0.5b or qwen2.5-7b.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["q_heads", "kv_heads", "head_dim"])]
    pub preset: Option<String>,
    /// Query heads of a custom geometry (needs --kv-heads and --head-dim).
    #[arg(long, value_name = "N")]
    pub q_heads: Option<u32>,
    /// KV heads of a custom geometry; must divide --q-heads.
    #[arg(long, value_name = "N")]
    pub kv_heads: Option<u32>,
    /// Head dim of a custom geometry: 64, 80, 96, 128 or 256.
    #[arg(long, value_name = "N")]
    pub head_dim: Option<u32>,
    /// Layers to build and check [default: 2, at most the model's layers].
    #[arg(long, value_name = "N")]
    pub layers: Option<u32>,
    /// Tokens per KV block: 8, 16 or 32 [default: 16].
    #[arg(long, value_name = "N")]
    pub block_size: Option<u32>,
    /// KV storage dtype, or a comma list to run each [default: f16; f32,f16 for the default set].
    #[arg(long, value_name = "LIST")]
    pub dtype: Option<String>,
    /// Final context length of each sequence, comma separated [default: 1,15,16,17,100,300].
    /// Each sequence prefills context-1 tokens, then decodes one.
    #[arg(long, value_name = "LIST")]
    pub context: Option<String>,
    /// Repeat the context list N times (N sequences when one context is given) [default: 1].
    #[arg(long, value_name = "N")]
    pub batch: Option<u32>,
    /// Prompt tokens per prefill chunk; 0 prefills each prompt in one chunk [default: 512].
    #[arg(long, value_name = "TOKENS")]
    pub chunk: Option<u32>,
    /// Tokens of sequence 0's prompt that every other sequence shares by forking (partial
    /// blocks are copied on write) [default: 0].
    #[arg(long, value_name = "TOKENS")]
    pub shared_prefix: Option<u32>,
    /// Prefill rows checked per sequence and layer; 0 checks every row [default: all rows, or
    /// 16 sampled rows when a context exceeds 512 tokens]. Decode rows are always checked.
    #[arg(long, value_name = "N")]
    pub sample_rows: Option<usize>,
    /// K/V data, or a comma list to run each: uniform, outlier (one channel 50x the others),
    /// zeros, near-max (magnitudes near f16's largest value) [default: uniform].
    #[arg(long, value_name = "LIST")]
    pub data: Option<String>,
    /// Sliding window: every query attends to at most W newest keys (its own included).
    #[arg(long, value_name = "W")]
    pub window: Option<u32>,
    /// Append the prompts without running prefill attention and check only the decode rows:
    /// long-context decode checks without the quadratic prefill.
    #[arg(long)]
    pub decode_only: bool,
    /// Attention kernels to check: tiled (workgroup memory, what GPUs get), flat (no barriers,
    /// what CPU adapters get) or auto (by adapter class). Tiled pools are always buffers.
    #[arg(long, value_enum, value_name = "ALGORITHM", default_value_t = AlgorithmChoice::Auto)]
    pub algorithm: AlgorithmChoice,
    /// How the tiled kernels reduce across threads: subgroup (shuffles and subgroup
    /// reductions), serial (one thread per row, the fallback) or auto (subgroups where the
    /// adapter has them). The flat kernels have no cross-thread reductions.
    #[arg(long, value_enum, value_name = "FORM", default_value_t = ReductionsChoice::Auto)]
    pub reductions: ReductionsChoice,
    /// How the attention kernels convert f16 halves (f16 and FP8 pools) to f32: builtin
    /// (`unpack2x16float`), integer (the same conversion in integer code) or auto (integer
    /// code on llvmpipe's GL, the built-in elsewhere).
    #[arg(long, value_enum, value_name = "FORM", default_value_t = HalfDecodeChoice::Auto)]
    pub half_decode: HalfDecodeChoice,
    /// Seed for the random Q/K/V and block placement [default: 7].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Write q, k, v and out of every sequence and layer as .npy files into DIR.
    #[arg(long, value_name = "DIR", long_help = DUMP_HELP)]
    pub dump: Option<PathBuf>,
}

/// The validated plan: one [`VerifyCase`] per (geometry, dtype).
struct Plan {
    cases: Vec<VerifyCase>,
    auto_sampled: bool,
    dump: Option<PathBuf>,
}

fn bad(message: String) -> CliError {
    CliError::Input(message)
}

fn geometries(args: &VerifyArgs) -> Result<(Vec<ModelGeometry>, bool), CliError> {
    if let Some(name) = &args.preset {
        let g = ModelGeometry::preset(name).ok_or_else(|| {
            let names: Vec<String> = ModelGeometry::presets()
                .into_iter()
                .map(|g| g.name)
                .collect();
            bad(format!(
                "--preset '{name}' is not a known preset; use one of {}",
                names.join(", ")
            ))
        })?;
        return Ok((vec![g], false));
    }
    let (q, kv, hd) = (args.q_heads, args.kv_heads, args.head_dim);
    if q.is_none() && kv.is_none() && hd.is_none() {
        return Ok((ModelGeometry::presets(), true));
    }
    for (flag, value) in [("--q-heads", q), ("--kv-heads", kv), ("--head-dim", hd)] {
        if value == Some(0) {
            return Err(bad(format!("{flag} must be at least 1")));
        }
    }
    if let (Some(q), Some(kv)) = (q, kv)
        && !q.is_multiple_of(kv)
    {
        return Err(bad(format!(
            "--q-heads {q} is not a multiple of --kv-heads {kv}; every KV head must serve the same number of query heads"
        )));
    }
    if let Some(hd) = hd
        && !SUPPORTED_HEAD_DIMS.contains(&hd)
    {
        return Err(bad(format!(
            "--head-dim {hd} is not supported; use one of {}",
            join(&SUPPORTED_HEAD_DIMS)
        )));
    }
    let (Some(q), Some(kv), Some(hd)) = (q, kv, hd) else {
        let missing: Vec<&str> = [("--q-heads", q), ("--kv-heads", kv), ("--head-dim", hd)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(f, _)| f)
            .collect();
        return Err(bad(format!(
            "a custom geometry also needs {} (or use --preset)",
            missing.join(" and ")
        )));
    };
    let layers = args.layers.unwrap_or(2).max(1);
    let g = ModelGeometry::new(&format!("custom-q{q}-kv{kv}-hd{hd}"), layers, q, kv, hd);
    g.validate()
        .map_err(|e| bad(format!("invalid geometry: {e}")))?;
    Ok((vec![g], false))
}

fn join(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The distinct items of a comma list given to `flag`, each one of `all` by `name`
/// (case-insensitive), or one sentence naming the item and the choices.
fn choices<T: Copy + PartialEq>(
    flag: &str,
    text: &str,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Vec<T>, CliError> {
    let mut out = Vec::new();
    for item in comma_list(flag, text)? {
        let lower = item.to_ascii_lowercase();
        let found = all
            .iter()
            .copied()
            .find(|&c| name(c) == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|&c| name(c)).collect();
                bad(format!(
                    "{flag} '{item}' is not {what}; use one of {}, or a comma list",
                    names.join(", ")
                ))
            })?;
        if !out.contains(&found) {
            out.push(found);
        }
    }
    Ok(out)
}

fn plan(args: &VerifyArgs) -> Result<Plan, CliError> {
    let (geometries, default_set) = geometries(args)?;

    let block_size = args.block_size.unwrap_or(16);
    if !SUPPORTED_BLOCK_SIZES.contains(&block_size) {
        return Err(bad(format!(
            "--block-size {block_size} is not supported; use one of {}",
            join(&SUPPORTED_BLOCK_SIZES)
        )));
    }

    let dtypes: Vec<KvFormat> = match &args.dtype {
        None if default_set => vec![KvFormat::F32, KvFormat::F16],
        None => vec![KvFormat::F16],
        Some(text) => choices(
            "--dtype",
            text,
            "a KV format",
            &KvFormat::ALL,
            KvFormat::name,
        )?,
    };

    if args.window == Some(0) {
        return Err(bad(
            "--window 0 would let a query see no key; give at least 1".into(),
        ));
    }
    let data: Vec<KvData> = match &args.data {
        None => vec![KvData::Uniform],
        Some(text) => choices("--data", text, "a data pattern", &KvData::ALL, KvData::name)?,
    };

    let base: Vec<u32> = match &args.context {
        None => DEFAULT_CONTEXTS.to_vec(),
        Some(text) => {
            let mut out = Vec::new();
            for item in comma_list("--context", text)? {
                let c: u32 = item.parse().map_err(|_| {
                    bad(format!(
                        "--context '{item}' is not a whole number of tokens; give a list like 1,17,4096"
                    ))
                })?;
                if c == 0 || c > MAX_CONTEXT {
                    return Err(bad(format!(
                        "--context {c} is out of range; each context must be 1 to {MAX_CONTEXT} tokens"
                    )));
                }
                out.push(c);
            }
            out
        }
    };
    let batch = args.batch.unwrap_or(1);
    if batch == 0 {
        return Err(bad("--batch must be at least 1".into()));
    }
    let sequences = base.len().saturating_mul(batch as usize);
    if sequences > MAX_SEQUENCES {
        return Err(bad(format!(
            "--batch {batch} with {} contexts makes {sequences} sequences; at most {MAX_SEQUENCES} are allowed",
            base.len()
        )));
    }
    let contexts: Vec<u32> = (0..batch).flat_map(|_| base.iter().copied()).collect();

    let shared = args.shared_prefix.unwrap_or(0);
    if shared > 0 {
        if contexts.len() < 2 {
            return Err(bad(
                "--shared-prefix needs at least two sequences to share it; add --batch or more --context values".into(),
            ));
        }
        let min_prompt = contexts.iter().map(|c| c - 1).min().unwrap_or(0);
        if shared > min_prompt {
            return Err(bad(format!(
                "--shared-prefix {shared} is longer than the shortest prompt ({min_prompt} tokens: context minus the decoded token)"
            )));
        }
    }

    let max_context = contexts.iter().copied().max().unwrap_or(1);
    let (sample_rows, auto_sampled) = match args.sample_rows {
        Some(n) => (n, false),
        // Under --decode-only no prefill row is computed, so none is sampled.
        None if max_context > SAMPLE_ABOVE && !args.decode_only => (AUTO_SAMPLE_ROWS, true),
        None => (0, false),
    };

    let mut cases = Vec::new();
    for g in &geometries {
        let layers_run = match args.layers {
            Some(0) => return Err(bad("--layers must be at least 1".into())),
            Some(l) if l > g.layers => {
                return Err(bad(format!(
                    "--layers {l} exceeds the {} layers of {}",
                    g.layers, g.name
                )));
            }
            Some(l) => l,
            None => g.layers.min(2),
        };
        for &kv_data in &data {
            for &dtype in &dtypes {
                let mut case = VerifyCase::new(g.clone(), dtype, block_size, contexts.clone());
                case.layers_run = layers_run;
                case.prefill_chunk = args.chunk.unwrap_or(512);
                case.shared_prefix_tokens = shared;
                case.sample_rows = sample_rows;
                case.seed = args.seed.unwrap_or(7);
                case.data = kv_data;
                case.decode_only = args.decode_only;
                case.window = args.window;
                case.algorithm = args.algorithm.forced();
                case.reductions = args.reductions.forced();
                case.half_decode = args.half_decode.forced();
                cases.push(case);
            }
        }
    }
    Ok(Plan {
        cases,
        auto_sampled,
        dump: args.dump.clone(),
    })
}

fn case_label(case: &VerifyCase) -> String {
    let data = match case.data {
        KvData::Uniform => String::new(),
        other => format!("_{}", other.name()),
    };
    let window = case.window.map_or(String::new(), |w| format!("_w{w}"));
    format!(
        "{}_{}_bs{}{data}{window}",
        case.geometry.name,
        case.dtype.name(),
        case.block_size
    )
}

fn divergence(d: Divergence) -> String {
    format!(
        "max abs {}  mean rel {}  min cosine {:.6}",
        sci(d.max_abs),
        sci(d.mean_rel),
        d.min_cosine
    )
}

/// How a format stores a row, for the case table and the dump manifest.
pub(super) fn format_text(format: KvFormat, head_dim: u32) -> String {
    let layout = format.layout();
    match format.scale_group(head_dim) {
        None => format!("{} ({} bits per value)", format.name(), layout.value_bits),
        Some(group) => format!(
            "{} ({} bits per value, one f32 scale per {group} values of a row: {} bytes per row)",
            format.name(),
            layout.value_bits,
            format.row_bytes(head_dim)
        ),
    }
}

fn sci(x: f64) -> String {
    format!("{x:.2e}")
}

fn errors(stats: ErrorStats) -> String {
    format!("abs {}  rel {}", sci(stats.max_abs), sci(stats.max_rel))
}

fn contexts_text(contexts: &[u32]) -> String {
    let shown: Vec<String> = contexts.iter().take(8).map(u32::to_string).collect();
    let more = if contexts.len() > 8 { ", ..." } else { "" };
    format!("{} ({}{more})", contexts.len(), shown.join(", "))
}

fn has_prefill_rows(case: &VerifyCase) -> bool {
    !case.decode_only
        && case
            .contexts
            .iter()
            .enumerate()
            .any(|(s, &c)| c.saturating_sub(if s == 0 { 0 } else { case.shared_prefix_tokens }) > 1)
}

fn print_case(ctx: &GpuContext, case: &VerifyCase, out: &VerifyOutcome, seconds: f64) {
    let g = &case.geometry;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![Cell::new("verify"), Cell::new(case_label(case))]);
    let rows_checked = if case.sample_rows == 0 {
        "every query row".to_string()
    } else {
        format!(
            "sampled: {} prefill rows per sequence and layer (incl. first and last), decode rows all",
            case.sample_rows
        )
    };
    let prefill = if has_prefill_rows(case) {
        errors(out.prefill)
    } else {
        "n/a (no prefill rows)".into()
    };
    let rows: Vec<(&str, String)> = vec![
        ("adapter", ctx.describe()),
        (
            "shape",
            format!(
                "{}: q_heads {}, kv_heads {} (group {}), head_dim {}, layers {} of {}",
                g.name,
                g.q_heads,
                g.kv_heads,
                g.group_size(),
                g.head_dim,
                case.layers_run,
                g.layers
            ),
        ),
        ("KV format", format_text(case.dtype, g.head_dim)),
        ("K/V data", case.data.name().into()),
        (
            "sliding window",
            case.window
                .map_or("none".into(), |w| format!("{w} keys per query")),
        ),
        ("block size", case.block_size.to_string()),
        ("sequences", contexts_text(&case.contexts)),
        (
            "prefill chunk",
            if case.prefill_chunk == 0 {
                "whole prompt".into()
            } else {
                case.prefill_chunk.to_string()
            },
        ),
        (
            "shared prefix",
            format!(
                "{} tokens, {} copy-on-write block copies",
                case.shared_prefix_tokens, out.cow_copies
            ),
        ),
        ("shards / layer", out.shards.to_string()),
        (
            "attention",
            format!(
                "{} ({})",
                out.algorithm.name(),
                if case.algorithm.is_some() {
                    "forced by --algorithm"
                } else {
                    "auto, by adapter class and format"
                }
            ),
        ),
        ("decode partitions", out.decode_partitions.to_string()),
        ("prefill partitions", out.prefill_partitions.to_string()),
        ("shard groups", out.shard_groups.to_string()),
        ("variants", out.variants.join("\n")),
        ("rows checked", rows_checked),
        ("prefill max error", prefill),
        ("decode max error", errors(out.decode)),
        ("cache round trip", errors(out.cache_roundtrip)),
        ("output vs exact", divergence(out.output_vs_exact)),
        ("K vs exact", divergence(out.k_vs_exact)),
        ("V vs exact", divergence(out.v_vs_exact)),
        (
            "tolerance",
            format!(
                "|gpu - ref| <= {} + {} x |ref|",
                sci(out.tolerance.abs),
                sci(out.tolerance.rel)
            ),
        ),
        ("time", format!("{seconds:.2} s")),
        ("result", if out.passed { "PASS" } else { "FAIL" }.into()),
    ];
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    }
    println!("{t}");
}

fn verify_error(e: VerifyError) -> CliError {
    match e {
        VerifyError::Geometry(g) => CliError::input(format!("invalid geometry: {g}")),
        VerifyError::Case(m) => CliError::input(m),
        VerifyError::Gpu(g) => g.into(),
    }
}

/// Validates every flag before touching the GPU, then runs each case and prints its table.
pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> Result<(), CliError> {
    global.filter()?;
    let plan = plan(args)?;
    if let Some(dir) = &plan.dump {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::input(format!(
                "cannot create --dump directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    let ctx = global.open()?;
    args.reductions.check(&ctx).map_err(CliError::input)?;
    println!("adapter: {}", ctx.describe());
    println!("{}", args.algorithm.describe(&ctx));
    println!("{}", args.half_decode.describe(&ctx));
    if plan.auto_sampled {
        println!(
            "a context exceeds {SAMPLE_ABOVE} tokens: checking {AUTO_SAMPLE_ROWS} sampled prefill rows per sequence and layer against the f64 reference (--sample-rows 0 checks all)"
        );
    }
    let mut summary = Table::new();
    summary.load_preset(UTF8_FULL_CONDENSED);
    summary.set_header(vec![
        "case",
        "prefill max abs",
        "decode max abs",
        "cache max abs",
        "out vs exact: max abs",
        "mean rel",
        "min cos",
        "K mean rel",
        "V mean rel",
        "result",
    ]);
    let mut failed = 0;
    for case in &plan.cases {
        let start = Instant::now();
        let outcome = run_case(&ctx, case, plan.dump.is_some()).map_err(verify_error)?;
        print_case(&ctx, case, &outcome, start.elapsed().as_secs_f64());
        if !outcome.passed {
            failed += 1;
        }
        summary.add_row(vec![
            case_label(case),
            if has_prefill_rows(case) {
                sci(outcome.prefill.max_abs)
            } else {
                "n/a".into()
            },
            sci(outcome.decode.max_abs),
            sci(outcome.cache_roundtrip.max_abs),
            sci(outcome.output_vs_exact.max_abs),
            sci(outcome.output_vs_exact.mean_rel),
            format!("{:.6}", outcome.output_vs_exact.min_cosine),
            sci(outcome.k_vs_exact.mean_rel),
            sci(outcome.v_vs_exact.mean_rel),
            if outcome.passed { "PASS" } else { "FAIL" }.into(),
        ]);
        if let Some(dir) = &plan.dump {
            let dir = if plan.cases.len() == 1 {
                dir.clone()
            } else {
                dir.join(case_label(case))
            };
            super::verify_dump::write_dumps(&dir, &ctx, case, &outcome)?;
        }
    }
    if plan.cases.len() > 1 {
        println!("{summary}");
    }
    if failed > 0 {
        return Err(CliError::failed(format!(
            "{failed} of {} verify case(s) exceeded the tolerance",
            plan.cases.len()
        )));
    }
    println!("verify: {} case(s) PASS", plan.cases.len());
    Ok(())
}
