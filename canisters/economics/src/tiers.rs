//! Tiers and settings: SPEC §3.4's defaults, and the administrators' changes to them.

use ohms_ops::{Cbor, Env, access, audit};
use ohms_types::{EconomicsSettings, Error, InferencePriority, Tier, TierConfig};

use crate::state::{State, mutate_state, read_state};

pub const ALL_TIERS: [Tier; 4] = [Tier::Free, Tier::Basic, Tier::Pro, Tier::Enterprise];

/// Prices are set by administrators; these are the starting points (in e8s a month).
pub fn default_tier(tier: Tier) -> TierConfig {
    let (price, agents, creations, tokens, requests, priority, available) = match tier {
        Tier::Free => (0, 1, 2, 10_000, 20, InferencePriority::Standard, false),
        Tier::Basic => (
            100_000_000,
            5,
            10,
            100_000,
            100,
            InferencePriority::Standard,
            true,
        ),
        Tier::Pro => (
            500_000_000,
            25,
            50,
            500_000,
            500,
            InferencePriority::Priority,
            true,
        ),
        Tier::Enterprise => (
            2_000_000_000,
            100,
            200,
            2_000_000,
            2_000,
            InferencePriority::Premium,
            true,
        ),
    };
    TierConfig {
        tier,
        price_e8s_per_month: price,
        max_agents: agents,
        agent_creations_per_month: creations,
        tokens_per_month: tokens,
        requests_per_hour: requests,
        priority,
        available,
    }
}

pub fn default_settings(ledger_fee_e8s: u64) -> EconomicsSettings {
    EconomicsSettings {
        ledger_fee_e8s,
        platform_share_bps: 3_000,
        grace_period_seconds: 7 * 86_400,
        min_deposit_e8s: 1_000_000,
        deposit_max_age_seconds: 7 * 86_400,
        reservation_ttl_seconds: 600,
    }
}

pub fn tier_key(tier: Tier) -> u8 {
    tier as u8
}

/// A tier's configuration (the default until an administrator sets it).
pub fn tier_config(tier: Tier) -> TierConfig {
    read_state(|s| tier_config_in(s, tier))
}

/// [`tier_config`] inside a state access.
pub fn tier_config_in(state: &State, tier: Tier) -> TierConfig {
    state
        .tiers
        .get(&tier_key(tier))
        .map(|t| t.0)
        .unwrap_or_else(|| default_tier(tier))
}

pub fn list_tiers() -> Vec<TierConfig> {
    ALL_TIERS.into_iter().map(tier_config).collect()
}

/// Replaces a tier's price and limits. Administrators only; audited.
pub fn set_tier(env: &impl Env, config: TierConfig) -> Result<(), Error> {
    access::admin(env)?;
    validate_tier(&config)?;
    audit::record(
        env,
        "set_tier",
        format!(
            "{:?}: {} e8s a month, {} agents, {} creations, {} tokens, {} requests an hour, {:?}, available {}",
            config.tier,
            config.price_e8s_per_month,
            config.max_agents,
            config.agent_creations_per_month,
            config.tokens_per_month,
            config.requests_per_hour,
            config.priority,
            config.available
        ),
    );
    mutate_state(|s| s.tiers.insert(tier_key(config.tier), Cbor(config)));
    Ok(())
}

fn validate_tier(config: &TierConfig) -> Result<(), Error> {
    let paid = config.tier != Tier::Free;
    if paid && config.price_e8s_per_month == 0 {
        return Err(Error::invalid_argument(
            "config.price_e8s_per_month",
            "a paid tier needs a price above 0",
        ));
    }
    if !paid && config.price_e8s_per_month != 0 {
        return Err(Error::invalid_argument(
            "config.price_e8s_per_month",
            "the free tier has no price",
        ));
    }
    if config.price_e8s_per_month > MAX_PRICE_E8S {
        return Err(Error::invalid_argument(
            "config.price_e8s_per_month",
            format!("at most {MAX_PRICE_E8S} e8s (100,000 ICP) a month"),
        ));
    }
    if config.requests_per_hour == 0 {
        return Err(Error::invalid_argument(
            "config.requests_per_hour",
            "must be at least 1",
        ));
    }
    Ok(())
}

const MAX_PRICE_E8S: u64 = 100_000 * 100_000_000;

/// Replaces the settings. Administrators only; audited.
pub fn set_settings(env: &impl Env, settings: EconomicsSettings) -> Result<(), Error> {
    access::admin(env)?;
    if settings.platform_share_bps > 10_000 {
        return Err(Error::invalid_argument(
            "settings.platform_share_bps",
            "at most 10000 (100 %)",
        ));
    }
    if settings.min_deposit_e8s <= settings.ledger_fee_e8s {
        return Err(Error::invalid_argument(
            "settings.min_deposit_e8s",
            "must exceed the ledger fee (sweeping a deposit costs one fee)",
        ));
    }
    for (field, seconds) in [
        (
            "settings.grace_period_seconds",
            settings.grace_period_seconds,
        ),
        (
            "settings.deposit_max_age_seconds",
            settings.deposit_max_age_seconds,
        ),
        (
            "settings.reservation_ttl_seconds",
            settings.reservation_ttl_seconds,
        ),
    ] {
        if seconds == 0 || seconds > MAX_SETTING_SECONDS {
            return Err(Error::invalid_argument(
                field,
                format!("must be 1 to {MAX_SETTING_SECONDS} seconds"),
            ));
        }
    }
    audit::record(env, "set_settings", format!("{settings:?}"));
    mutate_state(|s| s.update_stored(|stored| stored.settings = settings));
    Ok(())
}

/// A year.
const MAX_SETTING_SECONDS: u64 = 365 * 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_specs() {
        let basic = default_tier(Tier::Basic);
        assert_eq!(
            (
                basic.max_agents,
                basic.agent_creations_per_month,
                basic.tokens_per_month
            ),
            (5, 10, 100_000)
        );
        let pro = default_tier(Tier::Pro);
        assert_eq!(
            (
                pro.max_agents,
                pro.agent_creations_per_month,
                pro.tokens_per_month,
                pro.priority
            ),
            (25, 50, 500_000, InferencePriority::Priority)
        );
        let enterprise = default_tier(Tier::Enterprise);
        assert_eq!(
            (
                enterprise.max_agents,
                enterprise.agent_creations_per_month,
                enterprise.tokens_per_month,
                enterprise.priority
            ),
            (100, 200, 2_000_000, InferencePriority::Premium)
        );
        assert!(
            !default_tier(Tier::Free).available,
            "the free tier is off by default"
        );
    }

    #[test]
    fn invalid_tiers_name_the_field() {
        let mut free = default_tier(Tier::Free);
        free.price_e8s_per_month = 1;
        assert!(
            matches!(validate_tier(&free), Err(Error::InvalidArgument { field, .. }) if field == "config.price_e8s_per_month")
        );
        let mut basic = default_tier(Tier::Basic);
        basic.price_e8s_per_month = 0;
        assert!(validate_tier(&basic).is_err());
        basic = default_tier(Tier::Basic);
        basic.requests_per_hour = 0;
        assert!(
            matches!(validate_tier(&basic), Err(Error::InvalidArgument { field, .. }) if field == "config.requests_per_hour")
        );
    }
}
