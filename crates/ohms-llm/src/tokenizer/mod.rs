//! Tokenizers stored in GGUF metadata: SentencePiece-style (`llama`) and GPT-2 byte-level BPE
//! (`gpt2`), with special tokens and ChatML chat prompts.

mod bpe;
mod chat;
mod merge;
mod spm;

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use novaq::read::Metadata;

pub use chat::ChatMessage;

/// ggml's token types (`tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    /// Markers such as `<s>` or `<|im_start|>`: never produced from plain text.
    Control,
    UserDefined,
    Unused,
    /// `<0xNN>`: a raw byte, SentencePiece's fallback for text outside the vocabulary.
    Byte,
}

impl TokenType {
    fn from_ggml(t: i64) -> Self {
        match t {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

/// The tokenizer metadata is missing or inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerError {
    Missing(&'static str),
    UnsupportedModel(String),
    Invalid(String),
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(key) => write!(f, "tokenizer metadata {key} is missing"),
            Self::UnsupportedModel(m) => write!(f, "unsupported tokenizer model {m:?}"),
            Self::Invalid(msg) => write!(f, "invalid tokenizer metadata: {msg}"),
        }
    }
}

impl core::error::Error for TokenizerError {}

enum Algorithm {
    SentencePiece(spm::SentencePiece),
    BytePairs(bpe::BytePairs),
}

/// A vocabulary and the algorithm that maps text onto it.
pub struct Tokenizer {
    tokens: Vec<String>,
    types: Vec<TokenType>,
    ids: BTreeMap<String, u32>,
    algorithm: Algorithm,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    /// Whether prompts start with BOS (`tokenizer.ggml.add_bos_token`, default true for `llama`).
    pub add_bos: bool,
    chat: Option<chat::ChatFormat>,
}

impl Tokenizer {
    /// Builds the tokenizer described by GGUF `tokenizer.ggml.*` metadata.
    pub fn from_gguf(metadata: &Metadata) -> Result<Self, TokenizerError> {
        let model = metadata
            .get_str("tokenizer.ggml.model")
            .ok_or(TokenizerError::Missing("tokenizer.ggml.model"))?;
        let tokens: Vec<String> = metadata
            .get_str_array("tokenizer.ggml.tokens")
            .ok_or(TokenizerError::Missing("tokenizer.ggml.tokens"))?
            .into_iter()
            .map(str::to_string)
            .collect();
        let n = tokens.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(TokenizerError::Invalid("empty token list".into()));
        }
        let types: Vec<TokenType> = match metadata.get_i64_array("tokenizer.ggml.token_type") {
            Some(t) if t.len() == n => t.into_iter().map(TokenType::from_ggml).collect(),
            Some(_) => return Err(TokenizerError::Invalid("token_type length".into())),
            None => alloc::vec![TokenType::Normal; n],
        };
        let ids: BTreeMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let token_id = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
            match metadata.get_u64(key) {
                None => Ok(None),
                // Writers mark "no such token" with -1 stored as u32::MAX.
                Some(id) if id == u64::from(u32::MAX) => Ok(None),
                Some(id) if (id as usize) < n => Ok(Some(id as u32)),
                Some(id) => Err(TokenizerError::Invalid(alloc::format!("{key} = {id}"))),
            }
        };
        let algorithm = match model {
            "llama" => {
                let scores = match metadata.get_f32_array("tokenizer.ggml.scores") {
                    Some(s) if s.len() == n => s,
                    Some(_) => return Err(TokenizerError::Invalid("scores length".into())),
                    None => return Err(TokenizerError::Missing("tokenizer.ggml.scores")),
                };
                let add_space_prefix = metadata
                    .get_bool("tokenizer.ggml.add_space_prefix")
                    .unwrap_or(true);
                Algorithm::SentencePiece(spm::SentencePiece::new(
                    scores,
                    &tokens,
                    &types,
                    add_space_prefix,
                ))
            }
            "gpt2" => {
                let merges = metadata
                    .get_str_array("tokenizer.ggml.merges")
                    .ok_or(TokenizerError::Missing("tokenizer.ggml.merges"))?;
                let pre_name = metadata.get_str("tokenizer.ggml.pre");
                let pre_tokenizer =
                    bpe::PreTokenizer::from_gguf_name(pre_name).ok_or_else(|| {
                        TokenizerError::UnsupportedModel(alloc::format!(
                            "gpt2 with pre-tokenizer {:?}",
                            pre_name.unwrap_or_default()
                        ))
                    })?;
                Algorithm::BytePairs(
                    bpe::BytePairs::new(pre_tokenizer, &merges).map_err(TokenizerError::Invalid)?,
                )
            }
            other => return Err(TokenizerError::UnsupportedModel(other.into())),
        };
        let add_bos = metadata
            .get_bool("tokenizer.ggml.add_bos_token")
            .unwrap_or(model == "llama");
        Ok(Self {
            bos: token_id("tokenizer.ggml.bos_token_id")?,
            eos: token_id("tokenizer.ggml.eos_token_id")?,
            unk: token_id("tokenizer.ggml.unknown_token_id")?,
            pad: token_id("tokenizer.ggml.padding_token_id")?,
            add_bos,
            chat: metadata
                .get_str("tokenizer.chat_template")
                .and_then(chat::ChatFormat::from_template),
            tokens,
            types,
            ids,
            algorithm,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The vocabulary entry of `id`, as stored (e.g. `▁the`, `Ġthe`, `<0x0A>`).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    /// The id of a vocabulary entry, e.g. of a special token `<|im_end|>`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Encodes plain text. Special-token markers inside `text` are treated as text, so user input
    /// cannot forge control tokens. Prepends BOS when the model expects it.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        if self.add_bos {
            out.extend(self.bos);
        }
        self.encode_fragment(text, true, &mut out);
        out
    }

