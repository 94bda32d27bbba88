//! Sender public keys (DER `SubjectPublicKeyInfo`) and signature verification for the schemes of
//! the interface specification's "Signatures" section.

use ciborium::Value;
use sha2::{Digest, Sha256};

const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70]; // 1.3.101.112
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]; // 1.2.840.10045.2.1
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]; // 1.2.840.10045.3.1.7
const OID_SECP256K1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x0A]; // 1.3.132.0.10
const OID_COSE: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x83, 0xB8, 0x43, 0x01, 0x01]; // 1.3.6.1.4.1.56387.1.1
const OID_CANISTER_SIG: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x83, 0xB8, 0x43, 0x01, 0x02]; // 1.3.6.1.4.1.56387.1.2
const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]; // 1.2.840.113549.1.1.1

/// A parsed sender (or delegation) public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519([u8; 32]),
    /// SEC1 uncompressed point (65 bytes).
    EcdsaP256(Vec<u8>),
    /// SEC1 uncompressed point (65 bytes).
    EcdsaSecp256k1(Vec<u8>),
    /// DER-wrapped COSE key (ES256 on P-256); holds the SEC1 uncompressed point.
    WebAuthnEcdsaP256(Vec<u8>),
    /// IC canister signature public key: `|canister_id| · canister_id · seed`.
    CanisterSignature(Vec<u8>),
}

/// Failure to parse a key or verify a signature; the caller wraps the text into
/// `Invalid signature: ...` or `Invalid delegation: ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyError {
    InvalidPublicKey(String),
    Verification(String),
    WebAuthn(String),
    CanisterSignatureUnsupported,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::InvalidPublicKey(msg) => write!(f, "Invalid public key: {msg}"),
            KeyError::Verification(msg) => write!(f, "Invalid basic signature: {msg}"),
            KeyError::WebAuthn(msg) => write!(f, "WebAuthn error: {msg}"),
            KeyError::CanisterSignatureUnsupported => write!(
                f,
                "Invalid canister signature: canister signatures (e.g. Internet Identity) \
                 are not supported on this network"
            ),
        }
    }
}

/// Minimal strict DER reader: one TLV with a definite, minimally encoded length.
fn der_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("unexpected end of DER")?;
    let (&first, rest) = rest.split_first().ok_or("unexpected end of DER")?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("unsupported DER length".into());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        if rest[0] == 0 || len < 0x80 {
            return Err("non-minimal DER length".into());
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("DER length exceeds input".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn der_expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (t, content, rest) = der_tlv(input)?;
    if t != tag {
        return Err(format!(
            "expected {what} (tag {tag:#04x}), found tag {t:#04x}"
        ));
    }
    Ok((content, rest))
}

/// Parses a DER `SubjectPublicKeyInfo` into the key types the IC accepts for users.
pub fn parse_public_key(der: &[u8]) -> Result<PublicKey, String> {
    let (spki, trailing) = der_expect(der, 0x30, "SEQUENCE")?;
    if !trailing.is_empty() {
        return Err("trailing bytes after SubjectPublicKeyInfo".into());
    }
    let (alg, rest) = der_expect(spki, 0x30, "AlgorithmIdentifier SEQUENCE")?;
    let (bits, rest) = der_expect(rest, 0x03, "BIT STRING")?;
    if !rest.is_empty() {
        return Err("trailing bytes inside SubjectPublicKeyInfo".into());
    }
    let (&unused, key) = bits.split_first().ok_or("empty BIT STRING")?;
    if unused != 0 {
        return Err("BIT STRING with unused bits".into());
    }
    let (oid, params) = der_expect(alg, 0x06, "algorithm OID")?;
    let no_params = |params: &[u8]| -> Result<(), String> {
        if params.is_empty() {
            Ok(())
        } else {
            Err("unexpected algorithm parameters".into())
        }
    };
    match oid {
        OID_ED25519 => {
            no_params(params)?;
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| format!("Ed25519 key must be 32 bytes, got {}", key.len()))?;
            ed25519_dalek::VerifyingKey::from_bytes(&key)
                .map_err(|e| format!("invalid Ed25519 point: {e}"))?;
            Ok(PublicKey::Ed25519(key))
        }
        OID_EC_PUBLIC_KEY => {
            let (curve, rest) = der_expect(params, 0x06, "curve OID")?;
            no_params(rest)?;
            if key.len() != 65 || key[0] != 0x04 {
                return Err("ECDSA key must be an uncompressed point (0x04 · x · y)".into());
            }
            match curve {
                OID_P256 => {
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                        .map_err(|e| format!("invalid P-256 point: {e}"))?;
                    Ok(PublicKey::EcdsaP256(key.to_vec()))
                }
                OID_SECP256K1 => {
                    k256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                        .map_err(|e| format!("invalid secp256k1 point: {e}"))?;
                    Ok(PublicKey::EcdsaSecp256k1(key.to_vec()))
                }
                other => Err(format!(
                    "unsupported ECDSA curve OID {}",
                    hex::encode(other)
                )),
            }
        }
        OID_COSE => {
            no_params(params)?;
            Ok(PublicKey::WebAuthnEcdsaP256(parse_cose_p256(key)?))
        }
        OID_CANISTER_SIG => {
            no_params(params)?;
            Ok(PublicKey::CanisterSignature(key.to_vec()))
        }
        OID_RSA => Err("RSA keys are not supported".into()),
        other => Err(format!("unsupported algorithm OID {}", hex::encode(other))),
    }
}

