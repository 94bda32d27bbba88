//! The operations layer shared by the five OHMS canisters.
//!
//! Every function here takes an [`Env`] (caller, time, controllers, resource figures) so native
//! unit tests drive it without a canister runtime; canisters pass an [`IcEnv`], which holds the
//! caller captured once at the entry point. State-changing user methods start with
//! [`UserUpdate::begin`], which captures the caller, refuses the anonymous principal and checks
//! the pause in one step. The [`export_ops_endpoints!`] macro gives a canister the Candid
//! endpoints built on top: `add_admin`, `remove_admin`, `list_admins`, `pause`, `unpause`,
//! `clear_lock`, `ops_status`, `audit_log` and `http_request` (serving `/metrics`).

pub mod access;
pub mod audit;
pub mod calls;
#[cfg(feature = "candid-check")]
pub mod candid_check;
pub mod decode;
mod endpoints;
pub mod env;
pub mod lifecycle;
pub mod lock;
pub mod memory;
pub mod metrics;
pub mod paging;
pub mod pause;
pub mod reply;
mod state;
pub mod storable;

pub use access::UserUpdate;
pub use env::{Env, IcEnv};
pub use lock::CallerLock;
pub use storable::{Cbor, update_cell};

#[cfg(any(test, feature = "test-env"))]
pub mod test_env;

use ohms_types::OpsStatus;

/// The sibling canisters registered at install or upgrade.
pub fn registered_siblings() -> ohms_types::Siblings {
    state::read_ops(|s| s.config().siblings.clone())
}

/// Pause state, siblings and sizes of the operations layer, for dashboards.
pub fn ops_status(env: &impl Env) -> OpsStatus {
    state::read_ops(|s| OpsStatus {
        paused: s.config().paused.is_some(),
        pause_reason: s.config().paused.clone(),
        admins: s.admins.len(),
        siblings: s.config().siblings.clone(),
        audit_entries: s.audit.len(),
        canister_version: env.canister_version(),
    })
}
