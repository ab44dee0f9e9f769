//! Parser limits. Each caps what one header field may claim, so a hostile header cannot make
//! the reader allocate or loop far beyond what a real model needs. Counts are additionally
//! checked against the bytes left in the file (a count of N values needs at least N times the
//! smallest encoding), so these caps mainly bound work on files that really are that large.

/// Most tensors in one file. The largest real models we know of (MoE with per-expert tensors
/// unmerged, e.g. ~60 layers × 256 experts × 3) stay below 2^17; 2^20 leaves ample room.
pub const MAX_TENSORS: u64 = 1 << 20;

/// Most metadata key/value pairs. Real files carry tens to a few hundred; 2^20 is generous.
pub const MAX_KV: u64 = 1 << 20;

/// Longest metadata key in bytes. Keys are dotted identifiers like
/// `qwen3moe.attention.layer_norm_rms_epsilon`; 64 KiB is far beyond any real key.
pub const MAX_KEY_BYTES: u64 = 1 << 16;

/// Longest string value in bytes. The longest real strings are chat templates (tens of KB)
/// and embedded licence texts; 64 MiB bounds one allocation.
pub const MAX_STRING_BYTES: u64 = 1 << 26;

/// Most elements in one metadata array. Tokenizer vocabularies and merge lists are the
/// largest real arrays (≈ 260k tokens, ≈ 500k merges); 2^26 leaves a factor of 100.
pub const MAX_ARRAY_LEN: u64 = 1 << 26;

/// Deepest array nesting (1 = a flat array). ggml's own reader rejects nested arrays and
/// gguf-py writes them but flattens them when reading; no model we know of uses them. The cap
/// bounds recursion (stack) on hostile input.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Longest tensor name in bytes: ggml stores names in `char name[GGML_MAX_NAME]` with
/// GGML_MAX_NAME = 64 including the NUL, and gguf.cpp rejects `length >= GGML_MAX_NAME`.
pub const MAX_TENSOR_NAME_BYTES: u64 = 63;

/// Most dimensions of a tensor (ggml `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Smallest possible kv pair: u64 key length (empty key), i32 type, 1-byte value.
pub const MIN_KV_BYTES: u64 = 8 + 4 + 1;

/// Smallest possible tensor info: u64 name length (empty name), u32 n_dims = 0, i32 type,
/// u64 offset.
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
