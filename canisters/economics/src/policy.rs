//! The policy engine: the one place that answers "may this principal do this now?", and the
//! reservations that hold quota while a sibling canister does the work.

use candid::Principal;
use ohms_ops::{Cbor, Env, access, pause};
use ohms_types::{
    Action, Decision, DenyReason, Error, Grant, Limits, Page, Paged, Reservation, Tier, TierConfig,
    UsageReport,
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
/// A task's reservation lasts at least this long (a task may run for hours), however short the
/// settings' reservation time to live.
pub const MIN_TASK_RESERVATION_SECONDS: u64 = 24 * 3_600;

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
        Action::SubmitTask { budget_tokens } => {
            quota(
                "tokens_per_month",
                tier.tokens_per_month,
                limits.tokens_left,
                *budget_tokens,
            )?;
        }
        Action::TaskInference {
            task_reservation,
            estimated_tokens,
        } => {
            // The task's reservation holds these tokens already (they counted against the
            // monthly quota when it was made) and the task counted against the rate: only its
            // budget bounds the draw. A run's estimate is an upper bound (before its model is
            // decoded an agent counts prompt bytes as tokens) while the coordinator sizes each
            // run within the budget by the model's own count: the draw takes at most what is
            // left, and only an empty budget is refused. Usage is committed as measured.
            let left = task_budget_left(state, *task_reservation);
            if left == 0 {
                return Err(DenyReason::QuotaExceeded {
                    quota: DenyReason::TASK_BUDGET_QUOTA.into(),
                    limit: left,
                    used: 0,
                    requested: *estimated_tokens,
                });
            }
            return Ok(limits);
        }
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
        Action::Inference { estimated_tokens }
        | Action::TaskInference {
            estimated_tokens, ..
        } if *estimated_tokens > MAX_TOKENS_PER_ACTION => Err(Error::invalid_argument(
            "action.estimated_tokens",
            format!("at most {MAX_TOKENS_PER_ACTION}"),
        )),
        Action::SubmitTask { budget_tokens }
            if *budget_tokens == 0 || *budget_tokens > MAX_TOKENS_PER_ACTION =>
        {
            Err(Error::invalid_argument(
                "action.budget_tokens",
                format!("must be 1 to {MAX_TOKENS_PER_ACTION}"),
            ))
        }
        _ => Ok(()),
    }
}

/// The task reservation a `TaskInference` for `principal` draws from: it must exist and not
/// have expired (else NotFound), be `principal`'s, and be a task's (`SubmitTask`).
fn task_parent(
    state: &State,
    principal: &Principal,
    action: &Action,
    now: u64,
) -> Result<Option<Reservation>, Error> {
    let Action::TaskInference {
        task_reservation: id,
        ..
    } = action
    else {
        return Ok(None);
    };
    let parent = state
        .reservations
        .get(id)
        .map(|r| r.0)
        .filter(|r| r.expires_at > now)
        .ok_or_else(|| Error::not_found("reservation", id))?;
    if parent.principal != *principal {
        return Err(Error::not_authorized(format!(
            "reservation {id} is {}'s, not {principal}'s",
            parent.principal
        )));
    }
    if !matches!(parent.action, Action::SubmitTask { .. }) {
        return Err(Error::invalid_argument(
            "action.task_reservation",
            format!("reservation {id} is not a task's (SubmitTask)"),
        ));
    }
    Ok(Some(parent))
}

