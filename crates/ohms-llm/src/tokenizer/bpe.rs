//! GPT-2-style byte-level BPE (GGUF model `gpt2`): text is split into words by the GPT-2
//! pre-tokenizer, each word's bytes are spelled with printable stand-in characters, then merged
//! pair by pair in the order of the merge list.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::merge::merge_pieces;

/// How text is split into words before merging, after GGUF's `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PreTokenizer {
    /// GPT-2's pattern.
    Gpt2,
    /// Every digit a word of its own, then GPT-2's pattern (SmolLM, StarCoder).
    Gpt2SingleDigits,
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` name; `None` for names
    /// whose patterns this crate does not implement.
    pub(super) fn from_gguf_name(name: Option<&str>) -> Option<Self> {
        match name {
            None | Some("default" | "gpt2" | "mpt" | "olmo" | "jais") => Some(Self::Gpt2),
            Some(
                "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
                | "minerva",
            ) => Some(Self::Gpt2SingleDigits),
            Some(_) => None,
        }
    }
}

pub(super) struct BytePairs {
    pre_tokenizer: PreTokenizer,
    /// `"left right"` → rank (lower merges first). Byte-level symbols never contain a space, so
    /// one space separates the two halves unambiguously.
    ranks: BTreeMap<String, u32>,
}

impl BytePairs {
    pub(super) fn new(pre_tokenizer: PreTokenizer, merges: &[String]) -> Result<Self, String> {
        let mut ranks = BTreeMap::new();
        for (rank, merge) in merges.iter().enumerate() {
            if merge.split(' ').count() != 2 {
                return Err(alloc::format!("merge {rank} {merge:?} is not two symbols"));
            }
            ranks.entry(merge.clone()).or_insert(rank as u32);
        }
        Ok(Self {
            pre_tokenizer,
            ranks,
        })
    }

    pub(super) fn encode(
        &self,
        text: &str,
        ids: &BTreeMap<String, u32>,
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) {
        let mut key = String::new();
        for word in pre_tokenize(self.pre_tokenizer, text) {
            let spelled: String = word.bytes().map(byte_char).collect();
            // Lower ranks merge first: negate them into scores.
            let score = |left: &str, right: &str| {
                key.clear();
                key.push_str(left);
                key.push(' ');
                key.push_str(right);
                self.ranks.get(&key).map(|&rank| -f64::from(rank))
            };
            let symbols = merge_pieces(&spelled, score);
            for symbol in symbols {
                match ids.get(symbol) {
                    Some(&id) => out.push(id),
                    // A complete byte-level vocabulary has every single byte; a symbol can only
                    // be missing from a damaged one.
                    None => out.extend(unk),
                }
            }
        }
    }
}

/// The bytes a byte-level token stands for.
pub(super) fn piece_bytes(token: &str) -> Vec<u8> {
    token
        .chars()
        .map(|c| char_byte(c).unwrap_or(b'?'))
        .collect()
}

/// GPT-2's printable spelling of a byte: printable Latin-1 bytes stand for themselves, the rest
/// (controls, space, …) are shifted to U+0100 onwards in byte order.
fn byte_char(b: u8) -> char {
    if is_self_spelled(b) {
        return char::from(b);
    }
    let shifted = (0..b).filter(|&x| !is_self_spelled(x)).count() as u32;
    char::from_u32(256 + shifted).expect("U+0100..U+0144 are valid chars")
}

fn char_byte(c: char) -> Option<u8> {
    let code = c as u32;
    if code < 256 && is_self_spelled(code as u8) {
        return Some(code as u8);
    }
    let shifted = code.checked_sub(256)? as usize;
    (0..=255u8).filter(|&x| !is_self_spelled(x)).nth(shifted)
}

fn is_self_spelled(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff)
}

/// Splits text into the words BPE runs on: GPT-2's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, after
/// isolating every digit when the pre-tokenizer says so.
pub(super) fn pre_tokenize(pre_tokenizer: PreTokenizer, text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    if pre_tokenizer == PreTokenizer::Gpt2 {
        gpt2_words(text, &mut words);
        return words;
    }
    let mut segment_start = 0;
    for (i, c) in text.char_indices() {
        if c.is_numeric() {
            gpt2_words(&text[segment_start..i], &mut words);
            words.push(&text[i..i + c.len_utf8()]);
            segment_start = i + c.len_utf8();
        }
    }
    gpt2_words(&text[segment_start..], &mut words);
    words
}

fn gpt2_words<'a>(text: &'a str, words: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |k: usize| chars.get(k).map_or(text.len(), |&(i, _)| i);
    let mut k = 0;
    while k < chars.len() {
        let start = chars[k].0;
        let rest = &text[start..];
        if let Some(len) = contraction(rest) {
            words.push(&rest[..len]);
            k += len; // contractions are ASCII: one char per byte
            continue;
        }
        let c = chars[k].1;
        let next = chars.get(k + 1).map(|&(_, c)| c);
        let word_start = if c == ' ' && next.is_some_and(|n| !n.is_whitespace()) {
            k + 1
        } else {
            k
        };
        let first = chars.get(word_start).map(|&(_, c)| c);
        let class = match first {
            Some(f) if !f.is_whitespace() => Some(class_of(f)),
            _ => None,
        };
        let stop = match class {
            Some(class) => {
                let mut j = word_start + 1;
                while j < chars.len() && class_of(chars[j].1) == class {
                    j += 1;
                }
                j
            }
            None => {
                // A run of whitespace; if text follows, its last character is left to prefix the
                // next word (`\s+(?!\S)`), unless the run is a single character.
                let mut j = k + 1;
                while j < chars.len() && chars[j].1.is_whitespace() {
                    j += 1;
                }
                if j < chars.len() && j - k > 1 {
                    j - 1
                } else {
                    j
                }
            }
        };
        words.push(&text[start..end_of(stop)]);
        k = stop;
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum CharClass {
    Letter,
    Number,
    Other,
    Space,
}

fn class_of(c: char) -> CharClass {
    if c.is_alphabetic() {
        CharClass::Letter
    } else if c.is_numeric() {
        CharClass::Number
    } else if c.is_whitespace() {
        CharClass::Space
    } else {
        CharClass::Other
    }
}

/// Length of an English contraction suffix at the start of `s`.
fn contraction(s: &str) -> Option<usize> {
    ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
        .iter()
        .find(|c| s.starts_with(*c))
        .map(|c| c.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_spelling_is_a_bijection() {
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(b'\n'), 'Ċ');
        assert_eq!(byte_char(b'a'), 'a');
        for b in 0..=255u8 {
            assert_eq!(char_byte(byte_char(b)), Some(b));
        }
    }

    #[test]
    fn pre_tokenizer_follows_the_gpt2_pattern_with_single_digits() {
        let split = |text| pre_tokenize(PreTokenizer::Gpt2SingleDigits, text);
        assert_eq!(
            split("Hello world, it's 2024!\n\n  ok"),
            [
                "Hello", " world", ",", " it", "'s", " ", "2", "0", "2", "4", "!", "\n\n ", " ok"
            ]
        );
        assert_eq!(split("a  b "), ["a", " ", " b", " "]);
        assert_eq!(
            pre_tokenize(PreTokenizer::Gpt2, "in 2024, x1"),
            ["in", " 2024", ",", " x", "1"]
        );
    }
}
