//! Byte-level BPE over pre-tokenized words (llama.cpp src/llama-vocab.cpp
//! `llm_tokenizer_bpe_session::tokenize`): each word's bytes are mapped to GPT-2's
//! byte-level characters, then adjacent symbols are merged lowest merge rank first
//! (leftmost on ties) until no ranked pair remains.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::unicode::byte_to_char_table;
use super::TokenId;

/// Merge ranks and the byte-level alphabet.
#[derive(Debug)]
pub(crate) struct Bpe {
    ranks: HashMap<(String, String), u32>,
    byte_chars: [char; 256],
}

impl Bpe {
    /// `merges` are GGUF's `"left right"` strings, split at the first space after the first
    /// character (llama.cpp: `find(' ', 1)`). Returns the index of a malformed merge.
    pub fn new(merges: &[String]) -> Result<Bpe, usize> {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            let split = merge
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i)
                .ok_or(rank)?;
            let (left, right) = (&merge[..split], &merge[split + 1..]);
            ranks
                .entry((left.to_owned(), right.to_owned()))
                .or_insert(rank as u32);
        }
        Ok(Bpe {
            ranks,
            byte_chars: byte_to_char_table(),
        })
    }

    /// Tokenize one pre-tokenized word, appending ids to `out`.
    pub fn encode_word(
        &self,
        word: &str,
        lookup: impl Fn(&str) -> Option<TokenId>,
        out: &mut Vec<TokenId>,
    ) {
        let encoded: String = word.bytes().map(|b| self.byte_chars[b as usize]).collect();
        // Symbols are [start, end) byte ranges of `encoded`, linked as a list.
        let mut syms: Vec<Symbol> = encoded
            .char_indices()
            .map(|(i, c)| Symbol {
                start: i,
                len: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let n = syms.len();
        for (i, s) in syms.iter_mut().enumerate() {
            s.prev = i.checked_sub(1);
            s.next = (i + 1 < n).then_some(i + 1);
        }
        let text = |s: &Symbol| &encoded[s.start..s.start + s.len];
        let mut queue = BinaryHeap::new();
        let push = |queue: &mut BinaryHeap<_>, syms: &[Symbol], l: usize, r: usize| {
            let key = (text(&syms[l]).to_owned(), text(&syms[r]).to_owned());
            if let Some(&rank) = self.ranks.get(&key) {
                queue.push(Reverse((rank, l, r, key.0.len() + key.1.len())));
            }
        };
        for i in 1..n {
            push(&mut queue, &syms, i - 1, i);
        }
        while let Some(Reverse((_, l, r, size))) = queue.pop() {
            // Skip pairs made stale by an earlier merge.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].next != Some(r) {
                continue;
            }
            if syms[l].len + syms[r].len != size {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if let Some(next) = syms[r].next {
                syms[next].prev = Some(l);
            }
            if let Some(prev) = syms[l].prev {
                push(&mut queue, &syms, prev, l);
            }
            if let Some(next) = syms[l].next {
                push(&mut queue, &syms, l, next);
            }
        }
        for s in syms.iter().filter(|s| s.len > 0) {
            match lookup(text(s)) {
                Some(id) => out.push(id),
                // llama.cpp falls back to the symbol's single bytes as tokens and drops
                // bytes that are not tokens.
                None => out.extend(
                    text(s)
                        .bytes()
                        .filter_map(|b| std::str::from_utf8(&[b]).ok().and_then(&lookup)),
                ),
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}