    /// Encodes text without BOS. `at_start` says whether it begins the text (SentencePiece adds
    /// its space prefix only there).
    pub(crate) fn encode_fragment(&self, text: &str, at_start: bool, out: &mut Vec<u32>) {
        match &self.algorithm {
            Algorithm::SentencePiece(spm) => spm.encode(text, at_start, &self.ids, self.unk, out),
            Algorithm::BytePairs(bpe) => bpe.encode(text, &self.ids, self.unk, out),
        }
    }

    /// The bytes token `id` stands for when decoding; empty for control tokens. Byte tokens may
    /// be part of a multi-byte character, so streaming output should buffer bytes until they
    /// form valid UTF-8.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let (Some(token), Some(kind)) = (self.token(id), self.token_type(id)) else {
            return Vec::new();
        };
        match kind {
            TokenType::Control | TokenType::Unused => Vec::new(),
            _ => match &self.algorithm {
                Algorithm::SentencePiece(_) => spm::piece_bytes(token, kind),
                Algorithm::BytePairs(_) => bpe::piece_bytes(token),
            },
        }
    }

    /// Decodes tokens to text, leaving out control tokens. A sequence that starts with BOS
    /// starts a text: the space SentencePiece prepended to it is removed, so
    /// `decode(encode(s)) == s`. A continuation (no BOS) keeps its leading space.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id)).collect();
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        let starts_text = ids.first().is_some_and(|&id| Some(id) == self.bos);
        if let Algorithm::SentencePiece(spm) = &self.algorithm
            && spm.add_space_prefix
            && starts_text
            && text.starts_with(' ')
        {
            text.remove(0);
        }
        text
    }

    /// Encodes a conversation with the model's chat template (ChatML, as SmolLM2-Instruct uses),
    /// ending with the assistant's turn opened so generation produces the reply. `None` when the
    /// model has no chat template this tokenizer understands.
    pub fn encode_chat(&self, messages: &[ChatMessage<'_>]) -> Option<Vec<u32>> {
        let chat = self.chat.as_ref()?;
        chat.encode(self, messages)
    }

    /// The token that ends an assistant turn (`<|im_end|>` for ChatML), else EOS.
    pub fn end_of_turn(&self) -> Option<u32> {
        self.chat
            .as_ref()
            .and_then(|c| self.token_id(c.end_marker()))
            .or(self.eos)
    }
}
