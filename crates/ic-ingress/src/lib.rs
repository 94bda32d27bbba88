//! Validation of IC HTTP-interface request envelopes (`/api/v*/canister/<id>/call`, `/query`,
//! `/read_state`) as a replica performs it: CBOR parsing, request ids, ingress expiry, sender
//! authentication (Ed25519, ECDSA P-256/secp256k1, WebAuthn), delegation chains and targets.
//!
//! Pure logic: no I/O, no clock (the caller passes `now_nanos`).

use std::collections::{BTreeSet, HashSet};

use candid::Principal;
use ciborium::Value;

mod hash;
mod keys;
mod time_fmt;

pub use hash::{
    IC_REQUEST_AUTH_DELEGATION_DOMAIN_SEPARATOR, IC_REQUEST_DOMAIN_SEPARATOR,
    delegation_signing_payload, hash_of_map, representation_independent_hash,
    request_signing_payload,
};
pub use keys::{PublicKey, der, parse_public_key};

/// Maximum time-to-live of an ingress message (the replica's `MAX_INGRESS_TTL`).
pub const MAX_INGRESS_TTL_NANOS: u64 = 5 * 60 * 1_000_000_000;
/// Extra drift the replica's validator tolerates on top of `MAX_INGRESS_TTL`
/// (`PERMITTED_DRIFT_AT_VALIDATOR`): an expiry up to `now + 5 min 30 s` is accepted.
pub const PERMITTED_DRIFT_AT_VALIDATOR_NANOS: u64 = 30 * 1_000_000_000;
/// At most this many delegations in `sender_delegation` (interface specification).
pub const MAXIMUM_NUMBER_OF_DELEGATIONS: usize = 20;
/// At most this many targets in a single delegation.
pub const MAXIMUM_NUMBER_OF_TARGETS_PER_DELEGATION: usize = 1_000;
/// At most this many bytes in a request's `nonce`.
pub const MAXIMUM_NUMBER_OF_BYTES_IN_NONCE: usize = 32;
/// At most this many paths in a read_state request.
pub const MAXIMUM_NUMBER_OF_PATHS: usize = 1_000;
/// At most this many labels in one read_state path.
pub const MAXIMUM_NUMBER_OF_LABELS_PER_PATH: usize = 127;

/// The three request types of the HTTP interface (`content.request_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestType {
    Call,
    Query,
    ReadState,
}

impl RequestType {
    /// The `request_type` text in the content map.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Call => "call",
            RequestType::Query => "query",
            RequestType::ReadState => "read_state",
        }
    }

    /// How the replica names the body in "Could not parse body as ..." errors.
    fn body_name(self) -> &'static str {
        match self {
            RequestType::Call => "call message",
            RequestType::Query => "query message",
            RequestType::ReadState => "read request",
        }
    }
}

/// Content of a call or query request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallContent {
    /// `Call` or `Query`.
    pub request_type: RequestType,
    pub canister_id: Principal,
    pub method_name: String,
    pub arg: Vec<u8>,
    pub sender: Principal,
    pub ingress_expiry: u64,
    pub nonce: Option<Vec<u8>>,
}

/// Content of a read_state request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadStateContent {
    pub paths: Vec<Vec<Vec<u8>>>,
    pub sender: Principal,
    pub ingress_expiry: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Call(CallContent),
    Query(CallContent),
    ReadState(ReadStateContent),
}

impl Content {
    pub fn sender(&self) -> Principal {
        match self {
            Content::Call(c) | Content::Query(c) => c.sender,
            Content::ReadState(r) => r.sender,
        }
    }

    pub fn ingress_expiry(&self) -> u64 {
        match self {
            Content::Call(c) | Content::Query(c) => c.ingress_expiry,
            Content::ReadState(r) => r.ingress_expiry,
        }
    }
}

/// A request that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    /// The request id (representation-independent hash of the raw `content` map).
    pub request_id: [u8; 32],
    pub sender: Principal,
    pub content: Content,
    /// None = unrestricted; Some(set) = the intersection of every delegation's `targets`.
    pub targets: Option<BTreeSet<Principal>>,
}

