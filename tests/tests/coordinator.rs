//! The coordinator through its wasm, with the whole suite, DFINITY's ICP ledger and
//! stories260K on the same test network: a "Python development and testing" task runs its
//! rounds with every agent's run in flight together and aggregates each role's output in plan
//! order; an agent that traps is retried, then failed, and the task goes on or fails cleanly;
//! cancel stops further rounds and releases the reservation exactly; an upgrade mid-task;
//! isolation between users; a denied reservation; an agent that never answers; and the cost
//! figures (printed as `BENCH` lines).

use std::time::Duration;

use candid::{CandidType, Principal};
use ic_test_env::Fault;
use ohms_integration_tests::platform::{PYTHON_TEAM, Platform, alice, bob};
use ohms_integration_tests::{controller, wasm};
use ohms_types::{
    AgentId, AgentPerformance, AgentSelection, AgentStatus, AlertQuery, DailyStats, DayRange,
    DenyReason, Error, ModelPerformance, Page, Paged, PlatformStats, RunInfo, SetAgentStatus,
    StepStatus, SubmitTaskArgs, TaskAlert, TaskAlertKind, TaskId, TaskInfo, TaskStatus,
};
use serde::de::DeserializeOwned;

/// Short: stories260K reads 128 tokens, the agent's system prompt and the answer included.
const TASK: &str = "Write is_prime in Python; review and test it.";
/// Tokens of a month on the Basic tier (economics' default).
const BASIC_TOKENS: u64 = 100_000;

struct Coord {
    p: Platform,
    coordinator: Principal,
    /// The user's agent canister and agents (developer, reviewer, tester).
    canister: Principal,
    agents: Vec<AgentId>,
}

impl Coord {
    /// The suite with alice subscribed and her Python team created.
    fn deploy() -> Option<Self> {
        let mut p = Platform::deploy()?;
        p.subscribe(alice());
        let created = p.create(alice(), PYTHON_TEAM, None).expect("create_agents");
        Some(Self {
            coordinator: p.suite.id("coordinator"),
            canister: created.canister,
            agents: created.agents.iter().map(|a| a.id).collect(),
            p,
        })
    }

    fn update<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        arg: A,
    ) -> R {
        let coordinator = self.coordinator;
        self.p.suite.update(coordinator, who, method, (arg,))
    }

    fn query<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        who: Principal,
        method: &str,
        arg: A,
    ) -> R {
        let coordinator = self.coordinator;
        self.p.suite.query(coordinator, who, method, (arg,))
    }

    fn submit(&mut self, who: Principal, args: SubmitTaskArgs) -> Result<TaskInfo, Error> {
        self.update(who, "submit_task", args)
    }

    fn task(&mut self, who: Principal, id: TaskId) -> Result<TaskInfo, Error> {
        self.query(who, "get_task", id)
    }

    /// Submits a task to `agent` alone (2,000 tokens, `rounds` rounds) and drives it to its end.
    fn solo(&mut self, agent: AgentId, rounds: u8) -> TaskInfo {
        let task = self
            .submit(
                alice(),
                task_args(AgentSelection::Agents(vec![agent]), 2_000, Some(rounds)),
            )
            .expect("submit_task");
        self.finish(task.id)
    }

    /// One round of the network and a second of its clock.
    fn step(&mut self) {
        self.p.suite.env.tick();
        self.p.suite.env.advance_time(Duration::from_secs(1));
    }

    /// Drives the network until the task has ended and its reservation is released.
    fn finish(&mut self, id: TaskId) -> TaskInfo {
        for _ in 0..3_000 {
            let task = self.task(alice(), id).expect("get_task");
            if task.status.is_final() && task.reservation_released {
                return task;
            }
            self.step();
        }
        panic!("task {id} did not end: {:?}", self.task(alice(), id));
    }

    /// Drives the network until `done` holds for the task.
    fn until(&mut self, id: TaskId, what: &str, done: impl Fn(&TaskInfo) -> bool) -> TaskInfo {
        for _ in 0..3_000 {
            let task = self.task(alice(), id).expect("get_task");
            if done(&task) {
                return task;
            }
            self.step();
        }
        panic!(
            "task {id}: {what} never happened: {:?}",
            self.task(alice(), id)
        );
    }

    /// The runs alice's agent canister holds, newest first.
    fn runs(&mut self) -> Vec<RunInfo> {
        let canister = self.canister;
        let mut runs = Vec::new();
        let mut start = 0;
        loop {
            let page: Result<Paged<RunInfo>, Error> =
                self.p
                    .suite
                    .query(canister, alice(), "list_runs", (Page { start, limit: 20 },));
            let page = page.unwrap();
            runs.extend(page.items);
            match page.next_start {
                Some(next) => start = next,
                None => return runs,
            }
        }
    }

    /// Alice's tokens: used this month and left (held reservations count against what is left).
    fn tokens(&mut self) -> (u64, u64) {
        let usage = self.p.usage(alice());
        (
            usage.usage.tokens_in + usage.usage.tokens_out,
            usage.limits.expect("subscribed").tokens_left,
        )
    }

    fn alerts(&mut self, who: Principal) -> Vec<TaskAlert> {
        let page: Result<Paged<TaskAlert>, Error> = self.query(
            who,
            "my_alerts",
            AlertQuery {
                page: Page::first(100),
                unread_only: false,
            },
        );
        page.unwrap().items
    }
}

