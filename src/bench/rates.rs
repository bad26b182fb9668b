//! The rates one run measured, and what each case asks of them.
//!
//! A case's [`Demand`] (the bytes it moves through each access path and the flops it counts)
//! does not depend on the run; its [`Bound`] does. Keeping the two apart lets a run state
//! every figure against its rooflines as it goes and restate it once the rooflines have been
//! measured again at the end: a bound must come from the fastest reading of each rate, or a
//! run that warmed up (or had a noisy start) judges its kernels against a rate the adapter
//! beat.

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
}

impl Demand {
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
        }
    }
}

/// The rates one run measured, which every bound in it is computed from.
#[derive(Clone, Copy, Debug)]
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
    /// The matmul yardstick, FLOP/s.
    pub matmul: f64,
    /// The matmul shape that rate came from, which the machine check between cases times
    /// again.
    pub yardstick: MatmulShape,
}

impl Rates {
    /// The rate of one access path.
    fn rate(&self, path: Path) -> f64 {
        match path {
            Path::BufferRead => self.buffer_read,
            Path::TextureRead => self.texture_read,
            Path::BufferWrite => self.buffer_write,
            Path::TextureWrite => self.texture_write,
        }
    }

    /// The roofline bound of `demand` at these rates.
    pub fn bound(&self, demand: &Demand) -> Bound {
        let streams = demand.streams.map(|(bytes, path)| Stream {
            bytes,
            rate: self.rate(path),
        });
        bound::bound(&streams, demand.flops, self.matmul)
    }

    /// These rates with each read rate raised to `buffer_read` / `texture_read` where those
    /// are faster (a later reading of the same roofline).
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
            matmul: 60e9,
            yardstick: MatmulShape::Tiled,
        }
    }

    #[test]
    fn each_stream_moves_at_its_own_paths_rate() {
        let demand = Demand {
            streams: [(10e9, Path::TextureRead), (5e9, Path::BufferRead)],
            flops: 0.0,
        };
        // 1 s of texture reads plus 1 s of buffer reads.
        assert_eq!(rates().bound(&demand).seconds, 2.0);
        let writes = Demand {
            streams: [(4e9, Path::BufferWrite), (3e9, Path::TextureWrite)],
            flops: 0.0,
        };
        assert_eq!(rates().bound(&writes).seconds, 2.0);
    }

    #[test]
    fn a_faster_later_reading_tightens_only_memory_bound_cases() {
        let memory = Demand {
            streams: [(10e9, Path::TextureRead), (0.0, Path::BufferRead)],
            flops: 10e9,
        };
        let compute = Demand {
            streams: [(10e9, Path::TextureRead), (0.0, Path::BufferRead)],
            flops: 120e9,
        };
        let start = rates();
        let end = start.with_faster_reads(6e9, 12.5e9);
        assert_eq!(start.bound(&memory).seconds, 1.0);
        assert_eq!(end.bound(&memory).seconds, 0.8);
        assert_eq!(start.bound(&compute).seconds, 2.0);
        assert_eq!(end.bound(&compute).seconds, 2.0);
        // A slower later reading leaves the rates as they were.
        let slower = start.with_faster_reads(1e9, 1e9);
        assert_eq!(slower.buffer_read, 5e9);
        assert_eq!(slower.texture_read, 10e9);
        assert_eq!(slower.copy, start.copy);
    }
}
