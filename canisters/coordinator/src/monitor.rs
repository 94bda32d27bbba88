//! The performance monitor: per agent and per model — runs, tokens, instructions, latency
//! (messages and seconds), failures — and the platform's figures for administrators.

use candid::Principal;
use ohms_ops::{Cbor, Env};
use ohms_types::calendar::{NANOS_PER_DAY, NANOS_PER_SECOND, day_label, day_of};
use ohms_types::{
    AgentPerformance, Error, ModelPerformance, Page, Paged, Performance, PlatformStats, StepStatus,
    TaskAgent, TaskAlertKind, TaskStep,
};

use crate::alerts::{self, ADMIN_FEED, About};
use crate::daily;
use crate::state::{State, read_state};

/// Failed runs within an hour that raise the administrators' failure-spike alert (when they
/// are also at least half of the hour's runs).
pub const SPIKE_FAILURES: u64 = 5;
const NANOS_PER_HOUR: u64 = 3_600 * NANOS_PER_SECOND;

fn add(p: &mut Performance, step: &TaskStep, seconds: f64) {
    p.runs += 1;
    match &step.status {
        StepStatus::Completed => p.completed += 1,
        StepStatus::Failed { reason } => {
            p.failures += 1;
            p.last_failure = Some(reason.clone());
        }
        _ => {}
    }
    p.tokens_in += step.tokens_in;
    p.tokens_out += step.tokens_out;
    p.instructions += step.instructions;
    p.messages += u64::from(step.messages);
    p.seconds_total += seconds;
}

/// Records a finished step (completed or failed) of `owner`'s agent.
pub fn record_step(s: &mut State, owner: Principal, agent: &TaskAgent, step: &TaskStep, now: u64) {
    let seconds = step
        .dispatched_at_nanos
        .map(|at| now.saturating_sub(at) as f64 / NANOS_PER_SECOND as f64)
        .unwrap_or_default();
    let key = (owner, agent.agent.0);
    let mut record = s
        .agent_perf
        .get(&key)
        .map(|p| p.0)
        .unwrap_or(AgentPerformance {
            agent: agent.agent,
            canister: agent.canister,
            role: agent.role.clone(),
            model: agent.model.clone(),
            performance: Performance::default(),
        });
    add(&mut record.performance, step, seconds);
    s.agent_perf.insert(key, Cbor(record));
    let model = agent.model.as_str().to_string();
    let mut record = s
        .model_perf
        .get(&model)
        .map(|p| p.0)
        .unwrap_or(ModelPerformance {
            model: agent.model.clone(),
            performance: Performance::default(),
        });
    add(&mut record.performance, step, seconds);
    // Every signed-in user reads the models' figures: a failure's text names someone's
    // agent canister, so it stays with the agent's owner.
    record.performance.last_failure = None;
    s.model_perf.insert(model, Cbor(record));

    let failed = matches!(step.status, StepStatus::Failed { .. });
    daily::bump(s, now, |d| {
        d.runs += 1;
        d.run_failures += u64::from(failed);
        d.tokens += step.tokens_in + step.tokens_out;
    });
    let hour = now / NANOS_PER_HOUR;
    let spike = s.update_config(|c| {
        if c.hour != hour {
            c.hour = hour;
            c.hour_runs = 0;
            c.hour_failures = 0;
            c.hour_spike_alerted = false;
        }
        c.hour_runs += 1;
        c.hour_failures += u64::from(failed);
        let spike = !c.hour_spike_alerted
            && c.hour_failures >= SPIKE_FAILURES
            && c.hour_failures * 2 >= c.hour_runs;
        c.hour_spike_alerted |= spike;
        spike.then_some((c.hour_failures, c.hour_runs))
    });
    if let Some((failures, runs)) = spike {
        alerts::push(
            s,
            ADMIN_FEED,
            TaskAlertKind::FailureSpike,
            format!("{failures} of {runs} agent runs failed this hour"),
            About::default(),
            now,
        );
    }
}

/// The caller's agents as the monitor measured them.
pub fn agent_performance(env: &impl Env, page: Page) -> Result<Paged<AgentPerformance>, Error> {
    let caller = ohms_ops::access::user(env)?;
    Ok(read_state(|s| {
        let items: Vec<AgentPerformance> = s
            .agent_perf
            .range((caller, 0)..=(caller, u64::MAX))
            .map(|e| e.value().0)
            .collect();
        page.slice(&items)
    }))
}

/// Every model the coordinator's tasks ran, by id. Signed-in callers.
pub fn model_performance(env: &impl Env, page: Page) -> Result<Paged<ModelPerformance>, Error> {
    ohms_ops::access::user(env)?;
    Ok(read_state(|s| {
        ohms_ops::paging::page_values(
            &s.model_perf,
            page,
            ohms_ops::paging::Order::Ascending,
            |p| p.0,
        )
    }))
}

/// The platform's figures. Administrators.
pub fn platform_stats(env: &impl Env) -> Result<PlatformStats, Error> {
    ohms_ops::access::admin(env)?;
    let now = env.now_nanos();
    Ok(read_state(|s| {
        let mut stats = PlatformStats {
            tasks_total: s.tasks.len(),
            tasks_active: 0,
            tasks_completed: 0,
            tasks_failed: 0,
            tasks_cancelled: 0,
            runs: 0,
            run_failures: 0,
            failure_rate: 0.0,
            tokens_total: 0,
            tokens_today: 0,
            tokens_per_day: Vec::new(),
            top_models: Vec::new(),
            users: s.users.len(),
        };
        for entry in s.daily.iter() {
            let day = entry.value().0;
            stats.tasks_completed += day.tasks_completed;
            stats.tasks_failed += day.tasks_failed;
            stats.tasks_cancelled += day.tasks_cancelled;
            stats.runs += day.runs;
            stats.run_failures += day.run_failures;
            stats.tokens_total += day.tokens;
        }
        stats.tasks_active = s.running_tasks();
        if stats.runs > 0 {
            stats.failure_rate = stats.run_failures as f64 / stats.runs as f64;
        }
        let today = day_of(now);
        stats.tokens_today = s.daily.get(&today).map(|d| d.0.tokens).unwrap_or_default();
        for back in (0..7u64).rev() {
            let day = day_of(now.saturating_sub(back * NANOS_PER_DAY));
            let tokens = s.daily.get(&day).map(|d| d.0.tokens).unwrap_or_default();
            stats.tokens_per_day.push((day_label(day), tokens));
        }
        let mut models: Vec<ModelPerformance> = s.model_perf.iter().map(|e| e.value().0).collect();
        models
            .sort_by_key(|m| std::cmp::Reverse(m.performance.tokens_in + m.performance.tokens_out));
        models.truncate(5);
        stats.top_models = models;
        stats
    }))
}
