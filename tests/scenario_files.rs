//! The real scenario files load with the report's numbers, bad files get one-sentence errors
//! naming file, key and problem, and scaling keeps demand % fixed.

#![cfg(feature = "tool")]

use std::path::{Path, PathBuf};

use pagekv::scenario::{
    LoadedScenario, ModelPresets, ReferenceStatus, ScalePreset, load_dir, load_scenario,
};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn all() -> Vec<LoadedScenario> {
    load_dir(scenarios_dir()).expect("the shipped scenarios load")
}

/// A fresh directory under the system temp dir, unique per test and process.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pagekv-scenarios-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const GOOD: &str = r#"
name = "Test"
model = "qwen2.5-0.5b"
batch_size = 32
sequence_length = 1024
concurrency = 1
generation_length = 128
shared_prefix_tokens = 256

[cache]
block_size = 16
kv_dtype = "f16"

[reference]
kv_peak_gb = 0.2
utilization_pct = 0.7
throughput_req_s = 50.5
hit_rate_pct = 90.0
evictions_pct = 0.0
status = "PASS"
budget_gb = 24
"#;

/// Writes `text` as `01-bad.toml` next to the real models file and returns the load error.
fn scenario_error(test: &str, text: &str) -> (PathBuf, String) {
    let dir = temp_dir(test);
    let path = dir.join("01-bad.toml");
    std::fs::write(&path, text).unwrap();
    let presets = ModelPresets::load(scenarios_dir().join("models.toml")).unwrap();
    let err = load_scenario(&path, &presets).expect_err("bad file must not load");
    let message = err.to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    (path, message)
}

/// Asserts the message is one line naming the file and containing every fragment.
fn assert_names(path: &Path, message: &str, fragments: &[&str]) {
    println!("{message}");
    assert!(!message.contains('\n'), "not one line: {message}");
    assert!(
        message.contains(&path.display().to_string()),
        "no file in: {message}"
    );
    for fragment in fragments {
        assert!(message.contains(fragment), "no {fragment:?} in: {message}");
    }
}

#[test]
fn the_eleven_report_scenarios_load() {
    let scenarios = all();
    let ids: Vec<u32> = scenarios.iter().map(|s| s.id).collect();
    assert_eq!(ids, (1..=11).collect::<Vec<_>>());
    // (model, batch, sequence, concurrency, generation) exactly as the report states them.
    let config = [
        ("qwen2.5-0.5b", 32, 1024, 1, 128),
        ("qwen2.5-0.5b", 64, 4096, 2, 256),
        ("qwen2.5-0.5b", 128, 8192, 4, 512),
        ("qwen2.5-0.5b", 256, 16384, 8, 512),
        ("qwen2.5-0.5b", 128, 32768, 2, 256),
        ("qwen2.5-0.5b", 512, 2048, 16, 128),
        ("qwen2.5-0.5b", 64, 8192, 4, 2048),
        ("qwen2.5-0.5b", 256, 16384, 8, 1024),
        ("qwen2.5-7b", 32, 4096, 2, 256),
        ("qwen2.5-7b", 16, 16384, 1, 512),
        ("qwen2.5-0.5b", 512, 32768, 16, 512),
    ];
    for (s, (model, batch, seq, conc, generation)) in scenarios.iter().zip(config) {
        let c = &s.scenario;
        let got = (c.model.as_str(), c.batch_size, c.sequence_length);
        assert_eq!(got, (model, batch, seq), "scenario {}", s.id);
        assert_eq!((c.concurrency, c.generation_length), (conc, generation));
        assert_eq!(c.shared_prefix_tokens, seq / 4, "25% of the prompt");
        assert_eq!(c.reference.budget_gb, 24.0);
        assert_eq!(s.geometry.name, model);
    }
    let s4 = &scenarios[3].scenario.reference;
    assert_eq!(s4.utilization_pct, 687.2);
    assert_eq!(s4.status, ReferenceStatus::Fail);
    assert_eq!(s4.status_note.as_deref(), Some("exceeds GPU memory"));
    let s11 = &scenarios[10].scenario.reference;
    assert_eq!(s11.kv_peak_gb, 1319.4);
    assert_eq!(s11.utilization_pct, 5497.6);
    assert_eq!(s11.evictions_pct, 98.0);
    assert_eq!(scenarios[4].scenario.reference.hit_rate_pct, 69.5);
    assert_eq!(
        scenarios[2].scenario.reference.status,
        ReferenceStatus::Pass
    );
    let passes = scenarios
        .iter()
        .filter(|s| s.scenario.reference.status == ReferenceStatus::Pass)
        .count();
    assert_eq!(passes, 6, "the report: 6 safe, 5 extreme");
    // Demand in bytes: scenario 11 is 8192 requests x 33280 tokens x 12288 bytes.
    assert_eq!(scenarios[10].demand_bytes(), 8192 * 33280 * 12288);
}

