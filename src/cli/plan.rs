//! `pagekv plan`: capacity planning from real KV geometry, beside the reference report's batch
//! and concurrency tables, with the production configurations placed on it; `--validate`
//! checks one row on the GPU.

use std::path::PathBuf;

use clap::Args;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use pagekv::KvFormat;
use pagekv::cache::ModelGeometry;
use pagekv::report::plan::{
    DEFAULT_CONCURRENCY_SEQ, DEFAULT_GENERATION, MarkerInput, Plan, PlanInput,
};
use pagekv::report::plan_table;
use pagekv::report::plan_validate::{self, ValidateError, Validation};
use pagekv::scenario::{BYTES_PER_GB, ModelPresets, ScalePreset};
use serde::Serialize;

use super::run::{ScenarioSet, scenarios_dir};
use super::{CliError, GlobalArgs};

/// Flags of `pagekv plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Model preset (from --models, else the scenarios directory's models.toml). Default:
    /// qwen2.5-0.5b, the report's default model, unless a custom geometry is given.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["layers", "q_heads", "kv_heads", "head_dim", "max_context"])]
    pub model: Option<String>,
    /// A models.toml to read presets from.
    #[arg(long, value_name = "FILE")]
    pub models: Option<PathBuf>,
    /// Custom geometry: decoder layers (with --q-heads, --kv-heads, --head-dim, --max-context).
    #[arg(long, value_name = "N")]
    pub layers: Option<u32>,
    /// Custom geometry: query heads.
    #[arg(long, value_name = "N")]
    pub q_heads: Option<u32>,
    /// Custom geometry: key/value heads.
    #[arg(long, value_name = "N")]
    pub kv_heads: Option<u32>,
    /// Custom geometry: elements per head.
    #[arg(long, value_name = "N")]
    pub head_dim: Option<u32>,
    /// Custom geometry: the model's context length (longest prompt planned).
    #[arg(long, value_name = "TOKENS")]
    pub max_context: Option<u32>,
    /// KV budget in GiB.
    #[arg(
        long,
        default_value_t = 24.0,
        value_name = "GIB",
        allow_negative_numbers = true
    )]
    pub budget: f64,
    /// KV format (f32, f16, int8, int4, fp8-e4m3, fp8-e5m2), or `all` for one plan each.
    #[arg(long, default_value = "f16", value_name = "FORMAT")]
    pub kv_dtype: String,
    /// Sliding-window attention over this many newest keys.
    #[arg(long, value_name = "TOKENS")]
    pub window: Option<u32>,
    /// Generated tokens per request, held on top of the prompt.
    #[arg(long = "gen", default_value_t = DEFAULT_GENERATION, value_name = "TOKENS")]
    pub generation: u32,
    /// Tokens per block.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub block_size: u32,
    /// Prompt length of the concurrency table (the report does not state its own).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY_SEQ, value_name = "TOKENS")]
    pub seq: u32,
    /// Print the plans as JSON on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Run the 100% boundary of one row, and one request more, on the GPU.
    #[arg(long)]
    pub validate: bool,
    /// The row --validate runs (default: --seq).
    #[arg(long, value_name = "SEQ", requires = "validate")]
    pub row: Option<u32>,
    /// Scale preset --validate runs at: ci, default, long or full.
    #[arg(
        long,
        default_value = "ci",
        value_name = "PRESET",
        requires = "validate"
    )]
    pub scale: String,
    /// Directory of models.toml and production/ (whose configurations the plan places).
    #[arg(long, value_name = "DIR")]
    pub scenarios_dir: Option<PathBuf>,
}

/// The JSON document `--json` prints.
#[derive(Serialize)]
struct JsonOut<'a> {
    plans: &'a [Plan],
    #[serde(skip_serializing_if = "Option::is_none")]
    validation: Option<&'a Validation>,
}

/// The geometry and context to plan, with the name `--validate` gives the model.
fn model(args: &PlanArgs) -> Result<(ModelGeometry, u32), CliError> {
    let custom = [
        ("--layers", args.layers),
        ("--q-heads", args.q_heads),
        ("--kv-heads", args.kv_heads),
        ("--head-dim", args.head_dim),
        ("--max-context", args.max_context),
    ];
    let missing: Vec<&str> = custom
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() && missing.len() < custom.len() {
        return Err(CliError::input(format!(
            "a custom geometry needs {} too (or give --model instead)",
            missing.join(", ")
        )));
    }
    if let (Some(layers), Some(q), Some(kv), Some(hd), Some(ctx)) = (
        args.layers,
        args.q_heads,
        args.kv_heads,
        args.head_dim,
        args.max_context,
    ) {
        let g = ModelGeometry::new("custom", layers, q, kv, hd);
        g.validate().map_err(|e| {
            CliError::input(format!("--layers/--q-heads/--kv-heads/--head-dim: {e}"))
        })?;
        if ctx == 0 {
            return Err(CliError::input("--max-context must be at least 1"));
        }
        return Ok((g, ctx));
    }
    let file = match &args.models {
        Some(f) => f.clone(),
        None => scenarios_dir(args.scenarios_dir.as_deref()).join("models.toml"),
    };
    let presets = ModelPresets::load(&file).map_err(|e| CliError::input(e.to_string()))?;
    let name = args.model.as_deref().unwrap_or("qwen2.5-0.5b");
    let preset = presets.get(name).ok_or_else(|| {
        CliError::input(format!(
            "--model '{name}' is not a preset in {}; known: {}",
            file.display(),
            presets.names()
        ))
    })?;
    Ok((preset.geometry.clone(), preset.max_context))
}

