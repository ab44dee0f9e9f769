//! GGUF writer: metadata of every type and tensors with alignment padding.
//!
//! Layout as gguf-py's `GGUFWriter` writes it (and ggml's `gguf_write_to_buf`): header, kv pairs,
//! tensor infos, zero padding to the alignment, then each tensor's bytes followed by zero padding
//! to the alignment. Tensor offsets are the running sum of padded sizes, in insertion order.
//! Given the same content in the same order, the output is byte-identical to gguf-py's.

use std::io::Write;
use std::path::Path;

use super::error::GgufError;
use super::limits::*;
use super::parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC};
use super::value::{GgufArray, GgufValue};
use super::GgufFile;
use crate::quant::GgmlType;

/// What writer errors call the file before it has a path.
const WRITER_ORIGIN: &str = "<writer>";

struct PendingTensor {
    name: String,
    ggml_type: GgmlType,
    ne: Vec<u64>,
    data: Vec<u8>,
}

/// Builds a GGUF file in memory, then writes it.
///
/// ```
/// use apr_engine::gguf::{GgufFile, GgufValue, GgufWriter};
/// use apr_engine::quant::GgmlType;
/// let mut w = GgufWriter::new();
/// w.add_kv("general.architecture", GgufValue::String("llama".into()))?;
/// w.add_tensor("t", GgmlType::F32, &[2], 1.5f32.to_le_bytes().repeat(2))?;
/// let f = GgufFile::from_bytes(w.to_bytes()?)?;
/// assert_eq!(f.get_str("general.architecture")?, "llama");
/// # Ok::<(), apr_engine::gguf::GgufError>(())
/// ```
pub struct GgufWriter {
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<PendingTensor>,
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("version", &self.version)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn werr(field: impl Into<String>, reason: impl Into<String>) -> GgufError {
    GgufError::Writer {
        file: WRITER_ORIGIN.to_string(),
        field: field.into(),
        reason: reason.into(),
    }
}

impl GgufWriter {
    /// An empty GGUF v3 file.
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version written in the header (2 or 3; the layouts are identical).
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self, GgufError> {
        if !(2..=3).contains(&version) {
            return Err(werr("header.version", format!("{version} is not 2 or 3")));
        }
        self.version = version;
        Ok(self)
    }

    /// A writer holding a copy of `file`'s version, metadata and tensors, in file order.
    pub fn from_file(file: &GgufFile) -> Result<GgufWriter, GgufError> {
        let mut w = GgufWriter::new();
        w.set_version(file.version())?;
        for (k, v) in file.metadata() {
            w.add_kv(k.clone(), v.clone())?;
        }
        for t in file.tensors() {
            w.add_tensor(
                t.name.clone(),
                t.ggml_type,
                &t.ne,
                file.tensor_data(t).to_vec(),
            )?;
        }
        Ok(w)
    }

