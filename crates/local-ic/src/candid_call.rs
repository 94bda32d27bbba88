//! Candid encoding and decoding for the typed call helpers (`update`, `query`, `*_tuple`) of
//! [`LocalIc`](crate::LocalIc) and of the test API built on it, written once.

use candid::CandidType;
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use serde::de::DeserializeOwned;

use crate::reject::RejectResponse;

/// Failures of the typed helpers: the call was rejected, or its Candid did not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Rejected(#[from] RejectResponse),
    #[error("Candid error: {0}")]
    Candid(String),
}

/// The Candid bytes of an argument list.
pub fn encode_args<A: ArgumentEncoder>(args: A) -> Result<Vec<u8>, CallError> {
    candid::encode_args(args).map_err(|e| CallError::Candid(e.to_string()))
}

/// A reply holding one value.
pub fn decode_one<R: CandidType + DeserializeOwned>(reply: &[u8]) -> Result<R, CallError> {
    candid::decode_one(reply).map_err(|e| CallError::Candid(e.to_string()))
}

/// A reply holding several values, as a tuple.
pub fn decode_tuple<R: for<'de> ArgumentDecoder<'de>>(reply: &[u8]) -> Result<R, CallError> {
    candid::decode_args(reply).map_err(|e| CallError::Candid(e.to_string()))
}
