//! The `pagekv` binary end to end: exit statuses, one-sentence errors, `devices`, `verify`
//! (including `--dump` files re-checked against the CPU reference), `shaders`, and a smoke
//! run of `bench` writing its JSON.
//!
//! Tests that need a GPU fail when no adapter exists, unless PAGEKV_ALLOW_NO_GPU=1 skips them.

#![cfg(feature = "tool")]

use pagekv::npy;
use pagekv::reference::{self, AttentionShape, Tolerance};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::cli::{have_gpu, pagekv, pagekv_ok, stderr_lines, stdout};

/// A fresh directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pagekv-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn devices_lists_adapters_or_says_what_to_install() {
    let out = pagekv(&["devices"]);
    if have_gpu("devices") {
        assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
        let text = stdout(&out);
        assert!(text.contains("(default)"), "{text}");
        for field in ["backend", "max storage binding", "SHADER_F16"] {
            assert!(text.contains(field), "missing {field}: {text}");
        }
    } else {
        assert_eq!(out.status.code(), Some(2));
        let err = stderr_lines(&out);
        assert_eq!(err.len(), 1, "{err:?}");
        assert!(err[0].contains("mesa-vulkan-drivers"), "{err:?}");
    }
}

#[test]
fn devices_json_parses() {
    if !have_gpu("devices_json_parses") {
        return;
    }
    let out = pagekv(&["devices", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let list = value.as_array().expect("a JSON array");
    assert!(!list.is_empty());
    let defaults = list.iter().filter(|d| d["default"] == true).count();
    assert_eq!(defaults, 1);
    for d in list {
        assert!(d["name"].is_string() && d["backend"].is_string());
        assert!(d["vendor_hex"].as_str().unwrap().starts_with("0x"));
        assert!(d["capabilities"]["max_storage_binding"].as_u64().unwrap() > 0);
    }
}

#[test]
fn bad_input_is_one_sentence_with_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "verify",
                "--q-heads",
                "14",
                "--kv-heads",
                "2",
                "--head-dim",
                "72",
            ],
            "--head-dim",
        ),
        (
            &[
                "verify",
                "--kv-heads",
                "3",
                "--q-heads",
                "14",
                "--head-dim",
                "64",
            ],
            "--kv-heads",
        ),
        (&["verify", "--dtype", "f8"], "--dtype"),
        (&["verify", "--dtype", "f16,int3"], "--dtype 'int3'"),
        (&["verify", "--data", "spiky"], "--data"),
        (&["run", "--kv-dtype", "int3"], "--kv-dtype"),
        (&["formats", "--budget", "-3"], "--budget"),
        (&["verify", "--block-size", "12"], "--block-size"),
        (&["verify", "--preset", "llama-70b"], "--preset"),
        (&["verify", "--context", "1,x"], "--context"),
        (&["verify", "--block-size", "twelve"], "--block-size"),
        (&["verify", "--algorithm", "fastest"], "--algorithm"),
        (
            // 64 prompts of 131071 tokens appended in one step, 8 x 256 f32 keys a token, 69 GB:
            // past any adapter's largest binding, refused before any data is made.
            &[
                "verify",
                "--q-heads",
                "64",
                "--kv-heads",
                "8",
                "--head-dim",
                "256",
                "--context",
                "131072",
                "--batch",
                "64",
                "--chunk",
                "0",
                "--decode-only",
            ],
            "--chunk",
        ),
        (
            // 256 sequences of 128K tokens: over 500 GiB of host data and pool, refused before
            // any of it is made.
            &[
                "verify",
                "--preset",
                "qwen2.5-7b",
                "--context",
                "131072",
                "--batch",
                "256",
                "--chunk",
                "16",
                "--decode-only",
            ],
            "of host memory",
        ),
        (&["bench", "--algorithm", "gpu"], "--algorithm"),
        (&["--backend", "cuda", "devices"], "--backend"),
        (&["--backend", "cuda"], "--backend"),
        (&["--scale", "huge"], "--scale"),
        (&["--quiet", "bench"], "--quiet is a flag of `run`"),
        (&["shaders", "--frobnicate"], "--frobnicate"),
        (&["bench", "--only", "decode,frob"], "--only frob"),
        (&["bench", "--max-pool-gib", "0"], "--max-pool-gib"),
        (
            &["bench", "--long-context", "--only", "decode"],
            "--long-context",
        ),
        (
            &["bench", "--json", "/nonexistent-pagekv-dir/b.json"],
            "--json",
        ),
        (&["bench", "--json", "/tmp"], "--json"),
        // Checked before the scenarios run, not when the first results are written.
        (
            &["run", "--out", "/nonexistent-pagekv-dir/r.json"],
            "--out /nonexistent-pagekv-dir/r.json: the folder",
        ),
        (&["run", "--max-running", "0"], "--max-running must be"),
        (
            &["bench", "--quick", "--case", "batch 999"],
            "--case batch 999",
        ),
        (
            &["bench", "--long-context", "--case", "batch 999"],
            "--case batch 999 matches no curve",
        ),
    ];
    for (args, flag) in cases {
        let out = pagekv(args);
        let err = stderr_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err:?}");
        assert_eq!(err.len(), 1, "{args:?} should print one line: {err:?}");
        assert!(err[0].contains(flag), "{args:?}: {err:?}");
        let lower = err[0].to_lowercase();
        assert!(!lower.contains("panicked") && !lower.contains("backtrace"));
    }
}

