//! The engine: tasks advance in the background, one step per message. A driver timer looks
//! at the active tasks every `POLL_INTERVAL` and gives each one not already advancing a
//! message of its own, so a task whose agent is slow to answer never holds up another. A
//! step either dispatches the round's pending runs — all of them at once, in parallel — or
//! follows the runs in flight (their partial text included); when every step of the round
//! has ended, the round closes and the next one starts, or the task finishes with the
//! aggregated result and its reservation is released.
//!
//! Runs are started with the idempotency key `task-<id>/r<round>/a<agent>`: a retry after a
//! lost reply (or an upgrade between attempts) gets the run the first attempt started, never
//! a second one. Calls are bounded-wait: an agent that never answers fails its step with the
//! reason, and the coordinator goes on serving, stopping and upgrading.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use candid::Principal;
use futures_util::future::join_all;
use ohms_types::calendar::NANOS_PER_SECOND;
use ohms_types::{
    Decision, Error, GenerationParams, Limits, RunArgs, RunInfo, RunStatus, StepStatus,
    TaskAlertKind, TaskStatus, TierConfig,
};

use crate::alerts::{self, About};
use crate::state::{TaskRecord, mutate_state, read_state};
use crate::{daily, monitor, plan, tokens};

/// How often the driver looks at the active tasks.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Tasks given a message per driver round, at most.
const MAX_TASKS_PER_DRIVE: usize = 32;
/// Dispatch attempts of one step before it fails.
pub const MAX_ATTEMPTS: u32 = 3;
/// A run followed this long without ending fails its step (and is cancelled).
pub const MAX_STEP_SECONDS: u64 = 3_600;
/// A task's message scheduled this long ago and not started has trapped at its start (a
/// timer of delay zero runs within a round or two): the task is scheduled again.
const STALE_SCHEDULE_NANOS: u64 = 60 * NANOS_PER_SECOND;

thread_local! {
    /// When the driver timer is due, if armed.
    static DRIVER_DUE: Cell<Option<u64>> = const { Cell::new(None) };
    /// Tasks whose message the driver scheduled, and when; the message takes its task out.
    static SCHEDULED: RefCell<BTreeMap<u64, u64>> = RefCell::default();
    /// Tasks a message is advancing, for as long as it runs: the `Advancing` guard takes the
    /// task out when the message's future ends or is dropped (ic-cdk drops it after a trap in
    /// a callback, and that cleanup persists).
    static ADVANCING: RefCell<BTreeSet<u64>> = RefCell::default();
    /// The task the driver gave a message last: the next round starts after it.
    static DRIVE_CURSOR: Cell<u64> = const { Cell::new(0) };
}

/// Marks a task as advancing while it lives.
struct Advancing(u64);

impl Advancing {
    fn begin(id: u64) -> Self {
        SCHEDULED.with_borrow_mut(|s| s.remove(&id));
        ADVANCING.with_borrow_mut(|a| a.insert(id));
        Self(id)
    }
}

impl Drop for Advancing {
    fn drop(&mut self) {
        ADVANCING.with_borrow_mut(|a| a.remove(&self.0));
    }
}

fn now() -> u64 {
    ic_cdk::api::time()
}

/// Arms the driver to run within `delay` (an earlier arming stands).
pub fn arm(delay: Duration) {
    let now = now();
    let due = now.saturating_add(delay.as_nanos() as u64);
    // An arming already due has been lost (its message trapped): it does not stand.
    if DRIVER_DUE
        .get()
        .is_some_and(|armed| armed <= due && armed > now)
    {
        return;
    }
    DRIVER_DUE.set(Some(due));
    ic_cdk_timers::set_timer(delay, async { drive() });
}

/// Advances the active tasks now.
pub fn wake() {
    arm(Duration::ZERO);
}

