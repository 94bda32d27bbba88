//! The served network without HTTP: calls journaled and replayed after a crash, and what
//! `read_state` certifies to whom — through the real fixture canister's wasm.

use std::path::PathBuf;

use candid::{Encode, Principal};
use ic_certificate::{Lookup, leb128, verify_certificate};
use local_ic::{LocalIc, NetworkState};
use local_ic_gateway::node::{Node, RequestStatus, Submission, wall_clock_nanos};
use local_ic_gateway::state_tree::{ReadStateTarget, call_certificate, read_state};

/// A module with a public and a private metadata section, as `ic-wasm metadata` writes them.
fn module_with_metadata() -> Vec<u8> {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    for (name, data) in [
        ("icp:public candid:service", b"service : {}".as_slice()),
        ("icp:private secret", b"for controllers".as_slice()),
    ] {
        let mut section = vec![name.len() as u8];
        section.extend_from_slice(name.as_bytes());
        section.extend_from_slice(data);
        wasm.push(0);
        wasm.push(section.len() as u8);
        wasm.extend(section);
    }
    wasm
}

struct Setup {
    dir: PathBuf,
    counter: Principal,
    bare: Principal,
}

const ALICE: &[u8] = b"alice";

fn alice() -> Principal {
    Principal::self_authenticating(ALICE)
}

fn bob() -> Principal {
    Principal::self_authenticating(b"bob")
}

