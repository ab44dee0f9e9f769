//! Run-time ISA detection and kernel selection: the one place that decides which dot product
//! runs. ISA files hold only kernels.

use std::sync::OnceLock;

use half::{bf16, f16};

#[cfg(target_arch = "x86_64")]
use super::dot_avx2 as avx2;
#[cfg(target_arch = "x86_64")]
use super::dot_avx512 as avx512;
#[cfg(target_arch = "aarch64")]
use super::dot_neon as neon;
use super::dot_scalar as scalar;
use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};

/// An instruction-set tier of the dot-product kernels. Every tier computes bit-identical
/// results (see [`super::dot_scalar`] for the summation contract); they differ in speed only.
///
/// The x86-64 tiers and NEON belong to different architectures, so "a lower tier" is
/// [`Isa::includes`]. The derived order (declaration order) ranks the tiers of one
/// architecture; NEON sits below the x86 tiers so that `isa >= Isa::Avx2`-style tests stay
/// false for it, but comparing tiers of two architectures means nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, the reference twin of every kernel.
    Scalar,
    /// AArch64 Advanced SIMD (NEON), baseline ARMv8-A only.
    Neon,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/VNNI (on top of the AVX2 tier).
    Avx512,
}

impl Isa {
    /// Every tier in declaration order: scalar, then each architecture's tiers slowest first.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Neon, Isa::Avx2, Isa::Avx512];

    /// Lower-case name, as `APR_SIMD` spells it and evidence records it.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// The tier for a name (`scalar`, `avx2`, `avx512`, `neon`), case-insensitive.
    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s))
    }

    /// Whether a request for `self` may run `other`'s kernels: `other` is scalar, `self`, or
    /// a lower tier of the same architecture (AVX-512 includes AVX2; NEON includes no x86
    /// tier, nor the reverse).
    pub const fn includes(self, other: Isa) -> bool {
        matches!(
            (self, other),
            (_, Isa::Scalar)
                | (Isa::Avx2, Isa::Avx2)
                | (Isa::Avx512, Isa::Avx2 | Isa::Avx512)
                | (Isa::Neon, Isa::Neon)
        )
    }

    /// Whether this CPU can run the tier.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The tiers this CPU supports, in [`Isa::ALL`] order.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The tier that runs when `self` is requested: the fastest supported tier that `self`
    /// [includes](Isa::includes) (`self` itself when supported, [`Isa::Scalar`] at worst).
    pub fn fallback(self) -> Isa {
        Isa::available()
            .into_iter()
            .rev()
            .find(|&t| self.includes(t))
            .unwrap_or(Isa::Scalar)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The best tier this CPU supports (the fastest of its own architecture's).
pub fn detected_isa() -> Isa {
    Isa::available().last().copied().unwrap_or(Isa::Scalar)
}

/// The tier kernels use by default, fixed once per process: the `APR_SIMD` environment
/// variable (`scalar`, `avx2`, `avx512`, `neon`; a tier the CPU lacks falls back to
/// [`Isa::fallback`], e.g. `avx512` to `avx2`, and `neon` on x86-64 or `avx2` on AArch64 to
/// `scalar`) or, when unset or `auto`, [`detected_isa`].
pub fn active_isa() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let best = detected_isa();
        match std::env::var("APR_SIMD") {
            Ok(v) if !v.is_empty() && !v.eq_ignore_ascii_case("auto") => match Isa::from_name(&v) {
                Some(want) => want.fallback(),
                None => {
                    let names = Isa::ALL.map(Isa::name).join(", ");
                    eprintln!("apr: APR_SIMD={v:?} is not one of {names}, auto; using {best}");
                    best
                }
            },
            _ => best,
        }
    })
}

/// A dot product of one weight row `w` with one activation row `a` (same block count).
pub type DotFn<W, A> = unsafe fn(&[W], &[A]) -> f32;

