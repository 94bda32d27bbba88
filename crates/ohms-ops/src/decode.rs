//! Candid argument decoding with bounded work.
//!
//! ic-cdk's default decoder limits only how much unknown data may be skipped. These decoders
//! also bound the decoding work, so a hostile argument (huge vectors of `null`, deep nesting,
//! thousands of unknown fields) fails fast instead of burning the message's instruction budget.
//! Use with `#[update(decode_with = "ohms_ops::decode::one")]`.

use candid::utils::ArgumentDecoder;
use candid::{CandidType, DecoderConfig};
use serde::de::DeserializeOwned;

/// Decoding work allowed for one argument list (Candid's cost units, about one per byte of
/// blob data and more per value of a composite type).
pub const DECODING_QUOTA: usize = 20_000_000;
/// Unknown (skipped) data allowed, in the same units.
pub const SKIPPING_QUOTA: usize = 10_000;

fn config() -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_decoding_quota(DECODING_QUOTA)
        .set_skipping_quota(SKIPPING_QUOTA)
        .set_full_error_message(false);
    config
}

/// Decodes a single argument; traps (rejecting the message) when it is not one.
pub fn one<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> T {
    decode_one(&bytes).unwrap_or_else(|err| ic_cdk::trap(err))
}

/// Decodes an argument list; traps (rejecting the message) when it does not match.
pub fn args<T: for<'a> ArgumentDecoder<'a>>(bytes: Vec<u8>) -> T {
    decode_args(&bytes).unwrap_or_else(|err| ic_cdk::trap(err))
}

pub fn decode_one<T: CandidType + DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    candid::utils::decode_one_with_config(with_empty_as_no_args(bytes), &config())
        .map_err(|err| format!("failed to decode the call argument: {err}"))
}

pub fn decode_args<T: for<'a> ArgumentDecoder<'a>>(bytes: &[u8]) -> Result<T, String> {
    candid::utils::decode_args_with_config(with_empty_as_no_args(bytes), &config())
        .map_err(|err| format!("failed to decode the call arguments: {err}"))
}

fn with_empty_as_no_args(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() {
        b"DIDL\x00\x00"
    } else {
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::{Encode, Reserved};
    use ohms_types::Page;

    #[test]
    fn ordinary_arguments_decode() {
        let page = Page { start: 3, limit: 9 };
        assert_eq!(decode_one::<Page>(&Encode!(&page).unwrap()), Ok(page));
    }

    #[test]
    fn a_vector_of_millions_of_nulls_is_refused_by_the_quota() {
        // Tiny on the wire, costly to decode: the classic Candid amplification.
        let hostile = Encode!(&vec![Reserved; 3_000_000]).unwrap();
        assert!(hostile.len() < 64);
        let unbounded =
            candid::utils::decode_one_with_config::<Vec<Reserved>>(&hostile, &DecoderConfig::new());
        assert!(unbounded.is_ok(), "only the quota may refuse it");
        assert!(decode_one::<Vec<Reserved>>(&hostile).is_err());
    }

    #[test]
    fn many_unknown_fields_are_refused() {
        #[derive(candid::CandidType)]
        struct Padded {
            start: u64,
            limit: u32,
            junk: Vec<Vec<u8>>,
        }
        let padded = Padded {
            start: 0,
            limit: 1,
            junk: vec![vec![0; 64]; 1_000],
        };
        assert!(decode_one::<Page>(&Encode!(&padded).unwrap()).is_err());
    }
}
