//! Runs: a prompt to one agent, generated across as many messages as it needs.
//!
//! `start` checks the request (cheap checks first), reserves the tokens with economics (a
//! denial starts nothing) and queues the run. A `request_id` makes it idempotent: a caller's
//! retry with the same key gets the run the first call started, and nothing is reserved
//! twice. A timer works the queue one message at a time: runs go in order, one after the
//! other, so the model's KV cache is never shared by two runs in flight; each message
//! generates until its instruction budget is spent and saves the generation (sampler state
//! included), so the next message — or the first after an upgrade, which re-reads the
//! sequence into a fresh cache — continues exactly where it stopped.
//! Finished runs commit their usage to economics once; a failed commit is retried.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

use candid::Principal;
use ohms_llm::Sampler;
use ohms_llm::generate::{Generation, StopReason};
use ohms_ops::Env;
use ohms_types::{
    Action, AgentId, AgentInfo, AgentStatus, Error, Exchange, MAX_PROMPT_BYTES, MEMORY_EXCHANGES,
    ModelLoadState, Page, Paged, RunArgs, RunInfo, RunStatus, UsageReport,
};

use crate::access;
use crate::models;
use crate::state::{
    MAX_REQUEST_ID_BYTES, RequestId, RequestKey, RunRecord, mutate_state, read_state,
};
use ohms_ops::paging::Order;

/// How long a settled-but-uncommitted run waits before its commit is retried.
const SETTLE_RETRY: Duration = Duration::from_secs(10);
/// How often the watchdog makes sure the worker runs.
const WATCHDOG_INTERVAL: Duration = Duration::from_secs(30);
/// Generation messages a run may start without finishing one before it is failed.
const MAX_ATTEMPTS: u32 = 3;
/// Runs per `list_runs` page: 20 runs of 2,048 tokens and their text stay far below the 2 MiB
/// reply limit.
const MAX_RUNS_PER_PAGE: u32 = 20;
/// A generation message scheduled this long ago without clearing its mark has trapped (a timer
/// of delay zero runs within a round).
const GENERATION_STALE_NANOS: u64 = 20_000_000_000;
/// Tokens a chat template adds around the system prompt and the user's turn, at most.
const CHAT_TEMPLATE_TOKENS: usize = 32;

thread_local! {
    /// Whether the worker timer is armed.
    static WORKER_ARMED: Cell<bool> = const { Cell::new(false) };
    /// When the pending generation message was scheduled: one at a time. Set by `work`, cleared
    /// by the generation message itself; if that message traps, the clearing is rolled back
    /// and `work` treats the message as failed once it is older than `GENERATION_STALE`.
    static GENERATION_PENDING: Cell<Option<u64>> = const { Cell::new(None) };
    /// Runs whose usage is being committed (one commit in flight per run).
    static SETTLING: RefCell<BTreeSet<u64>> = RefCell::default();
    /// Idempotency keys of runs being started: between their checks and their record.
    static STARTING: RefCell<BTreeSet<RequestKey>> = RefCell::default();
}

/// Marks an idempotency key as starting until dropped: at the end of `start`, or by ic-cdk's
/// cleanup when a callback of its awaits traps. On the heap on purpose: an upgrade, which
/// waits for no call in flight, starts with none.
struct Starting(RequestKey);

