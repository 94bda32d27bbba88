use super::*;

const NOW: u64 = 1_746_143_718_005_285_297;
const SEC: u64 = 1_000_000_000;

fn canister(n: u64) -> Principal {
    let mut bytes = n.to_be_bytes().to_vec();
    bytes.extend([1, 1]);
    Principal::from_slice(&bytes)
}

enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    K256(k256::ecdsa::SigningKey),
}

impl Signer {
    fn ed25519(seed: u8) -> Self {
        Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }
    fn p256(seed: u8) -> Self {
        Signer::P256(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap())
    }
    fn k256(seed: u8) -> Self {
        Signer::K256(k256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap())
    }

    fn der(&self) -> Vec<u8> {
        match self {
            Signer::Ed25519(sk) => der::ed25519(sk.verifying_key().as_bytes()),
            Signer::P256(sk) => {
                der::ecdsa_p256(sk.verifying_key().to_encoded_point(false).as_bytes())
            }
            Signer::K256(sk) => {
                der::ecdsa_secp256k1(sk.verifying_key().to_encoded_point(false).as_bytes())
            }
        }
    }

    fn principal(&self) -> Principal {
        Principal::self_authenticating(self.der())
    }

    fn sign(&self, payload: &[u8]) -> Vec<u8> {
        match self {
            Signer::Ed25519(sk) => {
                use ed25519_dalek::Signer as _;
                sk.sign(payload).to_bytes().to_vec()
            }
            Signer::P256(sk) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = sk.sign(payload);
                sig.to_bytes().to_vec()
            }
            Signer::K256(sk) => {
                use k256::ecdsa::signature::Signer as _;
                let sig: k256::ecdsa::Signature = sk.sign(payload);
                sig.to_bytes().to_vec()
            }
        }
    }
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

fn call_content(
    request_type: &str,
    sender: Principal,
    canister_id: Principal,
    expiry: u64,
) -> Value {
    Value::Map(vec![
        (t("request_type"), t(request_type)),
        (
            t("canister_id"),
            Value::Bytes(canister_id.as_slice().to_vec()),
        ),
        (t("method_name"), t("greet")),
        (t("arg"), Value::Bytes(b"DIDL\x00\x00".to_vec())),
        (t("sender"), Value::Bytes(sender.as_slice().to_vec())),
        (t("ingress_expiry"), Value::Integer(expiry.into())),
        (t("nonce"), Value::Bytes(vec![1, 2, 3])),
    ])
}

fn read_state_content(sender: Principal, expiry: u64) -> Value {
    Value::Map(vec![
        (t("request_type"), t("read_state")),
        (
            t("paths"),
            Value::Array(vec![Value::Array(vec![Value::Bytes(b"time".to_vec())])]),
        ),
        (t("sender"), Value::Bytes(sender.as_slice().to_vec())),
        (t("ingress_expiry"), Value::Integer(expiry.into())),
    ])
}

fn delegation(to: &Signer, expiration: u64, targets: Option<&[Principal]>) -> Value {
    let mut map = vec![
        (t("pubkey"), Value::Bytes(to.der())),
        (t("expiration"), Value::Integer(expiration.into())),
    ];
    if let Some(targets) = targets {
        map.push((
            t("targets"),
            Value::Array(
                targets
                    .iter()
                    .map(|p| Value::Bytes(p.as_slice().to_vec()))
                    .collect(),
            ),
        ));
    }
    Value::Map(map)
}

fn signed_delegation(by: &Signer, delegation: Value) -> Value {
    let sig = by.sign(&delegation_signing_payload(&delegation).unwrap());
    Value::Map(vec![
        (t("delegation"), delegation),
        (t("signature"), Value::Bytes(sig)),
    ])
}

/// Envelope with `content` signed by `request_signer` (the last key of the chain), claiming
/// `pubkey` as the sender key and carrying `delegations`.
fn envelope(
    content: Value,
    pubkey: Vec<u8>,
    request_signer: &Signer,
    delegations: Option<Vec<Value>>,
) -> Vec<u8> {
    let id = hash_of_map(&content).unwrap();
    let sig = request_signer.sign(&request_signing_payload(&id));
    let mut map = vec![
        (t("content"), content),
        (t("sender_pubkey"), Value::Bytes(pubkey)),
        (t("sender_sig"), Value::Bytes(sig)),
    ];
    if let Some(d) = delegations {
        map.push((t("sender_delegation"), Value::Array(d)));
    }
    encode(Value::Tag(55799, Box::new(Value::Map(map))))
}

fn encode(value: Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).unwrap();
    out
}

