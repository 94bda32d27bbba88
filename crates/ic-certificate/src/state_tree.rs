//! A labeled state tree and its witnesses (pruned hash trees).

use std::collections::BTreeMap;

use crate::hash_tree::{Hash, HashTree, empty_hash, fork_hash, labeled_hash, leaf_hash};

/// A node of the labeled tree: a value, or labeled children (sorted by label bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Leaf(Vec<u8>),
    Subtree(BTreeMap<Vec<u8>, Node>),
}

impl Default for Node {
    fn default() -> Self {
        Node::Subtree(BTreeMap::new())
    }
}

/// A labeled tree of the full state, built by inserting leaves.
///
/// Children of a node are kept sorted by label (byte order), and its hash tree is well formed in
/// the spec's sense: the labeled children, in increasing label order, joined by a balanced binary
/// tree of forks (the left half gets `len / 2` children); a node without children is `Empty`;
/// `Empty` never appears inside a fork.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateTree {
    root: Node,
}

/// What a witness must reveal below a node.
#[derive(Debug)]
enum Want {
    /// The whole subtree.
    All,
    /// These children (and, for missing labels, the neighbours proving their absence).
    Children(BTreeMap<Vec<u8>, Want>),
}

impl Want {
    fn add(&mut self, path: &[Vec<u8>]) {
        let Want::Children(children) = self else {
            return; // already revealing everything here
        };
        match path.split_first() {
            None => *self = Want::All,
            Some((label, rest)) => children
                .entry(label.clone())
                .or_insert_with(|| Want::Children(BTreeMap::new()))
                .add(rest),
        }
    }
}

impl StateTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the value at `path`, creating the subtrees on the way. A leaf met on the way is
    /// replaced by a subtree; a subtree at `path` itself is replaced by the leaf. The empty path
    /// makes the whole tree a single leaf.
    pub fn insert<L: AsRef<[u8]>>(&mut self, path: &[L], value: Vec<u8>) {
        *self.node_mut(path) = Node::Leaf(value);
    }

    /// Make `path` an (empty, if new) subtree: `Labeled(l, Empty)` in the hash tree. An existing
    /// subtree is kept; a leaf there is replaced.
    pub fn insert_subtree<L: AsRef<[u8]>>(&mut self, path: &[L]) {
        let node = self.node_mut(path);
        if matches!(node, Node::Leaf(_)) {
            *node = Node::default();
        }
    }

    fn node_mut<L: AsRef<[u8]>>(&mut self, path: &[L]) -> &mut Node {
        let mut node = &mut self.root;
        for label in path {
            if matches!(node, Node::Leaf(_)) {
                *node = Node::default();
            }
            let Node::Subtree(children) = node else {
                unreachable!("made a subtree above")
            };
            node = children.entry(label.as_ref().to_vec()).or_default();
        }
        node
    }

    /// Remove the leaf or subtree at `path`; returns whether something was there.
    /// (The parents stay, possibly as empty subtrees.)
    pub fn remove<L: AsRef<[u8]>>(&mut self, path: &[L]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            let had = self.root != Node::default();
            self.root = Node::default();
            return had;
        };
        let mut node = &mut self.root;
        for label in parents {
            match node {
                Node::Subtree(children) => match children.get_mut(label.as_ref()) {
                    Some(child) => node = child,
                    None => return false,
                },
                Node::Leaf(_) => return false,
            }
        }
        match node {
            Node::Subtree(children) => children.remove(last.as_ref()).is_some(),
            Node::Leaf(_) => false,
        }
    }

    /// The value at `path`, if it is a leaf.
    pub fn get<L: AsRef<[u8]>>(&self, path: &[L]) -> Option<&[u8]> {
        let mut node = &self.root;
        for label in path {
            match node {
                Node::Subtree(children) => node = children.get(label.as_ref())?,
                Node::Leaf(_) => return None,
            }
        }
        match node {
            Node::Leaf(v) => Some(v),
            Node::Subtree(_) => None,
        }
    }

    /// The labels of the children at `path` (empty if there is no subtree there).
    pub fn children<L: AsRef<[u8]>>(&self, path: &[L]) -> Vec<&[u8]> {
        let mut node = &self.root;
        for label in path {
            match node {
                Node::Subtree(children) => match children.get(label.as_ref()) {
                    Some(child) => node = child,
                    None => return Vec::new(),
                },
                Node::Leaf(_) => return Vec::new(),
            }
        }
        match node {
            Node::Subtree(children) => children.keys().map(Vec::as_slice).collect(),
            Node::Leaf(_) => Vec::new(),
        }
    }

    /// The root hash of the full tree (what a certificate signs).
    pub fn root_hash(&self) -> Hash {
        node_hash(&self.root)
    }

    /// The full (unpruned) hash tree.
    pub fn hash_tree(&self) -> HashTree {
        full_tree(&self.root)
    }

    /// The witness for `paths`: every requested path's whole subtree revealed (a path that is a
    /// prefix of another reveals everything under it); a requested label that does not exist is
    /// proven absent by revealing its neighbouring labels (with pruned subtrees), so that the
    /// spec's lookup gives `Absent` for it; a path running past a leaf reveals that leaf (which
    /// proves the absence of the rest); everything else is `Pruned`. The digest equals
    /// [`StateTree::root_hash`].
    pub fn witness(&self, paths: &[Vec<Vec<u8>>]) -> HashTree {
        let mut want = Want::Children(BTreeMap::new());
        for p in paths {
            want.add(p);
        }
        match &want {
            Want::Children(c) if c.is_empty() => HashTree::Pruned(self.root_hash()),
            w => witness_node(&self.root, w),
        }
    }
}

