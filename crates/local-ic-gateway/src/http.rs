//! The IC HTTP interface's endpoints (`/api/v2/status`, `/api/v4/…/call`, `/api/v2/…/call`,
//! `/api/v3/…/query`, `/api/v3/…/read_state`): decoding, ingress validation, and the CBOR the
//! clients expect.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use candid::Principal;
use ciborium::Value;
use ic_ingress::{CallContent, Content, RequestType, Validated};
use local_ic::RejectResponse;
use tokio::sync::oneshot;

use crate::executor::{CallOutcome, Command};
use crate::keys::NetworkKeys;
use crate::management;
use crate::node::{Submission, wall_clock_nanos};
use crate::refusal::{Refusal, refuse};
use crate::state_tree::{self, ReadStateTarget, is_management};

/// The largest request body accepted (the IC's ingress limit is 2 MiB of payload; the
/// envelope adds signatures and delegations).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct Gateway {
    pub commands: Sender<Command>,
    pub keys: Arc<NetworkKeys>,
}

pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/v4/canister/{id}/call", post(call_sync))
        .route("/api/v2/canister/{id}/call", post(call_async))
        .route("/api/v3/canister/{id}/query", post(query))
        .route("/api/v2/canister/{id}/query", post(query))
        .route(
            "/api/v3/canister/{id}/read_state",
            post(read_state_canister),
        )
        .route(
            "/api/v2/canister/{id}/read_state",
            post(read_state_canister),
        )
        .route("/api/v3/subnet/{id}/read_state", post(read_state_subnet))
        .route("/api/v2/subnet/{id}/read_state", post(read_state_subnet))
        // Everything else: browsers on `<canister-id>.localhost` (see `browser`).
        .fallback(crate::browser::serve)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(gateway)
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, self.message).into_response()
    }
}

fn error(status: u16, message: impl Into<String>) -> Response {
    refuse(status, message).into_response()
}

/// A CBOR response body (self-describing, as the replica sends it).
fn cbor_response(status: StatusCode, value: Value) -> Response {
    let mut body = Vec::new();
    ciborium::into_writer(&Value::Tag(55799, Box::new(value)), &mut body)
        .expect("writing CBOR to memory");
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/cbor"),
    );
    response
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_string()), v))
            .collect(),
    )
}

fn parse_principal(text: &str, what: &str) -> Result<Principal, Refusal> {
    Principal::from_text(text).map_err(|e| refuse(400, format!("Invalid {what} '{text}': {e}")))
}

async fn status(State(gateway): State<Gateway>) -> Response {
    cbor_response(
        StatusCode::OK,
        map(vec![
            (
                "impl_version",
                Value::Text(env!("CARGO_PKG_VERSION").to_string()),
            ),
            ("impl_source", Value::Text("local-ic".to_string())),
            ("replica_health_status", Value::Text("healthy".to_string())),
            (
                "root_key",
                Value::Bytes(gateway.keys.root_key_der().to_vec()),
            ),
        ]),
    )
}

/// Requests validated at once: decoding a hostile 4 MiB CBOR body can take a few hundred MB,
/// so the number in flight is bounded; validation (CBOR, hashing, signatures) runs on the
/// blocking pool, so the async workers keep serving.
const MAX_VALIDATIONS_IN_FLIGHT: usize = 8;
static VALIDATIONS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_VALIDATIONS_IN_FLIGHT);

async fn validate(
    body: &Bytes,
    expected: RequestType,
    effective: Option<Principal>,
) -> Result<Validated, Refusal> {
    let _permit = VALIDATIONS
        .acquire()
        .await
        .map_err(|_| refuse(503, "The network is shutting down"))?;
    let body = body.clone();
    tokio::task::spawn_blocking(move || {
        ic_ingress::validate(&body, expected, effective, wall_clock_nanos())
            .map_err(|e| refuse(e.http_status(), e.to_string()))
    })
    .await
    .map_err(|_| refuse(500, "Validating the request failed"))?
}

/// The effective canister id the URL names and the call or query sent to it, validated and
/// checked to be addressed consistently with the URL.
async fn addressed_request(
    id: &str,
    body: &Bytes,
    expected: RequestType,
) -> Result<(Principal, Validated), Refusal> {
    let effective = parse_principal(id, "effective canister id")?;
    let validated = validate(body, expected, Some(effective)).await?;
    addressed(&validated, effective)?;
    Ok((effective, validated))
}

/// Checks that a call or query is addressed consistently with its URL, and returns the call.
fn addressed(validated: &Validated, effective: Principal) -> Result<&CallContent, Refusal> {
    let content = match &validated.content {
        Content::Call(c) | Content::Query(c) => c,
        Content::ReadState(_) => return Err(refuse(400, "Expected a call or query request")),
    };
    if is_management(&content.canister_id) {
        if let Some(target) = management::effective_canister_id(&content.method_name, &content.arg)?
            && target != effective
        {
            return Err(refuse(
                400,
                format!(
                    "Specified CanisterId {effective} does not match effective canister id {target} in the management canister call's argument"
                ),
            ));
        }
    } else if content.canister_id != effective {
        return Err(refuse(
            400,
            format!(
                "Specified CanisterId {} does not match effective canister id in URL {effective}",
                content.canister_id
            ),
        ));
    }
    if !state_tree::hosts(&effective) {
        return Err(refuse(
            400,
            format!("Canister {effective} does not belong to this subnet"),
        ));
    }
    Ok(content)
}

