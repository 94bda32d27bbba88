//! Agents, their runs and the agent canisters that host them (the factory's and the agent
//! canister's Candid types).

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

use crate::{AgentId, Capability, InitArgs, InstallArgs, ModelId, UpgradeArgs};

/// Longest prompt an agent accepts, in bytes (checked before anything is tokenized).
pub const MAX_PROMPT_BYTES: usize = 16 * 1024;
/// Most tokens one run may generate.
pub const MAX_NEW_TOKENS: u32 = 2_048;
/// Longest system prompt, in bytes.
pub const MAX_SYSTEM_PROMPT_BYTES: usize = 4 * 1024;
/// Exchanges each agent remembers.
pub const MEMORY_EXCHANGES: usize = 8;

/// How an agent samples: `temperature = 0` is greedy decoding.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GenerationParams {
    /// 0 (greedy) to 2.
    pub temperature: f32,
    /// Nucleus mass in (0, 1].
    pub top_p: f32,
    /// New tokens at most, 1 ..= `MAX_NEW_TOKENS`.
    pub max_tokens: u32,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.9,
            max_tokens: 128,
        }
    }
}

impl GenerationParams {
    /// Checks every bound (NaN included); the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(crate::Error::invalid_argument(
                "temperature",
                format!("must be a number from 0 to 2, got {}", self.temperature),
            ));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(crate::Error::invalid_argument(
                "top_p",
                format!("must be a number in (0, 1], got {}", self.top_p),
            ));
        }
        if self.max_tokens == 0 || self.max_tokens > MAX_NEW_TOKENS {
            return Err(crate::Error::invalid_argument(
                "max_tokens",
                format!(
                    "must be from 1 to {MAX_NEW_TOKENS}, got {}",
                    self.max_tokens
                ),
            ));
        }
        Ok(())
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentStatus {
    Active,
    /// Refuses new runs until resumed.
    Paused,
}

/// What the factory asks an agent canister to host.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentSpec {
    /// Numbered by the factory, unique across the platform.
    pub id: AgentId,
    pub role: String,
    pub system_prompt: String,
    pub model: ModelId,
    pub capabilities: Vec<Capability>,
    pub params: GenerationParams,
}

/// Counters of an agent's runs.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub runs: u64,
    pub completed: u64,
    pub failures: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// IC instructions spent generating.
    pub instructions: u64,
}

/// One prompt and its answer, kept in the agent's bounded memory.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub run: u64,
    pub prompt: String,
    pub answer: String,
    pub at_nanos: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentInfo {
    pub id: AgentId,
    pub owner: Principal,
    /// The agent canister hosting it.
    pub canister: Principal,
    pub role: String,
    pub system_prompt: String,
    pub model: ModelId,
    pub capabilities: Vec<Capability>,
    pub params: GenerationParams,
    pub status: AgentStatus,
    pub stats: AgentStats,
    pub memory: Vec<Exchange>,
    pub created_at_nanos: u64,
}

/// Start a run: `params` replaces the agent's own for this run; `seed` makes sampling
/// reproducible (otherwise it comes from `raw_rand`).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunArgs {
    pub agent: AgentId,
    pub prompt: String,
    pub params: Option<GenerationParams>,
    pub seed: Option<u64>,
    /// An idempotency key (1 to 64 bytes, no control characters), per caller: a `run` with a
    /// key the canister knows returns that run and starts nothing.
    pub request_id: Option<String>,
    /// The economics reservation of the coordinator task this run belongs to: its tokens
    /// are drawn from the task's budget (`TaskInference`) instead of the monthly quota.
    pub task_reservation: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Waiting for the model's shards to arrive from the repository.
    LoadingModel,
    /// Waiting for its turn (runs go one at a time, in order).
    Queued,
    Generating,
    Completed,
    Cancelled,
    Failed {
        reason: String,
    },
}

impl RunStatus {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Cancelled | Self::Failed { .. }
        )
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub id: u64,
    pub agent: AgentId,
    pub model: ModelId,
    pub status: RunStatus,
    /// The answer so far.
    pub text: String,
    /// The generated token ids so far.
    pub tokens: Vec<u32>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// IC instructions spent generating.
    pub instructions: u64,
    /// Messages (timer executions) the generation took.
    pub messages: u32,
    pub seed: u64,
    /// Why generation stopped: "stop token", "max tokens", "context full".
    pub stop_reason: Option<String>,
    /// Whether the usage was committed to economics.
    pub usage_committed: bool,
    pub started_at_nanos: u64,
    pub finished_at_nanos: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ModelLoadState {
    Fetching,
    Ready,
    Failed { reason: String },
}

/// A model held by an agent canister.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LoadedModel {
    pub model: ModelId,
    pub state: ModelLoadState,
    pub root_hash: String,
    pub shards_total: u32,
    pub shards_verified: u32,
    pub bytes_total: u64,
    pub bytes_received: u64,
    /// Instructions spent fetching, verifying and storing.
    pub load_instructions: u64,
}

