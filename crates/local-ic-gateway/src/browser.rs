//! Browsers on the same server, as the IC's HTTP gateways serve them: a request whose `Host` is
//! `<canister-id>.localhost:<port>` goes to the canister's `http_request` and its response is
//! **verified** (response verification v1/v2 against the network's root key) before it is
//! passed on; `<canister-id>.raw.localhost:<port>`, or `?canisterId=<id>` on any other host,
//! is the **raw** form, passed on unverified.
//!
//! The steps are the HTTP gateway protocol's: the query `http_request` (anonymous sender,
//! `certificate_version = opt 2`); if the canister answers `upgrade = opt true`, the update
//! `http_request_update` (its reply went through consensus, so it is not verified); otherwise,
//! on the verified domain, `ic-response-verification` checks the `IC-Certificate` header. A
//! response that does not verify is answered 503, as the IC's gateways answer it.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use candid::Principal;
use ic_http_certification::{HttpRequest, HttpResponse, HttpUpdateRequest, HttpUpdateResponse};
use ic_response_verification::types::VerificationInfo;
use ic_response_verification::{
    MAX_VERIFICATION_VERSION, MIN_VERIFICATION_VERSION, verify_request_response_pair,
};
use local_ic::{RejectCode, RejectResponse};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::executor::Command;
use crate::http::Gateway;
use crate::node::{Submission, wall_clock_nanos};

/// How far a certificate's time may be from the gateway's clock (the IC gateways' 5 minutes).
pub const MAX_CERT_TIME_OFFSET_NANOS: u128 = 300_000_000_000;
/// How long the update call `http_request_update` may stay in the network's memory.
const UPDATE_EXPIRY_NANOS: u64 = 5 * 60 * 1_000_000_000;

/// Whether a canister's response is verified before it is passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Verified,
    Raw,
}

/// The canister (and mode) a browser request addresses: `<id>.localhost[:port]` (verified),
/// `<id>.raw.localhost[:port]` (raw), or `canisterId=<id>` in the query string of a request to
/// any other host (raw). `None` when the request names no canister.
pub fn resolve(host: Option<&str>, query: Option<&str>) -> Option<(Principal, Mode)> {
    if let Some(found) = host.and_then(canister_from_host) {
        return Some(found);
    }
    let id = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("canisterId="))?;
    Some((Principal::from_text(id).ok()?, Mode::Raw))
}

/// `<id>.localhost[:port]` or `<id>.raw.localhost[:port]` (case-insensitive, a trailing dot
/// allowed).
pub fn canister_from_host(host: &str) -> Option<(Principal, Mode)> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    let subdomain = name.strip_suffix(".localhost")?;
    let (id, mode) = match subdomain.strip_suffix(".raw") {
        Some(id) => (id, Mode::Raw),
        None => (subdomain, Mode::Verified),
    };
    if id.contains('.') {
        return None;
    }
    Some((Principal::from_text(id).ok()?, mode))
}

/// The Candid `HttpRequest` the canister receives: method, URL (path and query), headers (with
/// `identity` added to `Accept-Encoding`, as the gateways do), body, `certificate_version = 2`.
pub fn build_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HttpRequest<'static>, String> {
    let url = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    let mut fields = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let value = value
            .to_str()
            .map_err(|_| format!("The value of header '{name}' is not visible ASCII"))?;
        if *name == header::ACCEPT_ENCODING {
            let mut encodings: Vec<&str> = value.split(',').map(str::trim).collect();
            if !encodings.iter().any(|e| e.eq_ignore_ascii_case("identity")) {
                encodings.push("identity");
            }
            fields.push((name.to_string(), encodings.join(", ")));
        } else {
            fields.push((name.to_string(), value.to_string()));
        }
    }
    Ok(HttpRequest::builder()
        .with_method(method.clone())
        .with_url(url)
        .with_headers(fields)
        .with_body(body.to_vec())
        .with_certificate_version(u16::from(MAX_VERIFICATION_VERSION))
        .build())
}

