//! GGUF v2/v3: memory-mapped reader, typed metadata access, and writer.
//!
//! ```no_run
//! use apr_engine::gguf::GgufFile;
//! let f = GgufFile::open("model.gguf")?;
//! let n_layers = f.get_u32("qwen2.block_count")?;
//! let embd = f.tensor("token_embd.weight")?;
//! let bytes: &[u8] = f.tensor_data(embd);
//! # Ok::<(), apr_engine::gguf::GgufError>(())
//! ```
//!
//! Every input is treated as hostile; see `docs/gguf.md` for the limits and the error policy.

mod error;
pub mod inspect;
pub mod limits;
pub(crate) mod parse;
mod value;
pub(crate) mod writer;

use std::path::{Path, PathBuf};

pub use error::{GgufError, MEMORY_ORIGIN};
pub use parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC};
pub use value::{GgufArray, GgufValue, GgufValueType};
pub use writer::GgufWriter;

use crate::quant::GgmlType;

/// One tensor's description from the tensor-info section, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Shape as ggml writes it: `ne[0]` is the contiguous dimension (0 to 4 entries).
    pub ne: Vec<u64>,
    /// Product of `ne` (1 for a 0-dimensional tensor).
    pub n_elements: u64,
    /// Bytes of data: `row_size(ne[0]) * (n_elements / ne[0])`.
    pub n_bytes: u64,
    /// Offset of the data relative to the start of the data section, as stored in the file.
    pub offset: u64,
    /// Absolute offset of the data in the file.
    pub file_offset: u64,
}