fn drive() {
    DRIVER_DUE.set(None);
    let now = now();
    let active: Vec<u64> = read_state(|s| s.active.iter().map(|e| *e.key()).collect());
    if active.is_empty() {
        return;
    }
    // From the task after the last one served, wrapping around: beyond MAX_TASKS_PER_DRIVE
    // active tasks, every one still gets its turn.
    let split = active.partition_point(|id| *id <= DRIVE_CURSOR.get());
    let mut started = 0;
    for &id in active[split..].iter().chain(&active[..split]) {
        if started == MAX_TASKS_PER_DRIVE {
            break;
        }
        let busy = ADVANCING.with_borrow(|a| a.contains(&id))
            || SCHEDULED.with_borrow(|s| {
                s.get(&id)
                    .is_some_and(|at| now.saturating_sub(*at) < STALE_SCHEDULE_NANOS)
            });
        if busy {
            continue;
        }
        SCHEDULED.with_borrow_mut(|s| s.insert(id, now));
        DRIVE_CURSOR.set(id);
        started += 1;
        ic_cdk_timers::set_timer(Duration::ZERO, async move {
            let guard = Advancing::begin(id);
            let more = advance(id).await;
            drop(guard);
            if more {
                wake();
            }
        });
    }
    arm(POLL_INTERVAL);
}

fn update_task(id: u64, change: impl FnOnce(&mut TaskRecord)) -> Option<TaskRecord> {
    mutate_state(|s| {
        let mut task = s.task(id)?;
        change(&mut task);
        task.info.updated_at_nanos = now();
        s.put_task(task.clone());
        Some(task)
    })
}

/// One step of task `id`; true when the next step can follow at once.
async fn advance(id: u64) -> bool {
    let Some(task) = read_state(|s| s.task(id)) else {
        return false;
    };
    if task.info.status.is_final() {
        settle(id).await;
        return false;
    }
    if now() > task.deadline_nanos {
        let running = finish(
            id,
            TaskStatus::Failed {
                reason: "the task ran past its budget reservation's deadline".into(),
            },
            None,
        );
        cancel_runs(running).await;
        settle(id).await;
        return false;
    }
    let round = task.info.current_round as usize;
    // No message of ours is in flight for this task: a step left `Dispatching` was cut short
    // (a trap); it is dispatched again under the same key.
    let Some(task) = update_task(id, |t| {
        t.info.engine_messages += 1;
        let round = &mut t.info.rounds[round];
        round.started_at_nanos.get_or_insert(now());
        for step in &mut round.steps {
            if step.status == StepStatus::Dispatching {
                step.status = StepStatus::Pending;
            }
        }
    }) else {
        return false;
    };
    let steps = &task.info.rounds[round].steps;
    // While an administrator has paused the coordinator, no new run starts; runs in flight
    // are still followed and ended tasks settled.
    if steps.iter().any(|s| s.status == StepStatus::Pending) && !ohms_ops::pause::is_paused() {
        dispatch(id, round).await;
    } else if steps
        .iter()
        .any(|s| matches!(s.status, StepStatus::Running { .. }))
    {
        follow(id, round).await;
    }
    close_round(id, round).await
}

/// A run's request: the prompt for this round and the parameters this step may use.
struct Dispatch {
    step: usize,
    canister: Principal,
    args: RunArgs,
}

