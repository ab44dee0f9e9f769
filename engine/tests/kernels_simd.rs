//! Every SIMD kernel against its scalar twin, bit for bit, on random and adversarial blocks,
//! for every ISA tier this CPU has. The summation contract (kernels::dot_scalar) makes the
//! results identical, not merely close; a NaN equals a NaN.

use apr_engine::kernels::synth::{activations, weight_bytes, weights, Style};
use apr_engine::kernels::{kernel_isa, matmul_with, Isa, QMatrix, WEIGHT_TYPES};
use apr_engine::quant::GgmlType;

/// Columns that leave a partial group of 8 blocks (and of 32 floats), so tails run too.
fn odd_cols(ty: GgmlType) -> usize {
    match ty.block_size() {
        1 => 32 * 5 + 7,
        32 => 32 * 19,
        _ => 256 * 11,
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
}

fn simd_tiers() -> Vec<Isa> {
    Isa::available()
        .into_iter()
        .filter(|&i| i != Isa::Scalar)
        .collect()
}

/// The tier every weight type has a kernel on, if this CPU can run it (AVX-512 has kernels
/// for some types only and falls back to AVX2 for the rest).
fn full_tier() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    let tier = std::is_x86_feature_detected!("avx2").then_some(Isa::Avx2);
    #[cfg(target_arch = "aarch64")]
    let tier = std::arch::is_aarch64_feature_detected!("neon").then_some(Isa::Neon);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let tier = None;
    tier
}

#[test]
fn this_machine_has_a_simd_tier() {
    match full_tier() {
        Some(tier) => assert!(
            simd_tiers().contains(&tier),
            "{tier} detected but tier unavailable"
        ),
        None => eprintln!("no SIMD tier on this CPU: the SIMD-vs-scalar tests below check nothing"),
    }
}

#[test]
fn every_type_has_a_kernel_on_the_full_simd_tier() {
    let Some(tier) = full_tier().filter(|t| t.is_supported()) else {
        eprintln!("skip: no AVX2 or NEON");
        return;
    };
    for ty in WEIGHT_TYPES {
        assert_eq!(kernel_isa(tier, ty), tier, "{ty} has no {tier} kernel");
    }
}

fn check(ty: GgmlType, style: Style, rows: usize, cols: usize, n: usize, seed: u64) {
    let w = weights(ty, rows, cols, style, seed);
    let m = QMatrix::new(ty, rows, cols, weight_bytes(&w, ty, rows, cols)).unwrap();
    let x = activations(n * cols, style, seed ^ 0xA5A5);
    let mut want = vec![0f32; n * rows];
    matmul_with(Isa::Scalar, &m, &x, n, &mut want).unwrap();
    let nonzero = want.iter().filter(|v| **v != 0.0).count();
    assert!(
        nonzero * 2 > want.len(),
        "{ty} {style:?}: degenerate test data ({nonzero} nonzero)"
    );
    for isa in simd_tiers() {
        let mut got = vec![0f32; n * rows];
        matmul_with(isa, &m, &x, n, &mut got).unwrap();
        if let Some(i) = same_bits(&want, &got) {
            panic!(
                "{ty} {style:?} {isa} (kernel {}) seed {seed}: out[{i}] = {:e} ({:#010x}), scalar {:e} ({:#010x})",
                kernel_isa(isa, ty),
                got[i],
                got[i].to_bits(),
                want[i],
                want[i].to_bits()
            );
        }
    }
}

#[test]
fn simd_matches_scalar_on_random_blocks() {
    for ty in WEIGHT_TYPES {
        for seed in 0..3 {
            check(ty, Style::Random, 7, odd_cols(ty), 2, seed);
        }
        // A whole number of 8-block groups too.
        check(ty, Style::Random, 5, 8 * ty.block_size().max(4) * 4, 1, 11);
    }
}

#[test]
fn simd_matches_scalar_on_adversarial_blocks() {
    for ty in WEIGHT_TYPES {
        for seed in 100..106 {
            check(ty, Style::Adversarial, 9, odd_cols(ty), 2, seed);
        }
    }
}

#[test]
fn simd_matches_scalar_on_all_max_quants() {
    // Every quant byte 0xFF (all-max nibbles, all high bits set, q8 = -1) with large scales.
    for ty in WEIGHT_TYPES.into_iter().filter(|t| t.is_quantized()) {
        let (rows, cols) = (4, odd_cols(ty));
        let mut w = weights(ty, rows, cols, Style::Random, 7);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut w);
        let bs = ty.type_size();
        let nblocks = rows * cols / ty.block_size();
        for b in 0..nblocks {
            let blk = &mut bytes[b * bs..(b + 1) * bs];
            // Keep the f16 scale fields (sane, from Style::Random), max out everything else.
            let keep: std::ops::Range<usize> = match ty {
                GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => 0..2,
                GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => 0..4,
                GgmlType::Q2K => 80..84,
                GgmlType::Q3K => 108..110,
                GgmlType::Q6K => 208..210,
                _ => unreachable!(),
            };
            for (i, v) in blk.iter_mut().enumerate() {
                if !keep.contains(&i) {
                    *v = 0xFF;
                }
            }
        }
        let m = QMatrix::new(ty, rows, cols, weight_bytes(&w, ty, rows, cols)).unwrap();
        let x = activations(cols, Style::Random, 3);
        let mut want = vec![0f32; rows];
        matmul_with(Isa::Scalar, &m, &x, 1, &mut want).unwrap();
        assert!(want.iter().all(|v| *v != 0.0), "{ty}: zero output");
        for isa in simd_tiers() {
            let mut got = vec![0f32; rows];
            matmul_with(isa, &m, &x, 1, &mut got).unwrap();
            assert_eq!(
                same_bits(&want, &got),
                None,
                "{ty} {isa}: {want:?} vs {got:?}"
            );
        }
    }
}

#[test]
fn avx512_tier_runs_its_own_kernels() {
    if !Isa::Avx512.is_supported() {
        eprintln!("skip: no AVX-512 F/BW/VL/VNNI");
        return;
    }
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ] {
        assert_eq!(kernel_isa(Isa::Avx512, ty), Isa::Avx512, "{ty}");
    }
}

/// The quantized weight types (the ones with batched kernels).
fn block_types() -> impl Iterator<Item = GgmlType> {
    WEIGHT_TYPES.into_iter().filter(|t| t.is_quantized())
}

/// Four or more activation rows run the batched kernels (register tiles of 4 weight rows ×
/// 4 activation rows taken in pairs, block-interleaved operands): whole tiles, leftover rows
/// and tokens (an odd token count pads a pair), several parallel chunks of 32 rows, partial
/// and whole 8-block groups.
#[test]
fn batched_matches_scalar_on_random_blocks() {
    for ty in block_types() {
        let b = ty.block_size();
        // 70 rows: two full parallel chunks of 32 and a chunk of 6 (one tile and two rows).
        for (cols, n) in [(b * 19, 9), (b * 16, 4), (b * 3, 6), (b * 8, 5)] {
            check(ty, Style::Random, 70, cols, n, n as u64);
        }
    }
}

#[test]
fn batched_matches_scalar_on_adversarial_blocks() {
    for ty in block_types() {
        for seed in 200..204 {
            check(ty, Style::Adversarial, 37, ty.block_size() * 11, 7, seed);
        }
    }
}
