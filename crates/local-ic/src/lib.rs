//! A local Internet Computer: executes real canister `.wasm` modules with the IC's semantics.
//!
//! - [`LocalIc`] is the test API, shaped like PocketIC's.
//! - [`NetworkState`] is everything a network is (serializable): save it, restore it with
//!   [`LocalIc::from_state`].
//! - Each message executes atomically on wasmtime with the IC's instruction count and limits
//!   (modules are instrumented as the replica instruments them, see `instrument`); a trap rolls
//!   back the heap, mutable globals, stable memory, cycles and outgoing calls of that message.
//! - A test can inject a [`Fault`] ([`LocalIc::inject_fault`]): a callback that traps, or a
//!   reply that is lost (the caller gets `SYS_UNKNOWN`, as when a bounded-wait call times out).
//!
//! What the runtime's instruction counts are, against a replica's:
//! - exact: every wasm instruction's weight and where it is charged (per basic block, before
//!   the block runs; a check at every function entry and loop), the dynamic cost of bulk memory
//!   operations, every System API overhead and per-byte charge, stable memory reads, writes
//!   (with the dirty-page charge) and growth, `performance_counter` (its own overhead
//!   included), and the per-message limits (update and timer 40 B, query 5 B, install and
//!   upgrade 300 B, inspect_message 200 M);
//! - approximated: the logging charge of `debug_print`/`trap` (the free log space is reckoned
//!   per message) and composite queries (run as plain queries);
//! - not modelled: DTS slicing (a message has its whole limit at once; the count is the same),
//!   the round limit and the scheduler's per-execution overheads (they are not visible to a
//!   canister), execution and storage fees in cycles.
//!
//! Layers, bottom up: `wasm_module` (validation), `instrument` (metering and the host's exports,
//! as the replica instruments modules) and `write_barrier`, `system_api` (the
//! `ic0` imports over a staged per-message state), `execution` (one entry point on a cached
//! wasmtime instance; `module_cache` keeps compiled modules on disk between processes), `scheduler` (messages, call contexts, callbacks, rounds), `management`
//! (`aaaaa-aa`), `local_ic` (the test API). An HTTP front end speaking the IC HTTP interface
//! maps `call` onto `Network::submit_ingress`, `query` onto `Network::query` and `read_state`
//! onto the ingress statuses kept in [`NetworkState`]; persisting a network is writing that
//! one structure (e.g. as CBOR) and reading it back with [`LocalIc::from_state`].

pub mod candid_call;
mod canister;
mod certification;
mod cycles;
mod execution;
mod fault;
mod ids;
mod instrument;
mod local_ic;
mod management;
mod module_cache;
mod network;
mod reject;
mod scheduler;
mod stable_memory;
mod system_api;
mod wasm_module;
mod write_barrier;

pub use candid_call::CallError;
pub use canister::{CanisterState, GlobalValue, InstalledCode, RunStatus, WasmHeap};
pub use cycles::Fees;
pub use fault::Fault;
pub use ids::{MANAGEMENT_CANISTER, canister_id_from_index};
pub use local_ic::{LocalIc, MAX_AWAIT_ROUNDS, MessageId};
pub use management::{DEFAULT_PROVISIONAL_CYCLES, payload_decoder_config};
pub use network::{GENESIS_NANOS, IngressStatus, InstructionLimits, NetworkState};
pub use reject::{RejectCode, RejectResponse, error_codes};
pub use stable_memory::{MAX_STABLE_PAGES, PAGE_SIZE as WASM_PAGE_SIZE};
pub use system_api::{SYSTEM_API, costs::Ic0Cost};
pub use wasm_module::{MAX_WASM_MODULE_BYTES, ModuleError};

/// Candid management canister types, re-exported so tests name the same types.
pub use ic_management_canister_types as management_types;
