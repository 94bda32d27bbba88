//! The owner's agents, through the factory: each request goes to the owner's agent canister,
//! after the factory checked that the agent is the caller's.

use candid::Principal;
use ohms_ops::{Env, UserUpdate};
use ohms_types::{
    AgentCanisterRecord, AgentId, AgentInfo, AgentStatus, Error, Page, Paged, SetAgentStatus,
};

use crate::state::{mutate_state, read_state};

/// The record of `owner`'s agent canister, if they have one. Registered sibling canisters (the
/// coordinator finds the agents of a task's owner) and administrators only.
pub fn agent_canister_of(
    env: &impl Env,
    owner: Principal,
) -> Result<Option<AgentCanisterRecord>, Error> {
    let caller = ohms_ops::access::user(env)?;
    if ohms_ops::access::sibling(env).is_err() && !ohms_ops::access::is_admin(env, &caller) {
        return Err(Error::not_authorized(format!(
            "{caller} is neither a registered OHMS canister nor an administrator"
        )));
    }
    Ok(read_state(|s| s.canister_of(&owner)))
}

/// The caller's agent canister.
fn canister_of(owner: Principal) -> Result<Principal, Error> {
    read_state(|s| s.canister_of(&owner))
        .filter(|r| r.wasm_sha256.is_some())
        .map(|r| r.canister)
        .ok_or_else(|| Error::not_found("agent canister of", owner))
}

/// The caller's agent canister, when `agent` is theirs. Someone else's agent is "not found":
/// the factory does not tell who owns what.
fn owned(owner: Principal, agent: AgentId) -> Result<Principal, Error> {
    if read_state(|s| s.agents.get(&agent.0)) != Some(owner) {
        return Err(Error::not_found("agent", agent));
    }
    canister_of(owner)
}

pub async fn list(env: &impl Env, page: Page) -> Result<Paged<AgentInfo>, Error> {
    let owner = ohms_ops::access::user(env)?;
    let Ok(canister) = canister_of(owner) else {
        return Ok(Paged::new(Vec::new(), 0..0, 0));
    };
    ohms_ops::calls::call(canister, "list_agents", (page,)).await
}

pub async fn get(env: &impl Env, agent: AgentId) -> Result<AgentInfo, Error> {
    let owner = ohms_ops::access::user(env)?;
    let canister = owned(owner, agent)?;
    ohms_ops::calls::call(canister, "get_agent", (agent,)).await
}

pub async fn set_status(
    call: &UserUpdate,
    agent: AgentId,
    status: AgentStatus,
) -> Result<AgentInfo, Error> {
    let canister = owned(call.caller(), agent)?;
    ohms_ops::calls::call(
        canister,
        "set_agent_status",
        (SetAgentStatus { agent, status },),
    )
    .await
}

/// Deletes the agent in its canister, tells economics the owner has one agent fewer, and only
/// then forgets it: if a step fails, calling again finishes the deletion (an agent its canister
/// no longer has counts as deleted there).
pub async fn delete(call: &UserUpdate, agent: AgentId) -> Result<(), Error> {
    let owner = call.caller();
    let canister = owned(owner, agent)?;
    let _lock = call.lock()?;
    match ohms_ops::calls::call::<_, ()>(canister, "delete_agent", (agent,)).await {
        Ok(()) | Err(Error::NotFound { .. }) => {}
        Err(err) => return Err(err),
    }
    let economics = ohms_ops::calls::sibling("economics")?;
    ohms_ops::calls::call::<_, ()>(economics, "agents_removed", (owner, 1u32)).await?;
    mutate_state(|s| {
        s.agents.remove(&agent.0);
        if let Some(mut record) = s.canister_of(&owner) {
            record.agents = record.agents.saturating_sub(1);
            s.put_canister(record);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ohms_ops::test_env::{TestEnv, canister, principal};
    use ohms_types::{InitArgs, InstallArgs, Siblings};

    #[test]
    fn only_siblings_and_administrators_look_up_an_owners_agent_canister() {
        // Principal 1 is the controller, 2 an administrator, canister 6 the coordinator.
        let env = TestEnv::new();
        let init = InstallArgs::Init(InitArgs {
            admins: vec![principal(2)],
            siblings: Siblings {
                coordinator: Some(canister(6)),
                ..Siblings::default()
            },
        });
        ohms_ops::lifecycle::init(&env, "agent_factory", init).unwrap();
        let record = AgentCanisterRecord {
            owner: principal(7),
            canister: canister(20),
            ready: true,
            agents: 2,
            wasm_sha256: Some("ab".repeat(32)),
            created_at_nanos: 1,
            topped_up_cycles: 0,
            cycles: None,
        };
        mutate_state(|s| s.put_canister(record.clone()));
        for caller in [canister(6), principal(1), principal(2)] {
            let env = env.as_caller(caller);
            assert_eq!(
                agent_canister_of(env, principal(7)),
                Ok(Some(record.clone()))
            );
            assert_eq!(agent_canister_of(env, principal(8)), Ok(None));
        }
        // Not the owner itself, nor its agent canister, nor an unregistered canister.
        for caller in [principal(7), canister(20), canister(21)] {
            let refused = agent_canister_of(env.as_caller(caller), principal(7));
            assert!(
                matches!(refused, Err(Error::NotAuthorized { .. })),
                "{refused:?}"
            );
        }
        assert_eq!(
            agent_canister_of(env.as_caller(Principal::anonymous()), principal(7)),
            Err(Error::Anonymous)
        );
    }
}
