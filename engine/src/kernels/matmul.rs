//! Matrix × vector and matrix × matrix over any weight type: quantize the activations once,
//! then one dot product per output element, rows split across rayon in fixed chunks.
//!
//! Determinism: each output element is exactly one call of one dot-product kernel on the same
//! two rows, and every kernel reduces in a fixed order (see [`super::dot_scalar`]). Which
//! thread computes it, and how many threads there are, cannot change a bit of it.

use bytemuck::Pod;
use half::{bf16, f16};
use rayon::prelude::*;

use super::dispatch::{self as d, active_isa, DotFn, Isa};
use super::error::KernelError;
#[cfg(target_arch = "x86_64")]
use super::gemm_avx512 as gemm;
#[cfg(target_arch = "x86_64")]
use super::gemm_k_avx512 as gemm_k;
use super::quantize::{quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k};
use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::quant::GgmlType;

/// Output rows per rayon task. A fixed size keeps the work split independent of the pool;
/// results would be identical with any size.
pub const ROW_CHUNK: usize = 32;

/// How far ahead of the weight row a mat-vec is reading it prefetches, in bytes. Decode is
/// bound by how fast weights stream in from DRAM; on the development machine (docs/perf.md)
/// prefetching 2–8 KiB ahead raised generation from ~24 to ~32 tokens/s, 1 KiB helped less.
const PREFETCH_AHEAD: usize = 4096;

/// Every type a matmul weight can have: all but the activation-only Q8_1 and Q8_K.
pub const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

/// A row-major weight matrix `[rows × cols]` of one ggml type, borrowed from tensor bytes
/// (e.g. a memory-mapped GGUF). `cols` is ggml's `ne0`, the contiguous dimension.
#[derive(Debug, Clone, Copy)]
pub struct QMatrix<'a> {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    data: &'a [u8],
}

impl<'a> QMatrix<'a> {
    /// Checks that `data` holds exactly `rows` rows of `cols` values of `ty`, that `ty` can
    /// be a matmul weight (not the activation-only Q8_1 / Q8_K) and that the bytes are
    /// aligned for `ty`'s block struct.
    pub fn new(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        if !WEIGHT_TYPES.contains(&ty) {
            return Err(KernelError::UnsupportedWeightType { ty });
        }
        let block = ty.block_size();
        if !cols.is_multiple_of(block) {
            return Err(KernelError::ColsNotBlockMultiple { ty, cols, block });
        }
        let expected = (cols / block)
            .checked_mul(ty.type_size())
            .and_then(|r| r.checked_mul(rows))
            .ok_or(KernelError::Overflow { rows, cols })?;
        if data.len() != expected {
            return Err(KernelError::WeightBytes {
                ty,
                rows,
                cols,
                expected,
                found: data.len(),
            });
        }
        let align = weight_align(ty);
        if !(data.as_ptr() as usize).is_multiple_of(align) {
            return Err(KernelError::Misaligned { ty, align });
        }
        Ok(QMatrix {
            ty,
            rows,
            cols,
            data,
        })
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// Alignment the block struct of `ty` needs (2 for f16-scaled blocks, 4 for F32).
fn weight_align(ty: GgmlType) -> usize {
    match ty {
        GgmlType::F32 | GgmlType::Q8K => 4,
        _ => 2,
    }
}

/// The activation type ggml pairs with weight type `ty` (`vec_dot_type`): Q8_0 for Q4_0,
/// Q5_0, Q8_0; Q8_1 for Q4_1, Q5_1; Q8_K for the K-quants; F32 for F32/F16/BF16 weights.
pub fn activation_type(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
        GgmlType::Q4_1 | GgmlType::Q5_1 => GgmlType::Q8_1,
        GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
            GgmlType::Q8K
        }
        _ => GgmlType::F32,
    }
}

/// `n` activation rows of `cols` values, converted once to the type the weights pair with.
#[derive(Debug, Clone)]
pub enum Activations {
    F32 { cols: usize, data: Vec<f32> },
    Q8_0 { cols: usize, data: Vec<BlockQ8_0> },
    Q8_1 { cols: usize, data: Vec<BlockQ8_1> },
    Q8K { cols: usize, data: Vec<BlockQ8K> },
}