/// Prepares every pending step of the round (prompt fitted to the model's context, answer
/// length from the budget), records them `Dispatching`, then starts all their runs at once.
async fn dispatch(id: u64, round: usize) {
    let Some(task) = read_state(|s| s.task(id)) else {
        return;
    };
    // The tokenizers first: after these awaits the task is read again and prepared and
    // recorded within one message, so a cancel meanwhile is seen, never overwritten.
    let mut models = BTreeMap::new();
    for step in &task.info.rounds[round].steps {
        let Some(agent) = task.info.agent(step.agent) else {
            continue;
        };
        if step.status == StepStatus::Pending && !models.contains_key(agent.model.as_str()) {
            let text = tokens::model_text(&agent.model).await;
            models.insert(agent.model.as_str().to_string(), text);
        }
    }
    let Some(mut task) = read_state(|s| s.task(id)) else {
        return;
    };
    if task.info.status.is_final() {
        return;
    }
    let entries = plan::blackboard(&task.info, round as u32);
    let stage = task.info.rounds[round].stage.clone();
    let mut requests = Vec::new();
    for index in 0..task.info.rounds[round].steps.len() {
        if task.info.rounds[round].steps[index].status != StepStatus::Pending {
            continue;
        }
        let agent_index = task
            .info
            .agents
            .iter()
            .position(|a| a.agent == task.info.rounds[round].steps[index].agent)
            .expect("every step names one of the task's agents");
        let agent = task.info.agents[agent_index].clone();
        let brief = task.briefs[agent_index].clone();
        let model = match models.get(agent.model.as_str()).cloned() {
            Some(Ok(model)) => model,
            None => continue,
            Some(Err(err)) => {
                let step = &mut task.info.rounds[round].steps[index];
                step.last_error = Some(format!("tokenizer of {}: {err}", agent.model));
                step.attempts += 1;
                if step.attempts >= MAX_ATTEMPTS {
                    step.status = StepStatus::Failed {
                        reason: format!("the model's tokenizer could not be read: {err}"),
                    };
                }
                continue;
            }
        };
        let ask = plan::ask(&stage, &agent.role);
        let limit = model.context.saturating_sub(plan::MIN_ANSWER_TOKENS + 1);
        let fitted = plan::fit(&task.info.instructions, &entries, &ask, limit, |p| {
            model.count(&brief.system_prompt, p)
        });
        let step = &mut task.info.rounds[round].steps[index];
        let fitted = match fitted {
            Ok(fitted) => fitted,
            Err(tokens) => {
                step.status = StepStatus::Failed {
                    reason: format!(
                        "the prompt needs {tokens} tokens; {} reads at most {} with its answer",
                        agent.model, model.context
                    ),
                };
                continue;
            }
        };
        step.prompt_tokens = fitted.tokens;
        step.blackboard_entries = fitted.entries;
        step.blackboard_trimmed = fitted.trimmed;
        // The share is computed with this step still pending: it counts itself.
        let left = plan::budget_left(&task.info);
        let steps_left = plan::undispatched(&task.info);
        let Some(max_tokens) = plan::answer_tokens(
            brief.max_tokens,
            model.context,
            fitted.tokens,
            left,
            steps_left,
        ) else {
            let step = &mut task.info.rounds[round].steps[index];
            step.status = StepStatus::Skipped {
                reason: format!("budget spent: {left} tokens left for {steps_left} steps"),
            };
            continue;
        };
        let step = &mut task.info.rounds[round].steps[index];
        step.max_tokens = max_tokens;
        step.status = StepStatus::Dispatching;
        step.attempts += 1;
        step.dispatched_at_nanos.get_or_insert(now());
        requests.push(Dispatch {
            step: index,
            canister: agent.canister,
            args: RunArgs {
                agent: agent.agent,
                prompt: fitted.prompt,
                params: Some(GenerationParams {
                    temperature: brief.temperature,
                    top_p: brief.top_p,
                    max_tokens,
                }),
                seed: None,
                request_id: Some(format!("task-{id}/r{}/a{}", round + 1, agent.agent)),
                task_reservation: task.info.reservation,
            },
        });
    }
    task.info.agent_calls += requests.len() as u64;
    task.info.updated_at_nanos = now();
    mutate_state(|s| s.put_task(task));
    if requests.is_empty() {
        return;
    }
    // Every run of the round in flight together.
    let replies = join_all(
        requests
            .iter()
            .map(|r| ohms_ops::calls::call::<_, RunInfo>(r.canister, "run", (r.args.clone(),))),
    )
    .await;
    let mut late_runs = Vec::new();
    let now = now();
    mutate_state(|s| {
        let Some(mut task) = s.task(id) else { return };
        let cancelled = task.info.status.is_final();
        for (request, reply) in requests.iter().zip(replies) {
            let step = &mut task.info.rounds[round].steps[request.step];
            match reply {
                Ok(run) if cancelled => {
                    late_runs.push((request.canister, run.id));
                    step.run = Some(run.id);
                    step.status = StepStatus::Skipped {
                        reason: "the task was cancelled".into(),
                    };
                }
                Ok(run) => {
                    step.run = Some(run.id);
                    step.status = StepStatus::Running { run: run.id };
                    step.last_error = None;
                }
                Err(err) if cancelled => {
                    step.status = StepStatus::Skipped {
                        reason: format!("the task was cancelled ({err})"),
                    };
                }
                Err(err) if paused(&err) => {
                    // A pause is waited out (the deadline still bounds it): no attempt spent.
                    step.status = StepStatus::Pending;
                    step.attempts = step.attempts.saturating_sub(1);
                    step.last_error = Some(err.to_string());
                }
                Err(err) if retryable(&err) && step.attempts < MAX_ATTEMPTS => {
                    step.status = StepStatus::Pending;
                    step.last_error = Some(err.to_string());
                }
                Err(err) => {
                    step.status = StepStatus::Failed {
                        reason: format!("after {} attempt(s): {err}", step.attempts),
                    };
                    step.finished_at_nanos = Some(now);
                    step_ended(s, &task, request.step, round, now);
                }
            }
        }
        task.info.updated_at_nanos = now;
        s.put_task(task);
    });
    cancel_runs(late_runs).await;
}