    /// The data alignment the file will use (`general.alignment` if added, else 32).
    pub fn alignment(&self) -> u32 {
        self.metadata
            .iter()
            .find(|(k, _)| k == ALIGNMENT_KEY)
            .and_then(|(_, v)| match v {
                GgufValue::U32(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Appends a metadata pair. Fails on a duplicate key, a value the reader would reject
    /// (limits, nesting) or a `general.alignment` that is not a UINT32 power of two.
    pub fn add_kv(
        &mut self,
        key: impl Into<String>,
        value: GgufValue,
    ) -> Result<&mut Self, GgufError> {
        let key = key.into();
        if key.len() as u64 > MAX_KEY_BYTES {
            return Err(werr(
                format!("key {key:?}"),
                format!("{} bytes exceeds the limit {MAX_KEY_BYTES}", key.len()),
            ));
        }
        if self.metadata.iter().any(|(k, _)| *k == key) {
            return Err(werr(format!("key {key:?}"), "duplicate key"));
        }
        if key == ALIGNMENT_KEY {
            match value {
                GgufValue::U32(a) if a.is_power_of_two() => {}
                ref other => {
                    return Err(werr(
                        ALIGNMENT_KEY,
                        format!("must be a UINT32 power of two, got {other:?}"),
                    ))
                }
            }
        }
        check_value(&value, 0, &key)?;
        self.metadata.push((key, value));
        Ok(self)
    }

    /// Appends a tensor. `ne` is ggml's shape (`ne[0]` contiguous, at most 4 dims, each ≥ 1) and
    /// `data` must be exactly the tensor's byte size for `ggml_type`.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ggml_type: GgmlType,
        ne: &[u64],
        data: Vec<u8>,
    ) -> Result<&mut Self, GgufError> {
        let name = name.into();
        let field = || format!("tensor {name:?}");
        if name.len() as u64 > MAX_TENSOR_NAME_BYTES {
            return Err(werr(
                field(),
                format!(
                    "name is {} bytes, the limit is {MAX_TENSOR_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(werr(field(), "duplicate tensor name"));
        }
        if ne.len() > MAX_DIMS {
            return Err(werr(
                field(),
                format!("{} dimensions, the limit is {MAX_DIMS}", ne.len()),
            ));
        }
        if let Some(d) = ne.iter().position(|&d| d == 0 || d > i64::MAX as u64) {
            return Err(werr(
                field(),
                format!("ne[{d}] = {} is out of range", ne[d]),
            ));
        }
        let n_elements = ne
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| werr(field(), format!("element count of {ne:?} overflows")))?;
        let ne0 = ne.first().copied().unwrap_or(1);
        let n_bytes = ggml_type
            .row_size(ne0)
            .and_then(|r| r.checked_mul(n_elements / ne0))
            .ok_or_else(|| {
                werr(
                    field(),
                    format!(
                        "ne[0] = {ne0} is not a multiple of {ggml_type}'s block size {}",
                        ggml_type.block_size()
                    ),
                )
            })?;
        if data.len() as u64 != n_bytes {
            return Err(werr(
                field(),
                format!(
                    "{} data bytes, but {ggml_type} with shape {ne:?} needs {n_bytes}",
                    data.len()
                ),
            ));
        }
        self.tensors.push(PendingTensor {
            name,
            ggml_type,
            ne: ne.to_vec(),
            data,
        });
        Ok(self)
    }

    /// The complete file image.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut out = Vec::new();
        self.write_to(&mut out).map_err(|source| GgufError::Io {
            file: WRITER_ORIGIN.to_string(),
            source,
        })?;
        Ok(out)
    }

    /// Writes the file to `path` (created or truncated).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            file: path.display().to_string(),
            source,
        };
        let f = std::fs::File::create(path).map_err(io)?;
        let mut w = std::io::BufWriter::new(f);
        self.write_to(&mut w).map_err(io)?;
        w.flush().map_err(io)
    }

    /// Streams the file to `w`.
    pub fn write_to<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        let align = u64::from(self.alignment());
        let tensors = self.tensors.iter().map(|t| TensorLayout {
            name: &t.name,
            ggml_type: t.ggml_type,
            ne: &t.ne,
            n_bytes: t.data.len() as u64,
        });
        let head = encode_header(self.version, &self.metadata, tensors, align);
        w.write_all(&head)?;
        let pos = head.len() as u64;
        write_zeros(w, padded(pos, align) - pos)?;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            let n = t.data.len() as u64;
            write_zeros(w, padded(n, align) - n)?;
        }
        Ok(())
    }
}

/// What the header says about one tensor (its data is written separately).
pub(crate) struct TensorLayout<'a> {
    pub name: &'a str,
    pub ggml_type: GgmlType,
    pub ne: &'a [u64],
    pub n_bytes: u64,
}

