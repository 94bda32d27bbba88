//! Tokenizers stored in GGUF metadata or a NOVAQ manifest: SentencePiece-style (`llama`) and
//! GPT-2 byte-level BPE (`gpt2`), with special tokens and ChatML chat prompts.

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
pub use novaq::format::TokenizerSpec;

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

/// The tokenizer GGUF `tokenizer.ggml.*` metadata describes, as a NOVAQ manifest records it.
/// Only reads: [`Tokenizer::from_spec`] checks that the description is usable.
pub fn spec_from_gguf(metadata: &Metadata) -> Result<TokenizerSpec, TokenizerError> {
    let model = metadata
        .get_str("tokenizer.ggml.model")
        .ok_or(TokenizerError::Missing("tokenizer.ggml.model"))?;
    let strings = |key: &str| -> Vec<String> {
        metadata
            .get_str_array(key)
            .unwrap_or_default()
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let tokens = metadata
        .get_str_array("tokenizer.ggml.tokens")
        .ok_or(TokenizerError::Missing("tokenizer.ggml.tokens"))?
        .into_iter()
        .map(str::to_string)
        .collect();
    let token_id = |key: &'static str| -> Result<Option<u32>, TokenizerError> {
        match metadata.get_u64(key) {
            None => Ok(None),
            // Writers mark "no such token" with -1 stored as u32::MAX.
            Some(id) if id == u64::from(u32::MAX) => Ok(None),
            Some(id) => u32::try_from(id)
                .map(Some)
                .map_err(|_| TokenizerError::Invalid(alloc::format!("{key} = {id}"))),
        }
    };
    Ok(TokenizerSpec {
        model: model.to_string(),
        tokens,
        scores: metadata
            .get_f32_array("tokenizer.ggml.scores")
            .unwrap_or_default(),
        // Values outside ggml's small range all mean a normal token, as in `TokenType`.
        token_types: metadata
            .get_i64_array("tokenizer.ggml.token_type")
            .unwrap_or_default()
            .into_iter()
            .map(|t| i32::try_from(t).unwrap_or(0))
            .collect(),
        merges: strings("tokenizer.ggml.merges"),
        bos: token_id("tokenizer.ggml.bos_token_id")?,
        eos: token_id("tokenizer.ggml.eos_token_id")?,
        unknown: token_id("tokenizer.ggml.unknown_token_id")?,
        padding: token_id("tokenizer.ggml.padding_token_id")?,
        add_bos: metadata
            .get_bool("tokenizer.ggml.add_bos_token")
            .unwrap_or(model == "llama"),
        chat_template: metadata
            .get_str("tokenizer.chat_template")
            .map(str::to_string),
        pre_tokenizer: metadata.get_str("tokenizer.ggml.pre").map(str::to_string),
        add_space_prefix: metadata.get_bool("tokenizer.ggml.add_space_prefix"),
    })
}

impl Tokenizer {
    /// Builds the tokenizer described by GGUF `tokenizer.ggml.*` metadata.
    pub fn from_gguf(metadata: &Metadata) -> Result<Self, TokenizerError> {
        Self::build(spec_from_gguf(metadata)?)
    }

    /// Builds the tokenizer a NOVAQ manifest records; the same one [`Tokenizer::from_gguf`]
    /// builds from the metadata the spec was taken from.
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Self, TokenizerError> {
        Self::build(spec.clone())
    }

