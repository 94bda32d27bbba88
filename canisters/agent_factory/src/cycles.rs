//! Cycles: agent canisters below the threshold are topped up from the factory's balance on a
//! timer; when the factory itself runs low it records an alert instead of draining itself.

use std::cell::Cell;

use candid::Principal;
use ic_cdk_management_canister::{CanisterIdRecord, DepositCyclesArgs};
use ohms_ops::Env;
use ohms_types::{AgentCanisterRecord, Alert, AlertKind, Error, FactorySettings, Page, Paged};

use ohms_ops::paging::Order;

use crate::state::{mutate_state, read_state};

/// Agent canisters looked at per round (each costs a `canister_status` call).
const PER_ROUND: usize = 100;

pub fn default_settings() -> FactorySettings {
    FactorySettings {
        agent_initial_cycles: 2_000_000_000_000,
        top_up_threshold: 500_000_000_000,
        top_up_amount: 1_000_000_000_000,
        factory_low_water: 5_000_000_000_000,
        top_up_interval_seconds: 3_600,
        agent_instructions_per_message: ohms_types::DEFAULT_INSTRUCTIONS_PER_MESSAGE,
    }
}

pub fn validate(settings: &FactorySettings) -> Result<(), Error> {
    if settings.top_up_amount == 0 {
        return Err(Error::invalid_argument("top_up_amount", "must be positive"));
    }
    if settings.agent_initial_cycles < settings.top_up_threshold {
        return Err(Error::invalid_argument(
            "agent_initial_cycles",
            "a new agent canister must start above the top-up threshold",
        ));
    }
    if !(10..=7 * 86_400).contains(&settings.top_up_interval_seconds) {
        return Err(Error::invalid_argument(
            "top_up_interval_seconds",
            "from 10 seconds to a week",
        ));
    }
    if !(1_000_000..=ohms_types::MAX_INSTRUCTIONS_PER_MESSAGE)
        .contains(&settings.agent_instructions_per_message)
    {
        return Err(Error::invalid_argument(
            "agent_instructions_per_message",
            format!(
                "from 1,000,000 to {}",
                ohms_types::MAX_INSTRUCTIONS_PER_MESSAGE
            ),
        ));
    }
    Ok(())
}

thread_local! {
    /// A round is in progress (the timer's or an administrator's): one at a time.
    static ROUND: Cell<bool> = const { Cell::new(false) };
}

