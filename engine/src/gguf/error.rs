//! The one error type of the GGUF layer.
//!
//! Every variant names the file (`file`: its path, or `<memory>` for a byte slice), the field
//! that was being read and the offending value, so a message is actionable without a debugger.

use std::path::PathBuf;

/// Why a GGUF file could not be read, written or queried.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{file}: truncated: {field} at offset {offset} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        file: String,
        field: String,
        offset: u64,
        needed: u64,
        available: u64,
    },

    #[error("{file}: bad magic {found:02x?} at offset 0 (expected \"GGUF\" = [47, 47, 55, 46])")]
    BadMagic { file: String, found: Vec<u8> },

    #[error("{file}: unsupported GGUF version {version} ({reason})")]
    UnsupportedVersion {
        file: String,
        version: u32,
        reason: &'static str,
    },

    #[error("{file}: {field} = {value} exceeds the limit {limit}")]
    LimitExceeded {
        file: String,
        field: String,
        value: u64,
        limit: u64,
    },

    #[error(
        "{file}: {field} = {count} at offset {offset} needs at least {needed} bytes, only {available} left"
    )]
    CountExceedsFile {
        file: String,
        field: String,
        count: u64,
        offset: u64,
        needed: u64,
        available: u64,
    },

    #[error("{file}: {field} at offset {offset} is not valid UTF-8: {bytes_preview:?}")]
    InvalidUtf8 {
        file: String,
        field: String,
        offset: u64,
        bytes_preview: String,
    },

    #[error("{file}: {field} at offset {offset} has unknown value type id {type_id}")]
    UnknownValueType {
        file: String,
        field: String,
        offset: u64,
        type_id: u32,
    },

    #[error(
        "{file}: {field} at offset {offset} is a bool with byte value {value} (expected 0 or 1)"
    )]
    InvalidBool {
        file: String,
        field: String,
        offset: u64,
        value: u8,
    },

    #[error("{file}: {field} nests arrays {depth} deep, the limit is {limit}")]
    NestingTooDeep {
        file: String,
        field: String,
        depth: usize,
        limit: usize,
    },

    #[error("{file}: duplicate metadata key {key:?} (entries {first} and {second})")]
    DuplicateKey {
        file: String,
        key: String,
        first: usize,
        second: usize,
    },

    #[error("{file}: general.alignment = {value} is not a power of two")]
    BadAlignment { file: String, value: u64 },

    #[error("{file}: tensor {tensor:?}: {field} = {value} exceeds the limit {limit}")]
    TensorLimit {
        file: String,
        tensor: String,
        field: &'static str,
        value: u64,
        limit: u64,
    },

    #[error("{file}: tensor {tensor:?}: dimension ne[{dim}] = {value} (must be at least 1)")]
    BadDimension {
        file: String,
        tensor: String,
        dim: usize,
        value: i64,
    },

    #[error("{file}: tensor {tensor:?}: element count of shape {shape:?} overflows")]
    ShapeOverflow {
        file: String,
        tensor: String,
        shape: Vec<u64>,
    },

    #[error("{file}: tensor {tensor:?}: unknown or unsupported ggml type id {type_id}")]
    UnknownTensorType {
        file: String,
        tensor: String,
        type_id: u32,
    },

    #[error(
        "{file}: tensor {tensor:?}: type {ggml_type} needs ne[0] to be a multiple of {block_size}, found ne[0] = {ne0}"
    )]
    BadRowSize {
        file: String,
        tensor: String,
        ggml_type: crate::quant::GgmlType,
        ne0: u64,
        block_size: u64,
    },

    #[error(
        "{file}: tensor {tensor:?}: byte size of shape {shape:?} with type {ggml_type} overflows"
    )]
    SizeOverflow {
        file: String,
        tensor: String,
        ggml_type: crate::quant::GgmlType,
        shape: Vec<u64>,
    },

    #[error("{file}: duplicate tensor name {tensor:?} (tensor infos {first} and {second})")]
    DuplicateTensor {
        file: String,
        tensor: String,
        first: usize,
        second: usize,
    },

    #[error("{file}: tensor {tensor:?}: data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        file: String,
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error(
        "{file}: tensor {tensor:?}: data at offset {offset} (file offset {file_offset}) with {size} bytes ends past the end of the file ({file_size} bytes)"
    )]
    TensorOutOfBounds {
        file: String,
        tensor: String,
        offset: u64,
        file_offset: u64,
        size: u64,
        file_size: u64,
    },

    #[error(
        "{file}: tensor {tensor:?}: data bytes {start}..{end} overlap tensor {other:?} at {other_start}..{other_end}"
    )]
    OverlappingTensors {
        file: String,
        tensor: String,
        start: u64,
        end: u64,
        other: String,
        other_start: u64,
        other_end: u64,
    },

    #[error("{file}: metadata key {key:?} not found")]
    MissingKey { file: String, key: String },

    #[error("{file}: metadata key {key:?} has type {found}, expected {expected}")]
    WrongType {
        file: String,
        key: String,
        expected: String,
        found: String,
    },

    #[error("{file}: tensor {tensor:?} not found")]
    TensorNotFound { file: String, tensor: String },

    #[error("{file}: writer: {field}: {reason}")]
    Writer {
        file: String,
        field: String,
        reason: String,
    },
}

/// The name errors use for a source: its path, or `<memory>` for bytes with no file.
pub(crate) fn origin_name(path: Option<&PathBuf>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => MEMORY_ORIGIN.to_string(),
    }
}

/// What errors call bytes that did not come from a file.
pub const MEMORY_ORIGIN: &str = "<memory>";
