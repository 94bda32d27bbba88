//! Stable memory layout of the model_repo canister (virtual memories of the one `MemoryManager`,
//! which `ohms_ops::memory` owns):
//!
//! ```text
//!   id 0 .. 9   the operations layer: admins, audit log, pause and siblings (see ohms_ops::memory)
//!   id 10  CONFIG_MEMORY_ID       Cell<Cbor<Stored config>>        limits + counters (next upload
//!                                                                  id, page high-water mark,
//!                                                                  reserved bytes)
//!   id 11  MODELS_MEMORY_ID       BTreeMap<ModelKey, Cbor<Model>>  model records, without the
//!                                                                  shard table or usage
//!   id 12  SHARD_TABLES_MEMORY_ID BTreeMap<u64 blob, Cbor<Vec<ShardInfo>>>  per model/upload
//!   id 13  MANIFESTS_MEMORY_ID    BTreeMap<u64 blob, Vec<u8>>      the manifest's exact bytes
//!   id 14  USAGE_MEMORY_ID        BTreeMap<ModelKey, (u64, u64)>   tokens, calls per model
//!   id 15  UPLOADS_MEMORY_ID      BTreeMap<u64 upload, Cbor<Upload>>  upload sessions
//!   id 16  RECEIVED_MEMORY_ID     BTreeMap<(u64 upload, u32 shard), Cbor<Received>>  byte
//!                                                                  ranges received, verified flag
//!   id 17  PAGE_TABLE_MEMORY_ID   BTreeMap<(u64 blob, u32 page), u32 frame>  blob pages → frames
//!   id 18  FREE_FRAMES_MEMORY_ID  BTreeMap<u32 frame, ()>          frames freed for reuse
//!   id 19  FRAMES_MEMORY_ID       raw memory: frame f at f × FRAME_BYTES (1 MiB) — model bytes
//!   id 20  UPLOADERS_MEMORY_ID    BTreeMap<Principal, ()>          upload allow-list
//!   id 21  AGENTS_MEMORY_ID       BTreeMap<Principal, u64>         registered agent canisters
//!                                                                  (registration time)
//! ```
//! A model's bytes are one stream (shard i starts at i × shard_size), cut into 1 MiB pages; each
//! page lives in a frame of the frame memory, found through the page table. Deleting a model
//! moves its frames to the free list, which allocation uses before growing the memory.
//! A retired id is never reused: it stays listed here, marked "abandoned, do not use".

use ic_stable_structures::memory_manager::MemoryId;
pub use ohms_ops::memory::{Memory, get};

pub const CONFIG_MEMORY_ID: MemoryId = MemoryId::new(10);
pub const MODELS_MEMORY_ID: MemoryId = MemoryId::new(11);
pub const SHARD_TABLES_MEMORY_ID: MemoryId = MemoryId::new(12);
pub const MANIFESTS_MEMORY_ID: MemoryId = MemoryId::new(13);
pub const USAGE_MEMORY_ID: MemoryId = MemoryId::new(14);
pub const UPLOADS_MEMORY_ID: MemoryId = MemoryId::new(15);
pub const RECEIVED_MEMORY_ID: MemoryId = MemoryId::new(16);
pub const PAGE_TABLE_MEMORY_ID: MemoryId = MemoryId::new(17);
pub const FREE_FRAMES_MEMORY_ID: MemoryId = MemoryId::new(18);
pub const FRAMES_MEMORY_ID: MemoryId = MemoryId::new(19);
pub const UPLOADERS_MEMORY_ID: MemoryId = MemoryId::new(20);
pub const AGENTS_MEMORY_ID: MemoryId = MemoryId::new(21);