async fn call_sync(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    call(gateway, id, body, true).await
}

async fn call_async(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    call(gateway, id, body, false).await
}

fn reject_entries(reject: &RejectResponse) -> Vec<(&'static str, Value)> {
    vec![
        (
            "reject_code",
            Value::Integer(u64::from(reject.reject_code.as_u32()).into()),
        ),
        ("reject_message", Value::Text(reject.reject_message.clone())),
        (
            "error_code",
            Value::Text(reject.error_code.clone().unwrap_or_default()),
        ),
    ]
}

async fn call(gateway: Gateway, id: String, body: Bytes, sync: bool) -> Response {
    let (effective, validated) = match addressed_request(&id, &body, RequestType::Call).await {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let Content::Call(content) = &validated.content else {
        return error(400, "Expected a call request");
    };
    let (reply, answer) = oneshot::channel();
    let submission = Submission {
        request_id: validated.request_id,
        sender: validated.sender,
        canister: content.canister_id,
        effective,
        method: content.method_name.clone(),
        arg: content.arg.clone(),
        ingress_expiry: content.ingress_expiry,
    };
    if gateway
        .commands
        .send(Command::Call {
            submission,
            sync,
            reply,
        })
        .is_err()
    {
        return error(503, "The network is shutting down");
    }
    match answer.await {
        Ok(CallOutcome::Certified(certificate)) => cbor_response(
            StatusCode::OK,
            map(vec![
                ("status", Value::Text("replied".to_string())),
                ("certificate", Value::Bytes(certificate)),
            ]),
        ),
        Ok(CallOutcome::Accepted) => StatusCode::ACCEPTED.into_response(),
        Ok(CallOutcome::NonReplicatedRejection(reject)) => {
            let mut entries = vec![(
                "status",
                Value::Text("non_replicated_rejection".to_string()),
            )];
            entries.extend(reject_entries(&reject));
            cbor_response(StatusCode::OK, map(entries))
        }
        Err(_) => error(503, "The network stopped before answering"),
    }
}

async fn query(State(gateway): State<Gateway>, Path(id): Path<String>, body: Bytes) -> Response {
    let (_, validated) = match addressed_request(&id, &body, RequestType::Query).await {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let Content::Query(content) = &validated.content else {
        return error(400, "Expected a query request");
    };
    let (reply, answer) = oneshot::channel();
    if gateway
        .commands
        .send(Command::Query {
            canister: content.canister_id,
            sender: validated.sender,
            method: content.method_name.clone(),
            arg: content.arg.clone(),
            reply,
        })
        .is_err()
    {
        return error(503, "The network is shutting down");
    }
    let Ok((result, time_nanos)) = answer.await else {
        return error(503, "The network stopped before answering");
    };
    let mut signed = match &result {
        Ok(reply) => vec![
            ("status", Value::Text("replied".to_string())),
            ("reply", map(vec![("arg", Value::Bytes(reply.clone()))])),
        ],
        Err(reject) => {
            let mut entries = vec![("status", Value::Text("rejected".to_string()))];
            entries.extend(reject_entries(reject));
            entries
        }
    };
    let mut hashed = signed.clone();
    hashed.push(("timestamp", Value::Integer(time_nanos.into())));
    hashed.push(("request_id", Value::Bytes(validated.request_id.to_vec())));
    let hash = ic_ingress::hash_of_map(&map(hashed)).expect("a response map hashes");
    let signature = gateway.keys.sign_response(&hash);
    signed.push((
        "signatures",
        Value::Array(vec![map(vec![
            ("timestamp", Value::Integer(time_nanos.into())),
            ("signature", Value::Bytes(signature.to_vec())),
            (
                "identity",
                Value::Bytes(gateway.keys.node_id.as_slice().to_vec()),
            ),
        ])]),
    ));
    cbor_response(StatusCode::OK, map(signed))
}

async fn read_state_canister(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match parse_principal(&id, "effective canister id") {
        Ok(effective) => read_state(gateway, ReadStateTarget::Canister(effective), body).await,
        Err(refusal) => refusal.into_response(),
    }
}

async fn read_state_subnet(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let subnet = match parse_principal(&id, "subnet id") {
        Ok(p) => p,
        Err(refusal) => return refusal.into_response(),
    };
    if subnet != gateway.keys.subnet_id {
        return error(404, format!("Subnet {subnet} is not this network's subnet"));
    }
    read_state(gateway, ReadStateTarget::Subnet(subnet), body).await
}

async fn read_state(gateway: Gateway, target: ReadStateTarget, body: Bytes) -> Response {
    let effective = match target {
        ReadStateTarget::Canister(id) => Some(id),
        ReadStateTarget::Subnet(_) => None,
    };
    let validated = match validate(&body, RequestType::ReadState, effective).await {
        Ok(v) => v,
        Err(refusal) => return refusal.into_response(),
    };
    let Content::ReadState(content) = validated.content else {
        return error(400, "Expected a read_state request");
    };
    let (reply, answer) = oneshot::channel();
    if gateway
        .commands
        .send(Command::ReadState {
            target,
            sender: validated.sender,
            paths: content.paths,
            reply,
        })
        .is_err()
    {
        return error(503, "The network is shutting down");
    }
    match answer.await {
        Ok(Ok(certificate)) => cbor_response(
            StatusCode::OK,
            map(vec![("certificate", Value::Bytes(certificate))]),
        ),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(_) => error(503, "The network stopped before answering"),
    }
}
