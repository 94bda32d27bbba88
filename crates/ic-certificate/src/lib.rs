//! The Internet Computer's certified state: hash trees, witnesses and BLS-signed certificates.
//!
//! Pure logic for a local network: the HTTP endpoint (`read_state`) answers with
//! [`certificate_cbor`] of a [`StateTree::witness`], and canisters' data certificates are the same
//! thing for the paths `/time` and `/canister/<id>/certified_data`.
//!
//! References: the interface spec's "Certification" (hash trees, `reconstruct`, `lookup_path`,
//! well-formed trees, the example), "Encoding of certificates" (CBOR, tag 55799) and "Root of
//! trust" (a DER-wrapped BLS12-381 G2 key; min-sig signatures on
//! `domain_sep("ic-state-root") · root_hash`).

mod hash_tree;
mod state_tree;

pub use hash_tree::{
    Hash, HashTree, Lookup, SELF_DESCRIBE_TAG, domain_sep, empty_hash, fork_hash, labeled_hash,
    leaf_hash,
};
pub use state_tree::StateTree;

use ciborium::Value;
use ic_verify_bls_signature::{PrivateKey, verify_bls_signature};
use sha2::{Digest, Sha256};

/// The DER prefix of an IC BLS12-381 public key (RFC 5480 SubjectPublicKeyInfo with algorithm OID
/// 1.3.6.1.4.1.44668.5.3.1.2.1 and curve OID 1.3.6.1.4.1.44668.5.3.2.1, then a 96-byte bit string).
pub const DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05,
    0x03, 0x01, 0x02, 0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03,
    0x02, 0x01, 0x03, 0x61, 0x00,
];
/// A compressed G2 point: the raw BLS public key.
pub const PUBLIC_KEY_BYTES: usize = 96;
/// The DER-encoded key: prefix and raw key.
pub const PUBLIC_KEY_DER_BYTES: usize = DER_PREFIX.len() + PUBLIC_KEY_BYTES;
/// A compressed G1 point: a BLS signature.
pub const SIGNATURE_BYTES: usize = 48;

/// `domain_sep("ic-state-root")`.
pub const STATE_ROOT_DOMAIN: &[u8] = b"\x0dic-state-root";

/// DER-wrap a raw 96-byte BLS public key.
pub fn public_key_to_der(raw: &[u8; PUBLIC_KEY_BYTES]) -> Vec<u8> {
    let mut der = Vec::with_capacity(PUBLIC_KEY_DER_BYTES);
    der.extend_from_slice(&DER_PREFIX);
    der.extend_from_slice(raw);
    der
}

/// The spec's `extract_der`: the raw 96-byte key of a DER-encoded IC BLS key (exact length and
/// prefix, as agent-rs and `@icp-sdk/core` check).
pub fn extract_der(der: &[u8]) -> Result<[u8; PUBLIC_KEY_BYTES], String> {
    if der.len() != PUBLIC_KEY_DER_BYTES {
        return Err(format!(
            "BLS public key DER of {} bytes, expected {PUBLIC_KEY_DER_BYTES}",
            der.len()
        ));
    }
    let (prefix, key) = der.split_at(DER_PREFIX.len());
    if prefix != DER_PREFIX {
        return Err("BLS public key DER has the wrong prefix".into());
    }
    Ok(key.try_into().expect("length checked"))
}

/// The message a state root signature covers: `domain_sep("ic-state-root") · root_hash`.
pub fn state_root_message(root_hash: &Hash) -> Vec<u8> {
    [STATE_ROOT_DOMAIN, root_hash.as_slice()].concat()
}

/// The local network's root key: a BLS12-381 secret (min-sig: G1 signatures, G2 public key).
#[derive(Clone)]
pub struct RootKey {
    secret: PrivateKey,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKey({})", hex_string(&self.public_key_raw()))
    }
}

