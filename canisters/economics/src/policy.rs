//! The policy engine: the one place that answers "may this principal do this now?", and the
//! reservations that hold quota while a sibling canister does the work.

use candid::Principal;
use ohms_ops::{Cbor, Env, access, pause};
use ohms_types::{
    Action, Decision, DenyReason, Error, Grant, Limits, Reservation, Tier, TierConfig, UsageReport,
};

use crate::metering::{self, Scope};
use crate::state::{Held, RateWindow, State, mutate_state, read_state};
use crate::{subscriptions, tiers};
use ohms_types::calendar::{NANOS_PER_SECOND, month_of, month_start};

const HOUR_NANOS: u64 = 3_600 * NANOS_PER_SECOND;

/// The most tokens one action may estimate (bounds the arithmetic and a hostile estimate).
pub const MAX_TOKENS_PER_ACTION: u64 = 1 << 40;
/// The most agents one action may create.
pub const MAX_AGENTS_PER_ACTION: u32 = 1_000;

/// The tier that applies to `principal` at `now` and until when.
fn entitlement(
    state: &State,
    principal: &Principal,
    now: u64,
) -> Result<(TierConfig, u64), DenyReason> {
    match state.subscription(principal) {
        Some(sub) if subscriptions::is_usable(&sub, now) => Ok((
            tiers::tier_config_in(state, sub.tier),
            subscriptions::valid_until(&sub),
        )),
        other => {
            let free = tiers::tier_config_in(state, Tier::Free);
            if free.available {
                return Ok((free, month_start(month_of(now) + 1)));
            }
            Err(match other {
                Some(sub) => DenyReason::SubscriptionExpired {
                    since: subscriptions::valid_until(&sub),
                },
                None => DenyReason::NoSubscription,
            })
        }
    }
}

/// The window rolled forward to the hour of `now`.
fn roll(window: RateWindow, now: u64) -> RateWindow {
    let start = now - now % HOUR_NANOS;
    if window.window_start == start {
        window
    } else if window.window_start + HOUR_NANOS == start {
        RateWindow {
            window_start: start,
            current: 0,
            previous: window.current,
        }
    } else {
        RateWindow {
            window_start: start,
            current: 0,
            previous: 0,
        }
    }
}

/// Requests in the sliding hour ending at `now`: this hour's, plus the previous hour's
/// weighted by the part of it the sliding hour still covers (rounded up).
fn requests_in_last_hour(window: RateWindow, now: u64) -> u64 {
    let window = roll(window, now);
    let elapsed = now - window.window_start;
    let previous = (u128::from(window.previous) * u128::from(HOUR_NANOS - elapsed))
        .div_ceil(u128::from(HOUR_NANOS));
    previous as u64 + u64::from(window.current)
}

/// Seconds until one more request fits under `limit`.
fn retry_after_seconds(window: RateWindow, now: u64, limit: u32) -> u64 {
    let window = roll(window, now);
    let elapsed = now - window.window_start;
    let room = u64::from(limit).saturating_sub(1);
    let wait = if u64::from(window.current) > room || window.previous == 0 {
        HOUR_NANOS - elapsed
    } else {
        // previous * (HOUR - e) / HOUR <= room - current  ⇔  e >= HOUR - (room - current) * HOUR / previous
        let allowed = (room - u64::from(window.current)) * HOUR_NANOS / u64::from(window.previous);
        (HOUR_NANOS - allowed.min(HOUR_NANOS)).saturating_sub(elapsed)
    };
    wait.div_ceil(NANOS_PER_SECOND).max(1)
}

/// The limits of `principal` now, with the configuration of the tier they come from, or why it
/// may do nothing.
pub fn limits(
    state: &State,
    principal: &Principal,
    now: u64,
) -> Result<(Limits, TierConfig), DenyReason> {
    let (tier, valid_until) = entitlement(state, principal, now)?;
    let usage = metering::counters(state, Scope::Principal, principal.as_slice(), month_of(now));
    let held = state.held(principal);
    let tokens_used = metering::tokens(&usage).saturating_add(held.tokens);
    let creations_used = usage
        .agents_created
        .saturating_add(u64::from(held.agent_creations));
    let window = state.rate.get(principal).map(|w| w.0).unwrap_or_default();
    let requests = requests_in_last_hour(window, now);
    let limits = Limits {
        tier: tier.tier,
        priority: tier.priority,
        max_agents: tier.max_agents,
        agents: state.agents_of(principal),
        agent_creations_left: u64::from(tier.agent_creations_per_month)
            .saturating_sub(creations_used) as u32,
        tokens_left: tier.tokens_per_month.saturating_sub(tokens_used),
        requests_left_this_hour: u64::from(tier.requests_per_hour).saturating_sub(requests) as u32,
        valid_until,
    };
    Ok((limits, tier))
}

