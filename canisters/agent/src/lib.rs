//! Agent canister: holds a user's agents and runs their inference on NOVAQ models in stable memory.
//!
//! Entry points only: decode (within `ohms_ops::decode`'s quotas), capture the caller once,
//! call the logic, encode. Only the owner, the agent factory and the coordinator may call it
//! (checked inside each method). Timers are armed again after an upgrade: fetches in progress
//! continue and the run queue is worked from where it stopped.

mod access;
mod agents;
mod memory;
mod models;
mod runs;
mod state;

use ohms_ops::IcEnv;
use ohms_types::{
    AgentCanisterStatus, AgentId, AgentInfo, AgentInstallArgs, AgentSpec, Error, Page, Paged,
    RunArgs, RunInfo, SetAgentStatus,
};

#[ic_cdk::init]
fn init(args: AgentInstallArgs) {
    let env = IcEnv::capture();
    let AgentInstallArgs::Init(init) = &args else {
        ic_cdk::trap(
            "install argument mismatch: a fresh install needs `variant { Init = record { ... } }`, got Upgrade",
        );
    };
    ohms_ops::lifecycle::init(&env, "agent", args.common()).unwrap_or_else(|err| ic_cdk::trap(err));
    state::mutate_state(|s| {
        s.update_config(|c| {
            c.owner = init.owner;
            if let Some(budget) = init.instructions_per_message {
                c.instructions_per_message = budget;
            }
        })
    });
    runs::arm_watchdog();
}

#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<AgentInstallArgs>) {
    let env = IcEnv::capture();
    ohms_ops::lifecycle::post_upgrade(&env, "agent", args.map(|a| a.common()))
        .unwrap_or_else(|err| ic_cdk::trap(err));
    // Timers do not survive an upgrade: continue fetches and runs.
    runs::arm_watchdog();
    ic_cdk_timers::set_timer(std::time::Duration::ZERO, async {
        models::resume_all();
        runs::wake();
    });
}

ohms_ops::endpoint! {
    /// Adds agents (the agent factory only).
    update add_agents(specs: Vec<AgentSpec>) -> Result<Vec<AgentInfo>, Error> {
        let added = agents::add(&IcEnv::capture(), specs)?;
        for agent in &added {
            models::ensure(&agent.model);
        }
        Ok(added)
    }
}

ohms_ops::endpoint! {
    query list_agents(page: Page) -> Result<Paged<AgentInfo>, Error> {
        agents::list(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    query get_agent(id: AgentId) -> Result<AgentInfo, Error> {
        agents::get(&IcEnv::capture(), id)
    }
}

ohms_ops::endpoint! {
    /// Pauses (`Paused`) or resumes (`Active`) an agent. Owner or factory.
    update set_agent_status(args: SetAgentStatus) -> Result<AgentInfo, Error> {
        let env = IcEnv::capture();
        ohms_ops::UserUpdate::check(env)?;
        agents::set_status(&env, args)
    }
}

ohms_ops::endpoint! {
    /// Deletes an agent, cancelling its runs. Owner or factory.
    update delete_agent(id: AgentId) -> Result<(), Error> {
        let env = IcEnv::capture();
        ohms_ops::UserUpdate::check(env)?;
        agents::delete(&env, id)
    }
}

ohms_ops::endpoint! {
    /// Starts a run and returns it; `get_run` follows it to the end.
    async update run(args: RunArgs) -> Result<RunInfo, Error> {
        runs::start(&IcEnv::capture(), args).await
    }
}

ohms_ops::endpoint! {
    query get_run(id: u64) -> Result<RunInfo, Error> {
        runs::get(&IcEnv::capture(), id)
    }
}

ohms_ops::endpoint! {
    /// Runs, newest first.
    query list_runs(page: Page) -> Result<Paged<RunInfo>, Error> {
        runs::list(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    /// Stops a run; the tokens it used so far are committed to economics.
    update cancel_run(id: u64) -> Result<RunInfo, Error> {
        let env = IcEnv::capture();
        ohms_ops::UserUpdate::check(env)?;
        runs::cancel(&env, id)
    }
}

ohms_ops::endpoint! {
    /// Sets how many instructions one message of generation may use (the agent factory only).
    update set_instructions_per_message(budget: u64) -> Result<(), Error> {
        let env = IcEnv::capture();
        access::factory(&env)?;
        if !(1_000_000..=ohms_types::MAX_INSTRUCTIONS_PER_MESSAGE).contains(&budget) {
            return Err(Error::invalid_argument(
                "budget",
                format!("from 1,000,000 to {}", ohms_types::MAX_INSTRUCTIONS_PER_MESSAGE),
            ));
        }
        state::mutate_state(|s| s.update_config(|c| c.instructions_per_message = budget));
        Ok(())
    }
}

/// The canister's owner, agents, runs in progress and models. Its callers and administrators.
#[ic_cdk::query]
fn agent_status() -> Result<AgentCanisterStatus, Error> {
    agents::status(&IcEnv::capture())
}

ohms_ops::export_ops_endpoints!(canister = "agent");

#[cfg(test)]
mod tests {
    use super::*;

    // Expanded last, after every endpoint has registered its Candid signature.
    candid::export_service!();

    #[test]
    fn interface_is_the_committed_did() {
        ohms_ops::candid_check::assert_service_equal(
            __export_service(),
            include_str!("../../../candid/agent.did"),
        );
    }
}
