//! The coordinator's stable state, reached only through `read_state` / `mutate_state`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::Principal;
use ic_stable_structures::{StableBTreeMap, StableCell};
use ohms_ops::Cbor;
use ohms_types::{AgentPerformance, DailyStats, ModelPerformance, TaskAlert, TaskInfo};
use serde::{Deserialize, Serialize};

use crate::memory::{self, Memory};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub next_task_id: u64,
    pub next_alert_id: u64,
    /// The newest agent factory alert already mirrored into the administrators' feed.
    pub factory_alerts_seen: u64,
    /// Economics' cumulative revenue when the last day was closed.
    pub revenue_at_last_close_e8s: Option<u64>,
    /// Runs and failures in the current hour, for the failure-spike alert.
    pub hour: u64,
    pub hour_runs: u64,
    pub hour_failures: u64,
    pub hour_spike_alerted: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            next_task_id: 1,
            next_alert_id: 1,
            factory_alerts_seen: 0,
            revenue_at_last_close_e8s: None,
            hour: 0,
            hour_runs: 0,
            hour_failures: 0,
            hour_spike_alerted: false,
        }
    }
}

/// What the engine needs to know of an agent beyond what the task shows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentBrief {
    pub system_prompt: String,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: u32,
}

/// A task as stored: what its owner sees, and what advancing it needs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub info: TaskInfo,
    /// One per `info.agents`, same order.
    pub briefs: Vec<AgentBrief>,
    /// When the budget's reservation expires: the task fails rather than run past it.
    pub deadline_nanos: u64,
    /// The owner's monthly token allowance when the task was submitted (quota alerts).
    pub tokens_left_at_submit: u64,
}

pub struct State {
    pub config: StableCell<Cbor<Config>, Memory>,
    pub tasks: StableBTreeMap<u64, Cbor<TaskRecord>, Memory>,
    pub owner_tasks: StableBTreeMap<(Principal, u64), (), Memory>,
    pub active: StableBTreeMap<u64, (), Memory>,
    pub agent_perf: StableBTreeMap<(Principal, u64), Cbor<AgentPerformance>, Memory>,
    pub model_perf: StableBTreeMap<String, Cbor<ModelPerformance>, Memory>,
    pub alerts: StableBTreeMap<(Principal, u64), Cbor<TaskAlert>, Memory>,
    pub daily: StableBTreeMap<u32, Cbor<DailyStats>, Memory>,
    pub day_users: StableBTreeMap<(u32, Principal), (), Memory>,
    pub users: StableBTreeMap<Principal, (), Memory>,
}

impl State {
    fn init() -> Self {
        use memory::*;
        Self {
            config: StableCell::init(get(CONFIG_MEMORY_ID), Cbor(Config::default())),
            tasks: StableBTreeMap::init(get(TASKS_MEMORY_ID)),
            owner_tasks: StableBTreeMap::init(get(OWNER_TASKS_MEMORY_ID)),
            active: StableBTreeMap::init(get(ACTIVE_MEMORY_ID)),
            agent_perf: StableBTreeMap::init(get(AGENT_PERF_MEMORY_ID)),
            model_perf: StableBTreeMap::init(get(MODEL_PERF_MEMORY_ID)),
            alerts: StableBTreeMap::init(get(ALERTS_MEMORY_ID)),
            daily: StableBTreeMap::init(get(DAILY_MEMORY_ID)),
            day_users: StableBTreeMap::init(get(DAY_USERS_MEMORY_ID)),
            users: StableBTreeMap::init(get(USERS_MEMORY_ID)),
        }
    }

    pub fn config(&self) -> Config {
        self.config.get().0.clone()
    }

    pub fn update_config<R>(&mut self, f: impl FnOnce(&mut Config) -> R) -> R {
        ohms_ops::update_cell(&mut self.config, f)
    }

    /// The task: from the heap copy of the active tasks, or decoded from stable memory (a
    /// CBOR decode costs about 170 instructions a byte; the engine reads an active task
    /// several times a message).
    pub fn task(&self, id: u64) -> Option<TaskRecord> {
        if let Some(task) = ACTIVE_TASKS.with_borrow(|cache| cache.get(&id).cloned()) {
            return Some(task);
        }
        let task = self.tasks.get(&id).map(|t| t.0)?;
        if self.active.contains_key(&id) {
            ACTIVE_TASKS.with_borrow_mut(|cache| cache.insert(id, task.clone()));
        }
        Some(task)
    }

    /// Tasks still running (the active set also holds ended tasks not yet settled).
    pub fn running_tasks(&self) -> u64 {
        self.active
            .iter()
            .filter(|e| {
                self.task(*e.key())
                    .is_some_and(|t| t.info.status == ohms_types::TaskStatus::Running)
            })
            .count() as u64
    }

    /// Stores the task; a task that has ended and released its reservation leaves the active
    /// set (and the heap copy).
    pub fn put_task(&mut self, task: TaskRecord) {
        let id = task.info.id.0;
        if task.info.status.is_final() && task.info.reservation_released {
            self.active.remove(&id);
            ACTIVE_TASKS.with_borrow_mut(|cache| cache.remove(&id));
        } else if self.active.contains_key(&id) {
            ACTIVE_TASKS.with_borrow_mut(|cache| cache.insert(id, task.clone()));
        }
        self.tasks.insert(id, Cbor(task));
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::init());
    /// Heap copies of the active tasks, kept equal to stable memory by `put_task` (a trap
    /// rolls both back; an upgrade starts with none and decodes each task once).
    static ACTIVE_TASKS: RefCell<BTreeMap<u64, TaskRecord>> = RefCell::default();
}

pub fn read_state<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(&s.borrow()))
}

pub fn mutate_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}
