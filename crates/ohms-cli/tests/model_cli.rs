//! `ohms local deploy` and `ohms model …` as a user runs them: stories260K compressed at 2 bits
//! by the CLI, uploaded to the model repository on a saved local network, interrupted, resumed
//! with only the missing bytes, activated, listed, read back byte for byte, and refused
//! requests reported with the canister's typed error.

use std::path::{Path, PathBuf};

mod cli;
#[path = "../../ohms-llm/tests/common/mod.rs"]
mod common;

use cli::{deploy_inputs, ohms, scratch, text};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn upload_interrupt_resume_activate_list_and_read_back_stories260k() {
    let Some(fixture) = common::fixture("stories260Ktok512.gguf") else {
        return;
    };
    let Some(wasm) = deploy_inputs() else {
        return;
    };
    let dir = scratch("model");
    let model = dir.join("stories260k.2bit");
    let o = ohms(&[
        "novaq",
        "compress",
        path(&fixture),
        "-o",
        path(&model),
        "--mode",
        "2bit",
        "--seed",
        "1",
        "--calibration-tokens",
        "512",
        "--tune-epochs",
        "0",
        "--shard-size",
        "32768",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let shard_files: Vec<PathBuf> = (0..)
        .map(|i| model.join(format!("shard-{i:05}.bin")))
        .take_while(|p| p.is_file())
        .collect();
    assert!(shard_files.len() > 1, "several shards");
    let total: u64 = shard_files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();

    let state = dir.join("network.cbor");
    let o = ohms(&[
        "local",
        "deploy",
        "--state",
        path(&state),
        "--wasm-dir",
        path(&wasm),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("model_repo"));

    let upload = |extra: &[&str]| {
        let mut args = vec![
            "model",
            "--local-state",
            path(&state),
            "upload",
            path(&model),
            "--name",
            "stories260K 2-bit",
            "--capabilities",
            "storytelling,chat",
            "--tags",
            "tiny",
            "--chunk-bytes",
            "8192",
            "--in-flight",
            "3",
            "--json",
        ];
        args.extend_from_slice(extra);
        ohms(&args)
    };

    // Interrupted after some chunks: the upload waits, listed as uploading.
    let o = upload(&["--stop-after-bytes", "20000"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("stopped after sending"),
        "{}",
        text(&o.stderr)
    );
    let o = ohms(&["model", "--local-state", path(&state), "list"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let listing = text(&o.stdout);
    assert!(
        listing.contains("stories260k.2bit") && listing.contains("uploading"),
        "{listing}"
    );

    // Resumed: only the missing bytes are sent; verified and activated.
    let o = upload(&["--activate"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("resuming upload"),
        "{}",
        text(&o.stderr)
    );
    let stdout = text(&o.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("a JSON last line");
    let (sent, resumed) = (
        report["sent_bytes"].as_u64().unwrap(),
        report["resumed_bytes"].as_u64().unwrap(),
    );
    assert!(resumed >= 20_000, "{report}");
    assert_eq!(sent + resumed, total, "only the missing bytes were sent");
    assert_eq!(report["bytes"].as_u64(), Some(total));
    assert!(stdout.contains(": active"), "{stdout}");

    let o = ohms(&[
        "model",
        "--local-state",
        path(&state),
        "list",
        "--state",
        "active",
        "--capabilities",
        "storytelling",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let listing = text(&o.stdout);
    assert!(
        listing.contains("stories260k.2bit") && listing.contains("1 models"),
        "{listing}"
    );
    let o = ohms(&[
        "model",
        "--local-state",
        path(&state),
        "show",
        "stories260k.2bit",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let root = std::fs::read_to_string(model.join("root.sha256")).unwrap();
    assert!(text(&o.stdout).contains(root.trim()), "{}", text(&o.stdout));

    // Read back byte for byte.
    let back = dir.join("back");
    let o = ohms(&[
        "model",
        "--local-state",
        path(&state),
        "download",
        "stories260k.2bit",
        "-o",
        path(&back),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for name in ["manifest.cbor", "root.sha256"]
        .into_iter()
        .map(String::from)
        .chain((0..shard_files.len()).map(|i| format!("shard-{i:05}.bin")))
    {
        assert_eq!(
            std::fs::read(back.join(&name)).unwrap(),
            std::fs::read(model.join(&name)).unwrap(),
            "{name} read back identical"
        );
    }

    // Refusals come back as the canister's typed errors, exit code 1.
    let o = upload(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("begin_upload refused") && text(&o.stderr).contains("exists"),
        "{}",
        text(&o.stderr)
    );
    let o = ohms(&[
        "model",
        "--local-state",
        path(&state),
        "delete",
        "stories260k.2bit",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("deprecate it first"),
        "{}",
        text(&o.stderr)
    );
    let o = ohms(&["model", "--local-state", path(&state), "activate", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not found"), "{}", text(&o.stderr));

    // Deprecate, delete: the listing is empty and the bytes are free.
    for step in ["deprecate", "delete"] {
        let o = ohms(&[
            "model",
            "--local-state",
            path(&state),
            step,
            "stories260k.2bit",
        ]);
        assert!(o.status.success(), "{step}: {}", text(&o.stderr));
    }
    let o = ohms(&["model", "--local-state", path(&state), "stats"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stats = text(&o.stdout);
    assert!(stats.contains("model_repo_blob_bytes_used 0 "), "{stats}");
    assert!(
        text(&ohms(&["model", "--local-state", path(&state), "list"]).stdout).contains("0 models")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_commands_without_a_network_say_how_to_create_one() {
    let dir = scratch("no-network");
    let state = dir.join("absent.cbor");
    let o = ohms(&["model", "--local-state", path(&state), "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("ohms local deploy"),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
