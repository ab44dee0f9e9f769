//! Tensor element types, quantized block layouts and dequantization.

pub mod blocks;
mod types;

pub use types::GgmlType;