/// The GGUF header (magic through the last tensor info, unpadded). Tensor offsets are the
/// running sum of sizes padded to `align`, in order: the data section that follows the header's
/// padding must hold each tensor's bytes followed by zeros up to `align`.
pub(crate) fn encode_header<'a>(
    version: u32,
    metadata: &[(String, GgufValue)],
    tensors: impl ExactSizeIterator<Item = TensorLayout<'a>>,
    align: u64,
) -> Vec<u8> {
    let mut head = Vec::new();
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&version.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        encode_kv(&mut head, k, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        encode_tensor_info(&mut head, t.name, t.ggml_type, t.ne, offset);
        offset += padded(t.n_bytes, align);
    }
    head
}

/// One key/value pair: u64-length key, u32 value type, value.
pub(crate) fn encode_kv(out: &mut Vec<u8>, key: &str, value: &GgufValue) {
    put_str(out, key);
    out.extend_from_slice(&value.value_type().id().to_le_bytes());
    encode_value(out, value);
}

/// One tensor info: u64-length name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset.
pub(crate) fn encode_tensor_info(
    out: &mut Vec<u8>,
    name: &str,
    ggml_type: GgmlType,
    ne: &[u64],
    offset: u64,
) {
    put_str(out, name);
    out.extend_from_slice(&(ne.len() as u32).to_le_bytes());
    for d in ne {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&ggml_type.id().to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
}

/// Writes `n` zero bytes without allocating `n` bytes (the alignment may be up to 2^31).
pub(crate) fn write_zeros<W: Write>(w: &mut W, mut n: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64);
        w.write_all(&ZEROS[..k as usize])?;
        n -= k;
    }
    Ok(())
}

pub(crate) fn padded(n: u64, align: u64) -> u64 {
    n.div_ceil(align) * align
}

fn check_value(v: &GgufValue, depth: usize, key: &str) -> Result<(), GgufError> {
    match v {
        GgufValue::String(s) => check_str(s, key),
        GgufValue::Array(a) => check_array(a, depth + 1, key),
        _ => Ok(()),
    }
}

fn check_str(s: &str, key: &str) -> Result<(), GgufError> {
    if s.len() as u64 > MAX_STRING_BYTES {
        return Err(werr(
            format!("key {key:?}"),
            format!(
                "string of {} bytes exceeds the limit {MAX_STRING_BYTES}",
                s.len()
            ),
        ));
    }
    Ok(())
}

fn check_array(a: &GgufArray, depth: usize, key: &str) -> Result<(), GgufError> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(werr(
            format!("key {key:?}"),
            format!("arrays nest {depth} deep, the limit is {MAX_ARRAY_DEPTH}"),
        ));
    }
    if a.len() as u64 > MAX_ARRAY_LEN {
        return Err(werr(
            format!("key {key:?}"),
            format!(
                "array of {} elements exceeds the limit {MAX_ARRAY_LEN}",
                a.len()
            ),
        ));
    }
    match a {
        GgufArray::String(v) => v.iter().try_for_each(|s| check_str(s, key)),
        GgufArray::Array(v) => v.iter().try_for_each(|x| check_array(x, depth + 1, key)),
        _ => Ok(()),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::Array(a) => encode_array(out, a),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn encode_array(out: &mut Vec<u8>, a: &GgufArray) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        GgufArray::U8(v) => out.extend_from_slice(v),
        GgufArray::I8(v) => le!(v),
        GgufArray::U16(v) => le!(v),
        GgufArray::I16(v) => le!(v),
        GgufArray::U32(v) => le!(v),
        GgufArray::I32(v) => le!(v),
        GgufArray::F32(v) => le!(v),
        GgufArray::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        GgufArray::String(v) => v.iter().for_each(|s| put_str(out, s)),
        GgufArray::Array(v) => v.iter().for_each(|x| encode_array(out, x)),
        GgufArray::U64(v) => le!(v),
        GgufArray::I64(v) => le!(v),
        GgufArray::F64(v) => le!(v),
    }
}
