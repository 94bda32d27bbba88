//! Shared helpers: locating fixture wasm files built by `scripts/build`, and (`wat`) hand-written
//! canisters. Every test crate uses a part of them.
#![allow(dead_code)]

pub mod wat;

use std::path::PathBuf;

/// `$OHMS_WASM_DIR`, or `<repo>/wasm`.
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("OHMS_WASM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../wasm"),
    }
}

/// The fixture's wasm, or `None` (with a notice) when it has not been built. On CI
/// (`CI=true`) a missing fixture fails the test.
pub fn fixture(name: &str) -> Option<Vec<u8>> {
    let path = wasm_dir().join("fixtures").join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            let message = format!(
                "fixture {} is missing ({e}); run scripts/build to build the wasm fixtures",
                path.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{message}");
            }
            eprintln!("skipping: {message}");
            None
        }
    }
}

/// Skips the test (returns) when the fixture is missing outside CI.
#[macro_export]
macro_rules! fixture_or_skip {
    ($name:expr) => {
        match common::fixture($name) {
            Some(bytes) => bytes,
            None => return,
        }
    };
}
