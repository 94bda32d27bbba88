//! Tasks as their owners see them: submit (checks, agents, the budget reserved with
//! economics before anything starts), read, list, cancel.

use std::cell::Cell;

use candid::Principal;
use ohms_ops::{Env, UserUpdate};
use ohms_types::{
    Action, AgentSelection, DEFAULT_TASK_ROUNDS, Error, MAX_TASK_BUDGET_TOKENS,
    MAX_TASK_INSTRUCTIONS_BYTES, MAX_TASK_ROUNDS, Page, Paged, StepStatus, SubmitTaskArgs, TaskId,
    TaskInfo, TaskRound, TaskStatus, TaskStep,
};

use crate::state::{AgentBrief, TaskRecord, mutate_state, read_state};
use crate::{daily, engine, plan, routing, tokens};

/// Tasks per `list_tasks` page: a task carries every round's outputs (up to 4 rounds of 8
/// answers of 2,048 tokens), and a reply stays under 2 MiB.
const MAX_TASKS_PER_PAGE: u32 = 5;
/// Tasks kept per user: the oldest ended ones go first when a new one is submitted.
pub const MAX_TASKS_PER_USER: usize = 100;

thread_local! {
    /// `submit_task` calls between their reservation request and their task's record.
    static SUBMITTING: Cell<u32> = const { Cell::new(0) };
}

/// Counts a submission in flight while it lives (dropped also when a callback traps).
struct Submitting;

impl Submitting {
    fn begin() -> Self {
        SUBMITTING.set(SUBMITTING.get() + 1);
        Self
    }
}

impl Drop for Submitting {
    fn drop(&mut self) {
        SUBMITTING.set(SUBMITTING.get().saturating_sub(1));
    }
}

/// Whether a submission may hold a reservation not recorded yet.
pub fn submitting() -> bool {
    SUBMITTING.get() > 0
}

/// Checks that cost nothing, before any call.
fn check(args: &SubmitTaskArgs) -> Result<u8, Error> {
    let instructions = args.instructions.trim();
    if instructions.is_empty() {
        return Err(Error::invalid_argument("instructions", "is empty"));
    }
    if args.instructions.len() > MAX_TASK_INSTRUCTIONS_BYTES {
        return Err(Error::invalid_argument(
            "instructions",
            format!(
                "{} bytes; at most {MAX_TASK_INSTRUCTIONS_BYTES} are accepted",
                args.instructions.len()
            ),
        ));
    }
    if args.budget_tokens == 0 || args.budget_tokens > MAX_TASK_BUDGET_TOKENS {
        return Err(Error::invalid_argument(
            "budget_tokens",
            format!("must be 1 to {MAX_TASK_BUDGET_TOKENS}"),
        ));
    }
    let rounds = args.rounds.unwrap_or(DEFAULT_TASK_ROUNDS);
    if rounds == 0 || rounds > MAX_TASK_ROUNDS {
        return Err(Error::invalid_argument(
            "rounds",
            format!("must be 1 to {MAX_TASK_ROUNDS}"),
        ));
    }
    if let AgentSelection::Agents(ids) = &args.agents {
        routing::check_named(ids)?;
    }
    Ok(rounds)
}

/// Submits a task: its agents chosen, its first prompt checked against each model's context,
/// its budget reserved with economics (a denial starts nothing); then the engine runs it.
pub async fn submit(call: UserUpdate, args: SubmitTaskArgs) -> Result<TaskInfo, Error> {
    let owner = call.caller();
    let rounds = check(&args)?;
    let _lock = call.lock()?;
    make_room(owner)?;
    let (canister, agents) = routing::owner_agents(owner).await?;
    let (wanted, count) = match &args.agents {
        AgentSelection::Auto => routing::analyze(&args.instructions).await?,
        AgentSelection::Agents(_) => (Vec::new(), 0),
    };
    let (task_agents, infos, routing) =
        routing::select(&args.agents, canister, agents, owner, &wanted, count)?;
    // Every round's prompt must fit each model's context without the blackboard (which is
    // trimmed to what fits): otherwise the task is refused now, before anything is reserved.
    let stages = plan::round_stages(rounds);
    for info in &infos {
        let model = tokens::model_text(&info.model).await?;
        for stage in &stages {
            let bare = plan::compose(&args.instructions, &[], &plan::ask(stage, &info.role));
            let needed =
                model.count(&info.system_prompt, &bare) as u32 + plan::MIN_ANSWER_TOKENS + 1;
            if needed > model.context {
                return Err(Error::invalid_argument(
                    "instructions",
                    format!(
                        "the {stage} round's prompt needs {needed} tokens with {}'s system prompt and a minimal answer; its model {} reads at most {}: shorten the instructions",
                        info.role, info.model, model.context
                    ),
                ));
            }
        }
    }
    // From here until the task is recorded economics may hold a reservation this canister
    // does not know of yet: the orphan sweep waits (see `maintenance::release_orphans`).
    let _submitting = Submitting::begin();
    let reservation = ohms_ops::calls::reserve(
        owner,
        Action::SubmitTask {
            budget_tokens: args.budget_tokens,
        },
    )
    .await?;
    let now = call.env().now_nanos();
    let task = mutate_state(|s| {
        let id = s.update_config(|c| {
            c.next_task_id += 1;
            c.next_task_id - 1
        });
        let rounds = stages
            .iter()
            .enumerate()
            .map(|(i, stage)| TaskRound {
                index: i as u32,
                stage: stage.to_string(),
                steps: task_agents
                    .iter()
                    .map(|a| TaskStep {
                        agent: a.agent,
                        role: a.role.clone(),
                        status: StepStatus::Pending,
                        output: String::new(),
                        run: None,
                        prompt_tokens: 0,
                        blackboard_entries: 0,
                        blackboard_trimmed: 0,
                        max_tokens: 0,
                        tokens_in: 0,
                        tokens_out: 0,
                        instructions: 0,
                        messages: 0,
                        attempts: 0,
                        last_error: None,
                        dispatched_at_nanos: None,
                        finished_at_nanos: None,
                    })
                    .collect(),
                started_at_nanos: None,
                finished_at_nanos: None,
            })
            .collect();
        let task = TaskRecord {
            info: TaskInfo {
                id: TaskId(id),
                owner,
                instructions: args.instructions.clone(),
                status: TaskStatus::Running,
                agents: task_agents.clone(),
                routing,
                rounds,
                current_round: 0,
                budget_tokens: args.budget_tokens,
                tokens_used: 0,
                reservation: Some(reservation.id),
                reservation_released: false,
                result: None,
                stop_reason: None,
                agent_calls: 0,
                engine_messages: 0,
                created_at_nanos: now,
                updated_at_nanos: now,
                finished_at_nanos: None,
            },
            briefs: infos
                .iter()
                .map(|a| AgentBrief {
                    system_prompt: a.system_prompt.clone(),
                    temperature: a.params.temperature,
                    top_p: a.params.top_p,
                    max_tokens: a.params.max_tokens,
                })
                .collect(),
            deadline_nanos: reservation.expires_at,
            tokens_left_at_submit: reservation.limits.tokens_left,
        };
        s.active.insert(id, ());
        s.put_task(task.clone());
        s.owner_tasks.insert((owner, id), ());
        daily::bump(s, now, |d| d.tasks_submitted += 1);
        daily::active(s, now, owner);
        task
    });
    engine::wake();
    Ok(task.info)
}

