//! The one error type of the APR container.
//!
//! Like [`GgufError`], every variant names the file (`<memory>` for a byte image), the field and
//! the offending value. Errors met while decoding the metadata and tensor table come from the
//! shared GGUF decoder and are passed through unchanged ([`AprError::Gguf`]); their offsets are
//! offsets in the APR file.

use crate::gguf::GgufError;

/// Why an APR file could not be read, verified or written.
#[derive(Debug, thiserror::Error)]
pub enum AprError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}: cannot write: {source}")]
    WriteIo {
        file: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{file}: truncated: {field} at offset {offset} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        file: String,
        field: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },

    #[error("{file}: bad magic {found:02x?} at offset 0 (expected \"APRF\" = [41, 50, 52, 46])")]
    BadMagic { file: String, found: Vec<u8> },

    #[error(
        "{file}: unsupported APR version {version} (this reader supports version {supported})"
    )]
    UnsupportedVersion {
        file: String,
        version: u32,
        supported: u32,
    },

    #[error("{file}: {field} = {value}: {reason}")]
    BadField {
        file: String,
        field: &'static str,
        value: u64,
        reason: String,
    },

    #[error(
        "{file}: the file is {file_size} bytes, but header.data_offset {data_offset} + header.data_size {data_size} says it should be {expected} (truncated or extended)"
    )]
    SizeMismatch {
        file: String,
        data_offset: u64,
        data_size: u64,
        expected: u128,
        file_size: u64,
    },

    #[error(
        "{file}: header checksum mismatch: header.checksum = {stored:#018x}, FNV-1a 64 of the header and the {index_size}-byte index is {computed:#018x} (metadata or tensor table corrupted)"
    )]
    HeaderChecksum {
        file: String,
        stored: u64,
        computed: u64,
        index_size: u64,
    },

    #[error("{file}: padding byte at offset {offset} is {value:#04x}, expected 0")]
    NonZeroPadding {
        file: String,
        offset: u64,
        value: u8,
    },

    #[error(
        "{file}: the index (metadata and tensor table) ends at offset {end}, but header.index_size says it ends at {expected}"
    )]
    IndexSize {
        file: String,
        end: u64,
        expected: u64,
    },

    #[error(
        "{file}: tensor {tensor:?}: checksum mismatch: stored {stored:#018x}, FNV-1a 64 of its {n_bytes} data bytes is {computed:#018x}"
    )]
    TensorChecksum {
        file: String,
        tensor: String,
        n_bytes: u64,
        stored: u64,
        computed: u64,
    },

    #[error(
        "{file}: is a {format} file; only APR files carry checksums to verify (make one with `apr convert`)"
    )]
    NotApr { file: String, format: &'static str },

    #[error("{file}: cannot write as APR: {reason}")]
    Unsupported { file: String, reason: String },

    #[error(transparent)]
    Gguf(#[from] GgufError),
}