/// Verifies a canister's response to `request` as an IC gateway does, at `now_nanos`, against
/// the network's root key (DER).
pub fn verify(
    request: &HttpRequest<'_>,
    response: &HttpResponse<'_>,
    canister: Principal,
    now_nanos: u128,
    root_key_der: &[u8],
) -> Result<VerificationInfo, String> {
    verify_request_response_pair(
        request.clone(),
        response.clone(),
        canister.as_slice(),
        now_nanos,
        MAX_CERT_TIME_OFFSET_NANOS,
        root_key_der,
        MIN_VERIFICATION_VERSION,
    )
    .map_err(|e| e.to_string())
}

/// What the browser gets: status, headers and body, or an error status and its message.
pub type Answer = Result<(u16, Vec<(String, String)>, Vec<u8>), (u16, String)>;

/// The status, headers and body passed on to the browser, or the refusal, given the
/// verification's result (`None`: not verified, the raw domain or an upgraded call).
pub fn passed_on(
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
    verification: Option<&VerificationInfo>,
) -> Answer {
    match verification {
        None => Ok((status, headers.to_vec(), body)),
        Some(info) if info.verification_version < 2 => {
            // v1 certifies the body only: refuse redirects, drop the caching header.
            if (300..400).contains(&status) {
                return Err((
                    500,
                    "Response verification v1 does not allow redirects".into(),
                ));
            }
            let kept = headers
                .iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("cache-control"))
                .cloned()
                .collect();
            Ok((status, kept, body))
        }
        // v2 and the canister certified that it skips certification: passed on as it is.
        Some(VerificationInfo { response: None, .. }) => Ok((status, headers.to_vec(), body)),
        // v2: only the certified headers.
        Some(VerificationInfo {
            response: Some(certified),
            ..
        }) => Ok((status, certified.headers.clone(), body)),
    }
}

/// The router's fallback: serves browser requests for canisters, 404 for everything else.
pub async fn serve(
    State(gateway): State<Gateway>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let Some((canister, mode)) = resolve(host, uri.query()) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "No canister addressed: use http://<canister-id>.localhost:<port>{} (verified), \
                 http://<canister-id>.raw.localhost:<port>{} (raw) or ?canisterId=<canister-id>",
                uri.path(),
                uri.path()
            ),
        );
    };
    let request = match build_request(&method, &uri, &headers, &body) {
        Ok(r) => r,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    match answer(&gateway, canister, mode, &request).await {
        Ok((status, headers, body)) => response(status, &headers, body),
        Err((status, message)) => text(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        ),
    }
}

async fn answer(
    gateway: &Gateway,
    canister: Principal,
    mode: Mode,
    request: &HttpRequest<'static>,
) -> Answer {
    let arg = candid::encode_one(request).map_err(|e| (500, format!("Encoding request: {e}")))?;
    let (reply, result) = oneshot::channel();
    gateway
        .commands
        .send(Command::Query {
            canister,
            sender: Principal::anonymous(),
            method: "http_request".into(),
            arg,
            reply,
        })
        .map_err(|_| (503, "The network is shutting down".to_string()))?;
    let (result, _) = result
        .await
        .map_err(|_| (503, "The network stopped before answering".to_string()))?;
    let reply = result.map_err(|reject| rejected(&reject))?;
    let response: HttpResponse<'static> = candid::decode_one(&reply).map_err(|e| {
        (
            500,
            format!("The canister's http_request reply is not an HttpResponse: {e}"),
        )
    })?;

    if response.upgrade() == Some(true) {
        let update = update(gateway, canister, request).await?;
        return passed_on(
            update.status_code().as_u16(),
            update.headers(),
            update.body().to_vec(),
            None,
        );
    }

    let verification = match mode {
        Mode::Raw => None,
        Mode::Verified => Some(
            verify(
                request,
                &response,
                canister,
                u128::from(wall_clock_nanos()),
                gateway.keys.root_key_der(),
            )
            .map_err(|e| (503, unverified_message(canister, &e)))?,
        ),
    };
    passed_on(
        response.status_code().as_u16(),
        response.headers(),
        response.body().to_vec(),
        verification.as_ref(),
    )
}