impl Validated {
    /// Whether the request's delegations allow acting on `canister`.
    pub fn may_target(&self, canister: &Principal) -> bool {
        self.targets.as_ref().is_none_or(|t| t.contains(canister))
    }
}

/// Why a request envelope was refused. The `Display` texts follow the replica's
/// (`rs/validator`, `rs/http_endpoints`); every variant maps to HTTP 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    /// The body is not CBOR of the expected shape (includes a wrong `request_type`).
    #[error("Could not parse body as {body}: {reason}")]
    Parse { body: &'static str, reason: String },
    /// Well-formed CBOR that cannot be a request (e.g. a public key without a signature).
    #[error("Malformed request: {0}")]
    Malformed(String),
    #[error("Invalid request expiry: {0}")]
    InvalidRequestExpiry(String),
    #[error("Invalid delegation expiry: {0}")]
    InvalidDelegationExpiry(String),
    #[error("The user id '{sender}' does not match the public key '{}'", hex::encode(.public_key))]
    UserIdDoesNotMatchPublicKey {
        sender: Principal,
        public_key: Vec<u8>,
    },
    #[error("Invalid signature: {0}")]
    InvalidSignature(String),
    #[error("Invalid delegation: {0}")]
    InvalidDelegation(String),
    #[error("Missing signature from user: {0}")]
    MissingSignature(Principal),
    #[error("Signature is not allowed for the anonymous user.")]
    AnonymousSignatureNotAllowed,
    #[error("Canister '{0}' is not one of the delegation targets.")]
    CanisterNotInDelegationTargets(Principal),
    #[error(
        "Too many paths in read state request: got {length} paths, but at most {maximum} are allowed."
    )]
    TooManyPaths { length: usize, maximum: usize },
    #[error(
        "At least one path in read state request is too deep: got {length} labels, but at most {maximum} are allowed."
    )]
    PathTooLong { length: usize, maximum: usize },
    #[error(
        "Nonce in request is too big: got {num_bytes} bytes, but at most {maximum} are allowed."
    )]
    NonceTooBig { num_bytes: usize, maximum: usize },
    /// A value without a representation-independent hash (only from the hashing functions).
    #[error("Cannot compute the representation-independent hash: {0}")]
    Hash(String),
}

impl IngressError {
    /// The HTTP status the replica answers with: 400 Bad Request for all of these.
    pub fn http_status(&self) -> u16 {
        400
    }
}

