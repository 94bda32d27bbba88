//! `ohms tasks`: coordinated tasks on a saved local network, as a user runs them: the
//! coordinator plans the task over the user's agents, dispatches each round's runs in
//! parallel and aggregates the result while the command lets the network tick (a second of
//! its clock per round), printing each agent's output as it finishes. `stats` shows what an
//! administrator sees: the platform's figures, models, days and alerts.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, bail};
use candid::Principal;
use clap::Subcommand;
use ohms_types::calendar::{NANOS_PER_SECOND, day_of};
use ohms_types::{
    AgentId, AgentSelection, AlertQuery, DailyStats, DayRange, Error, ModelPerformance, Page,
    Paged, PlatformStats, StepStatus, SubmitTaskArgs, TaskAlert, TaskId, TaskInfo, TaskStatus,
};

use crate::agents::{Session, print_quota, thousands, typed};
use crate::model::{local_identity, with_local_network};
use crate::repo_client::LocalCaller;

/// Rounds of the local network a task may take before the command gives up.
const MAX_TICKS: u32 = 200_000;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub session: Session,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Submits a task to the user's agents and follows it to the end: each round's outputs as
    /// they finish, the aggregated result, tokens used and the quota left.
    Submit {
        /// What the agents should do, in plain words.
        instructions: String,
        /// The agents, e.g. `4,5,6` (default: the coordinator chooses).
        #[arg(long, value_delimiter = ',')]
        agents: Vec<u64>,
        /// Tokens the whole task may use.
        #[arg(long, default_value_t = 6_000)]
        budget: u64,
        /// Rounds of work (1 to 4; default 2: a draft, then a review with the team's work).
        #[arg(long)]
        rounds: Option<u8>,
    },
    /// A task with every step.
    Show { id: u64 },
    /// The user's tasks, newest first.
    List,
    /// Stops a task and releases its unused budget.
    Cancel { id: u64 },
    /// The user's alerts, newest first.
    Alerts,
    /// What an administrator sees: platform statistics, models, the last days, alerts.
    Stats,
}

pub fn run(args: Args) -> Result<()> {
    let user = args.session.user();
    with_local_network(&args.session.local_state, |ic, saved| {
        let coordinator = saved.canister("coordinator")?;
        let economics = saved.canister("economics")?;
        let mut tasks = Tasks {
            calls: LocalCaller { ic, sender: user },
            coordinator,
            economics,
        };
        match args.command {
            Command::Submit {
                instructions,
                agents,
                budget,
                rounds,
            } => tasks.submit(instructions, agents, budget, rounds),
            Command::Show { id } => {
                let task = tasks.get(TaskId(id))?;
                print_task(&task);
                Ok(())
            }
            Command::List => tasks.list(),
            Command::Cancel { id } => {
                let reply: Result<TaskInfo, Error> =
                    tasks
                        .calls
                        .update(coordinator, "cancel_task", (TaskId(id),))?;
                let task = typed("coordinator", "cancel_task", reply)?;
                print_task(&task);
                print_quota(&mut tasks.calls, economics)
            }
            Command::Alerts => tasks.alerts(),
            Command::Stats => {
                tasks.calls.sender = local_identity();
                tasks.stats()
            }
        }
    })
}

struct Tasks<'a> {
    calls: LocalCaller<'a>,
    coordinator: Principal,
    economics: Principal,
}

