//! `Cbor<T>`: store any serde type in a stable structure as CBOR.

use std::borrow::Cow;

use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableCell, Storable};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value stored as CBOR, unbounded in size, so stored types can gain fields
/// (`#[serde(default)]`) without a migration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cbor<T>(pub T);

impl<T: Serialize + DeserializeOwned> Storable for Cbor<T> {
    const BOUND: Bound = Bound::Unbounded;

    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode(&self.0))
    }

    fn into_bytes(self) -> Vec<u8> {
        encode(&self.0)
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        // Stored bytes were written by `encode`; failing to read them back is corruption.
        Self(
            ciborium::from_reader(bytes.as_ref())
                .unwrap_or_else(|err| panic!("corrupt CBOR value in stable memory: {err}")),
        )
    }
}

/// Changes a value a stable cell keeps whole (a configuration): read, change, write back.
pub fn update_cell<T, M, R>(
    cell: &mut StableCell<Cbor<T>, M>,
    change: impl FnOnce(&mut T) -> R,
) -> R
where
    T: Serialize + DeserializeOwned + Clone,
    M: Memory,
{
    let mut value = cell.get().0.clone();
    let result = change(&mut value);
    cell.set(Cbor(value));
    result
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("CBOR encoding into a Vec cannot fail");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        name: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[test]
    fn round_trips_and_reads_older_versions() {
        let old = Cbor(V1 { name: "m".into() });
        assert_eq!(Cbor::<V1>::from_bytes(old.to_bytes()), old);
        let upgraded = Cbor::<V2>::from_bytes(old.to_bytes());
        assert_eq!(
            upgraded.0,
            V2 {
                name: "m".into(),
                tags: vec![]
            }
        );
    }
}
