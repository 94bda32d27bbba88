//! The `ic0` System API: the state one message execution sees and the host functions over it.
//!
//! - this module: what an execution stages ([`SystemState`]) and why it can stop ([`TrapCause`]);
//! - `heap`: moving bytes between canister memory and the host, charging instructions;
//! - `imports`: the `ic0` functions themselves.
//!
//! Every effect of a message (reply, outgoing calls, accepted cycles, stable writes, certified
//! data, timer, logs) is staged in [`SystemState`] and applied by the scheduler only if the
//! message completes without a trap; a trap simply discards the staged state.

use candid::Principal;
use wasmi::{Error, Memory};

use crate::cycles::Fees;
use crate::stable_memory::StableMemory;

/// Every `ic0` function this runtime provides: all of ic0 1.2 except the cost functions of
/// HTTPS outcalls and threshold signatures, which the local network does not offer.
pub const SUPPORTED_IMPORTS: &[&str] = &[
    "msg_arg_data_size",
    "msg_arg_data_copy",
    "msg_caller_size",
    "msg_caller_copy",
    "msg_caller_info_data_size",
    "msg_caller_info_data_copy",
    "msg_caller_info_signer_size",
    "msg_caller_info_signer_copy",
    "msg_reject_code",
    "msg_reject_msg_size",
    "msg_reject_msg_copy",
    "msg_deadline",
    "msg_reply_data_append",
    "msg_reply",
    "msg_reject",
    "msg_cycles_available128",
    "msg_cycles_refunded128",
    "msg_cycles_accept128",
    "cycles_burn128",
    "canister_self_size",
    "canister_self_copy",
    "canister_cycle_balance128",
    "canister_liquid_cycle_balance128",
    "canister_status",
    "canister_version",
    "subnet_self_size",
    "subnet_self_copy",
    "subnet_self_node_count",
    "msg_method_name_size",
    "msg_method_name_copy",
    "accept_message",
    "call_new",
    "call_on_cleanup",
    "call_data_append",
    "call_with_best_effort_response",
    "call_cycles_add128",
    "call_perform",
    "stable64_size",
    "stable64_grow",
    "stable64_write",
    "stable64_read",
    "root_key_size",
    "root_key_copy",
    "certified_data_set",
    "data_certificate_present",
    "data_certificate_size",
    "data_certificate_copy",
    "time",
    "global_timer_set",
    "performance_counter",
    "is_controller",
    "in_replicated_execution",
    "cost_call",
    "cost_create_canister",
    "env_var_count",
    "env_var_name_size",
    "env_var_name_copy",
    "env_var_name_exists",
    "env_var_value_size",
    "env_var_value_copy",
    "debug_print",
    "trap",
];

/// Instructions charged for entering any System API function.
pub(crate) const SYSTEM_API_BASE_COST: u64 = 100;
/// Extra instructions charged by `ic0.call_perform`.
pub(crate) const CALL_PERFORM_COST: u64 = 5_000;
/// Most bytes `ic0.certified_data_set` accepts.
pub(crate) const MAX_CERTIFIED_DATA_BYTES: usize = 32;
/// Largest reply or call payload (the IC's inter-canister message limit).
pub const MAX_PAYLOAD_BYTES: usize = 2 * 1024 * 1024;
/// Longest timeout a best-effort call may ask for.
pub(crate) const MAX_CALL_TIMEOUT_SECONDS: u32 = 300;
/// Largest log record kept from one `debug_print` or trap message.
pub(crate) const MAX_LOG_RECORD_BYTES: usize = 4 * 1024;

/// Which exported function is running; decides which System API functions are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    Start,
    Init,
    PreUpgrade,
    PostUpgrade,
    Update,
    Query,
    ReplyCallback,
    RejectCallback,
    Cleanup,
    InspectMessage,
    GlobalTimer,
    Heartbeat,
}

impl EntryPoint {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Init => "canister_init",
            Self::PreUpgrade => "canister_pre_upgrade",
            Self::PostUpgrade => "canister_post_upgrade",
            Self::Update => "update",
            Self::Query => "query",
            Self::ReplyCallback => "reply callback",
            Self::RejectCallback => "reject callback",
            Self::Cleanup => "cleanup callback",
            Self::InspectMessage => "canister_inspect_message",
            Self::GlobalTimer => "canister_global_timer",
            Self::Heartbeat => "canister_heartbeat",
        }
    }

    pub(crate) fn is_callback(self) -> bool {
        matches!(self, Self::ReplyCallback | Self::RejectCallback)
    }

    pub(crate) fn may_respond(self) -> bool {
        matches!(self, Self::Update | Self::Query) || self.is_callback()
    }

    pub(crate) fn may_call(self) -> bool {
        matches!(self, Self::Update | Self::GlobalTimer | Self::Heartbeat) || self.is_callback()
    }

    pub(crate) fn may_accept_cycles(self) -> bool {
        matches!(self, Self::Update) || self.is_callback()
    }

    pub(crate) fn has_arg_data(self) -> bool {
        matches!(
            self,
            Self::Init
                | Self::PostUpgrade
                | Self::Update
                | Self::Query
                | Self::ReplyCallback
                | Self::InspectMessage
        )
    }

    pub(crate) fn is_query(self) -> bool {
        matches!(self, Self::Query | Self::InspectMessage)
    }
}