/// The update call `http_request_update`, submitted as an anonymous ingress message.
async fn update(
    gateway: &Gateway,
    canister: Principal,
    request: &HttpRequest<'static>,
) -> Result<HttpUpdateResponse<'static>, (u16, String)> {
    let update_request = HttpUpdateRequest::from(request.clone());
    let arg =
        candid::encode_one(&update_request).map_err(|e| (500, format!("Encoding request: {e}")))?;
    let now = wall_clock_nanos();
    let submission = Submission {
        request_id: update_request_id(canister, now, &arg),
        sender: Principal::anonymous(),
        canister,
        effective: canister,
        method: "http_request_update".into(),
        arg,
        ingress_expiry: now + UPDATE_EXPIRY_NANOS,
    };
    let (reply, result) = oneshot::channel();
    gateway
        .commands
        .send(Command::UpdateHttp { submission, reply })
        .map_err(|_| (503, "The network is shutting down".to_string()))?;
    let reply = result
        .await
        .map_err(|_| (503, "The network stopped before answering".to_string()))?
        .map_err(|reject| rejected(&reject))?;
    candid::decode_one(&reply).map_err(|e| {
        (
            500,
            format!("The canister's http_request_update reply is not an HttpResponse: {e}"),
        )
    })
}

/// A request id of its own for each update call the gateway makes.
fn update_request_id(canister: Principal, now: u64, arg: &[u8]) -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    Sha256::new()
        .chain_update(b"local-ic-gateway http_request_update")
        .chain_update(COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes())
        .chain_update(now.to_be_bytes())
        .chain_update(canister.as_slice())
        .chain_update(arg)
        .finalize()
        .into()
}

/// A reject as the gateways answer it: 404 for a missing canister, 502 otherwise.
fn rejected(reject: &RejectResponse) -> (u16, String) {
    if reject.reject_code == RejectCode::DestinationInvalid {
        return (404, reject.reject_message.clone());
    }
    (
        502,
        format!(
            "Replica Error: reject code {:?}, message {}, error code {:?}",
            reject.reject_code, reject.reject_message, reject.error_code
        ),
    )
}

fn unverified_message(canister: Principal, error: &str) -> String {
    format!(
        "Response verification failed: {error}\n\nThe response from canister {canister} could \
         not be verified and cannot be trusted. A canister certifies its responses (or certifies \
         that it skips certification) for the verified domain <canister-id>.localhost; to see \
         the response unverified, use the raw domain {canister}.raw.localhost.\n"
    )
}