/// COSE_Key (RFC 8152) for ES256: {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}.
fn parse_cose_p256(cose: &[u8]) -> Result<Vec<u8>, String> {
    let value: Value =
        ciborium::from_reader(cose).map_err(|e| format!("COSE key is not CBOR: {e}"))?;
    let Value::Map(entries) = value else {
        return Err("COSE key is not a map".into());
    };
    let get = |label: i64| {
        entries.iter().find_map(|(k, v)| match k {
            Value::Integer(i) if i128::from(*i) == label as i128 => Some(v),
            _ => None,
        })
    };
    let int = |label: i64| match get(label) {
        Some(Value::Integer(i)) => Some(i128::from(*i)),
        _ => None,
    };
    if int(1) != Some(2) {
        return Err("COSE key type must be EC2 (2)".into());
    }
    if int(3) != Some(-7) {
        return Err("COSE algorithm must be ES256 (-7)".into());
    }
    if int(-1) != Some(1) {
        return Err("COSE curve must be P-256 (1)".into());
    }
    let coord = |label: i64| match get(label) {
        Some(Value::Bytes(b)) if b.len() == 32 => Ok(b.clone()),
        _ => Err(format!("COSE coordinate {label} must be a 32-byte blob")),
    };
    let mut sec1 = vec![0x04];
    sec1.extend(coord(-2)?);
    sec1.extend(coord(-3)?);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|e| format!("invalid P-256 point in COSE key: {e}"))?;
    Ok(sec1)
}

