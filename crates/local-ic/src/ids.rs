//! Principals the runtime hands out.

use candid::Principal;

/// The management canister `aaaaa-aa`.
pub const MANAGEMENT_CANISTER: Principal = Principal::management_canister();

/// The principal of the canister with the given index: eight big-endian bytes followed by the
/// `0x01, 0x01` suffix, exactly how the IC forms canister ids. Index 0 is
/// `rwlgt-iiaaa-aaaaa-aaaaa-cai`.
pub fn canister_id_from_index(index: u64) -> Principal {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes[8] = 0x01;
    bytes[9] = 0x01;
    Principal::from_slice(&bytes)
}

/// The principal the local subnet reports for `ic0.subnet_self`: a self-authenticating-style id
/// derived from a fixed label, stable across runs.
pub fn local_subnet_id() -> Principal {
    Principal::self_authenticating(b"local-ic subnet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_canister_id_matches_the_ic_format() {
        assert_eq!(
            canister_id_from_index(0).to_text(),
            "rwlgt-iiaaa-aaaaa-aaaaa-cai"
        );
        assert_eq!(
            canister_id_from_index(1).to_text(),
            "rrkah-fqaaa-aaaaa-aaaaq-cai"
        );
    }
}
