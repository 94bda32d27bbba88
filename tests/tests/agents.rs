//! The agent factory and agent canisters through their wasm, with the model repository,
//! economics and DFINITY's ICP ledger on the same test network: instructions become agents in
//! a freshly spawned agent canister, which loads stories260K (NOVAQ) from the repository and
//! generates exactly what the native reference generates; denials, isolation, upgrades,
//! top-ups and hostile input; and the cost figures (printed as `BENCH` lines).

use std::time::Duration;

use candid::Principal;
use ic_test_env::Fault;
use ohms_integration_tests::platform::{MODEL, PYTHON_TEAM, Platform, alice, bob};
use ohms_integration_tests::{controller, wasm};
use ohms_types::{
    Action, AgentCanisterRecord, AgentCanisterStatus, AgentId, AgentInfo, AgentStatus,
    AgentWasmChunk, AgentWasmStatus, Alert, AlertKind, CreateAgentsArgs, CreatedAgents, DenyReason,
    EconomicsInstallArgs, Error, FactorySettings, GenerationParams, Grant, InstructionAnalysis,
    ModelLoadState, Page, Paged, RunArgs, RunInfo, RunStatus, UpgradeArgs, UpgradeReport,
};

fn greedy(max_tokens: u32) -> GenerationParams {
    GenerationParams {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens,
    }
}

fn run_args(agent: AgentId, prompt: &str, params: GenerationParams, seed: u64) -> RunArgs {
    RunArgs {
        agent,
        prompt: prompt.into(),
        params: Some(params),
        seed: Some(seed),
        request_id: None,
        task_reservation: None,
    }
}

/// The module with a custom section appended: the same code under another hash.
fn agent_wasm_variant(tag: &str) -> Vec<u8> {
    let mut module = wasm("agent");
    let name = b"ohms:build";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    module.push(0);
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            module.push(byte);
            break;
        }
        module.push(byte | 0x80);
    }
    module.extend_from_slice(&payload);
    module
}

fn bench(name: &str, value: f64) {
    println!("BENCH {name} {value}");
}

#[test]
fn instructions_become_three_agents_in_a_new_canister_that_generate_like_the_native_model() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    let analysis: Result<InstructionAnalysis, Error> =
        p.factory_query(alice(), "analyze_instructions", PYTHON_TEAM.to_string());
    let analysis = analysis.unwrap();
    let roles: Vec<&str> = analysis.roles.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(
        roles,
        ["Python Developer", "Code Reviewer", "Test Generator"]
    );
    assert_eq!(analysis.agent_count, 3);
    let analyze_cost = p.suite.env.last_call_instructions().unwrap_or(0);

    p.subscribe(alice());
    let factory_before = p.suite.env.canister_instructions(p.factory).unwrap_or(0);
    let created = p.create(alice(), PYTHON_TEAM, None).expect("create_agents");
    let create_first = p.suite.env.canister_instructions(p.factory).unwrap_or(0) - factory_before;
    assert!(created.canister_created);
    assert_eq!(created.agents.len(), 3);
    let canister = created.canister;
    assert!(
        p.suite.canisters().iter().all(|(_, id)| *id != canister),
        "a new canister"
    );
    for agent in &created.agents {
        assert_eq!(agent.owner, alice());
        assert_eq!(agent.canister, canister);
        assert_eq!(agent.model.as_str(), MODEL);
    }
    assert_eq!(p.record_of(alice()).map(|r| r.canister), Some(canister));
    assert_eq!(p.usage(alice()).usage.agents_created, 3);

    // Each agent answers through the wasm, token for token what the native model generates.
    let mut total_in = 0;
    let mut total_out = 0;
    let mut per_token = Vec::new();
    for (i, agent) in created.agents.iter().enumerate() {
        let params = if i == 0 {
            greedy(24)
        } else {
            GenerationParams {
                temperature: 0.8,
                top_p: 0.9,
                max_tokens: 24,
            }
        };
        let prompt = "Once upon a time, there was a little robot";
        let run = p
            .run(
                canister,
                alice(),
                run_args(agent.id, prompt, params.clone(), 42 + i as u64),
            )
            .expect("run");
        let run = p.finish(canister, alice(), run.id);
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        let expected = p.native(&agent.system_prompt, prompt, &params, 42 + i as u64);
        assert_eq!(run.tokens, expected, "agent {} ({})", agent.id, agent.role);
        assert!(!run.text.is_empty());
        total_in += run.tokens_in;
        total_out += run.tokens_out;
        per_token.push(run.instructions as f64 / (run.tokens_in + run.tokens_out) as f64);
    }
    // Usage landed in economics exactly once per run.
    let usage = p.usage(alice()).usage;
    assert_eq!((usage.tokens_in, usage.tokens_out), (total_in, total_out));
    for _ in 0..50 {
        p.suite.env.tick();
    }
    assert_eq!(p.usage(alice()).usage.tokens_out, total_out);
    // The repository counts the model's tokens too.
    let repo = p.suite.id("model_repo");
    let record: Result<ohms_types::ModelRecord, Error> =
        p.suite
            .query(repo, controller(), "get_model", (MODEL.to_string(),));
    let record = record.unwrap();
    assert_eq!(
        (record.usage_tokens, record.usage_calls),
        (total_in + total_out, 3)
    );

    // The model was loaded once for the three agents.
    let status = p.agent_status(canister, alice());
    assert_eq!(status.models.len(), 1);
    let model = &status.models[0];
    assert_eq!(model.state, ModelLoadState::Ready);
    assert_eq!(model.bytes_received, model.bytes_total);

    // A second request reuses the canister.
    let before = p.suite.env.canister_instructions(p.factory).unwrap_or(0);
    let more = p
        .create(alice(), "an agent that writes stories", None)
        .unwrap();
    let create_again = p.suite.env.canister_instructions(p.factory).unwrap_or(0) - before;
    assert!(!more.canister_created);
    assert_eq!(more.canister, canister);

    bench(
        "factory.instructions.analyze_instructions",
        analyze_cost as f64,
    );
    bench(
        "factory.instructions.create_agents_first",
        create_first as f64,
    );
    bench("factory.instructions.create_agents", create_again as f64);
    bench(
        "agent.instructions.model_load_per_mib.stories260k",
        model.load_instructions as f64 / (model.bytes_total as f64 / f64::from(1 << 20)),
    );
    // The second agent samples (temperature 0.8, top-p 0.9).
    bench(
        "agent.instructions_per_token.stories260k.q4a_top_p",
        per_token[1],
    );
}

