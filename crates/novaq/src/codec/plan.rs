//! Which tensors share a codebook set.
//!
//! A set of codebooks costs `books × 256 × dim × 16` bits. A tensor large enough that this is a
//! small part of its code bits gets its own set (best fit); smaller tensors of the same kind
//! across layers (`blk.0.attn_q.weight`, `blk.1.attn_q.weight`, …) share one; kinds still too
//! small for that share a single set for the whole model (tiny models).

use super::aq::ENTRIES;
use std::collections::BTreeMap;

/// The usual largest share of a tensor's (or kind's) code bits a codebook set may take (the
/// `budget` of the functions below; presets may choose another, see `Options::new`).
pub const CODEBOOK_BUDGET: f64 = 0.02;

/// Whether a tensor of `weights` weights is large enough for a codebook set of its own.
pub fn affords_own_codebooks(weights: usize, books: usize, dim: usize, budget: f64) -> bool {
    let codebook_bits = (books * ENTRIES * dim * 16) as f64;
    codebook_bits <= budget * weights as f64 * 8.0 * books as f64 / dim as f64
}

/// Groups of indices into `tensors` (name, weight count); each group gets one codebook set,
/// which may take up to `budget` of its members' code bits.
pub fn codebook_groups(
    tensors: &[(&str, usize)],
    books: usize,
    dim: usize,
    budget: f64,
) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let mut kinds: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, &(name, weights)) in tensors.iter().enumerate() {
        if affords_own_codebooks(weights, books, dim, budget) {
            groups.push(vec![i]);
        } else {
            kinds.entry(kind_of(name)).or_default().push(i);
        }
    }
    let mut common = Vec::new();
    for members in kinds.into_values() {
        let weights = members.iter().map(|&i| tensors[i].1).sum();
        if affords_own_codebooks(weights, books, dim, budget) {
            groups.push(members);
        } else {
            common.extend(members);
        }
    }
    if !common.is_empty() {
        common.sort_unstable();
        groups.push(common);
    }
    groups
}

/// The tensor's name with layer numbers replaced: `blk.7.ffn_up.weight` → `blk.#.ffn_up.weight`.
pub fn kind_of(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_number = false;
    for ch in name.chars() {
        if ch.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            out.push(ch);
            in_number = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_tensors_alone_small_ones_by_kind_tiny_ones_together() {
        let tensors = [
            ("token_embd.weight", 28_000_000),
            ("blk.0.ffn_up.weight", 884_736),
            ("blk.1.ffn_up.weight", 884_736),
            ("blk.0.attn_q.weight", 331_776),
            ("blk.1.attn_q.weight", 331_776),
            ("blk.2.attn_q.weight", 331_776),
            ("blk.0.attn_k.weight", 4096),
            ("blk.0.attn_v.weight", 4096),
        ];
        // A 2×8 set (65,536 bits) is 3.7% of a feed-forward matrix's code bits, 9.9% of a
        // query projection's (3.3% of three together) and far more than two tiny matrices'.
        let mut groups = codebook_groups(&tensors, 2, 8, 0.045);
        groups.sort();
        assert_eq!(
            groups,
            vec![vec![0], vec![1], vec![2], vec![3, 4, 5], vec![6, 7]]
        );
        assert!(affords_own_codebooks(884_736, 2, 8, 0.045));
        assert!(!affords_own_codebooks(331_776, 2, 8, 0.045));
        // Within 2%, the feed-forward matrices share one set per kind.
        let mut groups = codebook_groups(&tensors, 2, 8, CODEBOOK_BUDGET);
        groups.sort();
        assert_eq!(groups, vec![vec![0], vec![1, 2], vec![3, 4, 5, 6, 7]]);
        assert_eq!(kind_of("blk.12.ffn_down.weight"), "blk.#.ffn_down.weight");
    }
}
