//! Planning a device-memory probe without a GPU: how large each allocation is and where the
//! probe stops if no allocation fails first.
//!
//! wgpu cannot say how much memory a device has free, so [`super::probe_memory`] allocates
//! storage buffers one step at a time until one fails. This module decides the steps and the
//! cap; it is pure so its rules are tested without a device:
//!
//! - A step is the requested size ([`DEFAULT_STEP_BYTES`] unless given), never larger than the
//!   device's `max_buffer_size` or `max_storage_buffer_binding_size` (a KV shard is a storage
//!   binding, so the probe measures memory in the pieces pagekv really allocates), rounded down
//!   to whole MiB (to 4 bytes below 1 MiB: `clear_buffer` needs a multiple of 4).
//! - The cap is `--max` when given. Otherwise [`CAP_PERCENT`] of what the adapter reports as
//!   its memory; wgpu 30 reports none, so the fallback is the host's `MemTotal` for adapters
//!   whose memory *is* host memory (CPU adapters, integrated GPUs with unified memory) and
//!   [`DISCRETE_FALLBACK_CAP_BYTES`] for discrete and virtual GPUs, where the first failed
//!   allocation is expected to stop the probe long before.
//! - The last step is shortened so the planned total never exceeds the cap.

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// One gibibyte.
pub const GIB: u64 = 1 << 30;
/// The probe's allocation size when `--step` is not given: large enough that a 141 GiB card
/// takes a few hundred steps, small enough that the last failed step wastes little.
pub const DEFAULT_STEP_BYTES: u64 = 256 * MIB;
/// Share of the reported (or host) memory the default cap allows, in percent. The rest is
/// left to the driver, the desktop and the other processes: probing to the last byte would
/// make the host swap or the driver evict other work, and no run should plan on all of it.
pub const CAP_PERCENT: u64 = 90;
/// The cap for a discrete or virtual GPU when nothing reports its memory and no `--max` was
/// given. It is larger than any single GPU's memory so that the first failed allocation, not
/// this number, stops the probe.
pub const DISCRETE_FALLBACK_CAP_BYTES: u64 = 512 * GIB;

/// Where a probe's cap came from, so the output can say what the figure is bounded by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CapSource {
    /// The caller's maximum (`--max`).
    Requested,
    /// [`CAP_PERCENT`] of the host's total memory: the adapter's memory is host memory.
    HostMemory,
    /// [`DISCRETE_FALLBACK_CAP_BYTES`]: nothing reports a discrete GPU's memory.
    DiscreteFallback,
}

impl CapSource {
    /// A few words for tables.
    pub fn describe(self) -> String {
        match self {
            CapSource::Requested => "as given".into(),
            CapSource::HostMemory => format!("{CAP_PERCENT}% of host memory"),
            CapSource::DiscreteFallback => "fallback: no size reported".into(),
        }
    }
}

/// What kind of memory an adapter allocates from, as far as the probe cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// The device's memory is the host's (CPU adapters, integrated GPUs).
    Host,
    /// The device has its own memory (discrete, virtual or unknown GPUs).
    Dedicated,
}

impl MemoryKind {
    /// The kind for a wgpu device type.
    pub fn of(device_type: wgpu::DeviceType) -> Self {
        match device_type {
            wgpu::DeviceType::Cpu | wgpu::DeviceType::IntegratedGpu => MemoryKind::Host,
            _ => MemoryKind::Dedicated,
        }
    }
}

/// The step and cap of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProbePlan {
    /// Bytes per allocation (the last one may be smaller).
    pub step_bytes: u64,
    /// The most bytes the probe allocates.
    pub cap_bytes: u64,
    /// Where `cap_bytes` came from.
    pub cap_source: CapSource,
}

/// Why a probe cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbePlanError {
    /// A zero (or sub-4-byte) step or cap was asked for.
    TooSmall {
        /// `"step"` or `"cap"`.
        what: &'static str,
        /// The bytes asked for.
        bytes: u64,
    },
    /// The adapter's memory is host memory, the host's size is unknown and no cap was given.
    UnknownHostMemory,
}