#[test]
fn without_a_subscription_or_over_quota_nothing_is_created() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    let cycles_before = p.suite.env.cycle_balance(p.factory);
    let denied = p.create(bob(), PYTHON_TEAM, None);
    assert!(
        matches!(
            denied,
            Err(Error::Denied {
                reason: DenyReason::NoSubscription,
                ..
            })
        ),
        "{denied:?}"
    );
    assert_eq!(p.record_of(bob()), None);
    p.subscribe(bob());
    // The basic tier allows 5 agents.
    let over = p.create(bob(), PYTHON_TEAM, Some(6));
    assert!(
        matches!(
            &over,
            Err(Error::Denied {
                reason: DenyReason::QuotaExceeded { .. },
                ..
            })
        ),
        "{over:?}"
    );
    assert_eq!(p.record_of(bob()), None);
    let page: Result<Paged<AgentCanisterRecord>, Error> =
        p.factory_query(controller(), "agent_canisters", Page::default());
    assert_eq!(page.unwrap().total, 0);
    // No canister was created: the factory spent no creation fee.
    let spent = cycles_before.saturating_sub(p.suite.env.cycle_balance(p.factory));
    assert!(spent < 1_000_000_000, "spent {spent} cycles");
    // Within the quota it works, and the quota counts the agents.
    let created = p.create(bob(), PYTHON_TEAM, Some(5)).unwrap();
    assert_eq!(created.agents.len(), 5);
    let again = p.create(bob(), PYTHON_TEAM, Some(1));
    assert!(matches!(again, Err(Error::Denied { .. })), "{again:?}");
}

#[test]
fn a_long_generation_crosses_messages_and_an_upgrade_of_every_agent_canister() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    let mut settings = p.settings();
    settings.agent_instructions_per_message = 40_000_000;
    p.set_settings(settings);
    p.subscribe(alice());
    let created = p.create(alice(), PYTHON_TEAM, None).unwrap();
    let canister = created.canister;
    let agent = created.agents[0].clone();
    let prompt = "The little dog ran to the park and";
    let params = greedy(120);
    let run = p
        .run(
            canister,
            alice(),
            run_args(agent.id, prompt, params.clone(), 7),
        )
        .unwrap();
    // Let it fetch the model and generate a while, then upgrade in the middle.
    let mut generating = false;
    for _ in 0..2_000 {
        p.suite.env.tick();
        let now = p.get_run(canister, alice(), run.id).unwrap();
        if now.status == RunStatus::Generating && now.tokens_out > 5 {
            generating = true;
            break;
        }
    }
    assert!(generating, "{:?}", p.get_run(canister, alice(), run.id));
    let loaded = p.agent_status(canister, alice()).models;
    let status = p.upload_agent_wasm(&agent_wasm_variant("2"));
    let report: Result<UpgradeReport, Error> =
        p.factory_update(controller(), "upgrade_agent_canisters", 10u32);
    let report = report.unwrap();
    assert_eq!(report.remaining, 0);
    assert_eq!(report.upgraded.len(), 1);
    assert_eq!(report.upgraded[0].result, Ok(()));
    assert_eq!(
        p.record_of(alice()).unwrap().wasm_sha256,
        status.active_sha256
    );

    let done = p.finish(canister, alice(), run.id);
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert!(done.messages > 2, "{} messages", done.messages);
    assert_eq!(
        done.tokens,
        p.native(&agent.system_prompt, prompt, &params, 7)
    );
    // Agents, statistics and the stored shards survived: the model was not fetched again.
    let status = p.agent_status(canister, alice());
    assert_eq!(status.models, loaded);
    assert_eq!(status.agents, 3);
    let kept: Result<AgentInfo, Error> = p.suite.query(canister, alice(), "get_agent", (agent.id,));
    let kept = kept.unwrap();
    assert_eq!(kept.stats.runs, 1);
    assert_eq!(kept.stats.completed, 1);
    assert_eq!(kept.stats.tokens_out, done.tokens_out);
    assert_eq!(kept.memory.len(), 1);
    // Nothing is left to upgrade.
    let report: Result<UpgradeReport, Error> =
        p.factory_update(controller(), "upgrade_agent_canisters", 10u32);
    assert!(report.unwrap().upgraded.is_empty());
    bench(
        "agent.tokens_per_message.stories260k.q4a_at_40m",
        done.tokens_out as f64 / f64::from(done.messages),
    );
}