fn task_args(agents: AgentSelection, budget_tokens: u64, rounds: Option<u8>) -> SubmitTaskArgs {
    SubmitTaskArgs {
        instructions: TASK.into(),
        agents,
        budget_tokens,
        rounds,
    }
}

fn in_flight(task: &TaskInfo, round: usize) -> usize {
    task.rounds[round]
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                StepStatus::Dispatching | StepStatus::Running { .. }
            )
        })
        .count()
}

#[derive(CandidType)]
struct CanisterIdRecord {
    canister_id: Principal,
}

fn bench(name: &str, value: f64) {
    println!("BENCH {name} {value}");
}

#[test]
fn a_python_task_runs_parallel_rounds_and_aggregates_each_roles_output_in_order() {
    let Some(mut c) = Coord::deploy() else {
        return;
    };
    let (used_before, left_before) = c.tokens();
    let before =
        c.p.suite
            .env
            .canister_instructions(c.coordinator)
            .unwrap_or(0);
    let task = c
        .submit(alice(), task_args(AgentSelection::Auto, 6_000, None))
        .expect("submit_task");
    let submit_cost =
        c.p.suite
            .env
            .canister_instructions(c.coordinator)
            .unwrap_or(0)
            - before;
    assert_eq!(task.status, TaskStatus::Running);
    let roles: Vec<&str> = task.agents.iter().map(|a| a.role.as_str()).collect();
    assert_eq!(
        roles,
        ["Python Developer", "Code Reviewer", "Test Generator"]
    );
    let stages: Vec<&str> = task.agents.iter().map(|a| a.stage.as_str()).collect();
    assert_eq!(stages, ["develop", "review", "test"]);
    assert!(task.routing.starts_with("auto"), "{}", task.routing);
    assert!(
        task.agents.iter().all(|a| a.reason.contains("score")),
        "{:?}",
        task.agents
    );
    assert_eq!(task.rounds.len(), 2);
    // The budget is held with economics while the task runs.
    assert_eq!(c.tokens().1, left_before - 6_000);

    // Each round's three runs are started together: the agent canister received the three
    // `run` calls in one round, and each start (which awaits economics) interleaved with the
    // others, so all three were recorded in the same round of the network. Started one after
    // another, each would come rounds after the previous (the test's clock moves a second a
    // round).
    let id = task.id;
    let started =
        c.p.suite
            .env
            .canister_instructions(c.coordinator)
            .unwrap_or(0);
    c.until(id, "round 1 dispatched", |t| {
        t.rounds[0].steps.iter().all(|s| s.run.is_some())
    });
    let runs = c.runs();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|r| r.started_at_nanos == runs[0].started_at_nanos),
        "{:?}",
        runs.iter().map(|r| r.started_at_nanos).collect::<Vec<_>>()
    );
    c.until(id, "round 2 dispatched", |t| {
        t.rounds[1].steps.iter().all(|s| s.run.is_some())
    });
    let runs = c.runs();
    assert_eq!(runs.len(), 6);
    // Newest first: the three of round 2.
    assert!(
        runs[..3]
            .iter()
            .all(|r| r.started_at_nanos == runs[0].started_at_nanos)
    );
    assert!(runs[0].started_at_nanos > runs[3].started_at_nanos);

    let task = c.finish(id);
    let finished =
        c.p.suite
            .env
            .canister_instructions(c.coordinator)
            .unwrap_or(0);
    assert_eq!(task.status, TaskStatus::Completed, "{task:#?}");
    assert!(task.stop_reason.as_deref().unwrap().contains("2 round"));
    for round in &task.rounds {
        for step in &round.steps {
            assert_eq!(step.status, StepStatus::Completed, "{step:?}");
            assert!(!step.output.trim().is_empty());
            assert!(step.tokens_out > 0 && step.max_tokens >= 8);
            assert_eq!(step.attempts, 1);
        }
    }
    // Round 2 was offered round 1's three outputs and kept what fits the model's context
    // (stories260K reads 128 tokens: the prompt is at most 128 - 9, its answer the rest).
    for step in &task.rounds[1].steps {
        assert_eq!(
            step.blackboard_entries + step.blackboard_trimmed,
            3,
            "{step:?}"
        );
        assert!(step.prompt_tokens + step.max_tokens < 128, "{step:?}");
    }
    // Each role's output, in plan order.
    let result = task.result.clone().expect("a result");
    let at = |role: &str| result.find(&format!("## {role}")).expect(role);
    assert!(at("Python Developer") < at("Code Reviewer"));
    assert!(at("Code Reviewer") < at("Test Generator"));
    for step in &task.rounds[1].steps {
        assert!(result.contains(step.output.trim()));
    }
    // Six runs, each started once; economics counted them once and holds nothing any more.
    let runs = c.runs();
    assert_eq!(runs.len(), 6);
    let run_tokens: u64 = runs.iter().map(|r| r.tokens_in + r.tokens_out).sum();
    assert_eq!(task.tokens_used, run_tokens);
    assert!(task.tokens_used <= task.budget_tokens);
    let (used, left) = c.tokens();
    assert_eq!(used - used_before, run_tokens);
    assert_eq!(left, BASIC_TOKENS - used);

    // The monitor, the feed, the day.
    let perf: Result<Paged<AgentPerformance>, Error> =
        c.query(alice(), "agent_performance", Page::first(10));
    let perf = perf.unwrap().items;
    assert_eq!(perf.len(), 3);
    for agent in &perf {
        assert_eq!(
            (agent.performance.runs, agent.performance.completed),
            (2, 2)
        );
        assert!(agent.performance.instructions > 0);
    }
    let alerts = c.alerts(alice());
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == TaskAlertKind::TaskFinished && a.task == Some(id))
    );
    let stats: Result<PlatformStats, Error> =
        c.p.suite
            .query(c.coordinator, controller(), "platform_stats", ());
    let stats = stats.unwrap();
    assert_eq!(
        (stats.tasks_completed, stats.runs, stats.run_failures),
        (1, 6, 0)
    );
    assert_eq!(stats.tokens_total, run_tokens);
    assert_eq!(stats.top_models[0].model.as_str(), "stories260k-q4a");
    let now =
        c.p.suite
            .env
            .get_time()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
    let today = (now.as_secs() / 86_400) as u32;
    let days: Result<Vec<DailyStats>, Error> = c.query(
        controller(),
        "daily_stats",
        DayRange {
            from_day: today - 1,
            to_day: today,
        },
    );
    let days = days.unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!((days[1].tasks_submitted, days[1].tasks_completed), (1, 1));
    assert_eq!((days[1].active_users, days[1].tokens), (1, run_tokens));

    // A day later the timer closes the day with the revenue economics recorded since.
    c.p.suite.env.advance_time(Duration::from_secs(86_400));
    let closed: Result<(), Error> =
        c.p.suite
            .update(c.coordinator, controller(), "run_maintenance", ());
    closed.unwrap();
    let days: Result<Vec<DailyStats>, Error> = c.query(
        controller(),
        "daily_stats",
        DayRange {
            from_day: today,
            to_day: today,
        },
    );
    let day = &days.unwrap()[0];
    assert!(day.closed);
    assert!(day.revenue_e8s.is_some());

    let calls = task.agent_calls as f64;
    bench("coordinator.instructions.submit_task", submit_cost as f64);
    bench(
        "coordinator.instructions.round_overhead",
        (finished - started) as f64 / calls,
    );
    bench(
        "coordinator.messages_per_round",
        task.engine_messages as f64 / task.rounds.len() as f64,
    );
}

