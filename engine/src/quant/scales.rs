//! Unpacking of the 6-bit sub-block scales shared by the K-quants.
//!
//! Facts from llama.cpp `ggml/src/ggml-quants.c` (`get_scale_min_k4`, and the `aux`/`kmask`
//! shuffle in `dequantize_row_q3_K`), cross-checked with gguf-py `quants.py`
//! (`Q4_K.get_scale_min`, `Q3_K.dequantize_blocks`).

use super::blocks::K_SCALE_SIZE;

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K or Q5_K super-block.
///
/// Layout of the 12 bytes: for j < 4, byte j holds scale j in its low 6 bits and byte j + 4
/// holds min j in its low 6 bits. For j ≥ 4, the low 4 bits of scale j and min j are the low
/// and high nibble of byte j + 4, and their top 2 bits are the top 2 bits of bytes j − 4
/// (scale) and j (min).
///
/// # Panics
/// If `j >= 8`.
#[inline]
pub fn get_scale_min_k4(j: usize, scales: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    assert!(j < 8, "Q4_K/Q5_K have 8 sub-blocks, asked for {j}");
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        let sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
        let m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
        (sc, m)
    }
}

/// All 8 (scale, min) pairs of a Q4_K or Q5_K super-block, in sub-block order.
#[inline]
pub fn scales_mins_k4(scales: &[u8; K_SCALE_SIZE]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        (sc[j], m[j]) = get_scale_min_k4(j, scales);
    }
    (sc, m)
}

/// The 16 signed scales of a Q3_K super-block, already offset: the stored 6-bit value − 32.
///
/// Layout of the 12 bytes: the low 4 bits of scale i are the low nibble of byte i (i < 8) or
/// the high nibble of byte i − 8 (i ≥ 8); its top 2 bits are bits 2·(i / 4) .. 2·(i / 4) + 1
/// of byte 8 + i mod 4.
#[inline]
pub fn q3_k_scales(scales: &[u8; K_SCALE_SIZE]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 {
            scales[i] & 0x0F
        } else {
            scales[i - 8] >> 4
        };
        let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = ((low | (high << 4)) as i8) - 32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_pairs_round_trip_a_packing() {
        // Pack 8 distinct 6-bit scales and mins by the layout described above, then unpack.
        let sc: [u8; 8] = [1, 63, 17, 42, 5, 60, 33, 48];
        let m: [u8; 8] = [62, 0, 31, 7, 59, 16, 45, 2];
        let mut p = [0u8; 12];
        for j in 0..4 {
            p[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
            p[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
            p[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
        }
        assert_eq!(scales_mins_k4(&p), (sc, m));
    }

    #[test]
    fn q3_scales_round_trip_a_packing() {
        let raw: [u8; 16] = [0, 63, 32, 31, 1, 62, 20, 44, 9, 50, 33, 12, 27, 40, 3, 58];
        let mut p = [0u8; 12];
        for (i, &r) in raw.iter().enumerate() {
            if i < 8 {
                p[i] |= r & 0x0F;
            } else {
                p[i - 8] |= (r & 0x0F) << 4;
            }
            p[8 + i % 4] |= (r >> 4) << (2 * (i / 4));
        }
        let want: Vec<i8> = raw.iter().map(|&r| r as i8 - 32).collect();
        assert_eq!(q3_k_scales(&p).to_vec(), want);
    }
}