/// Parses the CBOR body (self-describing tag 55799 optional) of a call/query/read_state POST,
/// checks its `request_type` against `expected`, checks `now <= ingress_expiry <= now + 5 min 30 s`
/// (like the replica, skipped for anonymous queries and read_state requests), verifies
/// `sender_pubkey`/`sender_sig`/`sender_delegation`, checks that `sender` is the
/// self-authenticating principal of `sender_pubkey` (or anonymous without key and signature),
/// that a call/query's `canister_id` is among the delegation targets, and that
/// `effective_canister_id` (when given) is among them too.
pub fn validate(
    body: &[u8],
    expected: RequestType,
    effective_canister_id: Option<Principal>,
    now_nanos: u64,
) -> Result<Validated, IngressError> {
    let envelope = parse_envelope(body, expected)?;
    let content = &envelope.content;
    let sender = content.sender();
    let anonymous = sender == Principal::anonymous();

    // Read-state path limits come first in the replica.
    if let Content::ReadState(rs) = content {
        if rs.paths.len() > MAXIMUM_NUMBER_OF_PATHS {
            return Err(IngressError::TooManyPaths {
                length: rs.paths.len(),
                maximum: MAXIMUM_NUMBER_OF_PATHS,
            });
        }
        if let Some(path) = rs
            .paths
            .iter()
            .find(|p| p.len() > MAXIMUM_NUMBER_OF_LABELS_PER_PATH)
        {
            return Err(IngressError::PathTooLong {
                length: path.len(),
                maximum: MAXIMUM_NUMBER_OF_LABELS_PER_PATH,
            });
        }
    }

    // The replica does not check the expiry of anonymous queries and read_state requests.
    if expected == RequestType::Call || !anonymous {
        validate_ingress_expiry(content.ingress_expiry(), now_nanos)?;
    }

    if let Content::Call(c) | Content::Query(c) = content
        && let Some(nonce) = &c.nonce
        && nonce.len() > MAXIMUM_NUMBER_OF_BYTES_IN_NONCE
    {
        return Err(IngressError::NonceTooBig {
            num_bytes: nonce.len(),
            maximum: MAXIMUM_NUMBER_OF_BYTES_IN_NONCE,
        });
    }

    let targets = match &envelope.auth {
        None if anonymous => None,
        None => return Err(IngressError::MissingSignature(sender)),
        Some(_) if anonymous => return Err(IngressError::AnonymousSignatureNotAllowed),
        Some(auth) => {
            if sender != Principal::self_authenticating(&auth.pubkey) {
                return Err(IngressError::UserIdDoesNotMatchPublicKey {
                    sender,
                    public_key: auth.pubkey.clone(),
                });
            }
            validate_authentication(auth, &envelope.request_id, now_nanos)?
        }
    };

    let allowed = |canister: &Principal| targets.as_ref().is_none_or(|t| t.contains(canister));
    if let Content::Call(c) | Content::Query(c) = content
        && !allowed(&c.canister_id)
    {
        return Err(IngressError::CanisterNotInDelegationTargets(c.canister_id));
    }
    if let Some(effective) = effective_canister_id
        && !allowed(&effective)
    {
        return Err(IngressError::CanisterNotInDelegationTargets(effective));
    }

    Ok(Validated {
        request_id: envelope.request_id,
        sender,
        content: envelope.content,
        targets,
    })
}

/// The request id of a raw `content` map (same as [`hash_of_map`]).
pub fn request_id(content: &Value) -> Result<[u8; 32], IngressError> {
    hash_of_map(content)
}

fn validate_ingress_expiry(expiry: u64, now: u64) -> Result<(), IngressError> {
    let max = now.saturating_add(MAX_INGRESS_TTL_NANOS + PERMITTED_DRIFT_AT_VALIDATOR_NANOS);
    if now <= expiry && expiry <= max {
        return Ok(());
    }
    Err(IngressError::InvalidRequestExpiry(format!(
        "Specified ingress_expiry not within expected range: \
         Minimum allowed expiry: {}, Maximum allowed expiry: {}, Provided expiry:        {}",
        time_fmt::format_nanos(now),
        time_fmt::format_nanos(max),
        time_fmt::format_nanos(expiry),
    )))
}

struct SignedDelegation {
    /// The raw `delegation` map (hashed as received).
    raw: Value,
    pubkey: Vec<u8>,
    expiration: u64,
    targets: Option<Vec<Principal>>,
    signature: Vec<u8>,
}

struct Authentication {
    pubkey: Vec<u8>,
    signature: Vec<u8>,
    delegations: Vec<SignedDelegation>,
}

struct Envelope {
    request_id: [u8; 32],
    content: Content,
    auth: Option<Authentication>,
}

