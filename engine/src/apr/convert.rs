//! `apr convert`: GGUF ↔ APR, written atomically.
//!
//! The output goes to a temporary file in the target directory, is fsynced, then renamed over
//! the target (and the directory fsynced), so a reader sees the old file or the complete new
//! one, never a partial one; on any error the temporary file is removed. Converting onto the
//! input itself is refused. An APR input has every tensor checksum verified while it is copied.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{write_apr, write_gguf, AprError};
use crate::model_file::{ModelFile, ModelFileError, ModelFormat};

/// Why a conversion failed. Nothing is left at the output path (an existing output is kept).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Open(#[from] ModelFileError),

    #[error(transparent)]
    Write(#[from] AprError),

    #[error("{output}: refusing to overwrite the input file {input}")]
    SameFile { input: String, output: String },

    #[error(
        "{output}: cannot tell the output format from the file name (expected a .apr or .gguf extension); pass --to apr or --to gguf"
    )]
    UnknownOutputFormat { output: String },

    #[error("{file}: cannot {action}: {source}")]
    Io {
        file: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What a conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    /// Input format (by magic).
    pub from: ModelFormat,
    /// Output format.
    pub to: ModelFormat,
    /// Tensors copied.
    pub tensors: usize,
    /// Metadata pairs copied.
    pub metadata: usize,
    /// Bytes of the output file.
    pub bytes: u64,
}

impl std::fmt::Display for ConvertReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {}: {} metadata keys, {} tensors, {} bytes written",
            self.from, self.to, self.metadata, self.tensors, self.bytes
        )
    }
}

/// The output format: `to` if given, else the output's extension.
pub fn output_format(output: &Path, to: Option<ModelFormat>) -> Result<ModelFormat, ConvertError> {
    to.or_else(|| ModelFormat::from_extension(output))
        .ok_or_else(|| ConvertError::UnknownOutputFormat {
            output: output.display().to_string(),
        })
}

/// Converts `input` (GGUF or APR) to `output` in format `to` (default: by extension).
pub fn convert(
    input: &Path,
    output: &Path,
    to: Option<ModelFormat>,
) -> Result<ConvertReport, ConvertError> {
    let to = output_format(output, to)?;
    if same_file(input, output) {
        return Err(ConvertError::SameFile {
            input: input.display().to_string(),
            output: output.display().to_string(),
        });
    }
    let src = ModelFile::open(input)?;
    let out_name = output.display().to_string();
    let io = |action: &'static str| {
        let file = out_name.clone();
        move |source| ConvertError::Io {
            file,
            action,
            source,
        }
    };

    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = TempFile::create(&dir, output).map_err(io("create a temporary file beside it"))?;
    let file = temp.file.try_clone().map_err(io("write"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    match to {
        ModelFormat::Apr => {
            write_apr(&src, &mut w, &out_name)?;
        }
        ModelFormat::Gguf => write_gguf(&src, &mut w, &out_name)?,
    }
    w.flush().map_err(io("write"))?;
    drop(w);
    temp.file.sync_all().map_err(io("fsync"))?;
    let bytes = temp.file.metadata().map_err(io("stat"))?.len();
    temp.persist(output)
        .map_err(io("rename the temporary file onto"))?;
    // Make the rename itself durable; not every platform can fsync a directory.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(ConvertReport {
        from: src.format(),
        to,
        tensors: src.tensors().len(),
        metadata: src.metadata().len(),
        bytes,
    })
}

/// True when `output` names the same file as `input` (same device and inode where the platform
/// says, else the same canonical path).
fn same_file(input: &Path, output: &Path) -> bool {
    let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return true;
        }
    }
    let _ = (a, b);
    match (input.canonicalize(), output.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A temporary file beside the target, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl TempFile {
    fn create(dir: &Path, target: &Path) -> std::io::Result<TempFile> {
        let stem = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for attempt in 0..100u32 {
            let path = dir.join(format!(
                ".{stem}.tmp-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        keep: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "no free temporary file name",
        ))
    }

    fn persist(mut self, target: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, target)?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
