//! Which agents work on a task: the caller's own, named or chosen by the coordinator — by
//! capability match, current load and measured performance — with the reasons recorded.

use std::collections::BTreeMap;

use candid::Principal;
use ohms_types::{
    AgentCanisterRecord, AgentId, AgentInfo, AgentSelection, AgentStatus, Capability, Error,
    InstructionAnalysis, MAX_TASK_AGENTS, Page, Paged, Performance, StepStatus, TaskAgent,
};

use crate::plan;
use crate::state::read_state;

/// Agents the coordinator reads from one agent canister, at most.
const MAX_AGENTS_READ: u64 = 500;

/// The owner's agent canister and its agents, as the canister reports them.
pub async fn owner_agents(owner: Principal) -> Result<(Principal, Vec<AgentInfo>), Error> {
    let factory = ohms_ops::calls::sibling("agent_factory")?;
    let record: Option<AgentCanisterRecord> =
        ohms_ops::calls::call(factory, "agent_canister_of", (owner,)).await?;
    let Some(record) = record.filter(|r| r.ready) else {
        return Err(Error::invalid_state(
            "you have no agents yet: create agents with the agent factory first",
        ));
    };
    let mut agents = Vec::new();
    let mut start = 0;
    loop {
        let page: Paged<AgentInfo> = ohms_ops::calls::call(
            record.canister,
            "list_agents",
            (Page {
                start,
                limit: Page::MAX_LIMIT,
            },),
        )
        .await?;
        agents.extend(page.items);
        match page.next_start {
            Some(next) if next < MAX_AGENTS_READ => start = next,
            _ => break,
        }
    }
    Ok((record.canister, agents))
}

/// The capabilities a task asks for and how many agents suit it, by the factory's analysis.
pub async fn analyze(instructions: &str) -> Result<(Vec<Capability>, usize), Error> {
    let factory = ohms_ops::calls::sibling("agent_factory")?;
    let analysis: InstructionAnalysis =
        ohms_ops::calls::call(factory, "analyze_instructions", (instructions,)).await?;
    let mut wanted: Vec<Capability> = Vec::new();
    for capability in analysis
        .roles
        .iter()
        .flat_map(|r| r.capabilities.iter())
        .chain(
            analysis
                .capabilities
                .iter()
                .flat_map(|c| c.model_capabilities.iter()),
        )
    {
        if !wanted.contains(capability) {
            wanted.push(*capability);
        }
    }
    Ok((wanted, analysis.agent_count as usize))
}

/// Steps in flight per agent of `owner`, over the owner's active tasks only.
pub fn loads_of(owner: Principal) -> BTreeMap<u64, u32> {
    read_state(|s| {
        let mut loads = BTreeMap::new();
        let active = s
            .owner_tasks
            .range((owner, 0)..=(owner, u64::MAX))
            .map(|e| e.key().1)
            .filter(|id| s.active.contains_key(id));
        for task in active.filter_map(|id| s.task(id)) {
            for step in task.info.rounds.iter().flat_map(|r| &r.steps) {
                if matches!(
                    step.status,
                    StepStatus::Dispatching | StepStatus::Running { .. }
                ) {
                    *loads.entry(step.agent.0).or_default() += 1;
                }
            }
        }
        loads
    })
}

/// An agent the router may choose, with what the monitor knows of it.
pub struct Candidate {
    pub info: AgentInfo,
    pub performance: Performance,
    pub load: u32,
}

/// A candidate's score and the words that explain it.
pub fn score(candidate: &Candidate, wanted: &[Capability]) -> (i64, String) {
    let matched: Vec<String> = candidate
        .info
        .capabilities
        .iter()
        .filter(|c| wanted.contains(c))
        .map(|c| format!("{c:?}").to_lowercase())
        .collect();
    let p = &candidate.performance;
    let success = p.success_rate();
    let seconds = p.average_seconds();
    let score = 100 * matched.len() as i64 + (30.0 * success) as i64
        - 10 * i64::from(candidate.load)
        - (seconds.min(120.0) / 4.0) as i64;
    let finished = p.completed + p.failures;
    let record = if finished == 0 {
        "no runs measured yet".to_string()
    } else {
        format!(
            "{}/{} runs succeeded, {:.1} s on average",
            p.completed, finished, seconds
        )
    };
    let reason = format!(
        "score {score}: matches {} ; {record}; {} step(s) in flight",
        if matched.is_empty() {
            "none of the task's capabilities".to_string()
        } else {
            matched.join(", ")
        },
        candidate.load
    );
    (score, reason)
}