/// An agent canister's install argument. `owner = null` leaves the canister unassigned (it
/// runs nothing); the factory always names the owner.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AgentInstallArgs {
    Init(AgentInitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AgentInitArgs {
    pub admins: Vec<Principal>,
    pub siblings: crate::Siblings,
    pub owner: Option<Principal>,
    /// Instructions one message of generation may use before it yields to the next
    /// (default `DEFAULT_INSTRUCTIONS_PER_MESSAGE`).
    pub instructions_per_message: Option<u64>,
}

/// Generation fills a message up to this many instructions of the IC's 40 B limit: a message
/// stops before a step (estimated as half again the largest so far) would pass it, and at
/// least 5 B stay for a step longer than foreseen (the first of a message is not foreseen) and
/// the saving of the run.
pub const DEFAULT_INSTRUCTIONS_PER_MESSAGE: u64 = 35_000_000_000;
/// The most a message may be given: 4 B below the IC's 40 B limit, more than a forward pass
/// of the models agents run (SmolLM2-135M: about 0.3 B) and the saving of the run.
pub const MAX_INSTRUCTIONS_PER_MESSAGE: u64 = 36_000_000_000;

impl AgentInstallArgs {
    /// The common part, for the operations layer's lifecycle.
    pub fn common(&self) -> InstallArgs {
        match self {
            Self::Init(init) => InstallArgs::Init(InitArgs {
                admins: init.admins.clone(),
                siblings: init.siblings.clone(),
            }),
            Self::Upgrade(upgrade) => InstallArgs::Upgrade(upgrade.clone()),
        }
    }
}

/// What an agent canister reports about itself.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AgentCanisterStatus {
    pub owner: Option<Principal>,
    pub agents: u32,
    pub runs: u64,
    pub active_runs: u32,
    pub models: Vec<LoadedModel>,
    pub instructions_per_message: u64,
    pub stable_bytes: u64,
}

/// `create_agents`: `count` and `model` override the analysis's choices.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateAgentsArgs {
    pub instructions: String,
    pub count: Option<u32>,
    pub model: Option<ModelId>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CreatedAgents {
    pub canister: Principal,
    /// Whether the agent canister was created by this call.
    pub canister_created: bool,
    pub agents: Vec<AgentInfo>,
    pub analysis: crate::InstructionAnalysis,
}

/// Pause (`Paused`) or resume (`Active`) an agent.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetAgentStatus {
    pub agent: AgentId,
    pub status: AgentStatus,
}

/// A user's agent canister, as the factory records it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AgentCanisterRecord {
    pub owner: Principal,
    pub canister: Principal,
    /// Installed and registered with the repository and economics.
    pub ready: bool,
    pub agents: u32,
    /// sha256 (hex) of the agent wasm installed last.
    pub wasm_sha256: Option<String>,
    pub created_at_nanos: u64,
    /// Cycles sent to it by top-ups, ever.
    pub topped_up_cycles: u128,
    /// The balance the last check saw.
    pub cycles: Option<u128>,
}

/// One piece of the agent wasm an administrator uploads; offsets make a retry harmless.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AgentWasmChunk {
    /// sha256 (hex) of the whole module.
    pub sha256: String,
    pub total_bytes: u64,
    pub offset: u64,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AgentWasmStatus {
    /// The module new agent canisters get (sha256 hex), once one is complete.
    pub active_sha256: Option<String>,
    pub active_bytes: u64,
    /// An upload in progress.
    pub staging_sha256: Option<String>,
    pub staging_received: u64,
    pub staging_total: u64,
}

/// One agent canister's upgrade outcome.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeOutcome {
    pub canister: Principal,
    pub result: Result<(), String>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeReport {
    pub upgraded: Vec<UpgradeOutcome>,
    /// Agent canisters still on another module (call again to continue).
    pub remaining: u64,
}

/// The factory's settings (administrators).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FactorySettings {
    /// Cycles a new agent canister starts with.
    pub agent_initial_cycles: u128,
    /// Top up an agent canister below this balance...
    pub top_up_threshold: u128,
    /// ...with this many cycles.
    pub top_up_amount: u128,
    /// Alert when the factory's own balance falls below this.
    pub factory_low_water: u128,
    /// Seconds between top-up rounds.
    pub top_up_interval_seconds: u64,
    /// Passed to agent canisters at install and upgrade.
    pub agent_instructions_per_message: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AlertKind {
    /// The factory's balance is below its low-water mark.
    FactoryLowCycles,
    /// A top-up failed.
    TopUpFailed,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub id: u64,
    pub kind: AlertKind,
    pub canister: Option<Principal>,
    pub message: String,
    pub at_nanos: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_parameters_are_bounded_and_nan_is_refused() {
        assert_eq!(GenerationParams::default().validate(), Ok(()));
        let field = |p: GenerationParams| match p.validate() {
            Err(crate::Error::InvalidArgument { field, .. }) => field,
            other => panic!("{p:?} accepted: {other:?}"),
        };
        let base = GenerationParams::default;
        for temperature in [f32::NAN, f32::INFINITY, -0.1, 2.1] {
            assert_eq!(
                field(GenerationParams {
                    temperature,
                    ..base()
                }),
                "temperature"
            );
        }
        for top_p in [f32::NAN, 0.0, 1.01] {
            assert_eq!(field(GenerationParams { top_p, ..base() }), "top_p");
        }
        for max_tokens in [0, MAX_NEW_TOKENS + 1, u32::MAX] {
            assert_eq!(
                field(GenerationParams {
                    max_tokens,
                    ..base()
                }),
                "max_tokens"
            );
        }
        let greedy = GenerationParams {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: MAX_NEW_TOKENS,
        };
        assert_eq!(greedy.validate(), Ok(()));
    }
}