fn node_hash(node: &Node) -> Hash {
    match node {
        Node::Leaf(v) => leaf_hash(v),
        Node::Subtree(children) => {
            let entries: Vec<_> = children.iter().collect();
            forest_hash(&entries)
        }
    }
}

/// The hash of the balanced fork tree over these labeled children.
fn forest_hash(entries: &[(&Vec<u8>, &Node)]) -> Hash {
    match entries {
        [] => empty_hash(),
        [(label, node)] => labeled_hash(label, &node_hash(node)),
        _ => {
            let (l, r) = entries.split_at(entries.len() / 2);
            fork_hash(&forest_hash(l), &forest_hash(r))
        }
    }
}

fn full_tree(node: &Node) -> HashTree {
    match node {
        Node::Leaf(v) => HashTree::Leaf(v.clone()),
        Node::Subtree(children) => {
            let entries: Vec<_> = children.iter().collect();
            full_forest(&entries)
        }
    }
}

fn full_forest(entries: &[(&Vec<u8>, &Node)]) -> HashTree {
    match entries {
        [] => HashTree::Empty,
        [(label, node)] => HashTree::labeled(label.to_vec(), full_tree(node)),
        _ => {
            let (l, r) = entries.split_at(entries.len() / 2);
            HashTree::fork(full_forest(l), full_forest(r))
        }
    }
}

/// What the witness shows of one child.
#[derive(Clone, Copy)]
enum Show<'w> {
    /// Nothing: part of a pruned range.
    Nothing,
    /// Its label, with the subtree pruned (a neighbour proving an absence).
    Label,
    /// Its label and the witness below it.
    Below(&'w Want),
}

fn witness_node(node: &Node, want: &Want) -> HashTree {
    let children = match (node, want) {
        (_, Want::All) => return full_tree(node),
        // A path past a leaf: the leaf itself proves that nothing is below it.
        (Node::Leaf(v), Want::Children(_)) => return HashTree::Leaf(v.clone()),
        (Node::Subtree(children), Want::Children(wanted)) => (children, wanted),
    };
    let (children, wanted) = children;
    if children.is_empty() {
        return HashTree::Empty; // proves every label absent
    }
    let entries: Vec<_> = children.iter().collect();
    let mut show = vec![Show::Nothing; entries.len()];
    for (label, sub) in wanted {
        match entries.binary_search_by(|(l, _)| l.as_slice().cmp(label.as_slice())) {
            Ok(i) => show[i] = Show::Below(sub),
            Err(i) => {
                // Absent: reveal the neighbours i - 1 (greatest smaller label) and i (smallest
                // greater label), whichever exist; they are adjacent, so lookup finds
                // `Labeled l1 · Labeled l2` with l1 < label < l2 (or the first/last label).
                if i > 0 && matches!(show[i - 1], Show::Nothing) {
                    show[i - 1] = Show::Label;
                }
                if i < entries.len() && matches!(show[i], Show::Nothing) {
                    show[i] = Show::Label;
                }
            }
        }
    }
    witness_forest(&entries, &show)
}

