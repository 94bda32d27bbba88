//! Calls to sibling canisters with one error shape, and the policy engine's client: every OHMS
//! canister asks economics the same way before costly work (reserve), then commits or
//! releases.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use ic_cdk::call::Call;
use ohms_types::{Action, Error, Grant, Reservation, UsageReport};
use serde::de::DeserializeOwned;

/// Calls `canister.method(args)` (bounded wait) and decodes its `Result<R, Error>` reply; a
/// failed call or an undecodable reply becomes `Error::CallFailed`.
pub async fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
    canister: Principal,
    method: &str,
    args: A,
) -> Result<R, Error> {
    let reply = raw::<A, (Result<R, Error>,)>(canister, method, args).await?;
    reply.0
}

/// Calls `canister.method(args)` (bounded wait) and decodes its reply as `R`.
pub async fn raw<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
    canister: Principal,
    method: &str,
    args: A,
) -> Result<R, Error> {
    let failed = |reason: String| Error::CallFailed {
        canister: canister.to_text(),
        method: method.to_string(),
        reason,
    };
    let response = Call::bounded_wait(canister, method)
        .with_args(&args)
        .await
        .map_err(|err| failed(err.to_string()))?;
    response
        .candid_tuple::<R>()
        .map_err(|err| failed(format!("undecodable reply: {err}")))
}

/// The sibling registered under `role`, or an error naming the missing registration.
pub fn sibling(role: &'static str) -> Result<Principal, Error> {
    let siblings = crate::registered_siblings();
    siblings
        .registered()
        .find(|(name, _)| *name == role)
        .map(|(_, id)| id)
        .ok_or_else(|| Error::invalid_state(format!("no {role} canister is registered")))
}

/// Reserves `action` for `principal` with economics; a denial is `Error::Denied` with the
/// policy engine's reason.
pub async fn reserve(principal: Principal, action: Action) -> Result<Reservation, Error> {
    let economics = sibling("economics")?;
    match call::<_, Grant>(economics, "reserve", (principal, action)).await? {
        Grant::Reserved(reservation) => Ok(reservation),
        Grant::Denied { reason, message } => Err(Error::Denied { reason, message }),
    }
}

/// Commits a reservation with the usage it covered.
pub async fn commit(reservation: u64, usage: UsageReport) -> Result<(), Error> {
    call(sibling("economics")?, "commit", (reservation, usage)).await
}

/// Commits `usage` against `reservation` so that it is counted exactly once. Economics forgets
/// a reservation once committed, and also when it expires unused; so a reservation it no
/// longer knows was committed by an earlier attempt whose outcome is unknown
/// (`maybe_committed`: its reply was lost), or else expired — then the usage is reported
/// for `owner` instead of being lost.
pub async fn settle_usage(
    owner: Principal,
    reservation: u64,
    usage: UsageReport,
    maybe_committed: bool,
) -> Result<(), Error> {
    match commit(reservation, usage.clone()).await {
        Err(Error::NotFound { .. }) if maybe_committed => Ok(()),
        Err(Error::NotFound { .. }) => {
            call(sibling("economics")?, "report_usage", (owner, usage)).await
        }
        outcome => outcome,
    }
}

/// Gives a reservation's quota back.
pub async fn release(reservation: u64) -> Result<(), Error> {
    call(sibling("economics")?, "release", (reservation,)).await
}
