//! SentencePiece-style BPE (llama.cpp src/llama-vocab.cpp `llm_tokenizer_spm_session`):
//! spaces become U+2581, symbols start as single characters, and the adjacent pair whose
//! concatenation is the highest-scoring token is merged first (leftmost on ties). A final
//! symbol that is not a token is emitted as byte tokens `<0xXX>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::TokenId;

/// U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's visible space.
pub(crate) const SPACE: char = '\u{2581}';

#[derive(Debug)]
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Highest score first, then the leftmost pair (llama.cpp `llm_bigram_spm::comparator`).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenize `text` (already prefixed with a space where the vocabulary asks for one).
pub(crate) fn encode(
    text: &str,
    lookup: impl Fn(&str) -> Option<TokenId>,
    score: impl Fn(TokenId) -> f32,
    byte_token: impl Fn(u8) -> Option<TokenId>,
    out: &mut Vec<TokenId>,
) {
    let escaped: String = text
        .chars()
        .map(|c| if c == ' ' { SPACE } else { c })
        .collect();
    let mut start = Vec::new();
    let mut len = Vec::new();
    for (i, c) in escaped.char_indices() {
        start.push(i);
        len.push(c.len_utf8());
    }
    let n = start.len();
    let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
    let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
    let mut queue = BinaryHeap::new();
    let try_pair = |queue: &mut BinaryHeap<Candidate>, len: &[usize], l: usize, r: usize| {
        let size = len[l] + len[r];
        if let Some(id) = lookup(&escaped[start[l]..start[l] + size]) {
            queue.push(Candidate {
                score: score(id),
                left: l,
                right: r,
                size,
            });
        }
    };
    for i in 1..n {
        try_pair(&mut queue, &len, i - 1, i);
    }
    while let Some(c) = queue.pop() {
        if len[c.left] == 0 || len[c.right] == 0 || len[c.left] + len[c.right] != c.size {
            continue;
        }
        len[c.left] += len[c.right];
        len[c.right] = 0;
        next[c.left] = next[c.right];
        if let Some(nr) = next[c.right] {
            prev[nr] = Some(c.left);
        }
        if let Some(p) = prev[c.left] {
            try_pair(&mut queue, &len, p, c.left);
        }
        if let Some(nx) = next[c.left] {
            try_pair(&mut queue, &len, c.left, nx);
        }
    }
    let mut cur = (n > 0).then_some(0);
    while let Some(i) = cur {
        let piece = &escaped[start[i]..start[i] + len[i]];
        // Every merged symbol is a token by construction; a single character may not be.
        match lookup(piece) {
            Some(id) => out.push(id),
            None => out.extend(piece.bytes().filter_map(&byte_token)),
        }
        cur = next[i];
    }
}
