//! `y = x · Wᵀ` for a model weight on the chosen backend.

use serde::Serialize;

use super::error::ModelError;
use super::weights::Weight;
use crate::gguf::GgufFile;
use crate::kernels::{matmul, QMatrix};
use crate::quant::{dequantize, GgmlType};

use half::{bf16, f16};

/// Where matrix products run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The fast path: activations quantized once per product, SIMD dot products, rayon
    /// over output rows (bit-identical across thread counts).
    Cpu,
    /// The oracle: weights dequantized to f32, activations kept in f32, every dot product
    /// accumulated in f64, one thread.
    CpuRef,
}

impl Backend {
    pub fn from_name(name: &str) -> Option<Backend> {
        match name {
            "cpu" => Some(Backend::Cpu),
            "cpu-ref" => Some(Backend::CpuRef),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::CpuRef => "cpu-ref",
        }
    }
}

/// `out[n × rows] = x[n × cols] · Wᵀ`, where W is `weight` or, for a stacked expert tensor,
/// its expert `expert` (rows = ne1, cols = ne0).
pub fn linear(
    backend: Backend,
    f: &GgufFile,
    weight: &Weight,
    expert: Option<usize>,
    x: &[f32],
    n: usize,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let info = &weight.info;
    let cols = info.ne[0] as usize;
    let rows = info.ne.get(1).copied().unwrap_or(1) as usize;
    let mut data = f.tensor_data(info);
    if let Some(e) = expert {
        let per_expert = data.len() / info.ne.get(2).copied().unwrap_or(1) as usize;
        data = &data[e * per_expert..(e + 1) * per_expert];
    }
    match backend {
        Backend::Cpu => {
            let w = QMatrix::new(weight.ty(), rows, cols, data)?;
            match weight.ty() {
                // ggml converts a matmul's f32 operand to the weight's `vec_dot_type`: f16
                // for F16 weights, bf16 for BF16 (ggml-cpu.c type traits). Quantized types
                // are handled inside the kernels (Q8_0 / Q8_1 / Q8_K activations).
                GgmlType::F16 => matmul(&w, &round_each(x, |v| f16::from_f32(v).to_f32()), n, out)?,
                GgmlType::BF16 => {
                    matmul(&w, &round_each(x, |v| bf16::from_f32(v).to_f32()), n, out)?
                }
                _ => matmul(&w, x, n, out)?,
            }
        }
        Backend::CpuRef => {
            let row_bytes = data.len() / rows.max(1);
            let mut w_row = vec![0f32; cols];
            for r in 0..rows {
                dequantize(
                    weight.ty(),
                    &data[r * row_bytes..(r + 1) * row_bytes],
                    &mut w_row,
                )?;
                for t in 0..n {
                    let xs = &x[t * cols..(t + 1) * cols];
                    let acc: f64 = w_row
                        .iter()
                        .zip(xs)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    out[t * rows + r] = acc as f32;
                }
            }
        }
    }
    Ok(())
}

fn round_each(x: &[f32], round: impl Fn(f32) -> f32) -> Vec<f32> {
    x.iter().map(|&v| round(v)).collect()
}
