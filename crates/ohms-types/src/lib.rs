//! Types shared by every OHMS canister and by the clients that call them.
//!
//! Everything here is part of the public Candid contract (`candid/*.did`): change a type only
//! together with the `.did` files, and only in ways Candid subtyping allows.

mod agents;
mod analysis;
pub mod calendar;
mod economics;
mod error;
mod ids;
mod install;
mod model;
mod ops;
mod page;
mod tasks;

pub use agents::{
    AgentCanisterRecord, AgentCanisterStatus, AgentInfo, AgentInitArgs, AgentInstallArgs,
    AgentSpec, AgentStats, AgentStatus, AgentWasmChunk, AgentWasmStatus, Alert, AlertKind,
    CreateAgentsArgs, CreatedAgents, DEFAULT_INSTRUCTIONS_PER_MESSAGE, Exchange, FactorySettings,
    GenerationParams, LoadedModel, MAX_INSTRUCTIONS_PER_MESSAGE, MAX_NEW_TOKENS, MAX_PROMPT_BYTES,
    MAX_SYSTEM_PROMPT_BYTES, MEMORY_EXCHANGES, ModelLoadState, RunArgs, RunInfo, RunStatus,
    SetAgentStatus, UpgradeOutcome, UpgradeReport,
};
pub use analysis::*;
pub use economics::{
    Account, Action, Analytics, Balances, Decision, DenyReason, DepositAccount, DepositCredit,
    EconomicsConfig, EconomicsInitArgs, EconomicsInstallArgs, EconomicsSettings, Grant,
    InferencePriority, Limits, ModelTokens, MonthRevenue, MonthUsage, PaymentError, PaymentMethod,
    PaymentPurpose, PaymentStatus, Payout, PayoutKind, PayoutStatus, PendingSettlement, Purchase,
    Receipt, Reservation, SettlementRef, SubscribeArgs, Subscription, SubscriptionState,
    TierConfig, UpgradeSubscriptionArgs, UsageCounters, UsageReport, UsageSummary, WithdrawArgs,
};
pub use error::{Error, Result};
pub use ids::{AgentId, ModelId, TaskId, UploadId};
pub use install::{InitArgs, InstallArgs, Siblings, UpgradeArgs, is_canister_id};
pub use model::{
    BeginUpload, ByteRange, Capability, ChunkRequest, CodebookLayout, FinalizeOutcome,
    MAX_CHUNK_BYTES, ModelArchitecture, ModelFilter, ModelMatch, ModelMetadata, ModelRecord,
    ModelState, ModelSummary, NovaqParams, RepoConfig, RepoStats, ShardInfo, ShardStatus, Tier,
    UploadChunk, UploadPhase, UploadStatus,
};
pub use ops::{AuditEntry, HttpRequest, HttpResponse, OpsStatus};
pub use page::{Page, Paged};
pub use tasks::{
    AgentPerformance, AgentSelection, AlertQuery, DEFAULT_TASK_ROUNDS, DailyStats, DayRange,
    MAX_STATS_DAYS, MAX_TASK_AGENTS, MAX_TASK_BUDGET_TOKENS, MAX_TASK_INSTRUCTIONS_BYTES,
    MAX_TASK_ROUNDS, ModelPerformance, Performance, PlatformStats, StepStatus, SubmitTaskArgs,
    TaskAgent, TaskAlert, TaskAlertKind, TaskInfo, TaskRound, TaskStatus, TaskStep,
};
