//! The network's root key and the data certificates queries see: real IC certificates (CBOR, a
//! hash tree holding `/canister/<id>/certified_data` and `/time`, BLS-signed over
//! `ic-state-root`), signed with the key the HTTP gateway derives from the same seed
//! (`ic_certificate::RootKey::from_seed(random_seed)`), so a canister's `ic0.root_key_copy`
//! and the gateway's `/api/v2/status` agree, and a certificate a canister hands out verifies
//! under that key.

use std::sync::{Arc, OnceLock};

use candid::Principal;
use ic_certificate::{RootKey, StateTree, leb128};

/// A network's root key, derived once from its seed (derivation hashes to a scalar and computes
/// a G2 point: too slow to repeat per message).
pub struct NetworkRootKey {
    seed: [u8; 32],
    key: RootKey,
    der: Vec<u8>,
}

impl std::fmt::Debug for NetworkRootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NetworkRootKey").field(&self.key).finish()
    }
}

impl NetworkRootKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = RootKey::from_seed(seed);
        let der = key.public_key_der();
        Self { seed, key, der }
    }

    /// The seed the key was derived from.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The DER-encoded public key (133 bytes): what `ic0.root_key_copy` returns.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate a query of `canister` sees for its `certified_data` at `time_nanos`:
    /// the paths `/time` and `/canister/<id>/certified_data`, signed (about a millisecond).
    pub fn data_certificate(
        &self,
        canister: Principal,
        certified_data: &[u8],
        time_nanos: u64,
    ) -> Vec<u8> {
        let mut tree = StateTree::new();
        tree.insert(&[b"time".as_slice()], leb128(time_nanos));
        let certified_data_path = [
            b"canister".as_slice(),
            canister.as_slice(),
            b"certified_data",
        ];
        tree.insert(&certified_data_path, certified_data.to_vec());
        let paths = [
            vec![b"time".to_vec()],
            certified_data_path.iter().map(|l| l.to_vec()).collect(),
        ];
        self.key.certify(&tree, &paths)
    }
}

/// The data certificate of one non-replicated message: what it certifies, signed only the first
/// time the canister asks for it (`ic0.data_certificate_present/size/copy`), since most queries
/// never do and a signature costs about a millisecond.
#[derive(Debug)]
pub struct LazyDataCertificate {
    root_key: Arc<NetworkRootKey>,
    canister: Principal,
    certified_data: Vec<u8>,
    time_nanos: u64,
    built: OnceLock<Arc<[u8]>>,
}

impl LazyDataCertificate {
    pub fn new(
        root_key: Arc<NetworkRootKey>,
        canister: Principal,
        certified_data: Vec<u8>,
        time_nanos: u64,
    ) -> Self {
        Self {
            root_key,
            canister,
            certified_data,
            time_nanos,
            built: OnceLock::new(),
        }
    }

    /// The certificate, signed on the first call.
    pub fn get(&self) -> &Arc<[u8]> {
        self.built.get_or_init(|| {
            self.root_key
                .data_certificate(self.canister, &self.certified_data, self.time_nanos)
                .into()
        })
    }

    /// Whether the certificate has been signed yet.
    #[cfg(test)]
    pub fn is_built(&self) -> bool {
        self.built.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_certificate::{Lookup, verify_certificate};

    #[test]
    fn the_root_key_is_the_gateways() {
        let seed = [9; 32];
        let key = NetworkRootKey::from_seed(seed);
        assert_eq!(key.der(), RootKey::from_seed(seed).public_key_der());
        assert_eq!(key.der().len(), 133);
        assert_eq!(key.seed(), seed);
        assert_ne!(key.der(), NetworkRootKey::from_seed([10; 32]).der());
    }

    #[test]
    fn a_data_certificate_verifies_and_holds_the_certified_data_and_time() {
        let key = NetworkRootKey::from_seed([3; 32]);
        let id = crate::ids::canister_id_from_index(3);
        let time = 1_765_000_000_123_456_789;
        let cert = key.data_certificate(id, b"hello-certified", time);
        let tree = verify_certificate(&cert, key.der()).expect("the certificate verifies");
        assert_eq!(
            tree.lookup(&[b"canister".as_slice(), id.as_slice(), b"certified_data"]),
            Lookup::Found(b"hello-certified")
        );
        assert_eq!(
            tree.lookup(&[b"time".as_slice()]),
            Lookup::Found(&leb128(time))
        );
        // Another network's key does not verify it.
        let other = NetworkRootKey::from_seed([4; 32]);
        assert!(verify_certificate(&cert, other.der()).is_err());
        // Empty certified data is certified as an empty leaf.
        let empty = key.data_certificate(id, b"", time);
        let tree = verify_certificate(&empty, key.der()).unwrap();
        assert_eq!(
            tree.lookup(&[b"canister".as_slice(), id.as_slice(), b"certified_data"]),
            Lookup::Found(b"")
        );
    }

    #[test]
    fn a_lazy_certificate_is_signed_once_on_first_use() {
        let key = Arc::new(NetworkRootKey::from_seed([5; 32]));
        let id = crate::ids::canister_id_from_index(0);
        let lazy = LazyDataCertificate::new(key.clone(), id, b"data".to_vec(), 42);
        assert!(!lazy.is_built());
        let first = lazy.get().clone();
        assert!(lazy.is_built());
        assert!(Arc::ptr_eq(&first, lazy.get()));
        assert_eq!(&first[..], key.data_certificate(id, b"data", 42));
    }
}
