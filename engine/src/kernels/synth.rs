//! Synthetic weight matrices and activations for kernel tests and benchmarks: random bytes
//! in ggml's block layouts with controlled scales, plus adversarial patterns.
//!
//! Deterministic for a seed (SplitMix64), so a failing case can be reproduced.

use bytemuck::Pod;
use half::{bf16, f16};

use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0,
};
use crate::quant::GgmlType;

/// SplitMix64: a tiny, good-enough, seedable generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
    /// Roughly normal (sum of 4 uniforms, centred, unit variance).
    pub fn normal(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.f32()).sum();
        (s - 2.0) * 3f32.sqrt()
    }
}

/// How weight blocks are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Random quant bytes, positive scales around 1e-2 (like real weights).
    Random,
    /// Per block: extreme scales (±65504, subnormal, zero, negative), all-max / all-min /
    /// alternating / random quants, mixed signs.
    Adversarial,
}

/// Scales that stress the float path: f16 extremes, subnormals, signs, zero.
const EXTREME_SCALES: [f32; 10] = [
    65504.0,
    -65504.0,
    6.103_515_6e-5, // smallest normal f16
    5.960_464_5e-8, // smallest subnormal f16
    -3.0e-6,        // a negative subnormal
    1.0e-7,         // another subnormal
    0.0,
    1.0,
    -0.5,
    0.013,
];

fn scale(rng: &mut Rng, style: Style) -> f16 {
    match style {
        Style::Random => f16::from_f32(rng.range(0.002, 0.03)),
        Style::Adversarial => {
            if rng.below(3) == 0 {
                f16::from_f32(rng.range(-0.05, 0.05))
            } else {
                f16::from_f32(EXTREME_SCALES[rng.below(EXTREME_SCALES.len())])
            }
        }
    }
}

/// Overwrites quant bytes with an adversarial pattern (or leaves the random ones).
fn pattern(rng: &mut Rng, q: &mut [u8]) {
    let fill = match rng.below(5) {
        0 => Some(0xFF),
        1 => Some(0x00),
        2 => Some(0x80),
        3 => None,
        _ => {
            for (i, b) in q.iter_mut().enumerate() {
                *b = if i % 2 == 0 { 0x0F } else { 0xF0 };
            }
            return;
        }
    };
    if let Some(v) = fill {
        q.fill(v);
    }
}

fn blocks<B: Pod>(data: &mut [u8]) -> &mut [B] {
    bytemuck::cast_slice_mut(data)
}

/// A `[rows × cols]` matrix of `ty` (cols a multiple of the block size), as bytes in a
/// buffer of u32 words (so the bytes are aligned for any block struct).
pub fn weights(ty: GgmlType, rows: usize, cols: usize, style: Style, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let bytes = rows * cols / ty.block_size() * ty.type_size();
    let mut words = vec![0u32; bytes.div_ceil(4)];
    let data = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes];
    rng.fill(data);
    let adv = style == Style::Adversarial;
    match ty {
        GgmlType::F32 => {
            for v in blocks::<f32>(data) {
                *v = if adv && rng.below(8) == 0 {
                    EXTREME_SCALES[rng.below(EXTREME_SCALES.len())] * 1e30
                } else {
                    rng.normal() * 0.05
                };
            }
        }
        GgmlType::F16 => {
            for v in blocks::<f16>(data) {
                *v = if adv && rng.below(4) == 0 {
                    f16::from_f32(EXTREME_SCALES[rng.below(EXTREME_SCALES.len())])
                } else {
                    f16::from_f32(rng.normal() * 0.05)
                };
            }
        }
        GgmlType::BF16 => {
            for v in blocks::<bf16>(data) {
                *v = if adv && rng.below(4) == 0 {
                    bf16::from_f32(EXTREME_SCALES[rng.below(EXTREME_SCALES.len())] * 1e20)
                } else {
                    bf16::from_f32(rng.normal() * 0.05)
                };
            }
        }
        GgmlType::Q4_0 => {
            for b in blocks::<BlockQ4_0>(data) {
                b.d = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                }
            }
        }
        GgmlType::Q4_1 => {
            for b in blocks::<BlockQ4_1>(data) {
                b.d = scale(&mut rng, style);
                b.m = f16::from_f32(-f32::from(scale(&mut rng, style)) * 8.0);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                }
            }
        }
        GgmlType::Q5_0 => {
            for b in blocks::<BlockQ5_0>(data) {
                b.d = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                    pattern(&mut rng, &mut b.qh);
                }
            }
        }
        GgmlType::Q5_1 => {
            for b in blocks::<BlockQ5_1>(data) {
                b.d = scale(&mut rng, style);
                b.m = f16::from_f32(-f32::from(scale(&mut rng, style)) * 16.0);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                    pattern(&mut rng, &mut b.qh);
                }
            }
        }
        GgmlType::Q8_0 => {
            for b in blocks::<BlockQ8_0>(data) {
                b.d = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, bytemuck::cast_slice_mut(&mut b.qs));
                }
            }
        }
        GgmlType::Q2K => {
            for b in blocks::<BlockQ2K>(data) {
                b.d = scale(&mut rng, style);
                b.dmin = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                    pattern(&mut rng, &mut b.scales);
                }
            }
        }
        GgmlType::Q3K => {
            for b in blocks::<BlockQ3K>(data) {
                b.d = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                    pattern(&mut rng, &mut b.hmask);
                    pattern(&mut rng, &mut b.scales);
                }
            }
        }
        GgmlType::Q4K => {
            for b in blocks::<BlockQ4K>(data) {
                b.d = scale(&mut rng, style);
                b.dmin = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                    pattern(&mut rng, &mut b.scales);
                }
            }
        }
        GgmlType::Q5K => {
            for b in blocks::<BlockQ5K>(data) {
                b.d = scale(&mut rng, style);
                b.dmin = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, &mut b.qs);
                    pattern(&mut rng, &mut b.qh);
                    pattern(&mut rng, &mut b.scales);
                }
            }
        }
        GgmlType::Q6K => {
            for b in blocks::<BlockQ6K>(data) {
                b.d = scale(&mut rng, style);
                if adv {
                    pattern(&mut rng, &mut b.ql);
                    pattern(&mut rng, &mut b.qh);
                    pattern(&mut rng, bytemuck::cast_slice_mut(&mut b.scales));
                }
            }
        }
        GgmlType::Q8_1 | GgmlType::Q8K => panic!("{ty} is an activation-only type"),
    }
    words
}

/// The bytes of a [`weights`] buffer (`rows × cols` of `ty`).
pub fn weight_bytes(words: &[u32], ty: GgmlType, rows: usize, cols: usize) -> &[u8] {
    &bytemuck::cast_slice(words)[..rows * cols / ty.block_size() * ty.type_size()]
}

/// `n` activation rows: roughly normal values, or (adversarial) mixed magnitudes and signs,
/// spikes, tiny values and all-zero stretches.
pub fn activations(len: usize, style: Style, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut x: Vec<f32> = (0..len).map(|_| rng.normal()).collect();
    if style == Style::Adversarial {
        for chunk in x.chunks_mut(32) {
            match rng.below(6) {
                0 => chunk.fill(0.0),
                1 => chunk[rng.below(chunk.len())] = 1e4,
                2 => chunk.iter_mut().for_each(|v| *v *= 1e-30),
                3 => chunk.iter_mut().for_each(|v| *v = v.signum() * 1e3),
                _ => {}
            }
        }
    }
    x
}