/// The formats `--kv-dtype` names.
fn formats(text: &str) -> Result<Vec<KvFormat>, CliError> {
    let lower = text.to_ascii_lowercase();
    if lower == "all" {
        return Ok(KvFormat::ALL.to_vec());
    }
    KvFormat::parse(&lower).map(|f| vec![f]).ok_or_else(|| {
        CliError::input(format!(
            "--kv-dtype '{text}' is not a KV format; use one of {} or all",
            KvFormat::names()
        ))
    })
}

/// The production configurations to place, if the scenarios directory has them; a broken
/// file there is bad input like any other.
fn markers(args: &PlanArgs) -> Result<Vec<MarkerInput>, CliError> {
    let dir = scenarios_dir(args.scenarios_dir.as_deref());
    if !dir.join("production").is_dir() {
        return Ok(Vec::new());
    }
    let set = ScenarioSet::Production.load(&dir)?;
    Ok(set
        .iter()
        .map(|s| MarkerInput {
            label: s.scenario.name.clone(),
            batch: s.scenario.batch_size,
            seq_len: s.scenario.sequence_length,
            concurrency: s.scenario.concurrency,
            generation: s.scenario.generation_length,
            budget_bytes: Some(s.budget_bytes()),
        })
        .collect())
}

/// Checks the flags and builds one plan input per format.
fn inputs(args: &PlanArgs) -> Result<Vec<PlanInput>, CliError> {
    if !(args.budget.is_finite() && args.budget > 0.0 && args.budget < 1e6) {
        return Err(CliError::input(format!(
            "--budget {} is not a size in GiB; give a positive number like 24 or 80",
            args.budget
        )));
    }
    if !pagekv::cache::SUPPORTED_BLOCK_SIZES.contains(&args.block_size) {
        return Err(CliError::input(format!(
            "--block-size {} is not supported; use one of {:?}",
            args.block_size,
            pagekv::cache::SUPPORTED_BLOCK_SIZES
        )));
    }
    let (geometry, max_context) = model(args)?;
    if args.seq == 0 || args.seq > max_context {
        return Err(CliError::input(format!(
            "--seq {} must be between 1 and the model's context, {max_context}",
            args.seq
        )));
    }
    if let Some(w) = args.window
        && (w == 0 || w > max_context)
    {
        return Err(CliError::input(format!(
            "--window {w} must be between 1 and the model's context, {max_context}"
        )));
    }
    let budget_bytes = (args.budget * BYTES_PER_GB as f64) as u64;
    Ok(formats(&args.kv_dtype)?
        .into_iter()
        .map(|format| PlanInput {
            geometry: geometry.clone(),
            max_context,
            format,
            block_size: args.block_size,
            window: args.window,
            generation: args.generation,
            budget_bytes,
            concurrency_seq: args.seq,
        })
        .collect())
}

/// Computes and prints the plans, and runs `--validate`.
pub fn run(global: &GlobalArgs, args: &PlanArgs) -> Result<(), CliError> {
    let inputs = inputs(args)?;
    let markers = markers(args)?;
    let plans: Vec<Plan> = inputs.iter().map(|i| i.plan(&markers)).collect();
    let validation = if args.validate {
        Some(validate(global, args, &inputs)?)
    } else {
        None
    };
    if args.json {
        let out = JsonOut {
            plans: &plans,
            validation: validation.as_ref(),
        };
        let text = serde_json::to_string_pretty(&out)
            .map_err(|e| CliError::failed(format!("cannot write JSON: {e}")))?;
        println!("{text}");
    } else {
        for plan in &plans {
            print_plan(plan);
        }
        if let Some(v) = &validation {
            print_validation(v, &inputs[0]);
        }
    }
    match &validation {
        Some(v) if v.points.iter().any(|p| !p.contradictions.is_empty()) => {
            let why: Vec<String> = v
                .points
                .iter()
                .flat_map(|p| {
                    p.contradictions
                        .iter()
                        .map(move |c| format!("{:?}: {c}", p.kind))
                })
                .collect();
            Err(CliError::failed(format!(
                "the run contradicts the plan: {}",
                why.join("; ")
            )))
        }
        _ => Ok(()),
    }
}