#[test]
fn unknown_key_names_file_and_key() {
    let text = GOOD.replace("concurrency = 1", "concurrency = 1\nconcurency = 2");
    let (path, message) = scenario_error("unknown-key", &text);
    assert_names(&path, &message, &["unknown key", "`concurency`", "line 7"]);
    let text = GOOD.replace("block_size = 16", "block_size = 16\npage = 4");
    let (path, message) = scenario_error("unknown-cache-key", &text);
    assert_names(&path, &message, &["unknown key", "`page`", "[cache]"]);
}

#[test]
fn missing_field_names_file_and_key() {
    let text = GOOD.replace("batch_size = 32\n", "");
    let (path, message) = scenario_error("missing", &text);
    assert_names(&path, &message, &["missing key", "`batch_size`"]);
    let text = GOOD.replace("evictions_pct = 0.0\n", "");
    let (path, message) = scenario_error("missing-reference", &text);
    assert_names(
        &path,
        &message,
        &["missing key", "`evictions_pct`", "[reference]"],
    );
}

#[test]
fn zero_and_negative_sizes_are_not_positive() {
    let text = GOOD.replace("batch_size = 32", "batch_size = 0");
    let (path, message) = scenario_error("zero", &text);
    assert_names(
        &path,
        &message,
        &["`batch_size`", "is 0", "positive integer"],
    );
    let text = GOOD.replace("sequence_length = 1024", "sequence_length = -4");
    let (path, message) = scenario_error("negative", &text);
    assert_names(
        &path,
        &message,
        &["`sequence_length`", "is -4", "positive integer"],
    );
}

#[test]
fn wrong_type_names_the_key() {
    let text = GOOD.replace("concurrency = 1", "concurrency = \"one\"");
    let (path, message) = scenario_error("type", &text);
    assert_names(&path, &message, &["`concurrency`", "line 6"]);
}

#[test]
fn unknown_model_lists_the_presets() {
    let text = GOOD.replace("\"qwen2.5-0.5b\"", "\"llama-3-8b\"");
    let (path, message) = scenario_error("model", &text);
    assert_names(&path, &message, &["`model`", "llama-3-8b", "qwen2.5-7b"]);
}

#[test]
fn bad_cache_options_name_the_table() {
    let text = GOOD.replace("block_size = 16", "block_size = 12");
    let (path, message) = scenario_error("block", &text);
    assert_names(
        &path,
        &message,
        &["`[cache] block_size`", "is 12", "[8, 16, 32]"],
    );
    let text = GOOD.replace("\"f16\"", "\"int3\"");
    let (path, message) = scenario_error("dtype", &text);
    assert_names(&path, &message, &["`[cache] kv_dtype`", "int3", "f16"]);
}

#[test]
fn prefix_and_model_limits_are_checked() {
    let text = GOOD.replace("shared_prefix_tokens = 256", "shared_prefix_tokens = 2000");
    let (path, message) = scenario_error("prefix", &text);
    assert_names(&path, &message, &["`shared_prefix_tokens`", "2000", "1024"]);
    let text = GOOD.replace("sequence_length = 1024", "sequence_length = 40000");
    let (path, message) = scenario_error("context", &text);
    assert_names(
        &path,
        &message,
        &["`sequence_length`", "max_context", "32768"],
    );
    let text = GOOD.replace("budget_gb = 24", "budget_gb = 0");
    let (path, message) = scenario_error("budget", &text);
    assert_names(&path, &message, &["`[reference] budget_gb`", "above 0"]);
}

#[test]
fn sliding_windows_are_positive_and_within_the_context() {
    let windowed = |w: &str| {
        GOOD.replace(
            "kv_dtype = \"f16\"",
            &format!("kv_dtype = \"f16\"\nsliding_window = {w}"),
        )
    };
    let (path, message) = scenario_error("window0", &windowed("0"));
    assert_names(
        &path,
        &message,
        &["`[cache] sliding_window`", "is 0", "positive"],
    );
    let (path, message) = scenario_error("window-big", &windowed("40000"));
    assert_names(
        &path,
        &message,
        &["`[cache] sliding_window`", "40000", "max_context", "32768"],
    );
    // A valid window holds demand to the window's tokens, and scales like every token count.
    let mut s = all().into_iter().find(|s| s.id == 5).unwrap();
    let full = s.demand_pct();
    let baseline = s.scale(&ScalePreset::by_name("long").unwrap()).factors;
    s.set_sliding_window(Some(2048)).unwrap();
    let per_request = s.scenario.tokens_per_request() as f64;
    assert!((s.demand_pct() - full * 2048.0 / per_request).abs() < 1e-9);
    let scaled = s.scale(&ScalePreset::by_name("default").unwrap());
    assert_eq!(
        scaled.sliding_window,
        Some(2048u32.div_ceil(scaled.factors.tokens))
    );
    assert_eq!(scaled.max_context, 32768 / scaled.factors.tokens);
    // Remedies run the same scaled workload as the baseline: factors ignore format and window.
    s.scenario.cache.kv_dtype = pagekv::KvFormat::Int4;
    assert_eq!(
        s.scale(&ScalePreset::by_name("long").unwrap()).factors,
        baseline
    );
    let message = s.set_sliding_window(Some(0)).unwrap_err().to_string();
    assert!(message.contains("positive"), "{message}");
    let message = s.set_sliding_window(Some(32769)).unwrap_err().to_string();
    assert!(message.contains("max_context of 32768"), "{message}");
}