impl Starting {
    /// Marks `key`, or `Busy` while another start of it is in flight.
    fn begin(key: RequestKey) -> Result<Self, Error> {
        if STARTING.with(|s| s.borrow_mut().insert(key.clone())) {
            Ok(Self(key))
        } else {
            Err(Error::Busy)
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        STARTING.with(|s| s.borrow_mut().remove(&self.0));
    }
}

/// A valid idempotency key: 1 to `MAX_REQUEST_ID_BYTES` bytes, no control characters.
fn check_request_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID_BYTES {
        return Err(Error::invalid_argument(
            "request_id",
            format!(
                "{} bytes; 1 to {MAX_REQUEST_ID_BYTES} are accepted",
                id.len()
            ),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid_argument(
            "request_id",
            "contains a control character",
        ));
    }
    Ok(())
}

/// What a start's idempotency key says.
enum Request {
    /// The caller started this run with the key before.
    Known(RunInfo),
    /// A new start, its key (if any) marked as starting.
    New(Option<Starting>),
}

/// Looks `caller`'s `request_id` up: the run it started, or a new start (`Busy` while another
/// start with the key is in flight).
fn request(caller: Principal, request_id: Option<&String>) -> Result<Request, Error> {
    let Some(id) = request_id else {
        return Ok(Request::New(None));
    };
    check_request_id(id)?;
    let key = (caller, RequestId(id.clone()));
    if let Some(run) = read_state(|s| s.run_of_request(&key)) {
        return Ok(Request::Known(run.info));
    }
    Ok(Request::New(Some(Starting::begin(key)?)))
}

/// Starts a run: checks, reserves, queues. Returns the run as queued — or, for an idempotency
/// key the caller used before, the run it started.
pub async fn start(env: &(impl Env + Clone), args: RunArgs) -> Result<RunInfo, Error> {
    ohms_ops::UserUpdate::check(env.clone())?;
    let role = access::role(env)?;
    // Only the coordinator spends a task's budget: it sized the run to fit it. An owner
    // drawing on it directly would skip the hourly rate.
    if args.task_reservation.is_some() && role != access::Role::Coordinator {
        return Err(Error::not_authorized(
            "only the coordinator runs an agent on a task's budget",
        ));
    }
    let owner = access::owner()?;
    // Held until the run is recorded: a second start with this key meanwhile is `Busy`.
    let starting = match request(env.caller(), args.request_id.as_ref())? {
        Request::Known(run) => return Ok(run),
        Request::New(starting) => starting,
    };
    if args.prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::invalid_argument(
            "prompt",
            format!(
                "{} bytes; at most {MAX_PROMPT_BYTES} bytes are accepted",
                args.prompt.len()
            ),
        ));
    }
    if args.prompt.trim().is_empty() {
        return Err(Error::invalid_argument("prompt", "is empty"));
    }
    let agent = read_state(|s| s.agent(args.agent.0))
        .ok_or_else(|| Error::not_found("agent", args.agent))?;
    if agent.status == AgentStatus::Paused {
        return Err(Error::invalid_state(format!(
            "agent {} is paused: resume it first",
            agent.id
        )));
    }
    let params = args.params.clone().unwrap_or_else(|| agent.params.clone());
    params.validate()?;
    // With the model at hand, a prompt that cannot fit its context is refused now.
    let prompt_tokens = prompt_fits(&agent, &args.prompt)?;
    // Without the model at hand, bytes bound the tokens (each token is at least one byte):
    // the prompt, the system prompt and the chat template's markers.
    let estimated = prompt_tokens
        .unwrap_or((args.prompt.len() + agent.system_prompt.len() + CHAT_TEMPLATE_TOKENS) as u64)
        + u64::from(params.max_tokens);
    // A coordinator task's run draws on the task's budget.
    let action = match args.task_reservation {
        Some(task_reservation) => Action::TaskInference {
            task_reservation,
            estimated_tokens: estimated,
        },
        None => Action::Inference {
            estimated_tokens: estimated,
        },
    };
    let reservation = ohms_ops::calls::reserve(owner, action).await?;
    let seed = match args.seed {
        Some(seed) => seed,
        None => random_seed().await,
    };
    let now = env.now_nanos();
    // The agent may have been paused or deleted during the awaits: read it again.
    let still_active =
        read_state(|s| s.agent(agent.id.0)).is_some_and(|a| a.status == AgentStatus::Active);
    if !still_active {
        if let Err(err) = ohms_ops::calls::release(reservation.id).await {
            ic_cdk::println!(
                "run refused: reservation {} not released: {err}",
                reservation.id
            );
        }
        return Err(Error::invalid_state(format!(
            "agent {} was paused or deleted meanwhile",
            agent.id
        )));
    }
    let first_status = if models::state(&agent.model) == Some(ModelLoadState::Ready) {
        RunStatus::Queued
    } else {
        RunStatus::LoadingModel
    };
    let run = mutate_state(|s| {
        let id = s.update_config(|c| {
            c.next_run_id += 1;
            c.next_run_id - 1
        });
        let run = RunRecord {
            info: RunInfo {
                id,
                agent: agent.id,
                model: agent.model.clone(),
                status: first_status,
                text: String::new(),
                tokens: Vec::new(),
                tokens_in: 0,
                tokens_out: 0,
                instructions: 0,
                messages: 0,
                seed,
                stop_reason: None,
                usage_committed: false,
                started_at_nanos: now,
                finished_at_nanos: None,
            },
            prompt: args.prompt,
            params,
            reservation: Some(reservation.id),
            generation: None,
            attempts: 0,
            commit_unknown: false,
            settle_error: None,
            request: starting.as_ref().map(|s| s.0.clone()),
        };
        s.put_run(run.clone());
        if let Some(key) = &run.request {
            s.requests.insert(key.clone(), id);
        }
        s.queue.insert(id, ());
        if let Some(mut agent) = s.agent(agent.id.0) {
            agent.stats.runs += 1;
            s.agents.insert(agent.id.0, ohms_ops::Cbor(agent));
        }
        crate::state::prune_runs(s);
        run
    });
    drop(starting);
    models::ensure(&run.info.model);
    wake();
    Ok(run.info)
}

