//! Eight f32 lanes for the attention loops: one generic body, run either on plain arrays
//! (portable, whatever the compiler makes of them) or on AVX2 registers.
//!
//! Every operation is lane-wise IEEE f32 arithmetic in a fixed order (separate multiply and
//! add, never fused), so both implementations give the same bits for the same calls.

use half::f16;

/// Lanes in one vector.
pub const WIDTH: usize = 8;

/// Eight-lane f32 arithmetic. Implementors must give, lane by lane, exactly the result of
/// the scalar f32 operation (the f16 rounding: `half`'s round-to-nearest-even).
pub trait Lanes: Copy {
    /// One vector of eight f32 lanes.
    type V: Copy;
    /// All lanes +0.0.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Lanes `x[0..8]`.
    fn load(self, x: &[f32; WIDTH]) -> Self::V;
    /// The lanes as an array.
    fn to_array(self, v: Self::V) -> [f32; WIDTH];
    /// `a + b` per lane.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b` per lane.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// Each lane rounded to the nearest f16 (ties to even) and widened back.
    fn round_f16(self, v: Self::V) -> Self::V;

    /// `((v0 + v4) + (v1 + v5)) + ((v2 + v6) + (v3 + v7))`: the one order in which the
    /// attention dot products fold their lanes.
    fn sum(self, v: Self::V) -> f32 {
        fold(&self.to_array(v))
    }
}

/// The lane fold of [`Lanes::sum`] on an array (also where a dot product has a remainder).
#[inline]
pub fn fold(a: &[f32; WIDTH]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// The eight values of `x` from `at` on, as an array reference.
///
/// # Panics
/// If `x` has fewer than `at + 8` values.
#[inline(always)]
pub fn chunk(x: &[f32], at: usize) -> &[f32; WIDTH] {
    x[at..at + WIDTH].try_into().expect("eight values")
}

/// Plain arrays: the portable implementation (and the reference for the others).
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Lanes for Plain {
    type V = [f32; WIDTH];

    #[inline(always)]
    fn zero(self) -> Self::V {
        [0.0; WIDTH]
    }

    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [x; WIDTH]
    }

    #[inline(always)]
    fn load(self, x: &[f32; WIDTH]) -> Self::V {
        *x
    }

    #[inline(always)]
    fn to_array(self, v: Self::V) -> [f32; WIDTH] {
        v
    }

    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }

    #[inline(always)]
    fn mul(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i])
    }

    #[inline(always)]
    fn round_f16(self, mut v: Self::V) -> Self::V {
        for x in &mut v {
            *x = f16::from_f32(*x).to_f32();
        }
        v
    }
}

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    use super::{Lanes, WIDTH};
    use crate::kernels::{active_isa, Isa};

    /// AVX2 + F16C registers. A value of this type exists only on a CPU with both features
    /// (see [`Avx2::new`]), which is what makes its safe methods sound.
    ///
    /// The methods are `#[inline(always)]` without target features of their own: they are
    /// meant to be inlined into an `#[target_feature(enable = "avx2,f16c")]` function, where
    /// the intrinsics compile to single instructions.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2(());

    impl Avx2 {
        /// The token, when the active tier ([`active_isa`], so `APR_SIMD` is respected)
        /// includes AVX2 and this CPU supports it.
        pub fn new() -> Option<Avx2> {
            (active_isa().includes(Isa::Avx2) && Isa::Avx2.is_supported()).then_some(Avx2(()))
        }
    }

    // SAFETY (every `unsafe` block below): the intrinsics need AVX (a subset of AVX2) or F16C,
    // which the CPU has because an `Avx2` value exists; pointer reads and writes stay within
    // the eight-element arrays they are given.
    impl Lanes for Avx2 {
        type V = __m256;

        #[inline(always)]
        fn zero(self) -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }

        #[inline(always)]
        fn splat(self, x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }

        #[inline(always)]
        fn load(self, x: &[f32; WIDTH]) -> __m256 {
            unsafe { _mm256_loadu_ps(x.as_ptr()) }
        }

        #[inline(always)]
        fn to_array(self, v: __m256) -> [f32; WIDTH] {
            let mut a = [0f32; WIDTH];
            unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
            a
        }

        #[inline(always)]
        fn add(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }

        #[inline(always)]
        fn mul(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }

        /// `vcvtps2ph` with an immediate round-to-nearest-even (the instruction `half` itself
        /// uses when F16C is present), then the exact `vcvtph2ps`.
        #[inline(always)]
        fn round_f16(self, v: __m256) -> __m256 {
            unsafe { _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v)) }
        }

        /// The fold of [`super::fold`] in registers: high half onto low half (`v_i + v_{i+4}`),
        /// then odd lanes onto even ones, then the two pair sums.
        #[inline(always)]
        fn sum(self, v: __m256) -> f32 {
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let pairs = _mm_add_ps(s, _mm_movehdup_ps(s));
                _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehl_ps(pairs, pairs)))
            }
        }
    }
}
