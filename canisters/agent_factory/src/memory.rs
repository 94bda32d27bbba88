//! Stable memory layout of the agent factory (virtual memories of the one `MemoryManager`,
//! which `ohms_ops::memory` owns):
//!
//! ```text
//!   id 0 .. 9   the operations layer: admins, audit log, pause and siblings (see ohms_ops::memory)
//!   id 10  CONFIG_MEMORY_ID     Cell<Cbor<Config>>        settings, id counters, agent wasm
//!                                                         versions
//!   id 11  CANISTERS_MEMORY_ID  BTreeMap<Principal owner, Cbor<AgentCanisterRecord>>
//!   id 12  AGENTS_MEMORY_ID     BTreeMap<u64 agent, Principal owner>
//!   id 13  WASM_MEMORY_ID       BTreeMap<(u64 version, u64 offset), Vec<u8>>  agent wasm chunks
//!   id 14  ALERTS_MEMORY_ID     BTreeMap<u64 id, Cbor<Alert>>
//!   id 15  CATALOGUE_MEMORY_ID  Cell<Cbor<Vec<ModelSummary>>>  the repository's active models,
//!                                                         as last fetched
//! ```
//! A retired id is never reused: it stays listed here, marked "abandoned, do not use".

use ic_stable_structures::memory_manager::MemoryId;
pub use ohms_ops::memory::{Memory, get};

pub const CONFIG_MEMORY_ID: MemoryId = MemoryId::new(10);
pub const CANISTERS_MEMORY_ID: MemoryId = MemoryId::new(11);
pub const AGENTS_MEMORY_ID: MemoryId = MemoryId::new(12);
pub const WASM_MEMORY_ID: MemoryId = MemoryId::new(13);
pub const ALERTS_MEMORY_ID: MemoryId = MemoryId::new(14);
pub const CATALOGUE_MEMORY_ID: MemoryId = MemoryId::new(15);
