//! The tokenizer embedded in a GGUF file, behaving as llama.cpp's (src/llama-vocab.cpp):
//! byte-level BPE (`tokenizer.ggml.model = gpt2`) with the pre-tokenizer that
//! `tokenizer.ggml.pre` names, and SentencePiece-style BPE (`llama`) with byte fallback.
//! Special tokens are found in the text before anything else; `add_bos_token` is honoured.

mod bpe;
mod pretokenize;
mod spm;
mod unicode;

use std::collections::HashMap;

use crate::gguf::{GgufError, GgufFile};

pub use pretokenize::PreTokenizer;

/// A token id.
pub type TokenId = u32;

/// What can be wrong with a GGUF vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported tokenizer model '{model}' (tokenizer.ggml.model); supported: gpt2 (byte-level BPE), llama (SentencePiece)")]
    UnsupportedModel { model: String },
    #[error(
        "unsupported pre-tokenizer '{pre}' (tokenizer.ggml.pre); supported: {}",
        PreTokenizer::SUPPORTED
    )]
    UnsupportedPreTokenizer { pre: String },
    #[error("the vocabulary is empty (tokenizer.ggml.tokens)")]
    Empty,
    #[error("tokenizer.ggml.{key} has {found} entries but there are {tokens} tokens")]
    LengthMismatch {
        key: &'static str,
        found: usize,
        tokens: usize,
    },
    #[error("tokenizer.ggml.{key} = {id} is not a token id (vocabulary of {tokens})")]
    IdOutOfRange {
        key: &'static str,
        id: u32,
        tokens: usize,
    },
    #[error("tokenizer.ggml.merges[{index}] has no space separating its two parts")]
    BadMerge { index: usize },
    #[error("{key} is needed (add_bos_token / add_eos_token is set) but the file has none")]
    MissingSpecial { key: &'static str },
}

/// Token attributes from `tokenizer.ggml.token_type` (llama.h `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
    Undefined,
}

impl TokenType {
    /// The type for a GGUF `token_type` value; unknown values count as undefined.
    pub fn from_gguf(value: i32) -> TokenType {
        match value {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// Found in text before tokenization (llama.cpp `cache_special_tokens`).
    fn is_special(self) -> bool {
        matches!(
            self,
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown
        )
    }

    /// Parsed out of text only when the caller asks for special-token parsing, and not
    /// printed unless asked (llama.cpp: CONTROL and UNKNOWN).
    fn is_control_like(self) -> bool {
        matches!(self, TokenType::Control | TokenType::Unknown)
    }
}

/// Token texts llama.cpp treats as end-of-generation and forces to control type, whatever
/// the file says (src/llama-vocab.cpp, `special_eog_ids`, "control-looking token").
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
];

/// A vocabulary as the GGUF `tokenizer.ggml.*` keys describe it.
#[derive(Debug, Clone, Default)]
pub struct VocabSpec {
    /// `tokenizer.ggml.model`.
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`; empty means every token is normal.
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    pub scores: Vec<f32>,
    pub bos: Option<TokenId>,
    pub eos: Option<TokenId>,
    /// `tokenizer.ggml.add_bos_token`; `None` takes llama.cpp's default for the model.
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`; `None` takes llama.cpp's default.
    pub add_space_prefix: Option<bool>,
}

#[derive(Debug)]
enum Kind {
    Bpe {
        bpe: Box<bpe::Bpe>,
        pre: PreTokenizer,
    },
    Spm {
        add_space_prefix: bool,
    },
}

/// A tokenizer built from a GGUF vocabulary.
#[derive(Debug)]
pub struct Tokenizer {
    kind: Kind,
    tokens: Vec<String>,
    types: Vec<TokenType>,
    scores: Vec<f32>,
    ids: HashMap<String, TokenId>,
    /// Special tokens, longest text first (ties by id), as llama.cpp searches them.
    specials: Vec<TokenId>,
    bos: Option<TokenId>,
    eos: Option<TokenId>,
    /// Tokens that end generation: EOS and the end-of-turn texts llama.cpp recognises.
    eog: Vec<TokenId>,
    add_bos: bool,
    add_eos: bool,
    byte_values: HashMap<char, u8>,
}

/// A piece of the input: raw text, or a special token found in it.
enum Fragment<'t> {
    Text(&'t str),
    Token(TokenId),
}

impl VocabSpec {
    /// Read the `tokenizer.ggml.*` keys of a GGUF file.
    pub fn from_gguf(f: &GgufFile) -> Result<VocabSpec, GgufError> {
        let present = |key: &str| f.contains_key(key);
        let id = |key: &str| -> Result<Option<TokenId>, GgufError> {
            if !present(key) {
                return Ok(None);
            }
            let v = f.get_uint_lenient(key)?;
            // An id past u32 can only be out of range; Tokenizer::new reports it.
            Ok(Some(u32::try_from(v).unwrap_or(u32::MAX)))
        };
        let flag = |key: &str| -> Result<Option<bool>, GgufError> {
            present(key).then(|| f.get_bool(key)).transpose()
        };
        let strings = |key: &str| -> Result<Vec<String>, GgufError> {
            Ok(if present(key) {
                f.get_str_array(key)?.to_vec()
            } else {
                Vec::new()
            })
        };
        Ok(VocabSpec {
            model: f.get_str("tokenizer.ggml.model")?.to_owned(),
            pre: present("tokenizer.ggml.pre")
                .then(|| f.get_str("tokenizer.ggml.pre").map(str::to_owned))
                .transpose()?,
            tokens: f.get_str_array("tokenizer.ggml.tokens")?.to_vec(),
            token_types: if present("tokenizer.ggml.token_type") {
                f.get_i32_array("tokenizer.ggml.token_type")?.to_vec()
            } else {
                Vec::new()
            },
            merges: strings("tokenizer.ggml.merges")?,
            scores: if present("tokenizer.ggml.scores") {
                f.get_f32_array("tokenizer.ggml.scores")?.to_vec()
            } else {
                Vec::new()
            },
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_eos: flag("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
        })
    }
}

impl Tokenizer {
    /// The tokenizer embedded in a GGUF file.
    pub fn from_gguf(f: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::new(VocabSpec::from_gguf(f)?)
    }

