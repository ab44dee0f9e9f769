//! GGUF v2/v3: memory-mapped reader, typed metadata access, and writer.
