//! `--algorithm`, shared by `verify` and `bench`: force the tiled (GPU) or flat (CPU adapter)
//! attention kernels on any adapter, so each path can be checked and timed everywhere.

use clap::ValueEnum;
use pagekv::gpu::GpuContext;
use pagekv::kernels::AttentionAlgorithm;

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
                "attention: {} (auto: the default for a {:?} adapter)",
                AttentionAlgorithm::for_device(ctx).name(),
                ctx.info.device_type
            ),
        }
    }
}