/// Verifies `signature` by the DER-encoded key `der_key` over `payload` (domain separator
/// already prepended).
pub(crate) fn verify(der_key: &[u8], payload: &[u8], signature: &[u8]) -> Result<(), KeyError> {
    let key = parse_public_key(der_key).map_err(KeyError::InvalidPublicKey)?;
    match key {
        PublicKey::Ed25519(key) => {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&key)
                .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
            let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| {
                KeyError::Verification(format!(
                    "Ed25519 signature must be 64 bytes, got {}",
                    signature.len()
                ))
            })?;
            vk.verify_strict(payload, &sig).map_err(|_| {
                KeyError::Verification(format!(
                    "Ed25519 signature could not be verified: public key {}, signature {}",
                    hex::encode(key),
                    hex::encode(signature)
                ))
            })
        }
        PublicKey::EcdsaP256(sec1) => {
            use p256::ecdsa::signature::Verifier;
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
            let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| {
                KeyError::Verification(
                    "malformed ECDSA P-256 signature (expected r · s, 64 bytes)".into(),
                )
            })?;
            vk.verify(payload, &sig).map_err(|_| {
                KeyError::Verification(format!(
                    "ECDSA P-256 signature could not be verified: public key {}, signature {}",
                    hex::encode(&sec1),
                    hex::encode(signature)
                ))
            })
        }
        PublicKey::EcdsaSecp256k1(sec1) => {
            use k256::ecdsa::signature::Verifier;
            let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
            let sig = k256::ecdsa::Signature::from_slice(signature).map_err(|_| {
                KeyError::Verification(
                    "malformed ECDSA secp256k1 signature (expected r · s, 64 bytes)".into(),
                )
            })?;
            vk.verify(payload, &sig).map_err(|_| {
                KeyError::Verification(format!(
                    "ECDSA secp256k1 signature could not be verified: public key {}, signature {}",
                    hex::encode(&sec1),
                    hex::encode(signature)
                ))
            })
        }
        PublicKey::WebAuthnEcdsaP256(sec1) => verify_webauthn(&sec1, payload, signature),
        PublicKey::CanisterSignature(_) => Err(KeyError::CanisterSignatureUnsupported),
    }
}

fn unwrap_self_describing(value: Value) -> Value {
    match value {
        Value::Tag(55799, inner) => *inner,
        other => other,
    }
}

/// WebAuthn: the signature is CBOR `{authenticator_data, client_data_json, signature}`; the
/// client data's `challenge` must be base64url(payload), and `signature` (DER ECDSA P-256)
/// must verify over `authenticator_data · SHA-256(client_data_json)`.
fn verify_webauthn(sec1: &[u8], payload: &[u8], signature: &[u8]) -> Result<(), KeyError> {
    use base64::Engine;
    use p256::ecdsa::signature::Verifier;
    let err = |msg: String| KeyError::WebAuthn(msg);
    let value: Value =
        ciborium::from_reader(signature).map_err(|e| err(format!("signature is not CBOR: {e}")))?;
    let Value::Map(entries) = unwrap_self_describing(value) else {
        return Err(err("signature is not a CBOR map".into()));
    };
    let field = |name: &str| {
        entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == name))
            .map(|(_, v)| v)
    };
    let Some(Value::Bytes(authenticator_data)) = field("authenticator_data") else {
        return Err(err("missing blob field authenticator_data".into()));
    };
    let Some(Value::Text(client_data_json)) = field("client_data_json") else {
        return Err(err("missing text field client_data_json".into()));
    };
    let Some(Value::Bytes(der_sig)) = field("signature") else {
        return Err(err("missing blob field signature".into()));
    };
    let client_data: serde_json::Value = serde_json::from_str(client_data_json)
        .map_err(|e| err(format!("client_data_json is not JSON: {e}")))?;
    let challenge = client_data
        .get("challenge")
        .and_then(|c| c.as_str())
        .ok_or_else(|| err("client_data_json has no challenge".into()))?;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(challenge.trim_end_matches('='))
        .map_err(|e| err(format!("challenge is not base64url: {e}")))?;
    if challenge != payload {
        return Err(err(format!(
            "Challenge in client data ({}) does not match the signed message ({})",
            hex::encode(&challenge),
            hex::encode(payload)
        )));
    }
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
        .map_err(|e| KeyError::InvalidPublicKey(e.to_string()))?;
    let sig = p256::ecdsa::Signature::from_der(der_sig)
        .map_err(|e| err(format!("malformed DER ECDSA signature: {e}")))?;
    let mut signed = authenticator_data.clone();
    signed.extend_from_slice(&Sha256::digest(client_data_json.as_bytes()));
    vk.verify(&signed, &sig).map_err(|_| {
        err("ECDSA P-256 signature over authenticator_data · SHA-256(client_data_json) could not be verified".into())
    })
}