impl std::fmt::Display for ProbePlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbePlanError::TooSmall { what, bytes } => {
                write!(
                    f,
                    "a probe {what} of {bytes} bytes is too small to allocate"
                )
            }
            ProbePlanError::UnknownHostMemory => write!(
                f,
                "this adapter's memory is host memory and the host's size is unknown \
                 (no /proc/meminfo); give a cap"
            ),
        }
    }
}

impl std::error::Error for ProbePlanError {}

fn round_step(bytes: u64) -> u64 {
    if bytes >= MIB {
        bytes / MIB * MIB
    } else {
        bytes / 4 * 4
    }
}

impl ProbePlan {
    /// Plans a probe. `step` and `max` are the caller's requests (`None`: the defaults);
    /// `max_buffer` and `max_binding` the device's limits; `host_total` the host's memory
    /// ([`host_total_bytes`]).
    pub fn new(
        step: Option<u64>,
        max: Option<u64>,
        max_buffer: u64,
        max_binding: u64,
        kind: MemoryKind,
        host_total: Option<u64>,
    ) -> Result<Self, ProbePlanError> {
        let wanted = step.unwrap_or(DEFAULT_STEP_BYTES);
        let step_bytes = round_step(wanted.min(max_buffer).min(max_binding));
        if step_bytes == 0 {
            return Err(ProbePlanError::TooSmall {
                what: "step",
                bytes: wanted,
            });
        }
        let (cap_bytes, cap_source) = match (max, kind) {
            (Some(max), _) => (max, CapSource::Requested),
            (None, MemoryKind::Host) => {
                let total = host_total.ok_or(ProbePlanError::UnknownHostMemory)?;
                (total / 100 * CAP_PERCENT, CapSource::HostMemory)
            }
            (None, MemoryKind::Dedicated) => {
                (DISCRETE_FALLBACK_CAP_BYTES, CapSource::DiscreteFallback)
            }
        };
        if cap_bytes < 4 {
            return Err(ProbePlanError::TooSmall {
                what: "cap",
                bytes: cap_bytes,
            });
        }
        Ok(Self {
            step_bytes,
            cap_bytes,
            cap_source,
        })
    }

    /// The allocation sizes in order: whole steps, then the remainder (rounded down to 4
    /// bytes) so the total never exceeds the cap.
    pub fn sizes(&self) -> impl Iterator<Item = u64> + '_ {
        let whole = self.cap_bytes / self.step_bytes;
        let rest = (self.cap_bytes % self.step_bytes) / 4 * 4;
        (0..whole)
            .map(|_| self.step_bytes)
            .chain((rest > 0).then_some(rest))
    }
}

/// `MemTotal` from a /proc/meminfo text, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => value.checked_mul(1024),
        Some(_) => None,
    }
}