/// The task, for its owner or an administrator; anyone else is told it does not exist.
fn readable(env: &impl Env, id: TaskId) -> Result<TaskRecord, Error> {
    let caller = ohms_ops::access::user(env)?;
    let task = read_state(|s| s.task(id.0)).ok_or_else(|| Error::not_found("task", id))?;
    if task.info.owner == caller || ohms_ops::access::is_admin(env, &caller) {
        Ok(task)
    } else {
        Err(Error::not_found("task", id))
    }
}

pub fn get(env: &impl Env, id: TaskId) -> Result<TaskInfo, Error> {
    readable(env, id).map(|t| t.info)
}

/// The caller's tasks, newest first.
pub fn list(env: &impl Env, page: Page) -> Result<Paged<TaskInfo>, Error> {
    let caller = ohms_ops::access::user(env)?;
    let page = Page {
        limit: page.limit.min(MAX_TASKS_PER_PAGE),
        ..page
    };
    Ok(read_state(|s| {
        let total = s
            .owner_tasks
            .range((caller, 0)..=(caller, u64::MAX))
            .count() as u64;
        let range = page.range(total);
        let items = s
            .owner_tasks
            .range((caller, 0)..=(caller, u64::MAX))
            .rev()
            .skip(range.start as usize)
            .take((range.end - range.start) as usize)
            .filter_map(|e| s.task(e.key().1).map(|t| t.info))
            .collect();
        Paged::new(items, range, total)
    }))
}

/// Stops the task: no further rounds, runs in flight cancelled at their agents, and the
/// reservation's unused remainder released. Its owner only.
pub async fn cancel(call: UserUpdate, id: TaskId) -> Result<TaskInfo, Error> {
    let task = read_state(|s| s.task(id.0))
        .filter(|t| t.info.owner == call.caller())
        .ok_or_else(|| Error::not_found("task", id))?;
    if task.info.status.is_final() {
        return Err(Error::invalid_state(format!(
            "task {id} has ended already ({:?})",
            task.info.status
        )));
    }
    let running = engine::finish(id.0, TaskStatus::Cancelled, None);
    engine::cancel_runs(running).await;
    engine::settle(id.0).await;
    get(call.env(), id)
}

/// Keeps the owner's stored tasks under `MAX_TASKS_PER_USER`: drops their oldest ended and
/// settled tasks; refused when every kept task is still running.
fn make_room(owner: Principal) -> Result<(), Error> {
    mutate_state(|s| {
        let ids: Vec<u64> = s
            .owner_tasks
            .range((owner, 0)..=(owner, u64::MAX))
            .map(|e| e.key().1)
            .collect();
        if ids.len() < MAX_TASKS_PER_USER {
            return Ok(());
        }
        let excess = ids.len() + 1 - MAX_TASKS_PER_USER;
        let old: Vec<u64> = ids
            .into_iter()
            .filter(|id| !s.active.contains_key(id))
            .take(excess)
            .collect();
        if old.len() < excess {
            return Err(Error::QuotaExceeded {
                quota: "tasks running or settling".into(),
                limit: MAX_TASKS_PER_USER as u64,
            });
        }
        for id in old {
            s.tasks.remove(&id);
            s.owner_tasks.remove(&(owner, id));
        }
        Ok(())
    })
}