/// The prompt's token count when the heap holds the decoded model already (nothing expensive
/// happens before economics allowed the run); an error when it cannot fit the context.
fn prompt_fits(agent: &AgentInfo, prompt: &str) -> Result<Option<u64>, Error> {
    let counted = models::with_decoded(&agent.model, |w| {
        let context = w.llm.config().context_length;
        // Each token covers at most `max_token_bytes` of the text: a lower bound, for free.
        let at_least = prompt.len().div_ceil(w.max_token_bytes);
        if at_least >= context {
            return (at_least, context);
        }
        let tokens = w.tokenizer.encode_instruction(&agent.system_prompt, prompt);
        (tokens.len(), context)
    });
    let Some((tokens, context)) = counted else {
        return Ok(None);
    };
    if tokens >= context {
        return Err(Error::invalid_argument(
            "prompt",
            format!(
                "at least {tokens} tokens; the model {} reads at most {context} (its context), answer included",
                agent.model
            ),
        ));
    }
    Ok(Some(tokens as u64))
}

async fn random_seed() -> u64 {
    match ic_cdk_management_canister::raw_rand().await {
        Ok(bytes) if bytes.len() >= 8 => {
            u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
        }
        // The time is a poor seed, but sampling must not fail for want of randomness.
        _ => ic_cdk::api::time(),
    }
}

/// Arms the worker for the next round, once.
pub fn wake() {
    if WORKER_ARMED.with(|a| a.replace(true)) {
        return;
    }
    ic_cdk_timers::set_timer(Duration::ZERO, async {
        WORKER_ARMED.with(|a| a.set(false));
        work();
    });
}

/// A trap rolls back the message that set the worker's flag: the watchdog clears it, so one
/// trapping message never stops the queue.
pub fn arm_watchdog() {
    ic_cdk_timers::set_timer_interval(WATCHDOG_INTERVAL, || async {
        WORKER_ARMED.with(|a| a.set(false));
        wake();
    });
}