#[test]
fn a_repeated_request_id_returns_the_same_run_and_is_counted_once() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    let created = p.create(alice(), PYTHON_TEAM, None).unwrap();
    let (canister, agent) = (created.canister, created.agents[0].id);
    let before = p.usage(alice());
    let tokens_left = |p: &mut Platform| p.usage(alice()).limits.unwrap().tokens_left;
    let keyed = RunArgs {
        request_id: Some("task-1/r1/a1".into()),
        ..run_args(agent, "The cat sat", greedy(6), 3)
    };
    let first = p.run(canister, alice(), keyed.clone()).unwrap();
    let held = tokens_left(&mut p);
    assert!(
        held < before.limits.unwrap().tokens_left,
        "the first run reserved its tokens"
    );
    let again = p.run(canister, alice(), keyed.clone()).unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(tokens_left(&mut p), held, "the retry reserved nothing");
    let done = p.finish(canister, alice(), first.id);
    assert_eq!(done.status, RunStatus::Completed);
    // After its end too, the key names the run.
    let late = p.run(canister, alice(), keyed.clone()).unwrap();
    assert_eq!((late.id, late.status), (first.id, RunStatus::Completed));
    for _ in 0..20 {
        p.suite.env.tick();
    }
    let after = p.usage(alice()).usage;
    assert_eq!(after.calls - before.usage.calls, 1, "one inference counted");
    assert_eq!(
        (
            after.tokens_in - before.usage.tokens_in,
            after.tokens_out - before.usage.tokens_out
        ),
        (done.tokens_in, done.tokens_out)
    );
    // Another key is another run.
    let other = p
        .run(
            canister,
            alice(),
            RunArgs {
                request_id: Some("task-1/r1/a2".into()),
                ..keyed.clone()
            },
        )
        .unwrap();
    assert_ne!(other.id, first.id);
    // A bad key is refused before anything happens.
    for bad in [String::new(), "a\u{0}b".into(), "k".repeat(65)] {
        let refused = p.run(
            canister,
            alice(),
            RunArgs {
                request_id: Some(bad.clone()),
                ..keyed.clone()
            },
        );
        assert!(
            matches!(&refused, Err(Error::InvalidArgument { field, .. }) if field == "request_id"),
            "{bad:?}: {refused:?}"
        );
    }
}

#[test]
fn only_the_coordinator_runs_an_agent_on_a_tasks_budget() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    let created = p.create(alice(), PYTHON_TEAM, None).unwrap();
    let (canister, agent) = (created.canister, created.agents[0].id);
    // A relay stands in for the coordinator at economics.
    let relay = p.suite.install_fixture("relay");
    let mut siblings = p.suite.siblings.clone();
    siblings.coordinator = Some(relay);
    let upgrade = EconomicsInstallArgs::Upgrade(Some(UpgradeArgs {
        siblings: Some(siblings),
    }));
    let economics = p.economics;
    p.suite
        .env
        .upgrade_canister(
            economics,
            wasm("economics"),
            candid::encode_one(&upgrade).unwrap(),
            Some(controller()),
        )
        .expect("upgrade economics");
    let relayed = |p: &mut Platform, method: &str, args: Vec<u8>| -> Vec<u8> {
        let reply: Result<Vec<u8>, String> = p.suite.update(
            relay,
            controller(),
            "relay",
            (economics, method.to_string(), args),
        );
        reply.expect("relayed call")
    };
    let tokens_left = |p: &mut Platform| p.usage(alice()).limits.unwrap().tokens_left;
    let left = tokens_left(&mut p);
    let reply = relayed(
        &mut p,
        "reserve",
        candid::encode_args((
            alice(),
            Action::SubmitTask {
                budget_tokens: 5_000,
            },
        ))
        .unwrap(),
    );
    let granted: Result<Grant, Error> = candid::decode_one(&reply).unwrap();
    let Ok(Grant::Reserved(task)) = granted else {
        panic!("{granted:?}")
    };
    assert_eq!(
        tokens_left(&mut p),
        left - 5_000,
        "the task holds its budget"
    );
    // The owner may not spend the task's budget directly (that would skip the hourly rate):
    // only the coordinator runs an agent on it (tests/tests/coordinator.rs).
    let refused = p.run(
        canister,
        alice(),
        RunArgs {
            task_reservation: Some(task.id),
            ..run_args(agent, "The cat sat", greedy(6), 3)
        },
    );
    assert!(
        matches!(&refused, Err(Error::NotAuthorized { .. })),
        "{refused:?}"
    );
    assert_eq!(tokens_left(&mut p), left - 5_000, "nothing drawn");
    let reply = relayed(&mut p, "release", candid::encode_args((task.id,)).unwrap());
    let released: Result<(), Error> = candid::decode_one(&reply).unwrap();
    released.unwrap();
    assert_eq!(tokens_left(&mut p), left);
}

