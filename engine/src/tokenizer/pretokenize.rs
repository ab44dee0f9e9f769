//! Pre-tokenizers: split text into words before BPE, exactly as llama.cpp does for the
//! `tokenizer.ggml.pre` names we support.
//!
//! llama.cpp (src/llama-vocab.cpp `llm_tokenizer_bpe`, src/unicode.cpp) replaces the
//! tokenizer.json regexes with hand-written matchers; the behaviour below follows those
//! matchers (including where they differ from a regex engine), not the regexes:
//! - `gpt-2`: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! - `qwen2`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
//! - `llama-bpe` (llama3): as qwen2 with `\p{N}{1,3}`
//! - `smollm`: first every `\p{N}` is its own piece, then the gpt-2 matcher.

use super::unicode::{to_lower, Flags};

/// A pre-tokenizer llama.cpp knows by its `tokenizer.ggml.pre` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    Gpt2,
    Llama3,
    Qwen2,
    SmolLm,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value (names from llama.cpp
    /// src/llama-vocab.cpp); a missing value means llama.cpp's `default`, which splits like
    /// gpt-2.
    pub fn from_gguf_name(name: Option<&str>) -> Option<PreTokenizer> {
        Some(match name? {
            "gpt-2" | "default" => PreTokenizer::Gpt2,
            "llama-bpe" | "llama3" => PreTokenizer::Llama3,
            "qwen2" => PreTokenizer::Qwen2,
            "smollm" => PreTokenizer::SmolLm,
            _ => return None,
        })
    }

    /// The names accepted by [`PreTokenizer::from_gguf_name`].
    pub const SUPPORTED: &'static str = "gpt-2, default, llama-bpe, qwen2, smollm";

    /// Split `text` into words (byte ranges into `text`).
    pub fn split(self, text: &str) -> Vec<&str> {
        let cpts: Vec<(usize, char)> = text.char_indices().collect();
        let whole = [(0, cpts.len())];
        let spans = match self {
            PreTokenizer::Gpt2 => split_all(&cpts, &whole, gpt2),
            PreTokenizer::Llama3 => {
                split_all(&cpts, &whole, |c, s, e, out| qwen_like(c, s, e, 3, out))
            }
            PreTokenizer::Qwen2 => {
                split_all(&cpts, &whole, |c, s, e, out| qwen_like(c, s, e, 1, out))
            }
            PreTokenizer::SmolLm => {
                let digits = split_all(&cpts, &whole, each_number);
                split_all(&cpts, &digits, gpt2)
            }
        };
        spans
            .into_iter()
            .map(|(s, e)| {
                let from = cpts[s].0;
                let to = cpts.get(e).map_or(text.len(), |c| c.0);
                &text[from..to]
            })
            .collect()
    }
}

/// Apply a matcher to each fragment (code point ranges [start, end)), collecting the pieces.
fn split_all(
    cpts: &[(usize, char)],
    fragments: &[(usize, usize)],
    matcher: impl Fn(&[(usize, char)], usize, usize, &mut Vec<(usize, usize)>),
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &(start, end) in fragments {
        matcher(cpts, start, end, &mut out);
    }
    out
}

/// Accessors bounded to one fragment: outside it, no code point and no class.
struct Fragment<'a> {
    cpts: &'a [(usize, char)],
    start: usize,
    end: usize,
}

impl Fragment<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.start..self.end)
            .contains(&pos)
            .then(|| self.cpts[pos].1)
    }

    fn flags(&self, pos: usize) -> Flags {
        self.cpt(pos).map_or(Flags::OUTSIDE, Flags::of)
    }

    /// The length of the contraction (`'s`, `'t`, `'re`, …) at `pos`, if one starts there.
    fn contraction(&self, pos: usize, fold_case: bool) -> Option<usize> {
        if self.cpt(pos)? != '\'' || pos + 1 >= self.end {
            return None;
        }
        let fold = |c: char| if fold_case { to_lower(c) } else { c };
        let next = fold(self.cpt(pos + 1)?);
        if matches!(next, 's' | 't' | 'm' | 'd') {
            return Some(2);
        }
        let next2 = fold(self.cpt(pos + 2)?);
        matches!((next, next2), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(3)
    }

    /// The number of whitespace code points from `pos`.
    fn whitespace_run(&self, pos: usize) -> usize {
        (pos..self.end)
            .take_while(|&p| self.flags(p).whitespace)
            .count()
    }
}

/// Records pieces, skipping empty ones (llama.cpp `_add_token`).
struct Pieces<'o> {
    out: &'o mut Vec<(usize, usize)>,
    prev_end: usize,
}

impl Pieces<'_> {
    fn cut(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push((self.prev_end, end));
        }
        self.prev_end = end;
    }
}

/// Each `\p{N}` code point becomes its own piece; the text between is kept as pieces too
/// (llama.cpp's regex split keeps unmatched text).
fn each_number(cpts: &[(usize, char)], start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let mut pieces = Pieces {
        out,
        prev_end: start,
    };
    for (pos, &(_, c)) in cpts.iter().enumerate().take(end).skip(start) {
        if Flags::of(c).number {
            pieces.cut(pos);
            pieces.cut(pos + 1);
        }
    }
    pieces.cut(end);
}

