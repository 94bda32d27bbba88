//! Who may call an agent canister: its owner, the agent factory and the coordinator.

use candid::Principal;
use ohms_ops::Env;
use ohms_types::Error;

use crate::state::read_state;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Factory,
    Coordinator,
}

/// The caller's role, or why it has none. The anonymous principal never has one.
pub fn role(env: &impl Env) -> Result<Role, Error> {
    let caller = ohms_ops::access::user(env)?;
    if read_state(|s| s.config().owner) == Some(caller) {
        return Ok(Role::Owner);
    }
    match ohms_ops::access::sibling(env) {
        Ok((_, "agent_factory")) => Ok(Role::Factory),
        Ok((_, "coordinator")) => Ok(Role::Coordinator),
        _ => Err(Error::not_authorized(format!(
            "{caller} is not this agent canister's owner, the agent factory or the coordinator"
        ))),
    }
}

/// The factory only (it adds agents and configures the canister).
pub fn factory(env: &impl Env) -> Result<(), Error> {
    match role(env)? {
        Role::Factory => Ok(()),
        _ => Err(Error::not_authorized("only the agent factory may do this")),
    }
}

/// The owner the canister works for; an unassigned canister runs nothing.
pub fn owner() -> Result<Principal, Error> {
    read_state(|s| s.config().owner)
        .ok_or_else(|| Error::invalid_state("this agent canister has no owner"))
}
