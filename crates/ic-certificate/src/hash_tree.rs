//! The IC's hash tree (interface spec, "Certification"): digest, CBOR encoding and lookup.

use ciborium::Value;
use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

/// A (possibly pruned) hash tree, as in the interface spec's `HashTree`.
///
/// CBOR encoding (the spec's `certificates.cddl`, also what agent-rs and `@icp-sdk/core` decode):
/// `[0]` Empty, `[1, left, right]` Fork, `[2, label: bytes, tree]` Labeled, `[3, value: bytes]` Leaf,
/// `[4, hash: bytes .size 32]` Pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashTree {
    Empty,
    Fork(Box<HashTree>, Box<HashTree>),
    Labeled(Vec<u8>, Box<HashTree>),
    Leaf(Vec<u8>),
    Pruned(Hash),
}

/// The result of [`HashTree::lookup`], exactly the spec's `lookup_path` outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The path has the value.
    Found(&'a [u8]),
    /// The path is provably not in the tree.
    Absent,
    /// The path may be in a pruned part of the tree.
    Unknown,
    /// The path leads to an inner node (a subtree), not a value.
    Error,
}

/// `byte(|s|) · s`, the spec's `domain_sep`.
pub fn domain_sep(s: &str) -> Vec<u8> {
    let len = u8::try_from(s.len()).expect("domain separator longer than 255 bytes");
    let mut v = Vec::with_capacity(1 + s.len());
    v.push(len);
    v.extend_from_slice(s.as_bytes());
    v
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `H(domain_sep("ic-hashtree-empty"))`.
pub fn empty_hash() -> Hash {
    sha256(&[b"\x11ic-hashtree-empty"])
}

/// `H(domain_sep("ic-hashtree-fork") · l · r)`.
pub fn fork_hash(l: &Hash, r: &Hash) -> Hash {
    sha256(&[b"\x10ic-hashtree-fork", l, r])
}

/// `H(domain_sep("ic-hashtree-labeled") · label · sub)`.
pub fn labeled_hash(label: &[u8], sub: &Hash) -> Hash {
    sha256(&[b"\x13ic-hashtree-labeled", label, sub])
}

/// `H(domain_sep("ic-hashtree-leaf") · value)`.
pub fn leaf_hash(value: &[u8]) -> Hash {
    sha256(&[b"\x10ic-hashtree-leaf", value])
}

impl HashTree {
    /// Shorthand constructors.
    pub fn fork(l: HashTree, r: HashTree) -> Self {
        HashTree::Fork(Box::new(l), Box::new(r))
    }
    pub fn labeled(label: impl Into<Vec<u8>>, t: HashTree) -> Self {
        HashTree::Labeled(label.into(), Box::new(t))
    }
    pub fn leaf(v: impl Into<Vec<u8>>) -> Self {
        HashTree::Leaf(v.into())
    }

    /// The spec's `reconstruct`: the root hash of this (possibly pruned) tree.
    pub fn digest(&self) -> Hash {
        match self {
            HashTree::Empty => empty_hash(),
            HashTree::Fork(l, r) => fork_hash(&l.digest(), &r.digest()),
            HashTree::Labeled(label, t) => labeled_hash(label, &t.digest()),
            HashTree::Leaf(v) => leaf_hash(v),
            HashTree::Pruned(h) => *h,
        }
    }

    /// This tree as a CBOR value (arrays of a node tag and byte strings).
    pub fn to_cbor_value(&self) -> Value {
        let tag = |n: u8| Value::Integer(n.into());
        match self {
            HashTree::Empty => Value::Array(vec![tag(0)]),
            HashTree::Fork(l, r) => {
                Value::Array(vec![tag(1), l.to_cbor_value(), r.to_cbor_value()])
            }
            HashTree::Labeled(label, t) => {
                Value::Array(vec![tag(2), Value::Bytes(label.clone()), t.to_cbor_value()])
            }
            HashTree::Leaf(v) => Value::Array(vec![tag(3), Value::Bytes(v.clone())]),
            HashTree::Pruned(h) => Value::Array(vec![tag(4), Value::Bytes(h.to_vec())]),
        }
    }

    /// The CBOR encoding of this tree (no self-describe tag; that belongs to the certificate).
    pub fn to_cbor(&self) -> Vec<u8> {
        encode_value(&self.to_cbor_value())
    }

    /// Parse a tree from a CBOR value (as produced by [`HashTree::to_cbor_value`]).
    pub fn from_cbor_value(v: &Value) -> Result<Self, String> {
        let v = strip_self_describe(v);
        let items = v.as_array().ok_or("hash tree node is not an array")?;
        let tag = items
            .first()
            .and_then(|t| t.as_integer())
            .and_then(|i| u8::try_from(i).ok())
            .ok_or("hash tree node has no node type")?;
        let bytes = |i: usize| -> Result<&Vec<u8>, String> {
            items
                .get(i)
                .and_then(|b| b.as_bytes())
                .ok_or_else(|| format!("hash tree node {tag}: element {i} is not a byte string"))
        };
        let arity = |n: usize| -> Result<(), String> {
            if items.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "hash tree node {tag}: {} elements, expected {n}",
                    items.len()
                ))
            }
        };
        Ok(match tag {
            0 => {
                arity(1)?;
                HashTree::Empty
            }
            1 => {
                arity(3)?;
                HashTree::fork(
                    Self::from_cbor_value(&items[1])?,
                    Self::from_cbor_value(&items[2])?,
                )
            }
            2 => {
                arity(3)?;
                HashTree::labeled(bytes(1)?.clone(), Self::from_cbor_value(&items[2])?)
            }
            3 => {
                arity(2)?;
                HashTree::Leaf(bytes(1)?.clone())
            }
            4 => {
                arity(2)?;
                let h = bytes(1)?;
                HashTree::Pruned(
                    h.as_slice()
                        .try_into()
                        .map_err(|_| format!("pruned hash of {} bytes", h.len()))?,
                )
            }
            t => return Err(format!("unknown hash tree node type {t}")),
        })
    }

    /// Decode a tree from its CBOR encoding.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, String> {
        Self::from_cbor_value(&decode_value(bytes)?)
    }

    /// Alias of [`HashTree::from_cbor`].
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        Self::from_cbor(bytes)
    }

    /// The spec's `lookup_path`.
    pub fn lookup<L: AsRef<[u8]>>(&self, path: &[L]) -> Lookup<'_> {
        let Some((label, rest)) = path.split_first() else {
            return match self {
                HashTree::Empty => Lookup::Absent,
                HashTree::Leaf(v) => Lookup::Found(v),
                HashTree::Pruned(_) => Lookup::Unknown,
                HashTree::Labeled(..) | HashTree::Fork(..) => Lookup::Error,
            };
        };
        match self.find_label(label.as_ref()) {
            LabelLookup::Found(sub) => sub.lookup(rest),
            LabelLookup::Absent => Lookup::Absent,
            LabelLookup::Unknown => Lookup::Unknown,
        }
    }

    /// The subtree at `path`: `Ok(Some(t))` found, `Ok(None)` provably absent, `Err(())` unknown
    /// (pruned). Useful to inspect what a witness reveals.
    #[allow(clippy::result_unit_err)]
    pub fn lookup_subtree<L: AsRef<[u8]>>(&self, path: &[L]) -> Result<Option<&HashTree>, ()> {
        let Some((label, rest)) = path.split_first() else {
            return Ok(Some(self));
        };
        match self.find_label(label.as_ref()) {
            LabelLookup::Found(sub) => sub.lookup_subtree(rest),
            LabelLookup::Absent => Ok(None),
            LabelLookup::Unknown => Err(()),
        }
    }

    /// The spec's `flatten_forks`.
    pub fn flatten_forks(&self) -> Vec<&HashTree> {
        fn go<'a>(t: &'a HashTree, out: &mut Vec<&'a HashTree>) {
            match t {
                HashTree::Empty => {}
                HashTree::Fork(l, r) => {
                    go(l, out);
                    go(r, out);
                }
                t => out.push(t),
            }
        }
        let mut out = Vec::new();
        go(self, &mut out);
        out
    }

    /// The spec's `find_label(l, flatten_forks(self))`, rule by rule.
    fn find_label(&self, l: &[u8]) -> LabelLookup<'_> {
        let forest = self.flatten_forks();
        fn label_of(t: &HashTree) -> Option<&[u8]> {
            match t {
                HashTree::Labeled(l, _) => Some(l),
                _ => None,
            }
        }
        // _ · Labeled l1 t · _ | l == l1
        for t in &forest {
            if let HashTree::Labeled(l1, sub) = t
                && l1.as_slice() == l
            {
                return LabelLookup::Found(sub);
            }
        }
        // _ · Labeled l1 _ · Labeled l2 _ · _ | l1 < l < l2
        for w in forest.windows(2) {
            if let (Some(l1), Some(l2)) = (label_of(w[0]), label_of(w[1]))
                && l1 < l
                && l < l2
            {
                return LabelLookup::Absent;
            }
        }
        // Labeled l2 _ · _ | l < l2
        if let Some(l2) = forest.first().and_then(|t| label_of(t))
            && l < l2
        {
            return LabelLookup::Absent;
        }
        // _ · Labeled l1 _ | l1 < l
        if let Some(l1) = forest.last().and_then(|t| label_of(t))
            && l1 < l
        {
            return LabelLookup::Absent;
        }
        match forest.as_slice() {
            [] | [HashTree::Leaf(_)] => LabelLookup::Absent,
            _ => LabelLookup::Unknown,
        }
    }
}

