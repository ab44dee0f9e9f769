//! Streaming decoded bytes as text without splitting a character: a token may end in the
//! middle of a multi-byte UTF-8 sequence (byte-level BPE and SentencePiece byte fallback
//! both do this), so the incomplete tail waits for the next token's bytes.

/// Bytes in, complete UTF-8 text out.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Utf8Stream {
        Utf8Stream::default()
    }

    /// Append `bytes` and return every complete character now available. A byte that can
    /// never start or continue a character becomes U+FFFD; an incomplete sequence at the
    /// end is kept for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// What is left at the end of the stream (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_tokens_comes_out_whole() {
        let mut s = Utf8Stream::new();
        // "é" = C3 A9
        assert_eq!(s.push(b"caf\xC3"), "caf");
        assert_eq!(s.push(b"\xA9!"), "é!");
        // "😀" = F0 9F 98 80 in three pieces
        assert_eq!(s.push(b"\xF0"), "");
        assert_eq!(s.push(b"\x9F\x98"), "");
        assert_eq!(s.push(b"\x80"), "😀");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(b"a\xFFb"), "a\u{FFFD}b");
        // A lead byte followed by a non-continuation byte.
        assert_eq!(s.push(b"\xC3x"), "\u{FFFD}x");
        // An incomplete sequence left at the end.
        assert_eq!(s.push(b"\xE2\x82"), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
