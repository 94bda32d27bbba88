//! A fake [`Env`] for unit tests.

use std::cell::Cell;

use candid::Principal;

use crate::Env;

pub struct TestEnv {
    pub caller: Cell<Principal>,
    pub now: Cell<u64>,
    pub controller: Principal,
}

impl TestEnv {
    pub fn new() -> Self {
        Self {
            caller: Cell::new(principal(1)),
            now: Cell::new(1_700_000_000_000_000_000),
            controller: principal(1),
        }
    }

    pub fn as_caller(&self, caller: Principal) -> &Self {
        self.caller.set(caller);
        self
    }
}

pub fn principal(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}

impl Env for TestEnv {
    fn caller(&self) -> Principal {
        self.caller.get()
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
