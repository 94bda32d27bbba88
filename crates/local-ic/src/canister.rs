//! The persistent state of one canister: everything needed to resume it after a restart.

use std::collections::BTreeMap;

use candid::{Nat, Principal};
use ic_management_canister_types::{
    CanisterLogRecord, CanisterSettings, DefiniteCanisterSettings, LogVisibility,
    SnapshotVisibility, StatusVisibility,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::stable_memory::StableMemory;

/// Most bytes of log records a canister keeps (older records are dropped first).
pub const MAX_LOG_BYTES: usize = 4 * 1024;
/// Most chunks a canister's chunk store holds (the IC's limit).
pub const MAX_CHUNKS: usize = 100;
/// Largest chunk `upload_chunk` accepts (the IC's limit: 1 MiB).
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Running,
    Stopping,
    Stopped,
}

impl RunStatus {
    /// The value `ic0.canister_status` returns.
    pub fn code(self) -> u32 {
        match self {
            Self::Running => 1,
            Self::Stopping => 2,
            Self::Stopped => 3,
        }
    }
}

/// The value of a mutable wasm global, kept across messages and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum GlobalValue {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
}

/// The module a canister runs, as installed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstalledCode {
    /// The module after gzip decompression.
    pub wasm: ByteBuf,
    pub module_hash: [u8; 32],
}

/// The committed heap of a canister: linear memory and mutable globals after its last
/// successful message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WasmHeap {
    pub memory: ByteBuf,
    pub globals: Vec<GlobalValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanisterState {
    pub id: Principal,
    pub settings: DefiniteCanisterSettings,
    pub cycles: u128,
    pub status: RunStatus,
    pub code: Option<InstalledCode>,
    /// `None` until code is installed, and after an uninstall or an upgrade replaced the heap.
    pub heap: Option<WasmHeap>,
    pub stable: StableMemory,
    pub certified_data: ByteBuf,
    /// 0 when the global timer is off.
    pub global_timer: u64,
    pub version: u64,
    /// Chunks uploaded with `upload_chunk`, by sha256.
    pub chunks: BTreeMap<[u8; 32], ByteBuf>,
    pub logs: Vec<CanisterLogRecord>,
    pub next_log_index: u64,
    /// IC instructions the canister's code has executed, every message (replicated or not)
    /// included: a benchmark reads one canister's share of a call that crossed several.
    #[serde(default)]
    pub instructions_executed: u64,
}

impl CanisterState {
    pub fn new(id: Principal, controllers: Vec<Principal>, cycles: u128) -> Self {
        Self {
            id,
            settings: default_settings(controllers),
            cycles,
            status: RunStatus::Running,
            code: None,
            heap: None,
            stable: StableMemory::default(),
            certified_data: ByteBuf::new(),
            global_timer: 0,
            version: 0,
            chunks: BTreeMap::new(),
            logs: Vec::new(),
            next_log_index: 0,
            instructions_executed: 0,
        }
    }

    pub fn is_controller(&self, principal: &Principal) -> bool {
        self.settings.controllers.contains(principal)
    }

    /// Appends a log record, dropping the oldest records beyond the log size limit.
    pub fn append_log(&mut self, timestamp_nanos: u64, content: Vec<u8>) {
        self.logs.push(CanisterLogRecord {
            idx: self.next_log_index,
            timestamp_nanos,
            content,
        });
        self.next_log_index += 1;
        let mut total: usize = self.logs.iter().map(|r| r.content.len()).sum();
        while total > MAX_LOG_BYTES && self.logs.len() > 1 {
            total -= self.logs.remove(0).content.len();
        }
    }

    /// Applies the fields given in `settings`; fields left out keep their value.
    pub fn apply_settings(&mut self, settings: &CanisterSettings) {
        let s = &mut self.settings;
        if let Some(v) = &settings.controllers {
            s.controllers = v.clone();
        }
        let set = |target: &mut Nat, value: &Option<Nat>| {
            if let Some(v) = value {
                *target = v.clone();
            }
        };
        set(&mut s.compute_allocation, &settings.compute_allocation);
        set(&mut s.memory_allocation, &settings.memory_allocation);
        set(&mut s.freezing_threshold, &settings.freezing_threshold);
        set(
            &mut s.reserved_cycles_limit,
            &settings.reserved_cycles_limit,
        );
        set(
            &mut s.minimum_incoming_canister_call_cycles,
            &settings.minimum_incoming_canister_call_cycles,
        );
        set(&mut s.log_memory_limit, &settings.log_memory_limit);
        set(&mut s.wasm_memory_limit, &settings.wasm_memory_limit);
        set(
            &mut s.wasm_memory_threshold,
            &settings.wasm_memory_threshold,
        );
        if let Some(v) = &settings.log_visibility {
            s.log_visibility = v.clone();
        }
        if let Some(v) = &settings.snapshot_visibility {
            s.snapshot_visibility = v.clone();
        }
        if let Some(v) = &settings.status_visibility {
            s.status_visibility = v.clone();
        }
        if let Some(v) = &settings.environment_variables {
            s.environment_variables = v.clone();
        }
    }

    /// The environment variables `ic0.env_var_*` expose.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.settings
            .environment_variables
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    }

    /// Bytes of memory the canister uses (heap, stable memory, code, chunks).
    pub fn memory_size(&self) -> u64 {
        let heap = self.heap.as_ref().map_or(0, |h| h.memory.len() as u64);
        let code = self.code.as_ref().map_or(0, |c| c.wasm.len() as u64);
        let chunks: u64 = self.chunks.values().map(|c| c.len() as u64).sum();
        heap + self.stable.size_bytes() + code + chunks
    }

    /// The wasm memory limit in bytes (0 means no limit).
    pub fn wasm_memory_limit(&self) -> u64 {
        u64::try_from(self.settings.wasm_memory_limit.0.clone()).unwrap_or(u64::MAX)
    }
}

/// The settings of a new canister (the IC's defaults).
pub fn default_settings(controllers: Vec<Principal>) -> DefiniteCanisterSettings {
    DefiniteCanisterSettings {
        controllers,
        compute_allocation: Nat::from(0u32),
        memory_allocation: Nat::from(0u32),
        freezing_threshold: Nat::from(2_592_000u64),
        reserved_cycles_limit: Nat::from(5_000_000_000_000u64),
        minimum_incoming_canister_call_cycles: Nat::from(0u32),
        log_visibility: LogVisibility::Controllers,
        log_memory_limit: Nat::from(MAX_LOG_BYTES as u64),
        snapshot_visibility: SnapshotVisibility::Controllers,
        status_visibility: StatusVisibility::Controllers,
        wasm_memory_limit: Nat::from(3u64 * 1024 * 1024 * 1024),
        wasm_memory_threshold: Nat::from(0u32),
        environment_variables: Vec::new(),
    }
}
