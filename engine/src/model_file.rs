//! One model-file type for every consumer: [`ModelFile::open`] reads GGUF or APR (detected by
//! magic) and offers the metadata and tensor API of [`GgufFile`], with the same method names,
//! argument and return types.
//!
//! ```no_run
//! use apr_engine::model_file::{ModelFile, ModelFormat};
//! let f = ModelFile::open("model.apr")?; // or "model.gguf"
//! let n_layers = f.get_u32("qwen2.block_count")?;
//! let embd = f.tensor("token_embd.weight")?;
//! let bytes: &[u8] = f.tensor_data(embd);
//! assert!(matches!(f.format(), ModelFormat::Apr | ModelFormat::Gguf));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Design: an APR file is opened into a [`GgufFile`] view over the APR map (same metadata and
//! tensor-info types, data read from the APR map), so both formats go through one set of
//! getters and nothing but [`ModelFile::format`] (and the layout facts `bytes`, `data_offset`
//! and the tensors' `offset` / `file_offset`) tells them apart. Getters return [`GgufError`]
//! exactly as `GgufFile`'s do.

use std::path::{Path, PathBuf};

use crate::apr::{AprError, AprFile, VerifyReport};
use crate::gguf::{GgufArray, GgufError, GgufFile, GgufValue, TensorInfo, MEMORY_ORIGIN};

/// A model file's container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFormat {
    /// GGUF v2/v3 (llama.cpp).
    Gguf,
    /// APR, this engine's container (`docs/apr-format.md`).
    Apr,
}

impl ModelFormat {
    /// Lower-case name: `gguf` or `apr` (also the file extension).
    pub const fn name(self) -> &'static str {
        match self {
            ModelFormat::Gguf => "gguf",
            ModelFormat::Apr => "apr",
        }
    }

    /// The format for a name (`gguf` / `apr`, any case).
    pub fn from_name(name: &str) -> Option<ModelFormat> {
        match name.to_ascii_lowercase().as_str() {
            "gguf" => Some(ModelFormat::Gguf),
            "apr" => Some(ModelFormat::Apr),
            _ => None,
        }
    }

    /// The format a file's extension names (`.gguf` / `.apr`), if any.
    pub fn from_extension(path: &Path) -> Option<ModelFormat> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(ModelFormat::from_name)
    }

    /// The format whose magic `bytes` starts with.
    pub fn from_magic(bytes: &[u8]) -> Option<ModelFormat> {
        if bytes.starts_with(&crate::gguf::MAGIC) {
            Some(ModelFormat::Gguf)
        } else if bytes.starts_with(&crate::apr::MAGIC) {
            Some(ModelFormat::Apr)
        } else {
            None
        }
    }
}

impl std::fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a model file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{file}: not a model file: it starts with {found:02x?}, expected the GGUF magic \"GGUF\" or the APR magic \"APRF\""
    )]
    UnknownFormat { file: String, found: Vec<u8> },

    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error(transparent)]
    Apr(#[from] AprError),
}

enum Inner {
    Gguf(GgufFile),
    Apr(AprFile),
}

/// A GGUF or APR model file, read through one API.
pub struct ModelFile {
    inner: Inner,
}

impl std::fmt::Debug for ModelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFile")
            .field("format", &self.format())
            .field("origin", &self.origin())
            .field("n_kv", &self.metadata().len())
            .field("n_tensors", &self.tensors().len())
            .finish()
    }
}

impl From<GgufFile> for ModelFile {
    fn from(f: GgufFile) -> ModelFile {
        ModelFile {
            inner: Inner::Gguf(f),
        }
    }
}

impl From<AprFile> for ModelFile {
    fn from(f: AprFile) -> ModelFile {
        ModelFile {
            inner: Inner::Apr(f),
        }
    }
}

