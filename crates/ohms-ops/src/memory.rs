//! The one `MemoryManager` of a canister and the virtual memories the operations layer uses.
//!
//! Stable memory of every OHMS canister (virtual memories of one `MemoryManager`):
//!
//! ```text
//!   id  0  ADMINS_MEMORY_ID       BTreeMap<Principal, ()>        administrators (besides controllers)
//!   id  1  AUDIT_INDEX_MEMORY_ID  Log index  ┐ append-only audit log of admin actions
//!   id  2  AUDIT_DATA_MEMORY_ID   Log data   ┘
//!   id  3  OPS_CONFIG_MEMORY_ID   Cell<Cbor<OpsConfig>>          pause flag, registered siblings
//!   id  4 .. 9                    reserved for the operations layer
//!   id 10 ..                      the canister's own structures (see its `memory.rs`)
//! ```
//! A retired id is never reused: it stays listed, marked "abandoned, do not use".

use std::cell::RefCell;

use ic_stable_structures::DefaultMemoryImpl;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

pub const ADMINS_MEMORY_ID: MemoryId = MemoryId::new(0);
pub const AUDIT_INDEX_MEMORY_ID: MemoryId = MemoryId::new(1);
pub const AUDIT_DATA_MEMORY_ID: MemoryId = MemoryId::new(2);
pub const OPS_CONFIG_MEMORY_ID: MemoryId = MemoryId::new(3);

/// The first id a canister may use for its own structures.
pub const FIRST_CANISTER_MEMORY_ID: u8 = 10;

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

/// The virtual memory with the given id.
pub fn get(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with(|manager| manager.borrow().get(id))
}