    /// Build a tokenizer, checking the vocabulary's consistency.
    pub fn new(spec: VocabSpec) -> Result<Tokenizer, TokenizerError> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(TokenizerError::Empty);
        }
        let check_len = |key, found: usize| {
            if found != 0 && found != n {
                Err(TokenizerError::LengthMismatch {
                    key,
                    found,
                    tokens: n,
                })
            } else {
                Ok(())
            }
        };
        check_len("token_type", spec.token_types.len())?;
        check_len("scores", spec.scores.len())?;
        for (key, id) in [("bos_token_id", spec.bos), ("eos_token_id", spec.eos)] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(TokenizerError::IdOutOfRange { key, id, tokens: n });
            }
        }
        let (kind, default_add_bos) = match spec.model.as_str() {
            "gpt2" => {
                let pre = PreTokenizer::from_gguf_name(spec.pre.as_deref().or(Some("default")))
                    .ok_or_else(|| TokenizerError::UnsupportedPreTokenizer {
                        pre: spec.pre.clone().unwrap_or_default(),
                    })?;
                let bpe = bpe::Bpe::new(&spec.merges)
                    .map_err(|index| TokenizerError::BadMerge { index })?;
                (
                    Kind::Bpe {
                        bpe: Box::new(bpe),
                        pre,
                    },
                    false,
                )
            }
            "llama" => (
                Kind::Spm {
                    add_space_prefix: spec.add_space_prefix.unwrap_or(true),
                },
                true,
            ),
            other => {
                return Err(TokenizerError::UnsupportedModel {
                    model: other.to_owned(),
                })
            }
        };
        let mut types: Vec<TokenType> = if spec.token_types.is_empty() {
            vec![TokenType::Normal; n]
        } else {
            spec.token_types
                .iter()
                .map(|&t| TokenType::from_gguf(t))
                .collect()
        };
        let mut eog = Vec::new();
        for (i, text) in spec.tokens.iter().enumerate() {
            if EOG_TEXTS.contains(&text.as_str()) {
                types[i] = TokenType::Control;
                eog.push(i as TokenId);
            }
        }
        eog.extend(spec.eos.filter(|e| !eog.contains(e)));
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in spec.tokens.iter().enumerate() {
            // The first id of a duplicated text wins, as llama.cpp's token_to_id map.
            ids.entry(t.clone()).or_insert(i as TokenId);
        }
        let mut specials: Vec<TokenId> = (0..n as TokenId)
            .filter(|&i| types[i as usize].is_special() && !spec.tokens[i as usize].is_empty())
            .collect();
        specials.sort_by_key(|&i| std::cmp::Reverse(spec.tokens[i as usize].len()));
        let add_bos = spec.add_bos.unwrap_or(default_add_bos);
        let add_eos = spec.add_eos.unwrap_or(false);
        if add_bos && spec.bos.is_none() {
            return Err(TokenizerError::MissingSpecial {
                key: "tokenizer.ggml.bos_token_id",
            });
        }
        if add_eos && spec.eos.is_none() {
            return Err(TokenizerError::MissingSpecial {
                key: "tokenizer.ggml.eos_token_id",
            });
        }
        let byte_values = unicode::byte_to_char_table()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(Tokenizer {
            kind,
            tokens: spec.tokens,
            types,
            scores: spec.scores,
            ids,
            specials,
            bos: spec.bos,
            eos: spec.eos,
            eog,
            add_bos,
            add_eos,
            byte_values,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True for an empty vocabulary (never, for a constructed tokenizer).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn bos(&self) -> Option<TokenId> {
        self.bos
    }

    pub fn eos(&self) -> Option<TokenId> {
        self.eos
    }

    /// Whether generation stops at this token.
    pub fn is_eog(&self, id: TokenId) -> bool {
        self.eog.contains(&id)
    }

    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// The id of a token's exact text.
    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        self.ids.get(text).copied()
    }

    /// The text of a token as stored in the vocabulary.
    pub fn token_text(&self, id: TokenId) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Tokenize `text`. `add_special` adds BOS/EOS as the vocabulary asks;
    /// `parse_special` turns control-token text (e.g. `<|im_start|>`) into those tokens
    /// (user-defined tokens are always recognised, as in llama.cpp).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<TokenId> {
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let lookup = |s: &str| self.token_id(s);
        match &self.kind {
            Kind::Bpe { bpe, pre } => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(t) => {
                            for word in pre.split(t) {
                                bpe.encode_word(word, lookup, &mut out);
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
            Kind::Spm { add_space_prefix } => {
                let score = |id: TokenId| self.scores.get(id as usize).copied().unwrap_or(0.0);
                let byte_token = |b: u8| self.token_id(&format!("<0x{b:02X}>"));
                let mut prev_special = true;
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(t) => {
                            let prefixed;
                            let t = if *add_space_prefix && prev_special {
                                prefixed = format!(" {t}");
                                prefixed.as_str()
                            } else {
                                t
                            };
                            spm::encode(t, lookup, score, byte_token, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Split text at special tokens, longest token first (llama.cpp `tokenizer_st_partition`).
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut fragments = Vec::new();
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text(text));
        for &id in &self.specials {
            if !parse_special && self.types[id as usize].is_control_like() {
                continue;
            }
            let needle = self.tokens[id as usize].as_str();
            fragments = fragments
                .into_iter()
                .flat_map(|f| match f {
                    Fragment::Text(t) if t.contains(needle) => {
                        let mut parts = Vec::new();
                        let mut rest = t;
                        while let Some(at) = rest.find(needle) {
                            if at > 0 {
                                parts.push(Fragment::Text(&rest[..at]));
                            }
                            parts.push(Fragment::Token(id));
                            rest = &rest[at + needle.len()..];
                        }
                        if !rest.is_empty() {
                            parts.push(Fragment::Text(rest));
                        }
                        parts
                    }
                    other => vec![other],
                })
                .collect();
        }
        fragments
    }

    /// The bytes one token stands for (llama.cpp `token_to_piece` with no lstrip): control
    /// and unknown tokens are empty unless `special`.
    pub fn token_bytes(&self, id: TokenId, special: bool) -> Vec<u8> {
        let (Some(text), Some(&ty)) = (self.tokens.get(id as usize), self.types.get(id as usize))
        else {
            return Vec::new();
        };
        match ty {
            TokenType::Control | TokenType::Unknown if !special => Vec::new(),
            TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
                text.as_bytes().to_vec()
            }
            TokenType::Normal => match self.kind {
                Kind::Spm { .. } => text.replace(spm::SPACE, " ").into_bytes(),
                Kind::Bpe { .. } => self.decode_byte_level(text),
            },
            TokenType::Byte => parse_byte_token(text).map(|b| vec![b]).unwrap_or_default(),
            TokenType::Unused | TokenType::Undefined => Vec::new(),
        }
    }

    /// The bytes of a token sequence, the concatenation of [`Tokenizer::token_bytes`].
    pub fn decode(&self, ids: &[TokenId], special: bool) -> Vec<u8> {
        ids.iter()
            .flat_map(|&id| self.token_bytes(id, special))
            .collect()
    }

    /// Map GPT-2 byte-level characters back to bytes; a character outside the table is
    /// written as `[UNK_BYTE_0x..]` of its UTF-8 bytes, as llama.cpp's `llama_decode_text`.
    fn decode_byte_level(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.byte_values.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    out.extend_from_slice(b"[UNK_BYTE_0x");
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.extend_from_slice(format!("{b:02x}").as_bytes());
                    }
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    out.push(b']');
                }
            }
        }
        out
    }
}