#[test]
fn file_names_must_carry_the_scenario_number() {
    let dir = temp_dir("name");
    let path = dir.join("short.toml");
    std::fs::write(&path, GOOD).unwrap();
    let presets = ModelPresets::load(scenarios_dir().join("models.toml")).unwrap();
    let message = load_scenario(&path, &presets).unwrap_err().to_string();
    assert_names(&path, &message, &["scenario number"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn models_file_errors_name_the_preset() {
    let dir = temp_dir("models");
    let path = dir.join("models.toml");
    let text = "[\"odd\"]\nlayers = 2\nq_heads = 14\nkv_heads = 4\nhead_dim = 64\n\
                max_context = 4096\nmax_generation = 1024\n";
    std::fs::write(&path, text).unwrap();
    let message = ModelPresets::load(&path).unwrap_err().to_string();
    assert_names(&path, &message, &["`odd`", "q_heads (14)", "kv_heads (4)"]);
    std::fs::write(&path, text.replace("layers = 2", "layers = -1")).unwrap();
    let message = ModelPresets::load(&path).unwrap_err().to_string();
    assert_names(&path, &message, &["`[odd] layers`", "positive integer"]);
    std::fs::write(&path, text.replace("layers = 2", "layer = 2")).unwrap();
    let message = ModelPresets::load(&path).unwrap_err().to_string();
    assert_names(&path, &message, &["[odd]", "unknown key", "`layer`"]);
    // A whole directory fails on its models file before any scenario.
    std::fs::write(dir.join("01-good.toml"), GOOD).unwrap();
    let message = load_dir(&dir).unwrap_err().to_string();
    assert_names(&path, &message, &["`layer`"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn presets_exist_and_full_is_unscaled() {
    let names: Vec<String> = ScalePreset::all().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["ci", "default", "long", "full"]);
    assert!(ScalePreset::by_name("nope").is_none());
    let full = ScalePreset::by_name("full").unwrap();
    for s in all() {
        let scaled = s.scale(&full);
        assert!(scaled.factors.is_full(), "scenario {}", s.id);
        assert_eq!(scaled.budget_bytes, 24 << 30);
        assert_eq!(scaled.demand_bytes(), s.demand_bytes());
        assert_eq!(scaled.shared_prefix_tokens, s.scenario.shared_prefix_tokens);
    }
}

#[test]
fn scaling_keeps_demand_percent_and_caps() {
    println!(
        "scenario  preset   factors                         streams x per_stream  prompt+gen prefix  budget      demand%   fit"
    );
    for preset in ScalePreset::all() {
        for s in all() {
            let scaled = s.scale(&preset);
            let f = scaled.factors;
            let c = &s.scenario;
            println!(
                "{:>8}  {:<7}  {:<30}  {:>7} x {:<10}  {:>6}+{:<4} {:>6}  {:>10}  {:>8.1}  {}",
                s.id,
                preset.name,
                f.to_string(),
                scaled.streams,
                scaled.requests_per_stream,
                scaled.prompt_tokens,
                scaled.generation_tokens,
                scaled.shared_prefix_tokens,
                scaled.budget_bytes,
                scaled.demand_pct(),
                scaled.sequences_that_fit(),
            );
            // The request cap yields only to keep `min_resident` requests in the pool.
            let full_fit = s
                .scale(&ScalePreset::by_name("full").unwrap())
                .sequences_that_fit();
            let floor = full_fit.min(preset.min_resident as u64);
            assert!(scaled.sequences_that_fit() >= floor, "scenario {}", s.id);
            // Over the cap only where halving the pool again would break the floor.
            assert!(
                scaled.requests() <= preset.max_requests as u64
                    || scaled.sequences_that_fit() / 2 < floor + 1,
                "scenario {}: {} requests",
                s.id,
                scaled.requests()
            );
            // The token cap yields only to keep one whole generated token.
            assert!(
                scaled.tokens_per_request() <= preset.max_tokens_per_sequence as u64
                    || scaled.generation_tokens as u64 * 2
                        > c.generation_length as u64 / f.tokens as u64,
                "scenario {}",
                s.id
            );
            assert!(scaled.layers_run <= preset.layers_run);
            assert!(f.tokens.is_power_of_two() && f.requests.is_power_of_two());
            // Rounding (see scenario::scale): exact when factors divide the counts evenly.
            let even = c.sequence_length.is_multiple_of(f.tokens)
                && c.generation_length.is_multiple_of(f.tokens)
                && s.scenario.requests().is_multiple_of(f.requests as u64);
            assert!(even, "report sizes are powers of two: scenario {}", s.id);
            let (full, small) = (s.demand_pct(), scaled.demand_pct());
            assert!(
                ((small - full) / full).abs() < 0.01,
                "scenario {} at {}: {small} vs {full}",
                s.id,
                preset.name
            );
        }
    }
}
