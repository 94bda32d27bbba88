//! Revenue: each payment splits into the platform's share and the creators' pool of its month;
//! after the month ends, the pool is split among the creators of the models that served
//! tokens that month, in proportion to those tokens.

use std::collections::BTreeMap;

use candid::Principal;
use ohms_ops::Cbor;
use ohms_types::ModelId;

use crate::metering;
use crate::state::{Earnings, State};
use ohms_types::calendar::month_of;

/// Splits `pool` by `weights` exactly: each gets the floor of its share, and the e8s left over
/// go one each to the largest remainders (ties to the earlier entry). The parts sum to `pool`
/// (all of it to nobody when every weight is 0: the caller decides where such a pool goes).
pub fn split(pool: u64, weights: &[(Principal, u64)]) -> Vec<(Principal, u64)> {
    let total: u128 = weights.iter().map(|(_, w)| u128::from(*w)).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut parts: Vec<(Principal, u64, u128)> = weights
        .iter()
        .map(|(who, w)| {
            let exact = u128::from(pool) * u128::from(*w);
            (*who, (exact / total) as u64, exact % total)
        })
        .collect();
    let given: u64 = parts.iter().map(|(_, part, _)| part).sum();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|a, b| parts[*b].2.cmp(&parts[*a].2).then(a.cmp(b)));
    for i in order.into_iter().take((pool - given) as usize) {
        parts[i].1 += 1;
    }
    parts
        .into_iter()
        .map(|(who, part, _)| (who, part))
        .collect()
}

/// Books a completed payment: the platform's share to the treasury, the rest to the month's
/// creators' pool. Returns the platform's share.
pub fn record_payment(state: &mut State, amount: u64, now: u64) -> u64 {
    let month = month_of(now);
    let share_bps = state.settings().platform_share_bps;
    let platform = (u128::from(amount) * u128::from(share_bps) / 10_000) as u64;
    let mut revenue = state.month_revenue(month);
    revenue.payments_e8s = revenue.payments_e8s.saturating_add(amount);
    revenue.platform_e8s = revenue.platform_e8s.saturating_add(platform);
    revenue.creators_pool_e8s = revenue.creators_pool_e8s.saturating_add(amount - platform);
    state.revenue.insert(month, Cbor(revenue));
    state.update_stored(|stored| {
        stored.treasury_e8s = stored.treasury_e8s.saturating_add(platform);
        stored.revenue_e8s = stored.revenue_e8s.saturating_add(amount);
    });
    platform
}

/// The months that have ended and whose pool is not split yet, oldest first.
pub fn ended_unsplit_months(state: &State, now: u64) -> Vec<u32> {
    let current = month_of(now);
    state
        .revenue
        .iter()
        .filter(|entry| *entry.key() < current && !entry.value().0.split)
        .map(|entry| *entry.key())
        .collect()
}

/// The models that served tokens in `month` and whose creator economics has not learnt yet.
pub fn models_without_creator(state: &State, month: u32) -> Vec<ModelId> {
    metering::models_in_month(state, month)
        .into_iter()
        .map(|(model, _)| model)
        .filter(|model| {
            !state
                .model_creators
                .contains_key(&model.as_str().to_string())
        })
        .collect()
}

/// Splits `month`'s pool among the creators of the models that served tokens in it, by those
/// tokens. Tokens of models whose creator is unknown (the model is gone) count for nobody:
/// the pool is split among the rest, or stays with the platform when there is no one.
pub fn split_month(state: &mut State, month: u32) {
    let mut revenue = state.month_revenue(month);
    let mut by_creator: BTreeMap<Principal, u64> = BTreeMap::new();
    for (model, counters) in metering::models_in_month(state, month) {
        let creator = state.model_creators.get(&model.as_str().to_string());
        if let Some(creator) = creator.filter(|c| *c != Principal::anonymous()) {
            let tokens = by_creator.entry(creator).or_default();
            *tokens = tokens.saturating_add(metering::tokens(&counters));
        }
    }
    let weights: Vec<(Principal, u64)> = by_creator.into_iter().collect();
    let parts = split(revenue.creators_pool_e8s, &weights);
    if parts.is_empty() {
        let pool = revenue.creators_pool_e8s;
        state
            .update_stored(|stored| stored.treasury_e8s = stored.treasury_e8s.saturating_add(pool));
    }
    for (creator, part) in parts {
        let earnings = state.earnings(&creator);
        state.earnings.insert(
            creator,
            Cbor(Earnings {
                balance_e8s: earnings.balance_e8s.saturating_add(part),
                total_e8s: earnings.total_e8s.saturating_add(part),
            }),
        );
    }
    revenue.split = true;
    state.revenue.insert(month, Cbor(revenue));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    #[test]
    fn the_split_sums_exactly_to_the_pool() {
        for pool in [0, 1, 2, 99, 100, 1_000_003, u64::MAX / 3] {
            for weights in [
                vec![(p(1), 1)],
                vec![(p(1), 1), (p(2), 1), (p(3), 1)],
                vec![(p(1), 7), (p(2), 0), (p(3), 13), (p(4), u64::MAX / 2)],
            ] {
                let parts = split(pool, &weights);
                let sum: u128 = parts.iter().map(|(_, e)| u128::from(*e)).sum();
                assert_eq!(sum, u128::from(pool), "pool {pool}, weights {weights:?}");
            }
        }
    }

    #[test]
    fn the_split_follows_the_weights_and_gives_remainders_to_the_largest() {
        let parts = split(100, &[(p(1), 1), (p(2), 1), (p(3), 1)]);
        assert_eq!(parts, vec![(p(1), 34), (p(2), 33), (p(3), 33)]);
        let parts = split(10, &[(p(1), 3), (p(2), 1)]);
        assert_eq!(parts, vec![(p(1), 8), (p(2), 2)]);
        assert!(split(10, &[(p(1), 0)]).is_empty());
    }
}
