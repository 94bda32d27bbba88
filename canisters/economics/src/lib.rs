//! Economics: subscriptions, ICP payments, quotas and the policy engine that authorizes every costly action.
//!
//! Entry points only: decode (within `ohms_ops::decode`'s quotas), capture the caller once,
//! call the logic, encode. Roles are checked inside the logic. One timer, armed at install and
//! after every upgrade: each minute it expires reservations, splits ended months' creators'
//! pools, renews or expires due subscriptions, settles unknown ledger outcomes and sweeps
//! deposits.

mod creators;
mod deposits;
mod ledger;
mod memory;
mod metering;
mod metrics;
mod payments;
mod policy;
mod revenue;
mod state;
mod subscriptions;
mod tiers;
mod views;

use std::time::Duration;

use candid::Principal;
use ohms_ops::{IcEnv, UserUpdate};
use ohms_types::{
    Action, Analytics, Balances, Decision, DepositAccount, DepositCredit, EconomicsConfig,
    EconomicsInstallArgs, EconomicsSettings, Error, Grant, ModelTokens, MonthRevenue, MonthUsage,
    Page, Paged, Payout, PendingSettlement, Purchase, Receipt, Reservation, SettlementRef,
    SubscribeArgs, Subscription, TierConfig, UpgradeSubscriptionArgs, UsageReport, UsageSummary,
    WithdrawArgs,
};

/// How often the housekeeping timer runs.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

#[ic_cdk::init]
fn init(args: EconomicsInstallArgs) {
    let env = IcEnv::capture();
    let EconomicsInstallArgs::Init(init) = &args else {
        ic_cdk::trap(
            "install argument mismatch: a fresh install needs `variant { Init = record { ... } }`, got Upgrade",
        );
    };
    if !ohms_types::is_canister_id(&init.ledger) {
        ic_cdk::trap(format!(
            "install argument: ledger {} is not a canister id",
            init.ledger
        ));
    }
    ohms_ops::lifecycle::init(&env, "economics", args.common())
        .unwrap_or_else(|err| ic_cdk::trap(err));
    state::mutate_state(|s| {
        s.stored.set(ohms_ops::Cbor(state::Stored::new(
            init.ledger,
            init.ledger_fee_e8s,
        )))
    });
    warm_replies();
    arm_timer();
}

/// Decoded by hand: as `opt EconomicsInstallArgs`, Candid would read an argument of another
/// canister's type (the common `InstallArgs::Init`, without the ledger) as "no argument" and
/// upgrade silently; here it is refused.
#[ic_cdk::post_upgrade]
fn post_upgrade() {
    let env = IcEnv::capture();
    let bytes = ic_cdk::api::msg_arg_data();
    let args = upgrade_argument(&bytes).unwrap_or_else(|err| ic_cdk::trap(err));
    if state::read_state(|s| s.stored().ledger) == Principal::management_canister() {
        ic_cdk::trap(
            "economics holds no ledger: it was installed before it took payments; reinstall it \
             with `variant { Init = record { ...; ledger = principal \"...\"; ledger_fee_e8s = ... } }`",
        );
    }
    ohms_ops::lifecycle::post_upgrade(&env, "economics", args.map(|args| args.common()))
        .unwrap_or_else(|err| ic_cdk::trap(err));
    warm_replies();
    arm_timer();
}

/// No argument at all, or one `EconomicsInstallArgs`.
fn upgrade_argument(bytes: &[u8]) -> Result<Option<EconomicsInstallArgs>, String> {
    // `DIDL`, an empty type table and no values: `()` encoded, what `dfx deploy` sends.
    if bytes.is_empty() || bytes == b"DIDL\x00\x00" {
        return Ok(None);
    }
    ohms_ops::decode::decode_one::<EconomicsInstallArgs>(bytes)
        .map(Some)
        .map_err(|err| {
            format!("install argument mismatch: economics takes `EconomicsInstallArgs` ({err})")
        })
}