/// DER encoders for the supported key types (for clients and tests).
pub mod der {
    fn spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let len = content.len();
            if len < 0x80 {
                out.push(len as u8);
            } else if len < 0x100 {
                out.extend([0x81, len as u8]);
            } else {
                out.extend([0x82, (len >> 8) as u8, len as u8]);
            }
            out.extend_from_slice(content);
            out
        }
        let mut bits = vec![0u8];
        bits.extend_from_slice(key);
        let body = [tlv(0x30, alg), tlv(0x03, &bits)].concat();
        tlv(0x30, &body)
    }

    fn oid(oid: &[u8]) -> Vec<u8> {
        [&[0x06, oid.len() as u8], oid].concat()
    }

    /// `SubjectPublicKeyInfo` of an Ed25519 key (RFC 8410).
    pub fn ed25519(key: &[u8; 32]) -> Vec<u8> {
        spki(&oid(super::OID_ED25519), key)
    }

    /// `SubjectPublicKeyInfo` of an ECDSA P-256 key; `sec1` is the uncompressed point.
    pub fn ecdsa_p256(sec1: &[u8]) -> Vec<u8> {
        let alg = [oid(super::OID_EC_PUBLIC_KEY), oid(super::OID_P256)].concat();
        spki(&alg, sec1)
    }

    /// `SubjectPublicKeyInfo` of an ECDSA secp256k1 key; `sec1` is the uncompressed point.
    pub fn ecdsa_secp256k1(sec1: &[u8]) -> Vec<u8> {
        let alg = [oid(super::OID_EC_PUBLIC_KEY), oid(super::OID_SECP256K1)].concat();
        spki(&alg, sec1)
    }

    /// DER-wrapped COSE key (OID 1.3.6.1.4.1.56387.1.1).
    pub fn cose(cose_key: &[u8]) -> Vec<u8> {
        spki(&oid(super::OID_COSE), cose_key)
    }

    /// Canister-signature public key (OID 1.3.6.1.4.1.56387.1.2): `|id| · id · seed`.
    pub fn canister_signature(canister_id: &[u8], seed: &[u8]) -> Vec<u8> {
        let mut key = vec![canister_id.len() as u8];
        key.extend_from_slice(canister_id);
        key.extend_from_slice(seed);
        spki(&oid(super::OID_CANISTER_SIG), &key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_cose_example_parses() {
        let der = hex::decode(
            "305E300C060A2B0601040183B8430101034E00A50102032620012158207FFD83632072FD1BFEAF3FBAA43146E0EF95C3F55E3994A41BBF2B5174D771DA22582032497EED0A7F6F000928765B8318162CFD80A94E525A6A368C2363063D04E6ED",
        )
        .unwrap();
        assert!(matches!(
            parse_public_key(&der),
            Ok(PublicKey::WebAuthnEcdsaP256(_))
        ));
    }

    #[test]
    fn der_round_trips() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let der = der::ed25519(sk.verifying_key().as_bytes());
        assert_eq!(der.len(), 44);
        assert_eq!(
            &der[..12],
            &hex::decode("302a300506032b6570032100").unwrap()[..]
        );
        assert!(matches!(parse_public_key(&der), Ok(PublicKey::Ed25519(_))));

        let sk = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let der = der::ecdsa_p256(point.as_bytes());
        assert_eq!(der.len(), 91);
        assert!(matches!(
            parse_public_key(&der),
            Ok(PublicKey::EcdsaP256(_))
        ));

        let sk = k256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let der = der::ecdsa_secp256k1(point.as_bytes());
        assert_eq!(der.len(), 88);
        assert!(matches!(
            parse_public_key(&der),
            Ok(PublicKey::EcdsaSecp256k1(_))
        ));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(parse_public_key(&[]).is_err());
        assert!(parse_public_key(&[0x30, 0x00]).is_err());
        let mut der = der::ed25519(&[1; 32]);
        der.push(0);
        assert!(parse_public_key(&der).is_err());
        // Compressed ECDSA points are not allowed.
        let sk = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let point = sk.verifying_key().to_encoded_point(true);
        assert!(parse_public_key(&der::ecdsa_p256(point.as_bytes())).is_err());
    }
}