#[test]
fn another_user_cannot_call_or_read_someone_elses_agents() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    p.subscribe(bob());
    let created = p.create(alice(), PYTHON_TEAM, None).unwrap();
    let canister = created.canister;
    let agent = created.agents[0].id;
    let run = p
        .run(canister, alice(), run_args(agent, "Hello", greedy(4), 1))
        .unwrap();
    p.finish(canister, alice(), run.id);

    for caller in [bob(), controller()] {
        let ran = p.run(canister, caller, run_args(agent, "Hello", greedy(4), 1));
        assert!(matches!(ran, Err(Error::NotAuthorized { .. })), "{ran:?}");
        let read = p.get_run(canister, caller, run.id);
        assert!(matches!(read, Err(Error::NotAuthorized { .. })), "{read:?}");
        let got: Result<AgentInfo, Error> = p.suite.query(canister, caller, "get_agent", (agent,));
        assert!(matches!(got, Err(Error::NotAuthorized { .. })), "{got:?}");
        let status: Result<AgentCanisterStatus, Error> =
            p.suite.query(canister, caller, "agent_status", ());
        assert!(
            matches!(status, Err(Error::NotAuthorized { .. })),
            "{status:?}"
        );
        let listed: Result<Paged<AgentInfo>, Error> =
            p.suite
                .query(canister, caller, "list_agents", (Page::default(),));
        assert!(
            matches!(listed, Err(Error::NotAuthorized { .. })),
            "{listed:?}"
        );
    }
    let anonymous = p.run(
        canister,
        Principal::anonymous(),
        run_args(agent, "Hello", greedy(4), 1),
    );
    assert_eq!(anonymous, Err(Error::Anonymous));
    // Only the factory adds agents, even for the owner.
    let added: Result<Vec<AgentInfo>, Error> = p.suite.update(
        canister,
        alice(),
        "add_agents",
        (Vec::<ohms_types::AgentSpec>::new(),),
    );
    assert!(
        matches!(added, Err(Error::NotAuthorized { .. })),
        "{added:?}"
    );
    // Through the factory, someone else's agent does not exist.
    for method in ["get_agent", "pause_agent", "resume_agent"] {
        let reply: Result<AgentInfo, Error> = p.factory_update(bob(), method, agent);
        assert!(
            matches!(reply, Err(Error::NotFound { .. })),
            "{method}: {reply:?}"
        );
    }
    let deleted: Result<(), Error> = p.factory_update(bob(), "delete_agent", agent);
    assert!(
        matches!(deleted, Err(Error::NotFound { .. })),
        "{deleted:?}"
    );
    let bobs: Result<Paged<AgentInfo>, Error> =
        p.factory_update(bob(), "list_agents", Page::default());
    assert_eq!(bobs.unwrap().total, 0);

    // The owner pauses, resumes and deletes through the factory.
    let paused: Result<AgentInfo, Error> = p.factory_update(alice(), "pause_agent", agent);
    assert_eq!(paused.unwrap().status, AgentStatus::Paused);
    let refused = p.run(canister, alice(), run_args(agent, "Hello", greedy(4), 1));
    assert!(
        matches!(refused, Err(Error::InvalidState { .. })),
        "{refused:?}"
    );
    let resumed: Result<AgentInfo, Error> = p.factory_update(alice(), "resume_agent", agent);
    assert_eq!(resumed.unwrap().status, AgentStatus::Active);
    let deleted: Result<(), Error> = p.factory_update(alice(), "delete_agent", agent);
    deleted.unwrap();
    let mine: Result<Paged<AgentInfo>, Error> =
        p.factory_update(alice(), "list_agents", Page::default());
    assert_eq!(mine.unwrap().total, 2);
    assert_eq!(p.usage(alice()).limits.map(|l| l.agents), Some(2));
}

#[test]
fn hostile_input_is_a_cheap_typed_error() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    let created = p.create(alice(), PYTHON_TEAM, None).unwrap();
    let canister = created.canister;
    let agent = created.agents[0].id;
    let warm = p
        .run(canister, alice(), run_args(agent, "Hi", greedy(2), 1))
        .unwrap();
    p.finish(canister, alice(), warm.id);
    let tokens_before = p.usage(alice()).usage;

    // The decoder refuses the argument (`args`) or the check of the field itself.
    let refuse = |p: &mut Platform, args: RunArgs, field: &str| {
        let reply = p.run(canister, alice(), args);
        match reply {
            Err(Error::InvalidArgument { field: f, .. }) if f == field || f == "args" => {}
            other => panic!("{field}: {other:?}"),
        }
        let cost = p.suite.env.last_call_instructions().unwrap_or(0);
        assert!(cost < 60_000_000, "{field}: {cost} instructions");
    };
    let huge = "a".repeat(1_900 * 1024);
    refuse(&mut p, run_args(agent, &huge, greedy(8), 1), "prompt");
    let long = "once upon a time ".repeat(900);
    refuse(&mut p, run_args(agent, &long, greedy(8), 1), "prompt");
    refuse(
        &mut p,
        run_args(agent, "Hi", greedy(u32::MAX), 1),
        "max_tokens",
    );
    let nan = GenerationParams {
        temperature: f32::NAN,
        ..greedy(8)
    };
    refuse(&mut p, run_args(agent, "Hi", nan, 1), "temperature");
    let unknown = p.run(
        canister,
        alice(),
        run_args(AgentId(999), "Hi", greedy(8), 1),
    );
    assert!(
        matches!(unknown, Err(Error::NotFound { .. })),
        "{unknown:?}"
    );
    let model = p.create_on(alice(), PYTHON_TEAM, "no-such-model");
    assert!(
        matches!(&model, Err(Error::InvalidArgument { field, .. }) if field == "model"),
        "{model:?}"
    );
    for text in [String::new(), "x".repeat(5_000)] {
        let analysis: Result<InstructionAnalysis, Error> =
            p.factory_query(alice(), "analyze_instructions", text);
        assert!(
            matches!(analysis, Err(Error::InvalidArgument { .. })),
            "{analysis:?}"
        );
    }
    // Nothing was reserved or used by the refused requests.
    let after = p.usage(alice()).usage;
    assert_eq!(
        (after.tokens_in, after.tokens_out),
        (tokens_before.tokens_in, tokens_before.tokens_out)
    );
    assert_eq!(after.agents_created, 3);
}