impl RootKey {
    /// A deterministic key from a seed: the first of `SHA-256("ic-certificate root key" · seed ·
    /// counter)`, counter = 0, 1, …, that is a non-zero scalar (big-endian, below the group order).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        for counter in 0u32.. {
            let candidate: [u8; 32] = Sha256::new()
                .chain_update(b"ic-certificate root key")
                .chain_update(seed)
                .chain_update(counter.to_be_bytes())
                .finalize()
                .into();
            if candidate == [0u8; 32] {
                continue;
            }
            if let Ok(secret) = PrivateKey::deserialize(&candidate) {
                return RootKey { secret };
            }
        }
        unreachable!("about half of all 32-byte strings are valid scalars")
    }

    /// The raw public key (a compressed G2 point).
    pub fn public_key_raw(&self) -> [u8; PUBLIC_KEY_BYTES] {
        self.secret.public_key().serialize()
    }

    /// The DER-encoded public key (133 bytes), as `/api/v2/status` reports `root_key`.
    pub fn public_key_der(&self) -> Vec<u8> {
        public_key_to_der(&self.public_key_raw())
    }

    /// The BLS signature (compressed G1) on `domain_sep("ic-state-root") · root_hash`.
    pub fn sign_root(&self, root_hash: &Hash) -> [u8; SIGNATURE_BYTES] {
        self.secret.sign(&state_root_message(root_hash)).serialize()
    }

    /// A certificate (CBOR) for `paths` of `state`: the witness, signed over the state's root hash.
    pub fn certify(&self, state: &StateTree, paths: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let tree = state.witness(paths);
        certificate_cbor(&tree, &self.sign_root(&tree.digest()))
    }
}

/// A certificate in CBOR: tag 55799, map `{"tree": tree, "signature": bytes}` (no delegation).
pub fn certificate_cbor(tree: &HashTree, signature: &[u8; SIGNATURE_BYTES]) -> Vec<u8> {
    let cert = Value::Tag(
        SELF_DESCRIBE_TAG,
        Box::new(Value::Map(vec![
            (Value::Text("tree".into()), tree.to_cbor_value()),
            (
                Value::Text("signature".into()),
                Value::Bytes(signature.to_vec()),
            ),
        ])),
    );
    hash_tree::encode_value(&cert)
}

/// A decoded (not yet verified) certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub tree: HashTree,
    pub signature: Vec<u8>,
    /// The CBOR of the delegation, if any (this crate never issues one).
    pub delegation: Option<Vec<u8>>,
}

impl Certificate {
    /// Decode a certificate (the self-describe tag is optional); unknown map keys are ignored.
    pub fn decode(cert_cbor: &[u8]) -> Result<Self, String> {
        let value = hash_tree::decode_value(cert_cbor)?;
        let Value::Map(entries) = hash_tree::strip_self_describe(&value) else {
            return Err("certificate is not a CBOR map".into());
        };
        let (mut tree, mut signature, mut delegation) = (None, None, None);
        for (k, v) in entries {
            match k.as_text() {
                Some("tree") => tree = Some(HashTree::from_cbor_value(v)?),
                Some("signature") => {
                    signature = Some(
                        v.as_bytes()
                            .ok_or("signature is not a byte string")?
                            .clone(),
                    )
                }
                Some("delegation") => delegation = Some(hash_tree::encode_value(v)),
                _ => {}
            }
        }
        Ok(Certificate {
            tree: tree.ok_or("certificate has no tree")?,
            signature: signature.ok_or("certificate has no signature")?,
            delegation,
        })
    }
}

/// Verify a certificate against a DER-encoded root key (the spec's `verify_cert` without
/// delegations: a certificate carrying one is rejected). Returns the certified tree.
pub fn verify_certificate(cert_cbor: &[u8], root_key_der: &[u8]) -> Result<HashTree, String> {
    let cert = Certificate::decode(cert_cbor)?;
    if cert.delegation.is_some() {
        return Err("certificates with a delegation are not supported".into());
    }
    let key = extract_der(root_key_der)?;
    if cert.signature.len() != SIGNATURE_BYTES {
        return Err(format!(
            "signature of {} bytes, expected {SIGNATURE_BYTES}",
            cert.signature.len()
        ));
    }
    let message = state_root_message(&cert.tree.digest());
    verify_bls_signature(&cert.signature, &message, &key)
        .map_err(|()| "certificate signature does not verify under the root key".to_string())?;
    Ok(cert.tree)
}

