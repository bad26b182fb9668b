//! Errors from reading scenario and model-preset files.
//!
//! A scenario file is written by hand, so every error is one sentence that names the file, the
//! key and what is wrong with it: the user should be able to fix the file without reading code.

use std::io;
use std::ops::Range;
use std::path::PathBuf;

use thiserror::Error;

use crate::cache::GeometryError;

/// Why a scenario directory, scenario file or models file could not be used.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file or directory could not be read at all.
    #[error("cannot read `{}`: {source}.", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The TOML did not parse into the expected shape: bad syntax, an unknown key, a missing key
    /// or a value of the wrong type. `problem` names the key.
    #[error("`{}`{}: {problem}.", .path.display(), .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line the parser pointed at; none for a missing key (there is no line).
        line: Option<usize>,
        /// The problem, naming the key (and the table it is in, where there is one).
        problem: String,
    },
    /// A key parsed but its value cannot be run.
    #[error("`{}`: `{key}` {problem}.", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, as `name` or `[table] name`.
        key: String,
        /// What is wrong with its value.
        problem: Problem,
    },
    /// A model preset's geometry is not one any kernel can run (e.g. q_heads not a multiple of
    /// kv_heads).
    #[error("`{}`: model preset `{model}` is invalid: {source}.", .path.display())]
    Geometry {
        /// The models file.
        path: PathBuf,
        /// The preset's key (its table name).
        model: String,
        /// What the geometry check found.
        #[source]
        source: GeometryError,
    },
    /// Scenario files are named `NN-slug.toml`; NN is the scenario id used everywhere else.
    #[error(
        "`{}`: the file name must start with the scenario number and a dash, like `01-short-sequence.toml`.",
        .path.display()
    )]
    FileName {
        /// The file.
        path: PathBuf,
    },
    /// Two files in one directory claim the same scenario number.
    #[error("`{}`: scenario number {id} is already used by `{}`.", .path.display(), .other.display())]
    DuplicateId {
        /// The later file.
        path: PathBuf,
        /// The file that already has the id.
        other: PathBuf,
        /// The shared id.
        id: u32,
    },
    /// A directory held no scenario files, which is almost certainly the wrong directory.
    #[error("`{}` holds no scenario files (`NN-name.toml`).", .path.display())]
    Empty {
        /// The directory.
        path: PathBuf,
    },
}

/// What is wrong with a value that parsed; displayed after the key's name.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum Problem {
    /// Sizes and counts must be at least 1.
    #[error("is {0}, but it must be a positive integer (1 or more)")]
    NotPositive(i64),
    /// Counts that may be zero still cannot be negative.
    #[error("is {0}, but it must not be negative")]
    Negative(i64),
    /// Larger than the 32-bit counters the engine and kernels use.
    #[error("is {0}, above the largest supported value {max}", max = u32::MAX)]
    TooLarge(i64),
    /// A shared prefix is part of the prompt, so it cannot be longer than the prompt.
    #[error(
        "({prefix}) is longer than sequence_length ({prompt}); the shared prefix is part of the prompt"
    )]
    PrefixLongerThanPrompt {
        /// shared_prefix_tokens given.
        prefix: u32,
        /// sequence_length given.
        prompt: u32,
    },
    /// The scenario names a model the models file does not define.
    #[error("is \"{name}\", which is not a preset in `{file}` (known presets: {known})")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The models file searched.
        file: String,
        /// The presets that exist, comma-separated.
        known: String,
    },
    /// Block sizes are limited to the ones the kernels are built for.
    #[error("is {0}, but the cache supports block sizes {sizes:?}", sizes = crate::cache::SUPPORTED_BLOCK_SIZES)]
    BlockSize(i64),
    /// A KV dtype name this build does not know.
    #[error("is \"{given}\", which is not a KV dtype this build supports (supported: {supported})")]
    KvFormat {
        /// The name given.
        given: String,
        /// The names that parse, comma-separated.
        supported: String,
    },
    /// More tokens than the model's published limit.
    #[error("is {value}, above model `{model}`'s {limit_key} of {limit}")]
    AboveModelLimit {
        /// The value given.
        value: u32,
        /// The model preset.
        model: String,
        /// `max_context` or `max_generation`.
        limit_key: &'static str,
        /// The preset's limit.
        limit: u32,
    },
    /// A reference number (a percentage, GB, req/s) that is negative or not finite.
    #[error("is {0}, but it must be a finite number, 0 or more")]
    NotNonNegative(f64),
    /// A number that divides (the budget) must be above zero.
    #[error("is {0}, but it must be a finite number above 0")]
    NotAboveZero(f64),
}

/// Turns a toml error into [`ScenarioError::Parse`], adding the line number and the key and
/// table the parser pointed at, so the message stays one line that names the key.
pub(crate) fn parse_error(path: PathBuf, source: &str, err: &toml::de::Error) -> ScenarioError {
    let span = err.span().unwrap_or(0..0);
    let (line, key, table) = locate(source, span);
    let mut problem = err
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches('.')
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace("invalid type:", "has the wrong type:")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number");
    let missing = problem.starts_with("missing key");
    if let Some(key) = key.filter(|k| !problem.contains(&format!("`{k}`"))) {
        problem = format!("`{key}` {problem}");
    }
    if let Some(table) = table {
        problem = format!("in table [{table}]: {problem}");
    }
    ScenarioError::Parse {
        path,
        line: (!missing).then_some(line),
        problem,
    }
}

/// Line number (1-based), the key assigned on that line, and the enclosing `[table]`.
fn locate(source: &str, span: Range<usize>) -> (usize, Option<String>, Option<String>) {
    let start = span.start.min(source.len());
    let before = &source[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let text = source[line_start..].lines().next().unwrap_or("").trim();
    let key = text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('#'));
    let table = source[..line_start]
        .lines()
        .chain(text.starts_with('[').then_some(text))
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|l| l.split(']').next())
                .map(|t| t.trim().trim_matches('"').to_string())
        })
        .next_back();
    (line, key, table)
}
