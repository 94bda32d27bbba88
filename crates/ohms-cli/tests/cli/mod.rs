//! Helpers of the CLI's integration tests: running the `ohms` binary, scratch folders, and the
//! inputs a local deploy needs.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn ohms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ohms"))
        .args(args)
        .output()
        .expect("the ohms binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An empty folder of this test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ohms-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `ohms local deploy` installs: the canisters `scripts/build` wrote (`$OHMS_WASM_DIR` or
/// `<repo>/wasm`, returned) and DFINITY's ICP ledger module. Under CI (`CI=true`) a missing one
/// fails the test; elsewhere the test is skipped with a notice.
pub fn deploy_inputs() -> Option<PathBuf> {
    let wasm_dir = std::env::var_os("OHMS_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../wasm"));
    let needed = [
        wasm_dir.join("model_repo.wasm"),
        wasm_dir.join("economics.wasm"),
        icp_ledger_fixture::wasm_path(),
    ];
    for file in needed {
        if !file.is_file() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{} is missing (scripts/build writes the canisters)",
                    file.display()
                );
            }
            eprintln!(
                "skipping: {} is missing (scripts/build writes the canisters)",
                file.display()
            );
            return None;
        }
    }
    Some(wasm_dir)
}
