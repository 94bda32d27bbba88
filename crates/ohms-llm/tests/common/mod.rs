//! Locating the model files the tests run on.
// Each test crate includes this module and uses only some of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// `<repo>/../shared/fixtures/<name>`, or `$OHMS_FIXTURES/<name>`. Under CI (`CI=true`) a
/// missing fixture fails the test; elsewhere the test is skipped with a notice.
pub fn fixture(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("OHMS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/fixtures"));
    present(dir.join(name))
}

/// `<repo>/models/<name>`, as `scripts/fetch-model` leaves it.
pub fn model(name: &str) -> Option<PathBuf> {
    present(repo_root().join("models").join(name))
}

/// The workspace root: the nearest folder above the test's crate that holds `Cargo.lock` (the
/// crates sit at different depths: crates/<name>, tests).
fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

fn present(path: PathBuf) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("required test input {} is missing", path.display());
    }
    eprintln!("skipping: {} is not present", path.display());
    None
}