enum LabelLookup<'a> {
    Found(&'a HashTree),
    Absent,
    Unknown,
}

/// The CBOR self-describe tag (`d9d9f7`).
pub const SELF_DESCRIBE_TAG: u64 = 55799;

pub(crate) fn strip_self_describe(v: &Value) -> &Value {
    match v {
        Value::Tag(SELF_DESCRIBE_TAG, inner) => inner,
        v => v,
    }
}

pub(crate) fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("CBOR encoding into a Vec cannot fail");
    out
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = bytes;
    let v: Value = ciborium::from_reader(&mut reader).map_err(|e| format!("invalid CBOR: {e}"))?;
    if !reader.is_empty() {
        return Err(format!("{} trailing bytes after CBOR value", reader.len()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The interface spec's "Certification" → "Example", verbatim.
    const SPEC_CBOR: &str = "8301830183024161830183018302417882034568656c6c6f810083024179820345776f726c6483024162820344676f6f648301830241638100830241648203476d6f726e696e67";
    const SPEC_ROOT: &str = "eb5c5b2195e62d996b84c9bcc8259d19a83786a2f59e0878cec84c811f669aa0";
    const SPEC_PRUNED_CBOR: &str = "83018301830241618301820458201b4feff9bef8131788b0c9dc6dbad6e81e524249c879e9f10f71ce3749f5a63883024179820345776f726c6483024162820458207b32ac0c6ba8ce35ac82c255fc7906f7fc130dab2a090f80fe12f9c2cae83ba6830182045820ec8324b8a1f1ac16bd2e806edba78006479c9877fed4eb464a25485465af601d830241648203476d6f726e696e67";

    fn l(label: &str, t: HashTree) -> HashTree {
        HashTree::labeled(label.as_bytes(), t)
    }
    fn f(a: HashTree, b: HashTree) -> HashTree {
        HashTree::fork(a, b)
    }
    fn leaf(v: &str) -> HashTree {
        HashTree::leaf(v.as_bytes())
    }
    fn pruned(h: &str) -> HashTree {
        HashTree::Pruned(hex::decode(h).unwrap().try_into().unwrap())
    }

    fn p<'a>(s: &[&'a str]) -> Vec<&'a [u8]> {
        s.iter().map(|x| x.as_bytes()).collect()
    }

    fn spec_tree() -> HashTree {
        f(
            f(
                l(
                    "a",
                    f(
                        f(l("x", leaf("hello")), HashTree::Empty),
                        l("y", leaf("world")),
                    ),
                ),
                l("b", leaf("good")),
            ),
            f(l("c", HashTree::Empty), l("d", leaf("morning"))),
        )
    }

    fn spec_pruned_tree() -> HashTree {
        f(
            f(
                l(
                    "a",
                    f(
                        pruned("1b4feff9bef8131788b0c9dc6dbad6e81e524249c879e9f10f71ce3749f5a638"),
                        l("y", leaf("world")),
                    ),
                ),
                l(
                    "b",
                    pruned("7b32ac0c6ba8ce35ac82c255fc7906f7fc130dab2a090f80fe12f9c2cae83ba6"),
                ),
            ),
            f(
                pruned("ec8324b8a1f1ac16bd2e806edba78006479c9877fed4eb464a25485465af601d"),
                l("d", leaf("morning")),
            ),
        )
    }

    #[test]
    fn spec_example_cbor_and_root_hash() {
        let tree = spec_tree();
        assert_eq!(hex::encode(tree.to_cbor()), SPEC_CBOR);
        assert_eq!(hex::encode(tree.digest()), SPEC_ROOT);
        assert_eq!(
            HashTree::from_cbor(&hex::decode(SPEC_CBOR).unwrap()).unwrap(),
            tree
        );
    }

    #[test]
    fn spec_example_subtree_hashes() {
        // The pruned example's hashes are those of the pruned subtrees.
        let x = f(l("x", leaf("hello")), HashTree::Empty);
        assert_eq!(
            hex::encode(x.digest()),
            "1b4feff9bef8131788b0c9dc6dbad6e81e524249c879e9f10f71ce3749f5a638"
        );
        assert_eq!(
            hex::encode(leaf("good").digest()),
            "7b32ac0c6ba8ce35ac82c255fc7906f7fc130dab2a090f80fe12f9c2cae83ba6"
        );
        assert_eq!(
            hex::encode(l("c", HashTree::Empty).digest()),
            "ec8324b8a1f1ac16bd2e806edba78006479c9877fed4eb464a25485465af601d"
        );
    }

    #[test]
    fn spec_pruned_example_cbor_root_and_lookups() {
        let tree = spec_pruned_tree();
        assert_eq!(hex::encode(tree.to_cbor()), SPEC_PRUNED_CBOR);
        assert_eq!(hex::encode(tree.digest()), SPEC_ROOT);
        let decoded = HashTree::from_cbor(&hex::decode(SPEC_PRUNED_CBOR).unwrap()).unwrap();
        assert_eq!(decoded, tree);

        // The spec's table of lookup_path results on the pruned tree.
        assert_eq!(tree.lookup(&p(&["a", "a"])), Lookup::Unknown);
        assert_eq!(tree.lookup(&p(&["a", "y"])), Lookup::Found(b"world"));
        assert_eq!(tree.lookup(&p(&["aa"])), Lookup::Absent);
        assert_eq!(tree.lookup(&p(&["ax"])), Lookup::Absent);
        assert_eq!(tree.lookup(&p(&["b"])), Lookup::Unknown);
        assert_eq!(tree.lookup(&p(&["bb"])), Lookup::Unknown);
        assert_eq!(tree.lookup(&p(&["d"])), Lookup::Found(b"morning"));
        assert_eq!(tree.lookup(&p(&["e"])), Lookup::Absent);
    }

    #[test]
    fn lookup_in_full_example() {
        let tree = spec_tree();
        assert_eq!(tree.lookup(&p(&["a", "x"])), Lookup::Found(b"hello"));
        assert_eq!(tree.lookup(&p(&["a"])), Lookup::Error);
        assert_eq!(tree.lookup(&p(&["c"])), Lookup::Absent); // Labeled c Empty
        assert_eq!(tree.lookup(&p(&["b", "z"])), Lookup::Absent); // past a leaf
        assert_eq!(tree.lookup(&p(&["a", "z"])), Lookup::Absent);
        assert_eq!(tree.lookup(&p(&["0"])), Lookup::Absent);
        assert_eq!(tree.lookup::<&[u8]>(&[]), Lookup::Error);
    }

    #[test]
    fn decode_rejects_malformed_trees() {
        let bad = [
            "820458".to_string() + "1f" + &"00".repeat(31), // pruned hash of 31 bytes
            "8105".to_string(),                             // unknown node type
            "820263616263".to_string(),                     // leaf with a text value
            "83024161".to_string(),                         // truncated
            "810000".to_string(),                           // trailing byte
            "830100".to_string() + "8100",                  // fork child not an array
        ];
        for b in bad {
            assert!(
                HashTree::from_cbor(&hex::decode(&b).unwrap()).is_err(),
                "{b}"
            );
        }
    }

    #[test]
    fn domain_separators() {
        assert_eq!(domain_sep("ic-hashtree-empty"), b"\x11ic-hashtree-empty");
        assert_eq!(domain_sep("ic-hashtree-fork"), b"\x10ic-hashtree-fork");
        assert_eq!(
            domain_sep("ic-hashtree-labeled"),
            b"\x13ic-hashtree-labeled"
        );
        assert_eq!(domain_sep("ic-hashtree-leaf"), b"\x10ic-hashtree-leaf");
        assert_eq!(domain_sep("ic-state-root"), crate::STATE_ROOT_DOMAIN);
    }
}
