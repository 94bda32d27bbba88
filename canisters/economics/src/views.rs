//! Read-only views: a caller's own subscription, receipts, balances and usage; administrators'
//! analytics.

use candid::Principal;
use ohms_ops::{Env, access};
use ohms_types::{
    Analytics, Balances, DepositAccount, EconomicsConfig, Error, ModelTokens, MonthRevenue,
    MonthUsage, Page, Paged, PendingSettlement, Receipt, Subscription, SubscriptionState,
    UsageSummary,
};

use crate::metering::{self, Scope};
use crate::state::{Journal, State, read_state};
use crate::tiers::ALL_TIERS;
use crate::{deposits, payments, policy};
use ohms_types::calendar::{month_label, month_of};

pub fn config(env: &impl Env) -> EconomicsConfig {
    read_state(|s| EconomicsConfig {
        ledger: s.stored().ledger,
        treasury: State::treasury(env.canister_id()),
        settings: s.settings(),
    })
}

pub fn my_subscription(env: &impl Env) -> Result<Option<Subscription>, Error> {
    let caller = access::user(env)?;
    Ok(read_state(|s| s.subscription(&caller)))
}

/// A principal's subscription, for administrators and sibling canisters.
pub fn subscription_of(
    env: &impl Env,
    principal: Principal,
) -> Result<Option<Subscription>, Error> {
    if !access::is_admin(env, &env.caller()) {
        policy::trusted_caller_for(env, &principal)?;
    }
    Ok(read_state(|s| s.subscription(&principal)))
}

pub fn my_receipts(env: &impl Env, page: Page) -> Result<Paged<Receipt>, Error> {
    let caller = access::user(env)?;
    Ok(page.slice(&payments::receipts_of(&caller)))
}

pub fn my_balances(env: &impl Env) -> Result<Balances, Error> {
    let caller = access::user(env)?;
    Ok(read_state(|s| Balances {
        credit_e8s: s.credit(&caller),
        earnings_e8s: s.earnings(&caller).balance_e8s,
        subscription: s.subscription(&caller),
    }))
}

pub fn deposit_account(env: &impl Env) -> Result<DepositAccount, Error> {
    let caller = access::user(env)?;
    Ok(deposits::deposit_account(env.canister_id(), &caller))
}

pub fn my_usage(env: &impl Env) -> Result<UsageSummary, Error> {
    let caller = access::user(env)?;
    let now = env.now_nanos();
    Ok(read_state(|s| {
        let month = month_of(now);
        let usage = metering::counters(s, Scope::Principal, caller.as_slice(), month);
        let entitled = policy::limits(s, &caller, now).ok();
        let cost_estimate_e8s = entitled.as_ref().map_or(0, |(_, tier)| {
            let tokens = u128::from(metering::tokens(&usage));
            (tokens * u128::from(tier.price_e8s_per_month))
                .div_ceil(u128::from(tier.tokens_per_month.max(1))) as u64
        });
        let limits = entitled.map(|(limits, _)| limits);
        UsageSummary {
            month: month_label(month),
            usage,
            limits,
            cost_estimate_e8s,
        }
    }))
}

pub fn my_usage_history(env: &impl Env, page: Page) -> Result<Paged<MonthUsage>, Error> {
    let caller = access::user(env)?;
    let history = read_state(|s| metering::history(s, Scope::Principal, caller.as_slice()));
    Ok(page.slice(&history))
}

/// Subscriptions giving access now, by tier, and all subscriptions by state.
pub struct SubscriptionCounts {
    pub by_tier: Vec<(ohms_types::Tier, u64)>,
    pub by_state: Vec<(String, u64)>,
}

pub fn subscription_counts(s: &State, now: u64) -> SubscriptionCounts {
    let mut by_tier = vec![0u64; ALL_TIERS.len()];
    let mut by_state = [0u64; 4];
    for entry in s.subscriptions.iter() {
        let sub = entry.value().0;
        if crate::subscriptions::is_usable(&sub, now) {
            by_tier[sub.tier as usize] += 1;
        }
        by_state[sub.state as usize] += 1;
    }
    let states = [
        SubscriptionState::Active,
        SubscriptionState::Grace,
        SubscriptionState::Expired,
        SubscriptionState::Cancelled,
    ];
    SubscriptionCounts {
        by_tier: ALL_TIERS.into_iter().zip(by_tier).collect(),
        by_state: states
            .into_iter()
            .map(|state| format!("{state:?}").to_lowercase())
            .zip(by_state)
            .collect(),
    }
}

pub fn analytics(env: &impl Env) -> Result<Analytics, Error> {
    // The coordinator closes its daily analytics with the revenue figure.
    if access::sibling(env).is_err() {
        access::admin(env)?;
    }
    let now = env.now_nanos();
    Ok(read_state(|s| {
        let counts = subscription_counts(s, now);
        let stored = s.stored();
        Analytics {
            subscriptions_by_tier: counts.by_tier,
            subscriptions_by_state: counts.by_state,
            revenue_e8s: stored.revenue_e8s,
            treasury_e8s: stored.treasury_e8s,
            open_reservations: s.reservations.len(),
            pending_settlements: s.pending.len(),
        }
    }))
}

/// Revenue per month, newest first.
pub fn revenue_by_month(env: &impl Env, page: Page) -> Result<Paged<MonthRevenue>, Error> {
    access::admin(env)?;
    let months: Vec<MonthRevenue> = read_state(|s| {
        s.revenue
            .iter()
            .rev()
            .map(|entry| entry.value().0)
            .collect()
    });
    Ok(page.slice(&months))
}

/// This month's tokens per model, with each model's creator.
pub fn model_usage(env: &impl Env, page: Page) -> Result<Paged<ModelTokens>, Error> {
    access::admin(env)?;
    let month = month_of(env.now_nanos());
    let models: Vec<ModelTokens> = read_state(|s| {
        metering::models_in_month(s, month)
            .into_iter()
            .map(|(model_id, usage)| ModelTokens {
                creator: s.model_creators.get(&model_id.as_str().to_string()),
                model_id,
                usage,
            })
            .collect()
    });
    Ok(page.slice(&models))
}

pub fn pending_settlements(env: &impl Env, page: Page) -> Result<Paged<PendingSettlement>, Error> {
    access::admin(env)?;
    let pending: Vec<PendingSettlement> = read_state(|s| {
        s.pending
            .iter()
            .filter_map(|entry| {
                let (journal, id) = *entry.key();
                if journal == Journal::Payments as u8 {
                    s.payment(id).map(|p| PendingSettlement::Payment(p.receipt))
                } else {
                    s.payout(id).map(|p| PendingSettlement::Payout(p.payout))
                }
            })
            .collect()
    });
    Ok(page.slice(&pending))
}
