//! How a step's partial softmax results fit their scratch buffer. Every context split of every
//! pool shard leaves a partial row (`head_dim` f32 values plus its max and sum) for the
//! combine pass to merge, so the scratch grows with rows x splits x shards. One binding holds
//! at most the device's largest storage binding (128 MiB on many adapters): a 2048-token
//! Qwen2.5-7B prefill needs 28 MiB per partition, so a pool of five shards would not fit.
//! A step that would need more takes fewer splits, then merges its shards a group at a time:
//! each group's combine pass folds the rows so far into the output (flash-decoding's merge,
//! applied once more), and the scratch is reused by the next group.

use crate::gpu::{DeviceLimit, LimitExceeded};

/// How a step's partitions are laid out in the scratch buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartialLayout {
    /// Context splits per shard.
    pub(crate) splits: u32,
    /// Pool shards whose partials share the scratch at once (the last group may hold fewer).
    pub(crate) shards_per_group: u32,
    /// Groups of shards, each followed by a combine pass.
    pub(crate) groups: u32,
    /// Pool shards in all.
    pub(crate) shards: u32,
}

impl PartialLayout {
    /// The group shard `shard` belongs to.
    pub(crate) fn group_of(&self, shard: u32) -> u32 {
        shard / self.shards_per_group
    }

    /// The shards of group `group`.
    pub(crate) fn group_shards(&self, group: u32) -> std::ops::Range<u32> {
        let first = group * self.shards_per_group;
        first..(first + self.shards_per_group).min(self.shards)
    }

    /// Partitions per row in group `group`'s scratch: its shards' splits side by side.
    pub(crate) fn group_partitions(&self, group: u32) -> u32 {
        self.group_shards(group).len() as u32 * self.splits
    }

    /// Where shard `shard`'s first split sits among its group's partitions.
    pub(crate) fn partition_base(&self, shard: u32) -> u32 {
        (shard % self.shards_per_group) * self.splits
    }

    /// Partitions per row across all groups (what the step merges in all).
    pub(crate) fn total_partitions(&self) -> u32 {
        self.splits * self.shards
    }
}

/// Fits a step of `rows` output rows of `head_dim` values to `budget` bytes of scratch: at
/// most `wanted_splits` splits (never fewer than `min_splits`, which a kernel's longest
/// split sets), then as many of the pool's `shards` per group as the rest allows, the groups
/// balanced. Refuses a step in which `min_splits` partitions of one shard do not fit.
pub(crate) fn fit(
    rows: u32,
    head_dim: u32,
    wanted_splits: u32,
    min_splits: u32,
    shards: u32,
    budget: u64,
) -> Result<PartialLayout, LimitExceeded> {
    let per_partition = (rows.max(1) as u64) * head_dim as u64 * 4;
    let fits = budget / per_partition;
    let splits = (wanted_splits as u64)
        .min(fits)
        .max(min_splits.max(1) as u64);
    if splits > fits {
        return Err(LimitExceeded {
            what: "the step's partial results".into(),
            limit: DeviceLimit::StorageBindingSize,
            needed: splits * per_partition,
            allowed: budget,
            remedy: "use smaller batches or prefill chunks",
        });
    }
    let shards = shards.max(1);
    let most_per_group = (fits / splits).min(shards as u64) as u32;
    let groups = shards.div_ceil(most_per_group);
    Ok(PartialLayout {
        splits: splits as u32,
        shards_per_group: shards.div_ceil(groups),
        groups,
        shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_step_that_fits_keeps_its_splits_and_one_group() {
        let layout = fit(8 * 28, 128, 16, 1, 3, 128 * MIB).unwrap();
        assert_eq!(
            layout,
            PartialLayout {
                splits: 16,
                shards_per_group: 3,
                groups: 1,
                shards: 3
            }
        );
        assert_eq!(layout.total_partitions(), 48);
        assert_eq!(layout.group_partitions(0), 48);
        assert_eq!(layout.partition_base(2), 32);
    }

    #[test]
    fn a_long_prefill_over_many_shards_merges_them_in_balanced_groups() {
        // Qwen2.5-7B, 2048 tokens: 28 MiB per partition, 4 fit in 128 MiB; 10 shards take
        // three groups of 4, 4 and 2, balanced to 4, 4 and 2 (ceil(10 / 3) = 4).
        let layout = fit(2048 * 28, 128, 1, 1, 10, 128 * MIB).unwrap();
        assert_eq!((layout.splits, layout.groups), (1, 3));
        assert_eq!(layout.shards_per_group, 4);
        let sizes: Vec<usize> = (0..3).map(|g| layout.group_shards(g).len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(layout.group_of(9), 2);
        assert_eq!(layout.partition_base(9), 1);
        assert_eq!(layout.group_partitions(2), 2);
        // Five shards, four fit: two groups of three and two, not four and one.
        let five = fit(2048 * 28, 128, 1, 1, 5, 128 * MIB).unwrap();
        assert_eq!((five.shards_per_group, five.groups), (3, 2));
    }

    #[test]
    fn splits_give_way_before_shards_are_grouped_but_not_below_the_minimum() {
        // 1 MiB per partition, 8 fit: 32 splits wanted, 8 taken, one shard per group.
        let rows = (MIB / (128 * 4)) as u32;
        let layout = fit(rows, 128, 32, 1, 2, 8 * MIB).unwrap();
        assert_eq!(
            (layout.splits, layout.shards_per_group, layout.groups),
            (8, 1, 2)
        );
        // A kernel whose longest split forces 9 splits cannot fit 8.
        let refused = fit(rows, 128, 32, 9, 2, 8 * MIB).unwrap_err();
        assert_eq!((refused.needed, refused.allowed), (9 * MIB, 8 * MIB));
        // Not even one partition: refused with what it needed.
        assert!(fit(rows, 128, 1, 1, 1, MIB / 2).is_err());
    }
}
