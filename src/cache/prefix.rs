//! Hash chains that identify full blocks for automatic prefix caching.
//!
//! A block's identity is its own tokens *and* everything before it, so two blocks with the
//! same tokens at different prefixes never alias. The hash is implemented here (FNV-1a plus a
//! SplitMix64 finaliser) rather than taken from `std`, so its values are fixed across Rust
//! versions and platforms and results files stay comparable.

/// 64-bit identity of a full block: a function of the parent block's hash and this block's
/// token ids.
pub type PrefixHash = u64;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// SplitMix64 finaliser: spreads FNV's weak high bits so the full 64 bits are usable.
    fn finish(self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Hash of one full block given the hash of the block before it (`None` for the first block
/// of a sequence). Deterministic: the same chain of tokens always gives the same value.
pub fn block_hash(parent: Option<PrefixHash>, tokens: &[u32]) -> PrefixHash {
    let mut h = Fnv(FNV_OFFSET);
    match parent {
        None => h.bytes(&[0]),
        Some(p) => {
            h.bytes(&[1]);
            h.bytes(&p.to_le_bytes());
        }
    }
    h.bytes(&(tokens.len() as u64).to_le_bytes());
    for t in tokens {
        h.bytes(&t.to_le_bytes());
    }
    h.finish()
}

/// Hashes of every full block of `tokens`, in order, each chained on the one before.
pub fn chain_hashes(tokens: &[u32], block_size: u32) -> Vec<PrefixHash> {
    let mut parent = None;
    tokens
        .chunks_exact(block_size.max(1) as usize)
        .map(|block| {
            let h = block_hash(parent, block);
            parent = Some(h);
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_deterministic_and_fixed() {
        assert_eq!(block_hash(None, &[1, 2, 3]), block_hash(None, &[1, 2, 3]));
        // Pinned so an accidental change of the function (which would silently change cache
        // behaviour between versions) fails here.
        assert_eq!(block_hash(None, &[]), 0xffb6_eec3_623e_ee72);
        assert_eq!(block_hash(Some(7), &[42; 16]), 0x65a8_7e20_5399_ffdd);
    }

    #[test]
    fn chain_distinguishes_same_tokens_at_different_prefixes() {
        let block = [5u32, 6, 7, 8];
        let a = block_hash(None, &block);
        let b = block_hash(Some(a), &block);
        assert_ne!(a, b);
        assert_ne!(block_hash(None, &[1, 2]), block_hash(None, &[2, 1]));
        assert_ne!(block_hash(None, &[0]), block_hash(None, &[0, 0]));
    }

    #[test]
    fn chain_hashes_cover_only_full_blocks() {
        let tokens: Vec<u32> = (0..10).collect();
        let hs = chain_hashes(&tokens, 4);
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0], block_hash(None, &tokens[0..4]));
        assert_eq!(hs[1], block_hash(Some(hs[0]), &tokens[4..8]));
    }
}
