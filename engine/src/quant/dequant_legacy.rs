//! Scalar dequantization of the 32-element ("legacy") block types.
//!
//! Formulas and value order are facts from llama.cpp `ggml/src/ggml-quants.c`
//! (`dequantize_row_q4_0` … `dequantize_row_q8_0`) and gguf-py `gguf/quants.py`
//! (`Q4_0.dequantize_blocks` …), the oracle our tests compare against bit for bit. Every
//! value is one f32 product (plus one f32 add for the types with a min), in the same order as
//! both references: `q·d` or `q·d + m`, with q converted exactly to f32 first.

use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK4_0, QK8_0};

/// Checks that `out` holds exactly `n_blocks · per_block` values.
#[inline]
pub(crate) fn check_out(n_blocks: usize, per_block: usize, out: &[f32]) {
    assert_eq!(
        out.len(),
        n_blocks * per_block,
        "{n_blocks} blocks of {per_block} values need an output of that many"
    );
}

/// The 32 four-bit quants of a Q4_0/Q4_1 block, in value order: byte j holds value
/// j in its low nibble and value j + 16 in its high nibble.
#[inline]
fn nibbles(qs: &[u8; QK4_0 / 2]) -> [u8; QK4_0] {
    let mut q = [0u8; QK4_0];
    for (j, &b) in qs.iter().enumerate() {
        q[j] = b & 0x0F;
        q[j + QK4_0 / 2] = b >> 4;
    }
    q
}

/// Q5_0/Q5_1 quants: the nibbles as Q4_0, with bit j of `qh` (a little-endian u32) as value
/// j's fifth bit.
#[inline]
fn five_bits(qh: &[u8; 4], qs: &[u8; QK4_0 / 2]) -> [u8; QK4_0] {
    let high = u32::from_le_bytes(*qh);
    let mut q = nibbles(qs);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((high >> j) & 1) as u8) << 4;
    }
    q
}

/// Q4_0: x = (q − 8)·d. Panics unless `out.len() == 32 · blocks.len()`.
pub fn dequantize_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) {
    check_out(blocks.len(), QK4_0, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
        let d = b.d.to_f32();
        for (y, q) in y.iter_mut().zip(nibbles(&b.qs)) {
            *y = (i32::from(q) - 8) as f32 * d;
        }
    }
}

/// Q4_1: x = q·d + m. Panics unless `out.len() == 32 · blocks.len()`.
pub fn dequantize_q4_1(blocks: &[BlockQ4_1], out: &mut [f32]) {
    check_out(blocks.len(), QK4_0, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (y, q) in y.iter_mut().zip(nibbles(&b.qs)) {
            *y = f32::from(q) * d + m;
        }
    }
}

/// Q5_0: x = (q − 16)·d. Panics unless `out.len() == 32 · blocks.len()`.
pub fn dequantize_q5_0(blocks: &[BlockQ5_0], out: &mut [f32]) {
    check_out(blocks.len(), QK4_0, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
        let d = b.d.to_f32();
        for (y, q) in y.iter_mut().zip(five_bits(&b.qh, &b.qs)) {
            *y = (i32::from(q) - 16) as f32 * d;
        }
    }
}

/// Q5_1: x = q·d + m. Panics unless `out.len() == 32 · blocks.len()`.
pub fn dequantize_q5_1(blocks: &[BlockQ5_1], out: &mut [f32]) {
    check_out(blocks.len(), QK4_0, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (y, q) in y.iter_mut().zip(five_bits(&b.qh, &b.qs)) {
            *y = f32::from(q) * d + m;
        }
    }
}

/// Q8_0: x = q·d. Panics unless `out.len() == 32 · blocks.len()`.
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    check_out(blocks.len(), QK8_0, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        let d = b.d.to_f32();
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = f32::from(q) * d;
        }
    }
}
