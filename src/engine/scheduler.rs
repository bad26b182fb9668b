//! A vLLM-like continuous-batching scheduler over [`KvCacheManager`]: pure policy, no GPU.
//!
//! Each [`Scheduler::schedule`] call plans one engine step within a token budget: one decode
//! token for every running request past its prompt (oldest first; when the pool runs dry the
//! newest running request is preempted, by recompute or by swap), then chunked prefill of
//! partially prefilled requests, then swap-ins, then FIFO admission of waiting requests with
//! prefix-cache reuse. The GPU runner executes the returned [`StepPlan`] and calls
//! [`Scheduler::complete`]. Bookkeeping happens at schedule time, so the plan carries final
//! slots and block tables and the runner never waits on policy.

use std::collections::{HashMap, HashSet, VecDeque};

use thiserror::Error;

pub use super::request::{
    DecodeItem, PreemptionMode, PrefillChunk, SchedulerConfig, SchedulerStats, StepPlan, SwapIn,
    SwapOut,
};
use super::request::{FinishStatus, Finished, RequestSpec, StatsAcc};
use crate::cache::{CacheError, KvCacheManager, PrefixHash, SeqId};

/// Why the scheduler refused to plan a step. Out-of-blocks is never an error (it queues or
/// preempts); these are misuse or an internal inconsistency, reported instead of panicking.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SchedulerError {
    /// The configuration cannot make progress (a zero budget or zero running slots).
    #[error("invalid scheduler configuration: {0}")]
    InvalidConfig(String),
    /// `schedule` was called again before `complete` acknowledged the previous plan.
    #[error("the previous step plan has not been completed")]
    StepInFlight,
    /// The cache refused an operation the scheduler had checked (a bookkeeping bug).
    #[error("cache bookkeeping failed: {0}")]
    Cache(#[from] CacheError),
    /// A queue named a request the scheduler has no state for (a bookkeeping bug).
    #[error("request {0} is queued but unknown")]
    UnknownRequest(u64),
    /// Requests are running but none could be given any work (a policy bug; reported so a
    /// run fails instead of looping forever).
    #[error("no progress possible with {running} running requests")]
    Stalled {
        /// Running requests at the time.
        running: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Swapped,
}

/// A submitted, unfinished request.
#[derive(Debug)]
struct Req {
    spec: RequestSpec,
    state: State,
    /// Decode steps completed.
    generated: u32,
    /// Positions below this were computed at least once (prefill of them again is recompute).
    high_water: u32,
    /// Whether the first admission (the only one counted for hit rate) happened.
    admitted: bool,
    preempted: u32,
    /// Tokens saved on the host while swapped out.
    swapped_len: u32,
    /// Leading blocks a sliding window had given back when it was swapped out (not saved).
    swapped_released: u32,
    /// While waiting: hash chain of the full blocks it could reuse at admission.
    chain: Vec<PrefixHash>,
}

impl Req {
    /// Tokens to have cached before decoding: the prompt plus whatever was generated before a
    /// recompute preemption.
    fn target(&self) -> u32 {
        self.spec.prompt.len() as u32 + self.generated
    }
}

/// One step being planned.
struct Step {
    plan: StepPlan,
    budget: u32,
    preempted: bool,
    scheduled: HashSet<u64>,
}

/// The continuous-batching scheduler. See the module docs for the step order.
#[derive(Debug)]
pub struct Scheduler {
    cache: KvCacheManager,
    config: SchedulerConfig,
    reqs: HashMap<u64, Req>,
    seen: HashSet<u64>,
    waiting: VecDeque<u64>,
    swapped: VecDeque<u64>,
    /// Running requests in (re)entry order: the last is the newest, preempted first.
    running: Vec<u64>,
    /// Multiset of the hash chains of waiting requests, to tell harmful LRU evictions.
    waiting_hashes: HashMap<PrefixHash, u32>,
    /// Hashes of cached blocks already counted as evicted when their owner was preempted, so
    /// a later LRU drop of the same contents is not counted twice.
    counted_lru: HashSet<PrefixHash>,
    finished: Vec<Finished>,
    in_flight: Option<Vec<(u64, bool)>>,
    acc: StatsAcc,
}

impl Scheduler {
    /// A scheduler owning `cache` (build it with prefix caching on to measure hit rates).
    /// Fails on a configuration that could never schedule anything.
    pub fn new(cache: KvCacheManager, config: SchedulerConfig) -> Result<Self, SchedulerError> {
        if config.max_step_tokens == 0 || config.max_running == 0 {
            return Err(SchedulerError::InvalidConfig(
                "max_step_tokens and max_running must be at least 1".into(),
            ));
        }
        if config.sliding_window == Some(0) {
            return Err(SchedulerError::InvalidConfig(
                "a sliding window must hold at least one key".into(),
            ));
        }
        if cache.seq_ids().next().is_some() {
            return Err(SchedulerError::InvalidConfig(
                "the cache must start without live sequences (request ids name them)".into(),
            ));
        }
        Ok(Self {
            cache,
            config,
            reqs: HashMap::new(),
            seen: HashSet::new(),
            waiting: VecDeque::new(),
            swapped: VecDeque::new(),
            running: Vec::new(),
            waiting_hashes: HashMap::new(),
            counted_lru: HashSet::new(),
            finished: Vec::new(),
            in_flight: None,
            acc: StatsAcc::default(),
        })
    }

    /// The cache bookkeeping, read-only (for metrics and invariant checks).
    pub fn cache(&self) -> &KvCacheManager {
        &self.cache
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Records the workload's "could have hit" prompt tokens (see
    /// [`super::workload::total_shareable_tokens`]) so stats report them beside the hits.
    pub fn set_shareable_tokens(&mut self, tokens: u64) {
        self.acc.stats.shareable_tokens = tokens;
    }

    /// Queues a request (FIFO). A request that can never run (duplicate id, empty prompt, or
    /// more blocks than the whole pool: for prompt plus generation, or with a sliding window
    /// for the window) is reported Rejected by the next [`Self::complete`] instead of being
    /// queued, so nothing waits forever.
    pub fn submit(&mut self, spec: RequestSpec) {
        let need = self.blocks_to_hold(spec.final_len()) as u64;
        let reason = if !self.seen.insert(spec.id) {
            Some("duplicate request id".to_string())
        } else if spec.prompt.is_empty() {
            Some("empty prompt".to_string())
        } else if need > self.cache.num_blocks() as u64 {
            let what = match self.config.sliding_window {
                Some(w) => format!("its {w}-key sliding window"),
                None => "prompt and generation".to_string(),
            };
            Some(format!(
                "needs {need} blocks for {what} but the pool has {}",
                self.cache.num_blocks()
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            self.reject(spec.id, reason, 0);
            return;
        }
        let id = spec.id;
        let mut req = Req {
            spec,
            state: State::Waiting,
            generated: 0,
            high_water: 0,
            admitted: false,
            preempted: 0,
            swapped_len: 0,
            swapped_released: 0,
            chain: Vec::new(),
        };
        self.enter_waiting(&mut req);
        self.reqs.insert(id, req);
        self.waiting.push_back(id);
    }

    /// True when every submitted request has been reported finished.
    pub fn is_done(&self) -> bool {
        self.reqs.is_empty() && self.finished.is_empty() && self.in_flight.is_none()
    }

    /// Requests queued for (re)admission.
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests holding cache blocks.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// Requests swapped out to host memory.
    pub fn num_swapped(&self) -> usize {
        self.swapped.len()
    }

    /// Times an unfinished request has been preempted so far (`None` once it finished or if
    /// it was never submitted), so the runner can pick preempted requests for spot checks.
    pub fn times_preempted(&self, id: u64) -> Option<u32> {
        self.reqs.get(&id).map(|r| r.preempted)
    }

    /// Counters so far (see [`SchedulerStats`]).
    pub fn stats(&self) -> SchedulerStats {
        self.acc.snapshot(&self.cache.stats())
    }

    /// Plans the next step. Call [`Self::complete`] with the plan after the GPU ran it (also
    /// when it is empty) before scheduling again.
    pub fn schedule(&mut self) -> Result<StepPlan, SchedulerError> {
        if self.in_flight.is_some() {
            return Err(SchedulerError::StepInFlight);
        }
        let mut step = Step {
            plan: StepPlan::default(),
            budget: self.config.max_step_tokens,
            preempted: false,
            scheduled: HashSet::new(),
        };
        self.schedule_running(&mut step)?;
        if !step.preempted {
            self.swap_in(&mut step)?;
            if self.swapped.is_empty() {
                self.admit(&mut step)?;
            }
        }
        if !step.preempted && step.plan.is_empty() && !self.reqs.is_empty() {
            if !self.running.is_empty() {
                return Err(SchedulerError::Stalled {
                    running: self.running.len(),
                });
            }
            // Unreachable by construction (submit rejects what an empty pool cannot hold);
            // kept so that a policy bug shows up as a rejection, never a hang.
            let head = self
                .swapped
                .pop_front()
                .or_else(|| self.waiting.pop_front());
            if let Some(id) = head {
                let generated = self.reqs.get(&id).map_or(0, |r| r.generated);
                self.drop_req(id);
                self.reject(
                    id,
                    "no progress possible with an idle pool".into(),
                    generated,
                );
            }
        }
        let reqs = &self.reqs;
        let final_len = |id: SeqId| reqs.get(&id.0).map_or(0, |r| r.spec.final_len());
        self.acc.record_step(&self.cache, &self.config, final_len);
        self.in_flight = Some(step.plan.work());
        Ok(step.plan)
    }

    /// Acknowledges that the GPU ran `plan` (the one [`Self::schedule`] just returned):
    /// decodes count as generated tokens, requests that generated `generation_len` tokens
    /// finish and free their blocks (full prefix blocks stay cached for reuse), and under a
    /// sliding window the others give back the blocks they slid past. Returns the
    /// requests finished since the last call, rejected ones included. A plan that is not the
    /// outstanding one is ignored (returns nothing) so it cannot corrupt the accounting.
    pub fn complete(&mut self, plan: &StepPlan) -> Vec<Finished> {
        match &self.in_flight {
            Some(work) if *work == plan.work() => {}
            Some(_) => return Vec::new(),
            None => return std::mem::take(&mut self.finished),
        }
        for (id, is_decode) in self.in_flight.take().unwrap_or_default() {
            let Some(r) = self.reqs.get_mut(&id) else {
                continue;
            };
            r.generated += is_decode as u32;
            let ctx = self.cache.context_len(SeqId(id));
            if r.state == State::Running
                && ctx == r.target()
                && r.generated >= r.spec.generation_len
            {
                let (generated, preempted) = (r.generated, r.preempted);
                self.drop_req(id);
                self.acc.stats.completed += 1;
                self.finished.push(Finished {
                    request: id,
                    status: FinishStatus::Completed,
                    generated,
                    preempted,
                });
            } else if r.state == State::Running {
                self.slide(id);
            }
        }
        std::mem::take(&mut self.finished)
    }

    /// Blocks a request of `len` tokens must hold at once to make progress: all of them, or
    /// with a sliding window the window's blocks plus the block being written and one that
    /// a window starting mid-block keeps.
    fn blocks_to_hold(&self, len: u64) -> u32 {
        let bs = self.cache.block_size() as u64;
        let all = len.div_ceil(bs);
        let held = match self.config.sliding_window {
            Some(w) => all.min((w as u64).div_ceil(bs) + 2),
            None => all,
        };
        held.min(u32::MAX as u64) as u32
    }

    /// Under a sliding window, gives back the blocks no later query of running request `id`
    /// can see. The step that last read them has finished, so they may be reused at once.
    fn slide(&mut self, id: u64) {
        if let Some(window) = self.config.sliding_window {
            // Fails only for an unknown sequence or a zero window, both ruled out by
            // construction; a failure leaves the blocks held, which is merely wasteful.
            let _ = self.cache.release_outside_window(SeqId(id), window);
        }
    }

    fn reject(&mut self, id: u64, reason: String, generated: u32) {
        self.acc.stats.rejected += 1;
        self.finished.push(Finished {
            request: id,
            status: FinishStatus::Rejected { reason },
            generated,
            preempted: 0,
        });
    }

    /// Removes a request from every queue and frees its sequence.
    fn drop_req(&mut self, id: u64) {
        let Some(mut r) = self.reqs.remove(&id) else {
            return;
        };
        self.leave_waiting(&mut r);
        // Only the queue of its state can hold it: O(that queue), not O(all queues).
        match r.state {
            State::Running => self.running.retain(|&x| x != id),
            State::Waiting => self.waiting.retain(|&x| x != id),
            State::Swapped => self.swapped.retain(|&x| x != id),
        }
        if self.cache.contains(SeqId(id)) {
            let _ = self.cache.free(SeqId(id));
        }
    }
}

#[path = "scheduler_policy.rs"]
mod policy;

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
