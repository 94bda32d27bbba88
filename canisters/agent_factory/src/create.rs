//! `create_agents`: reserve with economics first (a denial creates nothing and spends no
//! cycles), choose the models, deploy the agents into the caller's agent canister, then commit
//! the reservation; any failure after the reservation releases it.

use candid::Principal;
use ohms_ops::{Env, UserUpdate};
use ohms_types::{
    Action, AgentId, AgentInfo, AgentSpec, CreateAgentsArgs, CreatedAgents, Error,
    GenerationParams, InstructionAnalysis, ModelId, ModelSummary, UsageReport,
};

use crate::analyze::{self, MAX_AGENTS_PER_REQUEST};
use crate::state::mutate_state;
use crate::{catalogue, deploy};

/// The analysis, with models suggested from the kept catalogue.
pub fn analyze_instructions(text: &str) -> Result<InstructionAnalysis, Error> {
    let mut analysis = analyze::analyze(text)?;
    analyze::suggest_models(&mut analysis, &catalogue::cached());
    Ok(analysis)
}

pub async fn create_agents(
    call: &UserUpdate,
    args: CreateAgentsArgs,
) -> Result<CreatedAgents, Error> {
    let _lock = call.lock()?;
    let owner = call.caller();
    let mut analysis = analyze::analyze(&args.instructions)?;
    let count = args.count.unwrap_or(analysis.agent_count);
    if count == 0 || count > MAX_AGENTS_PER_REQUEST {
        return Err(Error::invalid_argument(
            "count",
            format!("from 1 to {MAX_AGENTS_PER_REQUEST} agents per request"),
        ));
    }
    if crate::state::read_state(|s| s.config().active_wasm.is_none()) {
        return Err(Error::invalid_state(
            "no agent wasm has been uploaded: an administrator must upload one first",
        ));
    }
    let reservation = ohms_ops::calls::reserve(owner, Action::CreateAgents { count }).await?;
    let outcome = deploy_agents(
        call.env(),
        owner,
        &args,
        count,
        reservation.limits.tier,
        &mut analysis,
    )
    .await;
    match outcome {
        Ok((record, created, agents)) => {
            let usage = UsageReport {
                tokens_in: 0,
                tokens_out: 0,
                agents_created: count,
                model: None,
                agent: None,
            };
            // The agents exist: their creation must be counted. A commit whose reply was lost
            // is tried once more (settle_usage tells a repeat from an expired reservation).
            let mut settled =
                ohms_ops::calls::settle_usage(owner, reservation.id, usage.clone(), false).await;
            if matches!(settled, Err(Error::CallFailed { .. })) {
                settled = ohms_ops::calls::settle_usage(owner, reservation.id, usage, true).await;
            }
            if let Err(err) = settled {
                ic_cdk::println!(
                    "create_agents: the creation of {count} agents for {owner} is not counted: {err}"
                );
            }
            Ok(CreatedAgents {
                canister: record,
                canister_created: created,
                agents,
                analysis,
            })
        }
        Err(err) => {
            if let Err(release) = ohms_ops::calls::release(reservation.id).await {
                ic_cdk::println!(
                    "create_agents: release of reservation {} failed: {release}",
                    reservation.id
                );
            }
            Err(err)
        }
    }
}

async fn deploy_agents(
    env: &impl Env,
    owner: Principal,
    args: &CreateAgentsArgs,
    count: u32,
    tier: ohms_types::Tier,
    analysis: &mut InstructionAnalysis,
) -> Result<(Principal, bool, Vec<AgentInfo>), Error> {
    let available = catalogue::fetch(tier).await?;
    analyze::suggest_models(analysis, &available);
    let fallback = match &args.model {
        Some(model) => Some(
            available
                .iter()
                .find(|m| &m.id == model)
                .map(|m| m.id.clone())
                .ok_or_else(|| {
                    Error::invalid_argument(
                        "model",
                        format!("{model} is not an active model your tier may use"),
                    )
                })?,
        ),
        None => analysis.suggested_models.first().map(|m| m.model.clone()),
    };
    let specs = plan(args.model.is_some(), fallback, count, analysis, &available)?;
    let (record, created) = deploy::ensure(owner, env.now_nanos()).await?;
    // `add_agents` returns the agents it added for a repeated request, so a call whose reply
    // was lost is tried once more instead of leaving agents the factory does not know.
    let mut added: Result<Vec<AgentInfo>, Error> =
        ohms_ops::calls::call(record.canister, "add_agents", (specs.clone(),)).await;
    if matches!(added, Err(Error::CallFailed { .. })) {
        added = ohms_ops::calls::call(record.canister, "add_agents", (specs,)).await;
    }
    let agents = added?;
    mutate_state(|s| {
        for agent in &agents {
            s.agents.insert(agent.id.0, owner);
        }
        if let Some(mut record) = s.canister_of(&owner) {
            record.agents += agents.len() as u32;
            s.put_canister(record);
        }
    });
    Ok((record.canister, created, agents))
}

