//! Running one entry point of a canister on wasmtime, Cranelift-compiled as on the replica.
//!
//! Instructions are counted by the module itself (see `instrument`): before an entry point runs
//! its counter global is set to the message's limit, and what is left afterwards says how many
//! IC instructions it used; the engine's own metering is off. Compiled modules are kept for the
//! process by the hash of their instrumented bytes, so installing the same wasm again (every
//! test does) does not compile it again, and on disk for later processes (`module_cache`).
//!
//! A [`LiveInstance`] is a cache: the truth is the committed [`WasmHeap`] in the canister state.
//! Before a message the instance is brought in line with it (a no-op when the last message
//! committed), after a successful message the heap is copied back; after a trap or a query the
//! instance is marked stale and reloaded before the next message. This makes every message
//! atomic and keeps the network state serializable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, Func, Global, Instance, Linker, Memory, Module, Ref, Store, Table, V128, Val,
};

use crate::canister::{GlobalValue, WasmHeap};
use crate::instrument;
use crate::module_cache;
use crate::stable_memory::PAGE_SIZE;
use crate::system_api::{self, SystemState, TrapCause, WasmClosure};
use crate::wasm_module::{self, ModuleError, PreparedModule, TABLE_EXPORT};
use crate::write_barrier;

/// Why a message did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error(transparent)]
    Trap(#[from] TrapCause),
    #[error("Canister trapped: {0}")]
    WasmTrap(String),
    #[error("Canister exceeded its wasm memory limit of {limit} bytes")]
    WasmMemoryLimit { limit: u64 },
    #[error("Canister's callback table has no function at index {0}")]
    BadCallback(u32),
    #[error("Failed to instantiate the canister module: {0}")]
    Instantiation(String),
}

impl ExecutionError {
    /// The replica's error code for this failure, the same in updates and queries.
    pub fn error_code(&self) -> &'static str {
        use crate::reject::error_codes;
        match self {
            Self::Trap(TrapCause::InstructionLimit(_)) => {
                error_codes::CANISTER_INSTRUCTION_LIMIT_EXCEEDED
            }
            Self::Trap(TrapCause::ContractViolation(_)) => error_codes::CANISTER_CONTRACT_VIOLATION,
            Self::Trap(TrapCause::Explicit(_)) => error_codes::CANISTER_CALLED_TRAP,
            Self::Trap(TrapCause::StableDirtyPageLimit(_)) => {
                error_codes::CANISTER_MEMORY_ACCESS_LIMIT_EXCEEDED
            }
            Self::WasmMemoryLimit { .. } => error_codes::CANISTER_OUT_OF_MEMORY,
            Self::Trap(_) | Self::WasmTrap(_) | Self::BadCallback(_) | Self::Instantiation(_) => {
                error_codes::CANISTER_TRAPPED
            }
        }
    }
}

/// A module compiled and instantiated, with handles to what the host reaches into.
pub struct LiveInstance {
    pub module_hash: [u8; 32],
    prepared: Arc<PreparedModule>,
    module: Module,
    store: Store<SystemState>,
    instance: Instance,
    memory: Option<Memory>,
    table: Option<Table>,
    globals: Vec<Global>,
    /// The instruction counter the instrumentation added.
    counter: Global,
    /// The write barrier's map of written 4 KiB pages (modules with a heap).
    written: Option<Memory>,
    /// True when linear memory equals the committed heap but for the pages marked written,
    /// so that saving or restoring copies just those.
    tracked: bool,
    /// True when linear memory and globals equal the committed heap.
    in_sync: bool,
}

/// What one run produced: the staged system state, the outcome and the instructions used.
pub struct RunResult {
    pub state: SystemState,
    pub outcome: Result<(), ExecutionError>,
    pub instructions: u64,
}

/// The wasm engine and the `ic0` imports, shared by all canisters.
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<SystemState>,
}

/// Most bytes of wasm stack a message may use. The replica allows 5 MiB, but wasmtime runs
/// wasm on the calling thread's stack and test threads have 2 MiB: 1 MiB leaves the host room.
const MAX_WASM_STACK_BYTES: usize = 1024 * 1024;

