//! APRT: one captured tensor per file (`docs/aprt.md` is the specification).
//!
//! Two layouts are read; one is written.
//!
//! * **Version 1 (ours)**: magic, a format word with the high bit set, dtype, layer, shape
//!   `[positions, features]`, the stage name, zero padding to 4 bytes, then the values.
//! * **The 12-byte layout** of the anchor tool: magic, layer, element count, then the values.
//!
//! Bytes 4..8 tell them apart: the anchor tool writes a layer index there (a small number, or
//! `0xFFFF_FFFF` for whole-model stages); ours writes `0x8000_0000 | version`, which is never
//! `0xFFFF_FFFF` and always ≥ 2³¹, so no layer index a real model can have collides with it.
//!
//! Values are written and read as raw bit patterns (`to_bits`/`from_bits`), never re-encoded,
//! so NaN payloads, negative zero and subnormals survive byte for byte. Every count is checked
//! against the file length before anything is allocated.

use std::path::Path;

/// The four bytes every APRT file starts with.
pub const MAGIC: [u8; 4] = *b"APRT";
/// The version of our layout this module writes.
pub const VERSION: u32 = 1;
/// Set in the format word (bytes 4..8) of our layout; the 12-byte layout stores a layer index
/// there, which is below 2³¹ or exactly [`WHOLE_MODEL`].
pub const FORMAT_TAG: u32 = 0x8000_0000;
/// The layer field's value for whole-model stages (both layouts).
pub const WHOLE_MODEL: u32 = 0xFFFF_FFFF;
/// dtype code for f32 (the ggml type id of F32).
pub const DTYPE_F32: u32 = 0;
/// Longest stage name accepted: the longest in our vocabulary is 17 bytes
/// (`moe_router_logits`); 64 leaves room for other tools' names without letting a corrupt
/// length field ask for a large allocation.
pub const MAX_STAGE_NAME_LEN: u32 = 64;
/// Size of our fixed header, before the stage name.
pub const V1_FIXED_HEADER: usize = 36;
/// Size of the anchor tool's header.
pub const ANCHOR_HEADER: usize = 12;

/// Why an APRT file could not be read or written. Every variant names the file (`<memory>`
/// for bytes that came from no file), the field and the value involved.
#[derive(Debug, thiserror::Error)]
pub enum AprtError {
    #[error("{file}: cannot {op}: {source}")]
    Io {
        file: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}: truncated: {field} at offset {offset} needs {needed} bytes, the file has {available}")]
    Truncated {
        file: String,
        field: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },

    #[error("{file}: bad magic {found:02x?} at offset 0 (expected \"APRT\" = [41, 50, 52, 54])")]
    BadMagic { file: String, found: Vec<u8> },

    #[error("{file}: unsupported APRT version {version} (format word {word:#010x} at offset 4; this reader knows version {VERSION})")]
    UnsupportedVersion {
        file: String,
        version: u32,
        word: u32,
    },

    #[error("{file}: unsupported dtype {dtype} at offset 8 (only {DTYPE_F32} = f32 is defined)")]
    UnsupportedDtype { file: String, dtype: u32 },

    #[error("{file}: {field} = {value} at offset {offset} is invalid: {reason}")]
    BadField {
        file: String,
        field: &'static str,
        offset: u64,
        value: String,
        reason: String,
    },

    #[error("{file}: {field} = {value} needs {} data bytes at offset {offset}, but the file has {available} bytes after the header", needed_text(*.needed))]
    DataLength {
        file: String,
        field: &'static str,
        value: String,
        offset: u64,
        /// `None` when 4 × the element count overflows u64.
        needed: Option<u64>,
        available: u64,
    },

    #[error("{file}: cannot encode: {reason}")]
    Encode { file: String, reason: String },
}

fn needed_text(needed: Option<u64>) -> String {
    needed.map_or("more than 2^64".to_string(), |n| n.to_string())
}