/// Returns the allowed targets (None = all).
fn validate_authentication(
    auth: &Authentication,
    request_id: &[u8; 32],
    now: u64,
) -> Result<Option<BTreeSet<Principal>>, IngressError> {
    let delegations = &auth.delegations;
    if delegations.len() > MAXIMUM_NUMBER_OF_DELEGATIONS {
        return Err(IngressError::InvalidDelegation(format!(
            "Chain of delegations is too long: got {} delegations, but at most {} are allowed",
            delegations.len(),
            MAXIMUM_NUMBER_OF_DELEGATIONS
        )));
    }
    for d in delegations {
        if d.expiration < now {
            return Err(IngressError::InvalidDelegationExpiry(format!(
                "Specified sender delegation has expired:\n\
                 Provided expiry:    {}\n\
                 Local replica time: {}",
                time_fmt::format_nanos(d.expiration),
                time_fmt::format_nanos(now)
            )));
        }
    }
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(delegations.len() + 1);
    seen.insert(&auth.pubkey);
    for d in delegations {
        if !seen.insert(&d.pubkey) {
            return Err(IngressError::InvalidDelegation(format!(
                "Chain of delegations contains at least one cycle: first repeating public key encountered {}",
                hex::encode(&d.pubkey)
            )));
        }
    }
    for d in delegations {
        if let Some(t) = &d.targets {
            let distinct: BTreeSet<_> = t.iter().collect();
            if distinct.len() > MAXIMUM_NUMBER_OF_TARGETS_PER_DELEGATION {
                return Err(IngressError::InvalidDelegation(format!(
                    "Delegation target error: expected at most {MAXIMUM_NUMBER_OF_TARGETS_PER_DELEGATION} targets per delegation, but got {}",
                    distinct.len()
                )));
            }
        }
    }

    let mut signer: &[u8] = &auth.pubkey;
    let mut targets: Option<BTreeSet<Principal>> = None;
    for d in delegations {
        let payload = delegation_signing_payload(&d.raw)
            .map_err(|e| IngressError::InvalidDelegation(e.to_string()))?;
        keys::verify(signer, &payload, &d.signature)
            .map_err(|e| IngressError::InvalidDelegation(e.to_string()))?;
        if let Some(t) = &d.targets {
            let set: BTreeSet<Principal> = t.iter().copied().collect();
            targets = Some(match targets {
                None => set,
                Some(prev) => prev.intersection(&set).copied().collect(),
            });
        }
        signer = &d.pubkey;
    }
    keys::verify(
        signer,
        &request_signing_payload(request_id),
        &auth.signature,
    )
    .map_err(|e| IngressError::InvalidSignature(e.to_string()))?;
    Ok(targets)
}

// ---------------------------------------------------------------------------------------------
// CBOR parsing

fn field<'a>(map: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == name))
        .map(|(_, v)| v)
}

fn as_map<'a>(value: &'a Value, what: &str) -> Result<&'a [(Value, Value)], String> {
    match value {
        Value::Map(m) => Ok(m),
        other => Err(format!(
            "invalid type: {}, expected a map for {what}",
            hash::kind_of(other)
        )),
    }
}

fn required<'a>(map: &'a [(Value, Value)], name: &str) -> Result<&'a Value, String> {
    field(map, name).ok_or_else(|| format!("missing field `{name}`"))
}

fn blob(value: &Value, name: &str) -> Result<Vec<u8>, String> {
    match value {
        Value::Bytes(b) => Ok(b.clone()),
        other => Err(format!(
            "invalid type: {}, expected a blob for `{name}`",
            hash::kind_of(other)
        )),
    }
}

fn text(value: &Value, name: &str) -> Result<String, String> {
    match value {
        Value::Text(t) => Ok(t.clone()),
        other => Err(format!(
            "invalid type: {}, expected text for `{name}`",
            hash::kind_of(other)
        )),
    }
}

fn nat64(value: &Value, name: &str) -> Result<u64, String> {
    match value {
        Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| format!("`{name}` does not fit a 64-bit natural"))
        }
        other => Err(format!(
            "invalid type: {}, expected a natural for `{name}`",
            hash::kind_of(other)
        )),
    }
}

fn principal(value: &Value, name: &str) -> Result<Principal, String> {
    let bytes = blob(value, name)?;
    Principal::try_from_slice(&bytes).map_err(|e| format!("invalid principal in `{name}`: {e}"))
}

