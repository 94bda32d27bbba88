//! SentencePiece-style tokenization (GGUF model `llama`): spaces become `▁`, adjacent pieces
//! merge greedily by vocabulary score, and characters outside the vocabulary fall back to
//! `<0xNN>` byte tokens.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::TokenType;
use super::merge::{merge_pieces, offset};

const SPACE: char = '▁';

pub(super) struct SentencePiece {
    scores: Vec<f32>,
    /// Token id of each byte's `<0xNN>` token.
    byte_tokens: Box<[Option<u32>; 256]>,
    pub(super) add_space_prefix: bool,
}

impl SentencePiece {
    pub(super) fn new(
        scores: Vec<f32>,
        tokens: &[String],
        types: &[TokenType],
        add_space_prefix: bool,
    ) -> Self {
        let mut byte_tokens = Box::new([None; 256]);
        for (id, (token, &kind)) in tokens.iter().zip(types).enumerate() {
            if kind == TokenType::Byte
                && let Some(b) = parse_byte_token(token)
            {
                byte_tokens[b as usize] = Some(id as u32);
            }
        }
        Self {
            scores,
            byte_tokens,
            add_space_prefix,
        }
    }

    pub(super) fn encode(
        &self,
        text: &str,
        at_start: bool,
        ids: &BTreeMap<String, u32>,
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) {
        if text.is_empty() {
            return;
        }
        let mut normalized = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && at_start {
            normalized.push(SPACE);
        }
        normalized.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));

        // SentencePiece merges the pair whose concatenation scores highest in the vocabulary.
        let score = |left: &str, right: &str| {
            let merged = &normalized[offset(&normalized, left)..][..left.len() + right.len()];
            ids.get(merged)
                .map(|&id| f64::from(self.scores[id as usize]))
        };
        for piece in merge_pieces(&normalized, score) {
            match ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        out.extend(self.byte_tokens[b as usize].or(unk));
                    }
                }
            }
        }
    }
}

/// The bytes a SentencePiece token decodes to.
pub(super) fn piece_bytes(token: &str, kind: TokenType) -> Vec<u8> {
    if kind == TokenType::Byte
        && let Some(b) = parse_byte_token(token)
    {
        return alloc::vec![b];
    }
    token.replace(SPACE, " ").into_bytes()
}

/// `<0xNN>` → NN.
fn parse_byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