/// Calls whose failure says nothing about the request: retried under the same key.
fn retryable(err: &Error) -> bool {
    matches!(err, Error::CallFailed { .. } | Error::Busy)
}

/// The agent canister or economics is paused by an administrator: the step waits.
fn paused(err: &Error) -> bool {
    matches!(
        err,
        Error::Paused { .. }
            | Error::Denied {
                reason: ohms_types::DenyReason::Paused,
                ..
            }
    )
}

/// Records an ended step with the monitor; a failure is also told to the owner.
fn step_ended(
    s: &mut crate::state::State,
    task: &TaskRecord,
    index: usize,
    round: usize,
    now: u64,
) {
    let step = &task.info.rounds[round].steps[index];
    let Some(agent) = task.info.agent(step.agent) else {
        return;
    };
    monitor::record_step(s, task.info.owner, agent, step, now);
    let StepStatus::Failed { reason } = &step.status else {
        return;
    };
    alerts::push(
        s,
        task.info.owner,
        TaskAlertKind::AgentFailed,
        format!(
            "{} (agent {}) failed in round {} of task {}: {reason}",
            agent.role,
            agent.agent,
            round + 1,
            task.info.id
        ),
        About {
            task: Some(task.info.id),
            agent: Some(agent.agent),
            canister: Some(agent.canister),
        },
        now,
    );
}

/// Reads every run of the round in flight, all at once; ended runs end their steps.
async fn follow(id: u64, round: usize) {
    let Some(task) = read_state(|s| s.task(id)) else {
        return;
    };
    let running: Vec<(usize, Principal, u64)> = task.info.rounds[round]
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| match step.status {
            StepStatus::Running { run } => {
                let canister = task.info.agent(step.agent)?.canister;
                Some((i, canister, run))
            }
            _ => None,
        })
        .collect();
    let replies = join_all(running.iter().map(|(_, canister, run)| {
        ohms_ops::calls::call::<_, RunInfo>(*canister, "get_run", (*run,))
    }))
    .await;
    let now = now();
    let mut overdue = Vec::new();
    mutate_state(|s| {
        let Some(mut task) = s.task(id) else { return };
        if task.info.status.is_final() {
            return;
        }
        for ((index, canister, run_id), reply) in running.iter().zip(replies) {
            let step = &mut task.info.rounds[round].steps[*index];
            if step.status != (StepStatus::Running { run: *run_id }) {
                continue;
            }
            let age = now.saturating_sub(step.dispatched_at_nanos.unwrap_or(now));
            match reply {
                Ok(run) => {
                    step.output = run.text.clone();
                    step.tokens_in = run.tokens_in;
                    step.tokens_out = run.tokens_out;
                    step.instructions = run.instructions;
                    step.messages = run.messages;
                    step.last_error = None;
                    let ended = match run.status {
                        RunStatus::Completed => Some(StepStatus::Completed),
                        RunStatus::Failed { reason } => Some(StepStatus::Failed {
                            reason: format!("the run failed: {reason}"),
                        }),
                        RunStatus::Cancelled => Some(StepStatus::Failed {
                            reason: "the run was cancelled at the agent canister".into(),
                        }),
                        _ if age > MAX_STEP_SECONDS * NANOS_PER_SECOND => {
                            overdue.push((*canister, *run_id));
                            Some(StepStatus::Failed {
                                reason: format!(
                                    "the run did not end within {MAX_STEP_SECONDS} s ({:?})",
                                    run.status
                                ),
                            })
                        }
                        _ => None,
                    };
                    if let Some(status) = ended {
                        step.status = status;
                        step.finished_at_nanos = Some(now);
                        step_ended(s, &task, *index, round, now);
                    }
                }
                Err(Error::NotFound { .. }) => {
                    step.status = StepStatus::Failed {
                        reason: format!("run {run_id} is no longer known to its agent canister"),
                    };
                    step.finished_at_nanos = Some(now);
                    step_ended(s, &task, *index, round, now);
                }
                Err(err) => {
                    step.last_error = Some(err.to_string());
                    if age > MAX_STEP_SECONDS * NANOS_PER_SECOND {
                        step.status = StepStatus::Failed {
                            reason: format!("no end after {MAX_STEP_SECONDS} s; last: {err}"),
                        };
                        step.finished_at_nanos = Some(now);
                        overdue.push((*canister, *run_id));
                        step_ended(s, &task, *index, round, now);
                    }
                }
            }
        }
        task.info.tokens_used = tokens_used(&task);
        task.info.agent_calls += running.len() as u64;
        task.info.updated_at_nanos = now;
        s.put_task(task);
    });
    cancel_runs(overdue).await;
}

