//! libFuzzer target for the GGUF parser: `cargo +nightly fuzz run gguf_parse` (see docs/gguf.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../gguf_check.rs");

fuzz_target!(|data: &[u8]| {
    check_gguf_input(data);
});