/// Up to `count` candidates, best first, one per role before any role repeats.
pub fn choose(
    candidates: Vec<Candidate>,
    wanted: &[Capability],
    count: usize,
) -> Vec<(AgentInfo, String)> {
    let mut scored: Vec<(i64, String, AgentInfo)> = candidates
        .into_iter()
        .filter(|c| c.info.status == AgentStatus::Active)
        .map(|c| {
            let (score, reason) = score(&c, wanted);
            (score, reason, c.info)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.id.cmp(&b.2.id)));
    let mut chosen: Vec<(AgentInfo, String)> = Vec::new();
    for repeat_roles in [false, true] {
        for (_, reason, info) in &scored {
            if chosen.len() >= count {
                break;
            }
            let taken = chosen.iter().any(|(a, _)| a.id == info.id);
            let role_taken = chosen.iter().any(|(a, _)| a.role == info.role);
            if !taken && (repeat_roles || !role_taken) {
                chosen.push((info.clone(), reason.clone()));
            }
        }
    }
    chosen
}

/// A named selection's size: 1 to `MAX_TASK_AGENTS`.
pub fn check_named(ids: &[AgentId]) -> Result<(), Error> {
    if ids.is_empty() || ids.len() > MAX_TASK_AGENTS {
        return Err(Error::invalid_argument(
            "agents",
            format!("name 1 to {MAX_TASK_AGENTS} agents, or choose Auto"),
        ));
    }
    Ok(())
}

