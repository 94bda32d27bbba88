//! `ohms local deploy`, `ohms model upload`, `ohms pay subscribe` and `ohms agents …` as a user
//! runs them: the deploy uploads the agent wasm to the factory; stories260K compressed at 4 bits
//! by the CLI is uploaded and activated; the subscribed demo user has instructions analysed,
//! gets three agents in a freshly spawned agent canister, and each answers through the wasm
//! with its tokens, instructions and remaining quota printed.

use std::path::Path;

mod cli;
#[path = "../../ohms-llm/tests/common/mod.rs"]
mod common;

use cli::{deploy_inputs, ohms, scratch, text};

const PYTHON_TEAM: &str = "create coding agents for Python development and testing";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `ohms` and returns its standard output, failing the test with both streams otherwise.
fn ok(args: &[&str]) -> String {
    let o = ohms(args);
    let out = text(&o.stdout);
    assert!(
        o.status.success(),
        "ohms {}: {out}{}",
        args.join(" "),
        text(&o.stderr)
    );
    out
}

/// The agent ids `ohms agents create` printed, in order.
fn agent_ids(created: &str) -> Vec<String> {
    created
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("agent "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|id| id.chars().all(|c| c.is_ascii_digit()))
        .map(String::from)
        .collect()
}

#[test]
fn instructions_become_agents_that_answer_through_the_wasm_within_the_quota() {
    let Some(fixture) = common::fixture("stories260Ktok512.gguf") else {
        return;
    };
    let Some(wasm) = deploy_inputs() else {
        return;
    };
    if !wasm.join("agent.wasm").is_file() {
        eprintln!("skipping: {} is missing", wasm.join("agent.wasm").display());
        return;
    }
    let dir = scratch("agents");
    let model = dir.join("stories260k.4bit");
    ok(&[
        "novaq",
        "compress",
        path(&fixture),
        "-o",
        path(&model),
        "--mode",
        "4bit",
        "--seed",
        "1",
        "--calibration-tokens",
        "512",
        "--tune-epochs",
        "0",
    ]);

    let state = dir.join("network.cbor");
    let state = path(&state);
    let deployed = ok(&[
        "local",
        "deploy",
        "--state",
        state,
        "--wasm-dir",
        path(&wasm),
    ]);
    assert!(
        deployed.contains("agent wasm uploaded to agent_factory")
            && deployed.contains("active sha256 "),
        "{deployed}"
    );
    ok(&[
        "model",
        "--local-state",
        state,
        "upload",
        path(&model),
        "--name",
        "stories260K 4bit",
        "--capabilities",
        "storytelling",
        "--activate",
    ]);

    // Analysis needs no subscription.
    let analysis = ok(&["agents", "--local-state", state, "analyze", PYTHON_TEAM]);
    for expected in [
        "capabilities found:",
        "\"python\"",
        "1. Python Developer",
        "2. Code Reviewer",
        "3. Test Generator",
        "system prompt: ",
        "agents: 3",
        "token budget: ",
        "suggested models:",
        "explanation: ",
    ] {
        assert!(analysis.contains(expected), "{expected}: {analysis}");
    }

    // Without a subscription nothing is created: the policy engine's refusal, exit code 1.
    let o = ohms(&[
        "agents",
        "--local-state",
        state,
        "create",
        PYTHON_TEAM,
        "--model",
        "stories260k.4bit",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("create_agents refused"),
        "{}",
        text(&o.stderr)
    );
    let o = ohms(&[
        "agents",
        "--local-state",
        state,
        "run",
        "--agent",
        "0",
        "Hi",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("no agent canister yet"),
        "{}",
        text(&o.stderr)
    );

    ok(&[
        "pay",
        "--local-state",
        state,
        "subscribe",
        "--tier",
        "basic",
    ]);
    let created = ok(&[
        "agents",
        "--local-state",
        state,
        "create",
        PYTHON_TEAM,
        "--model",
        "stories260k.4bit",
    ]);
    assert!(created.contains("(created now for this user)"), "{created}");
    assert!(created.contains("3 agent(s) created"), "{created}");
    for role in ["Python Developer", "Code Reviewer", "Test Generator"] {
        assert!(created.contains(role), "{role}: {created}");
    }
    let ids = agent_ids(&created);
    assert_eq!(ids.len(), 3, "{created}");

    let mut quota_left = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let seed = (i + 1).to_string();
        let out = ok(&[
            "agents",
            "--local-state",
            state,
            "run",
            "--agent",
            id,
            "Once upon a time, there was a little robot",
            "--max-tokens",
            "16",
            "--temperature",
            if i == 0 { "0" } else { "0.8" },
            "--seed",
            &seed,
        ]);
        assert!(out.contains("  completed: "), "{out}");
        assert!(out.contains("usage committed to economics"), "{out}");
        let answer: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("  | ")).collect();
        assert!(
            answer.iter().any(|l| !l.trim().is_empty()),
            "an answer: {out}"
        );
        let tokens = out
            .lines()
            .find(|l| l.starts_with("tokens: "))
            .unwrap_or_else(|| panic!("a tokens line: {out}"));
        let out_tokens: u64 = tokens
            .split(", ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("tokens out: {tokens}"));
        assert!((1..=16).contains(&out_tokens), "{tokens}");
        assert!(tokens.contains("instructions per token"), "{tokens}");
        let quota = out
            .lines()
            .find(|l| l.starts_with("quota (Basic tier"))
            .unwrap_or_else(|| panic!("a quota line: {out}"));
        let left: u64 = quota
            .split("): ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(|n| n.replace(',', ""))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("tokens left: {quota}"));
        quota_left.push(left);
    }
    assert!(
        quota_left.windows(2).all(|w| w[1] < w[0]),
        "each run uses quota: {quota_left:?}"
    );

    let listing = ok(&["agents", "--local-state", state, "list"]);
    assert!(listing.starts_with("3 agent(s) of "), "{listing}");
    for id in &ids {
        let row = listing
            .lines()
            .skip(1)
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("agent {id}: {listing}"));
        // Active, one run, completed, none failed.
        let columns: Vec<&str> = row.split_whitespace().collect();
        let status = columns.iter().position(|c| *c == "active");
        assert!(
            status.is_some_and(|at| columns[at + 1..at + 4] == ["1", "1", "0"]),
            "{row}"
        );
    }

    // Another user sees none of them.
    let other = ok(&["agents", "--local-state", state, "--as", "bob", "list"]);
    assert!(other.starts_with("0 agent(s)"), "{other}");

    let _ = std::fs::remove_dir_all(&dir);
}
