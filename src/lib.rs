//! pagekv: a vendor-neutral paged KV cache and paged attention in WGSL, run through wgpu on
//! Vulkan, Metal, DX12 and GL, plus the stress engine that drives it.
//!
//! An app embeds it through [`KvCache`] (see its module, [`kv_cache`]), with
//! `default-features = false` so that none of the stress tool is compiled. The default
//! feature `tool` adds the modules below the core.
//!
//! The crate splits into pure bookkeeping ([`cache`]), GPU plumbing ([`gpu`]), one module per
//! kernel family ([`kernels`]) and the CPU reference they are checked against
//! ([`reference`](mod@reference)). With the `tool` feature, on top of those: the stress engine
//! (`engine`: scheduler policy in pure Rust, a GPU executor, measured runs), the scenario
//! files and scale presets (`scenario`), result files, verdicts and tables (`report`), the
//! roofline benches (`bench`), `verify`, and the tool's own kernels (`tool_kernels`).

#![warn(missing_docs)]

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod accuracy;
pub mod cache;
pub mod gpu;
pub mod kernels;
pub mod kv_cache;
pub mod reference;

#[cfg(feature = "tool")]
pub mod bench;
#[cfg(feature = "tool")]
pub mod engine;
#[cfg(feature = "tool")]
pub mod npy;
#[cfg(feature = "tool")]
pub mod report;
#[cfg(feature = "tool")]
pub mod scenario;
#[cfg(feature = "tool")]
pub mod tool_kernels;
#[cfg(feature = "tool")]
pub mod verify;

pub use cache::{CacheLayout, KvFormat, ModelGeometry, SeqId};
pub use kernels::{AppendInput, AttentionIo};
pub use kv_cache::{
    AppendStep, Capacity, DecodeStep, KvCache, KvCacheConfig, KvError, PrefillStep,
};
