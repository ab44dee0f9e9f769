//! Tensor element types, quantized block layouts and dequantization.
//!
//! [`dequantize`] is the checked entry point for a byte buffer of any type; the per-type
//! functions (`dequantize_q4_k`, …) work on block slices, and [`scales`] unpacks the 6-bit
//! K-quant scales for kernels that need them. All are bit-exact with ggml / gguf-py.

pub mod blocks;
mod dequant;
mod dequant_float;
mod dequant_k;
mod dequant_legacy;
mod error;
pub mod scales;
mod types;

pub use dequant::dequantize;
pub use dequant_float::{dequantize_bf16, dequantize_f16};
pub use dequant_k::{
    dequantize_q2_k, dequantize_q3_k, dequantize_q4_k, dequantize_q5_k, dequantize_q6_k,
    dequantize_q8_k,
};
pub use dequant_legacy::{
    dequantize_q4_0, dequantize_q4_1, dequantize_q5_0, dequantize_q5_1, dequantize_q8_0,
};
pub use error::QuantError;
pub use scales::{get_scale_min_k4, q3_k_scales, scales_mins_k4};
pub use types::GgmlType;
