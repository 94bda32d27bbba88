//! The unit test every canister runs: its exported interface is exactly the committed `.did`.

use candid_parser::utils::{CandidSource, service_equal};

/// Panics with both interfaces when `exported` (from `candid::export_service!`) and the
/// committed `.did` text differ.
pub fn assert_service_equal(exported: String, committed_did: &str) {
    if let Err(err) = service_equal(
        CandidSource::Text(committed_did),
        CandidSource::Text(&exported),
    ) {
        panic!(
            "the committed .did differs from the interface the code exports: {err}\n--- exported by the code ---\n{exported}"
        );
    }
}
