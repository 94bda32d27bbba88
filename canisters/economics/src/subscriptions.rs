//! Subscription rules, without the ledger: what a payment buys, when the timer looks at a
//! subscription next, what it does then, and the prorated price of an upgrade.

use candid::Principal;
use ohms_types::{Error, PaymentPurpose, Subscription, SubscriptionState, Tier, TierConfig};

use ohms_types::calendar::{NANOS_PER_DAY, NANOS_PER_SECOND};

/// The length of a paid month: 30 days (quotas reset by calendar month instead).
pub const SUBSCRIPTION_MONTH_NANOS: u64 = 30 * NANOS_PER_DAY;

/// The most months one payment buys.
pub const MAX_MONTHS: u32 = 12;

/// Whether the subscription gives access at `now` (paid, cancelled but not yet ended, or in grace).
pub fn is_usable(sub: &Subscription, now: u64) -> bool {
    match sub.state {
        SubscriptionState::Active | SubscriptionState::Cancelled => now < sub.current_period_end,
        SubscriptionState::Grace => sub.grace_until.is_some_and(|until| now < until),
        SubscriptionState::Expired => false,
    }
}

/// Until when access lasts.
pub fn valid_until(sub: &Subscription) -> u64 {
    match sub.state {
        SubscriptionState::Grace => sub.grace_until.unwrap_or(sub.current_period_end),
        _ => sub.current_period_end,
    }
}

/// When the timer must next look at the subscription (`None`: never again).
pub fn due_at(sub: &Subscription) -> Option<u64> {
    match sub.state {
        SubscriptionState::Active | SubscriptionState::Cancelled => Some(sub.current_period_end),
        SubscriptionState::Grace => sub.grace_until,
        SubscriptionState::Expired => None,
    }
}

/// What the timer does with a subscription that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueAction {
    /// Charge one month (through the standing allowance, or from credit).
    Renew {
        final_attempt: bool,
    },
    Expire,
    Nothing,
}

pub fn due_action(sub: &Subscription, now: u64) -> DueAction {
    match sub.state {
        SubscriptionState::Active if now >= sub.current_period_end => {
            if sub.auto_renew {
                DueAction::Renew {
                    final_attempt: false,
                }
            } else {
                DueAction::Expire
            }
        }
        SubscriptionState::Cancelled if now >= sub.current_period_end => DueAction::Expire,
        SubscriptionState::Grace if sub.grace_until.is_none_or(|until| now >= until) => {
            if sub.auto_renew {
                DueAction::Renew {
                    final_attempt: true,
                }
            } else {
                DueAction::Expire
            }
        }
        _ => DueAction::Nothing,
    }
}

/// A failed renewal: the first failure starts the grace period; the failure at its end expires
/// the subscription.
pub fn renewal_failed(
    mut sub: Subscription,
    now: u64,
    grace_seconds: u64,
    reason: String,
) -> Subscription {
    match sub.state {
        SubscriptionState::Grace => {
            sub.state = SubscriptionState::Expired;
            sub.grace_until = None;
        }
        _ => {
            sub.state = SubscriptionState::Grace;
            sub.grace_until = Some(
                sub.current_period_end
                    .max(now)
                    .saturating_add(grace_seconds.saturating_mul(NANOS_PER_SECOND)),
            );
        }
    }
    sub.renewal_error = Some(reason);
    sub
}

pub fn expire(mut sub: Subscription) -> Subscription {
    sub.state = SubscriptionState::Expired;
    sub.grace_until = None;
    sub
}

/// Checks a purchase of `months` of `tier` against the tier's configuration and the buyer's
/// current subscription.
pub fn check_subscribe(
    current: Option<&Subscription>,
    config: &TierConfig,
    months: u32,
    now: u64,
) -> Result<u64, Error> {
    if config.tier == Tier::Free {
        return Err(Error::invalid_argument(
            "args.tier",
            "the free tier is not bought: when it is available, it applies without a subscription",
        ));
    }
    if !config.available {
        return Err(Error::invalid_argument(
            "args.tier",
            format!("{:?} is not on sale", config.tier),
        ));
    }
    if months == 0 || months > MAX_MONTHS {
        return Err(Error::invalid_argument(
            "args.months",
            format!("must be 1 to {MAX_MONTHS}"),
        ));
    }
    if let Some(sub) = current.filter(|sub| is_usable(sub, now))
        && sub.tier != config.tier
    {
        return Err(Error::invalid_state(format!(
            "you have a {:?} subscription until {}; use upgrade_subscription for a higher tier, or let it end for a lower one",
            sub.tier,
            valid_until(sub)
        )));
    }
    config
        .price_e8s_per_month
        .checked_mul(u64::from(months))
        .ok_or_else(|| Error::invalid_argument("args.months", "the price overflows"))
}

