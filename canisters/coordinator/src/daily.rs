//! Daily analytics: each event adds to its UTC day's record as it happens; a timer closes the
//! days that ended, adding the revenue economics recorded since the last close, so the dapp's
//! charts read one record per day.

use candid::Principal;
use ohms_ops::{Cbor, Env};
use ohms_types::calendar::{day_label, day_of};
use ohms_types::{Analytics, DailyStats, DayRange, Error, MAX_STATS_DAYS};

use crate::state::{State, mutate_state, read_state};

/// Changes the record of the day of `now`, creating it.
pub fn bump(s: &mut State, now: u64, change: impl FnOnce(&mut DailyStats)) {
    let day = day_of(now);
    let mut record = s
        .daily
        .get(&day)
        .map(|d| d.0)
        .unwrap_or_else(|| empty_day(day));
    change(&mut record);
    s.daily.insert(day, Cbor(record));
}

/// A day with nothing recorded yet.
fn empty_day(day: u32) -> DailyStats {
    DailyStats {
        day,
        date: day_label(day),
        ..DailyStats::default()
    }
}

/// Counts `user` active on the day of `now` (once a day).
pub fn active(s: &mut State, now: u64, user: Principal) {
    let day = day_of(now);
    if s.day_users.insert((day, user), ()).is_none() {
        bump(s, now, |d| d.active_users += 1);
    }
    s.users.insert(user, ());
}

/// Closes every day before today that is still open: the newest of them gets the revenue
/// economics recorded since the last close (a day with no close before it gets none, since
/// what came before is unknown).
pub async fn close_days(now: u64) {
    let today = day_of(now);
    let open: Vec<u32> = read_state(|s| {
        s.daily
            .iter()
            .filter(|e| *e.key() < today && !e.value().0.closed)
            .map(|e| *e.key())
            .collect()
    });
    if open.is_empty() {
        return;
    }
    let revenue = match ohms_ops::calls::sibling("economics") {
        Ok(economics) => ohms_ops::calls::call::<_, Analytics>(economics, "analytics", ())
            .await
            .map(|a| a.revenue_e8s)
            .ok(),
        Err(_) => None,
    };
    let Some(revenue) = revenue else {
        // Economics did not answer: the days stay open and the next close tries again.
        return;
    };
    mutate_state(|s| {
        let before = s.config().revenue_at_last_close_e8s;
        let newest = open.iter().max().copied();
        for day in &open {
            if let Some(mut record) = s.daily.get(day).map(|d| d.0) {
                record.closed = true;
                record.revenue_e8s = Some(match (Some(*day) == newest, before) {
                    (true, Some(before)) => revenue.saturating_sub(before),
                    _ => 0,
                });
                s.daily.insert(*day, Cbor(record));
            }
        }
        s.update_config(|c| c.revenue_at_last_close_e8s = Some(revenue));
    });
}

/// The days of `range`, every day present (days without activity are zeros). Administrators.
pub fn daily_stats(env: &impl Env, range: DayRange) -> Result<Vec<DailyStats>, Error> {
    ohms_ops::access::admin(env)?;
    if range.from_day > range.to_day {
        return Err(Error::invalid_argument("from_day", "is after to_day"));
    }
    if range.to_day - range.from_day >= MAX_STATS_DAYS {
        return Err(Error::invalid_argument(
            "to_day",
            format!("at most {MAX_STATS_DAYS} days a call"),
        ));
    }
    Ok(read_state(|s| {
        (range.from_day..=range.to_day)
            .map(|day| {
                s.daily
                    .get(&day)
                    .map(|d| d.0)
                    .unwrap_or_else(|| empty_day(day))
            })
            .collect()
    }))
}
