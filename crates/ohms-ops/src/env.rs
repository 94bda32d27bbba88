//! What the operations layer needs to know about the message it runs in.

use candid::Principal;

/// The running message and canister, as the logic sees them. Canisters use [`IcEnv`]; unit
/// tests use a fake, so the logic is tested without a runtime.
pub trait Env {
    /// The caller of the current message, captured before any await.
    fn caller(&self) -> Principal;
    /// IC time in nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
    fn is_controller(&self, principal: &Principal) -> bool;
    fn canister_version(&self) -> u64;
    fn cycle_balance(&self) -> u128;
    fn stable_memory_bytes(&self) -> u64;
    fn heap_memory_bytes(&self) -> u64;
}

/// The environment of a message executing on the IC.
pub struct IcEnv;

impl Env for IcEnv {
    fn caller(&self) -> Principal {
        ic_cdk::api::msg_caller()
    }

    fn now_nanos(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn is_controller(&self, principal: &Principal) -> bool {
        ic_cdk::api::is_controller(principal)
    }

    fn canister_version(&self) -> u64 {
        ic_cdk::api::canister_version()
    }

    fn cycle_balance(&self) -> u128 {
        ic_cdk::api::canister_cycle_balance()
    }

    fn stable_memory_bytes(&self) -> u64 {
        ic_cdk::stable::stable_size() * WASM_PAGE_BYTES
    }

    fn heap_memory_bytes(&self) -> u64 {
        heap_pages() * WASM_PAGE_BYTES
    }
}

const WASM_PAGE_BYTES: u64 = 64 * 1024;

#[cfg(target_arch = "wasm32")]
fn heap_pages() -> u64 {
    core::arch::wasm32::memory_size(0) as u64
}

#[cfg(not(target_arch = "wasm32"))]
fn heap_pages() -> u64 {
    0
}
