//! Errors of the matrix kernels.

use super::dispatch::Isa;
use crate::quant::GgmlType;

/// What is wrong with a matmul's operands. Every variant carries the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("{ty} cannot be a matmul weight type (it is an activation-only type)")]
    UnsupportedWeightType { ty: GgmlType },
    #[error("{ty} rows of {cols} columns are not a whole number of {block}-value blocks")]
    ColsNotBlockMultiple {
        ty: GgmlType,
        cols: usize,
        block: usize,
    },
    #[error("a {ty} matrix of {rows}x{cols} needs {expected} bytes, got {found}")]
    WeightBytes {
        ty: GgmlType,
        rows: usize,
        cols: usize,
        expected: usize,
        found: usize,
    },
    #[error("{ty} weight bytes must be aligned to {align} bytes")]
    Misaligned { ty: GgmlType, align: usize },
    #[error("size of {rows}x{cols} overflows usize")]
    Overflow { rows: usize, cols: usize },
    #[error(
        "activations: {len} values are not whole rows of {cols} columns in {block}-value blocks"
    )]
    ActivationShape {
        len: usize,
        cols: usize,
        block: usize,
    },
    #[error("activations: expected {expected} values ({n} x {cols}), got {found}")]
    ActivationLen {
        n: usize,
        cols: usize,
        expected: usize,
        found: usize,
    },
    #[error("{weight} weights need {expected} activations")]
    ActivationType {
        weight: GgmlType,
        expected: GgmlType,
    },
    #[error("output: expected {expected} values ({n} x {rows}), got {found}")]
    OutputLen {
        n: usize,
        rows: usize,
        expected: usize,
        found: usize,
    },
    #[error("instruction set {isa} is not available on this CPU")]
    IsaUnavailable { isa: Isa },
}