impl Activations {
    /// Quantizes `x` (`n × cols`, row-major) for weights of type `weight_ty`.
    pub fn quantize(weight_ty: GgmlType, x: &[f32], cols: usize) -> Result<Self, KernelError> {
        let block = activation_type(weight_ty).block_size();
        if cols == 0 || !cols.is_multiple_of(block) || !x.len().is_multiple_of(cols) {
            return Err(KernelError::ActivationShape {
                len: x.len(),
                cols,
                block,
            });
        }
        Ok(match activation_type(weight_ty) {
            GgmlType::Q8_0 => Activations::Q8_0 {
                cols,
                data: quantize_rows(x, cols, block, quantize_row_q8_0),
            },
            GgmlType::Q8_1 => Activations::Q8_1 {
                cols,
                data: quantize_rows(x, cols, block, quantize_row_q8_1),
            },
            GgmlType::Q8K => Activations::Q8K {
                cols,
                data: quantize_rows(x, cols, block, quantize_row_q8_k),
            },
            _ => Activations::F32 {
                cols,
                data: x.to_vec(),
            },
        })
    }
}

/// Quantizes the rows of `x` (`cols` values each, `block` values per block) with `row`,
/// rows in parallel: each row's blocks depend on that row alone, so the split changes nothing.
fn quantize_rows<B: Pod + Send>(
    x: &[f32],
    cols: usize,
    block: usize,
    row: fn(&[f32], &mut [B]),
) -> Vec<B> {
    let mut data = vec![B::zeroed(); x.len() / block];
    data.par_chunks_mut(cols / block)
        .zip(x.par_chunks(cols))
        .for_each(|(q, v)| row(v, q));
    data
}

/// `out[n × rows] = x[n × cols] · Wᵀ` on the [`active_isa`]: `out[t·rows + r]` is the dot
/// product of weight row `r` with activation row `t`.
pub fn matmul(w: &QMatrix<'_>, x: &[f32], n: usize, out: &mut [f32]) -> Result<(), KernelError> {
    matmul_with(active_isa(), w, x, n, out)
}

/// [`matmul`] with one activation row: `out[rows] = W · x`.
pub fn matvec(w: &QMatrix<'_>, x: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    matmul_with(active_isa(), w, x, 1, out)
}

/// [`matmul`] on a chosen tier (for tests and benchmarks). A tier the CPU lacks is an error;
/// a type without a kernel on that tier runs the best lower tier's (see [`kernel_isa`]).
pub fn matmul_with(
    isa: Isa,
    w: &QMatrix<'_>,
    x: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::IsaUnavailable { isa });
    }
    let expected = n.checked_mul(w.cols).ok_or(KernelError::Overflow {
        rows: n,
        cols: w.cols,
    })?;
    if x.len() != expected {
        return Err(KernelError::ActivationLen {
            n,
            cols: w.cols,
            expected,
            found: x.len(),
        });
    }
    let expected = n.checked_mul(w.rows).ok_or(KernelError::Overflow {
        rows: n,
        cols: w.rows,
    })?;
    if out.len() != expected {
        return Err(KernelError::OutputLen {
            n,
            rows: w.rows,
            expected,
            found: out.len(),
        });
    }
    if n == 0 || w.rows == 0 {
        return Ok(());
    }
    let acts = Activations::quantize(w.ty, x, w.cols)?;
    matmul_quantized(isa, w, &acts, out)
}