/// Generates, per weight type, the selector (`select_*`: the kernel for a requested tier and
/// the tier that actually runs) and the public dot product on the active tier.
macro_rules! dot_op {
    ($(#[$doc:meta])* $name:ident, $select:ident, $w:ty, $a:ty, $scalar:path
     $(, avx2 = $avx2:path)? $(, avx512 = $avx512:path)? $(, neon = $neon:path)?) => {
        /// The kernel for `isa` (or the best tier it [includes](Isa::includes) that has one)
        /// and the tier it is.
        #[allow(unused_variables)]
        pub fn $select(isa: Isa) -> (DotFn<$w, $a>, Isa) {
            $(
                #[cfg(target_arch = "x86_64")]
                if isa.includes(Isa::Avx512) && Isa::Avx512.is_supported() {
                    return ($avx512 as DotFn<$w, $a>, Isa::Avx512);
                }
            )?
            $(
                #[cfg(target_arch = "x86_64")]
                if isa.includes(Isa::Avx2) && Isa::Avx2.is_supported() {
                    return ($avx2 as DotFn<$w, $a>, Isa::Avx2);
                }
            )?
            $(
                #[cfg(target_arch = "aarch64")]
                if isa.includes(Isa::Neon) && Isa::Neon.is_supported() {
                    return ($neon as DotFn<$w, $a>, Isa::Neon);
                }
            )?
            ($scalar as DotFn<$w, $a>, Isa::Scalar)
        }

        $(#[$doc])*
        ///
        /// Runs on [`active_isa`]. # Panics: if the two rows differ in block count.
        pub fn $name(x: &[$w], y: &[$a]) -> f32 {
            assert_eq!(x.len(), y.len(), "vec_dot: block count mismatch");
            let (f, _) = $select(active_isa());
            // SAFETY: the selector returns an ISA kernel only after `is_supported` confirmed
            // the CPU has that ISA's features; the slices have equal lengths.
            unsafe { f(x, y) }
        }
    };
}

dot_op!(
    /// F32 weights · f32 activations.
    vec_dot_f32_f32, select_f32, f32, f32, scalar::vec_dot_f32_f32,
    avx2 = avx2::vec_dot_f32_f32,
    neon = neon::vec_dot_f32_f32
);
dot_op!(
    /// F16 weights · f32 activations.
    vec_dot_f16_f32, select_f16, f16, f32, scalar::vec_dot_f16_f32,
    avx2 = avx2::vec_dot_f16_f32,
    neon = neon::vec_dot_f16_f32
);
dot_op!(
    /// BF16 weights · f32 activations.
    vec_dot_bf16_f32, select_bf16, bf16, f32, scalar::vec_dot_bf16_f32,
    avx2 = avx2::vec_dot_bf16_f32,
    neon = neon::vec_dot_bf16_f32
);
dot_op!(
    /// Q4_0 weights · Q8_0 activations.
    vec_dot_q4_0_q8_0, select_q4_0, BlockQ4_0, BlockQ8_0, scalar::vec_dot_q4_0_q8_0,
    avx2 = avx2::vec_dot_q4_0_q8_0,
    avx512 = avx512::vec_dot_q4_0_q8_0,
    neon = neon::vec_dot_q4_0_q8_0
);
dot_op!(
    /// Q4_1 weights · Q8_1 activations.
    vec_dot_q4_1_q8_1, select_q4_1, BlockQ4_1, BlockQ8_1, scalar::vec_dot_q4_1_q8_1,
    avx2 = avx2::vec_dot_q4_1_q8_1,
    avx512 = avx512::vec_dot_q4_1_q8_1,
    neon = neon::vec_dot_q4_1_q8_1
);
dot_op!(
    /// Q5_0 weights · Q8_0 activations.
    vec_dot_q5_0_q8_0, select_q5_0, BlockQ5_0, BlockQ8_0, scalar::vec_dot_q5_0_q8_0,
    avx2 = avx2::vec_dot_q5_0_q8_0,
    avx512 = avx512::vec_dot_q5_0_q8_0,
    neon = neon::vec_dot_q5_0_q8_0
);
dot_op!(
    /// Q5_1 weights · Q8_1 activations.
    vec_dot_q5_1_q8_1, select_q5_1, BlockQ5_1, BlockQ8_1, scalar::vec_dot_q5_1_q8_1,
    avx2 = avx2::vec_dot_q5_1_q8_1,
    avx512 = avx512::vec_dot_q5_1_q8_1,
    neon = neon::vec_dot_q5_1_q8_1
);
dot_op!(
    /// Q8_0 weights · Q8_0 activations.
    vec_dot_q8_0_q8_0, select_q8_0, BlockQ8_0, BlockQ8_0, scalar::vec_dot_q8_0_q8_0,
    avx2 = avx2::vec_dot_q8_0_q8_0,
    avx512 = avx512::vec_dot_q8_0_q8_0,
    neon = neon::vec_dot_q8_0_q8_0
);
dot_op!(
    /// Q2_K weights · Q8_K activations.
    vec_dot_q2_k_q8_k, select_q2_k, BlockQ2K, BlockQ8K, scalar::vec_dot_q2_k_q8_k,
    avx2 = avx2::vec_dot_q2_k_q8_k,
    neon = neon::vec_dot_q2_k_q8_k
);
dot_op!(
    /// Q3_K weights · Q8_K activations.
    vec_dot_q3_k_q8_k, select_q3_k, BlockQ3K, BlockQ8K, scalar::vec_dot_q3_k_q8_k,
    avx2 = avx2::vec_dot_q3_k_q8_k,
    neon = neon::vec_dot_q3_k_q8_k
);
dot_op!(
    /// Q4_K weights · Q8_K activations.
    vec_dot_q4_k_q8_k, select_q4_k, BlockQ4K, BlockQ8K, scalar::vec_dot_q4_k_q8_k,
    avx2 = avx2::vec_dot_q4_k_q8_k,
    neon = neon::vec_dot_q4_k_q8_k
);
dot_op!(
    /// Q5_K weights · Q8_K activations.
    vec_dot_q5_k_q8_k, select_q5_k, BlockQ5K, BlockQ8K, scalar::vec_dot_q5_k_q8_k,
    avx2 = avx2::vec_dot_q5_k_q8_k,
    neon = neon::vec_dot_q5_k_q8_k
);
dot_op!(
    /// Q6_K weights · Q8_K activations.
    vec_dot_q6_k_q8_k, select_q6_k, BlockQ6K, BlockQ8K, scalar::vec_dot_q6_k_q8_k,
    avx2 = avx2::vec_dot_q6_k_q8_k,
    neon = neon::vec_dot_q6_k_q8_k
);

/// Whether products with several activation rows of the quantized types run the batched
/// AVX-512 kernels (`gemm_avx512` for the 32-value block types, `gemm_k_avx512` for the
/// K-quants; bit-identical to the per-row dot products) when `isa` is requested.
#[cfg(target_arch = "x86_64")]
pub fn batched_avx512(isa: Isa) -> bool {
    isa.includes(Isa::Avx512) && Isa::Avx512.is_supported()
}