/// Tokens left in the budget of task reservation `id` (0 if it is not one).
fn task_budget_left(state: &State, id: u64) -> u64 {
    match state.reservations.get(&id).map(|r| r.0.action) {
        Some(Action::SubmitTask { budget_tokens }) => budget_tokens,
        _ => 0,
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
    let now = env.now_nanos();
    read_state(|s| {
        task_parent(s, &principal, &action, now)?;
        Ok(match decide(s, &principal, &action, now) {
            Ok(limits) => Decision::Allow { limits },
            Err(reason) => Decision::deny(reason),
        })
    })
}

/// What a reservation of `action` holds (a task's: what is left of its budget).
fn held_by(action: &Action) -> Held {
    match action {
        Action::CreateAgents { count } => Held {
            agent_creations: *count,
            reservations: 1,
            ..Held::default()
        },
        Action::Inference { estimated_tokens }
        | Action::TaskInference {
            estimated_tokens, ..
        } => Held {
            tokens: *estimated_tokens,
            reservations: 1,
            ..Held::default()
        },
        Action::SubmitTask { budget_tokens } => Held {
            tokens: *budget_tokens,
            reservations: 1,
            ..Held::default()
        },
        Action::UploadModel => Held {
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
///
/// A `TaskInference` instead moves its tokens from its task's reservation to its own: the
/// task's budget shrinks by what the new reservation holds, so the principal holds no more
/// than before, and the hourly rate is not counted (the task was).
pub fn reserve(env: &impl Env, principal: Principal, action: Action) -> Result<Grant, Error> {
    let holder = trusted_caller_for(env, &principal)?;
    check_action(&action)?;
    let now = env.now_nanos();
    mutate_state(|s| {
        let parent = task_parent(s, &principal, &action, now)?;
        let limits = match decide(s, &principal, &action, now) {
            Ok(limits) => limits,
            Err(reason) => {
                return Ok(Grant::Denied {
                    message: reason.to_string(),
                    reason,
                });
            }
        };
        let counts_against_rate = parent.is_none();
        if counts_against_rate {
            let window = roll(s.rate.get(&principal).map(|w| w.0).unwrap_or_default(), now);
            s.rate.insert(
                principal,
                Cbor(RateWindow {
                    current: window.current.saturating_add(1),
                    ..window
                }),
            );
        }
        let mut action = action;
        if let Some(mut parent) = parent {
            let left = task_budget_left(s, parent.id);
            if let Action::TaskInference {
                estimated_tokens, ..
            } = &mut action
            {
                *estimated_tokens = (*estimated_tokens).min(left);
            }
            let drawn = held_by(&action).tokens;
            if let Action::SubmitTask { budget_tokens } = &mut parent.action {
                *budget_tokens = budget_tokens.saturating_sub(drawn);
            }
            add_held(
                s,
                principal,
                Held {
                    tokens: drawn,
                    ..Held::default()
                },
                false,
            );
            s.reservations.insert(parent.id, Cbor(parent));
        }
        add_held(s, principal, held_by(&action), true);
        let mut id = 0;
        s.update_stored(|stored| {
            id = stored.next_reservation_id;
            stored.next_reservation_id += 1;
        });
        let mut ttl = s.settings().reservation_ttl_seconds;
        if let Action::SubmitTask { .. } = action {
            ttl = ttl.max(MIN_TASK_RESERVATION_SECONDS);
        }
        let reservation = Reservation {
            id,
            principal,
            action,
            holder,
            limits: if counts_against_rate {
                limits_after_reserve(limits)
            } else {
                limits
            },
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
    let used = report.tokens_in.saturating_add(report.tokens_out);
    mutate_state(|s| {
        drop_reservation(s, &reservation, used);
        apply_usage(s, reservation.principal, &report, now);
    });
    Ok(())
}

/// The open reservations the calling sibling holds, oldest first: a holder whose `reserve`
/// reply was lost finds the reservation it does not know of here, and releases it.
pub fn held_reservations(env: &impl Env, page: Page) -> Result<Paged<Reservation>, Error> {
    let (holder, _) = access::sibling(env)?;
    Ok(read_state(|s| {
        let held: Vec<Reservation> = s
            .reservations
            .iter()
            .map(|entry| entry.value().0)
            .filter(|r| r.holder == holder)
            .collect();
        page.slice(&held)
    }))
}

/// Gives a reservation's quota back unused. Its holder only.
pub fn release(env: &impl Env, id: u64) -> Result<(), Error> {
    let reservation = take_reservation(env, id)?;
    mutate_state(|s| drop_reservation(s, &reservation, 0));
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
/// Forgets a reservation and what it held. A task run's (`TaskInference`) tokens it did not
/// use (`used` of them were) go back to its task's budget while the task lasts, so the task's
/// budget shrinks by what its runs used, not by their estimates.
fn drop_reservation(state: &mut State, reservation: &Reservation, used: u64) {
    state.reservations.remove(&reservation.id);
    add_held(
        state,
        reservation.principal,
        held_by(&reservation.action),
        false,
    );
    let Action::TaskInference {
        task_reservation,
        estimated_tokens,
    } = reservation.action
    else {
        return;
    };
    let unused = estimated_tokens.saturating_sub(used);
    let Some(mut task) = state.reservations.get(&task_reservation).map(|r| r.0) else {
        return;
    };
    let Action::SubmitTask { budget_tokens } = &mut task.action else {
        return;
    };
    if unused == 0 || task.principal != reservation.principal {
        return;
    }
    *budget_tokens = budget_tokens.saturating_add(unused);
    add_held(
        state,
        reservation.principal,
        Held {
            tokens: unused,
            ..Held::default()
        },
        true,
    );
    state.reservations.insert(task.id, Cbor(task));
}

/// Releases reservations past their expiry; returns how many.
pub fn expire_reservations(now: u64) -> usize {
    mutate_state(|s| {
        let expired: Vec<u64> = s
            .reservations
            .iter()
            .filter(|entry| entry.value().0.expires_at <= now)
            .map(|entry| *entry.key())
            .collect();
        for id in &expired {
            // Read again: an expiring run may have just returned tokens to its task.
            if let Some(reservation) = s.reservations.get(id).map(|r| r.0) {
                drop_reservation(s, &reservation, 0);
            }
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
        assert!(
            check_action(&Action::SubmitTask {
                budget_tokens: 1_000
            })
            .is_ok()
        );
        for budget_tokens in [0, MAX_TOKENS_PER_ACTION + 1] {
            assert!(
                matches!(
                    check_action(&Action::SubmitTask { budget_tokens }),
                    Err(Error::InvalidArgument { field, .. }) if field == "action.budget_tokens"
                ),
                "{budget_tokens}"
            );
        }
        assert!(
            check_action(&Action::TaskInference {
                task_reservation: 1,
                estimated_tokens: MAX_TOKENS_PER_ACTION + 1
            })
            .is_err()
        );
    }

    mod tasks {
        use super::*;
        use ohms_ops::test_env::{TestEnv, canister, principal};
        use ohms_types::{InitArgs, InstallArgs, Siblings, Subscription, SubscriptionState};

        /// Basic tier: 100,000 tokens a month, 100 requests an hour.
        const MONTHLY_TOKENS: u64 = 100_000;

        fn owner() -> Principal {
            principal(7)
        }

        fn coordinator() -> Principal {
            canister(6)
        }

        /// The owner's agent canister, registered by the factory.
        fn agent_canister() -> Principal {
            canister(20)
        }

        /// Economics with the coordinator as a sibling, the owner's agent canister registered
        /// and the owner subscribed to Basic.
        fn installed() -> TestEnv {
            let env = TestEnv::new();
            let init = InstallArgs::Init(InitArgs {
                admins: vec![],
                siblings: Siblings {
                    agent_factory: Some(canister(5)),
                    coordinator: Some(coordinator()),
                    ..Siblings::default()
                },
            });
            ohms_ops::lifecycle::init(&env, "economics", init).unwrap();
            let now = env.now_nanos();
            mutate_state(|s| {
                s.agent_canisters.insert(agent_canister(), owner());
                s.put_subscription(Subscription {
                    owner: owner(),
                    tier: Tier::Basic,
                    state: SubscriptionState::Active,
                    started_at: now,
                    current_period_start: now,
                    current_period_end: now + 30 * 24 * HOUR_NANOS,
                    grace_until: None,
                    auto_renew: false,
                    last_payment: None,
                    renewal_error: None,
                });
            });
            env
        }

        fn reserved(grant: Result<Grant, Error>) -> Reservation {
            match grant {
                Ok(Grant::Reserved(reservation)) => reservation,
                other => panic!("not reserved: {other:?}"),
            }
        }

        fn submit(env: &TestEnv, budget_tokens: u64) -> Reservation {
            reserved(reserve(
                env.as_caller(coordinator()),
                owner(),
                Action::SubmitTask { budget_tokens },
            ))
        }

        fn draw(env: &TestEnv, task: u64, tokens: u64) -> Result<Grant, Error> {
            reserve(
                env.as_caller(agent_canister()),
                owner(),
                Action::TaskInference {
                    task_reservation: task,
                    estimated_tokens: tokens,
                },
            )
        }

        fn held() -> Held {
            read_state(|s| s.held(&owner()))
        }

        fn budget_of(id: u64) -> Option<u64> {
            read_state(|s| match s.reservations.get(&id).map(|r| r.0.action) {
                Some(Action::SubmitTask { budget_tokens }) => Some(budget_tokens),
                _ => None,
            })
        }

        fn requests_this_hour() -> u32 {
            read_state(|s| s.rate.get(&owner()).map(|w| w.0.current).unwrap_or(0))
        }

        #[test]
        fn a_task_holds_its_budget_for_at_least_a_day() {
            let env = installed();
            let task = submit(&env, 40_000);
            assert_eq!(
                held(),
                Held {
                    tokens: 40_000,
                    agent_creations: 0,
                    reservations: 1
                }
            );
            let left = read_state(|s| limits(s, &owner(), env.now_nanos()))
                .unwrap()
                .0
                .tokens_left;
            assert_eq!(left, MONTHLY_TOKENS - 40_000);
            assert_eq!(
                task.expires_at,
                env.now_nanos() + MIN_TASK_RESERVATION_SECONDS * NANOS_PER_SECOND
            );
            assert_eq!(requests_this_hour(), 1);
            // The budget counts against the monthly quota like an inference.
            let over = reserve(
                env.as_caller(coordinator()),
                owner(),
                Action::SubmitTask {
                    budget_tokens: 60_001,
                },
            );
            assert!(
                matches!(
                    &over,
                    Ok(Grant::Denied {
                        reason: DenyReason::QuotaExceeded { quota, limit: MONTHLY_TOKENS, used: 40_000, requested: 60_001 },
                        ..
                    }) if quota == "tokens_per_month"
                ),
                "{over:?}"
            );
            assert_eq!(held().tokens, 40_000);
        }

        #[test]
        fn a_task_run_draws_from_the_budget_without_counting_the_rate() {
            let env = installed();
            let task = submit(&env, 1_000);
            let run = reserved(draw(&env, task.id, 300));
            assert_eq!(run.holder, agent_canister());
            assert_eq!(
                run.expires_at,
                env.now_nanos() + 600 * NANOS_PER_SECOND,
                "the settings' time to live"
            );
            assert_eq!(budget_of(task.id), Some(700));
            // The tokens moved from the task to the run: the owner holds no more than before.
            assert_eq!(
                held(),
                Held {
                    tokens: 1_000,
                    agent_creations: 0,
                    reservations: 2
                }
            );
            assert_eq!(run.limits.tokens_left, MONTHLY_TOKENS - 1_000);
            // Only the task counted against the hourly rate, and a full hour does not stop
            // the task's runs.
            assert_eq!(requests_this_hour(), 1);
            assert_eq!(
                run.limits.requests_left_this_hour,
                task.limits.requests_left_this_hour
            );
            mutate_state(|s| {
                let mut window = s.rate.get(&owner()).unwrap().0;
                window.current = 100;
                s.rate.insert(owner(), Cbor(window));
            });
            reserved(draw(&env, task.id, 200));
            assert_eq!(requests_this_hour(), 100);
            assert_eq!(budget_of(task.id), Some(500));
            let limited = reserve(
                env.as_caller(agent_canister()),
                owner(),
                Action::Inference {
                    estimated_tokens: 1,
                },
            );
            assert!(
                matches!(
                    limited,
                    Ok(Grant::Denied {
                        reason: DenyReason::RateLimited { .. },
                        ..
                    })
                ),
                "{limited:?}"
            );
        }

        #[test]
        fn a_draw_beyond_the_budget_takes_what_is_left_and_an_empty_budget_is_denied() {
            let env = installed();
            let task = submit(&env, 1_000);
            reserved(draw(&env, task.id, 700));
            let before = held();
            // An estimate above what is left (an agent counting prompt bytes) draws the rest.
            let rest = reserved(draw(&env, task.id, 301));
            assert_eq!(
                rest.action,
                Action::TaskInference {
                    task_reservation: task.id,
                    estimated_tokens: 300
                }
            );
            // The tokens moved from the task to the run: the principal holds no more.
            assert_eq!(held().tokens, before.tokens);
            assert_eq!(budget_of(task.id), Some(0));
            let before = held();
            match &draw(&env, task.id, 1) {
                Ok(Grant::Denied { reason, message }) => {
                    assert_eq!(
                        *reason,
                        DenyReason::QuotaExceeded {
                            quota: "task_budget".into(),
                            limit: 0,
                            used: 0,
                            requested: 1
                        }
                    );
                    assert!(message.contains("0 tokens left"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(held(), before);
        }

        #[test]
        fn releasing_the_task_returns_exactly_what_its_runs_did_not_draw() {
            let env = installed();
            let task = submit(&env, 1_000);
            let run = reserved(draw(&env, task.id, 300));
            release(env.as_caller(coordinator()), task.id).unwrap();
            assert_eq!(
                held(),
                Held {
                    tokens: 300,
                    agent_creations: 0,
                    reservations: 1
                }
            );
            // The run lives on and is committed like an inference.
            let report = UsageReport {
                tokens_in: 40,
                tokens_out: 210,
                ..UsageReport::default()
            };
            commit(env.as_caller(agent_canister()), run.id, report).unwrap();
            assert_eq!(held(), Held::default());
            let usage = read_state(|s| {
                metering::counters(
                    s,
                    Scope::Principal,
                    owner().as_slice(),
                    month_of(env.now_nanos()),
                )
            });
            assert_eq!(
                (usage.tokens_in, usage.tokens_out, usage.calls),
                (40, 210, 1)
            );
            // Released, the task lends nothing more.
            assert!(matches!(
                draw(&env, task.id, 1),
                Err(Error::NotFound { kind, .. }) if kind == "reservation"
            ));
        }

        #[test]
        fn a_committed_run_gives_what_it_did_not_use_back_to_its_task() {
            let env = installed();
            let task = submit(&env, 1_000);
            let run = reserved(draw(&env, task.id, 300));
            let report = UsageReport {
                tokens_in: 40,
                tokens_out: 210,
                ..UsageReport::default()
            };
            commit(env.as_caller(agent_canister()), run.id, report).unwrap();
            // 250 used: the task's budget is 1,000 - 250, and that is all the owner holds.
            assert_eq!(budget_of(task.id), Some(750));
            assert_eq!(held().tokens, 750);
            release(env.as_caller(coordinator()), task.id).unwrap();
            assert_eq!(held(), Held::default());
        }

        #[test]
        fn expiry_drops_what_each_reservation_still_holds() {
            let env = installed();
            let task = submit(&env, 1_000);
            let run = reserved(draw(&env, task.id, 400));
            // The run expires first (settings' ttl): what it held goes back to the task, which
            // expires a day later.
            assert_eq!(expire_reservations(run.expires_at), 1);
            assert_eq!(held().tokens, 1_000);
            assert_eq!(budget_of(task.id), Some(1_000));
            assert_eq!(expire_reservations(task.expires_at), 1);
            assert_eq!(held(), Held::default());
        }

        #[test]
        fn only_a_live_task_of_the_same_principal_lends_tokens() {
            let env = installed();
            assert!(matches!(
                draw(&env, 42, 1),
                Err(Error::NotFound { kind, .. }) if kind == "reservation"
            ));
            // An inference reservation is no task.
            let inference = reserved(reserve(
                env.as_caller(agent_canister()),
                owner(),
                Action::Inference {
                    estimated_tokens: 10,
                },
            ));
            assert!(matches!(
                draw(&env, inference.id, 1),
                Err(Error::InvalidArgument { field, .. }) if field == "action.task_reservation"
            ));
            // Another principal's task, even through a sibling that may act for anyone.
            let other = principal(8);
            mutate_state(|s| {
                let mut sub = s.subscription(&owner()).unwrap();
                sub.owner = other;
                s.put_subscription(sub);
            });
            let theirs = reserved(reserve(
                env.as_caller(coordinator()),
                other,
                Action::SubmitTask { budget_tokens: 10 },
            ));
            assert!(matches!(
                reserve(
                    env.as_caller(coordinator()),
                    owner(),
                    Action::TaskInference {
                        task_reservation: theirs.id,
                        estimated_tokens: 1,
                    },
                ),
                Err(Error::NotAuthorized { .. })
            ));
            // And the owner's agent canister may not act for the other principal.
            assert!(matches!(
                reserve(
                    env.as_caller(agent_canister()),
                    other,
                    Action::TaskInference {
                        task_reservation: theirs.id,
                        estimated_tokens: 1,
                    },
                ),
                Err(Error::NotAuthorized { .. })
            ));
            // An expired task lends nothing, before the timer removed it.
            let task = submit(&env, 100);
            env.now.set(task.expires_at);
            assert!(matches!(
                draw(&env, task.id, 1),
                Err(Error::NotFound { .. })
            ));
            // `authorize` answers the same.
            assert!(matches!(
                authorize(
                    env.as_caller(owner()),
                    owner(),
                    Action::TaskInference {
                        task_reservation: task.id,
                        estimated_tokens: 1
                    }
                ),
                Err(Error::NotFound { .. })
            ));
        }

        #[test]
        fn a_lapsed_subscription_stops_task_runs() {
            let env = installed();
            let task = submit(&env, 1_000);
            mutate_state(|s| {
                let mut sub = s.subscription(&owner()).unwrap();
                sub.current_period_end = env.now_nanos();
                s.put_subscription(sub);
            });
            let lapsed = draw(&env, task.id, 1);
            assert!(
                matches!(
                    lapsed,
                    Ok(Grant::Denied {
                        reason: DenyReason::SubscriptionExpired { .. },
                        ..
                    })
                ),
                "{lapsed:?}"
            );
            assert_eq!(budget_of(task.id), Some(1_000));
        }
    }
}
