//! pagekv: a vendor-neutral paged KV cache and paged attention in WGSL, run through wgpu on
//! Vulkan, Metal, DX12 and GL, plus the stress engine that drives it.
//!
//! The crate splits into pure bookkeeping ([`cache`]), GPU plumbing ([`gpu`]), one module per
//! kernel family ([`kernels`]) and the CPU reference they are checked against
//! ([`reference`](mod@reference)). On top of those: the stress engine ([`engine`]: scheduler
//! policy in pure Rust, a GPU executor, measured runs), the scenario files and scale presets
//! ([`scenario`]), result files, verdicts and tables ([`report`]) and the roofline benches
//! ([`bench`]).

pub mod bench;
pub mod cache;
pub mod engine;
pub mod gpu;
pub mod kernels;
pub mod npy;
pub mod reference;
pub mod report;
pub mod scenario;
pub mod verify;

pub use cache::{CacheLayout, KvDtype, ModelGeometry};