/// The host's total memory (Linux: /proc/meminfo `MemTotal`); `None` elsewhere.
pub fn host_total_bytes() -> Option<u64> {
    parse_mem_total(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = u64::MAX;

    #[test]
    fn the_step_is_the_request_bounded_by_both_device_limits() {
        let plan = |step, buffer, binding| {
            ProbePlan::new(
                step,
                Some(GIB),
                buffer,
                binding,
                MemoryKind::Dedicated,
                None,
            )
            .unwrap()
            .step_bytes
        };
        assert_eq!(plan(None, BIG, BIG), DEFAULT_STEP_BYTES);
        assert_eq!(plan(Some(64 * MIB), BIG, BIG), 64 * MIB);
        // lavapipe: max_storage_buffer_binding_size 128 MiB, max_buffer_size 2^31 - 1.
        assert_eq!(plan(None, (1 << 31) - 1, 128 * MIB), 128 * MIB);
        assert_eq!(plan(None, 100 * MIB, BIG), 100 * MIB);
        // An odd limit rounds down to whole MiB, a tiny one to 4 bytes.
        assert_eq!(plan(None, 100 * MIB + 3, BIG), 100 * MIB);
        assert_eq!(plan(Some(1023), BIG, BIG), 1020);
    }

    #[test]
    fn sizes_add_up_to_the_cap_with_a_short_last_step() {
        let plan = ProbePlan::new(
            None,
            Some(GIB + 100 * MIB + 2),
            BIG,
            BIG,
            MemoryKind::Host,
            None,
        )
        .unwrap();
        let sizes: Vec<u64> = plan.sizes().collect();
        assert_eq!(sizes.len(), 5);
        assert!(sizes[..4].iter().all(|&s| s == 256 * MIB));
        assert_eq!(sizes[4], 100 * MIB);
        assert!(sizes.iter().sum::<u64>() <= plan.cap_bytes);
        assert!(sizes.iter().all(|s| s % 4 == 0));
        let exact = ProbePlan::new(None, Some(GIB), BIG, BIG, MemoryKind::Host, None).unwrap();
        assert_eq!(exact.sizes().count(), 4);
        // A cap below one step is one short allocation.
        let small = ProbePlan::new(None, Some(MIB), BIG, BIG, MemoryKind::Host, None).unwrap();
        assert_eq!(small.sizes().collect::<Vec<_>>(), vec![MIB]);
    }

    #[test]
    fn the_default_cap_follows_the_memory_kind() {
        let host = Some(24 * GIB);
        let cpu = ProbePlan::new(None, None, BIG, BIG, MemoryKind::Host, host).unwrap();
        assert_eq!(cpu.cap_source, CapSource::HostMemory);
        assert_eq!(cpu.cap_bytes, 24 * GIB / 100 * 90);
        let gpu = ProbePlan::new(None, None, BIG, BIG, MemoryKind::Dedicated, host).unwrap();
        assert_eq!(gpu.cap_source, CapSource::DiscreteFallback);
        assert_eq!(gpu.cap_bytes, DISCRETE_FALLBACK_CAP_BYTES);
        let asked = ProbePlan::new(None, Some(GIB), BIG, BIG, MemoryKind::Host, host).unwrap();
        assert_eq!(
            (asked.cap_bytes, asked.cap_source),
            (GIB, CapSource::Requested)
        );
        assert_eq!(
            ProbePlan::new(None, None, BIG, BIG, MemoryKind::Host, None),
            Err(ProbePlanError::UnknownHostMemory)
        );
        assert_eq!(MemoryKind::of(wgpu::DeviceType::Cpu), MemoryKind::Host);
        assert_eq!(
            MemoryKind::of(wgpu::DeviceType::IntegratedGpu),
            MemoryKind::Host
        );
        assert_eq!(
            MemoryKind::of(wgpu::DeviceType::DiscreteGpu),
            MemoryKind::Dedicated
        );
    }

    #[test]
    fn zero_steps_and_caps_are_refused() {
        let plan = |step, max| ProbePlan::new(step, max, BIG, BIG, MemoryKind::Dedicated, None);
        assert!(matches!(
            plan(Some(0), Some(GIB)),
            Err(ProbePlanError::TooSmall { what: "step", .. })
        ));
        assert!(matches!(
            plan(None, Some(0)),
            Err(ProbePlanError::TooSmall { what: "cap", .. })
        ));
        assert!(ProbePlan::new(None, Some(GIB), 0, BIG, MemoryKind::Host, None).is_err());
    }

    #[test]
    fn mem_total_is_read_in_kib() {
        let text = "MemFree:  10 kB\nMemTotal:       24684084 kB\nMemAvailable: 5 kB\n";
        assert_eq!(parse_mem_total(text), Some(24684084 * 1024));
        assert_eq!(parse_mem_total("MemFree: 10 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots\n"), None);
    }
}
