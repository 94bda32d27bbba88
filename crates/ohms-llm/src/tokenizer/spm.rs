//! SentencePiece-style tokenization (GGUF model `llama`): spaces become `▁`, adjacent pieces
//! merge greedily by vocabulary score, and characters outside the vocabulary fall back to
//! `<0xNN>` byte tokens.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::TokenType;

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

        // Start from single characters; repeatedly merge the adjacent pair that forms the
        // highest-scoring vocabulary entry (leftmost on ties), as SentencePiece's BPE does.
        // Pair scores are cached so each merge looks up only the two pairs it changes.
        let score = |left: &str, right: &str| -> Option<f32> {
            let id = *ids.get(joined(&normalized, left, right))?;
            Some(self.scores[id as usize])
        };
        let mut pieces: Vec<&str> = split_chars(&normalized);
        let mut pair_scores: Vec<Option<f32>> =
            pieces.windows(2).map(|w| score(w[0], w[1])).collect();
        loop {
            let mut best: Option<(usize, f32)> = None;
            for (i, s) in pair_scores.iter().enumerate() {
                if let Some(s) = *s
                    && best.is_none_or(|(_, b)| s > b)
                {
                    best = Some((i, s));
                }
            }
            let Some((i, _)) = best else { break };
            pieces[i] = joined(&normalized, pieces[i], pieces[i + 1]);
            pieces.remove(i + 1);
            pair_scores.remove(i);
            if i + 1 < pieces.len() {
                pair_scores[i] = score(pieces[i], pieces[i + 1]);
            }
            if i > 0 {
                pair_scores[i - 1] = score(pieces[i - 1], pieces[i]);
            }
        }

        for piece in pieces {
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

fn split_chars(s: &str) -> Vec<&str> {
    s.char_indices()
        .map(|(i, c)| &s[i..i + c.len_utf8()])
        .collect()
}

/// Two adjacent sub-slices of `whole` as one slice.
fn joined<'a>(whole: &'a str, left: &'a str, right: &'a str) -> &'a str {
    let start = left.as_ptr() as usize - whole.as_ptr() as usize;
    &whole[start..start + left.len() + right.len()]
}