fn tokens_used(task: &TaskRecord) -> u64 {
    task.info
        .rounds
        .iter()
        .flat_map(|r| &r.steps)
        .map(|s| s.tokens_in + s.tokens_out)
        .sum()
}

/// Closes the round once every step has ended: on to the next round, or the task's end.
/// True when the next round can start at once.
async fn close_round(id: u64, round: usize) -> bool {
    let Some(task) = read_state(|s| s.task(id)) else {
        return false;
    };
    if task.info.status.is_final() {
        settle(id).await;
        return false;
    }
    let steps = &task.info.rounds[round].steps;
    if !steps.iter().all(|s| s.status.is_final()) {
        return false;
    }
    let completed = steps
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .count();
    let budget_spent = steps.iter().any(
        |s| matches!(&s.status, StepStatus::Skipped { reason } if reason.starts_with("budget")),
    );
    let last = round + 1 == task.info.rounds.len();
    let earlier_work = task.info.rounds[..round]
        .iter()
        .flat_map(|r| &r.steps)
        .any(|s| s.status == StepStatus::Completed);
    update_task(id, |t| t.info.rounds[round].finished_at_nanos = Some(now()));
    let (status, why) = if completed == 0 && budget_spent && earlier_work {
        (
            TaskStatus::Completed,
            Some(format!("the budget was spent before round {}", round + 1)),
        )
    } else if completed == 0 {
        let reasons: Vec<String> = steps
            .iter()
            .map(|s| match &s.status {
                StepStatus::Failed { reason } | StepStatus::Skipped { reason } => {
                    format!("{}: {reason}", s.role)
                }
                _ => String::new(),
            })
            .collect();
        let reason = format!(
            "round {} ended with no agent's work: {}",
            round + 1,
            reasons.join("; ")
        );
        (TaskStatus::Failed { reason }, None)
    } else if budget_spent || last {
        let why = if last {
            format!("the plan's {} round(s) are done", task.info.rounds.len())
        } else {
            format!("the budget was spent in round {}", round + 1)
        };
        (TaskStatus::Completed, Some(why))
    } else {
        update_task(id, |t| t.info.current_round += 1);
        return true;
    };
    // Every step of the round has ended and no later round started: nothing is in flight.
    let running = finish(id, status, why);
    cancel_runs(running).await;
    settle(id).await;
    false
}