/// A table-function callback registered with `ic0.call_new` / `ic0.call_on_cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WasmClosure {
    pub table_index: u32,
    pub env: u32,
}

/// A call being assembled between `ic0.call_new` and `ic0.call_perform`.
#[derive(Debug, Clone)]
pub struct OutgoingCall {
    pub callee: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub cycles: u128,
    pub on_reply: WasmClosure,
    pub on_reject: WasmClosure,
    pub on_cleanup: Option<WasmClosure>,
    pub timeout_seconds: Option<u32>,
}

/// How the message answered its call context, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Reply(Vec<u8>),
    Reject(String),
}

/// A record for the canister log.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub timestamp_nanos: u64,
    pub content: Vec<u8>,
}

/// Why a message stopped before returning normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrapCause {
    #[error("Canister called `ic0.trap` with message: '{0}'")]
    Explicit(String),
    #[error("Canister violated contract: {0}")]
    ContractViolation(String),
    #[error("Canister exceeded the limit of {0} instructions for single message execution.")]
    InstructionLimit(u64),
    #[error("Stable memory access out of bounds: {0}")]
    StableOutOfBounds(String),
    #[error("Heap memory access out of bounds in `ic0.{0}`")]
    HeapOutOfBounds(&'static str),
}

impl wasmi::errors::HostError for TrapCause {}

pub(crate) fn trap(cause: TrapCause) -> Error {
    Error::host(cause)
}

pub(crate) fn violation(message: impl Into<String>) -> Error {
    trap(TrapCause::ContractViolation(message.into()))
}

/// Everything one execution reads and stages. Lives in the wasmi store's data slot.
#[derive(Debug)]
pub struct SystemState {
    pub entry: Option<EntryPoint>,
    pub memory: Option<Memory>,
    pub canister_id: Principal,
    pub caller: Option<Principal>,
    pub method_name: String,
    pub arg: Vec<u8>,
    /// In a reject callback: the code and message of the rejection.
    pub reject: Option<(u32, String)>,
    pub time: u64,
    pub controllers: Vec<Principal>,
    pub env_vars: Vec<(String, String)>,
    pub canister_version: u64,
    /// 1 running, 2 stopping, 3 stopped (as `ic0.canister_status` reports).
    pub status_code: u32,
    /// Deadline of the current best-effort call (0 for unbounded-wait calls).
    pub deadline: u64,
    pub data_certificate: Option<Vec<u8>>,
    /// False for queries and `canister_inspect_message` run by a single node.
    pub replicated: bool,
    pub root_key: Vec<u8>,
    pub subnet_id: Principal,
    pub fees: Fees,
    // Cycles.
    pub balance: u128,
    pub cycles_available: u128,
    pub cycles_accepted: u128,
    pub cycles_refunded: u128,
    pub cycles_burned: u128,
    // Responses.
    pub call_context_responded: bool,
    pub reply_buffer: Vec<u8>,
    pub response: Option<Response>,
    pub message_accepted: bool,
    // Calls.
    pub pending_call: Option<OutgoingCall>,
    pub calls: Vec<OutgoingCall>,
    // Other effects.
    pub stable: StableMemory,
    pub max_stable_pages: u64,
    pub certified_data: Option<Vec<u8>>,
    pub global_timer: u64,
    pub logs: Vec<LogLine>,
    // Instruction accounting.
    pub instruction_limit: u64,
    pub call_context_instructions: u64,
}

impl SystemState {
    pub(crate) fn entry(&self) -> EntryPoint {
        self.entry.unwrap_or(EntryPoint::Start)
    }

    pub(crate) fn require(&self, allowed: bool, function: &str) -> Result<(), Error> {
        if allowed {
            Ok(())
        } else {
            Err(violation(format!(
                "\"ic0_{function}\" cannot be executed in {} mode",
                self.entry().name()
            )))
        }
    }

    pub(crate) fn log(&mut self, content: &[u8]) {
        let content = content[..content.len().min(MAX_LOG_RECORD_BYTES)].to_vec();
        self.logs.push(LogLine {
            timestamp_nanos: self.time,
            content,
        });
    }
}

impl Default for SystemState {
    fn default() -> Self {
        Self {
            entry: None,
            memory: None,
            canister_id: Principal::management_canister(),
            caller: None,
            method_name: String::new(),
            arg: Vec::new(),
            reject: None,
            time: 0,
            controllers: Vec::new(),
            env_vars: Vec::new(),
            canister_version: 0,
            status_code: 0,
            deadline: 0,
            data_certificate: None,
            replicated: true,
            root_key: Vec::new(),
            subnet_id: Principal::management_canister(),
            fees: Fees::default(),
            balance: 0,
            cycles_available: 0,
            cycles_accepted: 0,
            cycles_refunded: 0,
            cycles_burned: 0,
            call_context_responded: false,
            reply_buffer: Vec::new(),
            response: None,
            message_accepted: false,
            pending_call: None,
            calls: Vec::new(),
            stable: StableMemory::default(),
            max_stable_pages: 0,
            certified_data: None,
            global_timer: 0,
            logs: Vec::new(),
            instruction_limit: 0,
            call_context_instructions: 0,
        }
    }
}

mod heap;
mod imports;

pub use heap::instructions_used;
pub use imports::link;
