//! Activation quantization facts, dispatch reporting and typed errors of the kernels API.

use apr_engine::kernels::{
    activation_type, active_isa, kernel_isa, matmul, matvec, quantize_row_q8_0, quantize_row_q8_1,
    quantize_row_q8_k, Isa, KernelError, QMatrix, WEIGHT_TYPES,
};
use apr_engine::quant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1};
use apr_engine::quant::GgmlType;
use bytemuck::Zeroable;

/// ggml's x86 CPU quantizer (`quantize_row_q8_0` in `ggml-cpu/arch/x86/quants.c`, which
/// made our llama.cpp references): `id = 127 / amax` and ties rounded to even, where the
/// portable `quantize_row_q8_0_ref` uses `1 / d` and C `roundf`.
#[test]
fn q8_0_follows_ggmls_x86_quantizer() {
    // amax = 127: d = 1 and id = 1 exactly, so only the rounding shows.
    let mut x = [0f32; 32];
    x[..6].copy_from_slice(&[127.0, 2.5, -0.5, 1.5, -3.5, 0.49]);
    let mut y = [BlockQ8_0::zeroed(); 1];
    quantize_row_q8_0(&x, &mut y);
    assert_eq!(y[0].d, half::f16::from_f32(1.0));
    // roundf would give 3, -1, 2, -4, 0.
    assert_eq!(&y[0].qs[..6], &[127, 2, 0, 2, -4, 0]);
    // 127 / 4.159716 and 1 / (4.159716 / 127) differ by one ulp in f32: x·id is 2.5 (→ 2)
    // with ggml's x86 factor, 2.5000002 (→ 3) with the reference's.
    let mut x = [0f32; 32];
    x[0] = 4.159716;
    x[1] = 0.081884176;
    quantize_row_q8_0(&x, &mut y);
    assert_eq!(y[0].d, half::f16::from_f32(4.159716 / 127.0));
    assert_eq!(&y[0].qs[..2], &[127, 2]);
}

#[test]
fn q8_1_stores_d_times_sum() {
    let x: Vec<f32> = (0..32).map(|i| i as f32 - 10.0).collect();
    let mut y = [BlockQ8_1::zeroed(); 1];
    quantize_row_q8_1(&x, &mut y);
    let d = 21.0f32 / 127.0;
    let sum: i32 = y[0].qs.iter().map(|&q| q as i32).sum();
    assert_eq!(y[0].qs[31], 127);
    // x = 11 → 11·127/21 = 66.52… → 67; x = -10 → -60.47… → -60 (id = 127/21 as in q8_0).
    assert_eq!((y[0].qs[21], y[0].qs[0]), (67, -60));
    assert_eq!(y[0].s, half::f16::from_f32(sum as f32 * d));
    assert_ne!(sum, 0);
}

#[test]
fn q8_k_follows_ggml_reference() {
    let mut x = [0f32; 256];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i as f32 - 100.0) * 0.5;
    }
    // Largest magnitude is x[255] = 77.5: iscale = -127/77.5, so it maps to -127.
    let mut y = [BlockQ8K::zeroed(); 1];
    quantize_row_q8_k(&x, &mut y);
    assert_eq!(y[0].qs[255], -127);
    assert_eq!(y[0].d, 1.0 / (-127.0f32 / 77.5));
    for j in 0..16 {
        let s: i16 = y[0].qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum();
        assert_eq!(y[0].bsums[j], s);
    }
    assert!(y[0].qs.iter().all(|&q| q != -128));
    // All-zero block.
    quantize_row_q8_k(&[0.0; 256], &mut y);
    assert_eq!(y[0].d, 0.0);
    assert!(y[0].qs.iter().all(|&q| q == 0) && y[0].bsums.iter().all(|&s| s == 0));
}

