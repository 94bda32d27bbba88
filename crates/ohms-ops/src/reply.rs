//! Candid replies of hot endpoints, with the type part encoded once.
//!
//! Candid's encoder rebuilds a reply's type table from the Rust types for every message (the
//! type memo is cleared per encoding); for a reply type with many variants — every `Result<_,
//! Error>` — that is most of a small query's instructions. The type part depends only on the
//! Rust type, so it is encoded once and kept; each reply encodes just its value behind it.
//!
//! A query's heap changes are discarded, so a header first computed in a query is computed
//! again in the next one: canisters [`warm`] the headers of their hot replies in `init` and
//! `post_upgrade`, whose heap stays.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use candid::CandidType;
use candid::ser::{TypeSerialize, ValueSerializer};

thread_local! {
    static HEADERS: RefCell<BTreeMap<TypeId, Rc<[u8]>>> = const { RefCell::new(BTreeMap::new()) };
}

/// `DIDL`, the type table and the argument list of a one-value message of type `T`.
fn header<T: CandidType + 'static>() -> Rc<[u8]> {
    let id = TypeId::of::<T>();
    if let Some(header) = HEADERS.with(|h| h.borrow().get(&id).cloned()) {
        return header;
    }
    candid::types::internal::env_clear();
    let mut types = TypeSerialize::new();
    types
        .push_type(&T::ty())
        .and_then(|()| types.serialize())
        .expect("the type of a reply encodes");
    let mut header = b"DIDL".to_vec();
    header.extend_from_slice(types.get_result());
    let header: Rc<[u8]> = header.into();
    HEADERS.with(|h| h.borrow_mut().insert(id, header.clone()));
    header
}

/// Encodes the type part of `T` now, so later messages (queries included) reuse it.
pub fn warm<T: CandidType + 'static>() {
    header::<T>();
}

/// `value` as a one-value Candid message, byte for byte what `candid::encode_one` gives.
pub fn encode<T: CandidType + 'static>(value: &T) -> Vec<u8> {
    let header = header::<T>();
    let mut values = ValueSerializer::new();
    value
        .idl_serialize(&mut values)
        .expect("a reply value encodes");
    let mut bytes = Vec::with_capacity(header.len() + values.get_result().len());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(values.get_result());
    bytes
}

/// Replies to the message now executing with `value` (for `manual_reply` endpoints).
pub fn reply<T: CandidType + 'static>(value: &T) {
    ic_cdk::api::msg_reply(encode(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ohms_types::{Error, Page, Paged};

    #[test]
    fn the_bytes_are_candids() {
        let values: Vec<Result<Paged<u64>, Error>> = vec![
            Ok(Page::first(3).slice(&[1, 2, 3, 4])),
            Err(Error::Busy),
            Err(Error::invalid_argument("page", "too big")),
        ];
        for value in &values {
            assert_eq!(encode(value), candid::encode_one(value).unwrap());
            // Again, from the kept header.
            assert_eq!(encode(value), candid::encode_one(value).unwrap());
        }
        assert_eq!(encode(&7u32), candid::encode_one(7u32).unwrap());
    }
}