/// The decision for `action`, without changing anything.
pub fn decide(
    state: &State,
    principal: &Principal,
    action: &Action,
    now: u64,
) -> Result<Limits, DenyReason> {
    if pause::is_paused() {
        return Err(DenyReason::Paused);
    }
    let (limits, tier) = limits(state, principal, now)?;
    let quota = |quota: &str, limit: u64, left: u64, requested: u64| {
        if requested > left {
            Err(DenyReason::QuotaExceeded {
                quota: quota.into(),
                limit,
                used: limit.saturating_sub(left),
                requested,
            })
        } else {
            Ok(())
        }
    };
    match action {
        Action::CreateAgents { count } => {
            let count = u64::from(*count);
            quota(
                "agents",
                u64::from(limits.max_agents),
                u64::from(limits.max_agents.saturating_sub(limits.agents)),
                count,
            )?;
            quota(
                "agent_creations_per_month",
                u64::from(tier.agent_creations_per_month),
                u64::from(limits.agent_creations_left),
                count,
            )?;
        }
        Action::Inference { estimated_tokens } => {
            quota(
                "tokens_per_month",
                tier.tokens_per_month,
                limits.tokens_left,
                *estimated_tokens,
            )?;
        }
        Action::SubmitTask => {}
        Action::UploadModel => {
            if limits.tier < Tier::Pro {
                return Err(DenyReason::TierTooLow {
                    required: Tier::Pro,
                });
            }
        }
    }
    if limits.requests_left_this_hour == 0 {
        let window = state.rate.get(principal).map(|w| w.0).unwrap_or_default();
        return Err(DenyReason::RateLimited {
            limit: tier.requests_per_hour,
            retry_after_seconds: retry_after_seconds(window, now, tier.requests_per_hour),
        });
    }
    Ok(limits)
}

fn check_action(action: &Action) -> Result<(), Error> {
    match action {
        Action::CreateAgents { count } if *count == 0 || *count > MAX_AGENTS_PER_ACTION => {
            Err(Error::invalid_argument(
                "action.count",
                format!("must be 1 to {MAX_AGENTS_PER_ACTION}"),
            ))
        }
        Action::Inference { estimated_tokens } if *estimated_tokens > MAX_TOKENS_PER_ACTION => {
            Err(Error::invalid_argument(
                "action.estimated_tokens",
                format!("at most {MAX_TOKENS_PER_ACTION}"),
            ))
        }
        _ => Ok(()),
    }
}

/// Who may ask about a principal: the principal itself, an administrator, a sibling canister
/// or a registered agent canister.
fn may_ask_about(env: &impl Env, principal: &Principal) -> Result<(), Error> {
    let caller = env.caller();
    if caller == *principal && caller != Principal::anonymous() {
        return Ok(());
    }
    if access::is_admin(env, &caller) {
        return Ok(());
    }
    trusted_caller_for(env, principal).map(|_| ())
}

/// A caller that may act for `principal`: a registered sibling canister (for anyone), or the
/// agent canister the factory registered for `principal` (for its owner only).
pub fn trusted_caller_for(env: &impl Env, principal: &Principal) -> Result<Principal, Error> {
    if let Ok((caller, _)) = access::sibling(env) {
        return Ok(caller);
    }
    let caller = env.caller();
    match read_state(|s| s.agent_canisters.get(&caller)) {
        Some(owner) if owner == *principal => Ok(caller),
        Some(owner) => Err(Error::not_authorized(format!(
            "agent canister {caller} acts for {owner} only, not {principal}"
        ))),
        None => Err(Error::not_authorized(format!(
            "{caller} is not a registered OHMS canister"
        ))),
    }
}

/// `authorize(principal, action)`: allow with the limits, or deny with the reason.
pub fn authorize(env: &impl Env, principal: Principal, action: Action) -> Result<Decision, Error> {
    may_ask_about(env, &principal)?;
    check_action(&action)?;
    Ok(read_state(|s| {
        match decide(s, &principal, &action, env.now_nanos()) {
            Ok(limits) => Decision::Allow { limits },
            Err(reason) => Decision::deny(reason),
        }
    }))
}

/// What a reservation of `action` holds.
fn held_by(action: &Action) -> Held {
    match action {
        Action::CreateAgents { count } => Held {
            agent_creations: *count,
            reservations: 1,
            ..Held::default()
        },
        Action::Inference { estimated_tokens } => Held {
            tokens: *estimated_tokens,
            reservations: 1,
            ..Held::default()
        },
        Action::SubmitTask | Action::UploadModel => Held {
            reservations: 1,
            ..Held::default()
        },
    }
}

