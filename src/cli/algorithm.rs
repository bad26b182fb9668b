//! `--algorithm`, `--reductions` and `--half-decode`, shared by `verify` and `bench`: force
//! the tiled (GPU) or flat (CPU adapter) attention kernels, the tiled kernels' serial or
//! subgroup reductions, and the built-in or integer f16 conversion, so each path can be
//! checked and timed on any adapter that can run it.

use clap::ValueEnum;
use pagekv::gpu::{GpuContext, device_type_name};
use pagekv::kernels::{AttentionAlgorithm, HalfDecode, Reductions};

/// The attention kernels a command runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmChoice {
    /// What the adapter's class gets: flat on CPU adapters, tiled on GPUs.
    #[default]
    Auto,
    /// The tiled kernels (K/V staged in workgroup memory), on any adapter.
    Tiled,
    /// The flat kernels (no workgroup memory or barriers), on any adapter.
    Flat,
}

impl AlgorithmChoice {
    /// The algorithm to force, or `None` to let the library choose by adapter class.
    pub fn forced(self) -> Option<AttentionAlgorithm> {
        match self {
            AlgorithmChoice::Auto => None,
            AlgorithmChoice::Tiled => Some(AttentionAlgorithm::Tiled),
            AlgorithmChoice::Flat => Some(AttentionAlgorithm::Flat),
        }
    }

    /// One line saying which algorithm runs on `ctx` and why, e.g.
    /// `attention: tiled (forced by --algorithm)`.
    pub fn describe(self, ctx: &GpuContext) -> String {
        match self.forced() {
            Some(algorithm) => format!("attention: {} (forced by --algorithm)", algorithm.name()),
            None => format!(
                "attention: {} (auto: the default for a {} adapter)",
                AttentionAlgorithm::for_device(ctx).name(),
                device_type_name(ctx.info.device_type)
            ),
        }
    }
}

/// How the tiled kernels reduce across a workgroup's threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ReductionsChoice {
    /// Subgroup operations where the adapter has them, serial loops elsewhere.
    #[default]
    Auto,
    /// One thread per row scans serially (the fallback every adapter runs).
    Serial,
    /// Subgroup shuffles and reductions; refused on adapters without them.
    Subgroup,
}

impl ReductionsChoice {
    /// The form to force, or `None` to let the library choose by adapter.
    pub fn forced(self) -> Option<Reductions> {
        match self {
            ReductionsChoice::Auto => None,
            ReductionsChoice::Serial => Some(Reductions::Serial),
            ReductionsChoice::Subgroup => Some(Reductions::Subgroup),
        }
    }

    /// The one sentence that refuses `--reductions subgroup` on an adapter without subgroups
    /// of at least 8 lanes, before any kernel is built.
    pub fn check(self, ctx: &GpuContext) -> Result<(), String> {
        if self == ReductionsChoice::Subgroup && !Reductions::supported(ctx) {
            return Err(format!(
                "--reductions subgroup: {} has no subgroups of at least {} lanes (SUBGROUP {}, smallest subgroup {}); use --reductions serial or auto",
                ctx.describe(),
                pagekv::kernels::ROW_LANES_MAX,
                if ctx.capabilities.subgroup {
                    "granted"
                } else {
                    "not granted"
                },
                ctx.info.subgroup_min_size
            ));
        }
        Ok(())
    }
}

/// How the attention kernels convert stored f16 halves (f16 and FP8 pools) to f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum HalfDecodeChoice {
    /// Integer code on llvmpipe's GL driver, the built-in everywhere else.
    #[default]
    Auto,
    /// The WGSL built-in `unpack2x16float`.
    Builtin,
    /// The same conversion in integer code.
    Integer,
}

impl HalfDecodeChoice {
    /// The form to force, or `None` to let the library choose by adapter.
    pub fn forced(self) -> Option<HalfDecode> {
        match self {
            HalfDecodeChoice::Auto => None,
            HalfDecodeChoice::Builtin => Some(HalfDecode::Builtin),
            HalfDecodeChoice::Integer => Some(HalfDecode::Integer),
        }
    }

    /// One line saying which conversion runs on `ctx` and why, e.g.
    /// `f16 halves: converted by integer code (forced by --half-decode)`.
    pub fn describe(self, ctx: &GpuContext) -> String {
        let form = self.forced().unwrap_or_else(|| HalfDecode::for_device(ctx));
        format!(
            "f16 halves: converted by {} ({})",
            conversion(form),
            if self.forced().is_some() {
                "forced by --half-decode"
            } else {
                "auto: integer code on llvmpipe's GL, the built-in elsewhere"
            }
        )
    }
}

/// What a half-float conversion is, in a report's words.
pub fn conversion(form: HalfDecode) -> &'static str {
    match form {
        HalfDecode::Builtin => "unpack2x16float",
        HalfDecode::Integer => "integer code",
    }
}
