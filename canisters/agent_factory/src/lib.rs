//! Agent factory: turns a user's instructions into agents and deploys them into the user's agent canister.
//!
//! Entry points only: decode (within `ohms_ops::decode`'s quotas), capture the caller once,
//! call the logic, encode. Roles are checked inside the logic. Timers (armed at install and
//! after every upgrade): the top-up round and the model catalogue's refresh.

mod analyze;
mod catalogue;
mod create;
mod cycles;
mod deploy;
mod manage;
mod memory;
mod state;
mod taxonomy;
mod wasm;

use std::cell::Cell;
use std::time::Duration;

use candid::Principal;
use ohms_ops::{IcEnv, UserUpdate};
use ohms_types::{
    AgentCanisterRecord, AgentId, AgentInfo, AgentStatus, AgentWasmChunk, AgentWasmStatus, Alert,
    CreateAgentsArgs, CreatedAgents, Error, FactorySettings, InstallArgs, InstructionAnalysis,
    Page, Paged, UpgradeReport,
};

/// How often the kept copy of the repository's models is refreshed.
const CATALOGUE_INTERVAL: Duration = Duration::from_secs(300);

thread_local! {
    static TOP_UP_TIMER: Cell<Option<ic_cdk_timers::TimerId>> = const { Cell::new(None) };
}

