//! Model presets from `models.toml`: the published geometry of the models scenarios name.
//!
//! The presets live in a data file rather than code so a user can add a model (any GQA
//! transformer) without rebuilding, and so the numbers sit next to the comment citing where
//! they come from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Problem, ScenarioError, parse_error};
use crate::cache::ModelGeometry;

/// One model preset: its KV geometry plus the token limits its model card publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPreset {
    /// Layers and heads, validated with [`ModelGeometry::validate`]; `name` is the preset key.
    pub geometry: ModelGeometry,
    /// Longest prompt (`sequence_length`) the model supports natively.
    pub max_context: u32,
    /// Longest generation (`generation_length`) the model card states.
    pub max_generation: u32,
}

/// Every preset of one models file, by key; the file path is kept for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPresets {
    /// The file the presets came from, named in scenario errors about unknown models.
    pub path: PathBuf,
    /// Presets by key (the TOML table name, e.g. `qwen2.5-7b`).
    pub presets: BTreeMap<String, ModelPreset>,
}

/// A preset table as written; signed so that `-4` is reported as "must be positive" rather
/// than as a type error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    layers: i64,
    q_heads: i64,
    kv_heads: i64,
    head_dim: i64,
    max_context: i64,
    max_generation: i64,
}

impl ModelPresets {
    /// Reads and validates a models file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates models-file text; `path` is only used in error messages.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref().to_path_buf();
        let raw: BTreeMap<String, RawPreset> =
            toml::from_str(text).map_err(|e| parse_error(path.clone(), text, &e))?;
        let mut presets = BTreeMap::new();
        for (name, raw) in raw {
            let size = |key: &str, value: i64| {
                positive_u32(value).map_err(|problem| ScenarioError::Invalid {
                    path: path.clone(),
                    key: format!("[{name}] {key}"),
                    problem,
                })
            };
            let geometry = ModelGeometry::new(
                &name,
                size("layers", raw.layers)?,
                size("q_heads", raw.q_heads)?,
                size("kv_heads", raw.kv_heads)?,
                size("head_dim", raw.head_dim)?,
            );
            geometry
                .validate()
                .map_err(|source| ScenarioError::Geometry {
                    path: path.clone(),
                    model: name.clone(),
                    source,
                })?;
            let preset = ModelPreset {
                geometry,
                max_context: size("max_context", raw.max_context)?,
                max_generation: size("max_generation", raw.max_generation)?,
            };
            presets.insert(name, preset);
        }
        Ok(Self { path, presets })
    }

    /// The preset with this key, if the file defines it.
    pub fn get(&self, name: &str) -> Option<&ModelPreset> {
        self.presets.get(name)
    }

    /// Preset keys, comma-separated, for "known presets" messages.
    pub fn names(&self) -> String {
        self.presets
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks a size read as `i64` and narrows it: sizes are at least 1 and fit the engine's u32.
pub(crate) fn positive_u32(value: i64) -> Result<u32, Problem> {
    if value < 1 {
        Err(Problem::NotPositive(value))
    } else {
        u32::try_from(value).map_err(|_| Problem::TooLarge(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_built_in_geometry() {
        let text = include_str!("../../scenarios/models.toml");
        let presets = ModelPresets::parse(text, "models.toml").unwrap();
        assert_eq!(
            presets.get("qwen2.5-0.5b").unwrap().geometry,
            ModelGeometry::qwen2_5_0_5b()
        );
        assert_eq!(
            presets.get("qwen2.5-7b").unwrap().geometry,
            ModelGeometry::qwen2_5_7b()
        );
        assert_eq!(presets.names(), "qwen2.5-0.5b, qwen2.5-7b");
    }
}
