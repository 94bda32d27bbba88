//! What the operations layer needs to know about the message it runs in.

use candid::Principal;

/// The running message and canister, as the logic sees them. Canisters use [`IcEnv`]; unit
/// tests use a fake, so the logic is tested without a runtime.
pub trait Env {
    /// The caller of the message, as captured at its entry point.
    fn caller(&self) -> Principal;
    /// The id of this canister.
    fn canister_id(&self) -> Principal;
    /// IC time in nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
    fn is_controller(&self, principal: &Principal) -> bool;
    fn canister_version(&self) -> u64;
    fn cycle_balance(&self) -> u128;
    fn stable_memory_bytes(&self) -> u64;
    fn heap_memory_bytes(&self) -> u64;
    /// `ic0.data_certificate`: the certificate of this canister's certified data, present in
    /// a non-replicated query only.
    fn data_certificate(&self) -> Option<Vec<u8>> {
        None
    }
    /// `ic0.certified_data_set` (not in a query).
    fn set_certified_data(&self, _data: &[u8]) {}
}

/// A borrowed environment is one too, so a guard can hold either.
impl<E: Env + ?Sized> Env for &E {
    fn caller(&self) -> Principal {
        (**self).caller()
    }
    fn canister_id(&self) -> Principal {
        (**self).canister_id()
    }
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
    fn is_controller(&self, principal: &Principal) -> bool {
        (**self).is_controller(principal)
    }
    fn canister_version(&self) -> u64 {
        (**self).canister_version()
    }
    fn cycle_balance(&self) -> u128 {
        (**self).cycle_balance()
    }
    fn stable_memory_bytes(&self) -> u64 {
        (**self).stable_memory_bytes()
    }
    fn heap_memory_bytes(&self) -> u64 {
        (**self).heap_memory_bytes()
    }
    fn data_certificate(&self) -> Option<Vec<u8>> {
        (**self).data_certificate()
    }
    fn set_certified_data(&self, data: &[u8]) {
        (**self).set_certified_data(data)
    }
}

/// The environment of a message executing on the IC, with its caller captured once.
///
/// `msg_caller()` names the caller of the method only at its entry: in a timer it is the
/// management canister, and code that runs after an await or in a spawned task is easily moved
/// to where it is no longer the caller it was meant to check. So the caller is read once, by
/// [`IcEnv::capture`] at the entry point, and this value (it is `Copy`) is passed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcEnv {
    caller: Principal,
}

impl IcEnv {
    /// Captures the caller of the message now executing. Call it first thing in an entry point
    /// (update, query, init, post_upgrade), before any await.
    pub fn capture() -> Self {
        Self {
            caller: ic_cdk::api::msg_caller(),
        }
    }

    /// For work the canister starts by itself (timers and what they spawn): the canister is
    /// its own caller, so audit entries name it and no user's rights apply.
    pub fn canister() -> Self {
        Self {
            caller: ic_cdk::api::canister_self(),
        }
    }
}

impl Env for IcEnv {
    fn caller(&self) -> Principal {
        self.caller
    }

    fn canister_id(&self) -> Principal {
        ic_cdk::api::canister_self()
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

    fn data_certificate(&self) -> Option<Vec<u8>> {
        ic_cdk::api::data_certificate()
    }

    fn set_certified_data(&self, data: &[u8]) {
        ic_cdk::api::certified_data_set(data)
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
