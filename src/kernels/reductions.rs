//! How a tiled workgroup reduces across its threads: the online-softmax update of each key
//! tile (attention_tiles.wgsl) and the scan of a row's partitions (combine.wgsl).
//!
//! Why two forms: the plain form gives each row one thread that scans serially, which any
//! adapter runs but which leaves most of a 64-thread workgroup waiting on a few threads. The
//! subgroup form spreads each row over neighbouring lanes and combines them with subgroup
//! shuffles and reductions, which only adapters with the `SUBGROUP` feature compile. The
//! choice is generated into the variant (its name ends in `_sg`), so a module never names an
//! operation its adapter lacks and naga checks both forms for every backend.

use crate::gpu::GpuContext;

const SOFTMAX_SERIAL: &str = include_str!("../../shaders/softmax_serial.wgsl");
const SOFTMAX_SUBGROUP: &str = include_str!("../../shaders/softmax_subgroup.wgsl");
const SCAN_SERIAL: &str = include_str!("../../shaders/combine_scan_serial.wgsl");
const SCAN_SUBGROUP: &str = include_str!("../../shaders/combine_scan_subgroup.wgsl");

/// Lanes the subgroup softmax gives one row: the 64-thread workgroup over decode's 8 rows. A
/// row's lanes must lie in one subgroup, so adapters whose subgroups can be narrower (WARP's
/// 4) keep the serial form.
pub const ROW_LANES_MAX: u32 = 8;

/// The reduction form a tiled variant is built with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Reductions {
    /// One thread per row scans serially through workgroup memory: every adapter.
    #[default]
    Serial,
    /// A row's lanes combine with subgroup shuffles (softmax) and subgroup reductions
    /// (combine): adapters with the `SUBGROUP` feature and subgroups of at least
    /// [`ROW_LANES_MAX`] lanes.
    Subgroup,
}

impl Reductions {
    /// The form `ctx` can run: subgroups when the device was granted them and its adapter's
    /// smallest subgroup holds a row's lanes, the serial form otherwise.
    pub fn for_device(ctx: &GpuContext) -> Self {
        if Self::supported(ctx) {
            Reductions::Subgroup
        } else {
            Reductions::Serial
        }
    }

    /// Whether `ctx` can run the subgroup form.
    pub fn supported(ctx: &GpuContext) -> bool {
        ctx.capabilities.subgroup && ctx.info.subgroup_min_size >= ROW_LANES_MAX
    }

    /// Lowercase name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Reductions::Serial => "serial",
            Reductions::Subgroup => "subgroup",
        }
    }

    /// Whether the generated module uses subgroup operations.
    pub fn needs_subgroups(self) -> bool {
        self == Reductions::Subgroup
    }

    /// The variant-name suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Reductions::Serial => "",
            Reductions::Subgroup => "_sg",
        }
    }

    /// `update_softmax` for attention_tiles.wgsl.
    pub(crate) fn softmax_source(self) -> &'static str {
        match self {
            Reductions::Serial => SOFTMAX_SERIAL,
            Reductions::Subgroup => SOFTMAX_SUBGROUP,
        }
    }

    /// `row_state` for combine.wgsl.
    pub(crate) fn combine_scan_source(self) -> &'static str {
        match self {
            Reductions::Serial => SCAN_SERIAL,
            Reductions::Subgroup => SCAN_SUBGROUP,
        }
    }
}
