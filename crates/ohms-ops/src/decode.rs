//! Candid argument decoding with bounded work, refused arguments answered with a typed error.
//!
//! ic-cdk's default decoder (what a plain `#[update]` uses) limits only how much unknown data
//! may be skipped; the work of decoding the data the method does take is unbounded. A vector of
//! tiny elements — a million empty header pairs in a 2 MiB message, or far more zero-sized ones
//! (`null`, an empty record in place of one with only optional fields) — is cheap on the wire
//! and costly to decode: about 2,000 instructions per header pair. These decoders also bound
//! that work, so such an argument is refused after a small, fixed amount of it.
//!
//! Endpoints use them through [`endpoint!`](crate::endpoint), which turns a refusal into the
//! endpoint's own typed reply ([`RefusedReply`]): `Err(Error::InvalidArgument)` naming the
//! argument, or `400 Bad Request` for `http_request`.

use candid::utils::ArgumentDecoder;
use candid::{CandidType, DecoderConfig};
use ohms_types::{Error, HttpResponse};
use serde::de::DeserializeOwned;

/// The largest argument the IC delivers to a canister (ingress and inter-canister messages).
pub const MAX_ARGUMENT_BYTES: usize = 2 * 1024 * 1024;

/// Decoding work allowed for an ordinary argument, in Candid's cost units: about one per byte
/// of a `blob` or `text`, 13 per element of a vector of pairs of empty texts, 50 per unit of
/// skipped data. Arguments that are not bulk data are small (pages, principals, texts bounded
/// to a few KiB, lists bounded to hundreds of items); at about 160 instructions per unit of
/// compound data, refusing an argument over this quota costs some 16 million instructions.
pub const DECODING_QUOTA: usize = 100_000;
/// Decoding work allowed for an endpoint that takes bulk bytes (`bulk` in
/// [`endpoint!`](crate::endpoint)): twice the largest argument, so blobs up to the IC's
/// message limit fit. Declare such bytes as `blob` (`serde_bytes`): a plain `Vec<u8>` costs 4
/// units per byte.
pub const BULK_DECODING_QUOTA: usize = 2 * MAX_ARGUMENT_BYTES;
/// Unknown (skipped) data allowed, in the same units; ic-cdk's default, and what Candid's
/// documentation recommends.
pub const SKIPPING_QUOTA: usize = 10_000;

/// The `decode_with` function of [`endpoint!`](crate::endpoint): the argument, or why it was
/// refused.
pub fn argument<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> Result<T, String> {
    decode_one(&bytes)
}

/// [`argument`] for endpoints that take bulk bytes, within [`BULK_DECODING_QUOTA`].
pub fn bulk_argument<T: CandidType + DeserializeOwned>(bytes: Vec<u8>) -> Result<T, String> {
    decode_one_within(&bytes, BULK_DECODING_QUOTA)
}

/// One argument, within [`DECODING_QUOTA`].
pub fn decode_one<T: CandidType + DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    decode_one_within(bytes, DECODING_QUOTA)
}

/// Several arguments (an endpoint with more than one parameter), within [`DECODING_QUOTA`].
pub fn arguments<T: for<'de> ArgumentDecoder<'de>>(bytes: Vec<u8>) -> Result<T, String> {
    candid::utils::decode_args_with_config(&bytes, &config(DECODING_QUOTA))
        .map_err(|err| format!("failed to decode the call arguments: {err:#}"))
}

/// The decoder settings every endpoint uses: `decoding_quota`, [`SKIPPING_QUOTA`], short
/// error messages. For endpoints that decode by hand (e.g. to borrow bulk bytes).
pub fn config(decoding_quota: usize) -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_decoding_quota(decoding_quota)
        .set_skipping_quota(SKIPPING_QUOTA)
        .set_full_error_message(false);
    config
}

fn decode_one_within<T: CandidType + DeserializeOwned>(
    bytes: &[u8],
    decoding_quota: usize,
) -> Result<T, String> {
    let config = config(decoding_quota);
    // No argument at all reads as an empty argument list.
    let bytes = if bytes.is_empty() {
        b"DIDL\x00\x00"
    } else {
        bytes
    };
    candid::utils::decode_one_with_config(bytes, &config)
        // `:#` keeps the cause ("Decoding cost exceeds the limit") after Candid's context.
        .map_err(|err| format!("failed to decode the call argument: {err:#}"))
}

/// What an endpoint replies when its argument is refused before the method runs.
pub trait RefusedReply {
    fn refused(error: Error) -> Self;
}