fn print_plan(plan: &Plan) {
    println!("{}\n", plan_table::header(plan));
    println!(
        "Largest batch per sequence length (requests resident at once; use % of the budget in \
         brackets); the reference's safe max beside the 100% batch, its recommended beside the \
         60% batch"
    );
    println!("{}", plan_table::batch_table(plan));
    println!(
        "\nLargest concurrency per batch size at {} prompt tokens (streams of `batch` \
         requests); the last column is what the reference's concurrency would hold (it says \
         \"32GB\")",
        plan.input.concurrency_seq
    );
    println!("{}", plan_table::concurrency_table(plan));
    let notes = plan_table::marker_notes(plan);
    if !notes.is_empty() {
        println!(
            "\nProduction configurations (scenarios/production, their own generation length, \
             this plan's model, format and budget):"
        );
        for n in notes {
            println!("  {n}");
        }
    }
    println!();
}

fn validate(
    global: &GlobalArgs,
    args: &PlanArgs,
    inputs: &[PlanInput],
) -> Result<Validation, CliError> {
    if inputs.len() != 1 {
        return Err(CliError::input(
            "--validate runs one format; give --kv-dtype a single format, not all",
        ));
    }
    let input = &inputs[0];
    if input.window.is_some() {
        return Err(CliError::input(
            "--validate checks full attention only: a scaled window spans proportionally more \
             blocks and a windowed prefill holds more than its window while it runs; drop --window",
        ));
    }
    let preset = ScalePreset::by_name(&args.scale).ok_or_else(|| {
        let names: Vec<String> = ScalePreset::all().into_iter().map(|p| p.name).collect();
        CliError::input(format!(
            "--scale '{}' is not a preset; use one of {}",
            args.scale,
            names.join(", ")
        ))
    })?;
    let seq = args.row.unwrap_or(args.seq);
    if !input.sequences().contains(&seq) {
        return Err(CliError::input(format!(
            "--row {seq} is not a row of the plan; use one of {:?}",
            input.sequences()
        )));
    }
    let key = args.model.as_deref().unwrap_or(&input.geometry.name);
    let mut v = plan_validate::points(input, key, seq, &preset).map_err(|e| match e {
        ValidateError::NothingFits { .. } => CliError::input(format!("--row {seq}: {e}")),
        ValidateError::Engine(e) => CliError::failed(e.to_string()),
    })?;
    let ctx = global.open()?;
    if !args.json {
        eprintln!(
            "pagekv plan --validate: row {seq} at preset `{}` on {}",
            preset.name,
            ctx.describe()
        );
    }
    plan_validate::run(&ctx, &mut v).map_err(|e| CliError::failed(e.to_string()))?;
    Ok(v)
}

fn print_validation(v: &Validation, input: &PlanInput) {
    let f = v.factors;
    let full = input.pool_blocks() / input.blocks_per_request(v.seq_len).max(1);
    println!(
        "Validation of row {} on the engine (preset `{}`: tokens/{} requests/{} layers {}/{}; \
         the budget divided by the same product, so use % is kept; the token divisor is the \
         largest that keeps whole blocks). The plan's 100% batch is {full}; at this scale it \
         is the scaled boundary x {}. All requests arrive at t=0 and prefill in the first step.",
        v.seq_len, v.preset, f.tokens, f.requests, f.layers.0, f.layers.1, f.requests
    );
    if let Some(adapter) = &v.adapter {
        println!("adapter: {adapter}; peak use is measured, time is not reported");
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "point",
        "batch (full size)",
        "planned use % (full size)",
        "requests run",
        "planned use % (as run)",
        "measured peak use %",
        "preemptions",
        "max waiting",
        "verdict",
    ]);
    for p in &v.points {
        let m = p.measured.as_ref();
        let verdict = if p.contradictions.is_empty() {
            "agrees with the plan".to_string()
        } else {
            format!("CONTRADICTS: {}", p.contradictions.join("; "))
        };
        table.add_row(vec![
            Cell::new(format!("{:?}", p.kind).to_lowercase()),
            Cell::new(p.full_batch),
            Cell::new(format!("{:.2}", p.full_use_pct)),
            Cell::new(p.scaled.requests()),
            Cell::new(format!("{:.2}", p.planned_use_pct)),
            Cell::new(m.map_or("-".into(), |m| format!("{:.2}", m.peak_use_pct))),
            Cell::new(m.map_or("-".into(), |m| m.preemptions.to_string())),
            Cell::new(m.map_or("-".into(), |m| m.max_waiting.to_string())),
            Cell::new(verdict),
        ]);
    }
    for i in 1..8 {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("{table}");
}
