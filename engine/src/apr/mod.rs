//! APR: the engine's native model container (`.apr`). The byte layout is specified in
//! `docs/apr-format.md`; in short:
//!
//! ```text
//! 0   fixed header (64 bytes): magic "APRF", version, source GGUF version, alignment, counts,
//!     index size, data offset and size, FNV-1a 64 header checksum
//! 64  index: the metadata as GGUF key/value pairs, then one GGUF tensor info + u64 FNV-1a 64
//!     data checksum per tensor
//! ..  zero padding to the alignment (at least 64)
//! ..  data: every tensor's bytes verbatim, each at a multiple of the alignment
//! ```
//!
//! The metadata and tensor infos use the GGUF encoding and are decoded by the GGUF module's own
//! decoder, so an APR file and the GGUF it came from have identical metadata values and
//! tensor infos by construction. Opening an APR file yields a [`GgufFile`] view over the APR
//! map ([`AprFile::as_gguf`]): every consumer reads both formats through the same API (see
//! [`crate::model_file::ModelFile`]).
//!
//! The header checksum is verified on every open (it covers the fixed header and the index,
//! which are read anyway); tensor checksums are verified on demand ([`AprFile::verify`],
//! `apr inspect --verify`) and while converting out of APR.

mod checksum;
pub mod convert;
mod error;
mod read;
mod write;

use std::path::Path;

pub use checksum::{fnv1a64, Fnv1a64, FNV1A64_OFFSET_BASIS, FNV1A64_PRIME};
pub use error::AprError;
pub use write::{apr_layout_alignment, to_apr_bytes, write_apr, write_gguf};

pub(crate) use read::parse as read_storage;

use crate::gguf::{GgufFile, MEMORY_ORIGIN};

/// The four bytes every APR file starts with.
pub const MAGIC: [u8; 4] = *b"APRF";
/// The container version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Size of the fixed header; the index starts here.
pub const HEADER_SIZE: u64 = 64;
/// Bytes of the fixed header covered by the header checksum (everything before the checksum).
pub const HEADER_CHECKSUM_OFFSET: u64 = 56;
/// Smallest data alignment: a cache line, and the widest SIMD load (AVX-512) we issue.
pub const MIN_ALIGNMENT: u32 = 64;
/// Largest data alignment accepted: 2 MiB, the x86-64 huge-page size, the largest alignment
/// that can matter to a memory map. Bounds the zero padding a header can demand.
pub const MAX_ALIGNMENT: u32 = 1 << 21;

/// The fixed header, as read (or written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AprHeader {
    /// Container version ([`VERSION`]).
    pub version: u32,
    /// Version of the GGUF the content came from (2 or 3); written back by APR → GGUF.
    pub gguf_version: u32,
    /// Data alignment in bytes: a power of two in [`MIN_ALIGNMENT`, `MAX_ALIGNMENT`] and a
    /// multiple of the metadata's `general.alignment` (default 32).
    pub alignment: u32,
    /// Metadata key/value pairs in the index.
    pub kv_count: u64,
    /// Tensors in the index.
    pub tensor_count: u64,
    /// Bytes of the index (metadata then tensor table), starting at [`HEADER_SIZE`].
    pub index_size: u64,
    /// Absolute offset of the data section (a multiple of `alignment`).
    pub data_offset: u64,
    /// Bytes of the data section; the file is exactly `data_offset + data_size` bytes.
    pub data_size: u64,
    /// FNV-1a 64 over header bytes `0..56` followed by the index.
    pub header_checksum: u64,
}

/// A tensor whose data does not match its stored checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumMismatch {
    /// Position in the tensor table.
    pub index: usize,
    /// Tensor name.
    pub tensor: String,
    /// Bytes hashed.
    pub n_bytes: u64,
    /// The checksum the tensor table stores.
    pub stored: u64,
    /// FNV-1a 64 of the data as it is now.
    pub computed: u64,
}

/// What [`AprFile::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The file, as errors name it.
    pub file: String,
    /// The header checksum (verified when the file was opened).
    pub header_checksum: u64,
    /// Tensors whose checksum was recomputed.
    pub tensors_checked: usize,
    /// Data bytes hashed.
    pub bytes_checked: u64,
    /// Tensors whose data no longer matches, in table order.
    pub mismatches: Vec<ChecksumMismatch>,
}

