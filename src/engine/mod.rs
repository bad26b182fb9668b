//! The attention-only stress engine: deterministic workloads, a vLLM-like continuous-batching
//! scheduler over the paged KV cache, and the GPU executor that runs its plans.
//!
//! Policy lives in pure Rust ([`scheduler`], [`workload`]), so admission, preemption and prefix
//! reuse are tested without a GPU; [`executor`] only executes each [`scheduler::StepPlan`], and
//! [`run`] ties them together into one measured scenario run.

pub mod alerts;
pub mod calibrate;
pub mod check;
pub mod cost;
pub mod executor;
pub mod metrics;
pub mod request;
pub mod run;
pub mod scheduler;
pub mod series;
pub mod simulate;
pub mod timing;
pub mod workload;

pub use metrics::{Measurement, Percentiles, TimingSource};
pub use run::{EngineError, Progress, RunConfig, run_scenario, run_scenario_with};