/// Ends the task: status, result, analytics and the owner's alert. Steps not run are
/// skipped, and so are steps whose runs are in flight: those runs are returned for the caller
/// to cancel at their agent canisters.
#[must_use = "the runs in flight are to be cancelled"]
pub fn finish(id: u64, status: TaskStatus, why: Option<String>) -> Vec<(Principal, u64)> {
    let now = now();
    mutate_state(|s| {
        let Some(mut task) = s.task(id) else {
            return Vec::new();
        };
        if task.info.status.is_final() {
            return Vec::new();
        }
        let mut running = Vec::new();
        for step in task.info.rounds.iter_mut().flat_map(|r| r.steps.iter_mut()) {
            if let StepStatus::Running { run } = step.status {
                if let Some(agent) = task.info.agents.iter().find(|a| a.agent == step.agent) {
                    running.push((agent.canister, run));
                }
                step.status = StepStatus::Skipped {
                    reason: "the task ended while the run was going".into(),
                };
            }
        }
        let reason_for_rest = match &status {
            TaskStatus::Cancelled => "the task was cancelled".to_string(),
            TaskStatus::Failed { .. } => "the task failed".to_string(),
            _ => "the task ended".to_string(),
        };
        for step in task.info.rounds.iter_mut().flat_map(|r| r.steps.iter_mut()) {
            if matches!(step.status, StepStatus::Pending | StepStatus::Dispatching) {
                step.status = StepStatus::Skipped {
                    reason: reason_for_rest.clone(),
                };
            }
        }
        task.info.tokens_used = tokens_used(&task);
        let result = plan::aggregate(&task.info);
        task.info.result = (!result.is_empty()).then_some(result);
        task.info.stop_reason = Some(match (&status, why) {
            (_, Some(why)) => why,
            (TaskStatus::Failed { reason }, None) => reason.clone(),
            (TaskStatus::Cancelled, None) => "cancelled by its owner".into(),
            _ => "ended".into(),
        });
        let message = match &status {
            TaskStatus::Completed => format!(
                "task {} completed: {} tokens used",
                task.info.id, task.info.tokens_used
            ),
            TaskStatus::Failed { reason } => format!("task {} failed: {reason}", task.info.id),
            _ => format!("task {} was cancelled", task.info.id),
        };
        daily::bump(s, now, |d| match &status {
            TaskStatus::Completed => d.tasks_completed += 1,
            TaskStatus::Failed { .. } => d.tasks_failed += 1,
            _ => d.tasks_cancelled += 1,
        });
        task.info.status = status;
        task.info.finished_at_nanos = Some(now);
        task.info.updated_at_nanos = now;
        alerts::push(
            s,
            task.info.owner,
            TaskAlertKind::TaskFinished,
            message,
            About {
                task: Some(task.info.id),
                ..About::default()
            },
            now,
        );
        s.put_task(task);
        running
    })
}

/// Releases what is left of an ended task's reservation (exactly once), then tells the
/// owner if the month's tokens are nearly used.
pub async fn settle(id: u64) {
    let Some(task) = read_state(|s| s.task(id)) else {
        return;
    };
    if !task.info.status.is_final() || task.info.reservation_released {
        return;
    }
    if let Some(reservation) = task.info.reservation {
        match ohms_ops::calls::release(reservation).await {
            // Already released (a lost reply) or expired: either way it holds nothing now.
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(err) => {
                ic_cdk::println!("task {id}: reservation {reservation} not released yet: {err}");
                return;
            }
        }
    }
    update_task(id, |t| t.info.reservation_released = true);
    quota_check(task.info.owner).await;
}

/// Left of the month's tokens under which the owner is told (one alert a day at most).
const QUOTA_ALERT_FRACTION: f64 = 0.1;

async fn quota_check(owner: Principal) {
    let now = now();
    let recent = read_state(|s| {
        alerts::latest_of(s, owner, &TaskAlertKind::QuotaNearlyUsed)
            .is_some_and(|a| now.saturating_sub(a.at_nanos) < ohms_types::calendar::NANOS_PER_DAY)
    });
    if recent {
        return;
    }
    let Ok(economics) = ohms_ops::calls::sibling("economics") else {
        return;
    };
    let probe = ohms_types::Action::Inference {
        estimated_tokens: 0,
    };
    let Ok(Decision::Allow { limits }) =
        ohms_ops::calls::call::<_, Decision>(economics, "authorize", (owner, probe)).await
    else {
        return;
    };
    let Ok(tiers) =
        ohms_ops::calls::raw::<_, (Vec<TierConfig>,)>(economics, "list_tiers", ()).await
    else {
        return;
    };
    let Some(tier) = tiers.0.iter().find(|t| t.tier == limits.tier) else {
        return;
    };
    if (limits.tokens_left as f64) < QUOTA_ALERT_FRACTION * tier.tokens_per_month as f64 {
        let Limits { tokens_left, .. } = limits;
        mutate_state(|s| {
            alerts::push(
                s,
                owner,
                TaskAlertKind::QuotaNearlyUsed,
                format!(
                    "{tokens_left} of this month's {} tokens are left",
                    tier.tokens_per_month
                ),
                About::default(),
                now,
            )
        });
    }
}

/// Stops runs at their agent canisters (best effort: a run left going commits its own usage).
pub async fn cancel_runs(runs: Vec<(Principal, u64)>) {
    let replies = join_all(runs.iter().map(|(canister, run)| {
        ohms_ops::calls::call::<_, RunInfo>(*canister, "cancel_run", (*run,))
    }))
    .await;
    for ((canister, run), reply) in runs.iter().zip(replies) {
        if let Err(err) = reply {
            ic_cdk::println!("run {run} at {canister} not cancelled: {err}");
        }
    }
}
