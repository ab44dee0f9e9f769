//! The tensors of a model, found by llama.cpp's names and checked against the shapes the
//! architecture expects, so a wrong file fails at load with the architecture and what it
//! expected (never a bare "tensor not found").

use super::arch::Arch;
use super::error::{MissingTensor, ModelError, ShapeMismatch};
use super::hparams::HParams;
use crate::gguf::{GgufFile, TensorInfo};
use crate::quant::{dequantize, GgmlType};

/// A weight matrix (or stack of expert matrices) in the file, not copied.
#[derive(Debug, Clone)]
pub struct Weight {
    pub info: TensorInfo,
}

impl Weight {
    pub fn ty(&self) -> GgmlType {
        self.info.ggml_type
    }
}

/// One layer's FFN.
#[derive(Debug, Clone)]
pub enum Ffn {
    Dense {
        gate: Weight,
        up: Weight,
        down: Weight,
    },
    Moe {
        /// [n_embd → n_expert].
        router: Weight,
        /// ne {n_embd, n_ff_exp, n_expert}.
        gate_exps: Weight,
        up_exps: Weight,
        /// ne {n_ff_exp, n_embd, n_expert}.
        down_exps: Weight,
    },
}

/// One transformer block's tensors. Vectors (norms, biases) are read into f32 once.
#[derive(Debug, Clone)]
pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Weight,
    pub wk: Weight,
    pub wv: Weight,
    pub wo: Weight,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub ffn: Ffn,
}

/// All tensors of a model.
#[derive(Debug, Clone)]
pub struct Weights {
    pub token_embd: Weight,
    pub layers: Vec<Layer>,
    pub output_norm: Vec<f32>,
    /// `output.weight`, or `token_embd.weight` when the output is tied.
    pub output: Weight,
    pub tied_output: bool,
}

struct Loader<'f> {
    f: &'f GgufFile,
    arch: Arch,
}

impl Loader<'_> {
    fn find(&self, name: &str, expected: &[u64], what: &str) -> Result<Weight, ModelError> {
        let info = self
            .f
            .find_tensor(name)
            .ok_or_else(|| self.missing(name, expected, what))?;
        if info.ne != expected {
            return Err(ModelError::ShapeMismatch(Box::new(ShapeMismatch {
                file: self.f.origin().to_owned(),
                arch: self.arch.name(),
                tensor: name.to_owned(),
                expected: expected.to_vec(),
                found: info.ne.clone(),
            })));
        }
        if matches!(info.ggml_type, GgmlType::Q8_1 | GgmlType::Q8K) {
            return Err(ModelError::UnsupportedType {
                file: self.f.origin().to_owned(),
                tensor: name.to_owned(),
                ty: info.ggml_type,
                role: "model weight (it is an activation-only type)",
            });
        }
        Ok(Weight { info: info.clone() })
    }

    fn missing(&self, name: &str, expected: &[u64], what: &str) -> ModelError {
        // Say what the file holds instead when that explains the mismatch: a MoE file read
        // as a dense architecture, or the other way round.
        let block = name.split('.').take(2).collect::<Vec<_>>().join(".");
        let has = |suffix: &str| self.f.find_tensor(&format!("{block}.{suffix}")).is_some();
        let hint = if !self.arch.is_moe() && has("ffn_up_exps.weight") {
            format!(
                "; this file holds mixture-of-experts tensors ({block}.ffn_{{gate,up,down}}_exps) \
                 but says general.architecture = {}, a dense architecture",
                self.arch
            )
        } else if self.arch.is_moe() && has("ffn_up.weight") {
            format!(
                "; this file holds dense FFN tensors ({block}.ffn_{{gate,up,down}}) but says \
                 general.architecture = {}, a mixture-of-experts architecture",
                self.arch
            )
        } else {
            String::new()
        };
        ModelError::MissingTensor(Box::new(MissingTensor {
            file: self.f.origin().to_owned(),
            arch: self.arch.name(),
            tensor: name.to_owned(),
            expected: format!("{what}, ne {expected:?}"),
            hint,
        }))
    }

    fn vector(&self, name: &str, len: u64, what: &str) -> Result<Vec<f32>, ModelError> {
        let w = self.find(name, &[len], what)?;
        let mut out = vec![0.0; len as usize];
        dequantize(w.ty(), self.f.tensor_data(&w.info), &mut out)?;
        Ok(out)
    }
}

impl Weights {
    /// Find and check every tensor `arch` needs.
    pub fn load(f: &GgufFile, arch: Arch, hp: &HParams) -> Result<Weights, ModelError> {
        let l = Loader { f, arch };
        let spec = arch.spec();
        let (d, q, kv) = (hp.n_embd as u64, hp.q_dim() as u64, hp.kv_dim() as u64);
        let vocab = hp.n_vocab as u64;
        let token_embd = l.find("token_embd.weight", &[d, vocab], "token embeddings")?;
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let bias = |s: &str, n| {
                spec.qkv_bias
                    .then(|| l.vector(&p(s), n, "projection bias"))
                    .transpose()
            };
            let head_norm = |s: &str| {
                spec.qk_norm
                    .then(|| l.vector(&p(s), hp.head_dim as u64, "per-head RMSNorm weight"))
                    .transpose()
            };
            let ffn = if spec.moe {
                let (e, fe) = (hp.n_expert as u64, hp.n_ff_exp as u64);
                Ffn::Moe {
                    router: l.find(&p("ffn_gate_inp.weight"), &[d, e], "expert router")?,
                    gate_exps: l.find(&p("ffn_gate_exps.weight"), &[d, fe, e], "expert gates")?,
                    up_exps: l.find(&p("ffn_up_exps.weight"), &[d, fe, e], "expert ups")?,
                    down_exps: l.find(&p("ffn_down_exps.weight"), &[fe, d, e], "expert downs")?,
                }
            } else {
                let ff = hp.n_ff as u64;
                Ffn::Dense {
                    gate: l.find(&p("ffn_gate.weight"), &[d, ff], "dense FFN gate")?,
                    up: l.find(&p("ffn_up.weight"), &[d, ff], "dense FFN up")?,
                    down: l.find(&p("ffn_down.weight"), &[ff, d], "dense FFN down")?,
                }
            };
            layers.push(Layer {
                attn_norm: l.vector(&p("attn_norm.weight"), d, "attention RMSNorm weight")?,
                wq: l.find(&p("attn_q.weight"), &[d, q], "query projection")?,
                wk: l.find(&p("attn_k.weight"), &[d, kv], "key projection")?,
                wv: l.find(&p("attn_v.weight"), &[d, kv], "value projection")?,
                wo: l.find(
                    &p("attn_output.weight"),
                    &[q, d],
                    "attention output projection",
                )?,
                bq: bias("attn_q.bias", q)?,
                bk: bias("attn_k.bias", kv)?,
                bv: bias("attn_v.bias", kv)?,
                q_norm: head_norm("attn_q_norm.weight")?,
                k_norm: head_norm("attn_k_norm.weight")?,
                ffn_norm: l.vector(&p("ffn_norm.weight"), d, "FFN RMSNorm weight")?,
                ffn,
            });
        }
        let output_norm = l.vector("output_norm.weight", d, "final RMSNorm weight")?;
        let (output, tied_output) = match f.find_tensor("output.weight") {
            Some(_) => (
                l.find("output.weight", &[d, vocab], "output projection")?,
                false,
            ),
            None => (token_embd.clone(), true),
        };
        Ok(Weights {
            token_embd,
            layers,
            output_norm,
            output,
            tied_output,
        })
    }
}
