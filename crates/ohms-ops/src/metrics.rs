//! `http_request`: `/metrics` in Prometheus text format; every other path is 404.
//!
//! The figures change with every message, so no response is certified: the canister certifies
//! instead that it skips certification (response verification v2: its certified data commits
//! to `http_expr/<*>` with the skip expression, and every response carries the
//! `IC-Certificate` header proving it), and the IC's HTTP gateways serve it on the canister's
//! verified domain.

use ic_metrics_encoder::MetricsEncoder;
use ohms_types::{HttpRequest, HttpResponse};

use crate::state::read_ops;
use crate::{Env, pause};

/// The canister's own figures, written after the common ones.
pub type DomainMetrics = fn(&mut MetricsEncoder<Vec<u8>>) -> std::io::Result<()>;

/// Answers an HTTP gateway request. `canister` prefixes the canister-specific metric names.
pub fn http_request(
    env: &impl Env,
    canister: &str,
    request: &HttpRequest,
    domain: Option<DomainMetrics>,
) -> HttpResponse {
    let path = request.url.split(['?', '#']).next().unwrap_or_default();
    let mut response = match path {
        "/metrics" => match encode(env, canister, domain) {
            Ok(body) => response(200, "text/plain; version=0.0.4; charset=utf-8", body),
            Err(err) => response(
                500,
                "text/plain; charset=utf-8",
                format!("failed to encode metrics: {err}").into_bytes(),
            ),
        },
        _ => response(
            404,
            "text/plain; charset=utf-8",
            format!("{path} not found; try /metrics").into_bytes(),
        ),
    };
    if let Some(certificate) = env.data_certificate() {
        let mut skipped = ic_http_certification::HttpResponse::builder().build();
        ic_http_certification::utils::add_skip_certification_header(certificate, &mut skipped);
        response.headers.extend(skipped.headers().iter().cloned());
    }
    response
}

/// Sets the certified data `http_request`'s certificates prove (at install and upgrade).
pub fn certify_skipping(env: &impl Env) {
    env.set_certified_data(&ic_http_certification::utils::skip_certification_certified_data());
}

fn encode(
    env: &impl Env,
    canister: &str,
    domain: Option<DomainMetrics>,
) -> std::io::Result<Vec<u8>> {
    let now_millis = (env.now_nanos() / 1_000_000) as i64;
    let mut w = MetricsEncoder::new(Vec::new(), now_millis);
    w.encode_gauge(
        "cycle_balance",
        env.cycle_balance() as f64,
        "Cycles held by the canister.",
    )?;
    w.encode_gauge(
        "stable_memory_bytes",
        env.stable_memory_bytes() as f64,
        "Size of the stable memory in bytes.",
    )?;
    w.encode_gauge(
        "heap_memory_bytes",
        env.heap_memory_bytes() as f64,
        "Size of the wasm heap in bytes.",
    )?;
    w.encode_gauge(
        &format!("{canister}_canister_version"),
        env.canister_version() as f64,
        "Canister version: increases with every install, upgrade and settings change.",
    )?;
    w.encode_gauge(
        "paused",
        if pause::is_paused() { 1.0 } else { 0.0 },
        "1 while an administrator has paused the canister.",
    )?;
    let (admins, audit) = read_ops(|s| (s.admins.len(), s.audit.len()));
    w.encode_gauge(
        "admins",
        admins as f64,
        "Administrators besides the controllers.",
    )?;
    w.encode_counter(
        "audit_log_entries",
        audit as f64,
        "Administrative actions recorded.",
    )?;
    if let Some(domain) = domain {
        domain(&mut w)?;
    }
    Ok(w.into_inner())
}

pub(crate) fn response(status_code: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status_code,
        headers: vec![
            ("Content-Type".into(), content_type.into()),
            ("Content-Length".into(), body.len().to_string()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::TestEnv;

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
        }
    }

    fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn metrics_are_prometheus_text_and_never_cached() {
        fn domain(w: &mut MetricsEncoder<Vec<u8>>) -> std::io::Result<()> {
            w.encode_counter("models_total", 4.0, "Models stored.")
        }
        let env = TestEnv::new();
        let response = http_request(&env, "model_repo", &get("/metrics?fresh=1"), Some(domain));
        assert_eq!(response.status_code, 200);
        assert_eq!(header(&response, "Cache-Control"), Some("no-store"));
        let body = String::from_utf8(response.body).unwrap();
        for line in [
            "cycle_balance 5000000000000 ",
            "stable_memory_bytes 65536 ",
            "heap_memory_bytes 131072 ",
            "model_repo_canister_version 3 ",
            "paused 0 ",
            "models_total 4 ",
        ] {
            assert!(body.contains(line), "missing {line:?} in\n{body}");
        }
        assert!(body.contains("# TYPE cycle_balance gauge"));
    }

    /// The test environment, in a query that has a data certificate; records certified data.
    struct Certified {
        env: TestEnv,
        certified_data: std::cell::RefCell<Vec<u8>>,
    }

    impl Env for Certified {
        fn caller(&self) -> candid::Principal {
            self.env.caller()
        }
        fn canister_id(&self) -> candid::Principal {
            self.env.canister_id()
        }
        fn now_nanos(&self) -> u64 {
            self.env.now_nanos()
        }
        fn is_controller(&self, principal: &candid::Principal) -> bool {
            self.env.is_controller(principal)
        }
        fn canister_version(&self) -> u64 {
            self.env.canister_version()
        }
        fn cycle_balance(&self) -> u128 {
            self.env.cycle_balance()
        }
        fn stable_memory_bytes(&self) -> u64 {
            self.env.stable_memory_bytes()
        }
        fn heap_memory_bytes(&self) -> u64 {
            self.env.heap_memory_bytes()
        }
        fn data_certificate(&self) -> Option<Vec<u8>> {
            Some(b"certificate".to_vec())
        }
        fn set_certified_data(&self, data: &[u8]) {
            *self.certified_data.borrow_mut() = data.to_vec();
        }
    }

    #[test]
    fn responses_certify_that_they_skip_certification() {
        let env = Certified {
            env: TestEnv::new(),
            certified_data: Default::default(),
        };
        certify_skipping(&env);
        assert_eq!(
            env.certified_data.borrow().as_slice(),
            ic_http_certification::utils::skip_certification_certified_data().as_slice()
        );
        for url in ["/metrics", "/elsewhere"] {
            let response = http_request(&env, "agent", &get(url), None);
            let certificate = header(&response, "IC-Certificate").expect("IC-Certificate");
            // The certificate, the skip tree and the wildcard expression path, version 2.
            assert!(certificate.starts_with("certificate=:Y2VydGlmaWNhdGU=:, tree=:"));
            assert!(certificate.ends_with(", version=2"), "{certificate}");
            assert_eq!(
                header(&response, "IC-CertificateExpression"),
                Some("default_certification(ValidationArgs{no_certification:Empty{}})")
            );
        }
        // Without a data certificate (a replicated call), no header.
        let response = http_request(&TestEnv::new(), "agent", &get("/metrics"), None);
        assert_eq!(header(&response, "IC-Certificate"), None);
    }

    #[test]
    fn other_paths_are_not_found() {
        let response = http_request(&TestEnv::new(), "agent", &get("/secrets"), None);
        assert_eq!(response.status_code, 404);
        assert_eq!(header(&response, "Cache-Control"), Some("no-store"));
    }
}
