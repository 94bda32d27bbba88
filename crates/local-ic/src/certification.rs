//! Data certificates for queries: the IC's certificate format (CBOR, a hash tree holding
//! `/canister/<id>/certified_data` and `/time`).
//!
//! The local network has no threshold BLS key, so the `signature` field is a deterministic
//! 48-byte digest of the tree's root hash under the local root key: canisters and tests can
//! parse the certificate and check the certified data in it, but a verifier holding the IC's
//! real root key rejects it, as it should for a non-IC network.

use candid::Principal;
use sha2::{Digest, Sha256};

/// DER prefix of a BLS12-381 G2 public key, the shape of the IC's root key.
const BLS_KEY_DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05,
    0x03, 0x01, 0x02, 0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03,
    0x02, 0x01, 0x03, 0x61, 0x00,
];

/// The local network's root key (`ic0.root_key_copy`): 133 bytes, DER-shaped like the IC's.
pub fn root_key() -> [u8; 133] {
    let mut key = [0u8; 133];
    key[..37].copy_from_slice(&BLS_KEY_DER_PREFIX);
    for (i, chunk) in key[37..].chunks_mut(32).enumerate() {
        let digest = Sha256::digest(format!("local-ic root key {i}"));
        chunk.copy_from_slice(&digest[..chunk.len()]);
    }
    key
}

enum HashTree {
    Fork(Box<HashTree>, Box<HashTree>),
    Labeled(Vec<u8>, Box<HashTree>),
    Leaf(Vec<u8>),
}

impl HashTree {
    fn labeled(label: &[u8], subtree: HashTree) -> Self {
        HashTree::Labeled(label.to_vec(), Box::new(subtree))
    }

    fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        let domain = |h: &mut Sha256, sep: &str| {
            h.update([sep.len() as u8]);
            h.update(sep.as_bytes());
        };
        match self {
            HashTree::Fork(l, r) => {
                domain(&mut hasher, "ic-hashtree-fork");
                hasher.update(l.digest());
                hasher.update(r.digest());
            }
            HashTree::Labeled(label, t) => {
                domain(&mut hasher, "ic-hashtree-labeled");
                hasher.update(label);
                hasher.update(t.digest());
            }
            HashTree::Leaf(v) => {
                domain(&mut hasher, "ic-hashtree-leaf");
                hasher.update(v);
            }
        }
        hasher.finalize().into()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            HashTree::Fork(l, r) => {
                cbor_head(out, 4, 3);
                cbor_head(out, 0, 1);
                l.encode(out);
                r.encode(out);
            }
            HashTree::Labeled(label, t) => {
                cbor_head(out, 4, 3);
                cbor_head(out, 0, 2);
                cbor_bytes(out, label);
                t.encode(out);
            }
            HashTree::Leaf(v) => {
                cbor_head(out, 4, 2);
                cbor_head(out, 0, 3);
                cbor_bytes(out, v);
            }
        }
    }
}

fn cbor_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    match value {
        0..=23 => out.push(major | value as u8),
        24..=0xff => out.extend([major | 24, value as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend((value as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend(value.to_be_bytes());
        }
    }
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The certificate a query of `canister` sees for its `certified_data` at `time_nanos`.
pub fn data_certificate(canister: Principal, certified_data: &[u8], time_nanos: u64) -> Vec<u8> {
    let tree = HashTree::Fork(
        Box::new(HashTree::labeled(
            b"canister",
            HashTree::labeled(
                canister.as_slice(),
                HashTree::labeled(b"certified_data", HashTree::Leaf(certified_data.to_vec())),
            ),
        )),
        Box::new(HashTree::labeled(
            b"time",
            HashTree::Leaf(leb128(time_nanos)),
        )),
    );
    let root = tree.digest();
    let mut signature = Vec::with_capacity(48);
    signature.extend(
        Sha256::new()
            .chain_update(root_key())
            .chain_update(root)
            .finalize(),
    );
    signature.extend(&Sha256::digest(&signature)[..16]);

    let mut out = Vec::new();
    // Self-describing CBOR tag 55799, then {"tree": ..., "signature": ...}.
    out.extend([0xd9, 0xd9, 0xf7]);
    cbor_head(&mut out, 5, 2);
    cbor_text(&mut out, "tree");
    tree.encode(&mut out);
    cbor_text(&mut out, "signature");
    cbor_bytes(&mut out, &signature);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_contains_the_certified_data() {
        let id = crate::ids::canister_id_from_index(3);
        let cert = data_certificate(id, b"hello-certified", 42);
        assert_eq!(&cert[..3], &[0xd9, 0xd9, 0xf7]);
        let needle = b"hello-certified";
        assert!(cert.windows(needle.len()).any(|w| w == needle));
        assert!(
            cert.windows(id.as_slice().len())
                .any(|w| w == id.as_slice())
        );
        assert_ne!(cert, data_certificate(id, b"other", 42));
    }

    #[test]
    fn leaf_hash_uses_the_ic_domain_separator() {
        // Known vector: hash of an empty leaf is sha256("\x10ic-hashtree-leaf").
        let expected: [u8; 32] = Sha256::digest(b"\x10ic-hashtree-leaf").into();
        assert_eq!(HashTree::Leaf(Vec::new()).digest(), expected);
    }
}
