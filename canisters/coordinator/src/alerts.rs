//! Alert feeds: one per user (agent failed, quota nearly used, task finished) and one for
//! administrators (failure spikes, agent canisters low on cycles), paginated, read/unread.

use candid::Principal;
use ohms_ops::{Cbor, Env};
use ohms_types::{AgentId, AlertQuery, Error, Paged, TaskAlert, TaskAlertKind, TaskId};

use crate::state::{State, mutate_state, read_state};

/// The administrators' feed is kept under the management canister's id, which no user has.
pub const ADMIN_FEED: Principal = Principal::management_canister();
/// Alerts kept per feed; the oldest go first.
pub const MAX_ALERTS_PER_FEED: usize = 500;
/// Ids one `mark_alerts_read` call may name.
pub const MAX_MARKED: usize = 500;

/// What an alert is about, besides its kind and message.
#[derive(Default, Clone, Copy)]
pub struct About {
    pub task: Option<TaskId>,
    pub agent: Option<AgentId>,
    pub canister: Option<Principal>,
}

pub fn push(
    s: &mut State,
    feed: Principal,
    kind: TaskAlertKind,
    message: String,
    about: About,
    now: u64,
) {
    let id = s.update_config(|c| {
        c.next_alert_id += 1;
        c.next_alert_id - 1
    });
    s.alerts.insert(
        (feed, id),
        Cbor(TaskAlert {
            id,
            kind,
            message,
            task: about.task,
            agent: about.agent,
            canister: about.canister,
            at_nanos: now,
            read: false,
        }),
    );
    let keys: Vec<(Principal, u64)> = s
        .alerts
        .range((feed, 0)..=(feed, u64::MAX))
        .map(|e| *e.key())
        .collect();
    for key in keys
        .iter()
        .take(keys.len().saturating_sub(MAX_ALERTS_PER_FEED))
    {
        s.alerts.remove(key);
    }
}

/// The newest alert of `kind` in `feed`, if any.
pub fn latest_of(s: &State, feed: Principal, kind: &TaskAlertKind) -> Option<TaskAlert> {
    s.alerts
        .range((feed, 0)..=(feed, u64::MAX))
        .rev()
        .map(|e| e.value().0)
        .find(|a| &a.kind == kind)
}

/// A feed, newest first.
pub fn list(feed: Principal, query: AlertQuery) -> Paged<TaskAlert> {
    read_state(|s| {
        let items: Vec<TaskAlert> = s
            .alerts
            .range((feed, 0)..=(feed, u64::MAX))
            .rev()
            .map(|e| e.value().0)
            .filter(|a| !query.unread_only || !a.read)
            .collect();
        query.page.slice(&items)
    })
}

/// Marks alerts of `feed` read; ids of other feeds or unknown ids are an error and nothing
/// changes.
pub fn mark_read(feed: Principal, ids: Vec<u64>) -> Result<u32, Error> {
    if ids.len() > MAX_MARKED {
        return Err(Error::invalid_argument(
            "ids",
            format!("at most {MAX_MARKED} ids a call"),
        ));
    }
    mutate_state(|s| {
        if let Some(unknown) = ids.iter().find(|id| !s.alerts.contains_key(&(feed, **id))) {
            return Err(Error::not_found("alert", unknown));
        }
        let mut marked = 0;
        for id in ids {
            let mut alert = s.alerts.get(&(feed, id)).expect("checked above").0;
            if !alert.read {
                alert.read = true;
                marked += 1;
                s.alerts.insert((feed, id), Cbor(alert));
            }
        }
        Ok(marked)
    })
}

/// The caller's own feed.
pub fn own_feed(env: &impl Env) -> Result<Principal, Error> {
    ohms_ops::access::user(env)
}

/// The administrators' feed, for an administrator.
pub fn admin_feed(env: &impl Env) -> Result<Principal, Error> {
    ohms_ops::access::admin(env)?;
    Ok(ADMIN_FEED)
}
