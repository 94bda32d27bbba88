//! The interface specification's representation-independent hash ("Request ids"):
//! text and blobs hash their bytes, naturals their LEB128 and negative integers their SLEB128
//! encoding, arrays the concatenation of their elements' hashes, and maps the sorted
//! concatenation of `hash(key) · hash(value)` pairs.

use ciborium::Value;
use sha2::{Digest, Sha256};

use crate::IngressError;

/// Domain separator of the sender's signature over a request id: `"\x0Aic-request"`.
pub const IC_REQUEST_DOMAIN_SEPARATOR: &[u8] = b"\x0Aic-request";
/// Domain separator of a delegation's signature: `"\x1Aic-request-auth-delegation"`.
pub const IC_REQUEST_AUTH_DELEGATION_DOMAIN_SEPARATOR: &[u8] = b"\x1Aic-request-auth-delegation";

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn leb128(mut n: u128, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb128(mut n: i128, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The representation-independent hash of any value the specification defines it for: text,
/// blob, natural (LEB128), negative integer (SLEB128), array and map (with text keys).
/// Other CBOR values (floats, booleans, null, tags) have no defined hash and are refused.
pub fn representation_independent_hash(value: &Value) -> Result<[u8; 32], IngressError> {
    match value {
        Value::Text(text) => Ok(sha256(text.as_bytes())),
        Value::Bytes(bytes) => Ok(sha256(bytes)),
        Value::Integer(int) => {
            let n = i128::from(*int);
            let mut buf = Vec::with_capacity(19);
            if n >= 0 {
                leb128(n as u128, &mut buf);
            } else {
                sleb128(n, &mut buf);
            }
            Ok(sha256(&buf))
        }
        Value::Array(items) => {
            let mut hasher = Sha256::new();
            for item in items {
                hasher.update(representation_independent_hash(item)?);
            }
            Ok(hasher.finalize().into())
        }
        Value::Map(_) => hash_of_map(value),
        other => Err(IngressError::Hash(format!(
            "no representation-independent hash is defined for {}",
            kind_of(other)
        ))),
    }
}

/// The specification's `hash_of_map`: the representation-independent hash of a map whose keys
/// are text. Used for request ids (over the raw `content` map) and for delegations.
pub fn hash_of_map(value: &Value) -> Result<[u8; 32], IngressError> {
    let Value::Map(entries) = value else {
        return Err(IngressError::Hash(format!(
            "expected a map, found {}",
            kind_of(value)
        )));
    };
    let mut pairs = Vec::with_capacity(entries.len());
    for (key, val) in entries {
        let Value::Text(key) = key else {
            return Err(IngressError::Hash(format!(
                "map keys must be text, found {}",
                kind_of(key)
            )));
        };
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(&sha256(key.as_bytes()));
        pair[32..].copy_from_slice(&representation_independent_hash(val)?);
        pairs.push(pair);
    }
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    for pair in &pairs {
        hasher.update(pair);
    }
    Ok(hasher.finalize().into())
}

/// The bytes a sender signs for a request: `"\x0Aic-request" · request_id`.
pub fn request_signing_payload(request_id: &[u8; 32]) -> Vec<u8> {
    [IC_REQUEST_DOMAIN_SEPARATOR, request_id.as_slice()].concat()
}

/// The bytes a delegation's signer signs: `"\x1Aic-request-auth-delegation" · hash_of_map(delegation)`.
pub fn delegation_signing_payload(delegation: &Value) -> Result<Vec<u8>, IngressError> {
    Ok([
        IC_REQUEST_AUTH_DELEGATION_DOMAIN_SEPARATOR,
        hash_of_map(delegation)?.as_slice(),
    ]
    .concat())
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) => "an integer",
        Value::Bytes(_) => "a blob",
        Value::Float(_) => "a float",
        Value::Text(_) => "text",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Tag(..) => "a tagged value",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        _ => "an unsupported value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn spec_request_id_example() {
        let content = Value::Map(vec![
            (text("request_type"), text("call")),
            (
                text("canister_id"),
                Value::Bytes(vec![0, 0, 0, 0, 0, 0, 0x04, 0xD2]),
            ),
            (text("method_name"), text("hello")),
            (text("arg"), Value::Bytes(b"DIDL\x00\xFD*".to_vec())),
            (text("sender"), Value::Bytes(vec![0x04])),
            (
                text("ingress_expiry"),
                Value::Integer(1_685_570_400_000_000_000u64.into()),
            ),
        ]);
        // The spec's intermediate hashes.
        assert_eq!(
            hex::encode(
                representation_independent_hash(&Value::Integer(
                    1_685_570_400_000_000_000u64.into()
                ))
                .unwrap()
            ),
            "db8e57abc8cda1525d45fdd2637af091bc1f28b35819a40df71517d1501f2c76"
        );
        assert_eq!(
            hex::encode(
                representation_independent_hash(&Value::Bytes(b"DIDL\x00\xFD*".to_vec())).unwrap()
            ),
            "6c0b2ae49718f6995c02ac5700c9c789d7b7862a0d53e6d40a73f1fcd2f70189"
        );
        assert_eq!(
            hex::encode(hash_of_map(&content).unwrap()),
            "1d1091364d6bb8a6c16b203ee75467d59ead468f523eb058880ae8ec80e2b101"
        );
    }

    #[test]
    fn map_hash_is_independent_of_field_order() {
        let a = Value::Map(vec![
            (text("a"), Value::Integer(1.into())),
            (text("b"), text("x")),
        ]);
        let b = Value::Map(vec![
            (text("b"), text("x")),
            (text("a"), Value::Integer(1.into())),
        ]);
        assert_eq!(hash_of_map(&a).unwrap(), hash_of_map(&b).unwrap());
    }

    #[test]
    fn integers_use_leb128_and_sleb128() {
        let h = |v: i64| representation_independent_hash(&Value::Integer(v.into())).unwrap();
        assert_eq!(h(0), sha256(&[0x00]));
        assert_eq!(h(624485), sha256(&[0xE5, 0x8E, 0x26]));
        assert_eq!(h(-123456), sha256(&[0xC0, 0xBB, 0x78]));
        assert_eq!(h(-1), sha256(&[0x7F]));
        assert_eq!(h(-64), sha256(&[0x40]));
        assert_eq!(h(-65), sha256(&[0xBF, 0x7F]));
        let big = representation_independent_hash(&Value::Integer(u64::MAX.into())).unwrap();
        assert_eq!(
            big,
            sha256(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        );
    }

    #[test]
    fn arrays_hash_concatenated_hashes() {
        let arr = Value::Array(vec![text("a"), Value::Bytes(vec![1])]);
        let expected = sha256(&[sha256(b"a"), sha256(&[1])].concat());
        assert_eq!(representation_independent_hash(&arr).unwrap(), expected);
    }

    #[test]
    fn undefined_values_are_refused() {
        assert!(representation_independent_hash(&Value::Bool(true)).is_err());
        assert!(hash_of_map(&text("x")).is_err());
        assert!(hash_of_map(&Value::Map(vec![(Value::Integer(1.into()), text("x"))])).is_err());
    }
}
