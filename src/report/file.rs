//! Reading and writing results files. Writes are atomic (a sibling temporary file, flushed to
//! disk, then renamed over the target), so a reader never sees half a file and a crash keeps
//! the previous complete version.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::sweep_run::{SWEEP_FORMAT, SWEEP_FORMAT_VERSION, SweepFile};
use super::{FORMAT, FORMAT_VERSION, ResultsFile};
use crate::bench::{BENCH_FORMAT, BENCH_FORMAT_VERSION, BenchReport};

/// Why a results file could not be read or written; every message names the file.
#[derive(Debug, Error)]
pub enum ResultsFileError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not JSON of the expected shape.
    #[error("{path}: not a pagekv results file ({message})")]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde_json's description, with line and column.
        message: String,
    },
    /// A results file of a format or version this build does not read.
    #[error("{path}: {message}")]
    Version {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Writes `results` to `path` atomically.
pub fn write(path: &Path, results: &ResultsFile) -> Result<(), ResultsFileError> {
    write_json(path, results)
}

/// Writes any of pagekv's files (results, sweep) to `path` atomically, as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ResultsFileError> {
    let io = |source| ResultsFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = serde_json::to_string_pretty(value).map_err(|e| ResultsFileError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes()).map_err(io)
}

/// Writes `bytes` to `path` through a sibling temporary file that is flushed to disk and then
/// renamed over the target, so readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results.json".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Checks before a long run that `path` can take a file: its folder exists and the path is
/// not itself a folder. The error is one sentence naming the path, for the user.
pub fn check_destination(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{} is a folder; give a file name", path.display()));
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(format!(
            "{}: the folder {} does not exist",
            path.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// A file `pagekv compare` and `pagekv report` read: a run's results, a bench report or a
/// demand sweep.
#[derive(Debug)]
pub enum AnyFile {
    /// `pagekv run --out`.
    Results(Box<ResultsFile>),
    /// `pagekv bench --json`.
    Bench(Box<BenchReport>),
    /// `pagekv sweep --out`.
    Sweep(Box<SweepFile>),
}

impl AnyFile {
    /// What kind of file it is, for messages: e.g. `a bench report`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyFile::Results(_) => "a run's results",
            AnyFile::Bench(_) => "a bench report",
            AnyFile::Sweep(_) => "a demand sweep",
        }
    }
}

/// Reads a results file, refusing other formats and newer versions with a clear message.
pub fn read(path: &Path) -> Result<ResultsFile, ResultsFileError> {
    match read_any(path)? {
        AnyFile::Results(results) => Ok(*results),
        other => Err(ResultsFileError::Version {
            path: path.to_path_buf(),
            message: format!("{}, not a run's results", other.kind()),
        }),
    }
}

/// Reads a results file, a bench report or a sweep, whichever `format` says, refusing other
/// formats and versions newer than this build reads.
pub fn read_any(path: &Path) -> Result<AnyFile, ResultsFileError> {
    let text = fs::read_to_string(path).map_err(|source| ResultsFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ResultsFileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let format = value.get("format").and_then(|f| f.as_str());
    let (kind, newest) = match format {
        Some(FORMAT) => ("results", FORMAT_VERSION),
        Some(BENCH_FORMAT) => ("bench", BENCH_FORMAT_VERSION),
        Some(SWEEP_FORMAT) => ("sweep", SWEEP_FORMAT_VERSION),
        _ => {
            return Err(ResultsFileError::Version {
                path: path.to_path_buf(),
                message: format!(
                    "`format` is {format:?}, expected \"{FORMAT}\", \"{BENCH_FORMAT}\" or \
                     \"{SWEEP_FORMAT}\""
                ),
            });
        }
    };
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version == 0 || version > newest as u64 {
        return Err(ResultsFileError::Version {
            path: path.to_path_buf(),
            message: format!(
                "{kind} format version {version}; this pagekv reads versions 1 to {newest}"
            ),
        });
    }
    let parse = |e: serde_json::Error| ResultsFileError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    Ok(match kind {
        "bench" => AnyFile::Bench(Box::new(serde_json::from_value(value).map_err(parse)?)),
        "sweep" => AnyFile::Sweep(Box::new(serde_json::from_value(value).map_err(parse)?)),
        _ => AnyFile::Results(Box::new(serde_json::from_value(value).map_err(parse)?)),
    })
}

/// The file name `run --all-adapters` gives one adapter's results:
/// `results-<adapter name as a slug>-<backend>.json`, so that two backends of one device (or
/// two cards) never overwrite each other.
pub fn results_file_name(adapter: &crate::gpu::AdapterReport) -> String {
    let slug = |text: &str| {
        let mut out = String::new();
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_end_matches('-').to_string()
    };
    let name = match slug(&adapter.name) {
        s if s.is_empty() => "adapter".to_string(),
        s => s,
    };
    format!("results-{name}-{}.json", slug(adapter.backend.to_str()))
}

#[cfg(test)]
mod tests {
    use super::results_file_name;
    use crate::gpu::AdapterReport;

    #[test]
    fn results_file_names_are_slugs_of_name_and_backend() {
        let named = |name: &str, backend: wgpu::Backend| {
            results_file_name(&AdapterReport {
                name: name.into(),
                backend,
                ..AdapterReport::default()
            })
        };
        assert_eq!(
            named("llvmpipe (LLVM 15.0.6, 256 bits)", wgpu::Backend::Vulkan),
            "results-llvmpipe-llvm-15-0-6-256-bits-vulkan.json"
        );
        assert_eq!(
            named("NVIDIA H200", wgpu::Backend::Gl),
            "results-nvidia-h200-gl.json"
        );
        assert_eq!(
            named("  ", wgpu::Backend::Metal),
            "results-adapter-metal.json"
        );
        assert_eq!(named("Ä/../x", wgpu::Backend::Dx12), "results-x-dx12.json");
    }
}