fn signed_call(signer: &Signer, canister_id: Principal, expiry: u64) -> Vec<u8> {
    let content = call_content("call", signer.principal(), canister_id, expiry);
    envelope(content, signer.der(), signer, None)
}

fn err_text(r: Result<Validated, IngressError>) -> String {
    let e = r.expect_err("request should have been refused");
    assert_eq!(e.http_status(), 400);
    e.to_string()
}

#[test]
fn accepts_ed25519_p256_and_secp256k1_senders() {
    for signer in [Signer::ed25519(1), Signer::p256(2), Signer::k256(3)] {
        let body = signed_call(&signer, canister(7), NOW + 60 * SEC);
        let v = validate(&body, RequestType::Call, Some(canister(7)), NOW).unwrap();
        assert_eq!(v.sender, signer.principal());
        assert_eq!(v.targets, None);
        assert!(v.may_target(&canister(99)));
        let content = call_content("call", signer.principal(), canister(7), NOW + 60 * SEC);
        assert_eq!(v.request_id, hash_of_map(&content).unwrap());
        let Content::Call(c) = v.content else {
            panic!("expected a call")
        };
        assert_eq!(c.canister_id, canister(7));
        assert_eq!(c.method_name, "greet");
        assert_eq!(c.nonce, Some(vec![1, 2, 3]));
    }
}

#[test]
fn accepts_query_and_read_state() {
    let signer = Signer::ed25519(4);
    let content = call_content("query", signer.principal(), canister(7), NOW + SEC);
    let body = envelope(content, signer.der(), &signer, None);
    let v = validate(&body, RequestType::Query, None, NOW).unwrap();
    assert!(matches!(v.content, Content::Query(_)));

    let content = read_state_content(signer.principal(), NOW + SEC);
    let body = envelope(content, signer.der(), &signer, None);
    let v = validate(&body, RequestType::ReadState, Some(canister(7)), NOW).unwrap();
    let Content::ReadState(rs) = v.content else {
        panic!("expected read_state")
    };
    assert_eq!(rs.paths, vec![vec![b"time".to_vec()]]);
}

#[test]
fn request_type_must_match_the_endpoint() {
    let signer = Signer::ed25519(4);
    let content = call_content("query", signer.principal(), canister(7), NOW + SEC);
    let body = envelope(content, signer.der(), &signer, None);
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(
        msg.starts_with("Could not parse body as call message: "),
        "{msg}"
    );
    assert!(msg.contains("unknown variant `query`"), "{msg}");
}

#[test]
fn garbage_is_a_parse_error() {
    let msg = err_text(validate(b"\xff\x00", RequestType::Query, None, NOW));
    assert!(
        msg.starts_with("Could not parse body as query message: "),
        "{msg}"
    );
    let body = encode(Value::Map(vec![(t("content"), t("x"))]));
    let msg = err_text(validate(&body, RequestType::ReadState, None, NOW));
    assert!(
        msg.starts_with("Could not parse body as read request: "),
        "{msg}"
    );
}