/// The prorated price of moving the rest of the current period to a higher tier: the price
/// difference for the time left, rounded up to the e8.
pub fn upgrade_price(
    current: Option<&Subscription>,
    from: &TierConfig,
    to: &TierConfig,
    now: u64,
) -> Result<u64, Error> {
    let sub = current
        .filter(|sub| {
            matches!(
                sub.state,
                SubscriptionState::Active | SubscriptionState::Cancelled
            ) && now < sub.current_period_end
        })
        .ok_or_else(|| {
            Error::invalid_state("no paid subscription to upgrade: subscribe instead")
        })?;
    if to.tier <= sub.tier || !to.available || to.tier == Tier::Free {
        return Err(Error::invalid_argument(
            "args.tier",
            format!("must be a tier on sale above your {:?}", sub.tier),
        ));
    }
    let difference = to
        .price_e8s_per_month
        .saturating_sub(from.price_e8s_per_month);
    let left = u128::from(sub.current_period_end - now);
    let price = (u128::from(difference) * left).div_ceil(u128::from(SUBSCRIPTION_MONTH_NANOS));
    Ok(price as u64)
}

/// The subscription after a completed payment, and the period the payment covers.
pub fn apply_payment(
    current: Option<Subscription>,
    owner: Principal,
    purpose: &PaymentPurpose,
    auto_renew: bool,
    payment_id: u64,
    now: u64,
) -> (Subscription, u64, u64) {
    let extend = |sub: Option<Subscription>, tier: Tier, months: u32| {
        let length = SUBSCRIPTION_MONTH_NANOS.saturating_mul(u64::from(months));
        match sub {
            // Paid time continues from the end of the current period, grace included, so a
            // late renewal pays for the grace it used.
            Some(mut sub) if sub.state != SubscriptionState::Expired && sub.tier == tier => {
                let start = sub.current_period_end;
                sub.current_period_start = start;
                sub.current_period_end = start.saturating_add(length);
                sub.state = SubscriptionState::Active;
                sub.grace_until = None;
                sub.renewal_error = None;
                (sub, start)
            }
            _ => (
                Subscription {
                    owner,
                    tier,
                    state: SubscriptionState::Active,
                    started_at: now,
                    current_period_start: now,
                    current_period_end: now.saturating_add(length),
                    grace_until: None,
                    auto_renew,
                    last_payment: None,
                    renewal_error: None,
                },
                now,
            ),
        }
    };
    let (mut sub, start) = match purpose {
        PaymentPurpose::Subscribe { tier, months } => {
            let (mut sub, start) = extend(current, *tier, *months);
            sub.auto_renew = auto_renew;
            (sub, start)
        }
        PaymentPurpose::Renew { tier, months } => extend(current, *tier, *months),
        PaymentPurpose::Upgrade { to, .. } => {
            let mut sub = current.expect("an upgrade is paid for an existing subscription");
            sub.tier = *to;
            (sub, now)
        }
    };
    sub.last_payment = Some(payment_id);
    let end = sub.current_period_end;
    (sub, start, end)
}