/// One spec per agent: the analysis's roles in order (repeated when more agents are asked
/// for), each with its model (the override, the role's best match, or the best overall).
fn plan(
    overridden: bool,
    fallback: Option<ModelId>,
    count: u32,
    analysis: &InstructionAnalysis,
    available: &[ModelSummary],
) -> Result<Vec<AgentSpec>, Error> {
    if analysis.roles.is_empty() {
        return Err(Error::internal("the analysis planned no role"));
    }
    let first_id = mutate_state(|s| {
        s.update_config(|c| {
            c.next_agent_id += u64::from(count);
            c.next_agent_id - u64::from(count)
        })
    });
    (0..count as usize)
        .map(|i| {
            let role = &analysis.roles[i % analysis.roles.len()];
            let model = if overridden { fallback.clone() } else { role.model.clone().or_else(|| fallback.clone()) }
                .filter(|m| available.iter().any(|a| &a.id == m))
                .ok_or_else(|| {
                    Error::invalid_state(
                        "no active model is available to your tier: an administrator must upload and activate one",
                    )
                })?;
            Ok(AgentSpec {
                id: AgentId(first_id + i as u64),
                role: role.role.clone(),
                system_prompt: role.system_prompt.clone(),
                model,
                capabilities: role.capabilities.clone(),
                params: GenerationParams {
                    max_tokens: role.tokens_per_answer.clamp(1, ohms_types::MAX_NEW_TOKENS),
                    ..GenerationParams::default()
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ohms_types::{ModelState, Tier};

    fn summary(id: &str) -> ModelSummary {
        ModelSummary {
            id: ModelId::parse(id, "id").unwrap(),
            name: id.into(),
            version: "1".into(),
            description: String::new(),
            capabilities: vec![ohms_types::Capability::Code, ohms_types::Capability::Python],
            tags: vec![],
            family: "llama".into(),
            mode: "4bit".into(),
            bits_per_weight: 4.5,
            parameters: 1,
            compressed_bytes: 1,
            shard_count: 1,
            root_hash: String::new(),
            min_tier: Tier::Basic,
            creator: Principal::anonymous(),
            state: ModelState::Active,
            created_at_nanos: 0,
            updated_at_nanos: 0,
            usage_tokens: 0,
        }
    }

    #[test]
    fn agents_take_the_roles_in_order_with_fresh_ids_and_an_available_model() {
        let mut analysis =
            analyze::analyze("create coding agents for Python development and testing").unwrap();
        let available = [summary("coder")];
        analyze::suggest_models(&mut analysis, &available);
        let fallback = analysis.suggested_models.first().map(|m| m.model.clone());
        let specs = plan(false, fallback.clone(), 4, &analysis, &available).unwrap();
        let roles: Vec<&str> = specs.iter().map(|s| s.role.as_str()).collect();
        assert_eq!(
            roles,
            [
                "Python Developer",
                "Code Reviewer",
                "Test Generator",
                "Python Developer"
            ]
        );
        let ids: Vec<u64> = specs.iter().map(|s| s.id.0).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        assert!(specs.iter().all(|s| s.model.as_str() == "coder"));
        // The next request numbers on.
        let next = plan(false, fallback, 1, &analysis, &available).unwrap();
        assert_eq!(next[0].id, AgentId(5));
        // No model available: an error, not an agent without a model.
        let none = plan(false, None, 1, &analysis, &[]);
        assert!(matches!(none, Err(Error::InvalidState { .. })), "{none:?}");
    }
}