/// One message of bookkeeping: settles finished runs, and hands the first unfinished run whose
/// model is ready to a message of its own. The attempt is counted here, in this message, so a
/// generation message that traps is counted too and a run that keeps trapping is failed.
fn work() {
    let now = ic_cdk::api::time();
    let generating = GENERATION_PENDING
        .with(Cell::get)
        .is_some_and(|at| now.saturating_sub(at) < GENERATION_STALE_NANOS);
    let queued: Vec<u64> = read_state(|s| s.queue.iter().map(|e| *e.key()).collect());
    for id in queued {
        let Some(run) = read_state(|s| s.run(id)) else {
            mutate_state(|s| s.queue.remove(&id));
            continue;
        };
        if run.info.status.is_final() {
            if !run.info.usage_committed {
                settle(id);
            }
            continue;
        }
        match models::state(&run.info.model) {
            Some(ModelLoadState::Ready) => {}
            Some(ModelLoadState::Failed { reason }) => {
                finish(
                    id,
                    RunStatus::Failed {
                        reason: format!("model {} could not be loaded: {reason}", run.info.model),
                    },
                    None,
                );
                continue;
            }
            _ => {
                models::ensure(&run.info.model);
                set_status(id, RunStatus::LoadingModel);
                continue;
            }
        }
        // A paused agent's runs wait for it to be resumed.
        if read_state(|s| s.agent(run.info.agent.0))
            .is_some_and(|a| a.status == AgentStatus::Paused)
        {
            continue;
        }
        if run.attempts >= MAX_ATTEMPTS {
            finish(
                id,
                RunStatus::Failed {
                    reason: format!(
                        "generation stopped {MAX_ATTEMPTS} times without finishing a message (out of instructions or memory)"
                    ),
                },
                None,
            );
            continue;
        }
        if generating {
            // The next generation message is on its way; it wakes the worker when done.
            return;
        }
        mutate_state(|s| {
            if let Some(mut run) = s.run(id) {
                run.attempts += 1;
                s.put_run(run);
            }
        });
        GENERATION_PENDING.with(|p| p.set(Some(now)));
        ic_cdk_timers::set_timer(Duration::ZERO, async move {
            GENERATION_PENDING.with(|p| p.set(None));
            if let Some(run) = read_state(|s| s.run(id))
                && !run.info.status.is_final()
            {
                generate(run);
            }
            wake();
        });
        return;
    }
}

fn set_status(id: u64, status: RunStatus) {
    mutate_state(|s| {
        if let Some(mut run) = s.run(id)
            && run.info.status != status
        {
            run.info.status = status;
            s.put_run(run);
        }
    });
}