/// The bytes behind a parsed file: a read-only map or an owned buffer.
pub(crate) enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    /// Maps `path` read-only (an empty file becomes an empty owned buffer, because mapping an
    /// empty file fails on some platforms and an empty image parses to a clean "truncated").
    pub(crate) fn map(path: &Path) -> std::io::Result<Storage> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Storage::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only. As with every mmap-based model loader, the file must
        // not be truncated or modified by another process while it is mapped; that is the
        // caller's contract, stated in docs/gguf.md.
        Ok(Storage::Mmap(unsafe { memmap2::Mmap::map(&file) }?))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed, validated GGUF file. Tensor data is borrowed from the memory map (or the owned
/// byte buffer), never copied.
pub struct GgufFile {
    storage: Storage,
    origin: String,
    path: Option<PathBuf>,
    parsed: parse::Parsed,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("origin", &self.origin)
            .field("version", &self.parsed.version)
            .field("n_kv", &self.parsed.metadata.len())
            .field("n_tensors", &self.parsed.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps `path` read-only and parses it.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let origin = error::origin_name(Some(&path));
        let io = |source| GgufError::Io {
            file: origin.clone(),
            source,
        };
        let storage = Storage::map(&path).map_err(io)?;
        let parsed = parse::parse(storage.bytes(), &origin)?;
        Ok(GgufFile {
            storage,
            origin,
            path: Some(path),
            parsed,
        })
    }

    /// Parses an in-memory image (tests, fuzzing, downloads). Errors name the file `<memory>`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let parsed = parse::parse(&bytes, MEMORY_ORIGIN)?;
        Ok(GgufFile {
            storage: Storage::Owned(bytes),
            origin: MEMORY_ORIGIN.to_string(),
            path: None,
            parsed,
        })
    }

    /// A file from parts another container's reader has already validated (the APR reader:
    /// its metadata and tensor infos, with `file_offset`s into `storage`).
    pub(crate) fn from_validated(
        storage: Storage,
        origin: String,
        path: Option<PathBuf>,
        parsed: parse::Parsed,
    ) -> GgufFile {
        GgufFile {
            storage,
            origin,
            path,
            parsed,
        }
    }

    /// Validates an in-memory image without keeping it; the cheapest entry point for fuzzing.
    pub fn validate_bytes(bytes: &[u8]) -> Result<(), GgufError> {
        parse::parse(bytes, MEMORY_ORIGIN).map(|_| ())
    }

    /// The path given to [`GgufFile::open`], if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// What errors call this file: its path, or `<memory>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.parsed.version
    }

    /// Data alignment in bytes (`general.alignment`, default 32).
    pub fn alignment(&self) -> u32 {
        self.parsed.alignment
    }

    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.parsed.data_offset
    }

    /// The whole file image.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.parsed.metadata
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.parsed
            .key_index
            .get(key)
            .map(|&i| &self.parsed.metadata[i].1)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.parsed.key_index.contains_key(key)
    }

    /// The value for `key`, or a [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&GgufValue, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            file: self.origin.clone(),
            key: key.to_string(),
        })
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &GgufValue) -> GgufError {
        GgufError::WrongType {
            file: self.origin.clone(),
            key: key.to_string(),
            expected: expected.to_string(),
            found: found.type_description(),
        }
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.parsed.tensors
    }

    /// The tensor called `name`, if present.
    pub fn find_tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.parsed
            .tensor_index
            .get(name)
            .map(|&i| &self.parsed.tensors[i])
    }

    /// The tensor called `name`, or a [`GgufError::TensorNotFound`].
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.find_tensor(name)
            .ok_or_else(|| GgufError::TensorNotFound {
                file: self.origin.clone(),
                tensor: name.to_string(),
            })
    }

    /// The data bytes of a tensor of this file (validated to lie inside it when parsing).
    ///
    /// An info from another file yields an empty slice if its range is outside this file.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let bytes = self.bytes();
        let start = usize::try_from(info.file_offset).ok();
        let end = usize::try_from(info.file_offset.saturating_add(info.n_bytes)).ok();
        match (start, end) {
            (Some(s), Some(e)) => bytes.get(s..e).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The data bytes of the tensor called `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        Ok(self.tensor_data(self.tensor(name)?))
    }
}

macro_rules! scalar_getters {
    ($($(#[$doc:meta])* $fn:ident => $variant:ident : $t:ty),* $(,)?) => {
        impl GgufFile {
            $(
                $(#[$doc])*
                pub fn $fn(&self, key: &str) -> Result<$t, GgufError> {
                    match self.require(key)? {
                        GgufValue::$variant(v) => Ok(*v),
                        other => Err(self.wrong_type(key, GgufValueType::$variant.name(), other)),
                    }
                }
            )*
        }
    };
}

scalar_getters! {
    /// A UINT8 value.
    get_u8 => U8: u8,
    /// An INT8 value.
    get_i8 => I8: i8,
    /// A UINT16 value.
    get_u16 => U16: u16,
    /// An INT16 value.
    get_i16 => I16: i16,
    /// A UINT32 value, e.g. `get_u32("qwen2.block_count")`.
    get_u32 => U32: u32,
    /// An INT32 value.
    get_i32 => I32: i32,
    /// A FLOAT32 value.
    get_f32 => F32: f32,
    /// A BOOL value.
    get_bool => Bool: bool,
    /// A UINT64 value.
    get_u64 => U64: u64,
    /// An INT64 value.
    get_i64 => I64: i64,
    /// A FLOAT64 value.
    get_f64 => F64: f64,
}

macro_rules! array_getters {
    ($($(#[$doc:meta])* $fn:ident => $variant:ident : $t:ty),* $(,)?) => {
        impl GgufFile {
            $(
                $(#[$doc])*
                pub fn $fn(&self, key: &str) -> Result<&[$t], GgufError> {
                    match self.require(key)? {
                        GgufValue::Array(GgufArray::$variant(v)) => Ok(v),
                        other => Err(self.wrong_type(
                            key,
                            &format!("ARRAY[{}]", GgufValueType::$variant.name()),
                            other,
                        )),
                    }
                }
            )*
        }
    };
}

array_getters! {
    /// An `ARRAY[UINT8]` value.
    get_u8_array => U8: u8,
    /// An `ARRAY[INT8]` value.
    get_i8_array => I8: i8,
    /// An `ARRAY[UINT16]` value.
    get_u16_array => U16: u16,
    /// An `ARRAY[INT16]` value.
    get_i16_array => I16: i16,
    /// An `ARRAY[UINT32]` value.
    get_u32_array => U32: u32,
    /// An `ARRAY[INT32]` value, e.g. `tokenizer.ggml.token_type`.
    get_i32_array => I32: i32,
    /// An `ARRAY[FLOAT32]` value, e.g. `tokenizer.ggml.scores`.
    get_f32_array => F32: f32,
    /// An `ARRAY[BOOL]` value.
    get_bool_array => Bool: bool,
    /// An `ARRAY[STRING]` value, e.g. `tokenizer.ggml.tokens`.
    get_str_array => String: String,
    /// An `ARRAY[UINT64]` value.
    get_u64_array => U64: u64,
    /// An `ARRAY[INT64]` value.
    get_i64_array => I64: i64,
    /// An `ARRAY[FLOAT64]` value.
    get_f64_array => F64: f64,
}

impl GgufFile {
    /// A STRING value.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        match self.require(key)? {
            GgufValue::String(s) => Ok(s),
            other => Err(self.wrong_type(key, "STRING", other)),
        }
    }

    /// An ARRAY value of any element type.
    pub fn get_array(&self, key: &str) -> Result<&GgufArray, GgufError> {
        match self.require(key)? {
            GgufValue::Array(a) => Ok(a),
            other => Err(self.wrong_type(key, "ARRAY", other)),
        }
    }

    /// A non-negative integer of any integer type, widened to u64 (for hyperparameters that
    /// converters store with varying widths).
    pub fn get_uint_lenient(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64_lenient()
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", v))
    }
}
