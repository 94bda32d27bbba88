//! The network's keys: the root key that signs certificates (the subnet's threshold key on the
//! IC) and the node key that signs query responses, both derived from the network's seed so a
//! restarted network keeps its identity.

use candid::Principal;
use ed25519_dalek::{Signer, SigningKey};
use ic_certificate::RootKey;
use sha2::{Digest, Sha256};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const ED25519_DER_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Domain separator of a signed query response ("\x0Bic-response").
const RESPONSE_DOMAIN: &[u8] = b"\x0bic-response";

pub struct NetworkKeys {
    root: RootKey,
    root_key_der: Vec<u8>,
    node: SigningKey,
    node_key_der: Vec<u8>,
    /// The subnet id of an undelegated certificate: the self-authenticating id of the root key.
    pub subnet_id: Principal,
    /// The one node's id: the self-authenticating id of its key.
    pub node_id: Principal,
}

impl NetworkKeys {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let root = RootKey::from_seed(seed);
        let root_key_der = root.public_key_der();
        let node_seed: [u8; 32] = Sha256::new()
            .chain_update(b"local-ic node key")
            .chain_update(seed)
            .finalize()
            .into();
        let node = SigningKey::from_bytes(&node_seed);
        let mut node_key_der = ED25519_DER_PREFIX.to_vec();
        node_key_der.extend_from_slice(node.verifying_key().as_bytes());
        Self {
            subnet_id: Principal::self_authenticating(&root_key_der),
            node_id: Principal::self_authenticating(&node_key_der),
            root,
            root_key_der,
            node,
            node_key_der,
        }
    }

    pub fn root_key_der(&self) -> &[u8] {
        &self.root_key_der
    }

    pub fn node_key_der(&self) -> &[u8] {
        &self.node_key_der
    }

    pub fn sign_root(&self, root_hash: &[u8; 32]) -> [u8; 48] {
        self.root.sign_root(root_hash)
    }

    /// The node's signature of a query response whose representation-independent hash is
    /// `response_hash`.
    pub fn sign_response(&self, response_hash: &[u8; 32]) -> [u8; 64] {
        let mut message = RESPONSE_DOMAIN.to_vec();
        message.extend_from_slice(response_hash);
        self.node.sign(&message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn keys_are_the_seeds_and_node_signatures_verify() {
        let keys = NetworkKeys::from_seed([7; 32]);
        let again = NetworkKeys::from_seed([7; 32]);
        assert_eq!(keys.root_key_der(), again.root_key_der());
        assert_eq!(keys.node_id, again.node_id);
        assert_ne!(
            keys.root_key_der(),
            NetworkKeys::from_seed([8; 32]).root_key_der()
        );
        assert_eq!(keys.node_key_der().len(), 44);

        let hash = [3u8; 32];
        let signature = Signature::from_bytes(&keys.sign_response(&hash));
        let key = VerifyingKey::from_bytes(keys.node_key_der()[12..].try_into().unwrap()).unwrap();
        let mut message = b"\x0bic-response".to_vec();
        message.extend_from_slice(&hash);
        assert!(key.verify(&message, &signature).is_ok());
        message[20] ^= 1;
        assert!(key.verify(&message, &signature).is_err());
    }
}
