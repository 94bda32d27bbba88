//! The repository's figures on `/metrics`, after the operations layer's.

use ic_metrics_encoder::MetricsEncoder;

use crate::repo;

pub fn encode(w: &mut MetricsEncoder<Vec<u8>>) -> std::io::Result<()> {
    let stats = repo::stats();
    w.encode_gauge(
        "model_repo_blob_bytes_used",
        stats.bytes_used as f64,
        "Stable memory holding model bytes (pages in use times the page size).",
    )?;
    w.encode_gauge(
        "model_repo_blob_bytes_free",
        stats.bytes_free as f64,
        "Stable memory freed by deletions and ready for reuse.",
    )?;
    w.encode_gauge(
        "model_repo_model_bytes_reserved",
        stats.bytes_reserved as f64,
        "Model bytes of all models and uploads (what max_total_bytes limits).",
    )?;
    w.gauge_vec("model_repo_models", "Models by state.")?
        .value(&[("state", "uploading")], stats.models_uploading as f64)?
        .value(&[("state", "verified")], stats.models_verified as f64)?
        .value(&[("state", "active")], stats.models_active as f64)?
        .value(&[("state", "deprecated")], stats.models_deprecated as f64)?;
    w.encode_gauge(
        "model_repo_uploads_in_progress",
        stats.uploads_in_progress as f64,
        "Uploads receiving chunks or being verified.",
    )?;
    w.encode_gauge(
        "model_repo_uploaders",
        stats.uploaders as f64,
        "Allow-listed uploaders.",
    )?;
    w.encode_gauge(
        "model_repo_agent_canisters",
        stats.agent_canisters as f64,
        "Registered agent canisters.",
    )?;
    Ok(())
}