impl ModelFile {
    /// Maps `path` read-only, detects GGUF or APR by its magic and parses it.
    pub fn open(path: impl AsRef<Path>) -> Result<ModelFile, ModelFileError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let origin = path.display().to_string();
        let storage = crate::gguf::Storage::map(&path).map_err(|source| ModelFileError::Io {
            file: origin.clone(),
            source,
        })?;
        match ModelFormat::from_magic(storage.bytes()) {
            Some(ModelFormat::Gguf) => {
                let parsed = crate::gguf::parse::parse(storage.bytes(), &origin)?;
                Ok(GgufFile::from_validated(storage, origin, Some(path), parsed).into())
            }
            Some(ModelFormat::Apr) => {
                Ok(crate::apr::read_storage(storage, origin, Some(path))?.into())
            }
            None => Err(unknown(storage.bytes(), origin)),
        }
    }

    /// Parses an in-memory image of either format. Errors name the file `<memory>`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ModelFile, ModelFileError> {
        match ModelFormat::from_magic(&bytes) {
            Some(ModelFormat::Gguf) => Ok(GgufFile::from_bytes(bytes)?.into()),
            Some(ModelFormat::Apr) => Ok(AprFile::from_bytes(bytes)?.into()),
            None => Err(unknown(&bytes, MEMORY_ORIGIN.to_string())),
        }
    }

    /// The container format.
    pub fn format(&self) -> ModelFormat {
        match self.inner {
            Inner::Gguf(_) => ModelFormat::Gguf,
            Inner::Apr(_) => ModelFormat::Apr,
        }
    }

    /// The content as a [`GgufFile`] (for an APR file, the view described in
    /// [`AprFile::as_gguf`]).
    pub fn as_gguf(&self) -> &GgufFile {
        match &self.inner {
            Inner::Gguf(f) => f,
            Inner::Apr(f) => f.as_gguf(),
        }
    }

    /// The APR file, when this is one (header, stored checksums, verification).
    pub fn as_apr(&self) -> Option<&AprFile> {
        match &self.inner {
            Inner::Gguf(_) => None,
            Inner::Apr(f) => Some(f),
        }
    }

    /// The stored tensor checksums (APR only).
    pub(crate) fn apr_checksums(&self) -> Option<&[u64]> {
        self.as_apr().map(AprFile::tensor_checksums)
    }

    /// Recomputes every tensor checksum (APR only; GGUF carries none, so `None`).
    pub fn verify(&self) -> Option<VerifyReport> {
        self.as_apr().map(AprFile::verify)
    }

    /// The path given to [`ModelFile::open`], if any.
    pub fn path(&self) -> Option<&Path> {
        self.as_gguf().path()
    }

    /// What errors call this file: its path, or `<memory>`.
    pub fn origin(&self) -> &str {
        self.as_gguf().origin()
    }

    /// Version of the GGUF content (for APR: of the GGUF it was made from).
    pub fn version(&self) -> u32 {
        self.as_gguf().version()
    }

    /// The GGUF data alignment of the content (`general.alignment`, default 32). APR data is
    /// aligned to a multiple of it (at least 64).
    pub fn alignment(&self) -> u32 {
        self.as_gguf().alignment()
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        self.as_gguf().metadata()
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.as_gguf().get(key)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.as_gguf().contains_key(key)
    }

    /// The value for `key`, or a [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&GgufValue, GgufError> {
        self.as_gguf().require(key)
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        self.as_gguf().tensors()
    }

    /// The tensor called `name`, if present.
    pub fn find_tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.as_gguf().find_tensor(name)
    }

    /// The tensor called `name`, or a [`GgufError::TensorNotFound`].
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.as_gguf().tensor(name)
    }

    /// The data bytes of a tensor of this file, borrowed from the map.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        self.as_gguf().tensor_data(info)
    }

    /// The data bytes of the tensor called `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        self.as_gguf().tensor_bytes(name)
    }

    /// A STRING value.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.as_gguf().get_str(key)
    }

    /// An ARRAY value of any element type.
    pub fn get_array(&self, key: &str) -> Result<&GgufArray, GgufError> {
        self.as_gguf().get_array(key)
    }

    /// A non-negative integer of any integer type, widened to u64.
    pub fn get_uint_lenient(&self, key: &str) -> Result<u64, GgufError> {
        self.as_gguf().get_uint_lenient(key)
    }
}

fn unknown(bytes: &[u8], file: String) -> ModelFileError {
    ModelFileError::UnknownFormat {
        file,
        found: bytes[..bytes.len().min(4)].to_vec(),
    }
}

macro_rules! delegate {
    ($($(#[$doc:meta])* $fn:ident -> $t:ty),* $(,)?) => {
        impl ModelFile {
            $(
                $(#[$doc])*
                pub fn $fn(&self, key: &str) -> Result<$t, GgufError> {
                    self.as_gguf().$fn(key)
                }
            )*
        }
    };
}

delegate! {
    /// A UINT8 value.
    get_u8 -> u8,
    /// An INT8 value.
    get_i8 -> i8,
    /// A UINT16 value.
    get_u16 -> u16,
    /// An INT16 value.
    get_i16 -> i16,
    /// A UINT32 value.
    get_u32 -> u32,
    /// An INT32 value.
    get_i32 -> i32,
    /// A FLOAT32 value.
    get_f32 -> f32,
    /// A BOOL value.
    get_bool -> bool,
    /// A UINT64 value.
    get_u64 -> u64,
    /// An INT64 value.
    get_i64 -> i64,
    /// A FLOAT64 value.
    get_f64 -> f64,
    /// An `ARRAY[UINT8]` value.
    get_u8_array -> &[u8],
    /// An `ARRAY[INT8]` value.
    get_i8_array -> &[i8],
    /// An `ARRAY[UINT16]` value.
    get_u16_array -> &[u16],
    /// An `ARRAY[INT16]` value.
    get_i16_array -> &[i16],
    /// An `ARRAY[UINT32]` value.
    get_u32_array -> &[u32],
    /// An `ARRAY[INT32]` value.
    get_i32_array -> &[i32],
    /// An `ARRAY[FLOAT32]` value.
    get_f32_array -> &[f32],
    /// An `ARRAY[BOOL]` value.
    get_bool_array -> &[bool],
    /// An `ARRAY[STRING]` value.
    get_str_array -> &[String],
    /// An `ARRAY[UINT64]` value.
    get_u64_array -> &[u64],
    /// An `ARRAY[INT64]` value.
    get_i64_array -> &[i64],
    /// An `ARRAY[FLOAT64]` value.
    get_f64_array -> &[f64],
}
