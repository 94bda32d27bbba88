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
use wasmtime::{Error, Global, Memory};

use crate::cycles::Fees;
use crate::stable_memory::StableMemory;

/// Every `ic0` function this runtime provides, with what it costs: all of ic0 1.2 except the
/// cost functions of HTTPS outcalls and threshold signatures, which the local network does not
/// offer.
pub use costs::SYSTEM_API;

/// Most bytes `ic0.certified_data_set` accepts.
pub(crate) const MAX_CERTIFIED_DATA_BYTES: usize = 32;
/// Most calls a canister may have in flight to one callee: the replica's canister-to-canister
/// queue capacity (`DEFAULT_QUEUE_CAPACITY`); `call_perform` fails with SYS_TRANSIENT beyond.
pub const MAX_CALLS_IN_FLIGHT_PER_CALLEE: u32 = 500;
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

    /// Most 4 KiB stable memory pages one execution may modify (the replica's
    /// `stable_memory_dirty_page_limit`: 2 GiB for messages, 8 GiB for installs and upgrades,
    /// 1 GiB for queries).
    pub(crate) fn stable_dirty_page_limit(self) -> u64 {
        const GIB_OF_PAGES: u64 = (1 << 30) / costs::OS_PAGE_BYTES;
        match self {
            Self::Start | Self::Init | Self::PreUpgrade | Self::PostUpgrade => 8 * GIB_OF_PAGES,
            Self::Query | Self::InspectMessage => GIB_OF_PAGES,
            _ => 2 * GIB_OF_PAGES,
        }
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
    #[error(
        "Exceeded the limit for the number of modified pages in the stable memory in a single message execution: limit {0} KB"
    )]
    StableDirtyPageLimit(u64),
}

pub(crate) fn trap(cause: TrapCause) -> Error {
    Error::new(cause)
}

pub(crate) fn violation(message: impl Into<String>) -> Error {
    trap(TrapCause::ContractViolation(message.into()))
}

/// Everything one execution reads and stages. Lives in the wasmtime store's data slot.
#[derive(Debug)]
pub struct SystemState {
    pub entry: Option<EntryPoint>,
    pub memory: Option<Memory>,
    /// The module's instruction counter (see `instrument`).
    pub counter: Option<Global>,
    /// The write barrier's map of written heap pages (see `write_barrier`).
    pub written: Option<Memory>,
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
    /// In a non-replicated message: its data certificate, signed on first use.
    pub data_certificate: Option<crate::certification::LazyDataCertificate>,
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
    /// Calls this canister already has in flight, by callee (before this message's calls).
    pub calls_in_flight: std::collections::BTreeMap<Principal, u32>,
    // Other effects.
    pub stable: StableMemory,
    pub max_stable_pages: u64,
    /// 4 KiB stable memory pages this message has written (each is charged once).
    pub stable_pages_written: std::collections::BTreeSet<u64>,
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

    /// Marks the 4 KiB stable pages of `size` bytes at `offset` as written by this message and
    /// returns how many of them were not yet (the replica's dirty-page charge), or the trap of
    /// a message that has modified more pages than its limit. Ranges outside stable memory
    /// count nothing (the write itself traps), so a hostile range cannot make the host loop.
    pub(crate) fn dirty_stable_pages(&mut self, offset: u64, size: u64) -> Result<u64, Error> {
        let first_dirtied = self.mark_stable_pages(offset, size);
        let limit = self.entry().stable_dirty_page_limit();
        if self.stable_pages_written.len() as u64 > limit {
            return Err(trap(TrapCause::StableDirtyPageLimit(
                limit * costs::OS_PAGE_BYTES / 1024,
            )));
        }
        Ok(first_dirtied)
    }

    fn mark_stable_pages(&mut self, offset: u64, size: u64) -> u64 {
        use costs::OS_PAGE_BYTES;
        let Some(end) = offset.checked_add(size) else {
            return 0;
        };
        if size == 0 || end > self.stable.size_bytes() {
            return 0;
        }
        let (first, last) = (offset / OS_PAGE_BYTES, (end - 1) / OS_PAGE_BYTES);
        (first..=last)
            .filter(|page| self.stable_pages_written.insert(*page))
            .count() as u64
    }

    /// Bytes this message has logged so far.
    pub(crate) fn logged_bytes(&self) -> u64 {
        self.logs.iter().map(|l| l.content.len() as u64).sum()
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
            counter: None,
            written: None,
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
            calls_in_flight: Default::default(),
            stable: StableMemory::default(),
            max_stable_pages: 0,
            stable_pages_written: Default::default(),
            certified_data: None,
            global_timer: 0,
            logs: Vec::new(),
            instruction_limit: 0,
            call_context_instructions: 0,
        }
    }
}

pub mod costs;
mod heap;
mod imports;

pub use heap::{counter_start, instructions_used};
pub use imports::link;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_may_dirty_one_gib_of_stable_memory() {
        let mut state = SystemState {
            entry: Some(EntryPoint::Query),
            ..SystemState::default()
        };
        // Stable memory is sparse: growing it allocates nothing.
        state.stable.grow(16_385, u64::MAX).unwrap();
        let gib = 1 << 30;
        assert_eq!(state.dirty_stable_pages(0, gib).unwrap(), 262_144);
        // Pages already written are not charged again...
        assert_eq!(state.dirty_stable_pages(0, 4_096).unwrap(), 0);
        // Ranges outside stable memory count nothing: the write traps by itself.
        assert_eq!(state.dirty_stable_pages(u64::MAX - 1, 2).unwrap(), 0);
        // One page more is over the limit.
        let err = state.dirty_stable_pages(gib, 1).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<TrapCause>(),
            Some(TrapCause::StableDirtyPageLimit(1_048_576))
        ));
    }
}