#[test]
fn the_top_up_timer_keeps_agent_canisters_above_the_threshold_and_alerts_when_low() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    let canister = p.create(alice(), PYTHON_TEAM, None).unwrap().canister;
    let balance = p.suite.env.cycle_balance(canister);
    let mut settings = p.settings();
    settings.top_up_threshold = balance + 1_000_000_000_000;
    settings.agent_initial_cycles = settings.top_up_threshold;
    settings.top_up_amount = 2_000_000_000_000;
    settings.top_up_interval_seconds = 60;
    p.set_settings(settings.clone());
    p.suite.env.advance_time(Duration::from_secs(61));
    for _ in 0..10 {
        p.suite.env.tick();
    }
    let after = p.suite.env.cycle_balance(canister);
    assert!(after >= balance + 1_900_000_000_000, "{balance} -> {after}");
    let record = p.record_of(alice()).unwrap();
    assert_eq!(record.topped_up_cycles, 2_000_000_000_000);

    // A factory below its low-water mark alerts instead of draining itself.
    settings.top_up_threshold = after + 1_000_000_000_000;
    settings.agent_initial_cycles = settings.top_up_threshold;
    settings.factory_low_water = p.suite.env.cycle_balance(p.factory) * 2;
    p.set_settings(settings);
    p.suite.env.advance_time(Duration::from_secs(61));
    for _ in 0..10 {
        p.suite.env.tick();
    }
    assert!(p.suite.env.cycle_balance(canister) <= after);
    let alerts: Result<Paged<Alert>, Error> =
        p.factory_query(controller(), "alerts", Page::default());
    let alerts = alerts.unwrap();
    assert!(
        alerts
            .items
            .iter()
            .any(|a| a.kind == AlertKind::FactoryLowCycles),
        "{alerts:?}"
    );
    let refused: Result<Paged<Alert>, Error> = p.factory_query(alice(), "alerts", Page::default());
    assert!(matches!(refused, Err(Error::NotAuthorized { .. })));
}

#[test]
fn generation_matches_the_native_model_in_every_mode_and_figures_are_printed() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    // q8 and q4a (the platform's model) run the SIMD integer kernel in the wasm and its
    // portable twin natively; 2bit and 4bit the look-up-table kernel. The tokens must be the
    // same.
    for mode in ["q8", "2bit", "4bit", "q4a"] {
        let model = ohms_integration_tests::stories260k(mode, 64 << 10).unwrap();
        let id = format!("stories260k-{mode}");
        if id != MODEL {
            p.publish(&id, mode, model.clone());
        }
        let created = p.create_on(alice(), "a storyteller", &id);
        let created = created.unwrap();
        let agent = &created.agents[0];
        assert_eq!(agent.model.as_str(), id);
        let prompt = "Lily found a shiny stone";
        let run = p
            .run(
                created.canister,
                alice(),
                run_args(agent.id, prompt, greedy(32), 3),
            )
            .unwrap();
        let run = p.finish(created.canister, alice(), run.id);
        assert_eq!(run.status, RunStatus::Completed);
        p.model = Some(model);
        assert_eq!(
            run.tokens,
            p.native(&agent.system_prompt, prompt, &greedy(32), 3),
            "{mode}"
        );
        bench(
            &format!("agent.instructions_per_token.stories260k.{mode}"),
            run.instructions as f64 / (run.tokens_in + run.tokens_out) as f64,
        );
    }
}

/// SmolLM2-135M-Instruct (fetched by `scripts/fetch-model`) through the agent wasm: the
/// benchmark figures of a real model (`bench/suites/agents` runs it; too slow for CI).
#[test]
#[ignore = "needs models/SmolLM2-135M-Instruct.Q4_1.gguf and minutes of generation"]
fn smollm2_answers_through_the_wasm_and_figures_are_printed() {
    let path = ohms_integration_tests::smollm2().expect("scripts/fetch-model first");
    // q4a: the deployed mode (SIMD integer kernel); q8: the kernel's 8-bit baseline.
    for (mode, max_tokens) in [("q4a", 224), ("q8", 16)] {
        // The copy scripts/run compressed, when there is one.
        let compressed = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../target/ohms-run/smollm2-135m.{mode}"));
        let model = match novaq::format::dir::read_verified(&compressed) {
            Ok(files) => (files.manifest_bytes, files.shards),
            Err(_) => {
                ohms_integration_tests::compress_gguf(&path, "SmolLM2-135M-Instruct", mode, 8 << 20)
            }
        };
        let id = format!("smollm2-135m-{mode}");
        let mut p = Platform::with_model(&id, mode, model);
        p.subscribe(alice());
        let created = p.create_on(alice(), "a Python developer", &id);
        let created = created.unwrap();
        let agent = &created.agents[0];
        let prompt = "Write a Python function that reverses a string, with a docstring, \
                      type hints and three examples of its use.";
        let run = p
            .run(
                created.canister,
                alice(),
                run_args(agent.id, prompt, greedy(max_tokens), 1),
            )
            .unwrap();
        let started = std::time::Instant::now();
        let run = p.finish(created.canister, alice(), run.id);
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
        println!(
            "SmolLM2 {mode} ({} prompt tokens, {} generated, {} messages): {}",
            run.tokens_in, run.tokens_out, run.messages, run.text
        );
        let forward_passes = (run.tokens_in + run.tokens_out) as f64;
        let per_token = run.instructions as f64 / forward_passes;
        bench(
            &format!("agent.instructions_per_token.smollm2.{mode}"),
            per_token,
        );
        if mode == "q4a" {
            // Greedy generation in the wasm equals the native forward pass token for token.
            assert_eq!(
                run.tokens,
                p.native(&agent.system_prompt, prompt, &greedy(max_tokens), 1)
            );
            // Forward passes a message of the default budget holds at this run's average.
            bench(
                "agent.tokens_per_message.smollm2",
                ohms_types::DEFAULT_INSTRUCTIONS_PER_MESSAGE as f64 / per_token,
            );
            bench("agent.context_tokens.smollm2", forward_passes);
            bench(
                "agent.wall_seconds_per_token_local.smollm2",
                seconds / forward_passes,
            );
            let loaded = &p.agent_status(created.canister, alice()).models[0];
            bench(
                "agent.instructions.model_load_per_mib",
                loaded.load_instructions as f64 / (loaded.bytes_total as f64 / f64::from(1 << 20)),
            );
        }
    }
}

