//! Ingress to the management canister (`aaaaa-aa`): which canister a call is really for (its
//! effective canister id, which the URL must name), as the replica decides it.

use candid::Principal;
use candid::de::DecoderConfig;

use crate::refusal::{Refusal, refuse};

/// Methods whose argument names the canister in `canister_id`.
const BY_CANISTER_ID: [&str; 17] = [
    "install_code",
    "uninstall_code",
    "update_settings",
    "start_canister",
    "stop_canister",
    "canister_status",
    "delete_canister",
    "upload_chunk",
    "clear_chunk_store",
    "stored_chunks",
    "provisional_top_up_canister",
    "fetch_canister_logs",
    "take_canister_snapshot",
    "load_canister_snapshot",
    "list_canister_snapshots",
    "delete_canister_snapshot",
    "canister_metadata",
];

/// Bounds on reading the canister out of an argument. Only that field is decoded, so the rest
/// (a module of up to the 4 MiB body) is skipped: skipping may cost what the largest legitimate
/// body costs, and no more (a `vec null` of 2^62 elements is refused at once).
fn decoder_config() -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config
        .set_skipping_quota(1 << 24)
        .set_decoding_quota(1 << 30);
    config
}

/// The canister a management call from ingress acts on: `None` for creating one (any canister
/// id of the subnet may be the URL's), the argument's canister for the rest. Methods only
/// canisters may call, and arguments that do not decode (within the replica's decoding bounds),
/// are refused before anything is accepted.
pub fn effective_canister_id(method: &str, arg: &[u8]) -> Result<Option<Principal>, Refusal> {
    #[derive(candid::CandidType, candid::Deserialize)]
    struct ByCanisterId {
        canister_id: Principal,
    }
    #[derive(candid::CandidType, candid::Deserialize)]
    struct ByTargetCanister {
        target_canister: Principal,
    }
    let undecodable = |e: candid::Error| {
        refuse(
            400,
            format!("Failed to decode the argument of ic00 method {method}: {e}"),
        )
    };
    if method == "provisional_create_canister_with_cycles" {
        return Ok(None);
    }
    if method == "install_chunked_code" {
        let target: ByTargetCanister =
            candid::utils::decode_one_with_config(arg, &decoder_config()).map_err(undecodable)?;
        return Ok(Some(target.target_canister));
    }
    if BY_CANISTER_ID.contains(&method) {
        let target: ByCanisterId =
            candid::utils::decode_one_with_config(arg, &decoder_config()).map_err(undecodable)?;
        return Ok(Some(target.canister_id));
    }
    Err(refuse(
        400,
        format!("Only canisters can call ic00 method {method}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::{CandidType, Encode};

    #[derive(CandidType)]
    struct Status {
        canister_id: Principal,
    }

    #[derive(CandidType)]
    struct Chunked {
        target_canister: Principal,
        wasm_module_hash: Vec<u8>,
    }

    #[derive(CandidType)]
    struct Install {
        mode: Mode,
        canister_id: Principal,
        wasm_module: serde_bytes::ByteBuf,
        arg: serde_bytes::ByteBuf,
    }

    #[derive(CandidType)]
    #[allow(non_camel_case_types)]
    enum Mode {
        install,
    }

    #[test]
    fn a_module_of_the_largest_body_is_read_past() {
        let id = Principal::from_text("rwlgt-iiaaa-aaaaa-aaaaa-cai").unwrap();
        let install = Encode!(&Install {
            mode: Mode::install,
            canister_id: id,
            wasm_module: serde_bytes::ByteBuf::from(vec![7; crate::http::MAX_BODY_BYTES]),
            arg: serde_bytes::ByteBuf::new(),
        })
        .unwrap();
        assert_eq!(
            effective_canister_id("install_code", &install),
            Ok(Some(id))
        );
    }

    #[test]
    fn the_argument_names_the_canister() {
        let id = Principal::from_text("rwlgt-iiaaa-aaaaa-aaaaa-cai").unwrap();
        let status = Encode!(&Status { canister_id: id }).unwrap();
        assert_eq!(
            effective_canister_id("canister_status", &status),
            Ok(Some(id))
        );
        let chunked = Encode!(&Chunked {
            target_canister: id,
            wasm_module_hash: vec![0; 32]
        })
        .unwrap();
        assert_eq!(
            effective_canister_id("install_chunked_code", &chunked),
            Ok(Some(id))
        );
        assert_eq!(
            effective_canister_id("provisional_create_canister_with_cycles", &[]),
            Ok(None)
        );
    }

    #[test]
    fn canister_only_methods_and_bad_arguments_are_refused() {
        for method in [
            "raw_rand",
            "http_request",
            "create_canister",
            "sign_with_ecdsa",
            "nope",
        ] {
            let refusal = effective_canister_id(method, &Encode!().unwrap()).unwrap_err();
            assert_eq!(refusal.status, 400);
            assert!(
                refusal.message.contains("Only canisters"),
                "{}",
                refusal.message
            );
        }
        assert_eq!(
            effective_canister_id("canister_status", b"DIDL garbage")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn skipping_unknown_data_is_bounded() {
        // `record { canister_id; extra : vec null }` with 2^24 nulls: a well-formed argument
        // whose unknown field costs more to skip than any legitimate body.
        let mut arg = b"DIDL".to_vec();
        // Type table: 2 types. 0: record { canister_id (hash) : principal; extra : 1 }, 1: vec null.
        arg.extend([2u8, 0x6c, 2]);
        let field = |hash: u32, ty: u8, out: &mut Vec<u8>| {
            let mut h = hash;
            loop {
                let byte = (h & 0x7f) as u8;
                h >>= 7;
                if h == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            out.push(ty);
        };
        let canister_id_hash = candid::idl_hash("canister_id");
        let extra_hash = candid::idl_hash("zzzz_extra");
        let (first, second) = if canister_id_hash < extra_hash {
            ((canister_id_hash, 0x68u8), (extra_hash, 1u8))
        } else {
            ((extra_hash, 1u8), (canister_id_hash, 0x68u8))
        };
        field(first.0, first.1, &mut arg);
        field(second.0, second.1, &mut arg);
        arg.extend([0x6d, 0x7f]); // type 1: vec null
        arg.extend([1, 0]); // one argument of type 0
        // Values in field order.
        let id = Principal::from_text("rwlgt-iiaaa-aaaaa-aaaaa-cai").unwrap();
        let mut principal = vec![1, id.as_slice().len() as u8];
        principal.extend_from_slice(id.as_slice());
        let huge_vec = [0x80, 0x80, 0x80, 0x08]; // 2^24 nulls (no bytes each)
        for (_, ty) in [first, second] {
            if ty == 0x68 {
                arg.extend(&principal);
            } else {
                arg.extend(huge_vec);
            }
        }
        #[derive(candid::CandidType, candid::Deserialize, Debug)]
        struct Probe {
            canister_id: Principal,
        }
        // Without bounds it decodes (after skipping 16 million values)…
        assert_eq!(candid::decode_one::<Probe>(&arg).unwrap().canister_id, id);
        // …with the replica's, it is refused.
        let refusal = effective_canister_id("canister_status", &arg).unwrap_err();
        assert_eq!(refusal.status, 400);
    }
}
