//! Forwards a call to another canister and returns its raw reply, so integration tests can call
//! an OHMS canister *from a canister*: the path where `canister_inspect_message` never runs and
//! only the checks inside the method protect it.

use candid::Principal;
use ic_cdk::call::Call;

/// Calls `method` of `canister` with the Candid-encoded `arg`; the reply bytes, or the reject.
#[ic_cdk::update]
async fn relay(canister: Principal, method: String, arg: Vec<u8>) -> Result<Vec<u8>, String> {
    Call::unbounded_wait(canister, &method)
        .with_raw_args(&arg)
        .await
        .map(|response| response.into_bytes())
        .map_err(|err| err.to_string())
}