/// One top-up round over up to `PER_ROUND` installed agent canisters, continuing after the one
/// the previous round ended with; `false` when a round was in progress already.
pub async fn top_up_round() -> bool {
    if ROUND.with(|r| r.replace(true)) {
        return false;
    }
    struct RoundGuard;
    impl Drop for RoundGuard {
        fn drop(&mut self) {
            ROUND.with(|r| r.set(false));
        }
    }
    let _guard = RoundGuard;
    let settings = read_state(|s| s.config().settings);
    let cursor = read_state(|s| s.config().top_up_cursor);
    // The installed agent canisters in owner order, starting after the cursor.
    let records: Vec<AgentCanisterRecord> = read_state(|s| {
        let installed: Vec<AgentCanisterRecord> = s
            .canisters
            .iter()
            .map(|e| e.value().0)
            .filter(|r| r.wasm_sha256.is_some())
            .collect();
        let start = installed
            .iter()
            .position(|r| cursor.is_some_and(|c| r.owner > c))
            .unwrap_or(0);
        let mut rotated = installed[start..].to_vec();
        rotated.extend_from_slice(&installed[..start]);
        rotated.truncate(PER_ROUND);
        rotated
    });
    if let Some(last) = records.last() {
        let last = last.owner;
        mutate_state(|s| s.update_config(|c| c.top_up_cursor = Some(last)));
    }
    let mut warned = false;
    for record in records {
        let status = ic_cdk_management_canister::canister_status(&CanisterIdRecord {
            canister_id: record.canister,
        })
        .await;
        let Ok(status) = status else {
            continue;
        };
        let balance: u128 = status.cycles.0.try_into().unwrap_or(u128::MAX);
        crate::deploy::update_record(record.owner, |r| r.cycles = Some(balance));
        if balance < settings.top_up_threshold {
            let own = ic_cdk::api::canister_cycle_balance();
            if own
                < settings
                    .factory_low_water
                    .saturating_add(settings.top_up_amount)
            {
                if !warned {
                    alert(
                        AlertKind::FactoryLowCycles,
                        None,
                        format!(
                            "the factory holds {own} cycles, below its low-water mark of {} plus a top-up of {}: agent canisters are not topped up",
                            settings.factory_low_water, settings.top_up_amount
                        ),
                    );
                    warned = true;
                }
            } else {
                let sent = ic_cdk_management_canister::deposit_cycles(
                    &DepositCyclesArgs {
                        canister_id: record.canister,
                    },
                    settings.top_up_amount,
                )
                .await;
                match sent {
                    Ok(()) => crate::deploy::update_record(record.owner, |r| {
                        r.topped_up_cycles += settings.top_up_amount;
                        r.cycles = Some(balance + settings.top_up_amount);
                    }),
                    Err(err) => alert(
                        AlertKind::TopUpFailed,
                        Some(record.canister),
                        format!("topping up {} failed: {err}", record.canister),
                    ),
                }
            }
        }
    }
    let own = ic_cdk::api::canister_cycle_balance();
    if !warned && own < settings.factory_low_water {
        alert(
            AlertKind::FactoryLowCycles,
            None,
            format!(
                "the factory holds {own} cycles, below its low-water mark of {}",
                settings.factory_low_water
            ),
        );
    }
    true
}

/// Alerts kept: the oldest go first.
const MAX_ALERTS: u64 = 1_000;

fn alert(kind: AlertKind, canister: Option<Principal>, message: String) {
    let now = ic_cdk::api::time();
    mutate_state(|s| {
        s.add_alert(|id| Alert {
            id,
            kind,
            canister,
            message,
            at_nanos: now,
        });
        while s.alerts.len() > MAX_ALERTS {
            let Some(oldest) = s.alerts.first_key_value().map(|(id, _)| id) else {
                break;
            };
            s.alerts.remove(&oldest);
        }
    });
}

/// Alerts, newest first. Administrators only.
pub fn alerts(env: &impl Env, page: Page) -> Result<Paged<Alert>, Error> {
    // The coordinator mirrors them into the administrators' alert feed.
    if ohms_ops::access::sibling(env).is_err() {
        ohms_ops::access::admin(env)?;
    }
    Ok(read_state(|s| {
        ohms_ops::paging::page_values(&s.alerts, page, Order::Descending, |a| a.0)
    }))
}

/// Every agent canister with its balance as last seen. Administrators only.
pub fn agent_canisters(env: &impl Env, page: Page) -> Result<Paged<AgentCanisterRecord>, Error> {
    ohms_ops::access::admin(env)?;
    Ok(read_state(|s| {
        ohms_ops::paging::page_values(&s.canisters, page, Order::Ascending, |r| r.0)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_bound_is_checked() {
        assert_eq!(validate(&default_settings()), Ok(()));
        let checks: [fn(&mut FactorySettings); 4] = [
            |s| s.top_up_amount = 0,
            |s| s.agent_initial_cycles = s.top_up_threshold - 1,
            |s| s.top_up_interval_seconds = 1,
            |s| s.agent_instructions_per_message = ohms_types::MAX_INSTRUCTIONS_PER_MESSAGE + 1,
        ];
        for break_it in checks {
            let mut settings = default_settings();
            break_it(&mut settings);
            assert!(matches!(
                validate(&settings),
                Err(Error::InvalidArgument { .. })
            ));
        }
    }
}
