//! The stable state of the operations layer, reached only through `read_ops` / `mutate_ops`.

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::{StableBTreeMap, StableCell, StableLog};
use ohms_types::Siblings;
use serde::{Deserialize, Serialize};

use crate::Cbor;
use crate::memory::{self, Memory};

/// One admin action as stored; its position in the log is its index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub timestamp_nanos: u64,
    pub caller: Principal,
    pub method: String,
    pub summary: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct OpsConfig {
    /// `Some(reason)` while an administrator has paused the canister.
    #[serde(default)]
    pub paused: Option<String>,
    #[serde(default)]
    pub siblings: Siblings,
}

pub struct OpsState {
    pub admins: StableBTreeMap<Principal, (), Memory>,
    pub audit: StableLog<Cbor<AuditRecord>, Memory, Memory>,
    pub config: StableCell<Cbor<OpsConfig>, Memory>,
}

impl OpsState {
    /// Opens the structures in their memories, keeping whatever an earlier version stored.
    fn load() -> Self {
        Self {
            admins: StableBTreeMap::init(memory::get(memory::ADMINS_MEMORY_ID)),
            audit: StableLog::init(
                memory::get(memory::AUDIT_INDEX_MEMORY_ID),
                memory::get(memory::AUDIT_DATA_MEMORY_ID),
            ),
            config: StableCell::init(memory::get(memory::OPS_CONFIG_MEMORY_ID), Cbor::default()),
        }
    }

    pub fn config(&self) -> &OpsConfig {
        &self.config.get().0
    }

    pub fn update_config(&mut self, change: impl FnOnce(&mut OpsConfig)) {
        crate::storable::update_cell(&mut self.config, change)
    }
}

thread_local! {
    static OPS: RefCell<OpsState> = RefCell::new(OpsState::load());
}

pub fn read_ops<R>(f: impl FnOnce(&OpsState) -> R) -> R {
    OPS.with(|state| f(&state.borrow()))
}

pub fn mutate_ops<R>(f: impl FnOnce(&mut OpsState) -> R) -> R {
    OPS.with(|state| f(&mut state.borrow_mut()))
}