fn add_held(state: &mut State, principal: Principal, delta: Held, add: bool) {
    let held = state.held(&principal);
    let next = if add {
        Held {
            tokens: held.tokens.saturating_add(delta.tokens),
            agent_creations: held.agent_creations.saturating_add(delta.agent_creations),
            reservations: held.reservations.saturating_add(delta.reservations),
        }
    } else {
        Held {
            tokens: held.tokens.saturating_sub(delta.tokens),
            agent_creations: held.agent_creations.saturating_sub(delta.agent_creations),
            reservations: held.reservations.saturating_sub(delta.reservations),
        }
    };
    state.set_held(principal, next);
}

/// Checks and holds quota for `action`; counts one request against the hourly rate. Siblings
/// only.
pub fn reserve(env: &impl Env, principal: Principal, action: Action) -> Result<Grant, Error> {
    let holder = trusted_caller_for(env, &principal)?;
    check_action(&action)?;
    let now = env.now_nanos();
    mutate_state(|s| {
        let limits = match decide(s, &principal, &action, now) {
            Ok(limits) => limits,
            Err(reason) => {
                return Ok(Grant::Denied {
                    message: reason.to_string(),
                    reason,
                });
            }
        };
        let window = roll(s.rate.get(&principal).map(|w| w.0).unwrap_or_default(), now);
        s.rate.insert(
            principal,
            Cbor(RateWindow {
                current: window.current.saturating_add(1),
                ..window
            }),
        );
        add_held(s, principal, held_by(&action), true);
        let mut id = 0;
        s.update_stored(|stored| {
            id = stored.next_reservation_id;
            stored.next_reservation_id += 1;
        });
        let ttl = s.settings().reservation_ttl_seconds;
        let reservation = Reservation {
            id,
            principal,
            action,
            holder,
            limits: limits_after_reserve(limits),
            expires_at: now.saturating_add(ttl.saturating_mul(NANOS_PER_SECOND)),
        };
        s.reservations.insert(id, Cbor(reservation.clone()));
        Ok(Grant::Reserved(reservation))
    })
}

fn limits_after_reserve(mut limits: Limits) -> Limits {
    limits.requests_left_this_hour = limits.requests_left_this_hour.saturating_sub(1);
    limits
}

fn take_reservation(env: &impl Env, id: u64) -> Result<Reservation, Error> {
    let caller = env.caller();
    let reservation = read_state(|s| s.reservations.get(&id).map(|r| r.0))
        .ok_or_else(|| Error::not_found("reservation", id))?;
    if reservation.holder != caller {
        return Err(Error::not_authorized(format!(
            "reservation {id} is held by {}, not {caller}",
            reservation.holder
        )));
    }
    Ok(reservation)
}

/// Settles a reservation with what the action used. Its holder only.
pub fn commit(env: &impl Env, id: u64, report: UsageReport) -> Result<(), Error> {
    let reservation = take_reservation(env, id)?;
    check_report(&report)?;
    if let Action::CreateAgents { count } = reservation.action
        && report.agents_created > count
    {
        return Err(Error::invalid_argument(
            "usage.agents_created",
            format!("the reservation was for {count} agents"),
        ));
    }
    let now = env.now_nanos();
    mutate_state(|s| {
        drop_reservation(s, &reservation);
        apply_usage(s, reservation.principal, &report, now);
    });
    Ok(())
}

/// Gives a reservation's quota back unused. Its holder only.
pub fn release(env: &impl Env, id: u64) -> Result<(), Error> {
    let reservation = take_reservation(env, id)?;
    mutate_state(|s| drop_reservation(s, &reservation));
    Ok(())
}

/// Usage not tied to a reservation (e.g. a generation that continued in later messages).
/// Siblings and registered agent canisters only.
pub fn report_usage(
    env: &impl Env,
    principal: Principal,
    report: UsageReport,
) -> Result<(), Error> {
    trusted_caller_for(env, &principal)?;
    check_report(&report)?;
    let now = env.now_nanos();
    mutate_state(|s| apply_usage(s, principal, &report, now));
    Ok(())
}

/// Agents a principal no longer has (deleted by the factory). Siblings only.
pub fn agents_removed(env: &impl Env, principal: Principal, count: u32) -> Result<(), Error> {
    access::sibling(env)?;
    mutate_state(|s| {
        let agents = s.agents_of(&principal).saturating_sub(count);
        if agents == 0 {
            s.agents.remove(&principal);
        } else {
            s.agents.insert(principal, agents);
        }
    });
    Ok(())
}