fn parse_envelope(body: &[u8], expected: RequestType) -> Result<Envelope, IngressError> {
    let parse_err = |reason: String| IngressError::Parse {
        body: expected.body_name(),
        reason,
    };
    let value: Value = ciborium::from_reader(body).map_err(|e| parse_err(e.to_string()))?;
    let value = match value {
        Value::Tag(55799, inner) => *inner,
        other => other,
    };
    let top = as_map(&value, "the envelope").map_err(parse_err)?;
    let raw_content = required(top, "content").map_err(parse_err)?;
    let content_map = as_map(raw_content, "`content`").map_err(parse_err)?;
    let content = parse_content(content_map, expected).map_err(parse_err)?;
    let request_id = hash_of_map(raw_content).map_err(|e| parse_err(e.to_string()))?;

    let opt_blob = |name: &str| -> Result<Option<Vec<u8>>, IngressError> {
        match field(top, name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => blob(v, name).map(Some).map_err(parse_err),
        }
    };
    let pubkey = opt_blob("sender_pubkey")?;
    let signature = opt_blob("sender_sig")?;
    let delegations = match field(top, "sender_delegation") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_delegations(v).map_err(parse_err)?),
    };
    let auth = match (pubkey, signature, delegations) {
        (Some(pubkey), Some(signature), delegations) => Some(Authentication {
            pubkey,
            signature,
            delegations: delegations.unwrap_or_default(),
        }),
        (None, None, None) => None,
        (Some(_), None, _) => {
            return Err(IngressError::Malformed(
                "missing field `sender_sig` (`sender_pubkey` is present)".into(),
            ));
        }
        (None, Some(_), _) => {
            return Err(IngressError::Malformed(
                "missing field `sender_pubkey` (`sender_sig` is present)".into(),
            ));
        }
        (None, None, Some(_)) => {
            return Err(IngressError::Malformed(
                "`sender_delegation` without `sender_pubkey` and `sender_sig`".into(),
            ));
        }
    };
    Ok(Envelope {
        request_id,
        content,
        auth,
    })
}

fn parse_content(map: &[(Value, Value)], expected: RequestType) -> Result<Content, String> {
    let request_type = text(required(map, "request_type")?, "request_type")?;
    if request_type != expected.as_str() {
        return Err(format!(
            "unknown variant `{request_type}`, expected `{}`",
            expected.as_str()
        ));
    }
    let sender = principal(required(map, "sender")?, "sender")?;
    let ingress_expiry = nat64(required(map, "ingress_expiry")?, "ingress_expiry")?;
    match expected {
        RequestType::Call | RequestType::Query => {
            let nonce = match field(map, "nonce") {
                None | Some(Value::Null) => None,
                Some(v) => Some(blob(v, "nonce")?),
            };
            let call = CallContent {
                request_type: expected,
                canister_id: principal(required(map, "canister_id")?, "canister_id")?,
                method_name: text(required(map, "method_name")?, "method_name")?,
                arg: blob(required(map, "arg")?, "arg")?,
                sender,
                ingress_expiry,
                nonce,
            };
            Ok(if expected == RequestType::Call {
                Content::Call(call)
            } else {
                Content::Query(call)
            })
        }
        RequestType::ReadState => {
            let Value::Array(paths) = required(map, "paths")? else {
                return Err("invalid type, expected an array of paths for `paths`".into());
            };
            let paths = paths
                .iter()
                .map(|path| match path {
                    Value::Array(labels) => labels.iter().map(|l| blob(l, "paths")).collect(),
                    _ => Err("invalid type, expected a path (array of blobs) in `paths`".into()),
                })
                .collect::<Result<Vec<Vec<Vec<u8>>>, String>>()?;
            Ok(Content::ReadState(ReadStateContent {
                paths,
                sender,
                ingress_expiry,
            }))
        }
    }
}

fn parse_delegations(value: &Value) -> Result<Vec<SignedDelegation>, String> {
    let Value::Array(items) = value else {
        return Err("invalid type, expected an array for `sender_delegation`".into());
    };
    items
        .iter()
        .map(|item| {
            let signed = as_map(item, "a signed delegation")?;
            let raw = required(signed, "delegation")?;
            let delegation = as_map(raw, "`delegation`")?;
            let targets = match field(delegation, "targets") {
                None | Some(Value::Null) => None,
                Some(Value::Array(ts)) => Some(
                    ts.iter()
                        .map(|t| principal(t, "targets"))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Some(_) => return Err("invalid type, expected an array for `targets`".into()),
            };
            Ok(SignedDelegation {
                raw: raw.clone(),
                pubkey: blob(required(delegation, "pubkey")?, "pubkey")?,
                expiration: nat64(required(delegation, "expiration")?, "expiration")?,
                targets,
                signature: blob(required(signed, "signature")?, "signature")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