impl Tasks<'_> {
    fn get(&mut self, id: TaskId) -> Result<TaskInfo> {
        let reply: Result<TaskInfo, Error> =
            self.calls.query(self.coordinator, "get_task", (id,))?;
        typed("coordinator", "get_task", reply)
    }

    fn submit(
        &mut self,
        instructions: String,
        agents: Vec<u64>,
        budget: u64,
        rounds: Option<u8>,
    ) -> Result<()> {
        let selection = if agents.is_empty() {
            AgentSelection::Auto
        } else {
            AgentSelection::Agents(agents.into_iter().map(AgentId).collect())
        };
        let reply: Result<TaskInfo, Error> = self.calls.update(
            self.coordinator,
            "submit_task",
            (SubmitTaskArgs {
                instructions,
                agents: selection,
                budget_tokens: budget,
                rounds,
            },),
        )?;
        let mut task = typed("coordinator", "submit_task", reply)?;
        println!(
            "task {} submitted: {} round(s), budget {} tokens (reservation {} with economics)",
            task.id,
            task.rounds.len(),
            thousands(task.budget_tokens),
            task.reservation.map_or("none".into(), |r| r.to_string())
        );
        println!("  routing: {}", task.routing);
        for agent in &task.agents {
            println!(
                "  agent {} {} ({}, {}): {}",
                agent.agent, agent.role, agent.stage, agent.model, agent.reason
            );
        }
        let started = self.calls.ic.get_time();
        let mut shown: BTreeSet<(u32, u64)> = BTreeSet::new();
        let mut rounds_shown: BTreeSet<u32> = BTreeSet::new();
        let mut ticks = 0u32;
        loop {
            for round in &task.rounds {
                if round.started_at_nanos.is_some() && rounds_shown.insert(round.index) {
                    println!(
                        "round {} ({}): {} agent(s) in parallel",
                        round.index + 1,
                        round.stage,
                        round.steps.len()
                    );
                }
                for step in &round.steps {
                    if step.status.is_final() && shown.insert((round.index, step.agent.0)) {
                        print_step(round.index, step);
                    }
                }
            }
            if task.status.is_final() && task.reservation_released {
                break;
            }
            if ticks == MAX_TICKS {
                bail!(
                    "task {} is not over after {MAX_TICKS} rounds of the network",
                    task.id
                );
            }
            self.calls.ic.tick();
            self.calls.ic.advance_time(Duration::from_secs(1));
            ticks += 1;
            task = self.get(task.id)?;
        }
        let seconds = self
            .calls
            .ic
            .get_time()
            .duration_since(started)
            .unwrap_or_default()
            .as_secs();
        println!(
            "result ({}):",
            task.stop_reason.as_deref().unwrap_or("ended")
        );
        for line in task.result.as_deref().unwrap_or("(none)").lines() {
            println!("  | {line}");
        }
        println!(
            "tokens used: {} of the {} budgeted; {} agent call(s) in {} coordinator message(s); {} s of network time",
            thousands(task.tokens_used),
            thousands(task.budget_tokens),
            task.agent_calls,
            task.engine_messages,
            seconds
        );
        print_quota(&mut self.calls, self.economics)?;
        match task.status {
            TaskStatus::Completed => Ok(()),
            TaskStatus::Failed { reason } => bail!("task {} failed: {reason}", task.id),
            other => bail!("task {} ended {other:?}", task.id),
        }
    }

    fn list(&mut self) -> Result<()> {
        let reply: Result<Paged<TaskInfo>, Error> =
            self.calls
                .query(self.coordinator, "list_tasks", (Page::first(20),))?;
        let page = typed("coordinator", "list_tasks", reply)?;
        println!("{} task(s) of {}", page.total, self.calls.sender);
        for task in &page.items {
            println!(
                "  task {:<4} {:<12} {:>7} tokens  {} agent(s)  {:?}",
                task.id.0,
                status_word(&task.status),
                task.tokens_used,
                task.agents.len(),
                first_words(&task.instructions, 60)
            );
        }
        Ok(())
    }

    fn alerts(&mut self) -> Result<()> {
        let query = AlertQuery {
            page: Page::first(20),
            unread_only: false,
        };
        let reply: Result<Paged<TaskAlert>, Error> =
            self.calls.query(self.coordinator, "my_alerts", (query,))?;
        print_alerts("alerts", &typed("coordinator", "my_alerts", reply)?);
        Ok(())
    }

    fn stats(&mut self) -> Result<()> {
        let reply: Result<PlatformStats, Error> =
            self.calls.query(self.coordinator, "platform_stats", ())?;
        let s = typed("coordinator", "platform_stats", reply)?;
        println!(
            "platform: {} task(s) ({} running, {} completed, {} failed, {} cancelled); {} user(s)",
            s.tasks_total,
            s.tasks_active,
            s.tasks_completed,
            s.tasks_failed,
            s.tasks_cancelled,
            s.users
        );
        println!(
            "  runs {} ({} failed, failure rate {:.1}%); tokens {} in all, {} today",
            s.runs,
            s.run_failures,
            100.0 * s.failure_rate,
            thousands(s.tokens_total),
            thousands(s.tokens_today)
        );
        let days: Vec<String> = s
            .tokens_per_day
            .iter()
            .map(|(day, tokens)| format!("{day} {tokens}"))
            .collect();
        println!("  tokens per day: {}", days.join(", "));
        let reply: Result<Paged<ModelPerformance>, Error> =
            self.calls
                .query(self.coordinator, "model_performance", (Page::first(20),))?;
        for m in typed("coordinator", "model_performance", reply)?.items {
            let p = &m.performance;
            println!(
                "  model {}: {} run(s), {} failed, {} tokens, {} instructions per token, {:.1} s per run",
                m.model,
                p.runs,
                p.failures,
                thousands(p.tokens_in + p.tokens_out),
                thousands(p.instructions / (p.tokens_in + p.tokens_out).max(1)),
                p.average_seconds()
            );
        }
        let today = day_of(
            self.calls
                .ic
                .get_time()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64,
        );
        let reply: Result<Vec<DailyStats>, Error> = self.calls.query(
            self.coordinator,
            "daily_stats",
            (DayRange {
                from_day: today.saturating_sub(1),
                to_day: today,
            },),
        )?;
        for d in typed("coordinator", "daily_stats", reply)? {
            println!(
                "  day {}: {} task(s) submitted, {} completed; {} run(s); {} tokens; {} active user(s); revenue {}",
                d.date,
                d.tasks_submitted,
                d.tasks_completed,
                d.runs,
                d.tokens,
                d.active_users,
                d.revenue_e8s
                    .map_or("(day open)".into(), |e8s| format!("{} e8s", thousands(e8s)))
            );
        }
        let query = AlertQuery {
            page: Page::first(10),
            unread_only: false,
        };
        let reply: Result<Paged<TaskAlert>, Error> =
            self.calls
                .query(self.coordinator, "admin_alerts", (query,))?;
        print_alerts(
            "administrators' alerts",
            &typed("coordinator", "admin_alerts", reply)?,
        );
        Ok(())
    }
}

