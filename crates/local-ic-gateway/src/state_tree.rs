//! `read_state`: which paths a sender may read, the certified tree holding them, and the
//! certificate over it.

use candid::Principal;
use ciborium::Value;
use ic_certificate::{StateTree, certificate_cbor, leb128};
use local_ic::{CanisterState, MANAGEMENT_CANISTER, canister_id_from_index};

use crate::journal::RequestId;
use crate::node::{Node, RequestStatus};
use crate::refusal::{Refusal, refuse};

/// Canisters this subnet hosts: the first 2^20 ids, the range a local replica's subnet has.
pub const CANISTER_RANGE_LAST_INDEX: u64 = (1 << 20) - 1;

/// Where a `read_state` was sent.
#[derive(Debug, Clone, Copy)]
pub enum ReadStateTarget {
    Canister(Principal),
    Subnet(Principal),
}

fn text(label: &[u8]) -> &str {
    std::str::from_utf8(label).unwrap_or("<binary>")
}

/// The self-describing CBOR encoding of `value` (tag 55799), as the replica writes CBOR leaves.
fn cbor(value: Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Tag(55799, Box::new(value)), &mut out)
        .expect("writing CBOR to memory");
    out
}

fn principal_list(principals: impl IntoIterator<Item = Principal>) -> Vec<u8> {
    cbor(Value::Array(
        principals
            .into_iter()
            .map(|p| Value::Bytes(p.as_slice().to_vec()))
            .collect(),
    ))
}

pub fn canister_ranges() -> Vec<u8> {
    cbor(Value::Array(vec![Value::Array(vec![
        Value::Bytes(canister_id_from_index(0).as_slice().to_vec()),
        Value::Bytes(
            canister_id_from_index(CANISTER_RANGE_LAST_INDEX)
                .as_slice()
                .to_vec(),
        ),
    ])]))
}

/// Whether this subnet hosts `canister` (it may not exist yet).
pub fn hosts(canister: &Principal) -> bool {
    let bytes = canister.as_slice();
    bytes.len() == 10
        && bytes[8..] == [1, 1]
        && u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")) <= CANISTER_RANGE_LAST_INDEX
}

/// A custom section `icp:public <name>` or `icp:private <name>` of a canister's module.
fn metadata_section<'a>(wasm: &'a [u8], name: &str) -> Option<(bool, &'a [u8])> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let Ok(wasmparser::Payload::CustomSection(section)) = payload {
            let section_name = section.name();
            if section_name.strip_prefix("icp:public ") == Some(name) {
                return Some((true, section.data()));
            }
            if section_name.strip_prefix("icp:private ") == Some(name) {
                return Some((false, section.data()));
            }
        }
    }
    None
}

/// Checks the paths a `read_state` asks for and builds the certificate that answers it.
pub fn read_state(
    node: &Node,
    target: ReadStateTarget,
    sender: Principal,
    paths: &[Vec<Vec<u8>>],
) -> Result<Vec<u8>, Refusal> {
    let mut tree = StateTree::new();
    let subnet = node.keys.subnet_id;
    let mut request: Option<RequestId> = None;
    for path in paths {
        let Some(first) = path.first() else {
            continue;
        };
        match (first.as_slice(), target) {
            (b"time", _) => {}
            (b"subnet", _) => insert_subnet(node, &mut tree),
            (b"canister_ranges", _) => {
                tree.insert(
                    &[
                        b"canister_ranges",
                        subnet.as_slice(),
                        canister_id_from_index(0).as_slice(),
                    ],
                    canister_ranges(),
                );
            }
            (b"request_status", ReadStateTarget::Canister(effective)) => {
                let Some(id) = path.get(1) else {
                    return Err(refuse(
                        400,
                        "Invalid path requested: request_status needs a request id",
                    ));
                };
                let id: RequestId = id
                    .as_slice()
                    .try_into()
                    .map_err(|_| refuse(400, "Invalid path requested: a request id is 32 bytes"))?;
                if request.is_some_and(|r| r != id) {
                    return Err(refuse(
                        400,
                        "Can only request a single request ID in request_status paths",
                    ));
                }
                request = Some(id);
                insert_request_status(node, &mut tree, &id, sender, effective)?;
            }
            (b"canister", ReadStateTarget::Canister(effective)) => {
                insert_canister_path(node, &mut tree, path, sender, effective)?;
            }
            _ => {
                return Err(refuse(
                    404,
                    format!(
                        "Invalid path requested: /{} is not readable here",
                        text(first)
                    ),
                ));
            }
        }
    }
    Ok(certify(node, tree, paths))
}

/// The certificate of `tree`'s `paths` (and `/time`, always).
pub fn certify(node: &Node, mut tree: StateTree, paths: &[Vec<Vec<u8>>]) -> Vec<u8> {
    tree.insert(&[b"time"], leb128(node.time_nanos()));
    let mut wanted = paths.to_vec();
    wanted.push(vec![b"time".to_vec()]);
    let witness = tree.witness(&wanted);
    let signature = node.keys.sign_root(&witness.digest());
    certificate_cbor(&witness, &signature)
}

/// The certificate of a call's status, as the v4 call endpoint returns it.
pub fn call_certificate(node: &Node, request_id: &RequestId) -> Vec<u8> {
    let mut tree = StateTree::new();
    if let Some(status) = node.request_status(request_id) {
        insert_status(&mut tree, request_id, &status);
    }
    certify(
        node,
        tree,
        &[vec![b"request_status".to_vec(), request_id.to_vec()]],
    )
}

