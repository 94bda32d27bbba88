//! What each `ic0` function costs in instructions: one row per function, as the replica
//! charges it (dfinity/ic `rs/embedders/src/wasmtime_embedder/{linker.rs,
//! system_api_complexity.rs}` and `wasm_utils/system_api_replacements.rs`).
//!
//! A call pays its row's `overhead` plus `per_byte` times the bytes it moves (which bytes is
//! said in each row's comment), subtracted from the module's instruction counter before the
//! function does anything. The wasm `call` instruction itself (5) and the pushes of its
//! arguments are counted by the instrumentation like any other instruction.
//!
//! Exact: every overhead and per-byte factor below, and the stable memory charges (reads and
//! writes pay 20 plus their length; writes pay 1,000 more for every 4 KiB page they dirty
//! first in the message, the application-subnet `dirty_page_overhead`; growing pays 100;
//! `stable64_size` nothing beyond the call; the 32-bit `stable_*` functions cost the same). Approximated: the logging charge of
//! `debug_print` and `trap` (`2·min(L, capacity) + 50·min(L, remaining)`) takes the remaining
//! log space as what this message has not yet logged of the 4 KiB capacity; `debug_print` is
//! charged as on an application subnet, where debug printing is rate-limited (no `+L`).

/// Instructions a System API function costs: `overhead + per_byte × bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ic0Cost {
    pub name: &'static str,
    pub overhead: u64,
    pub per_byte: u64,
}

impl Ic0Cost {
    pub fn of(&self, bytes: u64) -> u64 {
        self.overhead
            .saturating_add(self.per_byte.saturating_mul(bytes))
    }
}

/// Bytes a payload costs per byte to hand to the replica (`BYTE_TRANSMISSION_COST_FACTOR`).
pub const TRANSMISSION: u64 = 50;
/// Canister log capacity the logging charge is reckoned against.
pub const LOG_CAPACITY: u64 = 4 * 1024;
/// Extra instructions for each 4 KiB stable memory page a message dirties first.
pub const DIRTY_PAGE_OVERHEAD: u64 = 1_000;
/// The page size dirty pages are counted in.
pub const OS_PAGE_BYTES: u64 = 4 * 1024;

macro_rules! ic0_costs {
    ($($name:ident = $overhead:expr, $per_byte:expr;)*) => {
        $(
            #[allow(non_upper_case_globals)]
            pub const $name: Ic0Cost = Ic0Cost {
                name: stringify!($name),
                overhead: $overhead,
                per_byte: $per_byte,
            };
        )*
        /// Every `ic0` function this runtime provides, with its cost.
        pub const SYSTEM_API: &[Ic0Cost] = &[$($name),*];
    };
}

ic0_costs! {
    msg_arg_data_size = 500, 0;
    msg_arg_data_copy = 500, 1; // size
    msg_caller_size = 500, 0;
    msg_caller_copy = 500, 1; // size
    msg_caller_info_data_size = 500, 0;
    msg_caller_info_data_copy = 500, 1; // size
    msg_caller_info_signer_size = 500, 0;
    msg_caller_info_signer_copy = 500, 1; // size
    msg_reject_code = 500, 0;
    msg_reject_msg_size = 500, 0;
    msg_reject_msg_copy = 500, 1; // size
    msg_deadline = 500, 0;
    msg_reply_data_append = 500, TRANSMISSION; // size
    msg_reply = 500, 0;
    msg_reject = 500, TRANSMISSION; // size of the message
    msg_cycles_available128 = 500, 0;
    msg_cycles_refunded128 = 500, 0;
    msg_cycles_accept128 = 500, 0;
    cycles_burn128 = 500, 0;
    canister_self_size = 500, 0;
    canister_self_copy = 500, 1; // size
    canister_cycle_balance128 = 500, 0;
    canister_liquid_cycle_balance128 = 500, 0;
    canister_status = 500, 0;
    canister_version = 500, 0;
    subnet_self_size = 500, 0;
    subnet_self_copy = 500, 1; // size
    subnet_self_node_count = 500, 0;
    msg_method_name_size = 500, 0;
    msg_method_name_copy = 500, 1; // size
    accept_message = 500, 0;
    call_new = 1_500, 1; // callee and method name sizes
    call_on_cleanup = 500, 0;
    call_data_append = 500, TRANSMISSION; // size
    call_with_best_effort_response = 500, 0;
    call_cycles_add128 = 500, 0;
    call_perform = 5_000, 0;
    stable64_size = 0, 0;
    stable64_grow = 100, 0;
    stable64_write = 20, 1; // size, plus DIRTY_PAGE_OVERHEAD per page dirtied first
    stable64_read = 20, 1; // size
    stable_size = 0, 0; // the 32-bit API (still offered, used by e.g. the ICP ledger's archive)
    stable_grow = 100, 0;
    stable_write = 20, 1; // size, plus DIRTY_PAGE_OVERHEAD per page dirtied first
    stable_read = 20, 1; // size
    root_key_size = 500, 0;
    root_key_copy = 500, 1; // size
    certified_data_set = 500, 1; // size
    data_certificate_present = 500, 0;
    data_certificate_size = 500, 0;
    data_certificate_copy = 500, 1; // size
    time = 500, 0;
    global_timer_set = 500, 0;
    performance_counter = 200, 0; // charged before the counter is read
    is_controller = 1_000, 1; // size of the principal
    in_replicated_execution = 500, 0;
    cost_call = 500, 0;
    cost_create_canister = 500, 0;
    env_var_count = 500, 0;
    env_var_name_size = 500, 0;
    env_var_name_copy = 500, 1; // size
    env_var_name_exists = 500, 0;
    env_var_value_size = 500, 0;
    env_var_value_copy = 500, 1; // size copied (not the name)
    debug_print = 100, 1; // the logging charge
    trap = 500, 1; // the message length plus the logging charge
}

/// Bytes the logging charge counts for a record of `len` bytes when `logged` bytes of the
/// capacity are already used.
pub fn logging_bytes(len: u64, logged: u64) -> u64 {
    let remaining = LOG_CAPACITY.saturating_sub(logged);
    2 * len.min(LOG_CAPACITY) + TRANSMISSION * len.min(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_named_once() {
        let mut names: Vec<_> = SYSTEM_API.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
        assert_eq!(msg_arg_data_copy.of(10), 510);
        assert_eq!(msg_reply_data_append.of(10), 1_000);
    }

    #[test]
    fn logging_charge_stops_transmitting_when_the_log_is_full() {
        assert_eq!(logging_bytes(10, 0), 20 + 500);
        assert_eq!(logging_bytes(10, LOG_CAPACITY), 20);
        assert_eq!(logging_bytes(10_000, 0), 2 * 4096 + 50 * 4096);
    }
}