/// Generates for one run until the message's budget is spent or the run ends.
fn generate(mut run: RunRecord) {
    let budget = read_state(|s| s.config().instructions_per_message);
    let start = ic_cdk::api::performance_counter(0);
    let agent = read_state(|s| s.agent(run.info.agent.0));
    let Some(agent) = agent else {
        finish(
            run.info.id,
            RunStatus::Failed {
                reason: "the agent was deleted".into(),
            },
            None,
        );
        return;
    };
    let mut generated_instructions = 0;
    let outcome = models::with_working(&run.info.model, |w| -> Result<(), String> {
        // The model's decoding (after an upgrade) is the canister's cost, not the run's.
        let begin = ic_cdk::api::performance_counter(0);
        let mut generation = match w.live.take() {
            Some((id, live)) if id == run.info.id => live,
            _ => match run.generation.take() {
                // Continued after an upgrade or another run: re-read into the cache.
                Some(mut saved) => {
                    saved.invalidate();
                    saved
                }
                None => {
                    let prompt = w
                        .tokenizer
                        .encode_instruction(&agent.system_prompt, &run.prompt);
                    let context = w.llm.config().context_length;
                    if prompt.len() >= context {
                        return Err(format!(
                            "the prompt is {} tokens; the model reads at most {context}",
                            prompt.len()
                        ));
                    }
                    let sampler = Sampler::for_params(
                        run.params.temperature,
                        run.params.top_p,
                        run.info.seed,
                    );
                    run.info.tokens_in = prompt.len() as u64;
                    Generation::new(
                        prompt,
                        run.params.max_tokens,
                        w.tokenizer.stop_tokens(),
                        sampler,
                    )
                }
            },
        };
        // Fill the message: step while the next step, estimated as half again the largest
        // so far (a prompt token skips the output projection and sampling that a generated
        // one pays; steps grow slowly with the context), still ends within the budget.
        let mut largest_step = 0u64;
        while !generation.is_finished() {
            let before = ic_cdk::api::performance_counter(0);
            let next = largest_step.saturating_add(largest_step / 2);
            if before.saturating_sub(start).saturating_add(next) >= budget {
                break;
            }
            if let Err(err) = generation.step(&mut w.llm) {
                return Err(format!("inference failed: {err}"));
            }
            let step = ic_cdk::api::performance_counter(0).saturating_sub(before);
            largest_step = largest_step.max(step);
        }
        run.info.tokens = generation.generated().to_vec();
        run.info.tokens_out = run.info.tokens.len() as u64;
        run.info.text = w.tokenizer.decode(generation.generated());
        run.generation = Some(generation.clone());
        w.live = Some((run.info.id, generation));
        generated_instructions = ic_cdk::api::performance_counter(0).saturating_sub(begin);
        Ok(())
    });
    run.info.messages += 1;
    run.info.instructions += generated_instructions;
    run.attempts = 0;
    let id = run.info.id;
    let outcome = outcome.map_err(|err| err.to_string()).and_then(|r| r);
    match outcome {
        Err(reason) => {
            mutate_state(|s| s.put_run(run));
            finish(id, RunStatus::Failed { reason }, None);
        }
        Ok(()) => {
            let stop = run.generation.as_ref().and_then(Generation::outcome);
            run.info.status = RunStatus::Generating;
            mutate_state(|s| s.put_run(run));
            if let Some(stop) = stop {
                finish(id, RunStatus::Completed, Some(stop));
            }
        }
    }
}