/// The gpt-2 matcher (llama.cpp `unicode_regex_split_custom_gpt2`).
fn gpt2(cpts: &[(usize, char)], start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let f = Fragment { cpts, start, end };
    let mut pieces = Pieces {
        out,
        prev_end: start,
    };
    let mut pos = start;
    while pos < end {
        if let Some(len) = f.contraction(pos, false) {
            pos += len;
            pieces.cut(pos);
            continue;
        }
        let space = f.cpt(pos) == Some(' ');
        let first = if space {
            f.flags(pos + 1)
        } else {
            f.flags(pos)
        };
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
        let class: Option<fn(Flags) -> bool> = if first.letter {
            Some(|g| g.letter)
        } else if first.number {
            Some(|g| g.number)
        } else if !(first.whitespace || first.letter || first.number) && first.inside {
            Some(|g| !(g.whitespace || g.letter || g.number) && g.inside)
        } else {
            None
        };
        if let Some(in_class) = class {
            pos += usize::from(space);
            while in_class(f.flags(pos)) {
                pos += 1;
            }
            pieces.cut(pos);
            continue;
        }
        pos = whitespace_tail(&f, pos, f.whitespace_run(pos), &mut pieces);
    }
}

/// `\s+(?!\S)` then `\s+`, then a single unmatched code point; returns the new position.
fn whitespace_tail(f: &Fragment<'_>, pos: usize, run: usize, pieces: &mut Pieces<'_>) -> usize {
    let new_pos = if run > 1 && f.cpt(pos + run).is_some() {
        pos + run - 1
    } else if run > 0 {
        pos + run
    } else {
        pos + 1
    };
    pieces.cut(new_pos);
    new_pos
}

/// The qwen2 / llama3 matcher (llama.cpp `unicode_regex_split_custom_qwen2` and `_llama3`,
/// which differ only in how many digits form one piece).
fn qwen_like(
    cpts: &[(usize, char)],
    start: usize,
    end: usize,
    max_digits: usize,
    out: &mut Vec<(usize, usize)>,
) {
    let f = Fragment { cpts, start, end };
    let mut pieces = Pieces {
        out,
        prev_end: start,
    };
    let mut pos = start;
    while pos < end {
        let cpt = f.cpt(pos);
        let flags = f.flags(pos);
        if let Some(len) = f.contraction(pos, true) {
            pos += len;
            pieces.cut(pos);
            continue;
        }
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        let newline = matches!(cpt, Some('\r' | '\n'));
        if !(newline || flags.number) && (flags.letter || f.flags(pos + 1).letter) {
            pos += 1;
            while f.flags(pos).letter {
                pos += 1;
            }
            pieces.cut(pos);
            continue;
        }
        // `\p{N}{1,max_digits}`
        if flags.number {
            let mut group_start = pos;
            while f.flags(pos).number {
                pos += 1;
                if pos - group_start >= max_digits {
                    pieces.cut(pos);
                    group_start = pos;
                }
            }
            pieces.cut(pos);
            continue;
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (llama.cpp tests the first code point's own flags for
        // "inside", and the one after an optional space for the class)
        let space = cpt == Some(' ');
        let mut g = if space { f.flags(pos + 1) } else { flags };
        if !(g.whitespace || g.letter || g.number) && flags.inside {
            pos += usize::from(space);
            while !(g.whitespace || g.letter || g.number) && g.inside {
                pos += 1;
                g = f.flags(pos);
            }
            while matches!(f.cpt(pos), Some('\r' | '\n')) {
                pos += 1;
            }
            pieces.cut(pos);
            continue;
        }
        // `\s*[\r\n]+`: up to the last newline of the whitespace run
        let run = f.whitespace_run(pos);
        if let Some(last_newline) = (pos..pos + run)
            .rev()
            .find(|&p| matches!(f.cpt(p), Some('\r' | '\n')))
        {
            pos = last_newline + 1;
            pieces.cut(pos);
            continue;
        }
        pos = whitespace_tail(&f, pos, run, &mut pieces);
    }
}

#[cfg(test)]
mod tests {
    use super::PreTokenizer::{self, *};

    fn split(p: PreTokenizer, s: &str) -> Vec<&str> {
        p.split(s)
    }

    #[test]
    fn gpt2_words_spaces_and_contractions() {
        assert_eq!(
            split(Gpt2, "Hello world's  end  "),
            ["Hello", " world", "'s", " ", " end", "  "]
        );
        assert_eq!(split(Gpt2, "a123 b"), ["a", "123", " b"]);
    }

    #[test]
    fn qwen2_digits_newlines_and_case_folded_contractions() {
        assert_eq!(split(Qwen2, "x 123"), ["x", " ", "1", "2", "3"]);
        assert_eq!(split(Qwen2, "A\n\n  b"), ["A", "\n\n", " ", " b"]);
        assert_eq!(split(Qwen2, "DON'T"), ["DON", "'T"]);
        assert_eq!(split(Qwen2, "x.)\n"), ["x", ".)\n"]);
    }

    #[test]
    fn llama3_groups_three_digits() {
        assert_eq!(split(Llama3, "1234567"), ["123", "456", "7"]);
    }

    #[test]
    fn smollm_splits_digits_first() {
        assert_eq!(split(SmolLm, "ab 12"), ["ab", " ", "1", "2"]);
    }

    #[test]
    fn pieces_cover_the_text() {
        let text = "  mixed\t\ttext, 42 日本語 😀\r\n end ";
        for p in [Gpt2, Llama3, Qwen2, SmolLm] {
            assert_eq!(split(p, text).concat(), text, "{p:?}");
        }
    }
}