impl VerifyReport {
    /// True when every checksum matched.
    pub fn is_ok(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// A human-readable report: one line per mismatch, then a summary line.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for m in &self.mismatches {
            s.push_str(&format!(
                "MISMATCH tensor {:?} (#{}, {} bytes): stored {:#018x}, computed {:#018x}\n",
                m.tensor, m.index, m.n_bytes, m.stored, m.computed
            ));
        }
        s.push_str(&format!(
            "{}: header checksum {:#018x} ok; {} of {} tensor checksums ok ({} bytes): {}\n",
            self.file,
            self.header_checksum,
            self.tensors_checked - self.mismatches.len(),
            self.tensors_checked,
            self.bytes_checked,
            if self.is_ok() { "OK" } else { "FAILED" }
        ));
        s
    }
}

/// Opens `path` (APR, detected by magic) and recomputes every checksum: the header checksum on
/// open, then each tensor's. A GGUF file is an [`AprError::NotApr`] error.
pub fn verify_file(
    path: impl AsRef<Path>,
) -> Result<VerifyReport, crate::model_file::ModelFileError> {
    let f = crate::model_file::ModelFile::open(path)?;
    match f.verify() {
        Some(report) => Ok(report),
        None => Err(AprError::NotApr {
            file: f.origin().to_string(),
            format: f.format().name(),
        }
        .into()),
    }
}

/// An opened, validated APR file: its header, a [`GgufFile`] view of its content, and the
/// stored tensor checksums.
pub struct AprFile {
    header: AprHeader,
    gguf: GgufFile,
    checksums: Vec<u64>,
}

impl std::fmt::Debug for AprFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AprFile")
            .field("origin", &self.gguf.origin())
            .field("header", &self.header)
            .finish()
    }
}

impl AprFile {
    /// Maps `path` read-only, checks the header and its checksum, and decodes the index.
    pub fn open(path: impl AsRef<Path>) -> Result<AprFile, AprError> {
        let path = path.as_ref().to_path_buf();
        let origin = path.display().to_string();
        let storage = crate::gguf::Storage::map(&path).map_err(|source| AprError::Io {
            file: origin.clone(),
            source,
        })?;
        read::parse(storage, origin, Some(path))
    }

    /// Parses an in-memory image. Errors name the file `<memory>`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<AprFile, AprError> {
        read::parse(
            crate::gguf::Storage::Owned(bytes),
            MEMORY_ORIGIN.to_string(),
            None,
        )
    }

    pub(crate) fn from_parts(header: AprHeader, gguf: GgufFile, checksums: Vec<u64>) -> AprFile {
        AprFile {
            header,
            gguf,
            checksums,
        }
    }

    /// The fixed header.
    pub fn header(&self) -> &AprHeader {
        &self.header
    }

    /// The content as a [`GgufFile`]: metadata and tensor infos exactly as in the source GGUF,
    /// `version()` the source GGUF version, `alignment()` its `general.alignment` (default 32);
    /// `bytes()`, `data_offset()` and the tensors' `offset` / `file_offset` describe this APR
    /// file, so `tensor_data` reads from the APR map.
    pub fn as_gguf(&self) -> &GgufFile {
        &self.gguf
    }

    /// Consumes the file, keeping the [`GgufFile`] view.
    pub fn into_gguf(self) -> GgufFile {
        self.gguf
    }

    /// The stored FNV-1a 64 checksum of each tensor, in tensor-table order.
    pub fn tensor_checksums(&self) -> &[u64] {
        &self.checksums
    }

    /// Recomputes every tensor's checksum and reports those that differ from the stored one.
    /// Tensors are hashed in parallel (rayon); the report is in tensor-table order.
    pub fn verify(&self) -> VerifyReport {
        use rayon::prelude::*;
        let tensors = self.gguf.tensors();
        let computed: Vec<u64> = tensors
            .par_iter()
            .map(|t| fnv1a64(self.gguf.tensor_data(t)))
            .collect();
        let bytes_checked = tensors.iter().map(|t| t.n_bytes).sum();
        let mismatches = tensors
            .iter()
            .zip(&self.checksums)
            .zip(computed)
            .enumerate()
            .filter(|(_, ((_, &stored), computed))| stored != *computed)
            .map(|(index, ((t, &stored), computed))| ChecksumMismatch {
                index,
                tensor: t.name.clone(),
                n_bytes: t.n_bytes,
                stored,
                computed,
            })
            .collect();
        VerifyReport {
            file: self.gguf.origin().to_string(),
            header_checksum: self.header.header_checksum,
            tensors_checked: self.checksums.len(),
            bytes_checked,
            mismatches,
        }
    }
}
