//! The sampler's random numbers: xoshiro256** (Blackman & Vigna, "Scrambled linear
//! pseudorandom number generators", 2021; reference code at prng.di.unimi.it), its state
//! seeded from one `u64` by splitmix64, as the authors recommend.
//!
//! Written here rather than taken from a crate so the stream is fixed forever by this file:
//! a given `--seed` gives the same tokens in every release. It is not llama.cpp's
//! generator (std::mt19937), so sampled continuations are reproducible across our runs,
//! not comparable token by token with llama.cpp's; greedy decoding is.

/// xoshiro256**: 256 bits of state, period 2^256 − 1.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of splitmix64 (Steele, Lea & Flood 2014): advances `x`, returns a mixed word.
pub fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// The generator for `seed`: four splitmix64 outputs fill the state (never all zero).
    pub fn seed_from_u64(seed: u64) -> Rng {
        let mut x = seed;
        Rng {
            s: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
    }

    /// A generator with this exact state (for tests against the reference vectors).
    pub fn from_state(s: [u64; 4]) -> Rng {
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1): the top 53 bits scaled by 2^-53 (every value exact in f64).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed from the reference C code's definition by hand (Python big ints):
    /// state [1, 2, 3, 4] gives 11520, 0, 1509978240, 1215971899390074240, …
    #[test]
    fn xoshiro256starstar_matches_the_reference_sequence() {
        let mut r = Rng::from_state([1, 2, 3, 4]);
        let got: Vec<u64> = (0..6).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                11520,
                0,
                1509978240,
                1215971899390074240,
                1216172134540287360,
                607988272756665600
            ]
        );
    }

    /// splitmix64 from 0: the first output of the reference splitmix64.c.
    #[test]
    fn splitmix64_matches_the_reference() {
        let mut x = 0u64;
        assert_eq!(splitmix64(&mut x), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut x), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn uniform_is_in_unit_interval() {
        let mut r = Rng::seed_from_u64(7);
        for _ in 0..10_000 {
            let u = r.next_f64();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