fn text(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// The browser's response. The body's length and framing are hyper's: the canister's
/// `Content-Length` and hop-by-hop headers are not copied.
fn response(status: u16, headers: &[(String, String)], body: Vec<u8>) -> Response {
    let Ok(status) = StatusCode::from_u16(status) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Invalid canister response status code: {status}"),
        );
    };
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    out.remove(header::CONTENT_TYPE);
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        out.append(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NetworkKeys;
    use ic_certificate::{StateTree, certificate_cbor, leb128};
    use ic_http_certification::utils::{
        add_skip_certification_header, add_v2_certificate_header, skip_certification_certified_data,
    };
    use ic_http_certification::{
        CERTIFICATE_EXPRESSION_HEADER_NAME, DefaultCelBuilder, DefaultResponseCertification,
        HttpCertification, HttpCertificationPath, HttpCertificationTree,
        HttpCertificationTreeEntry, StatusCode as CertStatus,
    };

    const NOW: u64 = 1_780_000_000_000_000_000;

    fn canister() -> Principal {
        Principal::from_text("uxrrr-q7777-77774-qaaaq-cai").unwrap()
    }

    /// A certificate for `canister`'s certified data at `time`, signed by `keys`' root key (what
    /// `ic0.data_certificate` returns in a query).
    fn data_certificate(
        keys: &NetworkKeys,
        canister: Principal,
        data: &[u8],
        time: u64,
    ) -> Vec<u8> {
        let mut tree = StateTree::new();
        let path: [&[u8]; 3] = [b"canister", canister.as_slice(), b"certified_data"];
        tree.insert(&path, data.to_vec());
        tree.insert(&[b"time"], leb128(time));
        let paths: Vec<Vec<Vec<u8>>> = vec![
            path.iter().map(|l| l.to_vec()).collect(),
            vec![b"time".to_vec()],
        ];
        let witness = tree.witness(&paths);
        certificate_cbor(&witness, &keys.sign_root(&witness.digest()))
    }

    fn skip_response(keys: &NetworkKeys, time: u64) -> HttpResponse<'static> {
        let mut response = HttpResponse::ok(
            b"cycle_balance 1\n".to_vec(),
            vec![("Content-Type".into(), "text/plain".into())],
        )
        .build();
        let certificate =
            data_certificate(keys, canister(), &skip_certification_certified_data(), time);
        add_skip_certification_header(certificate, &mut response);
        response
    }

    /// A response certified in full (status, body and the `Content-Type` header) at `/page`.
    fn certified_response(keys: &NetworkKeys) -> (HttpRequest<'static>, HttpResponse<'static>) {
        let request = HttpRequest::get("/page").build();
        let cel = DefaultCelBuilder::response_only_certification()
            .with_response_certification(DefaultResponseCertification::certified_response_headers(
                vec!["Content-Type"],
            ))
            .build();
        let mut response = HttpResponse::ok(
            b"<h1>certified</h1>".to_vec(),
            vec![
                ("Content-Type".into(), "text/html".into()),
                (CERTIFICATE_EXPRESSION_HEADER_NAME.into(), cel.to_string()),
            ],
        )
        .build();
        let certification = HttpCertification::response_only(&cel, &response, None).unwrap();
        let mut tree = HttpCertificationTree::default();
        let entry =
            HttpCertificationTreeEntry::new(HttpCertificationPath::exact("/page"), certification);
        tree.insert(&entry);
        let witness = tree.witness(&entry, "/page").unwrap();
        let certificate = data_certificate(keys, canister(), &tree.root_hash(), NOW);
        add_v2_certificate_header(
            &certificate,
            &mut response,
            &witness,
            &HttpCertificationPath::exact("/page").to_expr_path(),
        );
        // Not certified: the verified domain must drop it.
        response.add_header(("X-Uncertified".into(), "1".into()));
        (request, response)
    }

    #[test]
    fn hosts_name_the_canister_and_the_mode() {
        let id = canister();
        assert_eq!(
            canister_from_host(&format!("{id}.localhost:4943")),
            Some((id, Mode::Verified))
        );
        assert_eq!(
            canister_from_host(&format!("{id}.raw.localhost:4943")),
            Some((id, Mode::Raw))
        );
        assert_eq!(
            canister_from_host(&format!("{}.LOCALHOST.", id.to_text().to_uppercase())),
            Some((id, Mode::Verified))
        );
        for other in [
            "localhost:4943".to_string(),
            "127.0.0.1:4943".to_string(),
            format!("{id}.example.com"),
            format!("x.{id}.localhost"),
            "not-a-principal.localhost".to_string(),
            "[::1]:4943".to_string(),
        ] {
            assert_eq!(canister_from_host(&other), None, "{other}");
        }
        // `?canisterId=` on a plain host: raw.
        assert_eq!(
            resolve(
                Some("127.0.0.1:4943"),
                Some(&format!("a=1&canisterId={id}"))
            ),
            Some((id, Mode::Raw))
        );
        // The host wins over the query.
        assert_eq!(
            resolve(
                Some(&format!("{id}.localhost")),
                Some("canisterId=aaaaa-aa")
            ),
            Some((id, Mode::Verified))
        );
        assert_eq!(resolve(Some("localhost"), Some("canisterId=bad")), None);
        assert_eq!(resolve(None, None), None);
    }

    #[test]
    fn requests_carry_method_url_headers_body_and_version() {
        let uri: Uri = "/metrics?fresh=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("x.localhost"));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br"),
        );
        let request = build_request(&Method::POST, &uri, &headers, b"body").unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.url(), "/metrics?fresh=1");
        assert_eq!(request.body(), b"body");
        assert_eq!(request.certificate_version(), Some(2));
        assert_eq!(
            request.headers(),
            &[
                ("host".to_string(), "x.localhost".to_string()),
                (
                    "accept-encoding".to_string(),
                    "gzip, br, identity".to_string()
                ),
            ]
        );
        // Candid: the canister's `HttpRequest` (without `certificate_version`) decodes it.
        #[derive(candid::CandidType, serde::Deserialize)]
        struct Canister {
            method: String,
            url: String,
            headers: Vec<(String, String)>,
            #[serde(with = "serde_bytes")]
            body: Vec<u8>,
        }
        let decoded: Canister = candid::decode_one(&candid::encode_one(&request).unwrap()).unwrap();
        assert_eq!(decoded.method, "POST");
        assert_eq!(decoded.url, "/metrics?fresh=1");
        assert_eq!(decoded.headers.len(), 2);
        assert_eq!(decoded.body, b"body");

        headers.insert("x-bad", HeaderValue::from_bytes(b"\xff").unwrap());
        assert!(build_request(&Method::GET, &uri, &headers, b"").is_err());
    }

    #[test]
    fn canister_responses_without_the_new_fields_decode() {
        // The suite's `HttpResponse` has neither `upgrade` nor `streaming_strategy`.
        #[derive(candid::CandidType)]
        struct Canister {
            status_code: u16,
            headers: Vec<(String, String)>,
            body: serde_bytes::ByteBuf,
        }
        let bytes = candid::encode_one(Canister {
            status_code: 404,
            headers: vec![("A".into(), "b".into())],
            body: serde_bytes::ByteBuf::from(b"nope".to_vec()),
        })
        .unwrap();
        let response: HttpResponse = candid::decode_one(&bytes).unwrap();
        assert_eq!(response.status_code(), CertStatus::NOT_FOUND);
        assert_eq!(response.upgrade(), None);
        assert_eq!(response.body(), b"nope");
    }

    #[test]
    fn skipped_certification_verifies_and_passes_everything_on() {
        let keys = NetworkKeys::from_seed([7; 32]);
        let request = HttpRequest::get("/metrics").build();
        let response = skip_response(&keys, NOW);
        let info = verify(
            &request,
            &response,
            canister(),
            u128::from(NOW),
            keys.root_key_der(),
        )
        .unwrap();
        assert_eq!(info.verification_version, 2);
        assert!(info.response.is_none());
        let (status, headers, body) = passed_on(
            200,
            response.headers(),
            response.body().to_vec(),
            Some(&info),
        )
        .unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"cycle_balance 1\n"[..]));
        assert!(headers.iter().any(|(k, _)| k == "Content-Type"));
    }

    #[test]
    fn certified_responses_verify_and_pass_on_only_certified_headers() {
        let keys = NetworkKeys::from_seed([7; 32]);
        let (request, response) = certified_response(&keys);
        let info = verify(
            &request,
            &response,
            canister(),
            u128::from(NOW),
            keys.root_key_der(),
        )
        .unwrap();
        assert_eq!(info.verification_version, 2);
        let (status, headers, _) = passed_on(
            200,
            response.headers(),
            response.body().to_vec(),
            Some(&info),
        )
        .unwrap();
        assert_eq!(status, 200);
        let names: Vec<String> = headers.iter().map(|(k, _)| k.to_lowercase()).collect();
        assert!(names.contains(&"content-type".to_string()), "{names:?}");
        assert!(names.contains(&"ic-certificate".to_string()), "{names:?}");
        assert!(!names.contains(&"x-uncertified".to_string()), "{names:?}");
    }

    #[test]
    fn tampered_stale_foreign_or_uncertified_responses_are_refused() {
        let keys = NetworkKeys::from_seed([7; 32]);
        let (request, response) = certified_response(&keys);
        let check = |response: &HttpResponse, canister: Principal, now: u64, key: &[u8]| {
            verify(&request, response, canister, u128::from(now), key)
        };
        let root = keys.root_key_der();

        // Another body.
        let mut tampered = HttpResponse::ok(b"<h1>forged</h1>".to_vec(), vec![]).build();
        *tampered.headers_mut() = response.headers().to_vec();
        assert!(check(&tampered, canister(), NOW, root).is_err());

        // Another status code.
        let mut status = HttpResponse::builder()
            .with_status_code(CertStatus::NOT_FOUND)
            .with_body(response.body().to_vec())
            .build();
        *status.headers_mut() = response.headers().to_vec();
        assert!(check(&status, canister(), NOW, root).is_err());

        // Another network's root key.
        let other = NetworkKeys::from_seed([8; 32]);
        assert!(check(&response, canister(), NOW, other.root_key_der()).is_err());

        // Another canister's response.
        let other_canister = Principal::from_text("rrkah-fqaaa-aaaaa-aaaaq-cai").unwrap();
        assert!(check(&response, other_canister, NOW, root).is_err());

        // A certificate older than the 5 minutes allowed.
        let late = NOW + 301 * 1_000_000_000;
        assert!(check(&response, canister(), late, root).is_err());

        // No certificate at all (what a canister answers before it certifies anything).
        let bare = HttpResponse::ok(response.body().to_vec(), vec![]).build();
        let error = check(&bare, canister(), NOW, root).unwrap_err();
        let message = unverified_message(canister(), &error);
        assert!(
            message.starts_with("Response verification failed"),
            "{message}"
        );
        assert!(message.contains(".raw.localhost"), "{message}");

        // A skip certification whose certified data is not the skip tree.
        let mut skip = HttpResponse::ok(b"x".to_vec(), vec![]).build();
        add_skip_certification_header(
            data_certificate(&keys, canister(), &[0; 32], NOW),
            &mut skip,
        );
        assert!(check(&skip, canister(), NOW, root).is_err());
    }

    #[test]
    fn version_one_refuses_redirects_and_drops_caching() {
        let v1 = VerificationInfo {
            response: None,
            verification_version: 1,
        };
        let headers = vec![
            ("Location".to_string(), "/x".to_string()),
            ("Cache-Control".to_string(), "max-age=9".to_string()),
        ];
        assert_eq!(
            passed_on(302, &headers, vec![], Some(&v1)).unwrap_err().0,
            500
        );
        let (_, kept, _) = passed_on(200, &headers, vec![], Some(&v1)).unwrap();
        assert_eq!(kept, vec![headers[0].clone()]);
        // Raw: everything.
        assert_eq!(passed_on(302, &headers, vec![], None).unwrap().1, headers);
    }

    /// One HTTP/1.1 request over a fresh connection; the whole response as text.
    fn get(address: std::net::SocketAddr, host: &str, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    #[test]
    fn a_served_network_answers_browsers_and_update_calls() {
        let (Some(probe_wasm), Some(state_wasm)) = (
            ic_test_env::fixture_wasm("ops_probe"),
            ic_test_env::fixture_wasm("fixture_state"),
        ) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("gateway-browser-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut ids = (Principal::anonymous(), Principal::anonymous());
        let node = crate::node::Node::open(&dir, || {
            let mut ic = local_ic::LocalIc::with_seed([5; 32]);
            let probe = ic.create_canister_with_settings(None, None);
            ic.install_canister(probe, probe_wasm, vec![], None)
                .expect("installing ops_probe");
            let counter = ic.create_canister_with_settings(None, None);
            let arg = candid::encode_one(0u64).unwrap();
            ic.install_canister(counter, state_wasm, arg, None)
                .expect("installing fixture_state");
            ids = (probe, counter);
            Ok::<_, anyhow::Error>(ic.state().clone())
        })
        .unwrap()
        .node;
        let (probe, counter) = ids;
        let keys = node.keys.clone();
        let (commands, receiver) = std::sync::mpsc::channel();
        let executor = std::thread::spawn(move || crate::executor::run(node, receiver));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let app = crate::http::router(Gateway {
            commands: commands.clone(),
            keys,
        });
        let server = runtime.spawn(async move { axum::serve(listener, app).await });

        // Raw: the canister's response as it is.
        let raw = get(address, &format!("{probe}.raw.localhost:1"), "/metrics");
        assert!(raw.starts_with("HTTP/1.1 200 OK"), "{raw}");
        assert!(raw.contains("\r\ncache-control: no-store\r\n"), "{raw}");
        assert!(raw.contains("\npaused 0 "), "{raw}");
        let query = get(
            address,
            "127.0.0.1",
            &format!("/metrics?canisterId={probe}"),
        );
        assert!(query.starts_with("HTTP/1.1 200 OK"), "{query}");
        // Verified: the probe certifies nothing (its certified data is empty).
        let verified = get(address, &format!("{probe}.localhost:1"), "/metrics");
        assert!(verified.starts_with("HTTP/1.1 503"), "{verified}");
        assert!(
            verified.contains("Response verification failed"),
            "{verified}"
        );
        // No such canister; no canister named; a canister without `http_request`.
        let missing = Principal::from_text("uxrrr-q7777-77774-qaaaq-cai").unwrap();
        let gone = get(address, &format!("{missing}.raw.localhost"), "/");
        assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
        let nowhere = get(address, "localhost", "/metrics");
        assert!(nowhere.starts_with("HTTP/1.1 404"), "{nowhere}");
        let mute = get(address, &format!("{counter}.raw.localhost"), "/");
        assert!(mute.starts_with("HTTP/1.1 502"), "{mute}");
        // The API is still there.
        assert!(get(address, "localhost", "/api/v2/status").starts_with("HTTP/1.1 200"));

        // The update path the gateway takes for `upgrade = opt true`: the call's reply once it
        // completes, or its reject.
        let update = |method: &str, nonce: u8| {
            let (reply, answer) = oneshot::channel();
            let submission = Submission {
                request_id: [nonce; 32],
                sender: Principal::anonymous(),
                canister: counter,
                effective: counter,
                method: method.into(),
                arg: candid::encode_args(()).unwrap(),
                ingress_expiry: wall_clock_nanos() + UPDATE_EXPIRY_NANOS,
            };
            commands
                .send(Command::UpdateHttp { submission, reply })
                .unwrap();
            answer.blocking_recv().unwrap()
        };
        let reply = update("increment", 1).unwrap();
        assert_eq!(candid::decode_args::<(u64, u64)>(&reply).unwrap(), (1, 1));
        let reject = update("no_such_method", 2).unwrap_err();
        assert_ne!(reject.reject_code, RejectCode::DestinationInvalid);

        server.abort();
        drop(runtime);
        drop(commands);
        executor.join().unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn responses_copy_headers_but_not_framing() {
        let built = response(
            418,
            &[
                ("Content-Type".into(), "text/plain".into()),
                ("Content-Length".into(), "999".into()),
                ("X-A".into(), "1".into()),
                ("X-A".into(), "2".into()),
                ("bad name".into(), "x".into()),
            ],
            b"tea".to_vec(),
        );
        assert_eq!(built.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(built.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(built.headers().get_all("x-a").iter().count(), 2);
        assert_ne!(
            built
                .headers()
                .get(header::CONTENT_LENGTH)
                .map(|v| v.as_bytes()),
            Some(&b"999"[..])
        );
        assert_eq!(response(1000, &[], vec![]).status(), 500);
    }
}