/// One engine per process, so that compiled modules can be shared by every network in it.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        // As the replica configures wasmtime: 128-bit SIMD but not the relaxed-SIMD proposal
        // (the validator in `wasm_module` refuses it first), NaNs canonicalized so float
        // results do not depend on the machine, no engine metering (the module counts itself).
        config
            .wasm_simd(true)
            .wasm_relaxed_simd(false)
            // The write barrier's page map is a second memory; canister modules with more
            // than one memory are still refused by the validator in `wasm_module`.
            .wasm_multi_memory(true)
            .wasm_memory64(false)
            .cranelift_nan_canonicalization(true)
            .max_wasm_stack(MAX_WASM_STACK_BYTES);
        Engine::new(&config).expect("the engine configuration is valid")
    })
}

/// The compiled form of `prepared`, compiled once per process (tests install the same wasm in
/// many networks, and Cranelift takes about a second for a canister) and kept on disk for the
/// next process (see `module_cache`).
fn compile(prepared: &PreparedModule) -> Result<Module, InstantiateError> {
    static COMPILED: OnceLock<Mutex<HashMap<[u8; 32], Module>>> = OnceLock::new();
    let key: [u8; 32] = Sha256::digest(&prepared.wasm).into();
    let mut compiled = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(module) = compiled.get(&key) {
        return Ok(module.clone());
    }
    let module = match module_cache::load(engine(), &key) {
        Some(module) => module,
        None => {
            let module = Module::new(engine(), &prepared.wasm)
                .map_err(|e| InstantiateError::Module(ModuleError::Invalid(e.to_string())))?;
            module_cache::store(&key, &module);
            module
        }
    };
    compiled.insert(key, module.clone());
    Ok(module)
}

impl WasmRuntime {
    pub fn new() -> Self {
        let engine = engine().clone();
        let mut linker = Linker::new(&engine);
        system_api::link(&mut linker).expect("the ic0 imports are defined once each");
        Self { engine, linker }
    }

    /// Validates and compiles `wasm`, then instantiates it (running a wasm `start` function).
    pub fn instantiate(
        &self,
        wasm: &[u8],
        start_fuel: u64,
    ) -> Result<LiveInstance, InstantiateError> {
        let prepared = Arc::new(wasm_module::prepare(wasm)?);
        self.instantiate_prepared(prepared, start_fuel)
    }