/// Ends a run: final status, the agent's statistics and memory; then settles its usage.
fn finish(id: u64, status: RunStatus, stop: Option<StopReason>) {
    let now = ic_cdk::api::time();
    mutate_state(|s| {
        let Some(mut run) = s.run(id) else {
            return;
        };
        if run.info.status.is_final() {
            return;
        }
        run.info.stop_reason = stop.map(|r| {
            match r {
                StopReason::StopToken => "stop token",
                StopReason::MaxTokens => "max tokens",
                StopReason::ContextFull => "context full",
            }
            .to_string()
        });
        run.info.finished_at_nanos = Some(now);
        if let Some(mut agent) = s.agent(run.info.agent.0) {
            agent.stats.tokens_in += run.info.tokens_in;
            agent.stats.tokens_out += run.info.tokens_out;
            agent.stats.instructions += run.info.instructions;
            match &status {
                RunStatus::Completed => {
                    agent.stats.completed += 1;
                    agent.memory.push(Exchange {
                        run: id,
                        prompt: truncate(&run.prompt, 512),
                        answer: truncate(&run.info.text, 1024),
                        at_nanos: now,
                    });
                    let excess = agent.memory.len().saturating_sub(MEMORY_EXCHANGES);
                    agent.memory.drain(..excess);
                }
                RunStatus::Failed { .. } => agent.stats.failures += 1,
                _ => {}
            }
            s.agents.insert(agent.id.0, ohms_ops::Cbor(agent));
        }
        run.info.status = status;
        run.generation = None;
        s.put_run(run);
    });
    settle(id);
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Commits a finished run's usage to economics once (or releases the reservation when nothing
/// was used). A commit whose reply was lost is retried; see `ohms_ops::calls::settle_usage` for
/// how a retry, or an expired reservation, still counts the usage exactly once. A refusal that
/// retrying cannot change is recorded on the run, which leaves the queue.
fn settle(id: u64) {
    if !SETTLING.with(|s| s.borrow_mut().insert(id)) {
        return;
    }
    ic_cdk::futures::spawn(async move {
        // Removes the run from the in-flight set however this task ends (a trap included).
        struct InFlight(u64);
        impl Drop for InFlight {
            fn drop(&mut self) {
                SETTLING.with(|s| s.borrow_mut().remove(&self.0));
            }
        }
        let _in_flight = InFlight(id);
        let Some(run) = read_state(|s| s.run(id)) else {
            return;
        };
        if run.info.usage_committed {
            return;
        }
        let Ok(owner) = access::owner() else {
            return;
        };
        let outcome = match run.reservation {
            None => Ok(()),
            Some(reservation) if run.info.tokens_in + run.info.tokens_out == 0 => {
                match ohms_ops::calls::release(reservation).await {
                    Err(Error::NotFound { .. }) => Ok(()),
                    other => other,
                }
            }
            Some(reservation) => {
                let usage = UsageReport {
                    tokens_in: run.info.tokens_in,
                    tokens_out: run.info.tokens_out,
                    agents_created: 0,
                    model: Some(run.info.model.clone()),
                    agent: Some(run.info.agent.to_string()),
                };
                ohms_ops::calls::settle_usage(owner, reservation, usage, run.commit_unknown).await
            }
        };
        mutate_state(|s| {
            let Some(mut run) = s.run(id) else {
                return;
            };
            match &outcome {
                Ok(()) => {
                    run.info.usage_committed = true;
                    s.queue.remove(&id);
                }
                Err(Error::CallFailed { .. }) => run.commit_unknown = true,
                Err(err) => {
                    run.settle_error = Some(err.to_string());
                    s.queue.remove(&id);
                }
            }
            s.put_run(run);
        });
        match outcome {
            Err(Error::CallFailed { reason, .. }) => {
                ic_cdk::println!("run {id}: usage not committed yet: {reason}");
                ic_cdk_timers::set_timer(SETTLE_RETRY, async { wake() });
            }
            // The repository's per-model counter is informational (economics meters the
            // tokens): told once, a failure is not retried.
            Ok(()) if run.info.tokens_in + run.info.tokens_out > 0 => {
                if let Ok(repo) = ohms_ops::calls::sibling("model_repo") {
                    let tokens = run.info.tokens_in + run.info.tokens_out;
                    let told = ohms_ops::calls::call::<_, ()>(
                        repo,
                        "record_usage",
                        (run.info.model.clone(), tokens),
                    )
                    .await;
                    if let Err(err) = told {
                        ic_cdk::println!("run {id}: the repository's usage count missed it: {err}");
                    }
                }
            }
            _ => {}
        }
    });
}

/// A run, for whoever may call the canister.
pub fn get(env: &impl Env, id: u64) -> Result<RunInfo, Error> {
    access::role(env)?;
    read_state(|s| s.run(id))
        .map(|r| r.info)
        .ok_or_else(|| Error::not_found("run", id))
}

/// Runs, newest first; at most `MAX_RUNS_PER_PAGE` (a run carries its text and tokens).
pub fn list(env: &impl Env, page: Page) -> Result<Paged<RunInfo>, Error> {
    access::role(env)?;
    let page = Page {
        limit: page.limit.min(MAX_RUNS_PER_PAGE),
        ..page
    };
    Ok(read_state(|s| {
        ohms_ops::paging::page_values(&s.runs, page, Order::Descending, |r| r.0.info)
    }))
}

/// Stops a run; the tokens it used so far are committed.
pub fn cancel(env: &impl Env, id: u64) -> Result<RunInfo, Error> {
    access::role(env)?;
    let run = read_state(|s| s.run(id)).ok_or_else(|| Error::not_found("run", id))?;
    if run.info.status.is_final() {
        return Err(Error::invalid_state(format!(
            "run {id} has ended already ({:?})",
            run.info.status
        )));
    }
    finish(id, RunStatus::Cancelled, None);
    get(env, id)
}

/// Runs of `agent` still in progress are cancelled when it is deleted.
pub fn cancel_agent_runs(agent: AgentId) {
    let active: Vec<u64> = read_state(|s| {
        s.queue
            .iter()
            .map(|e| *e.key())
            .filter(|id| {
                s.run(*id)
                    .is_some_and(|r| r.info.agent == agent && !r.info.status.is_final())
            })
            .collect()
    });
    for id in active {
        finish(id, RunStatus::Cancelled, None);
    }
}

/// Runs not yet settled.
pub fn active() -> u32 {
    read_state(|s| s.queue.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MAX_KEPT_RUNS;
    use ohms_ops::test_env::principal;
    use ohms_types::{GenerationParams, ModelId};

    fn record(id: u64, request: Option<RequestKey>) -> RunRecord {
        RunRecord {
            info: RunInfo {
                id,
                agent: AgentId(1),
                model: ModelId::parse("m", "model").unwrap(),
                status: RunStatus::Completed,
                text: String::new(),
                tokens: Vec::new(),
                tokens_in: 0,
                tokens_out: 0,
                instructions: 0,
                messages: 0,
                seed: 0,
                stop_reason: None,
                usage_committed: true,
                started_at_nanos: 0,
                finished_at_nanos: None,
            },
            prompt: "p".into(),
            params: GenerationParams::default(),
            reservation: None,
            generation: None,
            attempts: 0,
            commit_unknown: false,
            settle_error: None,
            request,
        }
    }

    fn key(caller: u8, id: &str) -> RequestKey {
        (principal(caller), RequestId(id.to_string()))
    }

    /// Records run `id` under `key` as `start` does.
    fn put(id: u64, key: Option<RequestKey>) {
        mutate_state(|s| {
            if let Some(key) = &key {
                s.requests.insert(key.clone(), id);
            }
            s.put_run(record(id, key));
        });
    }

    #[test]
    fn request_ids_are_bounded() {
        assert!(check_request_id("task-7/step-2").is_ok());
        assert!(check_request_id(&"é".repeat(32)).is_ok());
        for bad in [
            String::new(),
            "a".repeat(65),
            "a\nb".into(),
            "\u{7f}".into(),
        ] {
            assert!(
                matches!(check_request_id(&bad), Err(Error::InvalidArgument { field, .. }) if field == "request_id"),
                "{bad:?}"
            );
        }
        assert!(matches!(
            request(principal(7), Some(&String::new())),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn a_known_key_returns_its_run_and_a_key_in_flight_is_busy() {
        let id = "task-1".to_string();
        assert!(matches!(
            request(principal(7), None),
            Ok(Request::New(None))
        ));
        let Ok(Request::New(Some(starting))) = request(principal(7), Some(&id)) else {
            panic!("a new key starts a run");
        };
        assert!(matches!(request(principal(7), Some(&id)), Err(Error::Busy)));
        // Keys are per caller.
        assert!(matches!(
            request(principal(8), Some(&id)),
            Ok(Request::New(Some(_)))
        ));
        put(1, Some(key(7, "task-1")));
        drop(starting);
        assert!(matches!(
            request(principal(7), Some(&id)),
            Ok(Request::Known(run)) if run.id == 1
        ));
        // A start that ended without a run (refused, or trapped) leaves the key free.
        let retry = request(principal(8), Some(&id));
        assert!(matches!(retry, Ok(Request::New(Some(_)))));
    }

    #[test]
    fn pruning_a_run_forgets_its_key() {
        put(1, Some(key(7, "first")));
        put(2, Some(key(7, "second")));
        for id in 3..=MAX_KEPT_RUNS + 1 {
            put(id, None);
        }
        mutate_state(crate::state::prune_runs);
        read_state(|s| {
            assert_eq!(s.runs.len(), MAX_KEPT_RUNS);
            assert!(s.run(1).is_none());
            assert!(!s.requests.contains_key(&key(7, "first")));
            assert_eq!(s.requests.get(&key(7, "second")), Some(2));
        });
        assert!(matches!(
            request(principal(7), Some(&"first".to_string())),
            Ok(Request::New(Some(_)))
        ));
    }
}
