//! The agents this canister hosts: added by the factory, managed by their owner (directly or
//! through the factory), read by the coordinator too.

use ohms_ops::Env;
use ohms_types::{
    AgentCanisterStatus, AgentId, AgentInfo, AgentSpec, AgentStats, AgentStatus, Error,
    MAX_SYSTEM_PROMPT_BYTES, Page, Paged, SetAgentStatus,
};

use crate::access;
use crate::state::{mutate_state, read_state};
use ohms_ops::paging::Order;

/// Most agents one canister hosts.
pub const MAX_AGENTS: u64 = 200;

/// Adds the factory's agents (all or none); the caller starts loading their models.
pub fn add(env: &impl Env, specs: Vec<AgentSpec>) -> Result<Vec<AgentInfo>, Error> {
    access::factory(env)?;
    let owner = access::owner()?;
    if specs.is_empty() {
        return Err(Error::invalid_argument("agents", "no agent given"));
    }
    if read_state(|s| s.agents.len()) + specs.len() as u64 > MAX_AGENTS {
        return Err(Error::invalid_argument(
            "agents",
            format!("an agent canister hosts at most {MAX_AGENTS} agents"),
        ));
    }
    for spec in &specs {
        spec.params.validate()?;
        if spec.system_prompt.len() > MAX_SYSTEM_PROMPT_BYTES {
            return Err(Error::invalid_argument(
                "system_prompt",
                format!("at most {MAX_SYSTEM_PROMPT_BYTES} bytes"),
            ));
        }
    }
    // A repeated request (the factory's retry after a lost reply) returns the agents it added.
    let existing: Vec<Option<AgentInfo>> =
        read_state(|s| specs.iter().map(|spec| s.agent(spec.id.0)).collect());
    if existing.iter().all(Option::is_some) {
        let same = existing
            .iter()
            .flatten()
            .zip(&specs)
            .all(|(agent, spec)| agent.role == spec.role && agent.model == spec.model);
        if same {
            return Ok(existing.into_iter().flatten().collect());
        }
    }
    if let Some(taken) = existing.iter().flatten().next() {
        return Err(Error::already_exists("agent", taken.id));
    }
    let now = env.now_nanos();
    let canister = env.canister_id();
    let agents: Vec<AgentInfo> = specs
        .into_iter()
        .map(|spec| AgentInfo {
            id: spec.id,
            owner,
            canister,
            role: spec.role,
            system_prompt: spec.system_prompt,
            model: spec.model,
            capabilities: spec.capabilities,
            params: spec.params,
            status: AgentStatus::Active,
            stats: AgentStats::default(),
            memory: Vec::new(),
            created_at_nanos: now,
        })
        .collect();
    mutate_state(|s| {
        for agent in &agents {
            s.agents.insert(agent.id.0, ohms_ops::Cbor(agent.clone()));
        }
    });
    Ok(agents)
}

pub fn get(env: &impl Env, id: AgentId) -> Result<AgentInfo, Error> {
    access::role(env)?;
    read_state(|s| s.agent(id.0)).ok_or_else(|| Error::not_found("agent", id))
}

pub fn list(env: &impl Env, page: Page) -> Result<Paged<AgentInfo>, Error> {
    access::role(env)?;
    Ok(read_state(|s| {
        ohms_ops::paging::page_values(&s.agents, page, Order::Ascending, |a| a.0)
    }))
}

/// Pauses or resumes an agent (owner or factory).
pub fn set_status(env: &impl Env, args: SetAgentStatus) -> Result<AgentInfo, Error> {
    owner_or_factory(env)?;
    mutate_state(|s| {
        let mut agent = s
            .agent(args.agent.0)
            .ok_or_else(|| Error::not_found("agent", args.agent))?;
        agent.status = args.status;
        s.agents.insert(agent.id.0, ohms_ops::Cbor(agent.clone()));
        Ok(agent)
    })
}

/// Deletes an agent (owner or factory); its runs in progress are cancelled.
pub fn delete(env: &impl Env, id: AgentId) -> Result<(), Error> {
    owner_or_factory(env)?;
    if read_state(|s| s.agent(id.0)).is_none() {
        return Err(Error::not_found("agent", id));
    }
    crate::runs::cancel_agent_runs(id);
    mutate_state(|s| s.agents.remove(&id.0));
    Ok(())
}

fn owner_or_factory(env: &impl Env) -> Result<(), Error> {
    match access::role(env)? {
        access::Role::Owner | access::Role::Factory => Ok(()),
        access::Role::Coordinator => Err(Error::not_authorized(
            "only the owner or the agent factory manages agents",
        )),
    }
}