#[test]
fn anonymous_requests() {
    let anon = Principal::anonymous();
    let content = call_content("call", anon, canister(7), NOW + SEC);
    let id = hash_of_map(&content).unwrap();
    // Untagged CBOR is accepted too.
    let body = encode(Value::Map(vec![(t("content"), content.clone())]));
    let v = validate(&body, RequestType::Call, None, NOW).unwrap();
    assert_eq!(v.sender, anon);
    assert_eq!(v.request_id, id);

    // A key without a signature (or the other way round) is malformed.
    let signer = Signer::ed25519(5);
    let body = encode(Value::Map(vec![
        (t("content"), content.clone()),
        (t("sender_pubkey"), Value::Bytes(signer.der())),
    ]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.starts_with("Malformed request: "), "{msg}");
    let body = encode(Value::Map(vec![
        (t("content"), content.clone()),
        (t("sender_sig"), Value::Bytes(vec![0; 64])),
    ]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.starts_with("Malformed request: "), "{msg}");

    // The anonymous sender may not sign.
    let body = envelope(content, signer.der(), &signer, None);
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert_eq!(msg, "Signature is not allowed for the anonymous user.");

    // A non-anonymous sender must sign.
    let content = call_content("call", signer.principal(), canister(7), NOW + SEC);
    let body = encode(Value::Map(vec![(t("content"), content)]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.starts_with("Missing signature from user: "), "{msg}");
}

#[test]
fn anonymous_query_expiry_is_not_checked_but_call_expiry_is() {
    let anon = Principal::anonymous();
    let content = call_content("query", anon, canister(7), 0);
    let body = encode(Value::Map(vec![(t("content"), content)]));
    assert!(validate(&body, RequestType::Query, None, NOW).is_ok());
    let content = call_content("call", anon, canister(7), 0);
    let body = encode(Value::Map(vec![(t("content"), content)]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.starts_with("Invalid request expiry: "), "{msg}");
}

#[test]
fn expiry_window() {
    let signer = Signer::ed25519(6);
    let max = NOW + MAX_INGRESS_TTL_NANOS + PERMITTED_DRIFT_AT_VALIDATOR_NANOS;
    assert!(
        validate(
            &signed_call(&signer, canister(1), NOW),
            RequestType::Call,
            None,
            NOW
        )
        .is_ok()
    );
    assert!(
        validate(
            &signed_call(&signer, canister(1), max),
            RequestType::Call,
            None,
            NOW
        )
        .is_ok()
    );

    let msg = err_text(validate(
        &signed_call(&signer, canister(1), max + 1),
        RequestType::Call,
        None,
        NOW,
    ));
    assert!(msg.starts_with("Invalid request expiry: "), "{msg}");
    assert_eq!(
        msg,
        "Invalid request expiry: Specified ingress_expiry not within expected range: \
         Minimum allowed expiry: 2025-05-01 23:55:18.005285297 UTC, \
         Maximum allowed expiry: 2025-05-02 00:00:48.005285297 UTC, \
         Provided expiry:        2025-05-02 00:00:48.005285298 UTC"
    );

    let msg = err_text(validate(
        &signed_call(&signer, canister(1), NOW - 1),
        RequestType::Call,
        None,
        NOW,
    ));
    assert!(msg.starts_with("Invalid request expiry: "), "{msg}");
}

#[test]
fn wrong_signature_is_refused() {
    for (signer, other) in [
        (Signer::ed25519(1), Signer::ed25519(2)),
        (Signer::p256(1), Signer::p256(2)),
        (Signer::k256(1), Signer::k256(2)),
    ] {
        let content = call_content("call", signer.principal(), canister(7), NOW + SEC);
        let body = envelope(content, signer.der(), &other, None);
        let msg = err_text(validate(&body, RequestType::Call, None, NOW));
        assert!(msg.starts_with("Invalid signature: "), "{msg}");
    }
    // A signature over different content.
    let signer = Signer::ed25519(1);
    let content = call_content("call", signer.principal(), canister(7), NOW + SEC);
    let other_content = call_content("call", signer.principal(), canister(8), NOW + SEC);
    let sig = signer.sign(&request_signing_payload(
        &hash_of_map(&other_content).unwrap(),
    ));
    let body = encode(Value::Map(vec![
        (t("content"), content),
        (t("sender_pubkey"), Value::Bytes(signer.der())),
        (t("sender_sig"), Value::Bytes(sig)),
    ]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(
        msg.starts_with("Invalid signature: Invalid basic signature: "),
        "{msg}"
    );
}

#[test]
fn unknown_content_fields_are_part_of_the_request_id() {
    let signer = Signer::ed25519(1);
    let Value::Map(mut fields) = call_content("call", signer.principal(), canister(7), NOW + SEC)
    else {
        unreachable!()
    };
    fields.push((
        t("sender_info"),
        Value::Map(vec![(t("info"), Value::Bytes(vec![9]))]),
    ));
    let content = Value::Map(fields);
    let body = envelope(content.clone(), signer.der(), &signer, None);
    let v = validate(&body, RequestType::Call, None, NOW).unwrap();
    assert_eq!(v.request_id, hash_of_map(&content).unwrap());
}

#[test]
fn wrong_sender_is_refused() {
    let signer = Signer::ed25519(1);
    let other = Signer::ed25519(2);
    let content = call_content("call", other.principal(), canister(7), NOW + SEC);
    let body = envelope(content, signer.der(), &signer, None);
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.contains("does not match the public key"), "{msg}");
    assert!(
        msg.starts_with(&format!("The user id '{}'", other.principal())),
        "{msg}"
    );
}

#[test]
fn two_delegation_chain_is_accepted_and_targets_intersect() {
    let root = Signer::ed25519(10);
    let middle = Signer::p256(11);
    let session = Signer::k256(12);
    let d1 = signed_delegation(
        &root,
        delegation(&middle, NOW + 3600 * SEC, Some(&[canister(1), canister(2)])),
    );
    let d2 = signed_delegation(
        &middle,
        delegation(&session, NOW + 60 * SEC, Some(&[canister(2), canister(3)])),
    );
    let content = call_content("call", root.principal(), canister(2), NOW + SEC);
    let body = envelope(content, root.der(), &session, Some(vec![d1, d2]));
    let v = validate(&body, RequestType::Call, Some(canister(2)), NOW).unwrap();
    assert_eq!(v.sender, root.principal());
    assert_eq!(v.targets, Some(BTreeSet::from([canister(2)])));
    assert!(v.may_target(&canister(2)));
    assert!(!v.may_target(&canister(1)));

    // Unrestricted delegation.
    let d = signed_delegation(&root, delegation(&session, NOW + 60 * SEC, None));
    let content = call_content("call", root.principal(), canister(9), NOW + SEC);
    let body = envelope(content, root.der(), &session, Some(vec![d]));
    let v = validate(&body, RequestType::Call, None, NOW).unwrap();
    assert_eq!(v.targets, None);
}

#[test]
fn request_must_be_signed_by_the_last_delegated_key() {
    let root = Signer::ed25519(10);
    let session = Signer::ed25519(12);
    let d = signed_delegation(&root, delegation(&session, NOW + 60 * SEC, None));
    let content = call_content("call", root.principal(), canister(2), NOW + SEC);
    let body = envelope(content, root.der(), &root, Some(vec![d]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.starts_with("Invalid signature: "), "{msg}");
}

#[test]
fn badly_signed_delegation_is_refused() {
    let root = Signer::ed25519(10);
    let session = Signer::ed25519(12);
    let d = signed_delegation(&session, delegation(&session, NOW + 60 * SEC, None));
    let content = call_content("call", root.principal(), canister(2), NOW + SEC);
    let body = envelope(content, root.der(), &session, Some(vec![d]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.starts_with("Invalid delegation: "), "{msg}");
}

#[test]
fn expired_delegation_is_refused() {
    let root = Signer::ed25519(10);
    let session = Signer::ed25519(12);
    let d = signed_delegation(&root, delegation(&session, NOW - SEC, None));
    let content = call_content("call", root.principal(), canister(2), NOW + SEC);
    let body = envelope(content, root.der(), &session, Some(vec![d]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.starts_with("Invalid delegation"), "{msg}");
    assert!(msg.contains("has expired"), "{msg}");
    assert!(
        msg.contains("Provided expiry:    2025-05-01 23:55:17.005285297 UTC"),
        "{msg}"
    );
}

#[test]
fn chain_of_21_delegations_is_refused() {
    let keys: Vec<Signer> = (0..22).map(|i| Signer::ed25519(100 + i)).collect();
    let chain = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| signed_delegation(&keys[i], delegation(&keys[i + 1], NOW + 60 * SEC, None)))
            .collect()
    };
    let content = call_content("call", keys[0].principal(), canister(2), NOW + SEC);
    let body = envelope(content.clone(), keys[0].der(), &keys[20], Some(chain(20)));
    assert!(validate(&body, RequestType::Call, None, NOW).is_ok());
    let body = envelope(content, keys[0].der(), &keys[21], Some(chain(21)));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(
        msg.starts_with("Invalid delegation: Chain of delegations is too long: got 21"),
        "{msg}"
    );
}

#[test]
fn delegation_cycle_is_refused() {
    let a = Signer::ed25519(1);
    let b = Signer::ed25519(2);
    let d1 = signed_delegation(&a, delegation(&b, NOW + 60 * SEC, None));
    let d2 = signed_delegation(&b, delegation(&a, NOW + 60 * SEC, None));
    let content = call_content("call", a.principal(), canister(2), NOW + SEC);
    let body = envelope(content, a.der(), &a, Some(vec![d1, d2]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(msg.contains("contains at least one cycle"), "{msg}");
}

#[test]
fn target_mismatch_is_refused() {
    let root = Signer::ed25519(10);
    let session = Signer::ed25519(12);
    let d = signed_delegation(
        &root,
        delegation(&session, NOW + 60 * SEC, Some(&[canister(1)])),
    );
    // Content canister not in targets.
    let content = call_content("call", root.principal(), canister(2), NOW + SEC);
    let body = envelope(content, root.der(), &session, Some(vec![d.clone()]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert_eq!(
        msg,
        format!(
            "Canister '{}' is not one of the delegation targets.",
            canister(2)
        )
    );
    // Effective canister id not in targets (read_state).
    let content = read_state_content(root.principal(), NOW + SEC);
    let body = envelope(content, root.der(), &session, Some(vec![d]));
    assert!(validate(&body, RequestType::ReadState, Some(canister(1)), NOW).is_ok());
    let msg = err_text(validate(
        &body,
        RequestType::ReadState,
        Some(canister(3)),
        NOW,
    ));
    assert!(
        msg.ends_with("is not one of the delegation targets."),
        "{msg}"
    );
}

#[test]
fn canister_signatures_are_not_supported() {
    let key = der::canister_signature(canister(5).as_slice(), b"seed");
    let sender = Principal::self_authenticating(&key);
    let content = call_content("call", sender, canister(2), NOW + SEC);
    let body = encode(Value::Map(vec![
        (t("content"), content),
        (t("sender_pubkey"), Value::Bytes(key)),
        (t("sender_sig"), Value::Bytes(vec![0; 10])),
    ]));
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(
        msg.starts_with("Invalid signature: Invalid canister signature: "),
        "{msg}"
    );
    assert!(msg.contains("not supported on this network"), "{msg}");
}

#[test]
fn limits() {
    let signer = Signer::ed25519(1);
    let Value::Map(mut fields) = call_content("call", signer.principal(), canister(7), NOW + SEC)
    else {
        unreachable!()
    };
    fields.retain(|(k, _)| k != &t("nonce"));
    fields.push((t("nonce"), Value::Bytes(vec![0; 33])));
    let body = envelope(Value::Map(fields), signer.der(), &signer, None);
    let msg = err_text(validate(&body, RequestType::Call, None, NOW));
    assert!(
        msg.starts_with("Nonce in request is too big: got 33 bytes"),
        "{msg}"
    );

    let content = Value::Map(vec![
        (t("request_type"), t("read_state")),
        (
            t("paths"),
            Value::Array(vec![Value::Array(vec![Value::Bytes(vec![1]); 128])]),
        ),
        (
            t("sender"),
            Value::Bytes(signer.principal().as_slice().to_vec()),
        ),
        (t("ingress_expiry"), Value::Integer((NOW + SEC).into())),
    ]);
    let body = envelope(content, signer.der(), &signer, None);
    let msg = err_text(validate(&body, RequestType::ReadState, None, NOW));
    assert!(
        msg.starts_with("At least one path in read state request is too deep"),
        "{msg}"
    );
}

/// A WebAuthn envelope built the way a browser authenticator would produce it.
#[test]
fn webauthn_sender_is_accepted() {
    use base64::Engine;
    use p256::ecdsa::signature::Signer as _;

    let sk = p256::ecdsa::SigningKey::from_slice(&[42; 32]).unwrap();
    let point = sk.verifying_key().to_encoded_point(false);
    let cose = encode(Value::Map(vec![
        (Value::Integer(1.into()), Value::Integer(2.into())),
        (Value::Integer(3.into()), Value::Integer((-7).into())),
        (Value::Integer((-1).into()), Value::Integer(1.into())),
        (
            Value::Integer((-2).into()),
            Value::Bytes(point.x().unwrap().to_vec()),
        ),
        (
            Value::Integer((-3).into()),
            Value::Bytes(point.y().unwrap().to_vec()),
        ),
    ]));
    let der_key = der::cose(&cose);
    let sender = Principal::self_authenticating(&der_key);
    let content = call_content("call", sender, canister(2), NOW + SEC);
    let payload = request_signing_payload(&hash_of_map(&content).unwrap());

    let webauthn_sig = |challenge: &[u8]| {
        let client_data_json = format!(
            r#"{{"type":"webauthn.get","challenge":"{}","origin":"https://identity.ic0.app"}}"#,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(challenge)
        );
        let authenticator_data = vec![0x11; 37];
        let mut signed = authenticator_data.clone();
        signed.extend_from_slice(&sha2::Sha256::digest(client_data_json.as_bytes()));
        let sig: p256::ecdsa::Signature = sk.sign(&signed);
        encode(Value::Tag(
            55799,
            Box::new(Value::Map(vec![
                (t("authenticator_data"), Value::Bytes(authenticator_data)),
                (t("client_data_json"), t(&client_data_json)),
                (
                    t("signature"),
                    Value::Bytes(sig.to_der().as_bytes().to_vec()),
                ),
            ])),
        ))
    };
    use sha2::Digest as _;

    let body = |sig: Vec<u8>| {
        encode(Value::Map(vec![
            (t("content"), content.clone()),
            (t("sender_pubkey"), Value::Bytes(der_key.clone())),
            (t("sender_sig"), Value::Bytes(sig)),
        ]))
    };
    let v = validate(&body(webauthn_sig(&payload)), RequestType::Call, None, NOW).unwrap();
    assert_eq!(v.sender, sender);

    let msg = err_text(validate(
        &body(webauthn_sig(b"other")),
        RequestType::Call,
        None,
        NOW,
    ));
    assert!(
        msg.starts_with("Invalid signature: WebAuthn error: Challenge"),
        "{msg}"
    );
}