#[test]
fn the_factory_guards_its_methods_and_keeps_everything_across_its_upgrade() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    // Anonymous callers act for nobody.
    let anonymous = p.create(Principal::anonymous(), PYTHON_TEAM, None);
    assert_eq!(anonymous.unwrap_err(), Error::Anonymous);
    for method in ["pause_agent", "resume_agent", "get_agent"] {
        let reply: Result<AgentInfo, Error> =
            p.factory_update(Principal::anonymous(), method, AgentId(1));
        assert_eq!(reply.unwrap_err(), Error::Anonymous, "{method}");
    }
    // Administrators' methods refuse a plain user.
    let wasm_chunk = AgentWasmChunk {
        sha256: "00".repeat(32),
        total_bytes: 8,
        offset: 0,
        bytes: b"\0asm\x01\0\0\0".to_vec(),
    };
    let upload: Result<AgentWasmStatus, Error> =
        p.factory_update(alice(), "upload_agent_wasm", wasm_chunk);
    assert!(
        matches!(upload, Err(Error::NotAuthorized { .. })),
        "{upload:?}"
    );
    let settings = p.settings();
    let set: Result<(), Error> =
        p.factory_update(alice(), "set_factory_settings", settings.clone());
    assert!(matches!(set, Err(Error::NotAuthorized { .. })), "{set:?}");
    let upgrade: Result<UpgradeReport, Error> =
        p.factory_update(alice(), "upgrade_agent_canisters", 10u32);
    assert!(
        matches!(upgrade, Err(Error::NotAuthorized { .. })),
        "{upgrade:?}"
    );
    let factory = p.factory;
    let top_up: Result<(), Error> = p
        .suite
        .update(factory, alice(), "top_up_agent_canisters", ());
    assert!(
        matches!(top_up, Err(Error::NotAuthorized { .. })),
        "{top_up:?}"
    );
    let read: Result<FactorySettings, Error> = p.factory_query(alice(), "factory_settings", ());
    assert!(matches!(read, Err(Error::NotAuthorized { .. })), "{read:?}");
    // An administrator's module that does not match its sha256 is discarded, and a chunk
    // past the module's end is refused; the active module stays.
    let active: AgentWasmStatus = p.factory_query(controller(), "agent_wasm_status", ());
    let module = b"\0asm\x01\0\0\0".to_vec();
    let wrong = AgentWasmChunk {
        sha256: "ab".repeat(32),
        total_bytes: module.len() as u64,
        offset: 0,
        bytes: module.clone(),
    };
    let refused: Result<AgentWasmStatus, Error> =
        p.factory_update(controller(), "upload_agent_wasm", wrong);
    assert!(
        matches!(&refused, Err(Error::InvalidArgument { field, .. }) if field == "sha256"),
        "{refused:?}"
    );
    let past_end = AgentWasmChunk {
        sha256: novaq::format::sha256_hex(&module),
        total_bytes: 4,
        offset: 0,
        bytes: module,
    };
    let refused: Result<AgentWasmStatus, Error> =
        p.factory_update(controller(), "upload_agent_wasm", past_end);
    assert!(
        matches!(refused, Err(Error::InvalidArgument { .. })),
        "{refused:?}"
    );
    let still: AgentWasmStatus = p.factory_query(controller(), "agent_wasm_status", ());
    assert_eq!(still, active);
    let listed: Result<Paged<AgentCanisterRecord>, Error> =
        p.factory_query(alice(), "agent_canisters", Page::default());
    assert!(
        matches!(listed, Err(Error::NotAuthorized { .. })),
        "{listed:?}"
    );

    // Two concurrent create_agents of one user: one proceeds, the other is Busy.
    let args = CreateAgentsArgs {
        instructions: PYTHON_TEAM.into(),
        count: Some(2),
        model: None,
    };
    let first = p
        .suite
        .env
        .submit_call(
            factory,
            alice(),
            "create_agents",
            ohms_integration_tests::encode(&args),
        )
        .unwrap();
    let second = p
        .suite
        .env
        .submit_call(
            factory,
            alice(),
            "create_agents",
            ohms_integration_tests::encode(&args),
        )
        .unwrap();
    let decode =
        |bytes: Vec<u8>| candid::decode_one::<Result<CreatedAgents, Error>>(&bytes).unwrap();
    let results = [
        decode(p.suite.env.await_call(first).unwrap()),
        decode(p.suite.env.await_call(second).unwrap()),
    ];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r == &Err(Error::Busy)),
        "{results:?}"
    );
    assert_eq!(p.usage(alice()).usage.agents_created, 2);

    // A page asked for u32::MAX items holds at most the page maximum.
    let huge = Page {
        start: 0,
        limit: u32::MAX,
    };
    let mine: Result<Paged<AgentInfo>, Error> = p.factory_update(alice(), "list_agents", huge);
    assert_eq!(mine.unwrap().items.len(), 2);

    // The factory's own upgrade keeps its records, its wasm and its settings, and its timers
    // run again.
    let before_record = p.record_of(alice()).unwrap();
    let before_wasm: AgentWasmStatus = p.factory_query(controller(), "agent_wasm_status", ());
    let mut changed = settings;
    changed.top_up_interval_seconds = 120;
    p.set_settings(changed.clone());
    p.suite
        .upgrade("agent_factory", None)
        .expect("upgrade the factory");
    assert_eq!(p.record_of(alice()), Some(before_record.clone()));
    let after_wasm: AgentWasmStatus = p.factory_query(controller(), "agent_wasm_status", ());
    assert_eq!(after_wasm, before_wasm);
    assert_eq!(p.settings(), changed);
    let agent = results.iter().flatten().next().unwrap().agents[0].id;
    let got: Result<AgentInfo, Error> = p.factory_update(alice(), "get_agent", agent);
    assert_eq!(got.unwrap().id, agent);
    let more = p
        .create(alice(), "an agent that writes stories", Some(1))
        .unwrap();
    assert!(!more.canister_created);
    assert_eq!(
        more.agents[0].id,
        AgentId(3),
        "agent ids continue after the upgrade"
    );
    // The top-up timer was armed again: a round runs after the interval.
    let mut low = p.settings();
    low.top_up_threshold = p.suite.env.cycle_balance(before_record.canister) + 1;
    low.agent_initial_cycles = low.top_up_threshold;
    p.set_settings(low);
    p.suite
        .upgrade("agent_factory", None)
        .expect("upgrade the factory again");
    p.suite.env.advance_time(Duration::from_secs(121));
    for _ in 0..10 {
        p.suite.env.tick();
    }
    assert!(p.record_of(alice()).unwrap().topped_up_cycles > 0);
}

