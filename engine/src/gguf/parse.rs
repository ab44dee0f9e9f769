//! The GGUF parser: header, metadata, tensor infos and data-section validation over a byte
//! slice. Every read is bounds-checked, every size overflow-checked, every count capped and
//! checked against the bytes left before anything is allocated.
//!
//! Layout facts (ggml/include/gguf.h, ggml/src/gguf.cpp `gguf_init_from_file_impl`):
//! magic `GGUF`, u32 version, i64 tensor count, i64 kv count (v2+; v1 used u32 counts), then
//! kv pairs (u64-length key, i32 type, value), tensor infos (name, u32 n_dims, i64 ne[n_dims],
//! i32 ggml type, u64 offset), padding to `general.alignment`, then the data section.

use std::collections::HashMap;

use super::error::GgufError;
use super::limits::*;
use super::value::{GgufArray, GgufValue, GgufValueType};
use super::TensorInfo;
use crate::quant::GgmlType;

/// The metadata key holding the data alignment (ggml `GGUF_KEY_GENERAL_ALIGNMENT`).
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Data alignment when the file does not set one (ggml `GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";

/// Everything a GGUF header says, validated.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub version: u32,
    pub alignment: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub key_index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub tensor_index: HashMap<String, usize>,
    pub data_offset: u64,
}

/// A bounds-checked reader over a byte image. Crate-visible so the APR container reads its
/// metadata and tensor table with this same code (one decoder for both formats).
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Cursor<'a> {
    /// A cursor over the whole image `buf`, starting at `pos`; `file` names it in errors.
    pub(crate) fn new(buf: &'a [u8], pos: usize, file: &'a str) -> Cursor<'a> {
        Cursor {
            buf,
            pos: pos.min(buf.len()),
            file,
        }
    }

    /// The absolute offset of the next byte to read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64, field: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let available = self.remaining() as u64;
        if n > available {
            return Err(GgufError::Truncated {
                file: self.file.to_string(),
                field: field(),
                offset: self.pos as u64,
                needed: n,
                available,
            });
        }
        // n <= remaining, so it fits in usize and the slice is in bounds.
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let b = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &dyn Fn() -> String) -> Result<i64, GgufError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    /// A u64-length-prefixed UTF-8 string, capped at `limit` bytes.
    fn string(&mut self, limit: u64, field: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("{} length", field()))?;
        if len > limit {
            return Err(GgufError::LimitExceeded {
                file: self.file.to_string(),
                field: format!("{} length", field()),
                value: len,
                limit,
            });
        }
        let start = self.pos as u64;
        // `take` checks `len` against the bytes left before anything is copied.
        let bytes = self.take(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(GgufError::InvalidUtf8 {
                file: self.file.to_string(),
                field: field(),
                offset: start,
                bytes_preview: String::from_utf8_lossy(&bytes[..bytes.len().min(32)]).into_owned(),
            }),
        }
    }

    /// Fails unless `count` values of at least `min_size` bytes each fit in what is left.
    pub(crate) fn check_count(
        &self,
        count: u64,
        min_size: u64,
        field: &dyn Fn() -> String,
    ) -> Result<(), GgufError> {
        let available = self.remaining() as u64;
        match count.checked_mul(min_size) {
            Some(needed) if needed <= available => Ok(()),
            needed => Err(GgufError::CountExceedsFile {
                file: self.file.to_string(),
                field: field(),
                count,
                offset: self.pos as u64,
                needed: needed.unwrap_or(u64::MAX),
                available,
            }),
        }
    }
}

/// Parses and validates a whole GGUF image. `file` names the source in errors.
pub(crate) fn parse(buf: &[u8], file: &str) -> Result<Parsed, GgufError> {
    let mut c = Cursor { buf, pos: 0, file };
    let fname = || file.to_string();

    // Header.
    let magic: [u8; 4] = c.array(&|| "header.magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic {
            file: fname(),
            found: magic.to_vec(),
        });
    }
    let version = c.u32(&|| "header.version".into())?;
    check_version(version, file)?;
    let n_tensors = c.i64(&|| "header.tensor_count".into())?;
    let n_tensors = check_header_count(n_tensors, MAX_TENSORS, "header.tensor_count", file)?;
    let n_kv = c.i64(&|| "header.kv_count".into())?;
    let n_kv = check_header_count(n_kv, MAX_KV, "header.kv_count", file)?;
    c.check_count(n_kv, MIN_KV_BYTES, &|| "header.kv_count".into())?;
    // Checked here too so an absurd tensor count fails before the kv section is read; the kv
    // pairs only make the real bound tighter.
    c.check_count(n_tensors, MIN_TENSOR_INFO_BYTES, &|| {
        "header.tensor_count".into()
    })?;

    // Metadata.
    let (metadata, key_index) = read_metadata(&mut c, n_kv)?;
    let alignment = alignment_of(&metadata, &key_index, file)?;

    // Tensor infos.
    c.check_count(n_tensors, MIN_TENSOR_INFO_BYTES, &|| {
        "header.tensor_count".into()
    })?;
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut tensor_index: HashMap<String, usize> = HashMap::with_capacity(n_tensors as usize);
    for i in 0..n_tensors as usize {
        let info = read_tensor_info(&mut c, i)?;
        if let Some(&first) = tensor_index.get(&info.name) {
            return Err(GgufError::DuplicateTensor {
                file: fname(),
                tensor: info.name,
                first,
                second: i,
            });
        }
        tensor_index.insert(info.name.clone(), i);
        tensors.push(info);
    }

    // Data section: starts at the end of the infos rounded up to the alignment.
    let align = u64::from(alignment);
    let infos_end = c.pos as u64;
    let data_offset = infos_end.div_ceil(align) * align; // infos_end <= file size: no overflow
    let file_size = buf.len() as u64;
    for t in &mut tensors {
        if t.offset % align != 0 {
            return Err(GgufError::MisalignedTensor {
                file: fname(),
                tensor: t.name.clone(),
                offset: t.offset,
                alignment: align,
            });
        }
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_size => t.file_offset = s,
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    file: fname(),
                    tensor: t.name.clone(),
                    offset: t.offset,
                    file_offset: start.unwrap_or(u64::MAX),
                    size: t.n_bytes,
                    file_size,
                })
            }
        }
    }
    check_overlaps(&tensors, file)?;

    Ok(Parsed {
        version,
        alignment,
        metadata,
        key_index,
        tensors,
        tensor_index,
        data_offset,
    })
}

/// Metadata in file order, and a key → index map into it.
pub(crate) type MetadataTable = (Vec<(String, GgufValue)>, HashMap<String, usize>);

/// Reads `n_kv` key/value pairs (the caller has capped `n_kv` and checked it against the bytes
/// left). Returns them in file order with a key → index map; duplicate keys are an error.
pub(crate) fn read_metadata(c: &mut Cursor<'_>, n_kv: u64) -> Result<MetadataTable, GgufError> {
    let file = c.file;
    let fname = || file.to_string();
    let mut metadata: Vec<(String, GgufValue)> = Vec::with_capacity(n_kv as usize);
    let mut key_index: HashMap<String, usize> = HashMap::with_capacity(n_kv as usize);
    for i in 0..n_kv as usize {
        let key = c.string(MAX_KEY_BYTES, &|| format!("kv[{i}].key"))?;
        if let Some(&first) = key_index.get(&key) {
            return Err(GgufError::DuplicateKey {
                file: fname(),
                key,
                first,
                second: i,
            });
        }
        let type_offset = c.pos as u64;
        let type_id = c.u32(&|| format!("kv[{i}] {key:?} value type"))?;
        let Some(ty) = GgufValueType::from_id(type_id) else {
            return Err(GgufError::UnknownValueType {
                file: fname(),
                field: format!("kv[{i}] {key:?} value type"),
                offset: type_offset,
                type_id,
            });
        };
        let value = read_value(c, ty, &|| format!("kv[{i}] {key:?} value"))?;
        key_index.insert(key.clone(), i);
        metadata.push((key, value));
    }
    Ok((metadata, key_index))
}

/// The data alignment the metadata declares (`general.alignment`, default 32).
pub(crate) fn alignment_of(
    metadata: &[(String, GgufValue)],
    key_index: &HashMap<String, usize>,
    file: &str,
) -> Result<u32, GgufError> {
    match key_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(GgufValue::U32(a)) if a.is_power_of_two() => Ok(*a),
        Some(GgufValue::U32(a)) => Err(GgufError::BadAlignment {
            file: file.to_string(),
            value: (*a).into(),
        }),
        Some(other) => Err(GgufError::WrongType {
            file: file.to_string(),
            key: ALIGNMENT_KEY.into(),
            expected: GgufValueType::U32.name().into(),
            found: other.type_description(),
        }),
    }
}

fn check_version(version: u32, file: &str) -> Result<(), GgufError> {
    let reason = match version {
        2 | 3 => return Ok(()),
        0 => "0 is not a GGUF version",
        1 => "GGUF v1 used 32-bit counts and lengths; ggml dropped it, re-convert the model",
        // ggml's check: a big-endian v3 file reads as 0x03000000 on a little-endian host.
        v if v & 0xFFFF == 0 => "the file looks big-endian; only little-endian GGUF is supported",
        _ => "this reader supports versions 2 and 3",
    };
    Err(GgufError::UnsupportedVersion {
        file: file.to_string(),
        version,
        reason,
    })
}

fn check_header_count(value: i64, limit: u64, field: &str, file: &str) -> Result<u64, GgufError> {
    // A negative i64 shows as its u64 bit pattern, far above any limit.
    let v = value as u64;
    if v > limit {
        return Err(GgufError::LimitExceeded {
            file: file.to_string(),
            field: field.to_string(),
            value: v,
            limit,
        });
    }
    Ok(v)
}

fn read_value(
    c: &mut Cursor<'_>,
    ty: GgufValueType,
    field: &dyn Fn() -> String,
) -> Result<GgufValue, GgufError> {
    Ok(match ty {
        GgufValueType::U8 => GgufValue::U8(c.array::<1>(field)?[0]),
        GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(c.array(field)?)),
        GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(c.array(field)?)),
        GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(c.array(field)?)),
        GgufValueType::U32 => GgufValue::U32(u32::from_le_bytes(c.array(field)?)),
        GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(c.array(field)?)),
        GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(c.array(field)?)),
        GgufValueType::Bool => GgufValue::Bool(read_bool(c, field)?),
        GgufValueType::String => GgufValue::String(c.string(MAX_STRING_BYTES, field)?),
        GgufValueType::Array => GgufValue::Array(read_array(c, 1, field)?),
        GgufValueType::U64 => GgufValue::U64(u64::from_le_bytes(c.array(field)?)),
        GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(c.array(field)?)),
        GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(c.array(field)?)),
    })
}

fn read_bool(c: &mut Cursor<'_>, field: &dyn Fn() -> String) -> Result<bool, GgufError> {
    let offset = c.pos as u64;
    match c.array::<1>(field)?[0] {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool {
            file: c.file.to_string(),
            field: field(),
            offset,
            value,
        }),
    }
}

/// Reads fixed-size elements: the whole run is bounds-checked once, then decoded.
fn fixed<const N: usize, T>(
    c: &mut Cursor<'_>,
    n: u64,
    field: &dyn Fn() -> String,
    decode: fn([u8; N]) -> T,
) -> Result<Vec<T>, GgufError> {
    // n * N <= remaining was checked by the caller; `take` checks again without overflow.
    let bytes = c.take(n.saturating_mul(N as u64), field)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|ch| {
            let mut a = [0u8; N];
            a.copy_from_slice(ch);
            decode(a)
        })
        .collect())
}

/// Reads an array (element type, count, elements); `depth` is 1 for a top-level array.
fn read_array(
    c: &mut Cursor<'_>,
    depth: usize,
    field: &dyn Fn() -> String,
) -> Result<GgufArray, GgufError> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            file: c.file.to_string(),
            field: field(),
            depth,
            limit: MAX_ARRAY_DEPTH,
        });
    }
    let type_offset = c.pos as u64;
    let type_id = c.u32(&|| format!("{} element type", field()))?;
    let Some(ty) = GgufValueType::from_id(type_id) else {
        return Err(GgufError::UnknownValueType {
            file: c.file.to_string(),
            field: format!("{} element type", field()),
            offset: type_offset,
            type_id,
        });
    };
    let n = c.u64(&|| format!("{} length", field()))?;
    if n > MAX_ARRAY_LEN {
        return Err(GgufError::LimitExceeded {
            file: c.file.to_string(),
            field: format!("{} length", field()),
            value: n,
            limit: MAX_ARRAY_LEN,
        });
    }
    c.check_count(n, ty.min_encoded_size() as u64, &|| {
        format!("{} length", field())
    })?;
    // From here `n` is bounded by the bytes left, so allocating `n` elements is safe.
    let elems = || format!("{} elements", field());
    Ok(match ty {
        GgufValueType::U8 => GgufArray::U8(fixed::<1, _>(c, n, &elems, |b| b[0])?),
        GgufValueType::I8 => GgufArray::I8(fixed(c, n, &elems, i8::from_le_bytes)?),
        GgufValueType::U16 => GgufArray::U16(fixed(c, n, &elems, u16::from_le_bytes)?),
        GgufValueType::I16 => GgufArray::I16(fixed(c, n, &elems, i16::from_le_bytes)?),
        GgufValueType::U32 => GgufArray::U32(fixed(c, n, &elems, u32::from_le_bytes)?),
        GgufValueType::I32 => GgufArray::I32(fixed(c, n, &elems, i32::from_le_bytes)?),
        GgufValueType::F32 => GgufArray::F32(fixed(c, n, &elems, f32::from_le_bytes)?),
        GgufValueType::U64 => GgufArray::U64(fixed(c, n, &elems, u64::from_le_bytes)?),
        GgufValueType::I64 => GgufArray::I64(fixed(c, n, &elems, i64::from_le_bytes)?),
        GgufValueType::F64 => GgufArray::F64(fixed(c, n, &elems, f64::from_le_bytes)?),
        GgufValueType::Bool => {
            let mut v = Vec::with_capacity(n as usize);
            for j in 0..n {
                v.push(read_bool(c, &|| format!("{}[{j}]", field()))?);
            }
            GgufArray::Bool(v)
        }
        GgufValueType::String => {
            let mut v = Vec::with_capacity(n as usize);
            for j in 0..n {
                v.push(c.string(MAX_STRING_BYTES, &|| format!("{}[{j}]", field()))?);
            }
            GgufArray::String(v)
        }
        GgufValueType::Array => {
            let mut v = Vec::with_capacity(n as usize);
            for j in 0..n {
                v.push(read_array(c, depth + 1, &|| format!("{}[{j}]", field()))?);
            }
            GgufArray::Array(v)
        }
    })
}

pub(crate) fn read_tensor_info(c: &mut Cursor<'_>, i: usize) -> Result<TensorInfo, GgufError> {
    let file = c.file;
    let name = c.string(MAX_TENSOR_NAME_BYTES, &|| format!("tensor_info[{i}].name"))?;
    let field = |what: &str| format!("tensor_info[{i}] {name:?} {what}");
    let n_dims = c.u32(&|| field("n_dims"))?;
    if n_dims as usize > MAX_DIMS {
        return Err(GgufError::TensorLimit {
            file: file.into(),
            tensor: name,
            field: "n_dims",
            value: n_dims.into(),
            limit: MAX_DIMS as u64,
        });
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims as usize {
        let v = c.i64(&|| field(&format!("ne[{d}]")))?;
        if v < 1 {
            return Err(GgufError::BadDimension {
                file: file.into(),
                tensor: name,
                dim: d,
                value: v,
            });
        }
        ne.push(v as u64);
    }
    let type_id = c.u32(&|| field("type"))?;
    let offset = c.u64(&|| field("offset"))?;

    // ggml keeps element counts in int64_t: the product must stay below i64::MAX.
    let n_elements = ne
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64);
    let Some(n_elements) = n_elements else {
        return Err(GgufError::ShapeOverflow {
            file: file.into(),
            tensor: name,
            shape: ne,
        });
    };
    let Some(ggml_type) = GgmlType::from_id(type_id) else {
        return Err(GgufError::UnknownTensorType {
            file: file.into(),
            tensor: name,
            type_id,
        });
    };
    let ne0 = ne.first().copied().unwrap_or(1);
    let block = ggml_type.block_size() as u64;
    if ne0 % block != 0 {
        return Err(GgufError::BadRowSize {
            file: file.into(),
            tensor: name,
            ggml_type,
            ne0,
            block_size: block,
        });
    }
    let rows = n_elements / ne0;
    let n_bytes = ggml_type.row_size(ne0).and_then(|r| r.checked_mul(rows));
    let Some(n_bytes) = n_bytes else {
        return Err(GgufError::SizeOverflow {
            file: file.into(),
            tensor: name,
            ggml_type,
            shape: ne,
        });
    };
    Ok(TensorInfo {
        name,
        ggml_type,
        ne,
        n_elements,
        n_bytes,
        offset,
        file_offset: 0,
    })
}

/// Fails when two tensors' data ranges share a byte.
pub(crate) fn check_overlaps(tensors: &[TensorInfo], file: &str) -> Result<(), GgufError> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].offset, i));
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        // Both ranges were checked to end inside the file, so these sums do not overflow.
        let a_end = a.offset + a.n_bytes;
        if b.offset < a_end {
            return Err(GgufError::OverlappingTensors {
                file: file.to_string(),
                tensor: b.name.clone(),
                start: b.offset,
                end: b.offset + b.n_bytes,
                other: a.name.clone(),
                other_start: a.offset,
                other_end: a_end,
            });
        }
    }
    Ok(())
}