/// Unsigned LEB128: the encoding of natural numbers in the state tree (e.g. `/time` in
/// nanoseconds since the Unix epoch).
pub fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Decode an unsigned LEB128 number that spans all of `bytes`.
pub fn leb128_decode(bytes: &[u8]) -> Result<u64, String> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let shift = 7 * i as u32;
        let part = u64::from(b & 0x7f);
        if shift >= 64 || (shift > 0 && part >> (64 - shift) != 0) {
            return Err("LEB128 number overflows u64".into());
        }
        n |= part << shift;
        if b & 0x80 == 0 {
            return if i + 1 == bytes.len() {
                Ok(n)
            } else {
                Err("trailing bytes after LEB128 number".into())
            };
        }
    }
    Err("truncated LEB128 number".into())
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IC_DER_PREFIX_HEX: &str =
        "308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100";

    fn state() -> StateTree {
        let mut s = StateTree::new();
        s.insert(&[b"time".as_slice()], leb128(1_765_000_000_123_456_789));
        s.insert(
            &[b"request_status".as_slice(), &[1; 32], b"status"],
            b"replied".to_vec(),
        );
        s.insert(
            &[b"request_status".as_slice(), &[2; 32], b"status"],
            b"processing".to_vec(),
        );
        s
    }

    #[test]
    fn root_key_der_has_the_ic_prefix() {
        let key = RootKey::from_seed([7; 32]);
        let der = key.public_key_der();
        assert_eq!(der.len(), 133);
        assert_eq!(hex::encode(&der[..37]), IC_DER_PREFIX_HEX);
        assert_eq!(der[37..], key.public_key_raw());
        assert_eq!(extract_der(&der).unwrap(), key.public_key_raw());
        assert!(extract_der(&der[1..]).is_err());
        let mut bad = der.clone();
        bad[5] ^= 1;
        assert!(extract_der(&bad).is_err());
        // Deterministic per seed, different across seeds.
        assert_eq!(RootKey::from_seed([7; 32]).public_key_der(), der);
        assert_ne!(RootKey::from_seed([8; 32]).public_key_der(), der);
    }

    #[test]
    fn sign_root_verifies_with_ic_verify_bls_signature() {
        let key = RootKey::from_seed([1; 32]);
        let root = state().root_hash();
        let sig = key.sign_root(&root);
        let pk = key.public_key_raw();
        let mut msg = b"\x0dic-state-root".to_vec();
        msg.extend_from_slice(&root);
        assert_eq!(
            ic_verify_bls_signature::verify_bls_signature(&sig, &msg, &pk),
            Ok(())
        );
        // A flipped bit anywhere fails: signature, message, key.
        let mut bad_sig = sig;
        bad_sig[47] ^= 1;
        assert!(ic_verify_bls_signature::verify_bls_signature(&bad_sig, &msg, &pk).is_err());
        let mut bad_msg = msg.clone();
        bad_msg[20] ^= 1;
        assert!(ic_verify_bls_signature::verify_bls_signature(&sig, &bad_msg, &pk).is_err());
        // Without the domain separator it does not verify either.
        assert!(ic_verify_bls_signature::verify_bls_signature(&sig, &root, &pk).is_err());
        let other = RootKey::from_seed([2; 32]).public_key_raw();
        assert!(ic_verify_bls_signature::verify_bls_signature(&sig, &msg, &other).is_err());
    }

    #[test]
    fn certificate_round_trip_and_rejections() {
        let key = RootKey::from_seed([3; 32]);
        let s = state();
        let paths = vec![
            vec![b"time".to_vec()],
            vec![b"request_status".to_vec(), vec![1; 32]],
            vec![b"request_status".to_vec(), vec![0; 32]],
        ];
        let tree = s.witness(&paths);
        let cert = certificate_cbor(&tree, &key.sign_root(&s.root_hash()));
        assert_eq!(cert, key.certify(&s, &paths));
        assert_eq!(cert[..3], [0xd9, 0xd9, 0xf7]); // self-describe tag 55799

        let verified = verify_certificate(&cert, &key.public_key_der()).unwrap();
        assert_eq!(verified, tree);
        assert_eq!(
            verified.lookup(&[b"time".as_slice()]),
            Lookup::Found(&leb128(1_765_000_000_123_456_789))
        );
        assert_eq!(
            verified.lookup(&[b"request_status".as_slice(), &[1; 32], b"status"]),
            Lookup::Found(b"replied")
        );
        assert_eq!(
            verified.lookup(&[b"request_status".as_slice(), &[0; 32], b"status"]),
            Lookup::Absent
        );

        // Another root key.
        let other = RootKey::from_seed([4; 32]);
        assert!(verify_certificate(&cert, &other.public_key_der()).is_err());
        // A tampered tree (the signature is over the old root hash).
        let mut tampered = s.clone();
        tampered.insert(&[b"time".as_slice()], leb128(1));
        let forged = certificate_cbor(&tampered.witness(&paths), &key.sign_root(&s.root_hash()));
        assert!(verify_certificate(&forged, &key.public_key_der()).is_err());
        // A raw (non-DER) key.
        assert!(verify_certificate(&cert, &key.public_key_raw()).is_err());
        // Garbage.
        assert!(verify_certificate(&cert[..cert.len() - 1], &key.public_key_der()).is_err());
    }

    #[test]
    fn certificate_with_delegation_is_rejected() {
        let key = RootKey::from_seed([5; 32]);
        let tree = state().witness(&[vec![b"time".to_vec()]]);
        let sig = key.sign_root(&tree.digest());
        let cert = Value::Map(vec![
            (Value::Text("tree".into()), tree.to_cbor_value()),
            (Value::Text("signature".into()), Value::Bytes(sig.to_vec())),
            (
                Value::Text("delegation".into()),
                Value::Map(vec![
                    (Value::Text("subnet_id".into()), Value::Bytes(vec![1])),
                    (Value::Text("certificate".into()), Value::Bytes(vec![2])),
                ]),
            ),
        ]);
        let bytes = hash_tree::encode_value(&cert);
        assert!(Certificate::decode(&bytes).unwrap().delegation.is_some());
        assert!(verify_certificate(&bytes, &key.public_key_der()).is_err());
    }

    /// agent-rs decodes certificates with ic-certification's serde impl (`serde_cbor`); ours must
    /// decode there to the same tree and signature.
    #[test]
    fn certificate_decodes_in_agent_rs() {
        let key = RootKey::from_seed([6; 32]);
        let s = state();
        let cert = key.certify(&s, &[vec![b"time".to_vec()]]);
        let theirs: ic_certification::Certificate = serde_cbor::from_slice(&cert).unwrap();
        assert_eq!(theirs.tree.digest(), s.root_hash());
        assert_eq!(theirs.signature, key.sign_root(&s.root_hash()).to_vec());
        assert!(theirs.delegation.is_none());
        assert_eq!(
            theirs.tree.lookup_path([b"time".as_slice()]),
            ic_certification::LookupResult::Found(&leb128(1_765_000_000_123_456_789))
        );
        let msg = [b"\x0dic-state-root".as_slice(), &theirs.tree.digest()].concat();
        assert!(
            ic_verify_bls_signature::verify_bls_signature(
                &theirs.signature,
                &msg,
                &extract_der(&key.public_key_der()).unwrap()
            )
            .is_ok()
        );
    }

    #[test]
    fn leb128_vectors() {
        let cases: [(u64, &str); 6] = [
            (0, "00"),
            (127, "7f"),
            (128, "8001"),
            (624_485, "e58e26"),
            (1_700_000_000_000_000_000, "8080a8b1e39fe7cb17"),
            (u64::MAX, "ffffffffffffffffff01"),
        ];
        for (n, hex_enc) in cases {
            assert_eq!(hex::encode(leb128(n)), hex_enc, "{n}");
            assert_eq!(leb128_decode(&leb128(n)), Ok(n));
        }
        assert!(leb128_decode(&[0x80]).is_err());
        assert!(leb128_decode(&[0x00, 0x00]).is_err());
        assert!(leb128_decode(&hex::decode("ffffffffffffffffff02").unwrap()).is_err());
    }
}
