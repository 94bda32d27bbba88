//! Stable memory layout of an agent canister (virtual memories of the one `MemoryManager`,
//! which `ohms_ops::memory` owns):
//!
//! ```text
//!   id 0 .. 9   the operations layer: admins, audit log, pause and siblings (see ohms_ops::memory)
//!   id 10  CONFIG_MEMORY_ID  Cell<Cbor<Config>>                      owner, budget, id counters
//!   id 11  AGENTS_MEMORY_ID  BTreeMap<u64 agent, Cbor<AgentInfo>>
//!   id 12  RUNS_MEMORY_ID    BTreeMap<u64 run, Cbor<RunRecord>>      every run, with its
//!                                                                    generation state
//!   id 13  QUEUE_MEMORY_ID   BTreeMap<u64 run, ()>                   runs not yet settled, in
//!                                                                    order
//!   id 14  MODELS_MEMORY_ID  BTreeMap<String model, Cbor<ModelEntry>>  manifest, shard table
//!                                                                    and load progress
//!   id 15  CHUNKS_MEMORY_ID  BTreeMap<(u64 slot·shard, u64 offset), Vec<u8>>  the shards' bytes
//!   id 16  REQUESTS_MEMORY_ID  BTreeMap<(Principal caller, String request_id), u64 run>
//!                                                                    idempotency keys of runs
//!                                                                    (removed with their run)
//! ```
//! A retired id is never reused: it stays listed here, marked "abandoned, do not use".

use ic_stable_structures::memory_manager::MemoryId;
pub use ohms_ops::memory::{Memory, get};

pub const CONFIG_MEMORY_ID: MemoryId = MemoryId::new(10);
pub const AGENTS_MEMORY_ID: MemoryId = MemoryId::new(11);
pub const RUNS_MEMORY_ID: MemoryId = MemoryId::new(12);
pub const QUEUE_MEMORY_ID: MemoryId = MemoryId::new(13);
pub const MODELS_MEMORY_ID: MemoryId = MemoryId::new(14);
pub const CHUNKS_MEMORY_ID: MemoryId = MemoryId::new(15);
pub const REQUESTS_MEMORY_ID: MemoryId = MemoryId::new(16);