    /// Takes the spec by value so the vocabulary is not copied again.
    fn build(spec: TokenizerSpec) -> Result<Self, TokenizerError> {
        let TokenizerSpec {
            model,
            tokens,
            scores,
            token_types,
            merges,
            bos,
            eos,
            unknown,
            padding,
            add_bos,
            chat_template,
            pre_tokenizer,
            add_space_prefix,
        } = spec;
        let n = tokens.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(TokenizerError::Invalid("empty token list".into()));
        }
        let types: Vec<TokenType> = match token_types.len() {
            0 => alloc::vec![TokenType::Normal; n],
            len if len == n => token_types
                .into_iter()
                .map(|t| TokenType::from_ggml(t.into()))
                .collect(),
            _ => return Err(TokenizerError::Invalid("token_type length".into())),
        };
        let ids: BTreeMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let token_id = |name: &str, id: Option<u32>| -> Result<Option<u32>, TokenizerError> {
            match id {
                Some(id) if id as usize >= n => Err(TokenizerError::Invalid(alloc::format!(
                    "{name} token {id} is outside the vocabulary of {n}"
                ))),
                id => Ok(id),
            }
        };
        let algorithm = match model.as_str() {
            "llama" => {
                if scores.is_empty() {
                    return Err(TokenizerError::Missing("tokenizer.ggml.scores"));
                }
                if scores.len() != n {
                    return Err(TokenizerError::Invalid("scores length".into()));
                }
                Algorithm::SentencePiece(spm::SentencePiece::new(
                    scores,
                    &tokens,
                    &types,
                    add_space_prefix.unwrap_or(true),
                ))
            }
            "gpt2" => {
                if merges.is_empty() {
                    return Err(TokenizerError::Missing("tokenizer.ggml.merges"));
                }
                let pre_name = pre_tokenizer.as_deref();
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
            _ => return Err(TokenizerError::UnsupportedModel(model)),
        };
        Ok(Self {
            bos: token_id("bos", bos)?,
            eos: token_id("eos", eos)?,
            unk: token_id("unknown", unknown)?,
            pad: token_id("padding", padding)?,
            add_bos,
            chat: chat_template
                .as_deref()
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

    /// An instruction as the model reads it: a chat (system and user turns) when the model has
    /// a chat template, the plain prompt otherwise.
    pub fn encode_instruction(&self, system: &str, prompt: &str) -> Vec<u32> {
        let chat = [
            ChatMessage {
                role: "system",
                content: system,
            },
            ChatMessage {
                role: "user",
                content: prompt,
            },
        ];
        self.encode_chat(&chat)
            .unwrap_or_else(|| self.encode(prompt))
    }

    /// Tokens that end a reply: end of sequence and end of turn.
    pub fn stop_tokens(&self) -> Vec<u32> {
        self.eos.into_iter().chain(self.end_of_turn()).collect()
    }

    /// The token that ends an assistant turn (`<|im_end|>` for ChatML), else EOS.
    pub fn end_of_turn(&self) -> Option<u32> {
        self.chat
            .as_ref()
            .and_then(|c| self.token_id(c.end_marker()))
            .or(self.eos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use novaq::read::MetadataValue;

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}\
                          <|im_end|>\n{% endfor %}";

    /// A byte-level BPE vocabulary: printable ASCII, space (`Ġ`) and newline (`Ċ`), a few
    /// merges, and ChatML markers.
    fn gpt2_metadata(pre: Option<&str>) -> Metadata {
        let mut tokens: Vec<String> = ('!'..='~').map(String::from).collect();
        let merges = ["h e", "l l", "he ll", "Ġ w", "2 0"];
        tokens.extend(["Ġ", "Ċ", "he", "ll", "hell", "Ġw", "20"].map(String::from));
        tokens.extend(["<|im_start|>", "<|im_end|>"].map(String::from));
        let n = tokens.len();
        let strings = |items: Vec<String>| {
            MetadataValue::Array(items.into_iter().map(MetadataValue::String).collect())
        };
        let types = (0..n).map(|i| MetadataValue::I32(if i + 2 >= n { 3 } else { 1 }));
        let mut m: Metadata = [
            ("tokenizer.ggml.model", MetadataValue::String("gpt2".into())),
            ("tokenizer.ggml.tokens", strings(tokens)),
            (
                "tokenizer.ggml.merges",
                strings(merges.map(String::from).to_vec()),
            ),
            (
                "tokenizer.ggml.token_type",
                MetadataValue::Array(types.collect()),
            ),
            (
                "tokenizer.ggml.eos_token_id",
                MetadataValue::U32(n as u32 - 1),
            ),
            (
                "tokenizer.chat_template",
                MetadataValue::String(CHATML.into()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect();
        if let Some(pre) = pre {
            m.insert(
                "tokenizer.ggml.pre".into(),
                MetadataValue::String(pre.into()),
            );
        }
        m
    }

    fn behaviour(t: &Tokenizer) -> Vec<(Vec<u32>, String)> {
        let chat = [ChatMessage {
            role: "user",
            content: "hello world 2024",
        }];
        let mut out: Vec<(Vec<u32>, String)> = ["hello world", "2024!\nhell", ""]
            .iter()
            .map(|text| {
                let ids = t.encode(text);
                let decoded = t.decode(&ids);
                (ids, decoded)
            })
            .collect();
        let chat_ids = t.encode_chat(&chat).expect("ChatML");
        out.push((chat_ids, String::new()));
        out.push((t.end_of_turn().into_iter().collect(), String::new()));
        out
    }

    #[test]
    fn a_spec_builds_the_tokenizer_its_metadata_builds() {
        for pre in [None, Some("smollm")] {
            let m = gpt2_metadata(pre);
            let spec = spec_from_gguf(&m).unwrap();
            assert_eq!(spec.pre_tokenizer.as_deref(), pre);
            let from_gguf = Tokenizer::from_gguf(&m).unwrap();
            let from_spec = Tokenizer::from_spec(&spec).unwrap();
            assert_eq!(behaviour(&from_spec), behaviour(&from_gguf));
            let im_end = from_spec.token_id("<|im_end|>");
            assert_eq!(from_spec.end_of_turn(), im_end);
        }
        // The pre-tokenizer is part of the spec: single digits do not merge "2 0".
        let digits = |pre| {
            let spec = spec_from_gguf(&gpt2_metadata(pre)).unwrap();
            let t = Tokenizer::from_spec(&spec).unwrap();
            t.encode("2024")
        };
        assert_eq!(digits(None).len(), 3);
        assert_eq!(digits(Some("smollm")).len(), 4);
    }

    #[test]
    fn unusable_specs_are_rejected() {
        let spec = spec_from_gguf(&gpt2_metadata(None)).unwrap();
        let n = spec.tokens.len() as u32;
        let reject = |spec: TokenizerSpec| Tokenizer::from_spec(&spec).err().unwrap();
        assert!(matches!(
            reject(TokenizerSpec {
                bos: Some(n),
                ..spec.clone()
            }),
            TokenizerError::Invalid(_)
        ));
        assert!(matches!(
            reject(TokenizerSpec {
                token_types: vec![1; 3],
                ..spec.clone()
            }),
            TokenizerError::Invalid(_)
        ));
        assert_eq!(
            reject(TokenizerSpec {
                merges: Vec::new(),
                ..spec.clone()
            }),
            TokenizerError::Missing("tokenizer.ggml.merges")
        );
        assert!(matches!(
            reject(TokenizerSpec {
                pre_tokenizer: Some("qwen2".into()),
                ..spec.clone()
            }),
            TokenizerError::UnsupportedModel(_)
        ));
        assert_eq!(
            reject(TokenizerSpec {
                model: "llama".into(),
                ..spec.clone()
            }),
            TokenizerError::Missing("tokenizer.ggml.scores")
        );
        assert_eq!(
            reject(TokenizerSpec {
                model: "bert".into(),
                ..spec.clone()
            }),
            TokenizerError::UnsupportedModel("bert".into())
        );
        assert!(matches!(
            reject(TokenizerSpec {
                tokens: Vec::new(),
                ..spec
            }),
            TokenizerError::Invalid(_)
        ));
        // "No such token" is -1 stored as u32::MAX; other ids must fit u32.
        let mut m = gpt2_metadata(None);
        m.insert(
            "tokenizer.ggml.bos_token_id".into(),
            MetadataValue::U32(u32::MAX),
        );
        assert_eq!(spec_from_gguf(&m).unwrap().bos, None);
        m.insert(
            "tokenizer.ggml.bos_token_id".into(),
            MetadataValue::U64(1 << 40),
        );
        assert!(matches!(
            spec_from_gguf(&m),
            Err(TokenizerError::Invalid(_))
        ));
        m.insert("tokenizer.ggml.bos_token_id".into(), MetadataValue::U32(n));
        assert!(matches!(
            Tokenizer::from_gguf(&m),
            Err(TokenizerError::Invalid(_))
        ));
    }
}