#[test]
fn a_run_that_outlives_its_reservation_is_still_counted_exactly_once() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    let economics = p.economics;
    let config: ohms_types::EconomicsConfig =
        p.suite
            .query(economics, controller(), "economics_config", ());
    let mut settings = config.settings;
    settings.reservation_ttl_seconds = 30;
    let set: Result<(), Error> =
        p.suite
            .update(economics, controller(), "set_settings", (settings,));
    set.unwrap();
    let mut factory_settings = p.settings();
    // A few tokens per message, so the run spans many.
    factory_settings.agent_instructions_per_message = 5_000_000;
    p.set_settings(factory_settings);
    p.subscribe(alice());
    let created = p.create(alice(), PYTHON_TEAM, None).unwrap();
    let run = p
        .run(
            created.canister,
            alice(),
            run_args(created.agents[0].id, "The cat sat", greedy(40), 5),
        )
        .unwrap();
    // The reservation expires while the run is still generating.
    p.suite.env.advance_time(Duration::from_secs(120));
    let done = p.finish(created.canister, alice(), run.id);
    assert_eq!(done.status, RunStatus::Completed);
    assert!(done.messages > 2);
    let usage = p.usage(alice()).usage;
    assert_eq!(
        (usage.tokens_in, usage.tokens_out),
        (done.tokens_in, done.tokens_out)
    );
    for _ in 0..50 {
        p.suite.env.tick();
    }
    assert_eq!(p.usage(alice()).usage.tokens_out, done.tokens_out);
}

#[test]
fn lost_replies_and_traps_while_fetching_a_model_are_retried_to_a_complete_load() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    p.subscribe(alice());
    let canister = p.create(alice(), PYTHON_TEAM, None).unwrap().canister;
    let q8 = ohms_integration_tests::stories260k("q8", 64 << 10).unwrap();
    p.publish("stories260k-q8", "q8", q8.clone());
    // The agent canister's next calls to the repository misbehave: a lost reply to the
    // manifest, then a lost reply and a trapping callback among the chunks.
    let repo = p.suite.id("model_repo");
    for fault in [
        Fault::LoseReply {
            canister,
            callee: repo,
            method: Some("get_manifest".into()),
        },
        Fault::LoseReply {
            canister,
            callee: repo,
            method: Some("get_chunk".into()),
        },
        Fault::TrapInCallback {
            canister,
            callee: repo,
            method: Some("get_chunk".into()),
        },
    ] {
        if !p.suite.env.inject_fault(fault) {
            return; // PocketIC cannot inject faults.
        }
    }
    let created = p.create_on(alice(), "a storyteller", "stories260k-q8");
    let agent = created.unwrap().agents[0].clone();
    let run = p
        .run(
            canister,
            alice(),
            run_args(agent.id, "Tom had a red ball", greedy(16), 9),
        )
        .unwrap();
    let mut done = None;
    for _ in 0..300 {
        p.suite.env.advance_time(Duration::from_secs(1));
        p.suite.env.tick();
        let now = p.get_run(canister, alice(), run.id).unwrap();
        if now.status.is_final() && now.usage_committed {
            done = Some(now);
            break;
        }
    }
    let done = done.expect("the run finished");
    assert_eq!(p.suite.env.pending_faults(), 0, "every fault was hit");
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    p.model = Some(q8);
    assert_eq!(
        done.tokens,
        p.native(&agent.system_prompt, "Tom had a red ball", &greedy(16), 9)
    );
    let loaded = p.agent_status(canister, alice()).models;
    let q8_entry = loaded
        .iter()
        .find(|m| m.model.as_str() == "stories260k-q8")
        .unwrap();
    assert_eq!(q8_entry.state, ModelLoadState::Ready);
    assert_eq!(q8_entry.bytes_received, q8_entry.bytes_total);
    assert_eq!(q8_entry.shards_verified, q8_entry.shards_total);
}