fn check_report(report: &UsageReport) -> Result<(), Error> {
    if report.tokens_in > MAX_TOKENS_PER_ACTION || report.tokens_out > MAX_TOKENS_PER_ACTION {
        return Err(Error::invalid_argument(
            "usage.tokens_in",
            format!("at most {MAX_TOKENS_PER_ACTION} tokens a report"),
        ));
    }
    if report.agents_created > MAX_AGENTS_PER_ACTION {
        return Err(Error::invalid_argument(
            "usage.agents_created",
            format!("at most {MAX_AGENTS_PER_ACTION}"),
        ));
    }
    if report
        .agent
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > 64)
    {
        return Err(Error::invalid_argument("usage.agent", "1 to 64 bytes"));
    }
    // Candid does not validate ids; metering keys hold at most 255 bytes of one.
    if let Some(model) = &report.model {
        ohms_types::ModelId::parse(model.as_str(), "usage.model")?;
    }
    Ok(())
}

fn apply_usage(state: &mut State, principal: Principal, report: &UsageReport, now: u64) {
    metering::record(state, principal, report, month_of(now));
    if report.agents_created > 0 {
        let agents = state
            .agents_of(&principal)
            .saturating_add(report.agents_created);
        state.agents.insert(principal, agents);
    }
}

/// Removes a reservation and gives back the quota it held.
fn drop_reservation(state: &mut State, reservation: &Reservation) {
    state.reservations.remove(&reservation.id);
    add_held(
        state,
        reservation.principal,
        held_by(&reservation.action),
        false,
    );
}

/// Releases reservations past their expiry; returns how many.
pub fn expire_reservations(now: u64) -> usize {
    mutate_state(|s| {
        let expired: Vec<Reservation> = s
            .reservations
            .iter()
            .map(|entry| entry.value().0)
            .filter(|r| r.expires_at <= now)
            .collect();
        for reservation in &expired {
            drop_reservation(s, reservation);
        }
        expired.len()
    })
}

/// Registers the agent canister of `owner`, which may then reserve and report usage for that
/// owner. The agent factory only.
pub fn register_agent_canister(
    env: &impl Env,
    canister: Principal,
    owner: Principal,
) -> Result<(), Error> {
    let (_, role) = access::sibling(env)?;
    if role != "agent_factory" {
        return Err(Error::not_authorized(
            "only the agent factory registers agent canisters",
        ));
    }
    if !ohms_types::is_canister_id(&canister) {
        return Err(Error::invalid_argument("canister", "not a canister id"));
    }
    if owner == Principal::anonymous() {
        return Err(Error::invalid_argument(
            "owner",
            "the anonymous principal owns no agents",
        ));
    }
    mutate_state(|s| s.agent_canisters.insert(canister, owner));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000 * HOUR_NANOS;

    #[test]
    fn the_sliding_hour_weights_the_previous_hour() {
        let window = RateWindow {
            window_start: T0,
            current: 10,
            previous: 0,
        };
        assert_eq!(requests_in_last_hour(window, T0 + 1), 10);
        // A quarter into the next hour, three quarters of the previous hour's 10 still count.
        assert_eq!(
            requests_in_last_hour(window, T0 + HOUR_NANOS + HOUR_NANOS / 4),
            8
        );
        // Two hours later nothing counts.
        assert_eq!(requests_in_last_hour(window, T0 + 2 * HOUR_NANOS), 0);
    }

    #[test]
    fn retry_after_is_when_one_more_request_fits() {
        let full = RateWindow {
            window_start: T0,
            current: 10,
            previous: 0,
        };
        assert_eq!(retry_after_seconds(full, T0, 10), 3_600);
        // In the next hour with 10 from the previous hour and a limit of 10: one request fits
        // once a tenth of the hour has passed.
        let now = T0 + HOUR_NANOS;
        let wait = retry_after_seconds(full, now, 10);
        assert_eq!(wait, 360);
        let later = now + wait * NANOS_PER_SECOND;
        assert!(requests_in_last_hour(full, later) < 10);
        assert_eq!(requests_in_last_hour(full, later - NANOS_PER_SECOND), 10);
    }

    #[test]
    fn reports_are_bounded() {
        let long_id: ohms_types::ModelId =
            candid::decode_one(&candid::encode_one("m".repeat(300)).unwrap()).unwrap();
        let report = UsageReport {
            model: Some(long_id),
            ..UsageReport::default()
        };
        assert!(
            matches!(check_report(&report), Err(Error::InvalidArgument { field, .. }) if field == "usage.model")
        );
        let agent = UsageReport {
            agent: Some("a".repeat(65)),
            ..UsageReport::default()
        };
        assert!(check_report(&agent).is_err());
        assert!(check_report(&UsageReport::default()).is_ok());
    }

    #[test]
    fn actions_are_bounded() {
        assert!(check_action(&Action::CreateAgents { count: 0 }).is_err());
        assert!(check_action(&Action::CreateAgents { count: 1_001 }).is_err());
        assert!(
            check_action(&Action::Inference {
                estimated_tokens: u64::MAX
            })
            .is_err()
        );
        assert!(check_action(&Action::SubmitTask).is_ok());
    }
}
