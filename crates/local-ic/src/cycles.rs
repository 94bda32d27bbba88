//! The cycle fees the local subnet charges: those of a 13-node application subnet.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fees {
    /// Nodes in the subnet (`ic0.subnet_self_node_count`).
    pub subnet_size: u32,
    /// Charged by `create_canister`, taken from the cycles attached to it.
    pub canister_creation: u128,
    /// Base fee of an inter-canister call, charged at `ic0.call_perform`.
    pub call_base: u128,
    /// Fee per byte of method name and argument of an inter-canister call.
    pub call_per_byte: u128,
}

impl Fees {
    /// The fees of a 13-node application subnet.
    pub const APPLICATION_SUBNET: Fees = Fees {
        subnet_size: 13,
        canister_creation: 500_000_000_000,
        call_base: 260_000,
        call_per_byte: 1_000,
    };

    /// What `ic0.call_perform` charges for a call (`ic0.cost_call`).
    pub fn call(&self, method_name_bytes: u64, payload_bytes: u64) -> u128 {
        self.call_base
            + self.call_per_byte * u128::from(method_name_bytes.saturating_add(payload_bytes))
    }
}

impl Default for Fees {
    fn default() -> Self {
        Self::APPLICATION_SUBNET
    }
}