/// Timers do not survive an upgrade; this one is armed again from `post_upgrade`. A serial
/// interval timer: a run that traps does not stop the next, and a run still waiting on the
/// ledger when the next is due makes that one skip.
fn arm_timer() {
    ic_cdk_timers::set_timer_interval_serial(HOUSEKEEPING_INTERVAL, async || {
        let env = IcEnv::canister();
        let now = ohms_ops::Env::now_nanos(&env);
        policy::expire_reservations(now);
        for month in state::read_state(|s| revenue::ended_unsplit_months(s, now)) {
            let unknown = state::read_state(|s| revenue::models_without_creator(s, month));
            if !creators::learn(&unknown).await {
                break;
            }
            state::mutate_state(|s| revenue::split_month(s, month));
        }
        payments::settle_pending(&env).await;
        payments::process_due_subscriptions(&env).await;
        payments::sweep_deposits(&env).await;
    });
}

ohms_ops::export_ops_endpoints!(canister = "economics", metrics = crate::metrics::encode);

// ---------------------------------------------------------------------------------------------
// Configuration

/// The ledger, the treasury account and the settings. Public.
#[ic_cdk::query]
fn economics_config() -> EconomicsConfig {
    views::config(&IcEnv::capture())
}

ohms_ops::endpoint! {
    /// Replaces the settings (fee, platform share, grace period, deposit rules, reservation
    /// lifetime). Administrators only; audited.
    update set_settings(settings: EconomicsSettings) -> Result<(), Error> {
        tiers::set_settings(&IcEnv::capture(), settings)
    }
}

/// Every tier's price and limits. Public.
#[ic_cdk::query]
fn list_tiers() -> Vec<TierConfig> {
    tiers::list_tiers()
}

ohms_ops::endpoint! {
    /// Replaces a tier's price and limits. Administrators only; audited.
    update set_tier(config: TierConfig) -> Result<(), Error> {
        tiers::set_tier(&IcEnv::capture(), config)
    }
}

/// Registers the agent canister of `owner`, which may then reserve and report usage for that
/// owner alone. The agent factory only.
#[ic_cdk::update(hidden = true, decode_with = "ohms_ops::decode::arguments")]
fn register_agent_canister(args: Result<(Principal, Principal), String>) -> Result<(), Error> {
    let env = IcEnv::capture();
    let (canister, owner) = args.map_err(|reason| Error::invalid_argument("args", reason))?;
    policy::register_agent_canister(&env, canister, owner)
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and payments (the caller's own)

ohms_ops::endpoint! {
    /// Buys months of a tier: pulled from the caller's account with ICRC-2 (approve economics
    /// for the price plus the ledger fee first) or paid from deposit credit. A payment the
    /// caller has pending is settled first and answered instead.
    async update subscribe(args: SubscribeArgs) -> Result<Purchase, Error> {
        let call = UserUpdate::begin()?;
        payments::subscribe(&call, args).await
    }
}

ohms_ops::endpoint! {
    /// Moves the rest of the paid period to a higher tier for the prorated price difference.
    async update upgrade_subscription(args: UpgradeSubscriptionArgs) -> Result<Purchase, Error> {
        let call = UserUpdate::begin()?;
        payments::upgrade(&call, args).await
    }
}

/// Stops renewals; the subscription works to the end of the paid period.
#[ic_cdk::update]
fn cancel_subscription() -> Result<Subscription, Error> {
    payments::cancel(&UserUpdate::begin()?)
}

ohms_ops::endpoint! {
    /// Turns renewal through the standing allowance (or credit) on or off.
    update set_auto_renew(auto_renew: bool) -> Result<Subscription, Error> {
        payments::set_auto_renew(&UserUpdate::begin()?, auto_renew)
    }
}

/// The caller's subscription.
#[ic_cdk::query]
fn my_subscription() -> Result<Option<Subscription>, Error> {
    views::my_subscription(&IcEnv::capture())
}

ohms_ops::endpoint! {
    /// The caller's receipts, oldest first.
    query my_receipts(page: Page) -> Result<Paged<Receipt>, Error> {
        views::my_receipts(&IcEnv::capture(), page)
    }
}

/// The caller's deposit credit, creator earnings and subscription.
#[ic_cdk::query]
fn my_balances() -> Result<Balances, Error> {
    views::my_balances(&IcEnv::capture())
}

/// Where the caller sends ICP to buy credit (also as a legacy account identifier).
#[ic_cdk::query]
fn deposit_account() -> Result<DepositAccount, Error> {
    views::deposit_account(&IcEnv::capture())
}

ohms_ops::endpoint! {
    /// Credits a ledger block that pays the caller's deposit account, once.
    async update verify_deposit(block_index: u64) -> Result<DepositCredit, Error> {
        let call = UserUpdate::begin()?;
        payments::verify_deposit(&call, block_index).await
    }
}

ohms_ops::endpoint! {
    /// Withdraws the caller's creator earnings (the destination receives the amount less the
    /// ledger fee).
    async update withdraw(args: WithdrawArgs) -> Result<Payout, Error> {
        let call = UserUpdate::begin()?;
        payments::withdraw(&call, args).await
    }
}

/// The caller's usage this month, what is left and what it costs.
#[ic_cdk::query]
fn my_usage() -> Result<UsageSummary, Error> {
    views::my_usage(&IcEnv::capture())
}

ohms_ops::endpoint! {
    /// The caller's usage, month by month, oldest first.
    query my_usage_history(page: Page) -> Result<Paged<MonthUsage>, Error> {
        views::my_usage_history(&IcEnv::capture(), page)
    }
}

// ---------------------------------------------------------------------------------------------
// The policy engine (sibling canisters)

/// May `principal` do `action` now? Allow with the limits, or deny with the reason. The
/// principal itself, administrators and OHMS canisters.
///
/// The hot path of every sibling: the reply's Candid type part is encoded once (see
/// `ohms_ops::reply`).
#[ic_cdk::query(
    hidden = true,
    decode_with = "ohms_ops::decode::arguments",
    manual_reply = true
)]
fn authorize(args: Result<(Principal, Action), String>) {
    let env = IcEnv::capture();
    let decision = args
        .map_err(|reason| Error::invalid_argument("args", reason))
        .and_then(|(principal, action)| policy::authorize(&env, principal, action));
    ohms_ops::reply::reply(&decision);
}