/// The product with activations already converted by [`Activations::quantize`] for `w`'s type.
pub fn matmul_quantized(
    isa: Isa,
    w: &QMatrix<'_>,
    acts: &Activations,
    out: &mut [f32],
) -> Result<(), KernelError> {
    if !isa.is_supported() {
        return Err(KernelError::IsaUnavailable { isa });
    }
    let ty = w.ty;
    let cast_err = |_| KernelError::Misaligned {
        ty,
        align: weight_align(ty),
    };
    macro_rules! go {
        ($wt:ty, $variant:ident, $select:path) => {{
            let Activations::$variant { cols, data } = acts else {
                return Err(KernelError::ActivationType {
                    weight: ty,
                    expected: activation_type(ty),
                });
            };
            if *cols != w.cols {
                return Err(KernelError::ActivationLen {
                    n: data.len(),
                    cols: w.cols,
                    expected: w.cols,
                    found: *cols,
                });
            }
            let wb: &[$wt] = bytemuck::try_cast_slice(w.data).map_err(cast_err)?;
            run(wb, w.rows, data, $select(isa).0, out)
        }};
        ($wt:ty, $variant:ident, $select:path, $batched:ident) => {{
            #[cfg(target_arch = "x86_64")]
            if let Activations::$variant { cols, data } = acts {
                let n = data.len() * activation_type(ty).block_size() / w.cols.max(1);
                if *cols == w.cols && n >= BATCH_MIN && d::batched_avx512(isa) {
                    let wb: &[$wt] = bytemuck::try_cast_slice(w.data).map_err(cast_err)?;
                    $batched(wb, w.rows, data, out);
                    return Ok(());
                }
            }
            go!($wt, $variant, $select)
        }};
    }
    match ty {
        GgmlType::F32 => go!(f32, F32, d::select_f32),
        GgmlType::F16 => go!(f16, F32, d::select_f16),
        GgmlType::BF16 => go!(bf16, F32, d::select_bf16),
        GgmlType::Q4_0 => go!(BlockQ4_0, Q8_0, d::select_q4_0, run_batched),
        GgmlType::Q4_1 => go!(BlockQ4_1, Q8_1, d::select_q4_1, run_batched),
        GgmlType::Q5_0 => go!(BlockQ5_0, Q8_0, d::select_q5_0, run_batched),
        GgmlType::Q5_1 => go!(BlockQ5_1, Q8_1, d::select_q5_1, run_batched),
        GgmlType::Q8_0 => go!(BlockQ8_0, Q8_0, d::select_q8_0, run_batched),
        GgmlType::Q2K => go!(BlockQ2K, Q8K, d::select_q2_k, run_batched_k),
        GgmlType::Q3K => go!(BlockQ3K, Q8K, d::select_q3_k, run_batched_k),
        GgmlType::Q4K => go!(BlockQ4K, Q8K, d::select_q4_k, run_batched_k),
        GgmlType::Q5K => go!(BlockQ5K, Q8K, d::select_q5_k, run_batched_k),
        GgmlType::Q6K => go!(BlockQ6K, Q8K, d::select_q6_k, run_batched_k),
        GgmlType::Q8_1 | GgmlType::Q8K => return Err(KernelError::UnsupportedWeightType { ty }),
    }
    Ok(())
}

/// The tier whose per-row kernel runs for weight type `ty` when `isa` is requested (the
/// evidence of which path ran). Q8_1 / Q8_K (activation-only types) report the scalar tier.
/// Products with four or more activation rows of a quantized type run the batched AVX-512
/// kernels instead whenever the AVX-512 tier is requested and present, including for the
/// K-quants, whose per-row kernels are AVX2.
pub fn kernel_isa(isa: Isa, ty: GgmlType) -> Isa {
    match ty {
        GgmlType::F32 => d::select_f32(isa).1,
        GgmlType::F16 => d::select_f16(isa).1,
        GgmlType::BF16 => d::select_bf16(isa).1,
        GgmlType::Q4_0 => d::select_q4_0(isa).1,
        GgmlType::Q4_1 => d::select_q4_1(isa).1,
        GgmlType::Q5_0 => d::select_q5_0(isa).1,
        GgmlType::Q5_1 => d::select_q5_1(isa).1,
        GgmlType::Q8_0 => d::select_q8_0(isa).1,
        GgmlType::Q2K => d::select_q2_k(isa).1,
        GgmlType::Q3K => d::select_q3_k(isa).1,
        GgmlType::Q4K => d::select_q4_k(isa).1,
        GgmlType::Q5K => d::select_q5_k(isa).1,
        GgmlType::Q6K => d::select_q6_k(isa).1,
        GgmlType::Q8_1 | GgmlType::Q8K => Isa::Scalar,
    }
}

/// Activation rows from which products run the batched kernels: below it, unpacking the
/// weights for the batch costs more than it saves.
#[cfg(target_arch = "x86_64")]
const BATCH_MIN: usize = 4;

/// Several activation rows through the batched AVX-512 kernels of the 32-value block types
/// (same results as [`run`], bit for bit).
#[cfg(target_arch = "x86_64")]
fn run_batched<W: gemm::WeightBlock, A: gemm::ActBlock>(
    w: &[W],
    rows: usize,
    a: &[A],
    out: &mut [f32],
) {
    let nb = w.len() / rows;
    let n = a.len() / nb;
    let acts = gemm::pack_acts::<W, A>(a, n);
    let out = SharedOut::new(out, n, rows);
    for_row_chunks(rows, |r| {
        // SAFETY: the caller checked `d::batched_avx512`, so the CPU has the AVX-512 tier;
        // the weight rows `r` hold `nb` blocks each, as the `n` activation rows do, and this
        // task is the only one writing outputs of rows `r`.
        unsafe { gemm::rows_block(&w[r.start * nb..r.end * nb], r.start, &acts, out) }
    });
}

