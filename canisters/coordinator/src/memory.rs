//! Stable memory layout of the coordinator canister (virtual memories of the one `MemoryManager`,
//! which `ohms_ops::memory` owns):
//!
//! ```text
//!   id 0 .. 9   the operations layer: admins, audit log, pause and siblings (see ohms_ops::memory)
//!   id 10  CONFIG_MEMORY_ID       Cell<Cbor<Config>>                           id counters, cursors
//!   id 11  TASKS_MEMORY_ID        BTreeMap<u64 task, Cbor<TaskRecord>>         every task
//!   id 12  OWNER_TASKS_MEMORY_ID  BTreeMap<(Principal, u64 task), ()>          tasks by owner
//!   id 13  ACTIVE_MEMORY_ID       BTreeMap<u64 task, ()>                       tasks running or
//!                                                                              not yet settled
//!   id 14  AGENT_PERF_MEMORY_ID   BTreeMap<(Principal owner, u64 agent), Cbor<AgentPerformance>>
//!   id 15  MODEL_PERF_MEMORY_ID   BTreeMap<String model, Cbor<ModelPerformance>>
//!   id 16  ALERTS_MEMORY_ID       BTreeMap<(Principal feed, u64 alert), Cbor<TaskAlert>>
//!   id 17  DAILY_MEMORY_ID        BTreeMap<u32 day, Cbor<DailyStats>>
//!   id 18  DAY_USERS_MEMORY_ID    BTreeMap<(u32 day, Principal), ()>           who was active
//!   id 19  USERS_MEMORY_ID        BTreeMap<Principal, ()>                      everyone who
//!                                                                              submitted a task
//! ```
//! A retired id is never reused: it stays listed here, marked "abandoned, do not use".

use ic_stable_structures::memory_manager::MemoryId;
pub use ohms_ops::memory::{Memory, get};

pub const CONFIG_MEMORY_ID: MemoryId = MemoryId::new(10);
pub const TASKS_MEMORY_ID: MemoryId = MemoryId::new(11);
pub const OWNER_TASKS_MEMORY_ID: MemoryId = MemoryId::new(12);
pub const ACTIVE_MEMORY_ID: MemoryId = MemoryId::new(13);
pub const AGENT_PERF_MEMORY_ID: MemoryId = MemoryId::new(14);
pub const MODEL_PERF_MEMORY_ID: MemoryId = MemoryId::new(15);
pub const ALERTS_MEMORY_ID: MemoryId = MemoryId::new(16);
pub const DAILY_MEMORY_ID: MemoryId = MemoryId::new(17);
pub const DAY_USERS_MEMORY_ID: MemoryId = MemoryId::new(18);
pub const USERS_MEMORY_ID: MemoryId = MemoryId::new(19);