/// Reply types whose Candid type part is encoded once, at install and upgrade.
fn warm_replies() {
    ohms_ops::reply::warm::<Result<Decision, Error>>();
    ohms_ops::reply::warm::<Result<Grant, Error>>();
    ohms_ops::reply::warm::<Result<(), Error>>();
}

/// Holds quota for an action before expensive work. OHMS canisters only.
#[ic_cdk::update(
    hidden = true,
    decode_with = "ohms_ops::decode::arguments",
    manual_reply = true
)]
fn reserve(args: Result<(Principal, Action), String>) {
    let env = IcEnv::capture();
    let grant = args
        .map_err(|reason| Error::invalid_argument("args", reason))
        .and_then(|(principal, action)| policy::reserve(&env, principal, action));
    ohms_ops::reply::reply(&grant);
}

/// Settles a reservation with what the action used. Its holder only.
#[ic_cdk::update(
    hidden = true,
    decode_with = "ohms_ops::decode::arguments",
    manual_reply = true
)]
fn commit(args: Result<(u64, UsageReport), String>) {
    let env = IcEnv::capture();
    let done = args
        .map_err(|reason| Error::invalid_argument("args", reason))
        .and_then(|(reservation, usage)| policy::commit(&env, reservation, usage));
    ohms_ops::reply::reply(&done);
}

ohms_ops::endpoint! {
    /// Gives a reservation's quota back unused. Its holder only.
    update release(reservation: u64) -> Result<(), Error> {
        policy::release(&IcEnv::capture(), reservation)
    }
}

ohms_ops::endpoint! {
    /// The open reservations the calling OHMS canister holds, oldest first. Siblings only.
    query held_reservations(page: Page) -> Result<Paged<Reservation>, Error> {
        policy::held_reservations(&IcEnv::capture(), page)
    }
}

