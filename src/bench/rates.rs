//! The rates one run measured, and what each case asks of them.
//!
//! A case's [`Demand`] (the bytes it moves through each access path and the flops it counts)
//! does not depend on the run; its [`Bound`] does. Keeping the two apart lets a run state
//! every figure against its rooflines as it goes and restate it once the rooflines have been
//! measured again at the end: a bound must come from the fastest reading of each rate, or a
//! run that warmed up (or had a noisy start) judges its kernels against a rate the adapter
//! beat.
//!
//! A case's bytes are timed against the rates of a working set its size: the smallest rung of
//! [`WorkingSetRates`] that holds them, or the streaming rates where none does. A case whose
//! bytes fit a cache re-reads them from it on every sample, so the streaming rates would
//! under-state what its access paths allow.

use super::WorkingSetRates;
use super::bound::{self, Bound, Stream};
use super::kernels::{self, AttentionCase};
use crate::gpu::{GpuContext, KvBacking};
use crate::kernels::AttentionAlgorithm;
use crate::tool_kernels::matmul::MatmulShape;

/// The measured rate a stream of bytes moves at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// Read through a storage buffer.
    BufferRead,
    /// Read through a texture.
    TextureRead,
    /// Written through a storage buffer.
    BufferWrite,
    /// Written through a texture.
    TextureWrite,
}

/// What a case moves and computes: enough to compute its bound from any set of rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Demand {
    /// Bytes per access path (at most two paths per case).
    pub streams: [(f64, Path); 2],
    /// Flops counted ([`bound::decode_flops`], [`bound::prefill_flops`]; 0 for append).
    pub flops: f64,
    /// Bytes the other cases timed in alternation with this one touch between two of its
    /// samples ([`Demand::alternating_with`]; 0 for a case timed alone). They pass through
    /// the same caches, so they count toward the working set, not toward the time.
    pub alternated_bytes: f64,
}

impl Demand {
    /// The bytes that pass through the caches from one of the case's samples to the next:
    /// its own streams and, timed in alternation, the other cases' bytes. What must fit a
    /// cache for the case to be re-read from it.
    pub fn working_set(&self) -> f64 {
        self.own_bytes() + self.alternated_bytes
    }

    /// The bytes the case's own streams move.
    pub fn own_bytes(&self) -> f64 {
        self.streams.iter().map(|(bytes, _)| bytes).sum()
    }

    /// This demand timed one sample at a time in turn with cases that touch `others` bytes
    /// between two of its samples: between its samples theirs pass through the caches, so a
    /// cache that would hold this case's bytes alone need not hold them on its next sample.
    /// Its working set, and so the rates its bytes are bounded at, counts theirs too.
    pub fn alternating_with(self, others: f64) -> Self {
        Self {
            alternated_bytes: others,
            ..self
        }
    }

    /// Where the case's KV pool lives: textures on CPU adapters, buffers elsewhere (the same
    /// choice the case's storage makes; a forced tiled path reads buffers).
    fn backing(ctx: &GpuContext, case: &AttentionCase) -> KvBacking {
        AttentionAlgorithm::pool_backing(case.kernels.algorithm, ctx, &case.layout())
    }

    /// Decode: KV bytes through the pool's read path, f32 Q and output through buffers,
    /// [`bound::decode_flops`].
    pub fn decode(ctx: &GpuContext, case: &AttentionCase) -> Self {
        let flops = bound::decode_flops(&case.geometry, case.batch, case.context);
        Self::attention(ctx, case, 1, flops)
    }

    /// Prefill: as decode with `context` queries per sequence, [`bound::prefill_flops`].
    pub fn prefill(ctx: &GpuContext, case: &AttentionCase) -> Self {
        let flops = bound::prefill_flops(&case.geometry, case.batch, case.context);
        Self::attention(ctx, case, case.context, flops)
    }

    fn attention(ctx: &GpuContext, case: &AttentionCase, queries: u32, flops: f64) -> Self {
        let pool = match Self::backing(ctx, case) {
            KvBacking::Textures => Path::TextureRead,
            KvBacking::Buffers => Path::BufferRead,
        };
        Self {
            streams: [
                (case.kv_bytes() as f64, pool),
                (case.io_bytes(queries) as f64, Path::BufferRead),
            ],
            flops,
            alternated_bytes: 0.0,
        }
    }