/// The byte of a `<0xXX>` token.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_bpe() -> Tokenizer {
        let mut tokens: Vec<String> = unicode::byte_to_char_table()
            .iter()
            .map(|c| c.to_string())
            .collect();
        tokens.extend(["ĠH", "el", "lo", "Ġw", "or", "Ġwor", "ld"].map(String::from));
        tokens.push("<|end|>".into());
        let mut types = vec![1; tokens.len()];
        *types.last_mut().unwrap() = 3;
        Tokenizer::new(VocabSpec {
            model: "gpt2".into(),
            pre: Some("qwen2".into()),
            tokens,
            token_types: types,
            merges: ["Ġ H", "e l", "l o", "Ġ w", "o r", "Ġw or", "l d"]
                .map(String::from)
                .to_vec(),
            eos: Some(263),
            ..VocabSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn bpe_merges_by_rank_and_round_trips() {
        let t = tiny_bpe();
        let ids = t.encode("Hello world<|end|>", false, true);
        let texts: Vec<&str> = ids.iter().map(|&i| t.token_text(i).unwrap()).collect();
        assert_eq!(texts, ["H", "el", "lo", "Ġwor", "ld", "<|end|>"]);
        assert_eq!(t.decode(&ids, false), b"Hello world");
        assert_eq!(t.decode(&ids, true), b"Hello world<|end|>");
        // Without special parsing the control token's text is ordinary text.
        assert!(t.encode("<|end|>", false, false).len() > 1);
    }

    #[test]
    fn inconsistent_vocabularies_are_refused() {
        let spec = VocabSpec {
            model: "gpt2".into(),
            tokens: vec!["a".into()],
            token_types: vec![1, 1],
            ..VocabSpec::default()
        };
        assert_eq!(
            Tokenizer::new(spec).unwrap_err().to_string(),
            "tokenizer.ggml.token_type has 2 entries but there are 1 tokens"
        );
        let spec = VocabSpec {
            model: "gpt2".into(),
            pre: Some("mystery".into()),
            tokens: vec!["a".into()],
            ..VocabSpec::default()
        };
        assert!(matches!(
            Tokenizer::new(spec),
            Err(TokenizerError::UnsupportedPreTokenizer { .. })
        ));
        let spec = VocabSpec {
            model: "bert".into(),
            tokens: vec!["a".into()],
            ..VocabSpec::default()
        };
        assert!(matches!(
            Tokenizer::new(spec),
            Err(TokenizerError::UnsupportedModel { .. })
        ));
    }
}