/// Usage not tied to a reservation. OHMS canisters and registered agent canisters only.
#[ic_cdk::update(hidden = true, decode_with = "ohms_ops::decode::arguments")]
fn report_usage(args: Result<(Principal, UsageReport), String>) -> Result<(), Error> {
    let env = IcEnv::capture();
    let (principal, usage) = args.map_err(|reason| Error::invalid_argument("args", reason))?;
    policy::report_usage(&env, principal, usage)
}

/// Agents a principal no longer has. OHMS canisters only.
#[ic_cdk::update(hidden = true, decode_with = "ohms_ops::decode::arguments")]
fn agents_removed(args: Result<(Principal, u32), String>) -> Result<(), Error> {
    let env = IcEnv::capture();
    let (principal, count) = args.map_err(|reason| Error::invalid_argument("args", reason))?;
    policy::agents_removed(&env, principal, count)
}

ohms_ops::endpoint! {
    /// A principal's subscription. Administrators and OHMS canisters.
    query subscription_of(principal: Principal) -> Result<Option<Subscription>, Error> {
        views::subscription_of(&IcEnv::capture(), principal)
    }
}

// ---------------------------------------------------------------------------------------------
// Administration

ohms_ops::endpoint! {
    /// Withdraws from the platform's share. Administrators only; audited.
    async update withdraw_treasury(args: WithdrawArgs) -> Result<Payout, Error> {
        let env = IcEnv::capture();
        payments::withdraw_treasury(&env, args).await
    }
}

ohms_ops::endpoint! {
    /// Refunds a completed payment from the treasury. Administrators only; audited.
    async update refund(payment_id: u64) -> Result<Receipt, Error> {
        let env = IcEnv::capture();
        payments::refund(&env, payment_id).await
    }
}

/// Subscriptions by tier and state, revenue, treasury, reservations, pending settlements.
/// Administrators only.
#[ic_cdk::query]
fn analytics() -> Result<Analytics, Error> {
    views::analytics(&IcEnv::capture())
}

ohms_ops::endpoint! {
    /// Revenue per month, newest first. Administrators only.
    query revenue_by_month(page: Page) -> Result<Paged<MonthRevenue>, Error> {
        views::revenue_by_month(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    /// This month's tokens per model and its creator. Administrators only.
    query model_usage(page: Page) -> Result<Paged<ModelTokens>, Error> {
        views::model_usage(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    /// Payments and payouts whose ledger outcome is not known yet. Administrators only.
    query pending_settlements(page: Page) -> Result<Paged<PendingSettlement>, Error> {
        views::pending_settlements(&IcEnv::capture(), page)
    }
}

/// Records the outcome of a pending payment or payout past the ledger's deduplication window,
/// as an administrator found it on the ledger (`opt block`: it happened there; `null`: it did
/// not). Administrators only; audited.
#[ic_cdk::update(hidden = true, decode_with = "ohms_ops::decode::arguments")]
fn resolve_settlement(args: Result<(SettlementRef, Option<u64>), String>) -> Result<(), Error> {
    let env = IcEnv::capture();
    let (settlement, block_index) =
        args.map_err(|reason| Error::invalid_argument("args", reason))?;
    payments::resolve_settlement(&env, settlement, block_index)
}

/// The true Candid signatures of the hand-decoded endpoints, for `export_service!`.
#[allow(dead_code)]
mod signatures {
    use super::*;

    #[candid::candid_method(query)]
    fn authorize(_: Principal, _: Action) -> Result<Decision, Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn reserve(_: Principal, _: Action) -> Result<Grant, Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn commit(_: u64, _: UsageReport) -> Result<(), Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn report_usage(_: Principal, _: UsageReport) -> Result<(), Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn agents_removed(_: Principal, _: u32) -> Result<(), Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn register_agent_canister(_: Principal, _: Principal) -> Result<(), Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn resolve_settlement(_: SettlementRef, _: Option<u64>) -> Result<(), Error> {
        unreachable!("signature only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expanded last, after every endpoint has registered its Candid signature.
    candid::export_service!();

    #[test]
    fn interface_is_the_committed_did() {
        ohms_ops::candid_check::assert_service_equal(
            __export_service(),
            include_str!("../../../candid/economics.did"),
        );
    }
}
