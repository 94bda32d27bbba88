//! Byte-pair merging shared by both tokenizers: SentencePiece ranks a pair by the score of the
//! merged piece, GPT-2 BPE by the position of the pair in its merge list.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// Byte offset of `part`, a sub-slice of `whole`, inside `whole`.
pub(super) fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// A piece of the text being merged: a byte range, linked to its neighbours.
struct Symbol {
    start: usize,
    /// Zero once merged into its left neighbour.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Two adjacent symbols whose concatenation is in the vocabulary.
struct Candidate {
    score: f64,
    left: usize,
    right: usize,
    /// Byte length of the concatenation when queued; a merge that changed either side makes
    /// the entry stale.
    len: usize,
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
    /// Highest score first, leftmost on ties.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

/// Byte-pair merging: starting from single characters, repeatedly merges the adjacent pair with
/// the highest `score(left, right)` (leftmost on ties) until no pair has a score. A priority
/// queue of candidate pairs keeps this O(n log n) in the text length.
pub(super) fn merge_pieces(
    text: &str,
    mut score: impl FnMut(&str, &str) -> Option<f64>,
) -> Vec<&str> {
    let mut symbols: Vec<Symbol> = text
        .char_indices()
        .enumerate()
        .map(|(i, (start, c))| Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: Some(i + 1),
        })
        .collect();
    if let Some(last) = symbols.last_mut() {
        last.next = None;
    }
    let mut queue = BinaryHeap::new();
    let mut propose = |queue: &mut BinaryHeap<Candidate>, symbols: &[Symbol], left: usize| {
        let Some(right) = symbols[left].next else {
            return;
        };
        let (l, r) = (&symbols[left], &symbols[right]);
        let len = l.len + r.len;
        if let Some(score) = score(&text[l.start..][..l.len], &text[r.start..][..r.len]) {
            queue.push(Candidate {
                score,
                left,
                right,
                len,
            });
        }
    };
    for left in 0..symbols.len() {
        propose(&mut queue, &symbols, left);
    }
    while let Some(c) = queue.pop() {
        let (l, r) = (&symbols[c.left], &symbols[c.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != c.len {
            continue;
        }
        let next = r.next;
        symbols[c.left].len = c.len;
        symbols[c.left].next = next;
        symbols[c.right].len = 0;
        if let Some(n) = next {
            symbols[n].prev = Some(c.left);
        }
        if let Some(p) = symbols[c.left].prev {
            propose(&mut queue, &symbols, p);
        }
        propose(&mut queue, &symbols, c.left);
    }
    let mut pieces = Vec::new();
    let mut at = (!symbols.is_empty()).then_some(0);
    while let Some(i) = at {
        let s = &symbols[i];
        pieces.push(&text[s.start..s.start + s.len]);
        at = s.next;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_best_scoring_pairs_first_and_leftmost_on_ties() {
        let vocab = [("ab", 1.0), ("bc", 2.0), ("aa", 0.0), ("xbc", -1.0)];
        let score = |l: &str, r: &str| {
            let merged = [l, r].concat();
            vocab.iter().find(|v| v.0 == merged).map(|v| v.1)
        };
        // "bc" outscores "ab"; "a"+"bc" is not a token.
        assert_eq!(merge_pieces("abc", score), ["a", "bc"]);
        // Merged pieces merge further.
        assert_eq!(merge_pieces("xbc", score), ["xbc"]);
        // Equal scores: the leftmost "aa" merges first.
        assert_eq!(merge_pieces("aaa", score), ["aa", "a"]);
        assert_eq!(merge_pieces("xab", score), ["x", "ab"]);
        assert!(merge_pieces("", score).is_empty());
        let by_ab = |l: &str, r: &str| {
            ["ab", "abab"]
                .contains(&[l, r].concat().as_str())
                .then_some(1.0)
        };
        assert_eq!(merge_pieces("ababab", by_ab), ["abab", "ab"]);
    }
}
