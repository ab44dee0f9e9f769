//! Dequantization of a buffer of any supported type: one checked entry point that dispatches
//! to the per-type functions.

use bytemuck::Pod;
use std::mem::size_of;

use super::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0,
};
use super::dequant_float::{dequantize_bf16, dequantize_f16};
use super::dequant_k::{
    dequantize_q2_k, dequantize_q3_k, dequantize_q4_k, dequantize_q5_k, dequantize_q6_k,
    dequantize_q8_k,
};
use super::dequant_legacy::{
    dequantize_q4_0, dequantize_q4_1, dequantize_q5_0, dequantize_q5_1, dequantize_q8_0,
};
use super::{GgmlType, QuantError};

/// Dequantizes `data`, a whole number of `ty` blocks in ggml's byte layout, into `out`, which
/// must hold exactly the values those blocks encode. `data` need not be aligned.
///
/// Bit-exact with ggml's `dequantize_row_*` and gguf-py's `gguf.quants.dequantize`.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let block_bytes = ty.type_size();
    if !data.len().is_multiple_of(block_bytes) {
        return Err(QuantError::RaggedInput {
            ty,
            len: data.len(),
            block_bytes,
        });
    }
    let expected = data.len() / block_bytes * ty.block_size();
    if out.len() != expected {
        return Err(QuantError::OutputLength {
            ty,
            expected,
            found: out.len(),
        });
    }
    match ty {
        GgmlType::F32 => {
            for (y, x) in out.iter_mut().zip(data.chunks_exact(4)) {
                *y = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
            }
        }
        GgmlType::F16 => by_blocks(data, out, dequantize_f16),
        GgmlType::BF16 => by_blocks(data, out, dequantize_bf16),
        GgmlType::Q4_0 => by_blocks::<BlockQ4_0>(data, out, dequantize_q4_0),
        GgmlType::Q4_1 => by_blocks::<BlockQ4_1>(data, out, dequantize_q4_1),
        GgmlType::Q5_0 => by_blocks::<BlockQ5_0>(data, out, dequantize_q5_0),
        GgmlType::Q5_1 => by_blocks::<BlockQ5_1>(data, out, dequantize_q5_1),
        GgmlType::Q8_0 => by_blocks::<BlockQ8_0>(data, out, dequantize_q8_0),
        GgmlType::Q2K => by_blocks::<BlockQ2K>(data, out, dequantize_q2_k),
        GgmlType::Q3K => by_blocks::<BlockQ3K>(data, out, dequantize_q3_k),
        GgmlType::Q4K => by_blocks::<BlockQ4K>(data, out, dequantize_q4_k),
        GgmlType::Q5K => by_blocks::<BlockQ5K>(data, out, dequantize_q5_k),
        GgmlType::Q6K => by_blocks::<BlockQ6K>(data, out, dequantize_q6_k),
        GgmlType::Q8K => by_blocks::<BlockQ8K>(data, out, dequantize_q8_k),
        GgmlType::Q8_1 => return Err(QuantError::Unsupported { ty }),
    }
    Ok(())
}

/// Runs `f` on `data` viewed as blocks of `B`, in place when `data` is aligned for `B`,
/// otherwise one copied block at a time. Lengths were checked by the caller.
fn by_blocks<B: Pod>(data: &[u8], out: &mut [f32], f: fn(&[B], &mut [f32])) {
    if let Ok(blocks) = bytemuck::try_cast_slice::<u8, B>(data) {
        return f(blocks, out);
    }
    let per_block = values_per_block(out.len(), data.len() / size_of::<B>());
    for (raw, y) in data
        .chunks_exact(size_of::<B>())
        .zip(out.chunks_exact_mut(per_block))
    {
        let block: B = bytemuck::pod_read_unaligned(raw);
        f(std::slice::from_ref(&block), y);
    }
}

/// Values per block, given `n_blocks` blocks encoding `n_values` values (1 for no blocks,
/// where nothing is iterated anyway).
fn values_per_block(n_values: usize, n_blocks: usize) -> usize {
    n_values.checked_div(n_blocks).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaligned_input_gives_the_aligned_result() {
        // Two Q4_K blocks of arbitrary bytes, once at an even and once at an odd address.
        let bytes: Vec<u8> = (0..2 * 144 + 1).map(|i| (i * 37 % 251) as u8).collect();
        let mut storage = vec![0u16; bytes.len()];
        let aligned: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut storage)[..2 * 144];
        aligned.copy_from_slice(&bytes[..2 * 144]);
        let mut shifted = vec![0u8; 2 * 144 + 1];
        shifted[1..].copy_from_slice(&bytes[..2 * 144]);
        let (mut a, mut b) = (vec![0f32; 512], vec![0f32; 512]);
        dequantize(GgmlType::Q4K, aligned, &mut a).unwrap();
        dequantize(GgmlType::Q4K, &shifted[1..], &mut b).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert!(a.iter().any(|&x| x != 0.0));
    }
}
