//! Coordinated tasks: a user's agents working on one task in rounds, with a shared blackboard;
//! the coordinator's performance monitor, alert feeds and daily analytics.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use crate::{AgentId, ModelId, Page, TaskId};

/// Task instructions are read by every agent of the task: at most this many bytes.
pub const MAX_TASK_INSTRUCTIONS_BYTES: usize = 4 * 1024;
/// Agents one task may use.
pub const MAX_TASK_AGENTS: usize = 8;
/// Rounds one task may run.
pub const MAX_TASK_ROUNDS: u8 = 4;
/// Rounds when the task does not say: a draft, then a revision with the team's work.
pub const DEFAULT_TASK_ROUNDS: u8 = 2;
/// The largest token budget one task may hold.
pub const MAX_TASK_BUDGET_TOKENS: u64 = 1_000_000;
/// Days one `daily_stats` call may cover.
pub const MAX_STATS_DAYS: u32 = 366;

/// Which agents work on a task.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AgentSelection {
    /// The coordinator picks from the caller's agents by capability, load and performance.
    Auto,
    /// These agents of the caller, in this order.
    Agents(Vec<AgentId>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubmitTaskArgs {
    pub instructions: String,
    pub agents: AgentSelection,
    /// Tokens (prompts and answers of every run) the whole task may use; held with economics
    /// until the task ends.
    pub budget_tokens: u64,
    /// Rounds of work (default 2, at most 4).
    pub rounds: Option<u8>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    Completed,
    Failed { reason: String },
    Cancelled,
}

impl TaskStatus {
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Running)
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StepStatus {
    /// Not dispatched yet (or to be dispatched again after a failed attempt).
    Pending,
    /// The run call is in flight.
    Dispatching,
    /// The agent canister accepted the run; the coordinator follows it.
    Running {
        run: u64,
    },
    Completed,
    Failed {
        reason: String,
    },
    /// Not run: the budget was spent or the task was cancelled.
    Skipped {
        reason: String,
    },
}

impl StepStatus {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed { .. } | Self::Skipped { .. }
        )
    }
}

/// One agent's work in one round.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskStep {
    pub agent: AgentId,
    pub role: String,
    pub status: StepStatus,
    /// The run's text so far (final once the step completed).
    pub output: String,
    /// The run at the agent canister (its idempotency key is `task-<id>/r<round>/a<agent>`).
    pub run: Option<u64>,
    /// The prompt's tokens (the model's own count) and how many earlier outputs it carried.
    pub prompt_tokens: u32,
    pub blackboard_entries: u32,
    /// Blackboard entries left out to fit the model's context.
    pub blackboard_trimmed: u32,
    pub max_tokens: u32,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub instructions: u64,
    pub messages: u32,
    /// Dispatch attempts (a failed call is retried with the same key).
    pub attempts: u32,
    pub last_error: Option<String>,
    pub dispatched_at_nanos: Option<u64>,
    pub finished_at_nanos: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskRound {
    pub index: u32,
    /// What the round asks: `draft`, `review`, `final`.
    pub stage: String,
    /// Every agent of the task, dispatched in parallel.
    pub steps: Vec<TaskStep>,
    pub started_at_nanos: Option<u64>,
    pub finished_at_nanos: Option<u64>,
}

/// An agent working on the task, and why it was chosen.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskAgent {
    pub agent: AgentId,
    pub canister: Principal,
    pub role: String,
    pub model: ModelId,
    /// Position in the plan (develop, then review, then test).
    pub stage: String,
    pub reason: String,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: TaskId,
    pub owner: Principal,
    pub instructions: String,
    pub status: TaskStatus,
    pub agents: Vec<TaskAgent>,
    /// How the agents were chosen (auto routing explains its scores).
    pub routing: String,
    /// The plan, one entry per round; steps fill in as the task advances.
    pub rounds: Vec<TaskRound>,
    pub current_round: u32,
    pub budget_tokens: u64,
    /// Tokens of every run so far (prompts and answers).
    pub tokens_used: u64,
    /// The economics reservation holding the budget; released when the task ends.
    pub reservation: Option<u64>,
    pub reservation_released: bool,
    /// The aggregated result: the last round's outputs in plan order.
    pub result: Option<String>,
    /// Why the task stopped where it did (plan's end, budget spent, cancelled, failed).
    pub stop_reason: Option<String>,
    /// Calls the coordinator made to agent canisters for this task (runs started, runs read).
    pub agent_calls: u64,
    /// Messages of the coordinator that advanced the task.
    pub engine_messages: u64,
    pub created_at_nanos: u64,
    pub updated_at_nanos: u64,
    pub finished_at_nanos: Option<u64>,
}

impl TaskInfo {
    /// The task's agent `id`, if it is one.
    pub fn agent(&self, id: AgentId) -> Option<&TaskAgent> {
        self.agents.iter().find(|a| a.agent == id)
    }
}

/// What the coordinator measured of one agent (or one model) over every task.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Performance {
    pub runs: u64,
    pub completed: u64,
    pub failures: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub instructions: u64,
    pub messages: u64,
    /// Seconds from dispatch to the run's end, summed over finished runs.
    pub seconds_total: f64,
    pub last_failure: Option<String>,
}

impl Performance {
    /// Completed runs over finished runs (1 before any finished).
    pub fn success_rate(&self) -> f64 {
        let finished = self.completed + self.failures;
        if finished == 0 {
            1.0
        } else {
            self.completed as f64 / finished as f64
        }
    }

    pub fn average_seconds(&self) -> f64 {
        let finished = self.completed + self.failures;
        if finished == 0 {
            0.0
        } else {
            self.seconds_total / finished as f64
        }
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentPerformance {
    pub agent: AgentId,
    pub canister: Principal,
    pub role: String,
    pub model: ModelId,
    pub performance: Performance,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelPerformance {
    pub model: ModelId,
    pub performance: Performance,
}

/// The platform as the coordinator sees it (administrators).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlatformStats {
    pub tasks_total: u64,
    pub tasks_active: u64,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub tasks_cancelled: u64,
    pub runs: u64,
    pub run_failures: u64,
    /// Failed runs over finished runs.
    pub failure_rate: f64,
    pub tokens_total: u64,
    pub tokens_today: u64,
    /// The last seven days, oldest first.
    pub tokens_per_day: Vec<(String, u64)>,
    /// Models by tokens, most used first (at most five).
    pub top_models: Vec<ModelPerformance>,
    pub users: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum TaskAlertKind {
    AgentFailed,
    QuotaNearlyUsed,
    TaskFinished,
    /// Administrators: many runs failed within an hour.
    FailureSpike,
    /// Administrators: the agent factory reported an agent canister (or itself) low on cycles.
    LowCycles,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskAlert {
    pub id: u64,
    pub kind: TaskAlertKind,
    pub message: String,
    pub task: Option<TaskId>,
    pub agent: Option<AgentId>,
    pub canister: Option<Principal>,
    pub at_nanos: u64,
    pub read: bool,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertQuery {
    pub page: Page,
    pub unread_only: bool,
}

/// One day of the platform (UTC), for the dapp's charts.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct DailyStats {
    /// Days since 1970-01-01.
    pub day: u32,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub tasks_submitted: u64,
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub tasks_cancelled: u64,
    pub runs: u64,
    pub run_failures: u64,
    pub tokens: u64,
    pub active_users: u64,
    /// Revenue economics recorded by the time the day was closed (`None` while open).
    pub revenue_e8s: Option<u64>,
    pub closed: bool,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayRange {
    /// Days since 1970-01-01, both included.
    pub from_day: u32,
    pub to_day: u32,
}
