//! Quantized matrix products: activation quantization, per-ISA dot products, rayon dispatch.
