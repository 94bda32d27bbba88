//! The hourly round: closes the days that ended (daily analytics) and mirrors the agent
//! factory's cycle alerts into the administrators' feed.

use std::time::Duration;

use ohms_types::{Alert, AlertKind, Page, Paged, TaskAlertKind};

use crate::alerts::{self, ADMIN_FEED, About};
use crate::daily;
use crate::state::{mutate_state, read_state};

pub const INTERVAL: Duration = Duration::from_secs(3_600);

/// Arms the hourly round (after install and upgrade: timers do not survive an upgrade).
pub fn arm() {
    ic_cdk_timers::set_timer_interval(INTERVAL, || async { run().await });
}

pub async fn run() {
    daily::close_days(ic_cdk::api::time()).await;
    mirror_factory_alerts().await;
}

/// Copies the factory's alerts newer than the last one seen (its newest page).
async fn mirror_factory_alerts() {
    let Ok(factory) = ohms_ops::calls::sibling("agent_factory") else {
        return;
    };
    let Ok(page) = ohms_ops::calls::call::<_, Paged<Alert>>(
        factory,
        "alerts",
        (Page::first(Page::MAX_LIMIT),),
    )
    .await
    else {
        return;
    };
    let seen = read_state(|s| s.config().factory_alerts_seen);
    let now = ic_cdk::api::time();
    mutate_state(|s| {
        let mut newest = seen;
        let mut fresh: Vec<&Alert> = page.items.iter().filter(|a| a.id > seen).collect();
        fresh.sort_by_key(|a| a.id);
        for alert in fresh {
            newest = newest.max(alert.id);
            let kind = match alert.kind {
                AlertKind::FactoryLowCycles | AlertKind::TopUpFailed => TaskAlertKind::LowCycles,
            };
            alerts::push(
                s,
                ADMIN_FEED,
                kind,
                format!("agent factory: {}", alert.message),
                About {
                    canister: alert.canister,
                    ..About::default()
                },
                now,
            );
        }
        s.update_config(|c| c.factory_alerts_seen = newest);
    });
}