#[ic_cdk::init]
fn init(args: InstallArgs) {
    ohms_ops::lifecycle::init(&IcEnv::capture(), "agent_factory", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
    arm_timers();
}

#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<InstallArgs>) {
    ohms_ops::lifecycle::post_upgrade(&IcEnv::capture(), "agent_factory", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
    arm_timers();
}

/// Timers do not survive an upgrade: armed again from `post_upgrade`.
fn arm_timers() {
    ic_cdk_timers::set_timer(Duration::ZERO, catalogue::refresh());
    ic_cdk_timers::set_timer_interval_serial(CATALOGUE_INTERVAL, async || {
        catalogue::refresh().await
    });
    arm_top_up();
}

/// (Re)arms the top-up round at the configured interval.
fn arm_top_up() {
    let interval = state::read_state(|s| s.config().settings.top_up_interval_seconds);
    if let Some(old) = TOP_UP_TIMER.with(|t| t.take()) {
        ic_cdk_timers::clear_timer(old);
    }
    let id = ic_cdk_timers::set_timer_interval_serial(Duration::from_secs(interval), async || {
        cycles::top_up_round().await;
    });
    TOP_UP_TIMER.with(|t| t.set(Some(id)));
}

ohms_ops::endpoint! {
    /// What agents the instructions call for, and why: capabilities found, roles with their
    /// system prompts, suggested models, agent count and token budget.
    query analyze_instructions(instructions: String) -> Result<InstructionAnalysis, Error> {
        create::analyze_instructions(&instructions)
    }
}

ohms_ops::endpoint! {
    /// Creates agents for the caller in their agent canister (created on first use), after
    /// economics allowed it.
    async update create_agents(args: CreateAgentsArgs) -> Result<CreatedAgents, Error> {
        let call = UserUpdate::begin()?;
        create::create_agents(&call, args).await
    }
}

ohms_ops::endpoint! {
    /// The caller's agents.
    async update list_agents(page: Page) -> Result<Paged<AgentInfo>, Error> {
        manage::list(&IcEnv::capture(), page).await
    }
}

ohms_ops::endpoint! {
    async update get_agent(agent: AgentId) -> Result<AgentInfo, Error> {
        manage::get(&IcEnv::capture(), agent).await
    }
}

ohms_ops::endpoint! {
    async update pause_agent(agent: AgentId) -> Result<AgentInfo, Error> {
        let call = UserUpdate::begin()?;
        manage::set_status(&call, agent, AgentStatus::Paused).await
    }
}

ohms_ops::endpoint! {
    async update resume_agent(agent: AgentId) -> Result<AgentInfo, Error> {
        let call = UserUpdate::begin()?;
        manage::set_status(&call, agent, AgentStatus::Active).await
    }
}

ohms_ops::endpoint! {
    async update delete_agent(agent: AgentId) -> Result<(), Error> {
        let call = UserUpdate::begin()?;
        manage::delete(&call, agent).await
    }
}

/// The caller's agent canister, if they have one.
#[ic_cdk::query]
fn my_agent_canister() -> Result<Option<AgentCanisterRecord>, Error> {
    let owner = ohms_ops::access::user(&IcEnv::capture())?;
    Ok(state::read_state(|s| s.canister_of(&owner)))
}

ohms_ops::endpoint! {
    /// The record of `owner`'s agent canister, if they have one. Registered sibling canisters
    /// (the coordinator) and administrators only.
    query agent_canister_of(owner: Principal) -> Result<Option<AgentCanisterRecord>, Error> {
        manage::agent_canister_of(&IcEnv::capture(), owner)
    }
}

ohms_ops::endpoint! {
    /// One chunk of the agent wasm (administrators; audited when a module becomes active).
    bulk update upload_agent_wasm(chunk: AgentWasmChunk) -> Result<AgentWasmStatus, Error> {
        wasm::upload(&IcEnv::capture(), chunk)
    }
}

#[ic_cdk::query]
fn agent_wasm_status() -> AgentWasmStatus {
    wasm::status()
}

ohms_ops::endpoint! {
    /// Upgrades up to `limit` agent canisters to the active wasm (administrators); call again
    /// until `remaining` is 0.
    async update upgrade_agent_canisters(limit: u32) -> Result<UpgradeReport, Error> {
        let env = IcEnv::capture();
        ohms_ops::access::admin(&env)?;
        ohms_ops::audit::record(&env, "upgrade_agent_canisters", format!("limit {limit}"));
        deploy::upgrade_all(limit.clamp(1, 50)).await
    }
}

ohms_ops::endpoint! {
    /// Agent canisters with their balances as last seen (administrators).
    query agent_canisters(page: Page) -> Result<Paged<AgentCanisterRecord>, Error> {
        cycles::agent_canisters(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    /// Low-cycle and top-up alerts, newest first (administrators).
    query alerts(page: Page) -> Result<Paged<Alert>, Error> {
        cycles::alerts(&IcEnv::capture(), page)
    }
}

/// Administrators only.
#[ic_cdk::query]
fn factory_settings() -> Result<FactorySettings, Error> {
    ohms_ops::access::admin(&IcEnv::capture())?;
    Ok(state::read_state(|s| s.config().settings))
}

ohms_ops::endpoint! {
    /// Replaces the settings (administrators; audited).
    update set_factory_settings(settings: FactorySettings) -> Result<(), Error> {
        let env = IcEnv::capture();
        ohms_ops::access::admin(&env)?;
        cycles::validate(&settings)?;
        ohms_ops::audit::record(&env, "set_factory_settings", format!("{settings:?}"));
        state::mutate_state(|s| s.update_config(|c| c.settings = settings));
        arm_top_up();
        Ok(())
    }
}

/// Runs a top-up round now (administrators; audited). Busy while a round is in progress.
#[ic_cdk::update]
async fn top_up_agent_canisters() -> Result<(), Error> {
    let env = IcEnv::capture();
    ohms_ops::access::admin(&env)?;
    ohms_ops::audit::record(&env, "top_up_agent_canisters", "round started");
    if cycles::top_up_round().await {
        Ok(())
    } else {
        Err(Error::Busy)
    }
}

ohms_ops::export_ops_endpoints!(canister = "agent_factory");

#[cfg(test)]
mod tests {
    use super::*;

    // Expanded last, after every endpoint has registered its Candid signature.
    candid::export_service!();

    #[test]
    fn interface_is_the_committed_did() {
        ohms_ops::candid_check::assert_service_equal(
            __export_service(),
            include_str!("../../../candid/agent_factory.did"),
        );
    }
}
