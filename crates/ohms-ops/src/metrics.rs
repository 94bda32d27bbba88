//! `http_request`: `/metrics` in Prometheus text format; every other path is 404.

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
    match path {
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
    }
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

    #[test]
    fn other_paths_are_not_found() {
        let response = http_request(&TestEnv::new(), "agent", &get("/secrets"), None);
        assert_eq!(response.status_code, 404);
        assert_eq!(header(&response, "Cache-Control"), Some("no-store"));
    }
}