fn insert_subnet(node: &Node, tree: &mut StateTree) {
    let keys = &node.keys;
    let subnet = keys.subnet_id;
    let s = subnet.as_slice();
    tree.insert(&[b"subnet", s, b"public_key"], keys.root_key_der().to_vec());
    tree.insert(&[b"subnet", s, b"type"], b"application".to_vec());
    tree.insert(&[b"subnet", s, b"canister_ranges"], canister_ranges());
    tree.insert(
        &[
            b"subnet",
            s,
            b"node",
            keys.node_id.as_slice(),
            b"public_key",
        ],
        keys.node_key_der().to_vec(),
    );
}

fn insert_request_status(
    node: &Node,
    tree: &mut StateTree,
    id: &RequestId,
    sender: Principal,
    effective: Principal,
) -> Result<(), Refusal> {
    let Some(entry) = node.request(id) else {
        return Ok(());
    };
    if entry.sender != sender {
        return Err(refuse(
            403,
            format!(
                "Request IDs must be for requests signed by the caller: {} is not the sender of request 0x{}",
                sender,
                hex::encode(id)
            ),
        ));
    }
    if entry.effective != effective {
        return Err(refuse(
            400,
            format!(
                "Request 0x{} was sent to {}, not to {effective}",
                hex::encode(id),
                entry.effective
            ),
        ));
    }
    if let Some(status) = node.request_status(id) {
        insert_status(tree, id, &status);
    }
    Ok(())
}

fn insert_status(tree: &mut StateTree, id: &RequestId, status: &RequestStatus) {
    let at = |leaf: &'static [u8]| -> [&[u8]; 3] { [b"request_status", id.as_slice(), leaf] };
    match status {
        RequestStatus::Processing => tree.insert(&at(b"status"), b"processing".to_vec()),
        RequestStatus::Done => tree.insert(&at(b"status"), b"done".to_vec()),
        RequestStatus::Replied(reply) => {
            tree.insert(&at(b"status"), b"replied".to_vec());
            tree.insert(&at(b"reply"), reply.clone());
        }
        RequestStatus::Rejected(reject) => {
            tree.insert(&at(b"status"), b"rejected".to_vec());
            tree.insert(
                &at(b"reject_code"),
                leb128(u64::from(reject.reject_code.as_u32())),
            );
            tree.insert(
                &at(b"reject_message"),
                reject.reject_message.clone().into_bytes(),
            );
            if let Some(code) = &reject.error_code {
                tree.insert(&at(b"error_code"), code.clone().into_bytes());
            }
        }
    }
}

fn insert_canister_path(
    node: &Node,
    tree: &mut StateTree,
    path: &[Vec<u8>],
    sender: Principal,
    effective: Principal,
) -> Result<(), Refusal> {
    let Some(id) = path.get(1) else {
        return Err(refuse(
            400,
            "Invalid path requested: /canister needs a canister id",
        ));
    };
    let canister = Principal::try_from_slice(id)
        .map_err(|_| refuse(400, "Invalid path requested: not a canister id"))?;
    if canister != effective {
        return Err(refuse(
            400,
            format!(
                "Effective principal {effective} does not match the canister {canister} in the path"
            ),
        ));
    }
    let Some(state) = node.state().canisters.get(&canister) else {
        return Ok(());
    };
    let c = canister.as_slice();
    match path.get(2).map(Vec::as_slice) {
        None => {
            insert_module_hash(tree, state);
            tree.insert(
                &[b"canister", c, b"controllers"],
                principal_list(state.settings.controllers.iter().copied()),
            );
        }
        Some(b"module_hash") => insert_module_hash(tree, state),
        Some(b"controllers") => tree.insert(
            &[b"canister", c, b"controllers"],
            principal_list(state.settings.controllers.iter().copied()),
        ),
        Some(b"metadata") => {
            let Some(name) = path.get(3) else {
                return Err(refuse(
                    400,
                    "Invalid path requested: metadata needs a section name",
                ));
            };
            let name_text = std::str::from_utf8(name)
                .map_err(|_| refuse(400, "Invalid path requested: a section name is UTF-8"))?;
            let Some(code) = &state.code else {
                return Ok(());
            };
            if let Some((public, data)) = metadata_section(&code.wasm, name_text) {
                if !public && !state.settings.controllers.contains(&sender) {
                    return Err(refuse(
                        403,
                        format!(
                            "Custom section {name_text} can only be requested by the controllers of the canister."
                        ),
                    ));
                }
                tree.insert(&[b"canister", c, b"metadata", name], data.to_vec());
            }
        }
        Some(other) => {
            return Err(refuse(
                404,
                format!("Invalid path requested: /canister/<id>/{}", text(other)),
            ));
        }
    }
    Ok(())
}

fn insert_module_hash(tree: &mut StateTree, state: &CanisterState) {
    if let Some(code) = &state.code {
        tree.insert(
            &[b"canister", state.id.as_slice(), b"module_hash"],
            code.module_hash.to_vec(),
        );
    }
}

pub fn is_management(canister: &Principal) -> bool {
    *canister == MANAGEMENT_CANISTER
}
