//! The APR reader: fixed header, header checksum, index (through the GGUF decoder), data
//! section bounds. Every read is bounds-checked and every count capped and checked against the
//! bytes it claims before anything is allocated.

use std::collections::HashMap;
use std::path::PathBuf;

use super::checksum::Fnv1a64;
use super::{AprError, AprFile, AprHeader, HEADER_CHECKSUM_OFFSET, HEADER_SIZE, MAGIC};
use super::{MAX_ALIGNMENT, MIN_ALIGNMENT, VERSION};
use crate::gguf::limits::{MAX_KV, MAX_TENSORS, MIN_KV_BYTES, MIN_TENSOR_INFO_BYTES};
use crate::gguf::parse::{self, Cursor, Parsed};
use crate::gguf::{GgufError, GgufFile, Storage, TensorInfo};

/// Smallest tensor-table entry: a minimal GGUF tensor info plus the u64 checksum.
const MIN_TENSOR_ENTRY_BYTES: u64 = MIN_TENSOR_INFO_BYTES + 8;

/// Sequential reader of the fixed header: each field is named in the truncation error.
struct HeaderReader<'a> {
    buf: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl HeaderReader<'_> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], AprError> {
        let available = self.buf.len().saturating_sub(self.pos);
        if available < N {
            return Err(AprError::Truncated {
                file: self.file.to_string(),
                field,
                offset: self.pos as u64,
                needed: N as u64,
                available: available as u64,
            });
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, AprError> {
        self.take(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, AprError> {
        self.take(field).map(u64::from_le_bytes)
    }
}

fn bad(file: &str, field: &'static str, value: u64, reason: impl Into<String>) -> AprError {
    AprError::BadField {
        file: file.to_string(),
        field,
        value,
        reason: reason.into(),
    }
}

/// Reads and validates the fixed header against the file size.
fn read_header(buf: &[u8], file: &str) -> Result<AprHeader, AprError> {
    let mut r = HeaderReader { buf, pos: 0, file };
    let magic: [u8; 4] = r.take("header.magic")?;
    if magic != MAGIC {
        return Err(AprError::BadMagic {
            file: file.to_string(),
            found: magic.to_vec(),
        });
    }
    let version = r.u32("header.version")?;
    if version != VERSION {
        return Err(AprError::UnsupportedVersion {
            file: file.to_string(),
            version,
            supported: VERSION,
        });
    }
    let gguf_version = r.u32("header.gguf_version")?;
    if !(2..=3).contains(&gguf_version) {
        return Err(bad(
            file,
            "header.gguf_version",
            gguf_version.into(),
            "must be 2 or 3",
        ));
    }
    let alignment = r.u32("header.alignment")?;
    if !alignment.is_power_of_two() || !(MIN_ALIGNMENT..=MAX_ALIGNMENT).contains(&alignment) {
        return Err(bad(
            file,
            "header.alignment",
            alignment.into(),
            format!("must be a power of two from {MIN_ALIGNMENT} to {MAX_ALIGNMENT}"),
        ));
    }
    let kv_count = r.u64("header.kv_count")?;
    if kv_count > MAX_KV {
        return Err(bad(
            file,
            "header.kv_count",
            kv_count,
            format!("exceeds the limit {MAX_KV}"),
        ));
    }
    let tensor_count = r.u64("header.tensor_count")?;
    if tensor_count > MAX_TENSORS {
        return Err(bad(
            file,
            "header.tensor_count",
            tensor_count,
            format!("exceeds the limit {MAX_TENSORS}"),
        ));
    }
    let index_size = r.u64("header.index_size")?;
    let data_offset = r.u64("header.data_offset")?;
    let data_size = r.u64("header.data_size")?;
    let header_checksum = r.u64("header.checksum")?;
    debug_assert_eq!(r.pos as u64, HEADER_SIZE);

    let file_size = buf.len() as u64;
    // u128: the sum of two hostile u64s cannot overflow.
    let expected = u128::from(data_offset) + u128::from(data_size);
    if expected != u128::from(file_size) {
        return Err(AprError::SizeMismatch {
            file: file.to_string(),
            data_offset,
            data_size,
            expected,
            file_size,
        });
    }
    // From here data_offset <= file_size.
    if data_offset % u64::from(alignment) != 0 {
        return Err(bad(
            file,
            "header.data_offset",
            data_offset,
            format!("not a multiple of header.alignment {alignment}"),
        ));
    }
    let index_end = HEADER_SIZE.checked_add(index_size);
    if index_end.is_none_or(|e| e > data_offset) {
        return Err(bad(
            file,
            "header.index_size",
            index_size,
            format!("the index would end past header.data_offset {data_offset}"),
        ));
    }
    Ok(AprHeader {
        version,
        gguf_version,
        alignment,
        kv_count,
        tensor_count,
        index_size,
        data_offset,
        data_size,
        header_checksum,
    })
}

/// FNV-1a 64 over header bytes `0..56` and the index. `buf` holds at least the index.
pub(crate) fn header_checksum(buf: &[u8], index_size: usize) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(&buf[..HEADER_CHECKSUM_OFFSET as usize]);
    h.update(&buf[HEADER_SIZE as usize..HEADER_SIZE as usize + index_size]);
    h.finish()
}

/// Parses a whole APR image held by `storage`.
pub(crate) fn parse(
    storage: Storage,
    origin: String,
    path: Option<PathBuf>,
) -> Result<AprFile, AprError> {
    let (header, parsed, checksums) = parse_bytes(storage.bytes(), &origin)?;
    let gguf = GgufFile::from_validated(storage, origin, path, parsed);
    Ok(AprFile::from_parts(header, gguf, checksums))
}

fn parse_bytes(buf: &[u8], file: &str) -> Result<(AprHeader, Parsed, Vec<u64>), AprError> {
    let header = read_header(buf, file)?;
    // read_header checked HEADER_SIZE + index_size <= data_offset <= buf.len().
    let index_end = (HEADER_SIZE + header.index_size) as usize;
    let computed = header_checksum(buf, header.index_size as usize);
    if computed != header.header_checksum {
        return Err(AprError::HeaderChecksum {
            file: file.to_string(),
            stored: header.header_checksum,
            computed,
            index_size: header.index_size,
        });
    }
    let data_offset = header.data_offset as usize;
    if let Some(i) = buf[index_end..data_offset].iter().position(|&b| b != 0) {
        return Err(AprError::NonZeroPadding {
            file: file.to_string(),
            offset: (index_end + i) as u64,
            value: buf[index_end + i],
        });
    }

    // The index, decoded by the GGUF decoder over exactly the index bytes: nothing it reads
    // can come from the padding or the data section.
    let mut c = Cursor::new(&buf[..index_end], HEADER_SIZE as usize, file);
    c.check_count(header.kv_count, MIN_KV_BYTES, &|| "header.kv_count".into())?;
    let (metadata, key_index) = parse::read_metadata(&mut c, header.kv_count)?;
    let gguf_alignment = parse::alignment_of(&metadata, &key_index, file)?;
    if header.alignment % gguf_alignment != 0 {
        return Err(bad(
            file,
            "header.alignment",
            header.alignment.into(),
            format!("not a multiple of the metadata's general.alignment {gguf_alignment}"),
        ));
    }
    c.check_count(header.tensor_count, MIN_TENSOR_ENTRY_BYTES, &|| {
        "header.tensor_count".into()
    })?;
    let n = header.tensor_count as usize;
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n);
    let mut tensor_index: HashMap<String, usize> = HashMap::with_capacity(n);
    let mut checksums: Vec<u64> = Vec::with_capacity(n);
    for i in 0..n {
        let info = parse::read_tensor_info(&mut c, i)?;
        let sum = c.u64(&|| format!("tensor_info[{i}] {:?} checksum", info.name))?;
        if let Some(&first) = tensor_index.get(&info.name) {
            return Err(GgufError::DuplicateTensor {
                file: file.to_string(),
                tensor: info.name,
                first,
                second: i,
            }
            .into());
        }
        tensor_index.insert(info.name.clone(), i);
        tensors.push(info);
        checksums.push(sum);
    }
    if c.pos() != index_end {
        return Err(AprError::IndexSize {
            file: file.to_string(),
            end: c.pos() as u64,
            expected: index_end as u64,
        });
    }

    // Data section: every tensor aligned and inside it.
    let align = u64::from(header.alignment);
    for t in &mut tensors {
        if t.offset % align != 0 {
            return Err(GgufError::MisalignedTensor {
                file: file.to_string(),
                tensor: t.name.clone(),
                offset: t.offset,
                alignment: align,
            }
            .into());
        }
        let end = t.offset.checked_add(t.n_bytes);
        if end.is_none_or(|e| e > header.data_size) {
            return Err(GgufError::TensorOutOfBounds {
                file: file.to_string(),
                tensor: t.name.clone(),
                offset: t.offset,
                file_offset: header.data_offset.saturating_add(t.offset),
                size: t.n_bytes,
                file_size: buf.len() as u64,
            }
            .into());
        }
        // offset + n_bytes <= data_size and data_offset + data_size = file size: no overflow.
        t.file_offset = header.data_offset + t.offset;
    }
    parse::check_overlaps(&tensors, file)?;

    let parsed = Parsed {
        version: header.gguf_version,
        alignment: gguf_alignment,
        metadata,
        key_index,
        tensors,
        tensor_index,
        data_offset: header.data_offset,
    };
    Ok((header, parsed, checksums))
}