/// The task's agents in plan order (develop, review, test), from the caller's selection.
pub fn select(
    selection: &AgentSelection,
    canister: Principal,
    agents: Vec<AgentInfo>,
    owner: Principal,
    wanted: &[Capability],
    count: usize,
) -> Result<(Vec<TaskAgent>, Vec<AgentInfo>, String), Error> {
    let (picked, routing): (Vec<(AgentInfo, String)>, String) = match selection {
        AgentSelection::Agents(ids) => {
            check_named(ids)?;
            let mut picked = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                if ids[..i].contains(id) {
                    return Err(Error::invalid_argument(
                        "agents",
                        format!("agent {id} is named twice"),
                    ));
                }
                let info = agents
                    .iter()
                    .find(|a| a.id == *id)
                    .ok_or_else(|| Error::not_found("agent", id))?;
                if info.status != AgentStatus::Active {
                    return Err(Error::invalid_state(format!(
                        "agent {id} is paused: resume it first"
                    )));
                }
                picked.push((info.clone(), "named by the caller".to_string()));
            }
            (picked, "agents named by the caller".to_string())
        }
        AgentSelection::Auto => {
            let count = count.clamp(1, MAX_TASK_AGENTS);
            let loads = loads_of(owner);
            let candidates: Vec<Candidate> = agents
                .into_iter()
                .map(|info| {
                    let performance = read_state(|s| {
                        s.agent_perf
                            .get(&(owner, info.id.0))
                            .map(|p| p.0.performance)
                            .unwrap_or_default()
                    });
                    let load = loads.get(&info.id.0).copied().unwrap_or_default();
                    Candidate {
                        info,
                        performance,
                        load,
                    }
                })
                .collect();
            // Every agent whose capabilities the task asks for joins (a team task), and at
            // least as many as the analysis suggests.
            let relevant = candidates
                .iter()
                .filter(|c| c.info.status == AgentStatus::Active)
                .filter(|c| c.info.capabilities.iter().any(|cap| wanted.contains(cap)))
                .count();
            let count = count.max(relevant).min(MAX_TASK_AGENTS);
            let total = candidates.len();
            let picked = choose(candidates, wanted, count);
            if picked.is_empty() {
                return Err(Error::invalid_state(
                    "none of your agents is active: create or resume an agent first",
                ));
            }
            let wanted_names: Vec<String> = wanted
                .iter()
                .map(|c| format!("{c:?}").to_lowercase())
                .collect();
            let routing = format!(
                "auto: {} of {total} agent(s) chosen for [{}] by capability match, load and measured success and latency",
                picked.len(),
                wanted_names.join(", ")
            );
            (picked, routing)
        }
    };
    let mut ordered: Vec<(u8, &'static str, AgentInfo, String)> = picked
        .into_iter()
        .map(|(info, reason)| {
            let (rank, stage) = plan::stage_of(&info.capabilities, &info.role);
            (rank, stage, info, reason)
        })
        .collect();
    ordered.sort_by_key(|(rank, ..)| *rank);
    let task_agents = ordered
        .iter()
        .map(|(_, stage, info, reason)| TaskAgent {
            agent: info.id,
            canister,
            role: info.role.clone(),
            model: info.model.clone(),
            stage: stage.to_string(),
            reason: reason.clone(),
        })
        .collect();
    let infos = ordered.into_iter().map(|(_, _, info, _)| info).collect();
    Ok((task_agents, infos, routing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ohms_types::{AgentId, AgentStats, GenerationParams, ModelId};

    fn agent(id: u64, role: &str, capabilities: Vec<Capability>) -> AgentInfo {
        AgentInfo {
            id: AgentId(id),
            owner: Principal::anonymous(),
            canister: Principal::management_canister(),
            role: role.into(),
            system_prompt: String::new(),
            model: ModelId::parse("m", "model").unwrap(),
            capabilities,
            params: GenerationParams::default(),
            status: AgentStatus::Active,
            stats: AgentStats::default(),
            memory: vec![],
            created_at_nanos: 0,
        }
    }

    fn candidate(info: AgentInfo, completed: u64, failures: u64, load: u32) -> Candidate {
        Candidate {
            info,
            performance: Performance {
                completed,
                failures,
                runs: completed + failures,
                ..Performance::default()
            },
            load,
        }
    }

    #[test]
    fn capability_then_success_then_load_decide() {
        let wanted = vec![Capability::Python, Capability::Testing];
        let candidates = vec![
            candidate(agent(1, "Writer", vec![Capability::Writing]), 5, 0, 0),
            candidate(
                agent(2, "Python Developer", vec![Capability::Python]),
                1,
                3,
                0,
            ),
            candidate(
                agent(3, "Python Developer", vec![Capability::Python]),
                4,
                0,
                0,
            ),
            candidate(
                agent(4, "Test Generator", vec![Capability::Testing]),
                4,
                0,
                2,
            ),
        ];
        let chosen = choose(candidates, &wanted, 2);
        let ids: Vec<u64> = chosen.iter().map(|(a, _)| a.id.0).collect();
        // Agent 3 beats agent 2 (same match, better record); the tester is the other role.
        assert_eq!(ids, vec![3, 4]);
        assert!(chosen[0].1.contains("python"), "{}", chosen[0].1);
        assert!(
            chosen[1].1.contains("2 step(s) in flight"),
            "{}",
            chosen[1].1
        );
    }

    #[test]
    fn roles_repeat_only_when_the_count_needs_it() {
        let candidates = vec![
            candidate(agent(1, "Dev", vec![Capability::Code]), 0, 0, 0),
            candidate(agent(2, "Dev", vec![Capability::Code]), 0, 0, 0),
            candidate(agent(3, "Writer", vec![]), 0, 0, 0),
        ];
        let ids: Vec<u64> = choose(candidates, &[Capability::Code], 2)
            .iter()
            .map(|(a, _)| a.id.0)
            .collect();
        assert_eq!(ids, vec![1, 3]);
    }

    #[test]
    fn named_agents_are_checked_and_put_in_plan_order() {
        let agents = vec![
            agent(7, "Test Generator", vec![Capability::Testing]),
            agent(8, "Python Developer", vec![Capability::Python]),
            agent(9, "Code Reviewer", vec![Capability::CodeReview]),
        ];
        let canister = Principal::management_canister();
        let owner = Principal::anonymous();
        let (task_agents, _, _) = select(
            &AgentSelection::Agents(vec![AgentId(7), AgentId(8), AgentId(9)]),
            canister,
            agents.clone(),
            owner,
            &[],
            0,
        )
        .unwrap();
        let order: Vec<&str> = task_agents.iter().map(|a| a.stage.as_str()).collect();
        assert_eq!(order, vec!["develop", "review", "test"]);
        for bad in [vec![], vec![AgentId(7), AgentId(7)], vec![AgentId(1)]] {
            assert!(
                select(
                    &AgentSelection::Agents(bad.clone()),
                    canister,
                    agents.clone(),
                    owner,
                    &[],
                    0
                )
                .is_err(),
                "{bad:?}"
            );
        }
    }
}