/// A reader that goes away (`pagekv formats | head -1`) ends pagekv quietly, as it would any
/// Unix tool, not with a panic about printing to stdout.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagekv"))
        .arg("formats")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pagekv");
    // Closed before the process has started up, so its first print meets a closed pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for pagekv");
    let err = stderr_lines(&out);
    assert!(err.is_empty(), "{err:?}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

/// `bench --quick --only host` (the rooflines and the host section, a few seconds on lavapipe)
/// with `extra` arguments, which must succeed: its stdout and the JSON file it wrote to `path`
/// (whose folder it creates).
fn bench_host_section(path: &Path, extra: &[&str]) -> (String, serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut args = vec![
        "bench",
        "--quick",
        "--only",
        "host",
        "--json",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = pagekv(&args);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let report = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (stdout(&out), report)
}

/// A smoke run of the bench (the rooflines and the host section, a few seconds on lavapipe):
/// the JSON file holds every figure with a ratio, a finished run says it is complete, and the
/// copy roofline is measured at both ends. No speed is asserted.
#[test]
fn bench_writes_complete_json_with_rooflines_at_both_ends() {
    if !have_gpu("bench_writes_complete_json_with_rooflines_at_both_ends") {
        return;
    }
    let dir = TempDir::new("bench");
    let path = dir.0.join("bench.json");
    let (text, report) = bench_host_section(&path, &[]);
    assert!(text.contains("copy roofline again at the end"), "{text}");
    // A CPU adapter's output says why its compute-bound cases stop near half of their bound.
    assert_eq!(
        text.contains("cpu adapter: texel fetches and arithmetic run on the same cores"),
        report["adapter"]["device_type"] == "Cpu",
        "{text}"
    );
    assert_eq!(report["format"], "pagekv-bench");
    assert_eq!(report["complete"], true);
    // The half-float conversion the adapter's attention kernels use is recorded and printed:
    // integer code on llvmpipe's GL, the built-in everywhere else.
    let llvmpipe_gl =
        report["adapter"]["backend"] == "Gl" && report["adapter"]["device_type"] == "Cpu";
    let (want, printed) = if llvmpipe_gl {
        (
            "integer",
            "f16 halves converted by integer code (auto: llvmpipe's GL)",
        )
    } else {
        ("builtin", "f16 halves converted by unpack2x16float (auto)")
    };
    assert_eq!(report["half_decode"], want);
    assert_eq!(report["half_decode_forced"], false);
    assert!(text.contains(printed), "{text}");
    assert!(report["copy_bytes_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["copy_end_bytes_per_s"].as_f64().unwrap() > 0.0);
    for end in [
        "buffer_read_end_bytes_per_s",
        "texture_read_end_bytes_per_s",
    ] {
        assert!(report[end].as_f64().unwrap() > 0.0, "{end}");
    }
    assert!(text.contains("read rooflines again at the end: "), "{text}");
    // The yardstick is timed again too, and the compute bounds use the faster reading.
    let (start, end) = (
        report["matmul_flops"].as_f64().unwrap(),
        report["matmul_end_flops"].as_f64().unwrap(),
    );
    assert!(end > 0.0);
    assert!(
        text.contains(&format!(
            "every compute bound uses the faster ({:.2} GFLOP/s)",
            start.max(end) / 1e9
        )),
        "{text}"
    );
    assert_eq!(report["bounds_use_faster_read"], true);
    assert!(
        text.contains("every bound uses the faster reading of each ("),
        "{text}"
    );
    let sections: Vec<&str> = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["section"].as_str().unwrap())
        .collect();
    // The bounds' streaming reads, then the writes; the smaller working sets are a line.
    let mut want = vec!["copy"; 5];
    want.extend(["matmul", "host", "host", "host"]);
    assert_eq!(sections, want);
    let cases: Vec<&str> = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["case"].as_str().unwrap())
        .collect();
    let mut prefixes = vec!["buffer read of", "texture read of"];
    let working_sets = report["working_sets"].as_array().unwrap();
    if !working_sets.is_empty() {
        assert_eq!(working_sets[0]["bytes"], 1 << 20);
        assert!(
            text.contains("rooflines by working set, GB/s (buffer read / texture read / buffer write / texture write): 1.0 MiB "),
            "{text}"
        );
    }
    prefixes.extend(["buffer write of", "texture write of"]);
    for (case, prefix) in cases[1..].iter().zip(prefixes) {
        assert!(case.starts_with(prefix), "{cases:?}");
    }
    assert!(report["texture_write_bytes_per_s"].as_f64().unwrap() > 0.0);
    assert!(text.contains(", write "), "{text}");
    let pool = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"].as_str().unwrap().starts_with("block pool"))
        .expect("the block pool target is judged");
    assert!(pool["met"].is_boolean(), "{pool}");

    // Two bench reports compare row by row, each figure beside its own roofline ratio.
    let out = pagekv(&["compare", path.to_str().unwrap(), path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let text = stdout(&out);
    for needle in [
        "A of roofline",
        "B / A",
        "block pool allocate+free pairs",
        "x1.00",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
}

#[test]
fn verify_passes_and_prints_a_table() {
    if !have_gpu("verify_passes_and_prints_a_table") {
        return;
    }
    let text = pagekv_ok(&[
        "verify",
        "--preset",
        "qwen2.5-0.5b",
        "--context",
        "1,33",
        "--dtype",
        "f32",
    ]);
    assert!(text.contains("PASS"), "{text}");
    for row in [
        "decode max error",
        "prefill max error",
        "tolerance",
        "variants",
    ] {
        assert!(text.contains(row), "missing {row}: {text}");
    }
}

/// `verify` of a small custom shape (4 query heads on 2 KV heads of head dim 64, contexts 1
/// and 33) with `extra` arguments, which must pass: its stdout.
fn verify_small(extra: &[&str]) -> String {
    let mut args = vec![
        "verify",
        "--q-heads",
        "4",
        "--kv-heads",
        "2",
        "--head-dim",
        "64",
        "--context",
        "1,33",
    ];
    args.extend_from_slice(extra);
    pagekv_ok(&args)
}

/// `--algorithm` forces either attention path on any adapter, and the output says which ran.
#[test]
fn verify_algorithm_forces_either_path_and_says_which_ran() {
    if !have_gpu("verify_algorithm_forces_either_path_and_says_which_ran") {
        return;
    }
    for (algorithm, variant) in [("tiled", "decode_"), ("flat", "flat_")] {
        let text = verify_small(&["--algorithm", algorithm]);
        let line = format!("attention: {algorithm} (forced by --algorithm)");
        assert!(text.contains(&line), "missing {line}: {text}");
        // The header line and the case table's attention row.
        assert!(
            text.matches(&format!("{algorithm} (forced by --algorithm)"))
                .count()
                >= 2,
            "{text}"
        );
        assert!(text.contains(variant), "no {variant} variant: {text}");
    }
}

/// `--half-decode` forces either f16 conversion on any adapter: verify still matches the
/// reference, says the form was forced, and builds the integer form's variants (`_ih`) only
/// when asked for it.
#[test]
fn verify_half_decode_forces_either_conversion_and_says_which_ran() {
    if !have_gpu("verify_half_decode_forces_either_conversion_and_says_which_ran") {
        return;
    }
    for (form, printed) in [("builtin", "unpack2x16float"), ("integer", "integer code")] {
        let text = verify_small(&["--half-decode", form, "--dtype", "f16"]);
        assert!(text.contains("PASS"), "{text}");
        let line = format!("f16 halves: converted by {printed} (forced by --half-decode)");
        assert!(text.contains(&line), "missing {line}: {text}");
        assert_eq!(text.contains("_ih"), form == "integer", "{text}");
    }
}

/// A forced conversion is recorded in the bench JSON as forced, and the header says so.
#[test]
fn bench_records_a_forced_half_decode() {
    if !have_gpu("bench_records_a_forced_half_decode") {
        return;
    }
    let dir = TempDir::new("bench-half");
    let (text, report) =
        bench_host_section(&dir.0.join("bench.json"), &["--half-decode", "integer"]);
    assert!(
        text.contains("f16 halves converted by integer code (forced by --half-decode)"),
        "{text}"
    );
    assert_eq!(report["half_decode"], "integer");
    assert_eq!(report["half_decode_forced"], true);
}

fn check_dump(dir: &Path, sequences: usize) {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let g = &manifest["geometry"];
    let (qh, kvh, hd) = (
        g["q_heads"].as_u64().unwrap() as usize,
        g["kv_heads"].as_u64().unwrap() as usize,
        g["head_dim"].as_u64().unwrap() as usize,
    );
    let scale = manifest["scale"].as_f64().unwrap();
    assert!((scale - 1.0 / (hd as f64).sqrt()).abs() < 1e-12);
    let files = manifest["files"].as_array().unwrap();
    // Two layers are checked (and dumped) by default.
    assert_eq!(files.len(), sequences * 2);
    for f in files {
        let read = |key: &str| npy::read_f32(&dir.join(f[key].as_str().unwrap())).unwrap();
        let (q_shape, q) = read("q");
        let (k_shape, k) = read("k");
        let (v_shape, v) = read("v");
        let (o_shape, out) = read("out");
        let context = f["context"].as_u64().unwrap() as usize;
        let first = f["first_query"].as_u64().unwrap() as usize;
        let queries = context - first;
        assert_eq!(q_shape, vec![queries, qh, hd]);
        assert_eq!(o_shape, vec![queries, qh, hd]);
        assert_eq!(k_shape, vec![context, kvh, hd]);
        assert_eq!(v_shape, vec![context, kvh, hd]);
        // The files alone are enough to recompute the result with the documented rule.
        let shape = AttentionShape {
            q_heads: qh,
            kv_heads: kvh,
            head_dim: hd,
            num_queries: queries,
            num_keys: context,
        };
        let want = reference::attention(&q, &k, &v, shape).unwrap();
        let tol = Tolerance::for_format(pagekv::KvFormat::F16);
        let (stats, ok) = reference::check(&out, &want, tol);
        assert!(ok, "{}: {stats:?}", f["out"]);
        // A scaled format's scales: one per group of each row, and every dumped value is a
        // whole number of its scale's steps (k = code x scale).
        let format = &manifest["kv_format"];
        if let Some(group) = format["scale_group"].as_u64() {
            let per_row = format["scales_per_row"].as_u64().unwrap() as usize;
            let scales = &f["scales"];
            let (shape, k_scales) =
                npy::read_f32(&dir.join(scales["k"].as_str().unwrap())).unwrap();
            assert_eq!(shape, vec![context, kvh, per_row]);
            for (i, &x) in k.iter().enumerate() {
                let row = i / hd;
                let scale = k_scales[row * per_row + (i % hd) / group as usize];
                let steps = x / scale;
                assert!((steps - steps.round()).abs() < 1e-3, "{x} / {scale}");
            }
        }
    }
}

#[test]
fn verify_dump_writes_npy_files_with_documented_shapes() {
    if !have_gpu("verify_dump_writes_npy_files_with_documented_shapes") {
        return;
    }
    let dir = TempDir::new("dump");
    let out = pagekv(&[
        "verify",
        "--preset",
        "qwen2.5-0.5b",
        "--context",
        "1,20",
        "--batch",
        "2",
        "--dtype",
        "f16",
        "--dump",
        dir.0.to_str().unwrap(),
    ]);
    // --batch 2 repeats the list: contexts 1, 20, 1, 20.
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    check_dump(&dir.0, 4);

    let help = stdout(&pagekv(&["verify", "--help"]));
    assert!(help.contains("[queries, q_heads, head_dim]"), "{help}");
    assert!(help.contains("[context, kv_heads, head_dim]"), "{help}");
}

/// `formats` needs no GPU: the memory arithmetic, the claims and the CPU study.
#[test]
fn formats_prints_capacity_claims_and_the_study() {
    let out = pagekv(&["formats", "--study"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let text = stdout(&out);
    for needle in [
        "fp8-e5m2",
        "INT8 quantization: 50% memory reduction",
        "43.8% less than f16",
        "int4, per 32, Hadamard K",
        "int8, scale per 32 *",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn verify_dump_of_int8_writes_dequantized_values_and_scales() {
    if !have_gpu("verify_dump_of_int8_writes_dequantized_values_and_scales") {
        return;
    }
    let dir = TempDir::new("dump-int8");
    let out = pagekv(&[
        "verify",
        "--preset",
        "qwen2.5-0.5b",
        "--context",
        "3,40",
        "--dtype",
        "int8",
        "--dump",
        dir.0.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    for row in ["output vs exact", "K vs exact", "min cosine"] {
        assert!(text.contains(row), "{row}: {text}");
    }
    check_dump(&dir.0, 2);
    let manifest = std::fs::read_to_string(dir.0.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"scale_group\": 32"), "{manifest}");
}

#[test]
fn verify_dump_with_shared_prefix_offsets_queries() {
    if !have_gpu("verify_dump_with_shared_prefix_offsets_queries") {
        return;
    }
    let dir = TempDir::new("dump-shared");
    let out = pagekv(&[
        "verify",
        "--preset",
        "qwen2.5-0.5b",
        "--context",
        "20",
        "--batch",
        "2",
        "--shared-prefix",
        "5",
        "--dtype",
        "f16",
        "--dump",
        dir.0.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let firsts = dumped_first_queries(&dir.0);
    assert_eq!(firsts, vec![0, 0, 5, 5]);
    let (shape, _) = npy::read_f32(&dir.0.join("seq1_layer0_q.npy")).unwrap();
    assert_eq!(shape, vec![15, 14, 64]);
}

/// Each dumped sequence-layer's `first_query`, in manifest order.
fn dumped_first_queries(dir: &Path) -> Vec<u64> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["first_query"].as_u64().unwrap())
        .collect()
}

/// `--decode-only` holds and dumps only the decode row of each sequence: the prompt's queries
/// are never made, and the files still recompute the decode output.
#[test]
fn verify_dump_with_decode_only_holds_the_decode_rows() {
    if !have_gpu("verify_dump_with_decode_only_holds_the_decode_rows") {
        return;
    }
    let dir = TempDir::new("dump-decode-only");
    let out = pagekv(&[
        "verify",
        "--preset",
        "qwen2.5-0.5b",
        "--context",
        "40,17",
        "--shared-prefix",
        "9",
        "--decode-only",
        "--dump",
        dir.0.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    check_dump(&dir.0, 2);
    let firsts = dumped_first_queries(&dir.0);
    assert_eq!(firsts, vec![39, 39, 16, 16]);
}

#[test]
fn shaders_emit_writes_standalone_wgsl() {
    let dir = TempDir::new("emit");
    let out = pagekv(&["shaders", "--emit", dir.0.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("wgsl"));
        let source = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = naga::front::wgsl::parse_str(&source) {
            panic!("{}: {}", path.display(), e.emit_to_string(&source));
        }
        count += 1;
    }
    assert!(count >= 40, "only {count} variants emitted");
    assert_eq!(count, pagekv::tool_kernels::all_modules().len());
    assert!(stdout(&out).contains(&format!("wrote {count} WGSL variants")));
}

#[test]
fn shaders_check_and_list_succeed() {
    let out = pagekv(&["shaders", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(stdout(&out).contains("spirv"));
    let out = pagekv(&["shaders", "--list"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).lines().count(),
        pagekv::tool_kernels::all_modules().len()
    );
}

/// `WGPU_BACKEND=metal` on Linux leaves wgpu with no adapter at all: the one-sentence
/// "what to install" message and status 2, for every GPU subcommand and the default run.
#[cfg(target_os = "linux")]
#[test]
fn no_adapter_says_what_to_install() {
    for args in [&["devices"][..], &["verify", "--context", "1"], &[]] {
        let out = Command::new(env!("CARGO_BIN_EXE_pagekv"))
            .args(args)
            .env("WGPU_BACKEND", "metal")
            .output()
            .expect("spawn pagekv");
        let err = stderr_lines(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err:?}");
        assert_eq!(err.len(), 1, "{args:?}: {err:?}");
        assert!(err[0].contains("mesa-vulkan-drivers"), "{err:?}");
    }
}

/// `--reductions subgroup` on an adapter without subgroups is refused in one sentence before
/// anything runs, by verify and bench alike (here: llvmpipe's GL adapter).
#[test]
fn forcing_subgroup_reductions_without_subgroups_is_one_sentence() {
    if !have_gpu("forcing_subgroup_reductions_without_subgroups_is_one_sentence") {
        return;
    }
    let Some(adapter) = pagekv::gpu::list_adapters()
        .into_iter()
        .find(|a| !a.capabilities.subgroup)
    else {
        eprintln!("every adapter here has subgroups: nothing to refuse");
        return;
    };
    let backend = adapter.backend.to_string();
    for command in [&["verify"][..], &["bench", "--quick"][..]] {
        let mut args = command.to_vec();
        args.extend([
            "--backend",
            &backend,
            "--adapter",
            &adapter.name,
            "--reductions",
            "subgroup",
        ]);
        let out = pagekv(&args);
        common::cli::assert_input_error(&out, &["--reductions subgroup", "--reductions serial"]);
    }
}
