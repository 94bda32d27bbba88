//! Faults a test injects into the network, to show how a canister copes with what the IC
//! does rarely but does do: a callback that traps, and a reply that never arrives.
//!
//! A fault is part of the network state (it is saved with it) and applies once, to the next
//! response delivered to `canister` for a call it made to `callee` (and to `method`, when
//! given). Faults apply in the order they were injected.

use candid::Principal;
use serde::{Deserialize, Serialize};

/// A fault to inject with [`LocalIc::inject_fault`](crate::LocalIc::inject_fault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The callback that handles the response traps at entry: its changes are rolled back,
    /// the call's cleanup callback (`ic0.call_on_cleanup`) runs and its changes persist, and a
    /// call context left without a response is rejected as after any trap (IC0503).
    TrapInCallback {
        canister: Principal,
        callee: Principal,
        method: Option<String>,
    },
    /// The callee executed and its changes stand, but its response is lost: the caller gets
    /// the reject a bounded-wait call gets when its deadline passes (`SYS_UNKNOWN`, code 6),
    /// and no refund.
    LoseReply {
        canister: Principal,
        callee: Principal,
        method: Option<String>,
    },
}

impl Fault {
    /// Whether this fault applies to a response to `canister`'s call of `callee.method`.
    fn matches(&self, canister: Principal, callee: Principal, method: &str) -> bool {
        let (c, e, m) = match self {
            Fault::TrapInCallback {
                canister,
                callee,
                method,
            }
            | Fault::LoseReply {
                canister,
                callee,
                method,
            } => (canister, callee, method),
        };
        *c == canister && *e == callee && m.as_deref().is_none_or(|m| m == method)
    }
}

/// Removes and returns the first pending fault that applies to a response to `canister`'s
/// call of `callee.method`.
pub(crate) fn take(
    faults: &mut Vec<Fault>,
    canister: Principal,
    callee: Principal,
    method: &str,
) -> Option<Fault> {
    let index = faults
        .iter()
        .position(|f| f.matches(canister, callee, method))?;
    Some(faults.remove(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_fault_is_taken_once() {
        let a = Principal::from_slice(&[1]);
        let b = Principal::from_slice(&[2]);
        let mut faults = vec![
            Fault::LoseReply {
                canister: a,
                callee: b,
                method: Some("other".into()),
            },
            Fault::TrapInCallback {
                canister: a,
                callee: b,
                method: None,
            },
        ];
        assert_eq!(take(&mut faults, b, a, "m"), None);
        assert!(matches!(
            take(&mut faults, a, b, "m"),
            Some(Fault::TrapInCallback { .. })
        ));
        assert_eq!(take(&mut faults, a, b, "m"), None);
        assert!(matches!(
            take(&mut faults, a, b, "other"),
            Some(Fault::LoseReply { .. })
        ));
        assert!(faults.is_empty());
    }
}
