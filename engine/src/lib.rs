//! apr-engine: a GGUF/APR inference engine whose every intermediate tensor is observable.

pub mod apr;
pub mod bench;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod model_file;
pub mod probe;
pub mod quant;
pub mod tokenizer;
pub mod trace;
