//! Reject codes and reject responses as the IC interface specification defines them.

use candid::CandidType;
use serde::{Deserialize, Serialize};

/// The reject codes of the IC interface specification ("Reject codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, CandidType)]
pub enum RejectCode {
    /// Fatal system error, retry unlikely to be useful.
    SysFatal = 1,
    /// Transient system error, retry might be possible.
    SysTransient = 2,
    /// Invalid destination (e.g. canister/account does not exist).
    DestinationInvalid = 3,
    /// Explicit reject by the canister.
    CanisterReject = 4,
    /// Canister error (e.g. trap, no response).
    CanisterError = 5,
    /// Response unknown; system stopped waiting for it (e.g. a best-effort call timed out).
    SysUnknown = 6,
}

impl RejectCode {
    /// The numeric code `ic0.msg_reject_code` returns.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code for a numeric value, if the specification defines one.
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::SysFatal,
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            5 => Self::CanisterError,
            6 => Self::SysUnknown,
            _ => return None,
        })
    }
}

/// A call that was rejected: the code, the message and, for canister errors, a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectResponse {
    pub reject_code: RejectCode,
    pub reject_message: String,
    /// The replica-style error code (`IC0503` for a trap, ...), when the rejection has one.
    pub error_code: Option<String>,
}

impl RejectResponse {
    pub fn new(reject_code: RejectCode, reject_message: impl Into<String>) -> Self {
        Self {
            reject_code,
            reject_message: reject_message.into(),
            error_code: None,
        }
    }

    pub fn with_error_code(mut self, error_code: &str) -> Self {
        self.error_code = Some(error_code.to_string());
        self
    }
}

impl std::fmt::Display for RejectResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.reject_code, self.reject_message)?;
        if let Some(code) = &self.error_code {
            write!(f, " ({code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RejectResponse {}

/// Replica error codes the runtime reports (a subset of the replica's `ErrorCode`).
pub mod error_codes {
    pub const INSUFFICIENT_CYCLES: &str = "IC0207";
    pub const CANISTER_NOT_FOUND: &str = "IC0301";
    pub const INSUFFICIENT_CYCLES_FOR_CREATE_CANISTER: &str = "IC0403";
    pub const CANISTER_REJECTED_MESSAGE: &str = "IC0406";
    pub const INVALID_MANAGEMENT_PAYLOAD: &str = "IC0408";
    pub const CANISTER_TRAPPED: &str = "IC0502";
    pub const CANISTER_CALLED_TRAP: &str = "IC0503";
    pub const CANISTER_CONTRACT_VIOLATION: &str = "IC0504";
    pub const CANISTER_INVALID_WASM: &str = "IC0505";
    pub const CANISTER_DID_NOT_REPLY: &str = "IC0506";
    pub const CANISTER_OUT_OF_MEMORY: &str = "IC0507";
    pub const CANISTER_STOPPED: &str = "IC0508";
    pub const CANISTER_STOPPING: &str = "IC0509";
    pub const CANISTER_INVALID_CONTROLLER: &str = "IC0512";
    pub const CANISTER_INSTRUCTION_LIMIT_EXCEEDED: &str = "IC0522";
    pub const CANISTER_MEMORY_ACCESS_LIMIT_EXCEEDED: &str = "IC0524";
    pub const CANISTER_METHOD_NOT_FOUND: &str = "IC0536";
    pub const CANISTER_WASM_MODULE_NOT_FOUND: &str = "IC0537";
    pub const DEADLINE_EXPIRED: &str = "IC0601";
}
