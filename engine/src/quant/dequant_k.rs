//! Scalar dequantization of the K-quants (256-value super-blocks).
//!
//! Layouts, formulas and value order are facts from llama.cpp `ggml/src/ggml-quants.c`
//! (`dequantize_row_q2_K` … `dequantize_row_q8_K`) and gguf-py `gguf/quants.py`
//! (`Q2_K.dequantize_blocks` …), our bit-exact oracle. The order of the f32 operations is the
//! references' own: first the sub-block factors (`d·scale`, `dmin·min`), then
//! `factor·q − min_factor` per value. Changing that order changes the low bits.

use super::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
use super::dequant_legacy::check_out;
use super::scales::{get_scale_min_k4, q3_k_scales};

/// Q2_K: 16 sub-blocks of 16; x = (d·scale)·q − (dmin·min), q in 0..=3.
///
/// `scales[i]` is sub-block i's 4-bit scale (low nibble) and 4-bit min (high nibble). Values
/// 128·h + 32·s + l (h < 2, s < 4, l < 32) take bits 2s..2s+1 of `qs[32·h + l]`; sub-block
/// 16 values each in that order. Panics unless `out.len() == 256 · blocks.len()`.
pub fn dequantize_q2_k(blocks: &[BlockQ2K], out: &mut [f32]) {
    check_out(blocks.len(), QK_K, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        for (sub, y) in y.chunks_exact_mut(16).enumerate() {
            let (h, s, half) = (sub / 8, (sub / 2) % 4, sub % 2);
            let sc = b.scales[sub];
            let dl = d * f32::from(sc & 0x0F);
            let ml = dmin * f32::from(sc >> 4);
            let q = &b.qs[32 * h + 16 * half..][..16];
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * f32::from((q >> (2 * s)) & 3) - ml;
            }
        }
    }
}

/// Q3_K: 16 sub-blocks of 16; x = (d·(scale − 32))·q, q = low 2 bits − (4 if the hmask bit
/// is clear else 0), so q in −4..=3.
///
/// Value 128·h + 32·s + l (h < 2, s < 4, l < 32) takes bits 2s..2s+1 of `qs[32·h + l]` and
/// bit 4h + s of `hmask[l]`. Panics unless `out.len() == 256 · blocks.len()`.
pub fn dequantize_q3_k(blocks: &[BlockQ3K], out: &mut [f32]) {
    check_out(blocks.len(), QK_K, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let scales = q3_k_scales(&b.scales);
        for (sub, y) in y.chunks_exact_mut(16).enumerate() {
            let (h, s, half) = (sub / 8, (sub / 2) % 4, sub % 2);
            let dl = d * f32::from(scales[sub]);
            let mask = 1u8 << (4 * h + s);
            for (k, y) in y.iter_mut().enumerate() {
                let l = 16 * half + k;
                let low = i32::from((b.qs[32 * h + l] >> (2 * s)) & 3);
                let q = if b.hmask[l] & mask != 0 { low } else { low - 4 };
                *y = dl * q as f32;
            }
        }
    }
}

/// Q4_K: 8 sub-blocks of 32; x = (d·scale)·q − (dmin·min), q in 0..=15, 6-bit scale and
/// min from [`get_scale_min_k4`].
///
/// Values 64·p + l take the low nibble of `qs[32·p + l]` (sub-block 2p), values
/// 64·p + 32 + l its high nibble (sub-block 2p + 1). Panics unless
/// `out.len() == 256 · blocks.len()`.
pub fn dequantize_q4_k(blocks: &[BlockQ4K], out: &mut [f32]) {
    check_out(blocks.len(), QK_K, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        for (sub, y) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = get_scale_min_k4(sub, &b.scales);
            let d1 = d * f32::from(sc);
            let m1 = dmin * f32::from(m);
            let shift = 4 * (sub % 2);
            let q = &b.qs[32 * (sub / 2)..][..32];
            for (y, &q) in y.iter_mut().zip(q) {
                *y = d1 * f32::from((q >> shift) & 0x0F) - m1;
            }
        }
    }
}

/// Q5_K: as Q4_K with a fifth bit: bit `sub` of `qh[l]` adds 16 to value l of sub-block
/// `sub`, so q in 0..=31. Panics unless `out.len() == 256 · blocks.len()`.
pub fn dequantize_q5_k(blocks: &[BlockQ5K], out: &mut [f32]) {
    check_out(blocks.len(), QK_K, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        for (sub, y) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = get_scale_min_k4(sub, &b.scales);
            let d1 = d * f32::from(sc);
            let m1 = dmin * f32::from(m);
            let shift = 4 * (sub % 2);
            let q = &b.qs[32 * (sub / 2)..][..32];
            for ((y, &q), &qh) in y.iter_mut().zip(q).zip(&b.qh) {
                let q = ((q >> shift) & 0x0F) | (((qh >> sub) & 1) << 4);
                *y = d1 * f32::from(q) - m1;
            }
        }
    }
}

/// Q6_K: 16 sub-blocks of 16; x = (d·scale)·(q − 32), q in 0..=63, i8 scales.
///
/// Value 128·h + 32·s + l (h < 2, s < 4, l < 32): low 4 bits are the low (s even) or high
/// (s ≥ 2) nibble of `ql[64·h + 32·(s mod 2) + l]`, high 2 bits are bits 2s..2s+1 of
/// `qh[32·h + l]`; sub-block 8h + 2s + l / 16. Panics unless `out.len() == 256 · blocks.len()`.
pub fn dequantize_q6_k(blocks: &[BlockQ6K], out: &mut [f32]) {
    check_out(blocks.len(), QK_K, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for (sub, y) in y.chunks_exact_mut(16).enumerate() {
            let (h, s, half) = (sub / 8, (sub / 2) % 4, sub % 2);
            let dl = d * f32::from(b.scales[sub]);
            let nibble_shift = 4 * (s / 2);
            for (k, y) in y.iter_mut().enumerate() {
                let l = 16 * half + k;
                let low = (b.ql[64 * h + 32 * (s % 2) + l] >> nibble_shift) & 0x0F;
                let high = (b.qh[32 * h + l] >> (2 * s)) & 3;
                let q = i32::from(low | (high << 4)) - 32;
                *y = dl * q as f32;
            }
        }
    }
}

/// Q8_K: x = d·q with an f32 `d` (the activation type; `bsums` are not needed).
/// Panics unless `out.len() == 256 · blocks.len()`.
pub fn dequantize_q8_k(blocks: &[BlockQ8K], out: &mut [f32]) {
    check_out(blocks.len(), QK_K, out);
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = b.d * f32::from(q);
        }
    }
}