fn status_word(status: &TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "running",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed { .. } => "failed",
        TaskStatus::Cancelled => "cancelled",
    }
}

fn first_words(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    }
}

fn print_step(round: u32, step: &ohms_types::TaskStep) {
    let seconds = match (step.dispatched_at_nanos, step.finished_at_nanos) {
        (Some(from), Some(to)) => format!("{} s", to.saturating_sub(from) / NANOS_PER_SECOND),
        _ => "-".into(),
    };
    let status = match &step.status {
        StepStatus::Completed => "completed".to_string(),
        StepStatus::Failed { reason } => format!("FAILED: {reason}"),
        StepStatus::Skipped { reason } => format!("skipped: {reason}"),
        other => format!("{other:?}"),
    };
    println!(
        "  round {} · {} (agent {}) {status}; prompt {} tokens ({} earlier output(s), {} left out to fit), {} in + {} out, {} message(s), {} instructions, {seconds}",
        round + 1,
        step.role,
        step.agent,
        step.prompt_tokens,
        step.blackboard_entries,
        step.blackboard_trimmed,
        step.tokens_in,
        step.tokens_out,
        step.messages,
        thousands(step.instructions)
    );
    for line in step.output.trim().lines() {
        println!("    | {line}");
    }
}

fn print_task(task: &TaskInfo) {
    println!(
        "task {} of {}: {} — {} tokens of {}; {}",
        task.id,
        task.owner,
        status_word(&task.status),
        task.tokens_used,
        task.budget_tokens,
        task.stop_reason.as_deref().unwrap_or("running")
    );
    println!("  instructions: {}", task.instructions);
    for round in &task.rounds {
        for step in &round.steps {
            print_step(round.index, step);
        }
    }
    if let Some(result) = &task.result {
        println!("result:");
        for line in result.lines() {
            println!("  | {line}");
        }
    }
}

fn print_alerts(title: &str, page: &Paged<TaskAlert>) {
    println!("{title}: {}", page.total);
    for alert in &page.items {
        println!(
            "  #{} {:?}{} {}",
            alert.id,
            alert.kind,
            if alert.read { "" } else { " (unread)" },
            alert.message
        );
    }
}
