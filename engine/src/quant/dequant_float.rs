//! Conversion of the float element types to f32.
//!
//! F16 → f32 and BF16 → f32 are exact widenings (every binary16 and bfloat16 value, subnormals
//! included, is an f32), as in ggml (`ggml_fp16_to_fp32`, `ggml_bf16_to_fp32`: the bf16 bits
//! shifted left by 16) and gguf-py (`dequantize` for F16, `BF16.dequantize_blocks`).

use half::{bf16, f16};

use super::dequant_legacy::check_out;

/// F16 → f32. Panics unless `out.len() == src.len()`.
pub fn dequantize_f16(src: &[f16], out: &mut [f32]) {
    check_out(src.len(), 1, out);
    for (y, x) in out.iter_mut().zip(src) {
        *y = x.to_f32();
    }
}

/// BF16 → f32. Panics unless `out.len() == src.len()`.
pub fn dequantize_bf16(src: &[bf16], out: &mut [f32]) {
    check_out(src.len(), 1, out);
    for (y, x) in out.iter_mut().zip(src) {
        // bf16 is the top half of an f32: widening is a shift, NaN payloads included.
        *y = f32::from_bits(u32::from(x.to_bits()) << 16);
    }
}