impl<T> RefusedReply for Result<T, Error> {
    fn refused(error: Error) -> Self {
        Err(error)
    }
}

/// The HTTP gateway expects an HTTP answer, not a Candid error.
impl RefusedReply for HttpResponse {
    fn refused(error: Error) -> Self {
        crate::metrics::response(
            400,
            "text/plain; charset=utf-8",
            error.to_string().into_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Encode;
    use ohms_types::{HttpRequest, Page};

    /// What `#[update]` decodes with when no `decode_with` is given (ic-cdk-macros 0.20).
    fn ic_cdk_default() -> DecoderConfig {
        let mut config = DecoderConfig::new();
        config.set_skipping_quota(10_000);
        config
    }

    fn headers(pairs: usize) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: "/metrics".into(),
            headers: vec![(String::new(), String::new()); pairs],
            body: vec![],
        }
    }

    #[test]
    fn ordinary_arguments_decode() {
        let page = Page { start: 3, limit: 9 };
        assert_eq!(decode_one::<Page>(&Encode!(&page).unwrap()), Ok(page));
    }

    #[test]
    fn a_browser_request_decodes() {
        let mut request = headers(0);
        request.headers = (0..40)
            .map(|i| (format!("x-header-{i}"), "v".repeat(200)))
            .collect();
        let bytes = Encode!(&request).unwrap();
        assert_eq!(decode_one::<HttpRequest>(&bytes).unwrap().headers.len(), 40);
    }

    #[test]
    fn the_largest_blob_argument_decodes_as_bulk_only() {
        let mut request = headers(20);
        request.body = vec![7; MAX_ARGUMENT_BYTES - 1024];
        let bytes = Encode!(&request).unwrap();
        assert!(bytes.len() <= MAX_ARGUMENT_BYTES);
        let decoded = bulk_argument::<HttpRequest>(bytes.clone()).unwrap();
        assert_eq!(decoded.body.len(), request.body.len());
        let err = argument::<HttpRequest>(bytes).unwrap_err();
        assert!(err.contains("Decoding cost exceeds the limit"), "{err}");
    }

    #[test]
    fn many_tiny_elements_pass_ic_cdks_decoder_but_not_the_quota() {
        // 100,000 empty header pairs: 200 KB on the wire, 1,300,000 units of work.
        let hostile = Encode!(&headers(100_000)).unwrap();
        assert!(hostile.len() < MAX_ARGUMENT_BYTES / 10);
        let default =
            candid::utils::decode_one_with_config::<HttpRequest>(&hostile, &ic_cdk_default());
        assert_eq!(default.unwrap().headers.len(), 100_000);
        let err = decode_one::<HttpRequest>(&hostile).unwrap_err();
        assert!(err.contains("Decoding cost exceeds the limit"), "{err}");
    }

    #[test]
    fn a_vector_of_millions_of_nulls_is_refused_by_the_quota() {
        // Tiny on the wire, costly to decode: `null` is a valid `opt` and takes no bytes, so a
        // vector of them costs work but no message size (the classic Candid amplification).
        let hostile = Encode!(&vec![(); 3_000_000]).unwrap();
        assert!(hostile.len() < 64);
        let default =
            candid::utils::decode_one_with_config::<Vec<Option<u8>>>(&hostile, &ic_cdk_default());
        assert_eq!(
            default.unwrap().len(),
            3_000_000,
            "only the quota may refuse it"
        );
        let err = decode_one::<Vec<Option<u8>>>(&hostile).unwrap_err();
        assert!(err.contains("Decoding cost exceeds the limit"), "{err}");
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
        let err = decode_one::<Page>(&Encode!(&padded).unwrap()).unwrap_err();
        // Skipped data costs 50 units per unit against the decoding quota, so that is the one
        // reached first for ordinary arguments.
        assert!(err.contains("cost exceeds the limit"), "{err}");
        let err = bulk_argument::<Page>(Encode!(&padded).unwrap()).unwrap_err();
        assert!(err.contains("Skipping cost exceeds the limit"), "{err}");
    }

    #[test]
    fn refusals_are_typed_replies() {
        let error = Error::invalid_argument("request", "failed to decode the call argument");
        assert_eq!(
            <Result<(), Error>>::refused(error.clone()),
            Err(error.clone())
        );
        let response = HttpResponse::refused(error.clone());
        assert_eq!(response.status_code, 400);
        assert_eq!(response.body, error.to_string().into_bytes());
    }
}
