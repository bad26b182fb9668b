//! The attention-only stress engine: deterministic workloads, a vLLM-like continuous-batching
//! scheduler over the paged KV cache, and (elsewhere) the GPU runner that executes its plans.
//!
//! Policy lives here in pure Rust, so admission, preemption and prefix reuse are tested without
//! a GPU; the runner only executes each [`scheduler::StepPlan`].

pub mod request;
pub mod scheduler;
pub mod workload;
