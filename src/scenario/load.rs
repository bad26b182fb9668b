//! Reading and validating scenario files.
//!
//! Files are parsed into a raw, signed shape first so a wrong value gets a message about the
//! value ("must be a positive integer") instead of a serde type error, and every check names
//! the file and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{Problem, ScenarioError, parse_error};
use super::presets::{ModelPresets, positive_u32};
use super::{CacheOptions, LoadedScenario, ReferenceResult, Scenario};
use crate::cache::{KvFormat, SUPPORTED_BLOCK_SIZES};

/// The models file a scenario directory must contain.
const MODELS_FILE: &str = "models.toml";

/// A scenario file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    model: String,
    batch_size: i64,
    sequence_length: i64,
    concurrency: i64,
    generation_length: i64,
    shared_prefix_tokens: i64,
    #[serde(default)]
    cache: RawCache,
    reference: ReferenceResult,
}

/// The optional `[cache]` table as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    block_size: Option<i64>,
    kv_dtype: Option<String>,
    sliding_window: Option<i64>,
}

/// Loads every `NN-slug.toml` in `dir`, with presets from `dir/models.toml`, sorted by file
/// name (so by id). Any bad file fails the whole load: a suite that silently skips a scenario
/// would report on fewer scenarios than it claims.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<LoadedScenario>, ScenarioError> {
    let dir = dir.as_ref();
    let presets = ModelPresets::load(dir.join(MODELS_FILE))?;
    load_dir_with(dir, &presets)
}

/// Loads every `NN-slug.toml` in `dir` against presets loaded elsewhere: a set of scenario
/// files in a subfolder (`scenarios/production/`) shares its parent's models file rather than
/// keeping a copy that could drift.
pub fn load_dir_with(
    dir: impl AsRef<Path>,
    presets: &ModelPresets,
) -> Result<Vec<LoadedScenario>, ScenarioError> {
    let dir = dir.as_ref();
    let read_err = |source| ScenarioError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if is_toml && path.file_name().is_some_and(|n| n != MODELS_FILE) {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(ScenarioError::Empty {
            path: dir.to_path_buf(),
        });
    }
    let mut seen: BTreeMap<u32, PathBuf> = BTreeMap::new();
    let mut loaded = Vec::with_capacity(paths.len());
    for path in paths {
        let scenario = load_scenario(&path, presets)?;
        if let Some(other) = seen.insert(scenario.id, path.clone()) {
            return Err(ScenarioError::DuplicateId {
                path,
                other,
                id: scenario.id,
            });
        }
        loaded.push(scenario);
    }
    Ok(loaded)
}

/// Loads and validates one scenario file against `presets`. The id is the file name's number
/// prefix (`04-very-large.toml` is scenario 4).
pub fn load_scenario(
    path: impl AsRef<Path>,
    presets: &ModelPresets,
) -> Result<LoadedScenario, ScenarioError> {
    let path = path.as_ref().to_path_buf();
    let id = scenario_id(&path).ok_or_else(|| ScenarioError::FileName { path: path.clone() })?;
    let text = std::fs::read_to_string(&path).map_err(|source| ScenarioError::Read {
        path: path.clone(),
        source,
    })?;
    let raw: RawScenario =
        toml::from_str(&text).map_err(|e| parse_error(path.clone(), &text, &e))?;
    let (scenario, geometry, max_context) =
        validate(raw, presets).map_err(|(key, problem)| ScenarioError::Invalid {
            path: path.clone(),
            key,
            problem,
        })?;
    Ok(LoadedScenario {
        id,
        path,
        scenario,
        geometry,
        max_context,
    })
}

/// The leading digits of `NN-slug.toml`.
fn scenario_id(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let (number, rest) = name.split_once('-')?;
    let valid = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    (valid && !rest.is_empty()).then(|| number.parse().ok())?
}

/// A failed check: the key (as the file spells it) and what is wrong.
type Failure = (String, Problem);