#[test]
fn an_agent_that_traps_is_retried_then_failed_and_the_task_goes_on_or_fails_cleanly() {
    let Some(mut c) = Coord::deploy() else {
        return;
    };
    let economics = c.p.suite.id("economics");
    let developer = c.agents[0];
    let trap = Fault::TrapInCallback {
        canister: c.canister,
        callee: economics,
        method: Some("reserve".into()),
    };

    // One trap: the run is asked for again under the same key and completes, started once.
    c.p.suite.env.inject_fault(trap.clone());
    let task = c.solo(developer, 1);
    assert_eq!(task.status, TaskStatus::Completed, "{task:#?}");
    let step = &task.rounds[0].steps[0];
    assert_eq!(step.attempts, 2);
    assert_eq!(c.runs().len(), 1);

    // Traps at every attempt: the step fails with the reason, and so does the task, cleanly.
    for _ in 0..3 {
        c.p.suite.env.inject_fault(trap.clone());
    }
    let task = c.solo(developer, 2);
    let step = &task.rounds[0].steps[0];
    assert_eq!(step.attempts, 3);
    match &step.status {
        StepStatus::Failed { reason } => assert!(reason.contains("after 3 attempt"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match &task.status {
        TaskStatus::Failed { reason } => assert!(reason.contains("round 1"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        task.rounds[1].steps[0].status,
        StepStatus::Skipped { .. }
    ));
    assert_eq!(
        c.runs().len(),
        1,
        "no run was started by the trapped attempts"
    );
    assert!(
        c.alerts(alice())
            .iter()
            .any(|a| a.kind == TaskAlertKind::AgentFailed)
    );

    // A lost reply: the run was started, the coordinator asks again under the same key and
    // gets that run — one run, not two.
    let agent_canister = c.canister;
    c.p.suite.env.inject_fault(Fault::LoseReply {
        canister: c.coordinator,
        callee: agent_canister,
        method: Some("run".into()),
    });
    let runs_before = c.runs().len();
    let task = c.solo(developer, 1);
    assert_eq!(task.status, TaskStatus::Completed, "{task:#?}");
    assert_eq!(task.rounds[0].steps[0].attempts, 2);
    assert_eq!(c.runs().len(), runs_before + 1);

    // One agent of two refuses (paused after the task was submitted): the other goes on.
    let tester = c.agents[2];
    let task = c
        .submit(
            alice(),
            task_args(
                AgentSelection::Agents(vec![developer, tester]),
                4_000,
                Some(2),
            ),
        )
        .unwrap();
    let canister = c.canister;
    let paused: Result<ohms_types::AgentInfo, Error> = c.p.suite.update(
        canister,
        alice(),
        "set_agent_status",
        (SetAgentStatus {
            agent: tester,
            status: AgentStatus::Paused,
        },),
    );
    paused.unwrap();
    let task = c.finish(task.id);
    assert_eq!(task.status, TaskStatus::Completed, "{task:#?}");
    for round in &task.rounds {
        assert_eq!(round.steps[0].status, StepStatus::Completed);
        assert!(
            matches!(&round.steps[1].status, StepStatus::Failed { reason } if reason.contains("paused"))
        );
    }
    let stats: Result<PlatformStats, Error> =
        c.p.suite
            .query(c.coordinator, controller(), "platform_stats", ());
    let stats = stats.unwrap();
    assert_eq!(stats.tasks_failed, 1);
    assert!(stats.run_failures >= 3 && stats.failure_rate > 0.0);
}

#[test]
fn cancel_stops_further_rounds_and_releases_the_reservation_exactly() {
    let Some(mut c) = Coord::deploy() else {
        return;
    };
    let (_, left_before) = c.tokens();
    let task = c
        .submit(alice(), task_args(AgentSelection::Auto, 9_000, Some(3)))
        .unwrap();
    assert_eq!(c.tokens().1, left_before - 9_000);
    let id = task.id;
    c.until(id, "round 1 running", |t| {
        in_flight(t, 0) == 3 && t.rounds[0].steps.iter().all(|s| s.run.is_some())
    });

    // Someone else can neither see nor cancel it.
    assert!(matches!(c.task(bob(), id), Err(Error::NotFound { .. })));
    let refused: Result<TaskInfo, Error> = c.update(bob(), "cancel_task", id);
    assert!(
        matches!(refused, Err(Error::NotFound { .. })),
        "{refused:?}"
    );
    let listed: Result<Paged<TaskInfo>, Error> = c.query(bob(), "list_tasks", Page::first(10));
    assert_eq!(listed.unwrap().total, 0);

    let cancelled: Result<TaskInfo, Error> = c.update(alice(), "cancel_task", id);
    let cancelled = cancelled.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert!(cancelled.reservation_released);
    for round in &cancelled.rounds[1..] {
        assert!(
            round
                .steps
                .iter()
                .all(|s| matches!(s.status, StepStatus::Skipped { .. }))
        );
    }
    let again: Result<TaskInfo, Error> = c.update(alice(), "cancel_task", id);
    assert!(matches!(again, Err(Error::InvalidState { .. })));
    // No further run starts; the runs stopped commit what they used, and nothing stays held.
    for _ in 0..200 {
        c.step();
    }
    let runs = c.runs();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|r| r.status.is_final() && r.usage_committed),
        "{runs:?}"
    );
    let (used, left) = c.tokens();
    assert_eq!(left, BASIC_TOKENS - used);
    let listed: Result<Paged<TaskInfo>, Error> = c.query(alice(), "list_tasks", Page::first(10));
    assert_eq!(listed.unwrap().items[0].status, TaskStatus::Cancelled);
}

#[test]
fn a_task_survives_an_upgrade_mid_task_and_completes_with_every_run_started_once() {
    let Some(mut c) = Coord::deploy() else {
        return;
    };
    let task = c
        .submit(alice(), task_args(AgentSelection::Auto, 6_000, None))
        .unwrap();
    let id = task.id;
    c.until(id, "round 1 done", |t| t.current_round == 1);
    let coordinator = c.coordinator;
    c.p.suite
        .env
        .stop_canister(coordinator, Some(controller()))
        .expect("stop");
    c.p.suite.upgrade("coordinator", None).expect("upgrade");
    c.p.suite
        .env
        .start_canister(coordinator, Some(controller()))
        .expect("start");
    let kept = c.task(alice(), id).unwrap();
    assert_eq!(kept.current_round, 1);
    let task = c.finish(id);
    assert_eq!(task.status, TaskStatus::Completed, "{task:#?}");
    assert_eq!(c.runs().len(), 6);
    assert!(
        task.rounds
            .iter()
            .flat_map(|r| &r.steps)
            .all(|s| s.attempts == 1)
    );
    // The monitor and the feed came through the upgrade too.
    let perf: Result<Paged<AgentPerformance>, Error> =
        c.query(alice(), "agent_performance", Page::first(10));
    assert_eq!(
        perf.unwrap()
            .items
            .iter()
            .map(|a| a.performance.runs)
            .sum::<u64>(),
        6
    );
    assert_eq!(c.alerts(alice()).len(), 1);
}

#[test]
fn bad_requests_and_a_denied_reservation_start_nothing() {
    let Some(mut c) = Coord::deploy() else {
        return;
    };
    let (_, left_before) = c.tokens();
    let oversized = "x".repeat(5_000);
    // Within the size limit, but more tokens than stories260K reads.
    let too_long = "write the code and its tests ".repeat(20);
    let bad = [
        (
            task_args(AgentSelection::Auto, 1_000, None),
            "",
            "instructions",
        ),
        (
            task_args(AgentSelection::Auto, 1_000, None),
            oversized.as_str(),
            "instructions",
        ),
        (
            task_args(AgentSelection::Auto, 1_000, None),
            too_long.as_str(),
            "instructions",
        ),
        (
            task_args(AgentSelection::Auto, 0, None),
            TASK,
            "budget_tokens",
        ),
        (
            task_args(AgentSelection::Auto, 1_000, Some(9)),
            TASK,
            "rounds",
        ),
        (
            task_args(AgentSelection::Agents(vec![]), 1_000, None),
            TASK,
            "agents",
        ),
    ];
    for (mut args, instructions, field) in bad {
        args.instructions = instructions.into();
        match c.submit(alice(), args) {
            Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let unknown = c.submit(
        alice(),
        task_args(AgentSelection::Agents(vec![AgentId(999)]), 1_000, None),
    );
    assert!(
        matches!(unknown, Err(Error::NotFound { .. })),
        "{unknown:?}"
    );
    // Bob has no agents; the anonymous principal is no one.
    let none = c.submit(bob(), task_args(AgentSelection::Auto, 1_000, None));
    assert!(matches!(none, Err(Error::InvalidState { .. })), "{none:?}");
    let anonymous = c.submit(
        Principal::anonymous(),
        task_args(AgentSelection::Auto, 1_000, None),
    );
    assert!(matches!(anonymous, Err(Error::Anonymous)), "{anonymous:?}");
    // More than the month has left: economics denies, nothing starts.
    let denied = c.submit(alice(), task_args(AgentSelection::Auto, 200_000, None));
    match denied {
        Err(Error::Denied {
            reason: DenyReason::QuotaExceeded { quota, .. },
            ..
        }) => assert_eq!(quota, "tokens_per_month"),
        other => panic!("{other:?}"),
    }
    let listed: Result<Paged<TaskInfo>, Error> = c.query(alice(), "list_tasks", Page::first(10));
    assert_eq!(listed.unwrap().total, 0);
    assert_eq!(c.tokens().1, left_before);
    assert!(c.runs().is_empty());
    // While an administrator has paused the coordinator, users change nothing.
    let paused: Result<(), Error> = c.p.suite.update(
        c.coordinator,
        controller(),
        "pause",
        ("maintenance".to_string(),),
    );
    paused.unwrap();
    let refused = c.submit(alice(), task_args(AgentSelection::Auto, 1_000, None));
    assert!(matches!(refused, Err(Error::Paused { .. })), "{refused:?}");
    let refused: Result<TaskInfo, Error> = c.update(alice(), "cancel_task", TaskId(1));
    assert!(matches!(refused, Err(Error::Paused { .. })), "{refused:?}");
    let unpaused: Result<(), Error> = c.p.suite.update(c.coordinator, controller(), "unpause", ());
    unpaused.unwrap();
    // Administrators' views are theirs.
    let stats: Result<PlatformStats, Error> =
        c.p.suite
            .query(c.coordinator, alice(), "platform_stats", ());
    assert!(matches!(stats, Err(Error::NotAuthorized { .. })));
    let admin_alerts: Result<Paged<TaskAlert>, Error> = c.query(
        alice(),
        "admin_alerts",
        AlertQuery {
            page: Page::first(10),
            unread_only: false,
        },
    );
    assert!(matches!(admin_alerts, Err(Error::NotAuthorized { .. })));
    let marked: Result<u32, Error> = c.update(alice(), "mark_alerts_read", vec![12_345u64]);
    assert!(matches!(marked, Err(Error::NotFound { .. })));

    // Economics reserved, but its reply was lost: the submission fails, the budget is held by
    // a reservation no task knows of, and the sweep gives it back.
    let economics = c.p.suite.id("economics");
    c.p.suite.env.inject_fault(Fault::LoseReply {
        canister: c.coordinator,
        callee: economics,
        method: Some("reserve".into()),
    });
    let lost = c.submit(alice(), task_args(AgentSelection::Auto, 1_000, None));
    assert!(matches!(lost, Err(Error::CallFailed { .. })), "{lost:?}");
    assert_eq!(c.tokens().1, left_before - 1_000);
    let swept: Result<(), Error> =
        c.p.suite
            .update(c.coordinator, controller(), "run_maintenance", ());
    swept.unwrap();
    assert_eq!(c.tokens().1, left_before);
    let listed: Result<Paged<TaskInfo>, Error> = c.query(alice(), "list_tasks", Page::first(10));
    assert_eq!(listed.unwrap().total, 0);
}

#[test]
fn an_agent_that_never_answers_does_not_wedge_the_coordinator() {
    let Some(mut c) = Coord::deploy() else {
        return;
    };
    let developer = c.agents[0];
    let task = c
        .submit(
            alice(),
            task_args(AgentSelection::Agents(vec![developer]), 2_000, Some(1)),
        )
        .unwrap();
    // Alice's agent canister now accepts calls and never answers.
    let factory = c.p.suite.id("agent_factory");
    let canister = c.canister;
    c.p.suite
        .env
        .upgrade_canister(
            canister,
            wasm("fixtures/silent"),
            candid::encode_args(()).unwrap(),
            Some(factory),
        )
        .expect("install the silent canister");
    let id = task.id;
    c.until(id, "the run call out", |t| {
        t.rounds[0].steps[0].status == StepStatus::Dispatching
    });

    // The coordinator serves queries and updates while its call waits.
    assert_eq!(c.task(alice(), id).unwrap().status, TaskStatus::Running);
    let marked: Result<u32, Error> = c.update(alice(), "mark_alerts_read", Vec::<u64>::new());
    assert_eq!(marked.unwrap(), 0);

    // It stops once the bounded wait ends, upgrades, and goes on.
    let coordinator = c.coordinator;
    let stop =
        c.p.suite
            .env
            .submit_call(
                Principal::management_canister(),
                controller(),
                "stop_canister",
                candid::encode_one(CanisterIdRecord {
                    canister_id: coordinator,
                })
                .unwrap(),
            )
            .unwrap();
    c.p.suite.env.advance_time(Duration::from_secs(301));
    c.p.suite.env.tick();
    c.p.suite.env.tick();
    c.p.suite.env.await_call(stop).expect("stopped");
    c.p.suite.upgrade("coordinator", None).expect("upgrade");
    c.p.suite
        .env
        .start_canister(coordinator, Some(controller()))
        .expect("start");

    // Every attempt times out; the step fails with the reason and the task with it.
    for _ in 0..10 {
        c.p.suite.env.advance_time(Duration::from_secs(301));
        for _ in 0..5 {
            c.step();
        }
    }
    let task = c.finish(id);
    let step = &task.rounds[0].steps[0];
    assert_eq!(step.attempts, 3);
    match &step.status {
        StepStatus::Failed { reason } => assert!(
            reason.to_lowercase().contains("deadline") || reason.contains("call"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(task.status, TaskStatus::Failed { .. }));
}

#[test]
fn every_method_checks_its_caller_and_its_input_and_reads_survive_an_upgrade() {
    let Some(mut c) = Coord::deploy() else {
        return;
    };
    let task = c.solo(c.agents[0], 1);
    let anonymous = Principal::anonymous();
    let query = AlertQuery {
        page: Page::first(10),
        unread_only: false,
    };
    // The anonymous principal is no one.
    let refused: Vec<Result<(), Error>> = vec![
        c.query::<_, Result<TaskInfo, Error>>(anonymous, "get_task", task.id)
            .map(|_| ()),
        c.query::<_, Result<Paged<TaskInfo>, Error>>(anonymous, "list_tasks", Page::first(5))
            .map(|_| ()),
        c.query::<_, Result<Paged<AgentPerformance>, Error>>(
            anonymous,
            "agent_performance",
            Page::first(5),
        )
        .map(|_| ()),
        c.query::<_, Result<Paged<ModelPerformance>, Error>>(
            anonymous,
            "model_performance",
            Page::first(5),
        )
        .map(|_| ()),
        c.query::<_, Result<Paged<TaskAlert>, Error>>(anonymous, "my_alerts", query)
            .map(|_| ()),
        c.update::<_, Result<u32, Error>>(anonymous, "mark_alerts_read", Vec::<u64>::new())
            .map(|_| ()),
        c.update::<_, Result<TaskInfo, Error>>(anonymous, "cancel_task", task.id)
            .map(|_| ()),
    ];
    for reply in refused {
        assert!(matches!(reply, Err(Error::Anonymous)), "{reply:?}");
    }
    // Administrators' methods, called by a user.
    let coordinator = c.coordinator;
    let today = DayRange {
        from_day: 0,
        to_day: 1,
    };
    let refused: Vec<Result<(), Error>> = vec![
        c.query::<_, Result<Vec<DailyStats>, Error>>(alice(), "daily_stats", today)
            .map(|_| ()),
        c.update::<_, Result<u32, Error>>(alice(), "mark_admin_alerts_read", Vec::<u64>::new())
            .map(|_| ()),
        c.p.suite
            .update::<_, Result<(), Error>>(coordinator, alice(), "run_maintenance", ()),
    ];
    for reply in refused {
        assert!(
            matches!(reply, Err(Error::NotAuthorized { .. })),
            "{reply:?}"
        );
    }
    // The siblings' lookups the coordinator relies on are not a user's.
    let factory = c.p.suite.id("agent_factory");
    let economics = c.p.suite.id("economics");
    let lookup: Result<Option<ohms_types::AgentCanisterRecord>, Error> =
        c.p.suite
            .query(factory, alice(), "agent_canister_of", (alice(),));
    assert!(
        matches!(lookup, Err(Error::NotAuthorized { .. })),
        "{lookup:?}"
    );
    let held: Result<Paged<ohms_types::Reservation>, Error> =
        c.p.suite
            .query(economics, alice(), "held_reservations", (Page::first(5),));
    assert!(matches!(held, Err(Error::NotAuthorized { .. })), "{held:?}");
    // Bounded input, with a typed error.
    for (range, field) in [
        (
            DayRange {
                from_day: 10,
                to_day: 9,
            },
            "from_day",
        ),
        (
            DayRange {
                from_day: 0,
                to_day: 400,
            },
            "to_day",
        ),
    ] {
        let reply: Result<Vec<DailyStats>, Error> = c.query(controller(), "daily_stats", range);
        assert!(
            matches!(&reply, Err(Error::InvalidArgument { field: f, .. }) if f == field),
            "{reply:?}"
        );
    }
    let too_many: Result<u32, Error> = c.update(alice(), "mark_alerts_read", vec![1u64; 501]);
    assert!(
        matches!(too_many, Err(Error::InvalidArgument { .. })),
        "{too_many:?}"
    );
    // A list asked for u32::MAX items returns a page.
    let page: Result<Paged<TaskInfo>, Error> = c.query(
        alice(),
        "list_tasks",
        Page {
            start: 0,
            limit: u32::MAX,
        },
    );
    assert_eq!(page.unwrap().items.len(), 1);

    // Everything read before an upgrade reads the same after it, twice.
    let read = |c: &mut Coord| {
        let task: Result<TaskInfo, Error> = c.query(alice(), "get_task", task.id);
        let models: Result<Paged<ModelPerformance>, Error> =
            c.query(alice(), "model_performance", Page::first(5));
        let alerts = c.alerts(alice());
        let coordinator = c.coordinator;
        let stats: Result<PlatformStats, Error> =
            c.p.suite
                .query(coordinator, controller(), "platform_stats", ());
        (task.unwrap(), models.unwrap(), alerts, stats.unwrap())
    };
    let before = read(&mut c);
    assert_eq!(before.1.items[0].performance.runs, 1);
    for _ in 0..2 {
        c.p.suite.upgrade("coordinator", None).expect("upgrade");
        assert_eq!(read(&mut c), before);
    }
}
