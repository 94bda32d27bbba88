//! Coordinator: splits tasks across a user's agents, runs them in the background and aggregates results.
//!
//! Entry points only: decode, check the caller, call the library, encode. Timers are armed
//! again after an upgrade: tasks continue from their stored state.

mod alerts;
mod daily;
mod engine;
mod maintenance;
mod memory;
mod metrics;
mod monitor;
mod plan;
mod routing;
mod state;
mod tasks;
mod tokens;

use ohms_ops::IcEnv;
use ohms_types::{
    AgentPerformance, AlertQuery, DailyStats, DayRange, Error, InstallArgs, ModelPerformance, Page,
    Paged, PlatformStats, SubmitTaskArgs, TaskAlert, TaskId, TaskInfo,
};

#[ic_cdk::init]
fn init(args: InstallArgs) {
    ohms_ops::lifecycle::init(&IcEnv::capture(), "coordinator", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
    maintenance::arm();
}

#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<InstallArgs>) {
    ohms_ops::lifecycle::post_upgrade(&IcEnv::capture(), "coordinator", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
    // Timers do not survive an upgrade: the tasks in progress continue.
    maintenance::arm();
    engine::wake();
}

ohms_ops::endpoint! {
    /// Submits a task to the caller's agents (named, or chosen by the coordinator); its
    /// budget is reserved with economics first. `get_task` follows it.
    async update submit_task(args: SubmitTaskArgs) -> Result<TaskInfo, Error> {
        let call = ohms_ops::UserUpdate::begin()?;
        tasks::submit(call, args).await
    }
}

ohms_ops::endpoint! {
    /// A task with its rounds, each agent's output so far and the result. Its owner and
    /// administrators.
    query get_task(id: TaskId) -> Result<TaskInfo, Error> {
        tasks::get(&IcEnv::capture(), id)
    }
}

ohms_ops::endpoint! {
    /// The caller's tasks, newest first (at most 5 a page).
    query list_tasks(page: Page) -> Result<Paged<TaskInfo>, Error> {
        tasks::list(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    /// Stops a task: no further rounds; the unused budget is released. Its owner only.
    async update cancel_task(id: TaskId) -> Result<TaskInfo, Error> {
        let call = ohms_ops::UserUpdate::begin()?;
        tasks::cancel(call, id).await
    }
}

ohms_ops::endpoint! {
    /// The caller's agents as the performance monitor measured them.
    query agent_performance(page: Page) -> Result<Paged<AgentPerformance>, Error> {
        monitor::agent_performance(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    /// Every model the tasks ran, as the performance monitor measured it.
    query model_performance(page: Page) -> Result<Paged<ModelPerformance>, Error> {
        monitor::model_performance(&IcEnv::capture(), page)
    }
}

/// The platform's figures. Administrators only.
#[ic_cdk::query]
fn platform_stats() -> Result<PlatformStats, Error> {
    monitor::platform_stats(&IcEnv::capture())
}

ohms_ops::endpoint! {
    /// The caller's alerts, newest first.
    query my_alerts(query: AlertQuery) -> Result<Paged<TaskAlert>, Error> {
        let feed = alerts::own_feed(&IcEnv::capture())?;
        Ok(alerts::list(feed, query))
    }
}

ohms_ops::endpoint! {
    /// Marks the caller's alerts read; returns how many were unread.
    update mark_alerts_read(ids: Vec<u64>) -> Result<u32, Error> {
        let call = ohms_ops::UserUpdate::begin()?;
        alerts::mark_read(call.caller(), ids)
    }
}

ohms_ops::endpoint! {
    /// The administrators' alerts (failure spikes, low cycles), newest first.
    query admin_alerts(query: AlertQuery) -> Result<Paged<TaskAlert>, Error> {
        let feed = alerts::admin_feed(&IcEnv::capture())?;
        Ok(alerts::list(feed, query))
    }
}

ohms_ops::endpoint! {
    /// Marks administrators' alerts read. Administrators only.
    update mark_admin_alerts_read(ids: Vec<u64>) -> Result<u32, Error> {
        let feed = alerts::admin_feed(&IcEnv::capture())?;
        alerts::mark_read(feed, ids)
    }
}

ohms_ops::endpoint! {
    /// One record per day of the range (UTC days since 1970-01-01), for charts. Administrators
    /// only.
    query daily_stats(range: DayRange) -> Result<Vec<DailyStats>, Error> {
        daily::daily_stats(&IcEnv::capture(), range)
    }
}

/// Runs the hourly round now: closes ended days, mirrors the factory's alerts, releases
/// task reservations a lost reply left behind.
/// Administrators only.
#[ic_cdk::update]
async fn run_maintenance() -> Result<(), Error> {
    ohms_ops::access::admin(&IcEnv::capture())?;
    maintenance::run().await;
    Ok(())
}

ohms_ops::export_ops_endpoints!(canister = "coordinator", metrics = crate::metrics::encode);

#[cfg(test)]
mod tests {
    use super::*;

    // Expanded last, after every endpoint has registered its Candid signature.
    candid::export_service!();

    #[test]
    fn interface_is_the_committed_did() {
        ohms_ops::candid_check::assert_service_equal(
            __export_service(),
            include_str!("../../../candid/coordinator.did"),
        );
    }
}