#[test]
fn runs_are_cancelled_paged_and_refused_while_paused_and_the_budget_is_the_factorys() {
    let Some(mut p) = Platform::deploy() else {
        return;
    };
    let mut settings = p.settings();
    settings.agent_instructions_per_message = 40_000_000;
    p.set_settings(settings);
    p.subscribe(alice());
    let created = p.create(alice(), PYTHON_TEAM, None).unwrap();
    let (canister, agent) = (created.canister, created.agents[0].id);

    // The owner cancels a run in the middle; the tokens used so far are committed once.
    let run = p
        .run(
            canister,
            alice(),
            run_args(agent, "The sun was warm", greedy(200), 1),
        )
        .unwrap();
    for _ in 0..2_000 {
        p.suite.env.tick();
        if p.get_run(canister, alice(), run.id).unwrap().tokens_out > 3 {
            break;
        }
    }
    let stranger: Result<RunInfo, Error> = p.suite.update(canister, bob(), "cancel_run", (run.id,));
    assert!(
        matches!(stranger, Err(Error::NotAuthorized { .. })),
        "{stranger:?}"
    );
    let cancelled: Result<RunInfo, Error> =
        p.suite.update(canister, alice(), "cancel_run", (run.id,));
    assert_eq!(cancelled.unwrap().status, RunStatus::Cancelled);
    let done = p.finish(canister, alice(), run.id);
    assert!(done.tokens_out > 3 && done.tokens_out < 200, "{done:?}");
    let usage = p.usage(alice()).usage;
    assert_eq!(
        (usage.tokens_in, usage.tokens_out),
        (done.tokens_in, done.tokens_out)
    );
    let again: Result<RunInfo, Error> = p.suite.update(canister, alice(), "cancel_run", (run.id,));
    assert!(
        matches!(again, Err(Error::InvalidState { .. })),
        "{again:?}"
    );

    // Pages of runs hold at most 20, newest first, whatever the limit asks.
    for seed in 0..20 {
        let short = p
            .run(canister, alice(), run_args(agent, "Hi", greedy(1), seed))
            .unwrap();
        p.finish(canister, alice(), short.id);
    }
    let huge = Page {
        start: 0,
        limit: u32::MAX,
    };
    let page: Result<Paged<RunInfo>, Error> =
        p.suite.query(canister, alice(), "list_runs", (huge,));
    let page = page.unwrap();
    assert_eq!((page.items.len(), page.total), (20, 21));
    assert!(page.items.windows(2).all(|w| w[0].id > w[1].id));

    // The per-message budget is the factory's to set, within bounds.
    let factory = p.factory;
    let owner: Result<(), Error> = p.suite.update(
        canister,
        alice(),
        "set_instructions_per_message",
        (50_000_000u64,),
    );
    assert!(
        matches!(owner, Err(Error::NotAuthorized { .. })),
        "{owner:?}"
    );
    let too_big: Result<(), Error> = p.suite.update(
        canister,
        factory,
        "set_instructions_per_message",
        (ohms_types::MAX_INSTRUCTIONS_PER_MESSAGE + 1,),
    );
    assert!(
        matches!(too_big, Err(Error::InvalidArgument { .. })),
        "{too_big:?}"
    );
    let set: Result<(), Error> = p.suite.update(
        canister,
        factory,
        "set_instructions_per_message",
        (50_000_000u64,),
    );
    set.unwrap();
    assert_eq!(
        p.agent_status(canister, alice()).instructions_per_message,
        50_000_000
    );

    // A paused agent canister (its administrator is the factory) refuses runs and cancels.
    let paused: Result<(), Error> =
        p.suite
            .update(canister, factory, "pause", ("maintenance".to_string(),));
    paused.unwrap();
    let refused = p.run(canister, alice(), run_args(agent, "Hi", greedy(1), 1));
    assert!(matches!(refused, Err(Error::Paused { .. })), "{refused:?}");
    let not_cancelled: Result<RunInfo, Error> =
        p.suite.update(canister, alice(), "cancel_run", (run.id,));
    assert!(
        matches!(not_cancelled, Err(Error::Paused { .. })),
        "{not_cancelled:?}"
    );
    let unpaused: Result<(), Error> = p.suite.update(canister, factory, "unpause", ());
    unpaused.unwrap();

    // A paused factory refuses creations and management, and serves reads.
    let paused: Result<(), Error> =
        p.factory_update(controller(), "pause", "maintenance".to_string());
    paused.unwrap();
    let refused = p.create(alice(), PYTHON_TEAM, Some(1));
    assert!(matches!(refused, Err(Error::Paused { .. })), "{refused:?}");
    for method in ["pause_agent", "resume_agent"] {
        let reply: Result<AgentInfo, Error> = p.factory_update(alice(), method, agent);
        assert!(
            matches!(reply, Err(Error::Paused { .. })),
            "{method}: {reply:?}"
        );
    }
    let deleted: Result<(), Error> = p.factory_update(alice(), "delete_agent", agent);
    assert!(matches!(deleted, Err(Error::Paused { .. })), "{deleted:?}");
    assert_eq!(p.record_of(alice()).map(|r| r.agents), Some(3));

    // Runs, settings and the budget survive an upgrade of the agent canister.
    let unpaused: Result<(), Error> = p.suite.update(factory, controller(), "unpause", ());
    unpaused.unwrap();
    let status = p.upload_agent_wasm(&agent_wasm_variant("runs"));
    assert!(status.active_sha256.is_some());
    let report: Result<UpgradeReport, Error> =
        p.factory_update(controller(), "upgrade_agent_canisters", 10u32);
    assert_eq!(report.unwrap().remaining, 0);
    let page: Result<Paged<RunInfo>, Error> =
        p.suite.query(canister, alice(), "list_runs", (huge,));
    assert_eq!(page.unwrap().total, 21);
    assert_eq!(
        p.get_run(canister, alice(), run.id).unwrap().status,
        RunStatus::Cancelled
    );
}