    /// Append: its f32 K/V reads through buffers plus its pool writes through the pool's
    /// write path; it counts no flops, so it is memory-bound by construction.
    pub fn append(ctx: &GpuContext, case: &AttentionCase) -> Self {
        let (read, written) = kernels::append_bytes(case);
        let pool = match Self::backing(ctx, case) {
            KvBacking::Textures => Path::TextureWrite,
            KvBacking::Buffers => Path::BufferWrite,
        };
        Self {
            streams: [(read as f64, Path::BufferRead), (written as f64, pool)],
            flops: 0.0,
            alternated_bytes: 0.0,
        }
    }
}

/// The demands of cases timed one sample of each in turn, in order: each alternating with the
/// bytes of the others that were timed (a case that could not be set up touches none).
pub(super) fn in_alternation(
    demands: impl IntoIterator<Item = Demand>,
    timed: impl IntoIterator<Item = bool>,
) -> Vec<Demand> {
    let cases: Vec<(Demand, bool)> = demands.into_iter().zip(timed).collect();
    let touched: f64 = cases
        .iter()
        .filter(|(_, timed)| *timed)
        .map(|(d, _)| d.own_bytes())
        .sum();
    cases
        .into_iter()
        .map(|(d, timed)| {
            let others = touched - if timed { d.own_bytes() } else { 0.0 };
            d.alternating_with(others)
        })
        .collect()
}

/// The rates one run measured, which every bound in it is computed from.
#[derive(Clone, Debug)]
pub(super) struct Rates {
    /// Copy roofline, bytes read + written per second.
    pub copy: f64,
    /// Read through a storage buffer, bytes per second.
    pub buffer_read: f64,
    /// Read through a texture, bytes per second.
    pub texture_read: f64,
    /// Written through a storage buffer, bytes per second.
    pub buffer_write: f64,
    /// Written through a texture, bytes per second.
    pub texture_write: f64,
    /// The same four rates on working sets smaller than the streaming source, smallest first.
    pub working_sets: Vec<WorkingSetRates>,
    /// The matmul yardstick, FLOP/s.
    pub matmul: f64,
    /// The matmul shape that rate came from, which the machine check between cases times
    /// again.
    pub yardstick: MatmulShape,
}

impl Rates {
    /// The streaming rate of one access path.
    fn streaming(&self, path: Path) -> f64 {
        match path {
            Path::BufferRead => self.buffer_read,
            Path::TextureRead => self.texture_read,
            Path::BufferWrite => self.buffer_write,
            Path::TextureWrite => self.texture_write,
        }
    }

    /// The smallest working set measured that holds `bytes`, `None` when only the streaming
    /// source does.
    pub fn working_set_for(&self, bytes: f64) -> Option<u64> {
        self.working_sets
            .iter()
            .map(|rung| rung.bytes)
            .find(|&rung| rung as f64 >= bytes)
    }

    /// The rate of `path` for a case touching `bytes`: the fastest reading on any working set
    /// at least that large, the streaming source included. A larger working set never makes
    /// a path faster, so a rung measured slower than a larger one (noise) takes the larger
    /// one's rate: noise can only tighten a bound.
    fn rate(&self, path: Path, bytes: f64) -> f64 {
        self.working_sets
            .iter()
            .filter(|rung| rung.bytes as f64 >= bytes)
            .map(|rung| match path {
                Path::BufferRead => rung.buffer_read,
                Path::TextureRead => rung.texture_read,
                Path::BufferWrite => rung.buffer_write,
                Path::TextureWrite => rung.texture_write,
            })
            .fold(self.streaming(path), f64::max)
    }

    /// The roofline bound of `demand` at these rates, each stream at the rate of the case's
    /// working set.
    pub fn bound(&self, demand: &Demand) -> Bound {
        let working_set = demand.working_set();
        let streams = demand.streams.map(|(bytes, path)| Stream {
            bytes,
            rate: self.rate(path, working_set),
        });
        bound::bound(&streams, demand.flops, self.matmul)
    }