fn open(name: &str) -> Option<(Node, Setup)> {
    let wasm = ic_test_env::fixture_wasm("fixture_state")?;
    let dir = std::env::temp_dir().join(format!("gateway-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut ids = (Principal::anonymous(), Principal::anonymous());
    let opened = Node::open(&dir, || {
        let mut ic = LocalIc::with_seed([9; 32]);
        let counter = ic.create_canister_with_settings(Some(alice()), None);
        ic.install_canister(counter, wasm, Encode!(&0u64).unwrap(), Some(alice()))
            .expect("installing the counter");
        let bare = ic.create_canister_with_settings(Some(alice()), None);
        ic.install_canister(bare, module_with_metadata(), vec![], Some(alice()))
            .expect("installing the metadata module");
        ids = (counter, bare);
        Ok::<NetworkState, anyhow::Error>(ic.state().clone())
    })
    .expect("opening the network");
    Some((
        opened.node,
        Setup {
            dir,
            counter: ids.0,
            bare: ids.1,
        },
    ))
}

fn increment(node: &mut Node, counter: Principal, nonce: u8) -> [u8; 32] {
    let request_id = [nonce; 32];
    let call = Submission {
        request_id,
        sender: alice(),
        canister: counter,
        effective: counter,
        method: "increment".into(),
        arg: Encode!().unwrap(),
        ingress_expiry: wall_clock_nanos() + 60_000_000_000,
    };
    assert_eq!(node.submit(&call).unwrap(), Ok(true));
    // The same request id is accepted once.
    assert_eq!(node.submit(&call).unwrap(), Ok(false));
    while node.round().unwrap() {}
    node.sync().unwrap();
    request_id
}

fn paths(list: &[&[&[u8]]]) -> Vec<Vec<Vec<u8>>> {
    list.iter()
        .map(|p| p.iter().map(|l| l.to_vec()).collect())
        .collect()
}

#[test]
fn acknowledged_calls_survive_a_crash_and_replay_to_the_same_state() {
    let Some((mut node, setup)) = open("replay") else {
        return;
    };
    let first = increment(&mut node, setup.counter, 1);
    let second = increment(&mut node, setup.counter, 2);
    let RequestStatus::Replied(reply) = node.request_status(&second).unwrap() else {
        panic!("the second increment did not reply");
    };
    assert_eq!(candid::decode_args::<(u64, u64)>(&reply).unwrap(), (2, 2));
    let time = node.time_nanos();
    // A crash: no snapshot, only the journal synced before the replies left.
    drop(node);

    let reopened = Node::open(&setup.dir, || panic!("the network exists")).unwrap();
    assert!(
        reopened.replayed >= 4,
        "{} records replayed",
        reopened.replayed
    );
    let mut node = reopened.node;
    // The clock follows the wall clock again.
    assert!(node.clock() >= time);
    assert!(matches!(
        node.request_status(&first),
        Some(RequestStatus::Replied(_))
    ));
    assert_eq!(
        node.request_status(&second),
        Some(RequestStatus::Replied(reply))
    );
    let counters = node
        .query(setup.counter, alice(), "counters", Encode!().unwrap())
        .unwrap();
    assert_eq!(
        candid::decode_args::<(u64, u64)>(&counters).unwrap(),
        (2, 2)
    );

    // After a checkpoint the journal starts empty and the state is the snapshot's.
    node.checkpoint().unwrap();
    drop(node);
    let reopened = Node::open(&setup.dir, || panic!("the network exists")).unwrap();
    assert_eq!(reopened.replayed, 0);
    assert!(matches!(
        reopened.node.request_status(&second),
        Some(RequestStatus::Replied(_))
    ));
    std::fs::remove_dir_all(&setup.dir).unwrap();
}

#[test]
fn read_state_certifies_only_what_the_sender_may_read() {
    let Some((mut node, setup)) = open("read-state") else {
        return;
    };
    let root_key = node.keys.root_key_der().to_vec();
    let id = increment(&mut node, setup.counter, 3);
    let counter = ReadStateTarget::Canister(setup.counter);

    // The sender reads its request's status: replied, with the reply, at the network's time.
    let status_path = paths(&[&[b"request_status", &id]]);
    let certificate = read_state(&node, counter, alice(), &status_path).unwrap();
    let tree = verify_certificate(&certificate, &root_key).unwrap();
    assert_eq!(
        tree.lookup(&[b"request_status".as_slice(), &id, b"status"]),
        Lookup::Found(b"replied")
    );
    assert!(matches!(
        tree.lookup(&[b"request_status".as_slice(), &id, b"reply"]),
        Lookup::Found(_)
    ));
    assert_eq!(
        tree.lookup(&[b"time".as_slice()]),
        Lookup::Found(leb128(node.time_nanos()).as_slice())
    );
    // The synchronous call's certificate says the same.
    let tree = verify_certificate(&call_certificate(&node, &id), &root_key).unwrap();
    assert_eq!(
        tree.lookup(&[b"request_status".as_slice(), &id, b"status"]),
        Lookup::Found(b"replied")
    );
    // Someone else may not; nor through another canister's id.
    assert_eq!(
        read_state(&node, counter, bob(), &status_path)
            .unwrap_err()
            .status,
        403
    );
    assert_eq!(
        read_state(
            &node,
            ReadStateTarget::Canister(setup.bare),
            alice(),
            &status_path
        )
        .unwrap_err()
        .status,
        400
    );
    // An unknown request is provably absent.
    let unknown = [0xee; 32];
    let certificate = read_state(
        &node,
        counter,
        alice(),
        &paths(&[&[b"request_status", &unknown]]),
    )
    .unwrap();
    let tree = verify_certificate(&certificate, &root_key).unwrap();
    assert_eq!(
        tree.lookup(&[b"request_status".as_slice(), &unknown, b"status"]),
        Lookup::Absent
    );

    // Metadata: public to anyone, private to controllers only; module hash and controllers.
    let bare = ReadStateTarget::Canister(setup.bare);
    let b = setup.bare.as_slice();
    let public = paths(&[&[b"canister", b, b"metadata", b"candid:service"]]);
    let tree =
        verify_certificate(&read_state(&node, bare, bob(), &public).unwrap(), &root_key).unwrap();
    assert_eq!(
        tree.lookup(&[b"canister".as_slice(), b, b"metadata", b"candid:service"]),
        Lookup::Found(b"service : {}")
    );
    let private = paths(&[&[b"canister", b, b"metadata", b"secret"]]);
    assert_eq!(
        read_state(&node, bare, bob(), &private).unwrap_err().status,
        403
    );
    assert!(read_state(&node, bare, alice(), &private).is_ok());
    let tree = verify_certificate(
        &read_state(
            &node,
            bare,
            bob(),
            &paths(&[
                &[b"canister", b, b"module_hash"],
                &[b"canister", b, b"controllers"],
            ]),
        )
        .unwrap(),
        &root_key,
    )
    .unwrap();
    let hash: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        module_with_metadata(),
    ))
    .into();
    assert_eq!(
        tree.lookup(&[b"canister".as_slice(), b, b"module_hash"]),
        Lookup::Found(hash.as_slice())
    );
    assert!(matches!(
        tree.lookup(&[b"canister".as_slice(), b, b"controllers"]),
        Lookup::Found(_)
    ));
    // Another canister's paths are not readable through this one's id.
    assert_eq!(
        read_state(
            &node,
            counter,
            alice(),
            &paths(&[&[b"canister", b, b"module_hash"]])
        )
        .unwrap_err()
        .status,
        400
    );

    // The subnet: its key is the root key, its node's key is published, the canister is in range.
    let subnet = node.keys.subnet_id;
    let s = subnet.as_slice();
    let tree = verify_certificate(
        &read_state(
            &node,
            ReadStateTarget::Subnet(subnet),
            bob(),
            &paths(&[&[b"subnet"]]),
        )
        .unwrap(),
        &root_key,
    )
    .unwrap();
    assert_eq!(
        tree.lookup(&[b"subnet".as_slice(), s, b"public_key"]),
        Lookup::Found(root_key.as_slice())
    );
    assert_eq!(
        tree.lookup(&[
            b"subnet".as_slice(),
            s,
            b"node",
            node.keys.node_id.as_slice(),
            b"public_key"
        ]),
        Lookup::Found(node.keys.node_key_der())
    );
    // A subnet read_state cannot read requests or canisters; unknown paths are refused.
    assert_eq!(
        read_state(
            &node,
            ReadStateTarget::Subnet(subnet),
            alice(),
            &status_path
        )
        .unwrap_err()
        .status,
        404
    );
    assert_eq!(
        read_state(&node, counter, alice(), &paths(&[&[b"no_such_path"]]))
            .unwrap_err()
            .status,
        404
    );
    std::fs::remove_dir_all(&setup.dir).unwrap();
}