/// The canister's figures (its callers and administrators).
pub fn status(env: &impl Env) -> Result<AgentCanisterStatus, Error> {
    if !ohms_ops::access::is_admin(env, &env.caller()) {
        access::role(env)?;
    }
    let config = read_state(|s| s.config());
    Ok(AgentCanisterStatus {
        owner: config.owner,
        agents: read_state(|s| s.agents.len()) as u32,
        runs: read_state(|s| s.runs.len()),
        active_runs: crate::runs::active(),
        models: crate::models::loaded(),
        instructions_per_message: config.instructions_per_message,
        stable_bytes: env.stable_memory_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ohms_ops::test_env::{TestEnv, canister, principal};
    use ohms_types::{GenerationParams, InitArgs, InstallArgs, ModelId, Siblings};

    /// An agent canister owned by principal 7, with canister 5 as its factory and 6 as the
    /// coordinator.
    fn installed() -> TestEnv {
        let env = TestEnv::new();
        let init = InstallArgs::Init(InitArgs {
            admins: vec![],
            siblings: Siblings {
                agent_factory: Some(canister(5)),
                coordinator: Some(canister(6)),
                ..Siblings::default()
            },
        });
        ohms_ops::lifecycle::init(&env, "agent", init).unwrap();
        mutate_state(|s| s.update_config(|c| c.owner = Some(principal(7))));
        env
    }

    fn spec(id: u64) -> AgentSpec {
        AgentSpec {
            id: AgentId(id),
            role: "Python Developer".into(),
            system_prompt: "You write Python.".into(),
            model: ModelId::parse("m", "model").unwrap(),
            capabilities: vec![],
            params: GenerationParams::default(),
        }
    }

    #[test]
    fn only_the_factory_adds_agents_and_a_bad_spec_adds_none() {
        let env = installed();
        for caller in [principal(7), canister(6), principal(8)] {
            let refused = add(env.as_caller(caller), vec![spec(1)]);
            assert!(
                matches!(refused, Err(Error::NotAuthorized { .. })),
                "{refused:?}"
            );
        }
        let mut bad = spec(2);
        bad.params.temperature = f32::NAN;
        let refused = add(env.as_caller(canister(5)), vec![spec(1), bad]);
        assert!(
            matches!(refused, Err(Error::InvalidArgument { .. })),
            "{refused:?}"
        );
        assert_eq!(read_state(|s| s.agents.len()), 0);
        let added = add(env.as_caller(canister(5)), vec![spec(1), spec(2)]).unwrap();
        assert_eq!(added.len(), 2);
        assert!(
            added
                .iter()
                .all(|a| a.owner == principal(7) && a.status == AgentStatus::Active)
        );
        // The factory's retry of the same request returns the same agents.
        let again = add(env.as_caller(canister(5)), vec![spec(2)]).unwrap();
        assert_eq!(again, vec![added[1].clone()]);
        // Another agent under a taken id is refused.
        let mut other = spec(2);
        other.role = "Writer".into();
        let taken = add(env.as_caller(canister(5)), vec![other]);
        assert!(
            matches!(taken, Err(Error::AlreadyExists { .. })),
            "{taken:?}"
        );
    }

    #[test]
    fn the_owner_and_the_factory_manage_the_coordinator_reads_strangers_get_nothing() {
        let env = installed();
        add(env.as_caller(canister(5)), vec![spec(1)]).unwrap();
        let paused = SetAgentStatus {
            agent: AgentId(1),
            status: AgentStatus::Paused,
        };
        assert!(matches!(
            set_status(env.as_caller(canister(6)), paused),
            Err(Error::NotAuthorized { .. })
        ));
        assert_eq!(
            set_status(env.as_caller(principal(7)), paused)
                .unwrap()
                .status,
            AgentStatus::Paused
        );
        assert!(get(env.as_caller(canister(6)), AgentId(1)).is_ok());
        assert!(matches!(
            get(env.as_caller(principal(8)), AgentId(1)),
            Err(Error::NotAuthorized { .. })
        ));
        assert_eq!(
            get(env.as_caller(candid::Principal::anonymous()), AgentId(1)),
            Err(Error::Anonymous)
        );
        assert!(matches!(
            delete(env.as_caller(principal(7)), AgentId(9)),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(
            list(env.as_caller(principal(7)), Page::default())
                .unwrap()
                .total,
            1
        );
    }
}