/// Which of the two layouts a file used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Our self-describing layout, with its version.
    Described { version: u32 },
    /// The anchor tool's 12-byte header: no shape, no stage, no dtype.
    Anchor12,
}

/// The shape a file declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `positions` rows of `features` values, row-major (our layout).
    Matrix { positions: usize, features: usize },
    /// An element count only (the 12-byte layout).
    Flat { count: usize },
}

impl Shape {
    /// The number of values.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Matrix {
                positions,
                features,
            } => positions * features,
            Shape::Flat { count } => count,
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Shape::Matrix {
                positions,
                features,
            } => write!(f, "[{positions}, {features}]"),
            Shape::Flat { count } => write!(f, "[{count}]"),
        }
    }
}

/// What our layout's header says, apart from the magic, version and dtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `None` for whole-model stages.
    pub layer: Option<u32>,
    /// The stage name (see [`crate::trace::Stage::name`]).
    pub stage: String,
    pub positions: usize,
    pub features: usize,
}

/// A decoded APRT file.
#[derive(Debug, Clone, PartialEq)]
pub struct AprtTensor {
    pub layout: Layout,
    /// `None` for whole-model stages.
    pub layer: Option<u32>,
    /// The stage name; `None` for the 12-byte layout, whose file name carries it.
    pub stage: Option<String>,
    pub shape: Shape,
    /// The values, bit for bit as stored.
    pub data: Vec<f32>,
}

