//! A check of the machine between bench cases: the same small copy timed before the first
//! case and after every case, so a case measured while other work slowed the machine says
//! so. The rooflines are measured once, at the start; a slow spell in the middle of a run
//! (another process on a shared machine, a GPU clocking down) slows a case steadily, so its
//! samples agree with each other (low spread) and the copy roofline at the end may not show
//! it either. Only a measurement taken around the case does.

use super::stopwatch::Stopwatch;
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::batch::GrowBuffer;
use crate::tool_kernels::copy::CopyKernel;

/// Below this share of its start speed, the check marks the cases around it as measured on
/// a slowed machine. The check's own run-to-run noise on an idle machine stays well inside
/// it (a median of several samples of a few-millisecond copy on lavapipe).
pub const SLOW_MACHINE: f64 = 0.8;

/// Bytes the check copies: a few milliseconds on a CPU adapter, tens of microseconds on a
/// GPU, so checking after each case adds little to a run.
const CHECK_BYTES: u64 = 16 << 20;

/// Samples per check (after one warm-up run), of which the median is kept.
const CHECK_REPEATS: u32 = 5;

/// The copy and its buffers, and its speed at the start of the run.
pub struct MachineCheck {
    kernel: CopyKernel,
    src: wgpu::Buffer,
    dst: wgpu::Buffer,
    watch: Stopwatch,
    start_seconds: f64,
}

impl MachineCheck {
    /// Builds the check and times it once: the speed later checks are compared with.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let caps = &ctx.capabilities;
        let bytes = CHECK_BYTES
            .min(caps.max_storage_binding)
            .min(caps.max_buffer)
            / 16
            * 16;
        let buffer = |label| {
            let mut buffer = GrowBuffer::default();
            buffer.reserve(ctx, label, wgpu::BufferUsages::STORAGE, bytes);
            buffer.get().clone()
        };
        let mut check = Self {
            kernel: CopyKernel::new(ctx)?,
            src: buffer("pagekv machine check src"),
            dst: buffer("pagekv machine check dst"),
            // No minimum sampling time: a fixed number of samples keeps every check short.
            watch: Stopwatch::new(ctx, 0.0),
            start_seconds: 0.0,
        };
        check.start_seconds = check.time(ctx)?;
        Ok(check)
    }

    fn time(&self, ctx: &GpuContext) -> Result<f64, GpuError> {
        Ok(self
            .watch
            .time(ctx, CHECK_REPEATS, |encoder, ts| {
                self.kernel.record(ctx, encoder, &self.src, &self.dst, ts);
                Ok(())
            })?
            .seconds)
    }

    /// The machine's speed now as a share of its speed at the start (1 unchanged, 0.5 half
    /// as fast).
    pub fn speed(&self, ctx: &GpuContext) -> Result<f64, GpuError> {
        Ok(self.start_seconds / self.time(ctx)?)
    }
}

/// Tracks the check around consecutive cases: a case's machine speed is the slower of the
/// checks just before and just after it, since a slow spell may begin or end inside it.
pub struct CaseChecks {
    check: MachineCheck,
    before: f64,
}

impl CaseChecks {
    /// Starts with the check's first timing as the speed before the first case.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        Ok(Self {
            check: MachineCheck::new(ctx)?,
            before: 1.0,
        })
    }

    /// Checks the machine after a case has run: the case's machine speed.
    pub fn after_case(&mut self, ctx: &GpuContext) -> Result<f64, GpuError> {
        let after = self.check.speed(ctx)?;
        let case = self.before.min(after);
        self.before = after;
        Ok(case)
    }
}
