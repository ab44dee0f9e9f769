//! FNV-1a 64: the one checksum of the APR container.
//!
//! Fowler–Noll–Vo hash, variant 1a, 64-bit (draft-eastlake-fnv, "FNV-1a"): start from the offset
//! basis 0xcbf29ce484222325; for each byte, `h ^= byte; h = h.wrapping_mul(0x100000001b3)`.
//! It detects every single-bit flip and every single-byte change (each step is a bijection of
//! the state), needs no dependency and no table, and has published test vectors. It is not a
//! cryptographic hash: it guards against corruption, not against an adversary who rewrites the
//! checksum along with the data.

/// FNV-1a 64 offset basis.
pub const FNV1A64_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime (2^40 + 2^8 + 0xb3).
pub const FNV1A64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// An incremental FNV-1a 64 hasher: `update` over pieces equals one pass over their
/// concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    /// A hasher in the initial state (the offset basis).
    pub const fn new() -> Fnv1a64 {
        Fnv1a64(FNV1A64_OFFSET_BASIS)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV1A64_PRIME);
        }
        self.0 = h;
    }

    /// The hash of everything fed so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of `bytes` in one call.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vectors from the FNV reference test suite (Landon Curt Noll's `test_fnv.c`,
    /// `fnv1a_64_vector`), also listed in draft-eastlake-fnv.
    #[test]
    fn published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn incremental_equals_one_pass() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut h = Fnv1a64::new();
        for piece in data.chunks(37) {
            h.update(piece);
        }
        assert_eq!(h.finish(), fnv1a64(&data));
    }
}
