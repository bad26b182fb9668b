//! The bind groups a batch reuses step after step. A bind group holds every buffer it names,
//! the caller's Q, K, V and output buffers included, so the cache must not outlive the
//! caller's use of them: an app that uploads each step's K/V into a fresh buffer would
//! otherwise keep every one of those buffers alive inside the cache.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;

/// One caller-supplied buffer range in a bind group's identity.
pub(crate) type RangeKey = (wgpu::Buffer, u64, Option<std::num::NonZeroU64>);

/// The identity of a cached bind group: which dispatch (`slot`: 0 attention, 1 combine, ...),
/// which layer and shard, and the caller's buffer ranges. The batch's own buffers are not in
/// the key: the cache is emptied whenever one of them is replaced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BindKey {
    pub(crate) slot: u8,
    pub(crate) layer: u32,
    pub(crate) shard: u32,
    pub(crate) ranges: [Option<RangeKey>; 2],
}

/// The identity of a caller's buffer range.
pub(crate) fn range_key(binding: &wgpu::BufferBinding<'_>) -> RangeKey {
    (binding.buffer.clone(), binding.offset, binding.size)
}

/// Most entries one step's map keeps: a step that binds more distinct ranges than this (far
/// more than layers x shards x dispatches) rebuilds groups, which is correct, only slower.
const MAX_ENTRIES_PER_STEP: usize = 4096;

/// Values kept for the step being recorded and the one before it. Each step's prepare call
/// ([`StepCache::next_step`]) retires the older step, so an entry lives as long as some step
/// uses it and at most one step longer: a steady state (the same buffers every step) hits
/// every time, and buffers the caller stopped binding are released a step later.
#[derive(Debug)]
pub(crate) struct StepCache<K, V> {
    current: RefCell<HashMap<K, V>>,
    previous: RefCell<HashMap<K, V>>,
}

impl<K, V> Default for StepCache<K, V> {
    fn default() -> Self {
        Self {
            current: RefCell::new(HashMap::new()),
            previous: RefCell::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> StepCache<K, V> {
    /// The value for `key`: this step's, else the previous step's (kept on for this one),
    /// else `make`'s.
    pub(crate) fn get(&self, key: K, make: impl FnOnce() -> V) -> V {
        let mut current = self.current.borrow_mut();
        if let Some(value) = current.get(&key) {
            return value.clone();
        }
        let value = self.previous.borrow_mut().remove(&key).unwrap_or_else(make);
        if current.len() >= MAX_ENTRIES_PER_STEP {
            current.clear();
        }
        current.insert(key, value.clone());
        value
    }

    /// Starts a step: the previous step's unused entries are dropped.
    pub(crate) fn next_step(&self) {
        let done = std::mem::take(&mut *self.current.borrow_mut());
        *self.previous.borrow_mut() = done;
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.current.borrow_mut().clear();
        self.previous.borrow_mut().clear();
    }

    /// Entries held, both steps together.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.borrow().len() + self.previous.borrow().len()
    }
}

/// Bind groups a batch has made, reused step after step while the batch's buffers, the pool
/// and the caller's ranges stay the same, so a steady-state step creates no GPU objects.
/// Keyed by [`BindKey`] unless a family binds other things (the stress tool's generator
/// binds three caller buffers).
#[derive(Debug)]
pub(crate) struct BindCache<K = BindKey> {
    groups: StepCache<K, wgpu::BindGroup>,
    /// Sum of the batch's buffer generations when the cached groups were made.
    generation: Cell<u64>,
}

impl<K> Default for BindCache<K> {
    fn default() -> Self {
        Self {
            groups: StepCache::default(),
            generation: Cell::new(0),
        }
    }
}

impl<K: Eq + Hash> BindCache<K> {
    /// Called by every prepare: forgets every group if the batch's buffers changed since they
    /// were made, and otherwise starts a new step of [`StepCache`].
    pub(crate) fn sync(&self, generation: u64) {
        if self.generation.get() != generation {
            self.groups.clear();
            self.generation.set(generation);
        } else {
            self.groups.next_step();
        }
    }

    /// The cached group for `key`, made by `make` on first use.
    pub(crate) fn get(&self, key: K, make: impl FnOnce() -> wgpu::BindGroup) -> wgpu::BindGroup {
        self.groups.get(key, make)
    }
}

#[cfg(test)]
mod tests {
    use super::StepCache;
    use std::cell::Cell;

    #[test]
    fn a_steady_state_hits_every_step() {
        let cache = StepCache::<u32, u32>::default();
        let made = Cell::new(0);
        let make = |k: u32| {
            made.set(made.get() + 1);
            k * 10
        };
        for _ in 0..5 {
            cache.next_step();
            for key in 0..3 {
                assert_eq!(cache.get(key, || make(key)), key * 10);
                assert_eq!(cache.get(key, || make(key)), key * 10);
            }
        }
        assert_eq!(made.get(), 3, "each group is made once");
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn entries_a_step_stops_using_are_dropped_one_step_later() {
        let cache = StepCache::<u32, std::rc::Rc<u32>>::default();
        let first = std::rc::Rc::new(1);
        cache.get(1, || first.clone());
        assert_eq!(std::rc::Rc::strong_count(&first), 2);
        // Fresh keys every step (a caller uploading into new buffers): the old ones go.
        for key in 2..6 {
            cache.next_step();
            cache.get(key, || std::rc::Rc::new(key));
            assert!(cache.len() <= 2, "held {} entries", cache.len());
        }
        assert_eq!(std::rc::Rc::strong_count(&first), 1, "the cache let go");
    }

    #[test]
    fn an_entry_skipped_for_one_step_is_dropped_and_remade() {
        let cache = StepCache::<u32, u32>::default();
        let made = Cell::new(0);
        let get = |key| {
            cache.get(key, || {
                made.set(made.get() + 1);
                key
            })
        };
        get(1);
        cache.next_step();
        get(2);
        cache.next_step();
        get(2);
        get(1);
        assert_eq!(made.get(), 3, "key 1 was remade after a step without it");
    }
}