/// Whether `name` is an acceptable stage name: 1..=64 bytes of `[A-Za-z0-9_.-]` (it becomes
/// a file name, so no separators).
pub fn valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_STAGE_NAME_LEN as usize
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A known stage whose layer field contradicts it (a whole-model stage with a layer, or a
/// per-layer stage without one).
fn layer_contradiction(layer: Option<u32>, stage: &str) -> Option<String> {
    let s = crate::trace::Stage::from_name(stage)?;
    match (s.is_whole_model(), layer) {
        (true, Some(l)) => Some(format!(
            "stage `{stage}` is whole-model, but the layer field says layer {l}"
        )),
        (false, None) => Some(format!(
            "stage `{stage}` is per-layer, but the layer field says whole-model (0xffffffff)"
        )),
        _ => None,
    }
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Encode one tensor in our layout (version [`VERSION`]).
pub fn encode(header: &Header, data: &[f32]) -> Result<Vec<u8>, AprtError> {
    let fail = |reason: String| AprtError::Encode {
        file: "<memory>".into(),
        reason,
    };
    if !valid_stage_name(&header.stage) {
        return Err(fail(format!(
            "stage name {:?} is not 1..={MAX_STAGE_NAME_LEN} bytes of [A-Za-z0-9_.-]",
            header.stage
        )));
    }
    if header.layer == Some(WHOLE_MODEL) {
        return Err(fail(format!(
            "layer {WHOLE_MODEL:#x} is reserved for whole-model stages (use None)"
        )));
    }
    if let Some(reason) = layer_contradiction(header.layer, &header.stage) {
        return Err(fail(reason));
    }
    match header.positions.checked_mul(header.features) {
        Some(n) if n == data.len() => {}
        _ => {
            return Err(fail(format!(
                "shape [{}, {}] does not hold the {} values given",
                header.positions,
                header.features,
                data.len()
            )))
        }
    }
    let name = header.stage.as_bytes();
    let data_offset = V1_FIXED_HEADER + name.len() + pad4(name.len());
    let mut out = Vec::with_capacity(data_offset + 4 * data.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(FORMAT_TAG | VERSION).to_le_bytes());
    out.extend_from_slice(&DTYPE_F32.to_le_bytes());
    out.extend_from_slice(&header.layer.unwrap_or(WHOLE_MODEL).to_le_bytes());
    out.extend_from_slice(&(header.positions as u64).to_le_bytes());
    out.extend_from_slice(&(header.features as u64).to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name);
    out.resize(data_offset, 0);
    for v in data {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    Ok(out)
}

/// Encode one tensor in the anchor tool's 12-byte layout (for interoperability tests and for
/// tools that read only that layout).
pub fn encode_anchor(layer: Option<u32>, data: &[f32]) -> Result<Vec<u8>, AprtError> {
    let fail = |reason: String| AprtError::Encode {
        file: "<memory>".into(),
        reason,
    };
    if layer.is_some_and(|l| l >= FORMAT_TAG) {
        return Err(fail(format!(
            "layer {} collides with the format word of the described layout (must be < 2^31)",
            layer.unwrap_or_default()
        )));
    }
    let count = u32::try_from(data.len()).map_err(|_| {
        fail(format!(
            "{} values do not fit the 12-byte layout's u32 count",
            data.len()
        ))
    })?;
    let mut out = Vec::with_capacity(ANCHOR_HEADER + 4 * data.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&layer.unwrap_or(WHOLE_MODEL).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for v in data {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    Ok(out)
}

/// Write one tensor in our layout, creating parent directories.
pub fn write(path: &Path, header: &Header, data: &[f32]) -> Result<(), AprtError> {
    let file = path.display().to_string();
    let bytes = encode(header, data).map_err(|e| match e {
        AprtError::Encode { reason, .. } => AprtError::Encode {
            file: file.clone(),
            reason,
        },
        other => other,
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| AprtError::Io {
            file: dir.display().to_string(),
            op: "create directory",
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| AprtError::Io {
        file,
        op: "write",
        source,
    })
}

/// Read and decode one APRT file of either layout.
pub fn read(path: &Path) -> Result<AprtTensor, AprtError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| AprtError::Io {
        file: file.clone(),
        op: "read",
        source,
    })?;
    decode(&bytes, &file)
}

/// A bounds-checked little-endian cursor that names the field it failed on.
struct Cursor<'a> {
    bytes: &'a [u8],
    file: &'a str,
}

impl Cursor<'_> {
    fn take(&self, offset: usize, len: usize, field: &'static str) -> Result<&[u8], AprtError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes.len() => Ok(&self.bytes[offset..end]),
            _ => Err(AprtError::Truncated {
                file: self.file.to_string(),
                field,
                offset: offset as u64,
                needed: len as u64,
                available: self.bytes.len().saturating_sub(offset) as u64,
            }),
        }
    }

    fn u32(&self, offset: usize, field: &'static str) -> Result<u32, AprtError> {
        let b = self.take(offset, 4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&self, offset: usize, field: &'static str) -> Result<u64, AprtError> {
        let b = self.take(offset, 8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// The values of `bytes`, which the caller has sized to a multiple of 4.
fn values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

/// Check that exactly `needed` data bytes follow `offset`.
fn check_data_len(
    bytes: &[u8],
    file: &str,
    field: &'static str,
    value: String,
    offset: usize,
    needed: Option<u64>,
) -> Result<usize, AprtError> {
    let available = bytes.len().saturating_sub(offset) as u64;
    match needed {
        Some(n) if n == available => Ok(n as usize),
        _ => Err(AprtError::DataLength {
            file: file.to_string(),
            field,
            value,
            offset: offset as u64,
            needed,
            available,
        }),
    }
}

/// Decode one APRT file of either layout from memory; `file` names it in errors.
pub fn decode(bytes: &[u8], file: &str) -> Result<AprtTensor, AprtError> {
    let c = Cursor { bytes, file };
    let magic = c.take(0, 4, "magic")?;
    if magic != MAGIC {
        return Err(AprtError::BadMagic {
            file: file.to_string(),
            found: magic.to_vec(),
        });
    }
    let word = c.u32(4, "format word (or layer of the 12-byte layout)")?;
    if word & FORMAT_TAG == 0 || word == WHOLE_MODEL {
        return decode_anchor(&c, word);
    }
    let version = word & !FORMAT_TAG;
    if version != VERSION {
        return Err(AprtError::UnsupportedVersion {
            file: file.to_string(),
            version,
            word,
        });
    }
    let dtype = c.u32(8, "dtype")?;
    if dtype != DTYPE_F32 {
        return Err(AprtError::UnsupportedDtype {
            file: file.to_string(),
            dtype,
        });
    }
    let layer_raw = c.u32(12, "layer")?;
    let layer = (layer_raw != WHOLE_MODEL).then_some(layer_raw);
    let positions = c.u64(16, "positions")?;
    let features = c.u64(24, "features")?;
    let stage_len = c.u32(32, "stage_len")?;
    if stage_len == 0 || stage_len > MAX_STAGE_NAME_LEN {
        return Err(AprtError::BadField {
            file: file.to_string(),
            field: "stage_len",
            offset: 32,
            value: stage_len.to_string(),
            reason: format!("must be 1..={MAX_STAGE_NAME_LEN}"),
        });
    }
    let name_bytes = c.take(V1_FIXED_HEADER, stage_len as usize, "stage")?;
    let stage = match std::str::from_utf8(name_bytes) {
        Ok(s) if valid_stage_name(s) => s.to_string(),
        _ => {
            return Err(AprtError::BadField {
                file: file.to_string(),
                field: "stage",
                offset: V1_FIXED_HEADER as u64,
                value: format!("{:?}", String::from_utf8_lossy(name_bytes)),
                reason: "a stage name is [A-Za-z0-9_.-] only".into(),
            })
        }
    };
    if let Some(reason) = layer_contradiction(layer, &stage) {
        return Err(AprtError::BadField {
            file: file.to_string(),
            field: "layer",
            offset: 12,
            value: format!("{layer_raw:#x}"),
            reason,
        });
    }
    let pad_offset = V1_FIXED_HEADER + stage_len as usize;
    let pad = c.take(pad_offset, pad4(stage_len as usize), "padding")?;
    if pad.iter().any(|&b| b != 0) {
        return Err(AprtError::BadField {
            file: file.to_string(),
            field: "padding",
            offset: pad_offset as u64,
            value: format!("{pad:02x?}"),
            reason: "padding bytes must be zero".into(),
        });
    }
    let data_offset = pad_offset + pad.len();
    let needed = positions
        .checked_mul(features)
        .and_then(|n| n.checked_mul(4));
    let n = check_data_len(
        bytes,
        file,
        "shape",
        format!("[{positions}, {features}]"),
        data_offset,
        needed,
    )?;
    // The product fits in the file; a factor can still be large when the other is 0.
    let dim = |v: u64, field: &'static str, offset: u64| {
        usize::try_from(v).map_err(|_| AprtError::BadField {
            file: file.to_string(),
            field,
            offset,
            value: v.to_string(),
            reason: "does not fit this machine's address space".into(),
        })
    };
    Ok(AprtTensor {
        layout: Layout::Described { version },
        layer,
        stage: Some(stage),
        shape: Shape::Matrix {
            positions: dim(positions, "positions", 16)?,
            features: dim(features, "features", 24)?,
        },
        data: values(&bytes[data_offset..data_offset + n]),
    })
}

fn decode_anchor(c: &Cursor<'_>, layer_raw: u32) -> Result<AprtTensor, AprtError> {
    let count = c.u32(8, "element_count")?;
    let n = check_data_len(
        c.bytes,
        c.file,
        "element_count",
        count.to_string(),
        ANCHOR_HEADER,
        Some(4 * count as u64),
    )?;
    Ok(AprtTensor {
        layout: Layout::Anchor12,
        layer: (layer_raw != WHOLE_MODEL).then_some(layer_raw),
        stage: None,
        shape: Shape::Flat {
            count: count as usize,
        },
        data: values(&c.bytes[ANCHOR_HEADER..ANCHOR_HEADER + n]),
    })
}
