//! A fake [`Env`] for unit tests.

use std::cell::Cell;

use candid::Principal;

use crate::Env;

#[derive(Debug)]
pub struct TestEnv {
    pub caller: Cell<Principal>,
    pub now: Cell<u64>,
    pub controller: Principal,
    pub canister: Principal,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        Self {
            caller: Cell::new(principal(1)),
            now: Cell::new(1_700_000_000_000_000_000),
            controller: principal(1),
            canister: canister(99),
        }
    }

    pub fn as_caller(&self, caller: Principal) -> &Self {
        self.caller.set(caller);
        self
    }
}

/// A test principal: 29 bytes of `n`.
pub fn principal(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}

/// A canister id as the IC allocates them: an 8-byte index and the opaque class tag 0x01.
pub fn canister(index: u64) -> Principal {
    let mut bytes = index.to_be_bytes().to_vec();
    bytes.extend([0x01, 0x01]);
    Principal::from_slice(&bytes)
}

impl Env for TestEnv {
    fn caller(&self) -> Principal {
        self.caller.get()
    }
    fn canister_id(&self) -> Principal {
        self.canister
    }
    fn now_nanos(&self) -> u64 {
        self.now.get()
    }
    fn is_controller(&self, principal: &Principal) -> bool {
        *principal == self.controller
    }
    fn canister_version(&self) -> u64 {
        3
    }
    fn cycle_balance(&self) -> u128 {
        5_000_000_000_000
    }
    fn stable_memory_bytes(&self) -> u64 {
        65_536
    }
    fn heap_memory_bytes(&self) -> u64 {
        131_072
    }
}