/// Several activation rows through the batched AVX-512 kernels of the K-quant types (same
/// results as [`run`], bit for bit).
#[cfg(target_arch = "x86_64")]
fn run_batched_k<W: gemm_k::KBlock>(w: &[W], rows: usize, a: &[BlockQ8K], out: &mut [f32]) {
    let nb = w.len() / rows;
    let n = a.len() / nb;
    let acts = gemm_k::pack_acts(a, n);
    let out = SharedOut::new(out, n, rows);
    for_row_chunks(rows, |r| {
        // SAFETY: as in `run_batched`.
        unsafe { gemm_k::rows_block(&w[r.start * nb..r.end * nb], r.start, &acts, out) }
    });
}

/// The `[n × rows]` output of one product, written by parallel tasks that each own a
/// disjoint range of weight rows (output columns).
#[derive(Clone, Copy)]
pub(super) struct SharedOut {
    ptr: *mut f32,
    n: usize,
    rows: usize,
}

// SAFETY: tasks write disjoint elements (see `set`); the buffer outlives them (the product
// borrows it mutably until every task has joined).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn new(out: &mut [f32], n: usize, rows: usize) -> Self {
        assert_eq!(out.len(), n * rows, "output is not n × rows");
        SharedOut {
            ptr: out.as_mut_ptr(),
            n,
            rows,
        }
    }

    /// Writes output `[t, r]`.
    ///
    /// # Safety
    /// `t < n` and `r < rows`, and no other task writes row `r`'s outputs meanwhile.
    pub(super) unsafe fn set(self, t: usize, r: usize, v: f32) {
        debug_assert!(t < self.n && r < self.rows);
        self.ptr.add(t * self.rows + r).write(v);
    }

    /// Activation rows.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn n(self) -> usize {
        self.n
    }
}

/// Runs `task` on consecutive ranges of [`ROW_CHUNK`] weight rows (the last one shorter),
/// in parallel.
fn for_row_chunks(rows: usize, task: impl Fn(std::ops::Range<usize>) + Sync) {
    (0..rows.div_ceil(ROW_CHUNK))
        .into_par_iter()
        .for_each(|c| task(c * ROW_CHUNK..((c + 1) * ROW_CHUNK).min(rows)));
}

/// One dot product per output, rayon over chunks of [`ROW_CHUNK`] weight rows. `w` holds
/// `rows` rows, `a` holds `n` activation rows of the same block count.
fn run<W: Pod + Sync, A: Sync>(w: &[W], rows: usize, a: &[A], dot: DotFn<W, A>, out: &mut [f32]) {
    let per_row = w.len() / rows;
    let n = a.len() / per_row;
    let dot_rows = |r: usize, t: usize| {
        let wr = &w[r * per_row..(r + 1) * per_row];
        let ar = &a[t * per_row..(t + 1) * per_row];
        // SAFETY: `dot` came from a `select_*` function, which returns an ISA kernel only
        // when the CPU supports it; both rows hold `per_row` blocks.
        unsafe { dot(wr, ar) }
    };
    if n == 1 {
        // A mat-vec reads every weight byte once: ask for each row's bytes a fixed distance
        // ahead so several rows' loads are in flight at once.
        let bytes: &[u8] = bytemuck::cast_slice(w);
        let row_bytes = bytes.len() / rows;
        out.par_chunks_mut(ROW_CHUNK)
            .enumerate()
            .for_each(|(c, o)| {
                for (i, y) in o.iter_mut().enumerate() {
                    let r = c * ROW_CHUNK + i;
                    prefetch(bytes, r * row_bytes + PREFETCH_AHEAD, row_bytes);
                    *y = dot_rows(r, 0);
                }
            });
        return;
    }
    // Several activation rows: keep each weight row hot while it meets every activation row.
    let out = SharedOut::new(out, n, rows);
    for_row_chunks(rows, |rs| {
        for r in rs {
            for t in 0..n {
                // SAFETY: this task alone writes the outputs of its rows; t < n, r < rows.
                unsafe { out.set(t, r, dot_rows(r, t)) };
            }
        }
    });
}

/// Hints the CPU to load `len` bytes of `bytes` from offset `start` into cache, one request
/// per 64-byte line; the part past the end of `bytes` is skipped. Results never depend on
/// it. x86-64 only (`prefetcht0`); elsewhere it does nothing.
#[inline]
fn prefetch(bytes: &[u8], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let end = start.saturating_add(len).min(bytes.len());
        for off in (start..end).step_by(64) {
            // SAFETY: off < bytes.len(), so the pointer is inside the slice; a prefetch
            // reads nothing architecturally and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(off).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, start, len);
}