    /// These rates with the matmul rate raised to `matmul` where that is faster (the
    /// yardstick timed again at the end of the run: a yardstick first timed in a slow spell
    /// would make every compute-side bound lenient).
    pub fn with_faster_matmul(self, matmul: f64) -> Self {
        Self {
            matmul: self.matmul.max(matmul),
            ..self
        }
    }

    /// These rates with each streaming read rate raised to `buffer_read` / `texture_read`
    /// where those are faster (a later reading of the same roofline).
    pub fn with_faster_reads(self, buffer_read: f64, texture_read: f64) -> Self {
        Self {
            buffer_read: self.buffer_read.max(buffer_read),
            texture_read: self.texture_read.max(texture_read),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Rates {
        Rates {
            copy: 8e9,
            buffer_read: 5e9,
            texture_read: 10e9,
            buffer_write: 4e9,
            texture_write: 3e9,
            working_sets: Vec::new(),
            matmul: 60e9,
            yardstick: MatmulShape::Tiled,
        }
    }

    #[test]
    fn each_stream_moves_at_its_own_paths_rate() {
        let demand = Demand {
            streams: [(10e9, Path::TextureRead), (5e9, Path::BufferRead)],
            flops: 0.0,
            alternated_bytes: 0.0,
        };
        // 1 s of texture reads plus 1 s of buffer reads.
        assert_eq!(rates().bound(&demand).seconds, 2.0);
        let writes = Demand {
            streams: [(4e9, Path::BufferWrite), (3e9, Path::TextureWrite)],
            flops: 0.0,
            alternated_bytes: 0.0,
        };
        assert_eq!(rates().bound(&writes).seconds, 2.0);
    }

    /// 10 GB of texture reads with 10 GFLOP (memory-bound at [`rates`]: 1 s against
    /// 0.17) and with 120 GFLOP (compute-bound: 2 s against 1).
    fn memory_and_compute_bound() -> (Demand, Demand) {
        let with_flops = |flops| Demand {
            streams: [(10e9, Path::TextureRead), (0.0, Path::BufferRead)],
            flops,
            alternated_bytes: 0.0,
        };
        (with_flops(10e9), with_flops(120e9))
    }

    #[test]
    fn a_faster_later_reading_tightens_only_memory_bound_cases() {
        let (memory, compute) = memory_and_compute_bound();
        let start = rates();
        let end = start.clone().with_faster_reads(6e9, 12.5e9);
        assert_eq!(start.bound(&memory).seconds, 1.0);
        assert_eq!(end.bound(&memory).seconds, 0.8);
        assert_eq!(start.bound(&compute).seconds, 2.0);
        assert_eq!(end.bound(&compute).seconds, 2.0);
        // A slower later reading leaves the rates as they were.
        let slower = start.clone().with_faster_reads(1e9, 1e9);
        assert_eq!(slower.buffer_read, 5e9);
        assert_eq!(slower.texture_read, 10e9);
        assert_eq!(slower.copy, start.copy);
    }

    #[test]
    fn a_faster_later_yardstick_tightens_only_compute_bound_cases() {
        let (memory, compute) = memory_and_compute_bound();
        let start = rates();
        let end = start.clone().with_faster_matmul(80e9);
        assert_eq!(start.bound(&compute).seconds, 2.0);
        assert_eq!(end.bound(&compute).seconds, 1.5);
        assert_eq!(end.bound(&memory).seconds, start.bound(&memory).seconds);
        // A slower later reading leaves the rate as it was.
        assert_eq!(start.clone().with_faster_matmul(1e9).matmul, 60e9);
    }

    /// `bytes` read through a texture, nothing else.
    fn reads(bytes: f64) -> Demand {
        Demand {
            streams: [(bytes, Path::TextureRead), (0.0, Path::BufferRead)],
            flops: 0.0,
            alternated_bytes: 0.0,
        }
    }

    /// [`rates`] with an 8 MiB rung at 40 GB/s and a 16 MiB one at 20 GB/s.
    fn two_rungs() -> Rates {
        Rates {
            working_sets: vec![rung(8 << 20, 40e9), rung(16 << 20, 20e9)],
            ..rates()
        }
    }

    fn rung(bytes: u64, rate: f64) -> WorkingSetRates {
        WorkingSetRates {
            bytes,
            buffer_read: rate,
            texture_read: rate,
            buffer_write: rate,
            texture_write: rate,
        }
    }

    #[test]
    fn a_case_takes_the_rates_of_the_smallest_working_set_holding_its_bytes() {
        let ladder = Rates {
            working_sets: vec![
                rung(8 << 20, 40e9),
                rung(16 << 20, 30e9),
                rung(32 << 20, 20e9),
            ],
            ..rates()
        };
        let mib = (1u64 << 20) as f64;
        // Smaller than every rung: the smallest one's rate.
        assert_eq!(ladder.working_set_for(mib), Some(8 << 20));
        assert_eq!(ladder.bound(&reads(4e6)).seconds, 4e6 / 40e9);
        // Just over a rung: the next one up.
        assert_eq!(ladder.working_set_for(8.0 * mib + 1.0), Some(16 << 20));
        assert_eq!(ladder.bound(&reads(9.0 * mib)).seconds, 9.0 * mib / 30e9);
        // A rung exactly.
        assert_eq!(ladder.bound(&reads(32.0 * mib)).seconds, 32.0 * mib / 20e9);
        // Larger than every rung: the streaming rate.
        assert_eq!(ladder.working_set_for(33.0 * mib), None);
        assert_eq!(ladder.bound(&reads(40.0 * mib)).seconds, 40.0 * mib / 10e9);
    }

    #[test]
    fn the_working_set_counts_every_stream_of_the_case() {
        let ladder = two_rungs();
        let mib = (1u64 << 20) as f64;
        // 6 MiB of reads and 4 MiB of writes: 10 MiB touched, so the 16 MiB rung's rates.
        let append = Demand {
            streams: [
                (6.0 * mib, Path::BufferRead),
                (4.0 * mib, Path::TextureWrite),
            ],
            flops: 0.0,
            alternated_bytes: 0.0,
        };
        assert_eq!(append.working_set(), 10.0 * mib);
        assert_eq!(ladder.bound(&append).seconds, 10.0 * mib / 20e9);
    }

    #[test]
    fn cases_timed_in_alternation_share_one_working_set() {
        let ladder = two_rungs();
        let mib = (1u64 << 20) as f64;
        // Two 6 MiB cases and one the pool cap refused (it touches nothing): alone each fits
        // 8 MiB, but between two samples of one the other's 6 MiB pass through the caches.
        let [a, b, _refused] = in_alternation([reads(6.0 * mib); 3], [true, true, false])[..]
        else {
            panic!("one demand per case");
        };
        assert_eq!(a.working_set(), 12.0 * mib);
        assert_eq!(b.working_set(), 12.0 * mib);
        assert_eq!(ladder.working_set_for(a.working_set()), Some(16 << 20));
        // The time is still the case's own bytes, at the shared working set's rate.
        assert_eq!(ladder.bound(&a).seconds, 6.0 * mib / 20e9);
        assert_eq!(ladder.bound(&reads(6.0 * mib)).seconds, 6.0 * mib / 40e9);
        // A case timed alone keeps its own working set.
        assert_eq!(
            in_alternation([reads(6.0 * mib)], [true])[0].working_set(),
            6.0 * mib
        );
    }

    #[test]
    fn a_rung_slower_than_a_larger_one_takes_the_larger_ones_rate() {
        // Noise made the 8 MiB reading slower than the 16 MiB one and than streaming.
        let ladder = Rates {
            working_sets: vec![rung(8 << 20, 2e9), rung(16 << 20, 30e9)],
            ..rates()
        };
        let demand = reads(4e6);
        assert_eq!(ladder.bound(&demand).seconds, 4e6 / 30e9);
        // And no rung is ever taken below the streaming rate.
        let slow = Rates {
            working_sets: vec![rung(8 << 20, 1e9)],
            ..rates()
        };
        assert_eq!(slow.bound(&demand).seconds, 4e6 / 10e9);
    }
}
