//! The serializable state of a whole local network: canisters, queues, call contexts,
//! callbacks, ingress results, time and randomness.

use std::collections::{BTreeMap, VecDeque};

use candid::Principal;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::canister::CanisterState;
use crate::cycles::Fees;
use crate::fault::Fault;
use crate::reject::{RejectCode, RejectResponse};
use crate::system_api::WasmClosure;

/// The IC's per-message instruction limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionLimits {
    /// Update calls, callbacks and the global timer.
    pub update: u64,
    /// Queries.
    pub query: u64,
    /// `canister_init`, and `canister_pre_upgrade` + `canister_post_upgrade` together.
    pub install: u64,
    /// `canister_inspect_message`.
    pub inspect_message: u64,
}

impl InstructionLimits {
    pub const IC: InstructionLimits = InstructionLimits {
        update: 40_000_000_000,
        query: 5_000_000_000,
        install: 300_000_000_000,
        inspect_message: 200_000_000,
    };
}

impl Default for InstructionLimits {
    fn default() -> Self {
        Self::IC
    }
}

/// Who is waiting for the response of a call context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// An ingress message (a call submitted through the test API).
    Ingress(u64),
    /// A canister, through one of its callbacks.
    Canister { canister: Principal, callback: u64 },
    /// The system (the global timer): nobody waits for a response.
    System,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub origin: Origin,
    pub sender: Principal,
    pub receiver: Principal,
    pub method: String,
    pub arg: ByteBuf,
    pub cycles: u128,
    /// Deadline of a best-effort call (0: unbounded wait).
    pub deadline: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    Reply(ByteBuf),
    Reject(RejectResponse),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub callback: u64,
    pub payload: Payload,
    pub refund: u128,
}

/// A message waiting in the network's queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    Request(Request),
    Response(ResponseMessage),
}

/// An open call context: a call a canister is handling, possibly across several messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallContext {
    pub canister: Principal,
    pub origin: Origin,
    pub caller: Principal,
    pub method: String,
    pub available_cycles: u128,
    pub responded: bool,
    pub deadline: u64,
    pub outstanding_callbacks: u32,
    /// Instructions of all messages of this call context so far.
    pub instructions: u64,
}

/// A callback waiting for the response to an outgoing call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Callback {
    pub canister: Principal,
    pub call_context: u64,
    pub callee: Principal,
    /// The method called (what an injected fault may be limited to).
    #[serde(default)]
    pub method: String,
    pub on_reply: WasmClosure,
    pub on_reject: WasmClosure,
    pub on_cleanup: Option<WasmClosure>,
    /// When a best-effort call stops waiting (`None` for unbounded-wait calls).
    pub deadline: Option<u64>,
}

/// The state of an ingress message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IngressStatus {
    Processing,
    Completed {
        result: Result<ByteBuf, RejectResponse>,
        /// Instructions of every message executed for this call.
        instructions: u64,
        /// Network time when the call completed.
        #[serde(default)]
        completed_at: u64,
    },
    /// Completed long enough ago that the reply was dropped from the ingress history.
    Done {
        completed_at: u64,
    },
}

/// How long a completed call's reply stays in the ingress history (the replica keeps it until
/// the message's ingress expiry, at most 5 minutes after submission), and how long after that
/// the call is still known as done.
pub const INGRESS_REPLY_RETENTION_NANOS: u64 = 5 * 60 * 1_000_000_000;
pub const INGRESS_DONE_RETENTION_NANOS: u64 = 2 * INGRESS_REPLY_RETENTION_NANOS;

/// A canister stop waiting for its open call contexts to finish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopWaiter {
    pub canister: Principal,
    pub origin: Origin,
}

/// Everything a local network is; saving this saves the network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkState {
    pub time_nanos: u64,
    pub next_canister_index: u64,
    pub canisters: BTreeMap<Principal, CanisterState>,
    pub queue: VecDeque<Message>,
    pub call_contexts: BTreeMap<u64, CallContext>,
    pub callbacks: BTreeMap<u64, Callback>,
    pub ingress: BTreeMap<u64, IngressStatus>,
    pub stop_waiters: Vec<StopWaiter>,
    /// Source of every id (messages, call contexts, callbacks): never reused.
    pub next_id: u64,
    pub random_seed: [u8; 32],
    pub random_draws: u64,
    pub fees: Fees,
    pub limits: InstructionLimits,
    /// Faults injected by the test that have not applied yet, in order.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// 2021-05-06T19:17:10Z, the IC's genesis: the default start time of a local network.
pub const GENESIS_NANOS: u64 = 1_620_328_630_000_000_000;

impl NetworkState {
    pub fn new(random_seed: [u8; 32]) -> Self {
        Self {
            time_nanos: GENESIS_NANOS,
            next_canister_index: 0,
            canisters: BTreeMap::new(),
            queue: VecDeque::new(),
            call_contexts: BTreeMap::new(),
            callbacks: BTreeMap::new(),
            ingress: BTreeMap::new(),
            stop_waiters: Vec::new(),
            next_id: 0,
            random_seed,
            random_draws: 0,
            fees: Fees::default(),
            limits: InstructionLimits::default(),
            faults: Vec::new(),
        }
    }

    pub fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Open call contexts of `canister` (a stopping canister stops when this reaches 0).
    pub fn open_call_contexts(&self, canister: &Principal) -> usize {
        self.call_contexts
            .values()
            .filter(|c| c.canister == *canister)
            .count()
    }
}

impl Payload {
    pub fn reject(code: RejectCode, message: impl Into<String>, error_code: &str) -> Self {
        Payload::Reject(RejectResponse::new(code, message).with_error_code(error_code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_the_ics() {
        let limits = InstructionLimits::default();
        assert_eq!(limits.update, 40_000_000_000);
        assert_eq!(limits.query, 5_000_000_000);
        assert_eq!(limits.install, 300_000_000_000);
    }

    #[test]
    fn ids_are_never_reused() {
        let mut state = NetworkState::new([0; 32]);
        let a = state.fresh_id();
        let b = state.fresh_id();
        assert_ne!(a, b);
    }
}
