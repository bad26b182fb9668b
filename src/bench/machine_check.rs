//! A check of the machine between bench cases: the run's matmul yardstick (the kernel the
//! compute side of every bound comes from) timed before the first case and after every
//! case (or long-context point), so a case measured while other work slowed the machine
//! says so. The bounds come from rooflines measured at the start; a slow spell in the
//! middle of a run (another process on a shared machine, a GPU clocking down) slows a case
//! steadily, so its samples agree with each other (low spread) and the rooflines measured
//! again at the end may not show it either. Only a measurement taken around the case does.
//! Each check is compared with the fastest of the run, not the first: a spell may already be
//! on when the run starts.

use super::stopwatch::{NOISY_SPREAD, Stopwatch};
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::batch::GrowBuffer;
use crate::tool_kernels::matmul::{MatmulKernel, MatmulShape};

/// Below this share of the run's fastest check, the check marks the cases around it as
/// measured on a slowed machine. Three quick runs per Mesa adapter on a busy machine: the
/// cases so marked took a median 1.22-1.31x their best time of the three, the others
/// 1.00-1.01x.
pub const SLOW_MACHINE: f64 = 0.8;

/// The check's matmul size (m = n = k): about 5 ms on a CPU adapter, microseconds on a GPU,
/// so checking after each case adds a few seconds to a full grid. The yardstick's own shape
/// rather than a copy or a buffer-fed matmul: on lavapipe and llvmpipe's GL those changed
/// speed by up to a factor of two from one stretch of checks to the next while the cases
/// around them (which read textures, as the yardstick does there) did not.
const CHECK_SIZE: u32 = 512;

/// Samples per check (after one warm-up run), of which the fastest is kept: a one-off
/// hiccup slows some samples, a machine slowed by other work slows every one.
const CHECK_REPEATS: u32 = 5;

/// The matmul and its buffers.
pub struct MachineCheck {
    kernel: MatmulKernel,
    a: wgpu::Buffer,
    b: wgpu::Buffer,
    c: wgpu::Buffer,
    watch: Stopwatch,
}

impl MachineCheck {
    /// Builds the check on the yardstick's `shape` (its buffers are small and allocated
    /// once).
    pub fn new(ctx: &GpuContext, shape: MatmulShape) -> Result<Self, GpuError> {
        let bytes = u64::from(CHECK_SIZE * CHECK_SIZE) * 4;
        // A and B are copy sources too: texel-fed shapes read texture copies of them.
        let buffer = |label| {
            let mut buffer = GrowBuffer::default();
            let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
            buffer.reserve(ctx, label, usage, bytes);
            buffer.get().clone()
        };
        Ok(Self {
            kernel: MatmulKernel::with_shape(ctx, shape)?,
            a: buffer("pagekv machine check a"),
            b: buffer("pagekv machine check b"),
            c: buffer("pagekv machine check c"),
            // No minimum sampling time: a fixed number of samples keeps every check short.
            watch: Stopwatch::new(ctx, 0.0),
        })
    }

    /// Seconds the check takes now (its fastest sample).
    pub fn seconds(&self, ctx: &GpuContext) -> Result<f64, GpuError> {
        Ok(self
            .watch
            .time(ctx, CHECK_REPEATS, |encoder, ts| {
                let size = (CHECK_SIZE, CHECK_SIZE, CHECK_SIZE);
                self.kernel
                    .record(ctx, encoder, size, &self.a, &self.b, &self.c, ts)
            })?
            .fastest)
    }
}

/// The check around consecutive cases: a case is judged by the slower of the checks just
/// before and just after it, since a slow spell may begin or end inside it.
pub struct CaseChecks {
    check: MachineCheck,
    before: f64,
    fastest: f64,
}

impl CaseChecks {
    /// Times the check on the yardstick's `shape` once: the time before the first case.
    pub fn new(ctx: &GpuContext, shape: MatmulShape) -> Result<Self, GpuError> {
        let check = MachineCheck::new(ctx, shape)?;
        let before = check.seconds(ctx)?;
        Ok(Self {
            check,
            before,
            fastest: before,
        })
    }

    /// Checks the machine after a case has run: the slower check's seconds around the case,
    /// for [`CaseChecks::speed`] once the run is over.
    pub fn after_case(&mut self, ctx: &GpuContext) -> Result<f64, GpuError> {
        let after = self.check.seconds(ctx)?;
        let case = self.before.max(after);
        self.before = after;
        self.fastest = self.fastest.min(after);
        Ok(case)
    }

    /// The machine's speed around a case whose checks took `seconds`, as a share of the
    /// fastest check so far (called once every case has run: 1 is the machine at its best).
    pub fn speed(&self, seconds: f64) -> f64 {
        self.fastest / seconds
    }
}

/// Whether a measurement's samples spread more than [`NOISY_SPREAD`] and whether the machine
/// check around it ran below [`SLOW_MACHINE`]: either way the figure may be the machine's
/// rather than the kernel's.
fn doubts(spread: Option<f64>, machine_speed: Option<f64>) -> (bool, bool) {
    (
        spread.is_some_and(|s| s > NOISY_SPREAD),
        machine_speed.is_some_and(|s| s < SLOW_MACHINE),
    )
}

/// Whether a measurement carries either doubt ([`doubt_marks`] is not empty for it).
pub fn is_doubted(spread: Option<f64>, machine_speed: Option<f64>) -> bool {
    let (noisy, slow) = doubts(spread, machine_speed);
    noisy || slow
}

/// The marks a table puts after a measurement that may be the machine's rather than the
/// kernel's: `~` when its samples spread more than [`NOISY_SPREAD`], `*` when the machine
/// check around it ran below [`SLOW_MACHINE`], both as `~*`; empty otherwise.
pub fn doubt_marks(spread: Option<f64>, machine_speed: Option<f64>) -> &'static str {
    match doubts(spread, machine_speed) {
        (false, false) => "",
        (true, false) => " ~",
        (false, true) => " *",
        (true, true) => " ~*",
    }
}

/// The legend of [`doubt_marks`], for the line under a table that uses them.
pub fn doubt_legend() -> String {
    format!(
        "~ marks a measurement whose samples spread more than {:.0}% (interquartile range over the median), * one taken while its run's matmul yardstick, timed again between measurements, ran below {:.0}% of its fastest in that run (other work slowed the machine)",
        100.0 * NOISY_SPREAD,
        100.0 * SLOW_MACHINE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubt_marks_follow_the_spread_and_the_check() {
        assert_eq!(doubt_marks(Some(0.02), Some(0.99)), "");
        assert_eq!(doubt_marks(Some(0.30), Some(0.99)), " ~");
        assert_eq!(doubt_marks(Some(0.02), Some(0.60)), " *");
        assert_eq!(doubt_marks(Some(0.30), Some(0.60)), " ~*");
        // Files from builds that recorded neither are not marked.
        assert_eq!(doubt_marks(None, None), "");
        assert!(is_doubted(Some(0.30), None) && is_doubted(None, Some(0.60)));
        assert!(!is_doubted(Some(0.02), Some(0.99)) && !is_doubted(None, None));
        assert!(doubt_legend().contains("more than 10%"));
        assert!(doubt_legend().contains("below 80%"));
    }
}