#[test]
fn activation_pairing_is_ggmls() {
    use GgmlType::*;
    for (w, a) in [
        (Q4_0, Q8_0),
        (Q5_0, Q8_0),
        (Q8_0, Q8_0),
        (Q4_1, Q8_1),
        (Q5_1, Q8_1),
        (Q2K, Q8K),
        (Q3K, Q8K),
        (Q4K, Q8K),
        (Q5K, Q8K),
        (Q6K, Q8K),
        (F32, F32),
        (F16, F32),
        (BF16, F32),
    ] {
        assert_eq!(activation_type(w), a, "{w}");
    }
}

#[test]
fn dispatch_reports_a_supported_path() {
    let isa = active_isa();
    assert!(isa.is_supported());
    for ty in [GgmlType::Q4K, GgmlType::F32] {
        let k = kernel_isa(isa, ty);
        assert!(isa.includes(k) && k.is_supported());
        assert_eq!(kernel_isa(Isa::Scalar, ty), Isa::Scalar);
    }
    match std::env::var("APR_SIMD").as_deref() {
        Ok("scalar") => assert_eq!(isa, Isa::Scalar),
        _ => eprintln!("active ISA: {isa}"),
    }
}

#[test]
fn a_requested_tier_falls_back_within_its_architecture() {
    for want in Isa::ALL {
        let got = want.fallback();
        assert!(
            got.is_supported() && want.includes(got),
            "{want} fell back to {got}"
        );
        if want.is_supported() {
            assert_eq!(got, want);
        }
        assert_eq!(Isa::from_name(&want.name().to_uppercase()), Some(want));
        for ty in WEIGHT_TYPES {
            let k = kernel_isa(want, ty);
            assert!(
                want.includes(k) && k.is_supported(),
                "{want} {ty}: kernel {k}"
            );
        }
    }
    assert!(Isa::Avx512.includes(Isa::Avx2) && !Isa::Avx2.includes(Isa::Avx512));
    assert!(!Isa::Neon.includes(Isa::Avx2) && !Isa::Avx512.includes(Isa::Neon));
    if cfg!(target_arch = "x86_64") {
        assert_eq!(Isa::Neon.fallback(), Isa::Scalar);
    }
    if cfg!(target_arch = "aarch64") {
        assert_eq!(Isa::Avx2.fallback(), Isa::Scalar);
        assert_eq!(Isa::Avx512.fallback(), Isa::Scalar);
    }
}

#[test]
fn shape_and_type_errors_are_typed() {
    let words = vec![0u32; 64];
    let bytes: &[u8] = bytemuck::cast_slice(&words);
    assert_eq!(
        QMatrix::new(GgmlType::Q4_0, 2, 48, &bytes[..36]).unwrap_err(),
        KernelError::ColsNotBlockMultiple {
            ty: GgmlType::Q4_0,
            cols: 48,
            block: 32
        }
    );
    assert_eq!(
        QMatrix::new(GgmlType::Q4_0, 2, 64, &bytes[..70]).unwrap_err(),
        KernelError::WeightBytes {
            ty: GgmlType::Q4_0,
            rows: 2,
            cols: 64,
            expected: 72,
            found: 70
        }
    );
    assert_eq!(
        QMatrix::new(GgmlType::Q8K, 1, 256, &bytes[..0]).unwrap_err(),
        KernelError::UnsupportedWeightType { ty: GgmlType::Q8K }
    );
    assert_eq!(
        QMatrix::new(GgmlType::F32, 1, 4, &bytes[1..17]).unwrap_err(),
        KernelError::Misaligned {
            ty: GgmlType::F32,
            align: 4
        }
    );
    let m = QMatrix::new(GgmlType::Q8_0, 2, 32, &bytes[..68]).unwrap();
    let mut out = [0f32; 2];
    assert_eq!(
        matvec(&m, &[0.0; 31], &mut out).unwrap_err(),
        KernelError::ActivationLen {
            n: 1,
            cols: 32,
            expected: 32,
            found: 31
        }
    );
    assert_eq!(
        matmul(&m, &[0.0; 64], 2, &mut out).unwrap_err(),
        KernelError::OutputLen {
            n: 2,
            rows: 2,
            expected: 4,
            found: 2
        }
    );
    assert!(matvec(&m, &[1.0; 32], &mut out).is_ok());
}
