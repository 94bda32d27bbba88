//! Types of the operations endpoints every OHMS canister exports.

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

use crate::Siblings;

/// One administrative action, as recorded in a canister's append-only audit log.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub index: u64,
    /// When the action happened (IC time, nanoseconds since the Unix epoch).
    pub timestamp_nanos: u64,
    pub caller: Principal,
    pub method: String,
    /// What the action changed, in words.
    pub summary: String,
}

/// The operational state of a canister, for dashboards and admins.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct OpsStatus {
    pub paused: bool,
    pub pause_reason: Option<String>,
    pub admins: u64,
    pub siblings: Siblings,
    pub audit_entries: u64,
    pub canister_version: u64,
}

/// The HTTP gateway's request to `http_request` (the IC HTTP interface).
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status_code: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}