    fn instantiate_prepared(
        &self,
        prepared: Arc<PreparedModule>,
        start_fuel: u64,
    ) -> Result<LiveInstance, InstantiateError> {
        let module = compile(&prepared)?;
        let mut store = Store::new(&self.engine, SystemState::default());
        let instance = self
            .linker
            .instantiate(&mut store, &module)
            .map_err(|e| InstantiateError::Start(e.to_string()))?;
        let memory = instance.get_memory(&mut store, wasm_module::MEMORY_EXPORT);
        let table = instance.get_table(&mut store, TABLE_EXPORT);
        let globals = prepared
            .mutable_globals
            .iter()
            .map(|name| {
                instance
                    .get_global(&mut store, name)
                    .ok_or_else(|| InstantiateError::Start(format!("missing host export {name}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let counter = instance
            .get_global(&mut store, instrument::COUNTER_EXPORT)
            .ok_or_else(|| InstantiateError::Start("missing the instruction counter".into()))?;
        let written = instance.get_memory(&mut store, write_barrier::MAP_EXPORT);
        let mut live = LiveInstance {
            module_hash: prepared.module_hash,
            prepared,
            module,
            store,
            instance,
            memory,
            table,
            globals,
            counter,
            written,
            tracked: false,
            in_sync: true,
        };
        // The module's `start` function, which instrumentation took out of instantiation so
        // that it runs with a counter (as the replica runs `canister_start`).
        if live.exports_function(instrument::START_EXPORT) {
            let state = SystemState {
                entry: Some(system_api::EntryPoint::Start),
                instruction_limit: start_fuel,
                ..SystemState::default()
            };
            let run = live.run(Target::Export(instrument::START_EXPORT), state, 0);
            run.outcome
                .map_err(|e| InstantiateError::Start(e.to_string()))?;
        }
        Ok(live)
    }

    /// A fresh instance of the same module (used when the heap must shrink back).
    fn reinstantiate(&self, live: &LiveInstance) -> Result<LiveInstance, InstantiateError> {
        self.instantiate_prepared(live.prepared.clone(), u64::MAX)
    }

    /// Makes `live` reflect `heap`: restores just the pages the last message wrote when the
    /// instance was in step with `heap` before it, otherwise copies the whole heap
    /// (reinstantiating if linear memory has grown past it).
    pub fn load_heap(
        &self,
        live: &mut LiveInstance,
        heap: &WasmHeap,
    ) -> Result<(), InstantiateError> {
        if live.in_sync {
            return Ok(());
        }
        let current = live.memory.map_or(0, |m| m.data_size(&live.store));
        if live.tracked && current == heap.memory.len() {
            live.restore_written_pages(&heap.memory);
        } else {
            if current > heap.memory.len() {
                *live = self.reinstantiate(live)?;
            }
            if let Some(memory) = live.memory {
                let have = memory.data_size(&live.store) as u64;
                let want = heap.memory.len() as u64;
                if want > have {
                    memory
                        .grow(&mut live.store, (want - have) / PAGE_SIZE)
                        .map_err(|e| InstantiateError::Start(e.to_string()))?;
                }
                memory
                    .data_mut(&mut live.store)
                    .copy_from_slice(&heap.memory);
            }
            live.clear_written();
            live.tracked = true;
        }
        for (global, value) in live.globals.iter().zip(&heap.globals) {
            global
                .set(&mut live.store, to_val(*value))
                .map_err(|e| InstantiateError::Start(e.to_string()))?;
        }
        live.in_sync = true;
        Ok(())
    }
}

impl Default for WasmRuntime {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a module could not be instantiated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantiateError {
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error("instantiating the module failed: {0}")]
    Start(String),
}

/// Which function of the module to run.
pub enum Target<'a> {
    Export(&'a str),
    Closure(WasmClosure),
}

impl LiveInstance {
    pub fn exports_function(&self, name: &str) -> bool {
        self.module
            .get_export(name)
            .is_some_and(|export| export.func().is_some())
    }

    pub fn update_methods(&self) -> &std::collections::BTreeSet<String> {
        &self.prepared.update_methods
    }

    pub fn query_methods(&self) -> &std::collections::BTreeSet<String> {
        &self.prepared.query_methods
    }

    pub fn composite_query_methods(&self) -> &std::collections::BTreeSet<String> {
        &self.prepared.composite_query_methods
    }

    /// Brings the committed heap in line with linear memory and globals after a message
    /// committed: only the pages it wrote (and any it grew) when the instance was in step with
    /// `into` before the message, the whole heap otherwise.
    pub fn save_heap(&mut self, into: &mut WasmHeap) {
        match self.memory {
            Some(memory) if self.tracked && memory.data_size(&self.store) >= into.memory.len() => {
                // Pages the message grew are new as a whole; of the rest, the written ones.
                let old_len = into.memory.len();
                let ranges = self.take_written_pages(old_len);
                let data = memory.data(&self.store);
                into.memory.extend_from_slice(&data[old_len..]);
                for range in ranges {
                    into.memory[range.clone()].copy_from_slice(&data[range]);
                }
            }
            Some(memory) => {
                into.memory.clear();
                into.memory.extend_from_slice(memory.data(&self.store));
                self.clear_written();
            }
            None => into.memory.clear(),
        }
        self.tracked = true;
        into.globals = self
            .globals
            .iter()
            .filter_map(|g| from_val(&g.get(&mut self.store)))
            .collect();
    }

    /// The pages marked written within the first `len` bytes, in order; clears the marks.
    fn take_written_pages(&mut self, len: usize) -> Vec<std::ops::Range<usize>> {
        let Some(written) = self.written else {
            return Vec::new();
        };
        let pages = len.div_ceil(write_barrier::PAGE_BYTES);
        let marks = &mut written.data_mut(&mut self.store)[..pages];
        let ranges = marks
            .iter()
            .enumerate()
            .filter(|(_, mark)| **mark != 0)
            .map(|(page, _)| {
                let start = page * write_barrier::PAGE_BYTES;
                start..(start + write_barrier::PAGE_BYTES).min(len)
            })
            .collect();
        marks.fill(0);
        ranges
    }

    /// Copies the pages the last message wrote back from `committed` (after a trap or a
    /// query), with `committed` as long as linear memory.
    fn restore_written_pages(&mut self, committed: &[u8]) {
        let Some(memory) = self.memory else {
            return;
        };
        let ranges = self.take_written_pages(committed.len());
        let heap = memory.data_mut(&mut self.store);
        for range in ranges {
            heap[range.clone()].copy_from_slice(&committed[range]);
        }
    }

    /// Forgets every mark (after a whole-heap copy).
    fn clear_written(&mut self) {
        if let Some(written) = self.written {
            written.data_mut(&mut self.store).fill(0);
        }
    }

    /// The instance no longer matches the committed heap (after a trap or a query).
    pub fn mark_stale(&mut self) {
        self.in_sync = false;
    }

    /// Bytes of linear memory.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.map_or(0, |m| m.data_size(&self.store) as u64)
    }

    /// Runs `target` with `state` and at most `state.instruction_limit` instructions.
    pub fn run(
        &mut self,
        target: Target<'_>,
        mut state: SystemState,
        wasm_memory_limit: u64,
    ) -> RunResult {
        let limit = state.instruction_limit;
        state.memory = self.memory;
        state.written = self.written;
        state.counter = Some(self.counter);
        *self.store.data_mut() = state;
        let outcome = self
            .counter
            .set(&mut self.store, Val::I64(system_api::counter_start(limit)))
            .map_err(|e| ExecutionError::WasmTrap(e.to_string()))
            .and_then(|()| self.call(target));
        let instructions = system_api::instructions_used(&self.counter, &mut self.store, limit);
        let outcome = outcome.and_then(|()| {
            let used = self.memory_bytes();
            if wasm_memory_limit > 0 && used > wasm_memory_limit {
                Err(ExecutionError::WasmMemoryLimit {
                    limit: wasm_memory_limit,
                })
            } else {
                Ok(())
            }
        });
        let state = std::mem::take(self.store.data_mut());
        RunResult {
            state,
            outcome,
            instructions,
        }
    }

    fn call(&mut self, target: Target<'_>) -> Result<(), ExecutionError> {
        let (func, args): (Func, Vec<Val>) = match target {
            Target::Export(name) => {
                let func = self
                    .instance
                    .get_func(&mut self.store, name)
                    .ok_or_else(|| {
                        ExecutionError::WasmTrap(format!("no exported function {name}"))
                    })?;
                (func, Vec::new())
            }
            Target::Closure(closure) => {
                let func = self
                    .table
                    .and_then(|t| t.get(&mut self.store, u64::from(closure.table_index)))
                    .and_then(|r| match r {
                        Ref::Func(f) => f,
                        _ => None,
                    })
                    .ok_or(ExecutionError::BadCallback(closure.table_index))?;
                (func, vec![Val::I32(closure.env as i32)])
            }
        };
        func.call(&mut self.store, &args, &mut []).map_err(classify)
    }
}

/// Turns a wasmtime error into the trap the IC would report.
fn classify(error: wasmtime::Error) -> ExecutionError {
    if let Some(cause) = error.downcast_ref::<TrapCause>() {
        return ExecutionError::Trap(cause.clone());
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(code) => ExecutionError::WasmTrap(code.to_string()),
        None => ExecutionError::WasmTrap(error.to_string()),
    }
}

fn to_val(value: GlobalValue) -> Val {
    match value {
        GlobalValue::I32(v) => Val::I32(v),
        GlobalValue::I64(v) => Val::I64(v),
        GlobalValue::F32(bits) => Val::F32(bits),
        GlobalValue::F64(bits) => Val::F64(bits),
        GlobalValue::V128(v) => Val::V128(V128::from(v)),
    }
}

/// Numeric globals only: the module rewrite never exports reference-typed globals.
fn from_val(value: &Val) -> Option<GlobalValue> {
    Some(match value {
        Val::I32(v) => GlobalValue::I32(*v),
        Val::I64(v) => GlobalValue::I64(*v),
        Val::F32(bits) => GlobalValue::F32(*bits),
        Val::F64(bits) => GlobalValue::F64(*bits),
        Val::V128(v) => GlobalValue::V128(v.as_u128()),
        _ => return None,
    })
}
