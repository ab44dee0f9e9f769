//! Writers: any model file → APR, and any model file → GGUF, streaming tensor data from the
//! source map (a 17 GB model is never held in memory). When the source is APR, each tensor's
//! checksum is recomputed as it is copied and a mismatch aborts the write, so corruption is
//! never laundered into a fresh file with fresh checksums.

use std::io::{Seek, SeekFrom, Write};

use super::checksum::Fnv1a64;
use super::read::header_checksum;
use super::{AprError, AprHeader, HEADER_SIZE, MAGIC, MAX_ALIGNMENT, MIN_ALIGNMENT, VERSION};
use crate::gguf::writer::{
    encode_header, encode_kv, encode_tensor_info, padded, write_zeros, TensorLayout,
};
use crate::gguf::GgufFile;
use crate::model_file::ModelFile;

/// The data alignment an APR copy of `src` uses: its `general.alignment` (default 32), raised to
/// at least [`MIN_ALIGNMENT`]. Fails above [`MAX_ALIGNMENT`].
pub fn apr_layout_alignment(src: &GgufFile) -> Result<u32, AprError> {
    let a = src.alignment().max(MIN_ALIGNMENT);
    if a > MAX_ALIGNMENT {
        return Err(AprError::Unsupported {
            file: src.origin().to_string(),
            reason: format!(
                "general.alignment {} exceeds the APR limit {MAX_ALIGNMENT}",
                src.alignment()
            ),
        });
    }
    Ok(a)
}

/// Copies each tensor's bytes to `w` (each followed by zero padding to `align`), hashing them;
/// when `expected` holds the source's stored checksums, a mismatch is an error. Returns the
/// checksums.
fn copy_tensors<W: Write>(
    src: &GgufFile,
    expected: Option<&[u64]>,
    align: u64,
    w: &mut W,
    out_name: &str,
) -> Result<Vec<u64>, AprError> {
    let io = |source| AprError::WriteIo {
        file: out_name.to_string(),
        source,
    };
    let mut sums = Vec::with_capacity(src.tensors().len());
    for (i, t) in src.tensors().iter().enumerate() {
        let data = src.tensor_data(t);
        let mut h = Fnv1a64::new();
        // 1 MiB pieces keep hashing and writing in cache.
        for piece in data.chunks(1 << 20) {
            h.update(piece);
            w.write_all(piece).map_err(io)?;
        }
        let sum = h.finish();
        if let Some(&stored) = expected.and_then(|e| e.get(i)) {
            if stored != sum {
                return Err(AprError::TensorChecksum {
                    file: src.origin().to_string(),
                    tensor: t.name.clone(),
                    n_bytes: t.n_bytes,
                    stored,
                    computed: sum,
                });
            }
        }
        write_zeros(w, padded(t.n_bytes, align) - t.n_bytes).map_err(io)?;
        sums.push(sum);
    }
    Ok(sums)
}

/// Writes `src` as an APR file to `w` (positioned at its start): every metadata pair and tensor
/// in source order, tensor bytes verbatim. `out_name` names the destination in errors.
///
/// The header and index are written last (seeking back), once the tensor checksums are known.
pub fn write_apr<W: Write + Seek>(
    src: &ModelFile,
    w: &mut W,
    out_name: &str,
) -> Result<AprHeader, AprError> {
    let view = src.as_gguf();
    let io = |source| AprError::WriteIo {
        file: out_name.to_string(),
        source,
    };
    let alignment = apr_layout_alignment(view)?;
    let align = u64::from(alignment);

    // Index with zero checksums; remember where each checksum goes.
    let mut index = Vec::new();
    for (k, v) in view.metadata() {
        encode_kv(&mut index, k, v);
    }
    let mut sum_at = Vec::with_capacity(view.tensors().len());
    let mut offset = 0u64;
    for t in view.tensors() {
        encode_tensor_info(&mut index, &t.name, t.ggml_type, &t.ne, offset);
        sum_at.push(index.len());
        index.extend_from_slice(&0u64.to_le_bytes());
        offset = offset
            .checked_add(padded(t.n_bytes, align))
            .ok_or_else(|| AprError::Unsupported {
                file: view.origin().to_string(),
                reason: "total data size overflows u64".into(),
            })?;
    }
    let index_size = index.len() as u64;
    let data_offset = padded(HEADER_SIZE + index_size, align);
    let data_size = offset;

    // Placeholder header and index, padding, then the data.
    write_zeros(w, data_offset).map_err(io)?;
    let sums = copy_tensors(view, src.apr_checksums(), align, w, out_name)?;
    for (&at, sum) in sum_at.iter().zip(&sums) {
        index[at..at + 8].copy_from_slice(&sum.to_le_bytes());
    }

    let mut head = Vec::with_capacity((HEADER_SIZE + index_size) as usize);
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&view.version().to_le_bytes());
    head.extend_from_slice(&alignment.to_le_bytes());
    head.extend_from_slice(&(view.metadata().len() as u64).to_le_bytes());
    head.extend_from_slice(&(view.tensors().len() as u64).to_le_bytes());
    head.extend_from_slice(&index_size.to_le_bytes());
    head.extend_from_slice(&data_offset.to_le_bytes());
    head.extend_from_slice(&data_size.to_le_bytes());
    head.extend_from_slice(&[0u8; 8]); // the checksum, filled in below
    head.extend_from_slice(&index);
    let header_checksum = header_checksum(&head, index.len());
    head[56..64].copy_from_slice(&header_checksum.to_le_bytes());
    w.flush().map_err(io)?;
    w.seek(SeekFrom::Start(0)).map_err(io)?;
    w.write_all(&head).map_err(io)?;
    w.seek(SeekFrom::Start(data_offset + data_size))
        .map_err(io)?;
    w.flush().map_err(io)?;
    Ok(AprHeader {
        version: VERSION,
        gguf_version: view.version(),
        alignment,
        kv_count: view.metadata().len() as u64,
        tensor_count: view.tensors().len() as u64,
        index_size,
        data_offset,
        data_size,
        header_checksum,
    })
}

/// The APR image of `src`, in memory (tests, small files).
pub fn to_apr_bytes(src: &ModelFile) -> Result<Vec<u8>, AprError> {
    let mut c = std::io::Cursor::new(Vec::new());
    write_apr(src, &mut c, crate::gguf::MEMORY_ORIGIN)?;
    Ok(c.into_inner())
}

/// Writes `src` as a GGUF file to `w` in the standard layout (the one gguf-py's `GGUFWriter`
/// and ggml's `gguf_write_to_file` produce): header, metadata and tensor infos in source
/// order, zero padding to `general.alignment` (default 32), then each tensor's bytes followed
/// by zero padding. Uses the GGUF module's own header encoder.
pub fn write_gguf<W: Write>(src: &ModelFile, w: &mut W, out_name: &str) -> Result<(), AprError> {
    let view = src.as_gguf();
    let io = |source| AprError::WriteIo {
        file: out_name.to_string(),
        source,
    };
    let align = u64::from(view.alignment());
    let tensors = view.tensors().iter().map(|t| TensorLayout {
        name: &t.name,
        ggml_type: t.ggml_type,
        ne: &t.ne,
        n_bytes: t.n_bytes,
    });
    let head = encode_header(view.version(), view.metadata(), tensors, align);
    w.write_all(&head).map_err(io)?;
    let pos = head.len() as u64;
    write_zeros(w, padded(pos, align) - pos).map_err(io)?;
    copy_tensors(view, src.apr_checksums(), align, w, out_name)?;
    w.flush().map_err(io)
}