/// Cancels: no more renewals; access lasts to the end of the paid period.
pub fn cancel(current: Option<Subscription>, now: u64) -> Result<Subscription, Error> {
    let mut sub = current
        .filter(|sub| is_usable(sub, now))
        .ok_or_else(|| Error::invalid_state("no subscription to cancel"))?;
    if sub.state == SubscriptionState::Cancelled {
        return Err(Error::invalid_state(
            "the subscription is cancelled already",
        ));
    }
    sub.auto_renew = false;
    sub.state = if sub.state == SubscriptionState::Grace {
        SubscriptionState::Expired
    } else {
        SubscriptionState::Cancelled
    };
    if sub.state == SubscriptionState::Expired {
        sub.grace_until = None;
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiers::default_tier;

    const DAY: u64 = NANOS_PER_DAY;
    const NOW: u64 = 1_000 * DAY;

    fn owner() -> Principal {
        Principal::from_slice(&[7; 29])
    }

    fn bought(tier: Tier, months: u32) -> Subscription {
        apply_payment(
            None,
            owner(),
            &PaymentPurpose::Subscribe { tier, months },
            true,
            1,
            NOW,
        )
        .0
    }

    #[test]
    fn a_purchase_starts_now_and_a_second_extends_the_period() {
        let sub = bought(Tier::Basic, 2);
        assert_eq!(sub.current_period_end, NOW + 60 * DAY);
        let (extended, start, end) = apply_payment(
            Some(sub),
            owner(),
            &PaymentPurpose::Subscribe {
                tier: Tier::Basic,
                months: 1,
            },
            false,
            2,
            NOW + DAY,
        );
        assert_eq!((start, end), (NOW + 60 * DAY, NOW + 90 * DAY));
        assert!(!extended.auto_renew);
        assert_eq!(extended.last_payment, Some(2));
    }

    #[test]
    fn renewal_failure_goes_to_grace_then_expiry() {
        let sub = bought(Tier::Pro, 1);
        let end = sub.current_period_end;
        assert_eq!(due_at(&sub), Some(end));
        assert_eq!(due_action(&sub, end - 1), DueAction::Nothing);
        assert_eq!(
            due_action(&sub, end),
            DueAction::Renew {
                final_attempt: false
            }
        );
        let grace = renewal_failed(sub, end, 7 * 86_400, "no allowance".into());
        assert_eq!(grace.state, SubscriptionState::Grace);
        assert!(is_usable(&grace, end + 6 * DAY));
        assert_eq!(due_at(&grace), Some(end + 7 * DAY));
        assert_eq!(
            due_action(&grace, end + 7 * DAY),
            DueAction::Renew {
                final_attempt: true
            }
        );
        let expired = renewal_failed(grace, end + 7 * DAY, 7 * 86_400, "still none".into());
        assert_eq!(expired.state, SubscriptionState::Expired);
        assert_eq!(due_at(&expired), None);
        assert!(!is_usable(&expired, end + 7 * DAY));
    }

    #[test]
    fn renewing_in_grace_pays_from_the_period_end() {
        let sub = bought(Tier::Basic, 1);
        let end = sub.current_period_end;
        let grace = renewal_failed(sub, end, 86_400, "x".into());
        let (renewed, start, new_end) = apply_payment(
            Some(grace),
            owner(),
            &PaymentPurpose::Renew {
                tier: Tier::Basic,
                months: 1,
            },
            true,
            3,
            end + DAY / 2,
        );
        assert_eq!((start, new_end), (end, end + 30 * DAY));
        assert_eq!(renewed.state, SubscriptionState::Active);
        assert_eq!(renewed.grace_until, None);
    }

    #[test]
    fn upgrade_price_is_the_difference_for_the_time_left_rounded_up() {
        let sub = bought(Tier::Basic, 1);
        let (basic, pro) = (default_tier(Tier::Basic), default_tier(Tier::Pro));
        // Half the month left: half of (5 - 1) ICP.
        let half = NOW + 15 * DAY;
        assert_eq!(
            upgrade_price(Some(&sub), &basic, &pro, half).unwrap(),
            200_000_000
        );
        // One nanosecond left still costs at least one e8.
        let almost = sub.current_period_end - 1;
        assert_eq!(upgrade_price(Some(&sub), &basic, &pro, almost).unwrap(), 1);
        assert!(upgrade_price(Some(&sub), &basic, &basic, half).is_err());
        assert!(upgrade_price(None, &basic, &pro, half).is_err());
    }

    #[test]
    fn purchases_are_checked() {
        let basic = default_tier(Tier::Basic);
        assert_eq!(check_subscribe(None, &basic, 3, NOW).unwrap(), 300_000_000);
        assert!(check_subscribe(None, &basic, 0, NOW).is_err());
        assert!(check_subscribe(None, &basic, 13, NOW).is_err());
        assert!(check_subscribe(None, &default_tier(Tier::Free), 1, NOW).is_err());
        let pro = bought(Tier::Pro, 1);
        assert!(matches!(
            check_subscribe(Some(&pro), &basic, 1, NOW),
            Err(Error::InvalidState { .. })
        ));
        let mut off = basic.clone();
        off.available = false;
        assert!(check_subscribe(None, &off, 1, NOW).is_err());
    }

    #[test]
    fn cancel_keeps_access_to_the_period_end() {
        let sub = bought(Tier::Basic, 1);
        let end = sub.current_period_end;
        let cancelled = cancel(Some(sub), NOW).unwrap();
        assert_eq!(cancelled.state, SubscriptionState::Cancelled);
        assert!(is_usable(&cancelled, end - 1));
        assert_eq!(due_action(&cancelled, end), DueAction::Expire);
        assert!(cancel(Some(cancelled), NOW).is_err());
    }
}
