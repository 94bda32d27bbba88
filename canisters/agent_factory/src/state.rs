//! The factory's stable state, reached only through `read_state` / `mutate_state`.

use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::{StableBTreeMap, StableCell};
use ohms_ops::Cbor;
use ohms_types::{AgentCanisterRecord, Alert, FactorySettings, ModelSummary};
use serde::{Deserialize, Serialize};

use crate::memory::{self, Memory};

/// An agent wasm: its bytes live in the wasm map under `version`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WasmMeta {
    pub version: u64,
    pub sha256: String,
    pub total_bytes: u64,
    /// Bytes received so far (equals `total_bytes` once complete).
    pub received: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub settings: FactorySettings,
    pub next_agent_id: u64,
    pub next_alert_id: u64,
    pub next_wasm_version: u64,
    /// The module new agent canisters get.
    pub active_wasm: Option<WasmMeta>,
    /// An upload in progress.
    pub staging_wasm: Option<WasmMeta>,
    /// When the catalogue was fetched last (nanos).
    pub catalogue_at: u64,
    /// The owner whose agent canister the last top-up round ended with.
    #[serde(default)]
    pub top_up_cursor: Option<Principal>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            settings: crate::cycles::default_settings(),
            next_agent_id: 1,
            next_alert_id: 1,
            next_wasm_version: 1,
            active_wasm: None,
            staging_wasm: None,
            catalogue_at: 0,
            top_up_cursor: None,
        }
    }
}

pub struct State {
    pub config: StableCell<Cbor<Config>, Memory>,
    pub canisters: StableBTreeMap<Principal, Cbor<AgentCanisterRecord>, Memory>,
    pub agents: StableBTreeMap<u64, Principal, Memory>,
    pub wasm: StableBTreeMap<(u64, u64), Vec<u8>, Memory>,
    pub alerts: StableBTreeMap<u64, Cbor<Alert>, Memory>,
    pub catalogue: StableCell<Cbor<Vec<ModelSummary>>, Memory>,
}

impl State {
    fn init() -> Self {
        use memory::*;
        Self {
            config: StableCell::init(get(CONFIG_MEMORY_ID), Cbor(Config::default())),
            canisters: StableBTreeMap::init(get(CANISTERS_MEMORY_ID)),
            agents: StableBTreeMap::init(get(AGENTS_MEMORY_ID)),
            wasm: StableBTreeMap::init(get(WASM_MEMORY_ID)),
            alerts: StableBTreeMap::init(get(ALERTS_MEMORY_ID)),
            catalogue: StableCell::init(get(CATALOGUE_MEMORY_ID), Cbor(Vec::new())),
        }
    }

    pub fn config(&self) -> Config {
        self.config.get().0.clone()
    }

    pub fn update_config<R>(&mut self, f: impl FnOnce(&mut Config) -> R) -> R {
        ohms_ops::update_cell(&mut self.config, f)
    }

    pub fn canister_of(&self, owner: &Principal) -> Option<AgentCanisterRecord> {
        self.canisters.get(owner).map(|r| r.0)
    }

    pub fn put_canister(&mut self, record: AgentCanisterRecord) {
        self.canisters.insert(record.owner, Cbor(record));
    }

    pub fn catalogue(&self) -> Vec<ModelSummary> {
        self.catalogue.get().0.clone()
    }

    /// The active agent wasm's bytes.
    pub fn active_wasm(&self) -> Option<(WasmMeta, Vec<u8>)> {
        let meta = self.config().active_wasm?;
        let mut bytes = Vec::with_capacity(meta.total_bytes as usize);
        for chunk in self
            .wasm
            .range((meta.version, 0)..=(meta.version, u64::MAX))
        {
            bytes.extend_from_slice(&chunk.value());
        }
        Some((meta, bytes))
    }

    pub fn add_alert(&mut self, alert: impl FnOnce(u64) -> Alert) {
        let id = self.update_config(|c| {
            c.next_alert_id += 1;
            c.next_alert_id - 1
        });
        self.alerts.insert(id, Cbor(alert(id)));
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::init());
}

pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(&s.borrow()))
}

pub fn mutate_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}