fn witness_forest(entries: &[(&Vec<u8>, &Node)], show: &[Show<'_>]) -> HashTree {
    if show.iter().all(|s| matches!(s, Show::Nothing)) {
        return HashTree::Pruned(forest_hash(entries));
    }
    match (entries, show) {
        ([(label, node)], [s]) => {
            let sub = match s {
                Show::Below(want) => witness_node(node, want),
                _ => HashTree::Pruned(node_hash(node)),
            };
            HashTree::labeled(label.to_vec(), sub)
        }
        _ => {
            let mid = entries.len() / 2;
            HashTree::fork(
                witness_forest(&entries[..mid], &show[..mid]),
                witness_forest(&entries[mid..], &show[mid..]),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_tree::Lookup;

    fn path(p: &[&[u8]]) -> Vec<Vec<u8>> {
        p.iter().map(|l| l.to_vec()).collect()
    }

    /// Every fork's flattened labels strictly increase, leaves are alone, no Empty in a fork.
    fn assert_well_formed(t: &HashTree) {
        if let HashTree::Leaf(_) = t {
            return;
        }
        let forest = t.flatten_forks();
        let mut last: Option<&[u8]> = None;
        for n in &forest {
            match n {
                HashTree::Labeled(l, sub) => {
                    if let Some(prev) = last {
                        assert!(prev < l.as_slice(), "labels not increasing");
                    }
                    last = Some(l);
                    assert_well_formed(sub);
                }
                HashTree::Leaf(_) => panic!("leaf mixed with labels"),
                HashTree::Pruned(_) => {}
                HashTree::Empty | HashTree::Fork(..) => unreachable!(),
            }
        }
        fn no_empty_in_fork(t: &HashTree) {
            match t {
                HashTree::Fork(l, r) => {
                    assert!(!matches!(**l, HashTree::Empty) && !matches!(**r, HashTree::Empty));
                    no_empty_in_fork(l);
                    no_empty_in_fork(r);
                }
                HashTree::Labeled(_, t) => no_empty_in_fork(t),
                _ => {}
            }
        }
        no_empty_in_fork(t);
    }

    /// A replica-like state: /time, /request_status/<id>/..., /canister/<id>/certified_data.
    fn sample_state(ids: &[[u8; 32]]) -> StateTree {
        let mut s = StateTree::new();
        s.insert(
            &[b"time".as_slice()],
            crate::leb128(1_700_000_000_000_000_000),
        );
        s.insert_subtree(&[b"request_status".as_slice()]);
        for id in ids {
            s.insert(
                &[b"request_status".as_slice(), id, b"status"],
                b"replied".to_vec(),
            );
            s.insert(&[b"request_status".as_slice(), id, b"reply"], id.to_vec());
        }
        s.insert(
            &[
                b"canister".as_slice(),
                &[0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
                b"certified_data",
            ],
            vec![7; 32],
        );
        s.insert(&[b"subnet".as_slice(), b"s1", b"public_key"], vec![1, 2, 3]);
        s
    }

    fn id(n: u8) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[0] = n;
        id[31] = n.wrapping_mul(37);
        id
    }

    #[test]
    fn full_tree_matches_root_hash_and_is_well_formed() {
        for n in 0..12u8 {
            let ids: Vec<_> = (0..n).map(|i| id(10 * i + 5)).collect();
            let s = sample_state(&ids);
            let full = s.hash_tree();
            assert_eq!(full.digest(), s.root_hash());
            assert_well_formed(&full);
            assert_eq!(s.witness(&[vec![]]), full); // the empty path reveals everything
        }
    }

    #[test]
    fn witness_time_and_request_status() {
        let ids: Vec<_> = (0..7u8).map(|i| id(10 * i + 5)).collect();
        let s = sample_state(&ids);
        let root = s.root_hash();
        let rs = b"request_status".as_slice();
        for (i, wanted) in ids.iter().enumerate() {
            let w = s.witness(&[path(&[b"time"]), path(&[rs, wanted])]);
            assert_eq!(w.digest(), root);
            assert_well_formed(&w);
            assert_eq!(
                w.lookup(&[b"time".as_slice()]),
                Lookup::Found(&crate::leb128(1_700_000_000_000_000_000))
            );
            assert_eq!(
                w.lookup(&[rs, wanted, b"status"]),
                Lookup::Found(b"replied")
            );
            assert_eq!(w.lookup(&[rs, wanted, b"reply"]), Lookup::Found(wanted));
            assert_eq!(w.lookup(&[rs, wanted, b"reject_code"]), Lookup::Absent);
            // Other requests' statuses, the canister and subnet subtrees are not revealed.
            let other = &ids[(i + 1) % ids.len()];
            assert_eq!(w.lookup(&[rs, other, b"status"]), Lookup::Unknown);
            assert_eq!(
                w.lookup(&[b"subnet".as_slice(), b"s1", b"public_key"]),
                Lookup::Unknown
            );
            assert!(
                !w.to_cbor().windows(32).any(|x| x == other),
                "other id revealed"
            );
        }
    }

    #[test]
    fn missing_request_ids_are_absent_not_unknown() {
        let rs = b"request_status".as_slice();
        for n in 0..9u8 {
            // ids 5, 15, 25, ...; probe every gap: before the first, between, after the last.
            let ids: Vec<_> = (0..n).map(|i| id(10 * i + 5)).collect();
            let s = sample_state(&ids);
            for probe in (0..=n).map(|i| id(10 * i)) {
                let w = s.witness(&[path(&[b"time"]), path(&[rs, &probe])]);
                assert_eq!(w.digest(), s.root_hash());
                assert_well_formed(&w);
                assert_eq!(w.lookup(&[rs, &probe, b"status"]), Lookup::Absent, "n={n}");
                assert_eq!(w.lookup(&[rs, &probe]), Lookup::Absent);
                // Present ids are not revealed by an absence proof (at most their labels).
                for present in &ids {
                    assert_ne!(
                        w.lookup(&[rs, present, b"status"]),
                        Lookup::Found(b"replied")
                    );
                }
            }
        }
    }

    #[test]
    fn missing_top_level_and_deep_paths() {
        let s = sample_state(&[id(5)]);
        let w = s.witness(&[
            path(&[b"aaa"]),
            path(&[b"zzz", b"x"]),
            path(&[b"canister", &[9; 10], b"certified_data"]),
            path(&[b"time", b"past_a_leaf"]),
        ]);
        assert_eq!(w.digest(), s.root_hash());
        assert_eq!(w.lookup(&[b"aaa".as_slice()]), Lookup::Absent);
        assert_eq!(w.lookup(&[b"zzz".as_slice(), b"x"]), Lookup::Absent);
        assert_eq!(
            w.lookup(&[b"canister".as_slice(), &[9; 10], b"certified_data"]),
            Lookup::Absent
        );
        assert_eq!(
            w.lookup(&[b"time".as_slice(), b"past_a_leaf"]),
            Lookup::Absent
        );
        // An empty subtree proves absence too.
        let mut empty = StateTree::new();
        empty.insert_subtree(&[b"request_status".as_slice()]);
        let w = empty.witness(&[path(&[b"request_status", &id(1)])]);
        assert_eq!(w.digest(), empty.root_hash());
        assert_eq!(
            w.lookup(&[b"request_status".as_slice(), &id(1)]),
            Lookup::Absent
        );
    }

    #[test]
    fn prefix_path_reveals_the_whole_subtree() {
        let ids: Vec<_> = (0..4u8).map(|i| id(10 * i + 5)).collect();
        let s = sample_state(&ids);
        let rs = b"request_status".as_slice();
        let w = s.witness(&[path(&[rs]), path(&[rs, &ids[0], b"status"])]);
        assert_eq!(w.digest(), s.root_hash());
        for i in &ids {
            assert_eq!(w.lookup(&[rs, i, b"status"]), Lookup::Found(b"replied"));
        }
        assert_eq!(w.lookup(&[b"time".as_slice()]), Lookup::Unknown);
    }

    #[test]
    fn no_paths_prunes_everything() {
        let s = sample_state(&[id(5)]);
        assert_eq!(s.witness(&[]), HashTree::Pruned(s.root_hash()));
    }

    #[test]
    fn spec_example_lookups_via_witness() {
        // The spec example's labeled tree (as a StateTree: our fork layout, same lookups).
        let mut s = StateTree::new();
        s.insert(&[b"a".as_slice(), b"x"], b"hello".to_vec());
        s.insert(&[b"a".as_slice(), b"y"], b"world".to_vec());
        s.insert(&[b"b".as_slice()], b"good".to_vec());
        s.insert_subtree(&[b"c".as_slice()]);
        s.insert(&[b"d".as_slice()], b"morning".to_vec());
        let w = s.witness(&[path(&[b"a", b"y"]), path(&[b"ax"]), path(&[b"d"])]);
        assert_eq!(w.digest(), s.root_hash());
        assert_eq!(w.lookup(&[b"a".as_slice(), b"y"]), Lookup::Found(b"world"));
        assert_eq!(w.lookup(&[b"a".as_slice(), b"x"]), Lookup::Unknown);
        assert_eq!(w.lookup(&[b"ax".as_slice()]), Lookup::Absent);
        assert_eq!(w.lookup(&[b"d".as_slice()]), Lookup::Found(b"morning"));
        assert_eq!(w.lookup(&[b"b".as_slice()]), Lookup::Unknown);
    }

    #[test]
    fn insert_get_remove() {
        let mut s = StateTree::new();
        s.insert(&[b"a".as_slice(), b"b"], vec![1]);
        assert_eq!(s.get(&[b"a".as_slice(), b"b"]), Some(&[1u8][..]));
        assert_eq!(s.get(&[b"a".as_slice()]), None);
        let before = s.root_hash();
        s.insert(&[b"a".as_slice(), b"c"], vec![2]);
        assert_ne!(s.root_hash(), before);
        assert_eq!(s.children(&[b"a".as_slice()]), vec![b"b".as_slice(), b"c"]);
        assert!(s.remove(&[b"a".as_slice(), b"c"]));
        assert!(!s.remove(&[b"a".as_slice(), b"c"]));
        assert_eq!(s.root_hash(), before);
        // A leaf replaced by a subtree and back.
        s.insert(&[b"a".as_slice(), b"b", b"deeper"], vec![3]);
        assert_eq!(s.get(&[b"a".as_slice(), b"b"]), None);
        s.insert(&[b"a".as_slice(), b"b"], vec![1]);
        assert_eq!(s.root_hash(), before);
    }

    /// agent-rs (ic-agent) decodes certificate trees with ic-certification's serde impl and
    /// looks paths up with its own `lookup_path`: our witnesses must read the same there.
    #[test]
    fn witness_reads_the_same_in_agent_rs() {
        let ids: Vec<_> = (0..6u8).map(|i| id(10 * i + 5)).collect();
        let s = sample_state(&ids);
        let rs = b"request_status".as_slice();
        for probe in [id(0), id(5), id(30), id(55), id(60)] {
            let w = s.witness(&[path(&[b"time"]), path(&[rs, &probe])]);
            let theirs: ic_certification::HashTree = serde_cbor::from_slice(&w.to_cbor()).unwrap();
            assert_eq!(theirs.digest(), s.root_hash());
            for p in [
                vec![b"time".as_slice()],
                vec![rs, &probe, b"status"],
                vec![rs, &probe, b"reply"],
                vec![rs, &ids[0], b"status"],
                vec![b"subnet".as_slice(), b"s1", b"public_key"],
                vec![rs],
            ] {
                let ours = match w.lookup(&p) {
                    Lookup::Found(v) => ic_certification::LookupResult::Found(v),
                    Lookup::Absent => ic_certification::LookupResult::Absent,
                    Lookup::Unknown => ic_certification::LookupResult::Unknown,
                    Lookup::Error => ic_certification::LookupResult::Error,
                };
                assert_eq!(theirs.lookup_path(&p), ours, "{p:?}");
            }
            if !ids.contains(&probe) {
                assert_eq!(
                    theirs.lookup_path([rs, &probe, b"status"]),
                    ic_certification::LookupResult::Absent
                );
            }
        }
    }
}
