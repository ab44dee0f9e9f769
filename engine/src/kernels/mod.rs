//! Quantized matrix products: activation quantization, per-ISA dot products, rayon dispatch.
//!
//! * [`quantize`]: activations to Q8_0 / Q8_1 / Q8_K, once per matmul, as ggml does.
//! * [`dot_scalar`]: the readable twin of every kernel, and the summation contract that makes
//!   every ISA bit-identical to it.
//! * `dot_avx2`, `dot_avx512`: the SIMD kernels (x86-64), chosen at run time.
//! * `dot_neon`: the SIMD kernels (AArch64 NEON), chosen at run time.
//! * [`dispatch`]: ISA detection (cached once; `APR_SIMD=scalar|avx2|avx512|neon` overrides)
//!   and the one selector per weight type.
//! * [`matmul`](mod@matmul): [`QMatrix`], [`matvec`], [`matmul()`], parallel over output rows.

pub mod dispatch;
#[cfg(target_arch = "x86_64")]
#[macro_use]
mod dot_avx2;
#[cfg(target_arch = "x86_64")]
mod dot_avx512;
#[cfg(target_arch = "aarch64")]
mod dot_neon;
pub mod dot_scalar;
mod error;
#[cfg(target_arch = "x86_64")]
mod gemm_avx512;
#[cfg(target_arch = "x86_64")]
mod gemm_k_avx512;
#[cfg(target_arch = "x86_64")]
mod gemm_tiles;
pub mod matmul;
pub mod quantize;
pub mod synth;

pub use dispatch::{
    active_isa, detected_isa, vec_dot_bf16_f32, vec_dot_f16_f32, vec_dot_f32_f32,
    vec_dot_q2_k_q8_k, vec_dot_q3_k_q8_k, vec_dot_q4_0_q8_0, vec_dot_q4_1_q8_1, vec_dot_q4_k_q8_k,
    vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1, vec_dot_q5_k_q8_k, vec_dot_q6_k_q8_k, vec_dot_q8_0_q8_0,
    Isa,
};
pub use error::KernelError;
pub use matmul::{
    activation_type, kernel_isa, matmul, matmul_quantized, matmul_with, matvec, Activations,
    QMatrix, WEIGHT_TYPES,
};
pub use quantize::{quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k};
