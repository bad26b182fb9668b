//! `pagekv verify --dump DIR`: each checked sequence and layer's Q, K, V and output as NumPy
//! files, with a manifest.json that says their shapes, the format and the causal rule, so
//! anyone can re-check a result with their own code. Every file is written through a
//! temporary file and a rename: an interrupted dump leaves whole files or none.

use super::CliError;
use super::verify::format_text;
use pagekv::gpu::GpuContext;
use pagekv::npy;
use pagekv::report::file::write_atomic;
use pagekv::verify::{VerifyCase, VerifyOutcome};
use std::path::Path;

/// Writes `outcome`'s tensor dumps for `case` into `dir` (created if missing), then the
/// manifest.
pub(super) fn write_dumps(
    dir: &Path,
    ctx: &GpuContext,
    case: &VerifyCase,
    outcome: &VerifyOutcome,
) -> Result<(), CliError> {
    let dumps = &outcome.dumps;
    let io = |path: &Path, e: std::io::Error| {
        CliError::input(format!("cannot write --dump file {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let g = &case.geometry;
    let (qh, kvh, hd) = (g.q_heads as usize, g.kv_heads as usize, g.head_dim as usize);
    let mut files = Vec::new();
    for d in dumps {
        let stem = format!("seq{}_layer{}", d.sequence, d.layer);
        let queries = d.q.len() / (qh * hd);
        let context = d.k.len() / (kvh * hd);
        let q_shape = [queries, qh, hd];
        let kv_shape = [context, kvh, hd];
        for (suffix, shape, data) in [
            ("q", q_shape, &d.q),
            ("k", kv_shape, &d.k),
            ("v", kv_shape, &d.v),
            ("out", q_shape, &d.out),
        ] {
            let path = dir.join(format!("{stem}_{suffix}.npy"));
            npy::write_f32(&path, &shape, data).map_err(|e| io(&path, e))?;
        }
        let scales_shape = [context, kvh, case.dtype.row_scales(g.head_dim) as usize];
        let mut scale_files = serde_json::Value::Null;
        if !d.k_scales.is_empty() {
            for (suffix, data) in [("k_scales", &d.k_scales), ("v_scales", &d.v_scales)] {
                let path = dir.join(format!("{stem}_{suffix}.npy"));
                npy::write_f32(&path, &scales_shape, data).map_err(|e| io(&path, e))?;
            }
            scale_files = serde_json::json!({
                "k": format!("{stem}_k_scales.npy"),
                "v": format!("{stem}_v_scales.npy"),
                "shape": scales_shape,
            });
        }
        files.push(serde_json::json!({
            "scales": scale_files,
            "sequence": d.sequence,
            "layer": d.layer,
            "context": context,
            "first_query": d.first_query,
            "queries": queries,
            "q": format!("{stem}_q.npy"),
            "k": format!("{stem}_k.npy"),
            "v": format!("{stem}_v.npy"),
            "out": format!("{stem}_out.npy"),
            "q_shape": q_shape,
            "kv_shape": kv_shape,
            "out_shape": q_shape,
        }));
    }
    let manifest = serde_json::json!({
        "adapter": ctx.describe(),
        "geometry": g,
        "layers_dumped": case.layers_run,
        "block_size": case.block_size,
        "kv_dtype": case.dtype.name(),
        "kv_format": {
            "name": case.dtype.name(),
            "value_bits": case.dtype.layout().value_bits,
            "scale_group": case.dtype.scale_group(g.head_dim),
            "scales_per_row": case.dtype.row_scales(g.head_dim),
            "row_bytes": case.dtype.row_bytes(g.head_dim),
            "description": format_text(case.dtype, g.head_dim),
        },
        "kv_data": case.data.name(),
        "attention_algorithm": outcome.algorithm.name(),
        "sliding_window": case.window,
        "file_dtype": "<f4 (little-endian f32, C order)",
        "scale": 1.0 / (g.head_dim as f64).sqrt(),
        "causal_rule": "query row i of a sequence sits at position first_query + i and attends keys 0..=first_query + i (with sliding_window W, only the last W of them: max(0, first_query + i + 1 - W)..=first_query + i); query head h reads KV head h / (q_heads / kv_heads); out = softmax((q . k) * scale) v",
        "kv_note": "k and v are read back from the device pool in logical token order and decoded: the values the kernels read (f16-rounded for f16; code x scale for the scaled formats, whose scales are in the *_scales.npy files, [context, kv_heads, scales_per_row], scale g covering values g*scale_group.. of a row)",
        "seed": case.seed,
        "contexts": case.contexts,
        "shared_prefix_tokens": case.shared_prefix_tokens,
        "files": files,
    });
    let path = dir.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CliError::failed(format!("could not encode manifest.json: {e}")))?;
    write_atomic(&path, (text + "\n").as_bytes()).map_err(|e| io(&path, e))?;
    println!(
        "dumped {} sequence-layer tensor sets to {}",
        dumps.len(),
        dir.display()
    );
    Ok(())
}
