//! Code point classes used by llama.cpp's pre-tokenizers (llama.cpp src/unicode.h
//! `unicode_cpt_flags`): `\p{L}`, `\p{N}` from the Unicode general category, `\s` from the
//! White_Space property (llama.cpp's `unicode_set_whitespace` lists the same code points).

use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// The classes of one code point, or of a position outside the current fragment
/// (`Flags::OUTSIDE`, all false) — llama.cpp's state machines test both the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub letter: bool,
    pub number: bool,
    pub whitespace: bool,
    /// False only for positions outside the fragment (llama.cpp `flags.as_uint() == 0`).
    pub inside: bool,
}

impl Flags {
    pub const OUTSIDE: Flags = Flags {
        letter: false,
        number: false,
        whitespace: false,
        inside: false,
    };

    pub fn of(c: char) -> Flags {
        let cat = get_general_category(c);
        Flags {
            letter: matches!(
                cat,
                Gc::UppercaseLetter
                    | Gc::LowercaseLetter
                    | Gc::TitlecaseLetter
                    | Gc::ModifierLetter
                    | Gc::OtherLetter
            ),
            number: matches!(cat, Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber),
            whitespace: c.is_whitespace(),
            inside: true,
        }
    }
}

/// Lower-case a code point when it maps to exactly one code point (llama.cpp
/// `unicode_tolower`); used only to compare with ASCII letters.
pub(crate) fn to_lower(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves, the other 68
/// bytes to U+0100 upwards in byte order (openai/gpt-2 encoder.py `bytes_to_unicode`,
/// llama.cpp `unicode_byte_to_utf8_map`).
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        table[b as usize] = if printable(b) {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(Flags::of('a').letter && Flags::of('中').letter && Flags::of('é').letter);
        assert!(Flags::of('7').number && Flags::of('½').number && Flags::of('Ⅻ').number);
        assert!(Flags::of('\u{3000}').whitespace && Flags::of('\u{a0}').whitespace);
        let emoji = Flags::of('😀');
        assert!(!emoji.letter && !emoji.number && !emoji.whitespace && emoji.inside);
    }

    #[test]
    fn gpt2_byte_table() {
        let t = byte_to_char_table();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0], 'Ā');
        // 33 control bytes and space, then 0x7F..=0xA0 (34 bytes), then 0xAD.
        assert_eq!(t[0xAD], '\u{143}');
        let mut seen: Vec<char> = t.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256, "the table is a bijection");
    }
}