/// Turns the raw file into a [`Scenario`], checking every value a run depends on.
fn validate(
    raw: RawScenario,
    presets: &ModelPresets,
) -> Result<(Scenario, crate::cache::ModelGeometry, u32), Failure> {
    let fail = |key: &str, problem| (key.to_string(), problem);
    let size = |key: &str, value| positive_u32(value).map_err(|p| fail(key, p));
    let batch_size = size("batch_size", raw.batch_size)?;
    let sequence_length = size("sequence_length", raw.sequence_length)?;
    let concurrency = size("concurrency", raw.concurrency)?;
    let generation_length = size("generation_length", raw.generation_length)?;
    let shared_prefix_tokens = match raw.shared_prefix_tokens {
        v if v < 0 => return Err(fail("shared_prefix_tokens", Problem::Negative(v))),
        v if v > sequence_length as i64 => {
            return Err(fail(
                "shared_prefix_tokens",
                Problem::PrefixLongerThanPrompt {
                    prefix: u32::try_from(v).unwrap_or(u32::MAX),
                    prompt: sequence_length,
                },
            ));
        }
        v => v as u32,
    };

    let preset = presets.get(&raw.model).ok_or_else(|| {
        let problem = Problem::UnknownModel {
            name: raw.model.clone(),
            file: presets.path.display().to_string(),
            known: presets.names(),
        };
        fail("model", problem)
    })?;
    let limit = |key, value, limit_key, limit| {
        if value > limit {
            let model = raw.model.clone();
            let problem = Problem::AboveModelLimit {
                value,
                model,
                limit_key,
                limit,
            };
            return Err(fail(key, problem));
        }
        Ok(())
    };
    limit(
        "sequence_length",
        sequence_length,
        "max_context",
        preset.max_context,
    )?;
    limit(
        "generation_length",
        generation_length,
        "max_generation",
        preset.max_generation,
    )?;

    let cache = cache_options(raw.cache)?;
    if let Some(window) = cache.sliding_window {
        check_window(window, &raw.model, preset.max_context)
            .map_err(|problem| fail("[cache] sliding_window", problem))?;
    }
    check_reference(&raw.reference)?;
    let scenario = Scenario {
        name: raw.name,
        model: raw.model,
        batch_size,
        sequence_length,
        concurrency,
        generation_length,
        shared_prefix_tokens,
        cache,
        reference: raw.reference,
    };
    Ok((scenario, preset.geometry.clone(), preset.max_context))
}

/// A sliding window holds at least one key and at most the model's context (a larger one is
/// no window at all, and most likely a typo).
pub(super) fn check_window(window: u32, model: &str, max_context: u32) -> Result<(), Problem> {
    if window == 0 {
        return Err(Problem::NotPositive(0));
    }
    if window > max_context {
        return Err(Problem::AboveModelLimit {
            value: window,
            model: model.to_string(),
            limit_key: "max_context",
            limit: max_context,
        });
    }
    Ok(())
}

/// Applies defaults and checks the `[cache]` table.
fn cache_options(raw: RawCache) -> Result<CacheOptions, Failure> {
    let mut options = CacheOptions::default();
    if let Some(size) = raw.block_size {
        if !SUPPORTED_BLOCK_SIZES.iter().any(|&s| s as i64 == size) {
            return Err(("[cache] block_size".into(), Problem::BlockSize(size)));
        }
        options.block_size = size as u32;
    }
    if let Some(name) = raw.kv_dtype {
        options.kv_dtype = KvFormat::parse(&name).ok_or_else(|| {
            let problem = Problem::KvFormat {
                given: name.clone(),
                supported: KvFormat::names(),
            };
            ("[cache] kv_dtype".to_string(), problem)
        })?;
    }
    if let Some(window) = raw.sliding_window {
        let window = positive_u32(window)
            .map_err(|problem| ("[cache] sliding_window".to_string(), problem))?;
        options.sliding_window = Some(window);
    }
    Ok(options)
}

/// Reference numbers are copied from the report; a negative or NaN one is a typo.
fn check_reference(reference: &ReferenceResult) -> Result<(), Failure> {
    let numbers = [
        ("kv_peak_gb", reference.kv_peak_gb),
        ("utilization_pct", reference.utilization_pct),
        ("throughput_req_s", reference.throughput_req_s),
        ("hit_rate_pct", reference.hit_rate_pct),
        ("evictions_pct", reference.evictions_pct),
    ];
    for (key, value) in numbers {
        if !value.is_finite() || value < 0.0 {
            return Err((format!("[reference] {key}"), Problem::NotNonNegative(value)));
        }
    }
    let budget = reference.budget_gb;
    if !budget.is_finite() || budget <= 0.0 {
        return Err((
            "[reference] budget_gb".into(),
            Problem::NotAboveZero(budget),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_number_prefix() {
        assert_eq!(scenario_id(Path::new("a/04-very-large.toml")), Some(4));
        assert_eq!(scenario_id(Path::new("11-x.toml")), Some(11));
        assert_eq!(scenario_id(Path::new("x-11.toml")), None);
        assert_eq!(scenario_id(Path::new("11.toml")), None);
        assert_eq!(scenario_id(Path::new("11-")), None);
    }
}
