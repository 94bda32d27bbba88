//! A canister built on ohms-ops with what the OHMS canisters do not have yet, so integration
//! tests can check the operations layer through the wasm:
//!
//! - `locked_call`: a state-changing user method (checked with `UserUpdate`) that takes the
//!   caller's `CallerLock`, awaits an inter-canister call, and can trap after the reply — the
//!   lock must still be released, by ic-cdk's cleanup callback — or trap in that cleanup too,
//!   leaving a stale lock for `clear_lock`;
//! - `decode_default` / `decode_ohms`: the instructions ic-cdk's default decoder and
//!   `ohms_ops::decode` spend on the same argument, measured inside the canister so every
//!   backend reports them;
//! - `body_length`: an endpoint marked `bulk`, which takes arguments up to the IC's limit.
//!
//! It exports the operations endpoints (`pause`, `clear_lock`, `audit_log`, …) like every OHMS
//! canister; installed without an argument, its controllers are its administrators.

use candid::{CandidType, Deserialize};
use ic_cdk::api::{canister_self, performance_counter};
use ic_cdk::call::Call;
use ohms_ops::UserUpdate;
use ohms_types::{Error, HttpRequest};

ohms_ops::export_ops_endpoints!(canister = "ops_probe");

/// Where `locked_call` fails on purpose.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Traps in the callback, after the callee replied.
    TrapAfterReply,
    /// Traps after the reply and again in the cleanup callback, before the lock is dropped: the
    /// IC discards what the cleanup did, so the lock stays taken.
    TrapInCleanup,
}

/// Traps when dropped: dropped before the lock (locals drop in reverse order), it makes the
/// cleanup callback trap before it releases the lock.
struct TrapOnDrop;

impl Drop for TrapOnDrop {
    fn drop(&mut self) {
        ic_cdk::trap("injected fault in the cleanup callback");
    }
}

/// Holds the caller's lock across a call to this canister's `ping`, then fails as `fault` says.
#[ic_cdk::update]
async fn locked_call(fault: Fault) -> Result<(), Error> {
    let call = UserUpdate::begin()?;
    let _lock = call.lock()?;
    // Not `then_some(TrapOnDrop)`: that builds the value either way, and dropping it traps.
    let _trap_in_cleanup = if fault == Fault::TrapInCleanup {
        Some(TrapOnDrop)
    } else {
        None
    };
    Call::bounded_wait(canister_self(), "ping")
        .await
        .map_err(|err| Error::CallFailed {
            canister: canister_self().to_text(),
            method: "ping".into(),
            reason: err.to_string(),
        })?;
    if fault != Fault::None {
        ic_cdk::trap("injected fault after the reply");
    }
    Ok(())
}

/// The callee of `locked_call`.
#[ic_cdk::update]
fn ping() {}

/// What decoding an argument cost, and whether it was accepted.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct DecodeCost {
    pub instructions: u64,
    /// Header pairs decoded, when the argument was accepted.
    pub headers: Option<u64>,
    pub error: Option<String>,
}

/// Decoded by ic-cdk's default decoder (a plain `#[query]`, no `decode_with`): the instructions
/// this message has run when the method starts are the decoding's.
#[ic_cdk::query]
fn decode_default(request: HttpRequest) -> DecodeCost {
    DecodeCost {
        instructions: performance_counter(0),
        headers: Some(request.headers.len() as u64),
        error: None,
    }
}

/// `argument` (the Candid encoding of an `HttpRequest`) decoded by `ohms_ops::decode`, as every
/// OHMS endpoint decodes its argument.
#[ic_cdk::query]
fn decode_ohms(argument: Vec<u8>) -> DecodeCost {
    let start = performance_counter(0);
    let decoded = ohms_ops::decode::decode_one::<HttpRequest>(&argument);
    let instructions = performance_counter(0) - start;
    match decoded {
        Ok(request) => DecodeCost {
            instructions,
            headers: Some(request.headers.len() as u64),
            error: None,
        },
        Err(error) => DecodeCost {
            instructions,
            headers: None,
            error: Some(error),
        },
    }
}

ohms_ops::endpoint! {
    /// The length of the request's body: an endpoint that takes bulk bytes.
    bulk query body_length(request: HttpRequest) -> Result<u64, Error> {
        Ok(request.body.len() as u64)
    }
}
