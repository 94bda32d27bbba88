//! The agent canister's stable state, reached only through `read_state` / `mutate_state`.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{StableBTreeMap, StableCell, Storable};
use ohms_llm::generate::Generation;
use ohms_ops::Cbor;
use ohms_types::{
    AgentInfo, DEFAULT_INSTRUCTIONS_PER_MESSAGE, GenerationParams, LoadedModel, RunInfo,
};
use serde::{Deserialize, Serialize};

use crate::memory::{self, Memory};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The user whose agents this canister hosts (`None`: unassigned, runs nothing).
    pub owner: Option<Principal>,
    pub instructions_per_message: u64,
    pub next_run_id: u64,
    pub next_model_slot: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            owner: None,
            instructions_per_message: DEFAULT_INSTRUCTIONS_PER_MESSAGE,
            next_run_id: 1,
            next_model_slot: 1,
        }
    }
}

/// A run: what its caller sees, and what continuing it needs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub info: RunInfo,
    pub prompt: String,
    pub params: GenerationParams,
    /// The economics reservation the usage is committed against.
    pub reservation: Option<u64>,
    /// Set once the prompt is tokenized; carries the sampler and the tokens so far.
    pub generation: Option<Generation>,
    /// Generation messages started since the last one that finished (see `runs::work`).
    #[serde(default)]
    pub attempts: u32,
    /// A commit of this run's usage may have gone through (its reply was lost).
    #[serde(default)]
    pub commit_unknown: bool,
    /// Why economics refused the usage, if it did.
    #[serde(default)]
    pub settle_error: Option<String>,
    /// The idempotency key the run was started with (its caller and `request_id`).
    #[serde(default)]
    pub request: Option<RequestKey>,
}

/// A run's idempotency key: its caller and the caller's `request_id`.
pub type RequestKey = (Principal, RequestId);

/// The longest idempotency key (`RunArgs::request_id`), in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 64;

/// A `RunArgs::request_id` (1 to `MAX_REQUEST_ID_BYTES` bytes; `runs` checks it), bounded so
/// that it can be part of a stable map's key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(transparent)]
pub struct RequestId(pub String);

impl Storable for RequestId {
    const BOUND: Bound = Bound::Bounded {
        max_size: MAX_REQUEST_ID_BYTES as u32,
        is_fixed_size: false,
    };

    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.as_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Self(String::from_utf8(bytes.into_owned()).expect("stored request ids are UTF-8"))
    }
}

/// Finished runs kept (the oldest settled ones go first): stable memory stays bounded.
pub const MAX_KEPT_RUNS: u64 = 1_000;

/// Drops the oldest settled runs beyond `MAX_KEPT_RUNS`, with their idempotency keys.
pub fn prune_runs(s: &mut State) {
    let excess = s.runs.len().saturating_sub(MAX_KEPT_RUNS);
    if excess == 0 {
        return;
    }
    let old: Vec<u64> = s
        .runs
        .iter()
        .map(|e| *e.key())
        .filter(|id| !s.queue.contains_key(id))
        .take(excess as usize)
        .collect();
    for id in old {
        if let Some(key) = s.runs.remove(&id).and_then(|run| run.0.request) {
            s.requests.remove(&key);
        }
    }
}

/// A model this canister holds or is fetching.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    pub info: LoadedModel,
    /// Key prefix of this model's chunks.
    pub slot: u64,
    /// The manifest's exact bytes (their sha256 is the root hash); a CBOR byte string, not an
    /// array of numbers, since the entry is read and written with every chunk.
    #[serde(with = "serde_bytes")]
    pub manifest: Vec<u8>,
    /// Each shard's size and sha256 (hex), from the verified manifest.
    pub shards: Vec<(u64, String)>,
    /// Bytes of each shard stored so far (chunks arrive in order per shard).
    pub received: Vec<u64>,
    pub verified: Vec<bool>,
    /// Verification failures, to give up on a repository that keeps serving bad bytes.
    pub failures: u32,
}

pub struct State {
    pub config: StableCell<Cbor<Config>, Memory>,
    pub agents: StableBTreeMap<u64, Cbor<AgentInfo>, Memory>,
    pub runs: StableBTreeMap<u64, Cbor<RunRecord>, Memory>,
    pub queue: StableBTreeMap<u64, (), Memory>,
    pub models: StableBTreeMap<String, Cbor<ModelEntry>, Memory>,
    pub chunks: StableBTreeMap<(u64, u64), Vec<u8>, Memory>,
    pub requests: StableBTreeMap<RequestKey, u64, Memory>,
}

impl State {
    fn init() -> Self {
        use memory::*;
        Self {
            config: StableCell::init(get(CONFIG_MEMORY_ID), Cbor(Config::default())),
            agents: StableBTreeMap::init(get(AGENTS_MEMORY_ID)),
            runs: StableBTreeMap::init(get(RUNS_MEMORY_ID)),
            queue: StableBTreeMap::init(get(QUEUE_MEMORY_ID)),
            models: StableBTreeMap::init(get(MODELS_MEMORY_ID)),
            chunks: StableBTreeMap::init(get(CHUNKS_MEMORY_ID)),
            requests: StableBTreeMap::init(get(REQUESTS_MEMORY_ID)),
        }
    }

    pub fn config(&self) -> Config {
        self.config.get().0.clone()
    }

    pub fn update_config<R>(&mut self, f: impl FnOnce(&mut Config) -> R) -> R {
        ohms_ops::update_cell(&mut self.config, f)
    }

    pub fn agent(&self, id: u64) -> Option<AgentInfo> {
        self.agents.get(&id).map(|a| a.0)
    }

    pub fn run(&self, id: u64) -> Option<RunRecord> {
        self.runs.get(&id).map(|r| r.0)
    }

    pub fn put_run(&mut self, run: RunRecord) {
        self.runs.insert(run.info.id, Cbor(run));
    }

    /// The run started with idempotency key `key`, if it is still kept.
    pub fn run_of_request(&self, key: &RequestKey) -> Option<RunRecord> {
        self.requests.get(key).and_then(|id| self.run(id))
    }

    pub fn model(&self, id: &str) -> Option<ModelEntry> {
        self.models.get(&id.to_string()).map(|m| m.0)
    }

    pub fn put_model(&mut self, entry: ModelEntry) {
        self.models
            .insert(entry.info.model.as_str().to_string(), Cbor(entry));
    }
}

/// Chunk keys: a model's slot and shard in one number, so one map holds every model's bytes.
pub fn chunk_key(slot: u64, shard: u32, offset: u64) -> (u64, u64) {
    ((slot << 32) | u64::from(shard), offset)
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
