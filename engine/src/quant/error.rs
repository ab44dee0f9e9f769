//! The typed error of the quant module.

use super::GgmlType;

/// Why a buffer could not be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The input is not a whole number of blocks.
    #[error("{ty}: {len} bytes is not a whole number of {block_bytes}-byte blocks")]
    RaggedInput {
        ty: GgmlType,
        len: usize,
        block_bytes: usize,
    },
    /// The output slice does not hold exactly the values the input encodes.
    #[error("{ty}: the input encodes {expected} values but the output holds {found}")]
    OutputLength {
        ty: GgmlType,
        expected: usize,
        found: usize,
    },
    /// ggml defines no dequantization for this type (e.g. Q8_1, whose `to_float` is absent in
    /// ggml's type traits).
    #[error("{ty}: dequantization is not defined for this type")]
    Unsupported { ty: GgmlType },
}
