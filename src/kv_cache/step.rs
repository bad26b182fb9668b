//! Step objects: the reusable per-step metadata an app prepares and records, one type per
//! kind of step so that a decode step cannot be recorded as a prefill.

use super::KvError;
use crate::kernels::{AppendBatch, DecodeBatch, PrefillBatch};
use std::cell::Cell;

/// Where a step object is in its prepare → record → submit cycle.
#[derive(Debug, Default)]
pub(super) struct StepState {
    /// The cache that prepared it last.
    prepared_by: Cell<Option<u64>>,
    /// The cache's submission epoch of the last recording.
    recorded_in: Cell<Option<u64>>,
}

impl StepState {
    /// Refuses a new upload while a recording of the old one may still be unsubmitted.
    pub(super) fn check_preparable(&self, epoch: u64, step: &'static str) -> Result<(), KvError> {
        if self.recorded_in.get() == Some(epoch) {
            return Err(KvError::StepNotSubmitted { step });
        }
        Ok(())
    }

    pub(super) fn prepared(&self, cache: u64) {
        self.prepared_by.set(Some(cache));
        self.recorded_in.set(None);
    }

    /// Refuses to record a step this cache has not prepared.
    pub(super) fn check_recordable(&self, cache: u64, step: &'static str) -> Result<(), KvError> {
        match self.prepared_by.get() {
            None => Err(KvError::NotPrepared { step }),
            Some(id) if id != cache => Err(KvError::ForeignStep { step }),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn recorded(&self, epoch: u64) {
        self.recorded_in.set(Some(epoch));
    }
}

/// A reusable append step: the slots of the step's new tokens and its copy-on-write copies.
/// Create one per concurrent step with `AppendStep::default()` and keep it.
#[derive(Debug, Default)]
pub struct AppendStep {
    pub(super) batch: AppendBatch,
    pub(super) copies: Vec<(u32, u32)>,
    /// Whether the copies have been recorded (once per preparation, before any append).
    pub(super) copies_recorded: Cell<bool>,
    pub(super) state: StepState,
}

impl AppendStep {
    /// New tokens in the prepared step: the rows the K and V bindings must hold.
    pub fn tokens(&self) -> u32 {
        self.batch.count
    }

    /// Copy-on-write block copies the step records before its first append.
    pub fn copies(&self) -> usize {
        self.copies.len()
    }
}

/// A reusable decode step: one query per sequence against its whole cache.
#[derive(Debug, Default)]
pub struct DecodeStep {
    pub(super) batch: DecodeBatch,
    pub(super) state: StepState,
}

impl DecodeStep {
    /// Output rows (sequences x q_heads) of the prepared step.
    pub fn rows(&self) -> u32 {
        self.batch.rows()
    }
}

/// A reusable prefill step: a chunk of queries per sequence, causal within the chunk.
#[derive(Debug, Default)]
pub struct PrefillStep {
    pub(super) batch: PrefillBatch,
    pub(super) state: StepState,
}

impl PrefillStep {
    /// Output rows (query tokens x q_heads) of the prepared step.
    pub fn rows(&self) -> u32 {
        self.batch.rows()
    }
}
