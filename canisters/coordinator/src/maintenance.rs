//! The hourly round: closes the days that ended (daily analytics), mirrors the agent
//! factory's cycle alerts into the administrators' feed, and releases task reservations a
//! lost reply left behind.

use std::time::Duration;

use ohms_types::{Action, Alert, AlertKind, Page, Paged, Reservation, TaskAlertKind};

use crate::alerts::{self, ADMIN_FEED, About};
use crate::state::{mutate_state, read_state};
use crate::{daily, tasks};

pub const INTERVAL: Duration = Duration::from_secs(3_600);

/// Arms the hourly round (after install and upgrade: timers do not survive an upgrade).
pub fn arm() {
    ic_cdk_timers::set_timer_interval(INTERVAL, || async { run().await });
}

pub async fn run() {
    daily::close_days(ic_cdk::api::time()).await;
    mirror_factory_alerts().await;
    release_orphans().await;
}

/// Pages of held reservations one sweep reads, at most.
const MAX_HELD_PAGES: usize = 10;

/// Whether an active task holds reservation `id` (an ended task released its own).
fn known(id: u64) -> bool {
    read_state(|s| {
        s.active
            .iter()
            .filter_map(|e| s.task(*e.key()))
            .any(|t| t.info.reservation == Some(id))
    })
}

/// Releases the task reservations economics holds for this canister that no task knows of: a
/// `submit_task` whose reserve reply was lost (economics reserved, the caller got an error)
/// left one behind, holding the user's tokens until it expires a day later. Skipped while a
/// submission is in flight, whose reservation may not be recorded yet.
pub async fn release_orphans() -> u32 {
    let Ok(economics) = ohms_ops::calls::sibling("economics") else {
        return 0;
    };
    if tasks::submitting() {
        return 0;
    }
    let mut orphans = Vec::new();
    let mut start = 0;
    for _ in 0..MAX_HELD_PAGES {
        let page = Page {
            start,
            limit: Page::MAX_LIMIT,
        };
        let Ok(held) =
            ohms_ops::calls::call::<_, Paged<Reservation>>(economics, "held_reservations", (page,))
                .await
        else {
            return 0;
        };
        orphans.extend(
            held.items
                .iter()
                .filter(|r| matches!(r.action, Action::SubmitTask { .. }))
                .map(|r| r.id),
        );
        match held.next_start {
            Some(next) => start = next,
            None => break,
        }
    }
    // Decided after the awaits, in one message: a task recorded meanwhile is known now.
    if tasks::submitting() {
        return 0;
    }
    orphans.retain(|id| !known(*id));
    let mut released = 0;
    for id in orphans {
        match ohms_ops::calls::release(id).await {
            Ok(()) => released += 1,
            Err(err) => ic_cdk::println!("orphan reservation {id} not released: {err}"),
        }
    }
    released
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
