//! `ohms agents`: instructions into agents on a saved local network, as a user does it: the
//! agent factory analyses the instructions and creates the agents in the user's own agent
//! canister (spawned by the first request); a run is queued in that canister, which loads the
//! model from the repository and generates over timer messages while the command lets the
//! network tick, until the answer is final and its tokens are billed to the user's quota.
//!
//! The commands act as the demo user the local ledger funds (`ohms pay` subscribes it) unless
//! `--as` names another user.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use candid::Principal;
use clap::Subcommand;
use local_ic::LocalIc;
use ohms_types::{
    AgentCanisterRecord, AgentCanisterStatus, AgentId, AgentInfo, AgentStatus, AgentWasmChunk,
    AgentWasmStatus, CreateAgentsArgs, CreatedAgents, Error, GenerationParams, InstructionAnalysis,
    ModelId, ModelLoadState, Page, Paged, RunArgs, RunInfo, RunStatus, UsageSummary,
};
use sha2::{Digest, Sha256};

use crate::model::{DEFAULT_STATE, with_local_network};
use crate::pay::demo_user;
use crate::repo_client::{
    CanisterError, LocalCaller, LocalTransport, RepoTransport, decode, encode,
};

/// The largest piece of the agent wasm sent in one `upload_agent_wasm` call.
pub const AGENT_WASM_CHUNK_BYTES: usize = 1 << 20;
/// Rounds of the local network a run may take before the command gives up.
const MAX_TICKS: u32 = 1_000_000;

/// The saved local network a command works on, and the user it acts as.
#[derive(clap::Args)]
pub struct Session {
    /// The local network file (`ohms local deploy --state FILE`).
    #[arg(long, global = true, default_value = DEFAULT_STATE)]
    pub local_state: PathBuf,
    /// Act as this user: a principal, or a name (the principal is derived from it, as the
    /// demo user's is). Default: the demo user the local ledger funds and `ohms pay` acts as.
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub as_user: Option<String>,
}

impl Session {
    /// The user the command acts as.
    pub fn user(&self) -> Principal {
        user_principal(self.as_user.as_deref())
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub session: Session,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// What the agent factory makes of instructions (`analyze_instructions`): capabilities
    /// found with the words that matched, the roles with their system prompts, models and
    /// reasons, the agent count, the token budget and the suggested models.
    Analyze {
        /// The instructions, in plain words.
        instructions: String,
    },
    /// Creates agents from instructions (`create_agents`) in the user's agent canister, which
    /// the first request spawns; prints the canister and each agent.
    Create {
        /// The instructions, in plain words.
        instructions: String,
        /// Agents to create, instead of the analysis's count (1 to 10).
        #[arg(long)]
        count: Option<u32>,
        /// The model every agent uses, instead of the analysis's choice (an active model).
        #[arg(long)]
        model: Option<String>,
    },
    /// Runs an agent on a prompt: queues the run in the user's agent canister, lets the
    /// network tick (the canister loads the model, then generates over timer messages) until
    /// the run is final and its usage is committed; prints the answer, tokens, IC instructions
    /// and the quota left.
    Run {
        /// The agent (an id `ohms agents create` or `list` printed).
        #[arg(long)]
        agent: u64,
        /// The user's message.
        prompt: String,
        /// New tokens at most (default: the agent's own).
        #[arg(long)]
        max_tokens: Option<u32>,
        /// 0 (greedy) to 2 (default: the agent's own).
        #[arg(long)]
        temperature: Option<f32>,
        /// Nucleus mass in (0, 1] (default: the agent's own).
        #[arg(long)]
        top_p: Option<f32>,
        /// Makes sampling reproducible (default: the canister draws one from `raw_rand`).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// The user's agents with their statistics.
    List,
    /// Deletes agents (`delete_agent`): their runs stop and economics counts them no more.
    Delete {
        /// The agents, e.g. `1,2,3`.
        #[arg(value_delimiter = ',', required = true)]
        agents: Vec<u64>,
    },
}

/// `--as`: a principal as text, or a name turned into a principal as the demo user's is.
pub fn user_principal(name: Option<&str>) -> Principal {
    match name {
        None => demo_user(),
        Some(text) => {
            Principal::from_text(text).unwrap_or_else(|_| Principal::self_authenticating(text))
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let user = args.session.user();
    with_local_network(&args.session.local_state, |ic, saved| {
        let factory = saved.canister("agent_factory")?;
        let economics = saved.canister("economics")?;
        let mut agents = Agents {
            calls: LocalCaller { ic, sender: user },
            factory,
            economics,
        };
        match args.command {
            Command::Analyze { instructions } => agents.analyze(&instructions),
            Command::Create {
                instructions,
                count,
                model,
            } => agents.create(instructions, count, model),
            Command::Run {
                agent,
                prompt,
                max_tokens,
                temperature,
                top_p,
                seed,
            } => agents.run(
                AgentId(agent),
                prompt,
                Overrides {
                    max_tokens,
                    temperature,
                    top_p,
                },
                seed,
            ),
            Command::List => agents.list(),
            Command::Delete { agents: ids } => {
                for id in ids {
                    let reply: Result<(), Error> =
                        agents
                            .calls
                            .update(agents.factory, "delete_agent", (AgentId(id),))?;
                    typed("agent_factory", "delete_agent", reply)?;
                    println!("agent {id} deleted");
                }
                agents.print_quota()
            }
        }
    })
}

/// Generation parameters given on the command line, over the agent's own.
struct Overrides {
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
}

impl Overrides {
    fn apply(&self, agent: &GenerationParams) -> Option<GenerationParams> {
        if self.max_tokens.is_none() && self.temperature.is_none() && self.top_p.is_none() {
            return None;
        }
        Some(GenerationParams {
            temperature: self.temperature.unwrap_or(agent.temperature),
            top_p: self.top_p.unwrap_or(agent.top_p),
            max_tokens: self.max_tokens.unwrap_or(agent.max_tokens),
        })
    }
}

/// The factory, the user's agent canister and economics, called as `user`.
struct Agents<'a> {
    calls: LocalCaller<'a>,
    factory: Principal,
    economics: Principal,
}

impl Agents<'_> {
    fn analyze(&mut self, instructions: &str) -> Result<()> {
        let reply: Result<InstructionAnalysis, Error> = self.calls.query(
            self.factory,
            "analyze_instructions",
            (instructions.to_string(),),
        )?;
        let analysis = typed("agent_factory", "analyze_instructions", reply)?;
        println!("analysis of {instructions:?}:");
        print_analysis(&analysis);
        Ok(())
    }

    fn create(
        &mut self,
        instructions: String,
        count: Option<u32>,
        model: Option<String>,
    ) -> Result<()> {
        let model = model
            .map(|m| ModelId::parse(&m, "model").map_err(|e| anyhow!("{e}")))
            .transpose()?;
        let reply: Result<CreatedAgents, Error> = self.calls.update(
            self.factory,
            "create_agents",
            (CreateAgentsArgs {
                instructions,
                count,
                model,
            },),
        )?;
        let created = typed("agent_factory", "create_agents", reply)?;
        println!(
            "agent canister {} ({})",
            created.canister,
            if created.canister_created {
                "created now for this user"
            } else {
                "the user's existing one"
            }
        );
        println!("{} agent(s) created:", created.agents.len());
        for agent in &created.agents {
            println!(
                "  agent {:<4} {:<22} model {:<20} max {} tokens, temperature {}, top-p {}",
                agent.id.0,
                agent.role,
                agent.model.as_str(),
                agent.params.max_tokens,
                agent.params.temperature,
                agent.params.top_p
            );
        }
        Ok(())
    }

    /// The user's agent canister, as the factory records it.
    fn agent_canister(&mut self) -> Result<AgentCanisterRecord> {
        let reply: Result<Option<AgentCanisterRecord>, Error> =
            self.calls.query(self.factory, "my_agent_canister", ())?;
        typed("agent_factory", "my_agent_canister", reply)?.ok_or_else(|| {
            anyhow!(
                "{} has no agent canister yet (create agents first: `ohms agents create \"…\"`)",
                self.calls.sender
            )
        })
    }

    fn run(
        &mut self,
        agent: AgentId,
        prompt: String,
        overrides: Overrides,
        seed: Option<u64>,
    ) -> Result<()> {
        let canister = self.agent_canister()?.canister;
        let reply: Result<AgentInfo, Error> = self.calls.query(canister, "get_agent", (agent,))?;
        let info = typed("agent", "get_agent", reply)?;
        let params = overrides.apply(&info.params);
        let used = params.clone().unwrap_or_else(|| info.params.clone());
        let reply: Result<RunInfo, Error> = self.calls.update(
            canister,
            "run",
            (RunArgs {
                agent,
                prompt: prompt.clone(),
                params,
                seed,
                request_id: None,
                task_reservation: None,
            },),
        )?;
        let mut run = typed("agent", "run", reply)?;
        println!(
            "run {} of agent {} ({}) on {} in the agent canister {}",
            run.id, agent, info.role, run.model, canister
        );
        let sampling = if used.temperature == 0.0 {
            "greedy decoding".to_string()
        } else {
            format!(
                "temperature {}, top-p {}, seed {}",
                used.temperature, used.top_p, run.seed
            )
        };
        println!(
            "  prompt {prompt:?}; max {} tokens, {sampling}",
            used.max_tokens
        );

        let mut progress = Progress::default();
        let mut ticks = 0u32;
        loop {
            progress.show(self, canister, &run)?;
            if run.status.is_final() && run.usage_committed {
                break;
            }
            if ticks == MAX_TICKS {
                bail!(
                    "run {} is not over after {MAX_TICKS} rounds of the network: {:?}, {} tokens so far",
                    run.id,
                    run.status,
                    run.tokens_out
                );
            }
            self.calls.ic.tick();
            ticks += 1;
            let reply: Result<RunInfo, Error> = self.calls.query(canister, "get_run", (run.id,))?;
            run = typed("agent", "get_run", reply)?;
        }

        println!("answer:");
        for line in run.text.trim().lines() {
            println!("  | {line}");
        }
        let tokens = run.tokens_in + run.tokens_out;
        println!(
            "tokens: {} in, {} out ({}); {} message(s); {} IC instructions: {} instructions per token",
            run.tokens_in,
            run.tokens_out,
            run.stop_reason.as_deref().unwrap_or("no stop reason"),
            run.messages,
            thousands(run.instructions),
            thousands(run.instructions / tokens.max(1))
        );
        self.print_quota()?;
        match &run.status {
            RunStatus::Completed => Ok(()),
            RunStatus::Cancelled => bail!("run {} was cancelled", run.id),
            RunStatus::Failed { reason } => bail!("run {} failed: {reason}", run.id),
            other => bail!("run {} ended {other:?}", run.id),
        }
    }

    fn print_quota(&mut self) -> Result<()> {
        print_quota(&mut self.calls, self.economics)
    }

    fn list(&mut self) -> Result<()> {
        let mut agents = Vec::new();
        let mut start = 0;
        loop {
            let reply: Result<Paged<AgentInfo>, Error> = self.calls.update(
                self.factory,
                "list_agents",
                (Page {
                    start,
                    limit: Page::MAX_LIMIT,
                },),
            )?;
            let page = typed("agent_factory", "list_agents", reply)?;
            agents.extend(page.items);
            match page.next_start {
                Some(next) if next > start => start = next,
                _ => break,
            }
        }
        let canister = match self.agent_canister() {
            Ok(record) => format!("in the agent canister {}", record.canister),
            Err(_) => "(no agent canister)".to_string(),
        };
        println!(
            "{} agent(s) of {} {canister}",
            agents.len(),
            self.calls.sender
        );
        if agents.is_empty() {
            return Ok(());
        }
        println!(
            "{:<6} {:<22} {:<20} {:<7} {:>5} {:>5} {:>5} {:>8} {:>8} {:>16} {:>7}",
            "id",
            "role",
            "model",
            "status",
            "runs",
            "done",
            "fail",
            "tok in",
            "tok out",
            "instructions",
            "memory"
        );
        for a in &agents {
            let s = &a.stats;
            println!(
                "{:<6} {:<22} {:<20} {:<7} {:>5} {:>5} {:>5} {:>8} {:>8} {:>16} {:>7}",
                a.id.0,
                a.role,
                a.model.as_str(),
                match a.status {
                    AgentStatus::Active => "active",
                    AgentStatus::Paused => "paused",
                },
                s.runs,
                s.completed,
                s.failures,
                s.tokens_in,
                s.tokens_out,
                thousands(s.instructions),
                a.memory.len()
            );
        }
        Ok(())
    }
}

/// What the run's progress lines last said, so each change is printed once.
#[derive(Default)]
struct Progress {
    status: Option<RunStatus>,
    loaded: Option<(u32, u64)>,
    messages: u32,
    committed: bool,
}

impl Progress {
    fn show(&mut self, agents: &mut Agents<'_>, canister: Principal, run: &RunInfo) -> Result<()> {
        if run.status == RunStatus::LoadingModel {
            let reply: Result<AgentCanisterStatus, Error> =
                agents.calls.query(canister, "agent_status", ())?;
            let status = typed("agent", "agent_status", reply)?;
            if let Some(model) = status.models.iter().find(|m| m.model == run.model) {
                let now = (model.shards_verified, model.bytes_received);
                if self.loaded != Some(now) && model.state == ModelLoadState::Fetching {
                    println!(
                        "  loading the model from the repository: {} of {} bytes, {} of {} shards verified",
                        thousands(model.bytes_received),
                        thousands(model.bytes_total),
                        model.shards_verified,
                        model.shards_total
                    );
                    self.loaded = Some(now);
                }
            }
        }
        if self.status.as_ref() != Some(&run.status) {
            let line = match &run.status {
                RunStatus::LoadingModel => format!("model {} is loading", run.model),
                RunStatus::Queued => "queued (a canister generates for one run at a time)".into(),
                RunStatus::Generating => "generating".into(),
                RunStatus::Completed => format!(
                    "completed: {} tokens in {} message(s)",
                    run.tokens_out, run.messages
                ),
                RunStatus::Cancelled => "cancelled".into(),
                RunStatus::Failed { reason } => format!("failed: {reason}"),
            };
            println!("  {line}");
            self.status = Some(run.status.clone());
        }
        if run.status == RunStatus::Generating && run.messages != self.messages {
            if run.tokens_out == 0 {
                println!(
                    "  reading the prompt ({} tokens): {} message(s) so far, {} IC instructions",
                    run.tokens_in,
                    run.messages,
                    thousands(run.instructions)
                );
            } else {
                println!(
                    "  generating: {} tokens so far after {} message(s), {} IC instructions",
                    run.tokens_out,
                    run.messages,
                    thousands(run.instructions)
                );
            }
        }
        self.messages = run.messages;
        if run.usage_committed && !self.committed {
            println!(
                "  usage committed to economics: {} tokens",
                run.tokens_in + run.tokens_out
            );
            self.committed = true;
        }
        Ok(())
    }
}

/// Uploads an agent module to the factory in chunks of at most 1 MiB as `admin` (a
/// controller of the factory); returns the factory's wasm status with the module active.
pub fn upload_agent_wasm(
    ic: &mut LocalIc,
    factory: Principal,
    admin: Principal,
    module: &[u8],
) -> Result<AgentWasmStatus> {
    let sha256 = hex::encode(Sha256::digest(module));
    let mut transport = LocalTransport {
        ic,
        canister: factory,
        sender: admin,
    };
    let mut status = None;
    for (i, part) in module.chunks(AGENT_WASM_CHUNK_BYTES).enumerate() {
        let chunk = AgentWasmChunk {
            sha256: sha256.clone(),
            total_bytes: module.len() as u64,
            offset: (i * AGENT_WASM_CHUNK_BYTES) as u64,
            bytes: part.to_vec(),
        };
        let reply: Result<AgentWasmStatus, Error> = decode(
            "upload_agent_wasm",
            &transport.update("upload_agent_wasm", encode((chunk,))?)?,
        )?;
        status = Some(typed("agent_factory", "upload_agent_wasm", reply)?);
    }
    let status = status.context("the agent wasm is empty")?;
    if status.active_sha256.as_deref() != Some(sha256.as_str()) {
        bail!(
            "the factory's active agent wasm is {:?} after the upload, not {sha256}",
            status.active_sha256
        );
    }
    Ok(status)
}

pub(crate) fn typed<R>(
    canister: &'static str,
    method: &'static str,
    reply: Result<R, Error>,
) -> Result<R> {
    reply.map_err(|error| {
        CanisterError {
            canister,
            method,
            error,
        }
        .into()
    })
}

/// The caller's tokens this month and what the tier leaves.
pub(crate) fn print_quota(calls: &mut LocalCaller<'_>, economics: Principal) -> Result<()> {
    let reply: Result<UsageSummary, Error> = calls.query(economics, "my_usage", ())?;
    let usage = typed("economics", "my_usage", reply)?;
    let u = &usage.usage;
    match &usage.limits {
        Some(limits) => println!(
            "quota ({:?} tier, {}): {} tokens left this month; used {} in + {} out in {} call(s); {} of {} agents",
            limits.tier,
            usage.month,
            thousands(limits.tokens_left),
            u.tokens_in,
            u.tokens_out,
            u.calls,
            limits.agents,
            limits.max_agents
        ),
        None => println!(
            "quota: no subscription; used {} in + {} out this month",
            u.tokens_in, u.tokens_out
        ),
    }
    Ok(())
}

fn print_analysis(a: &InstructionAnalysis) {
    println!("capabilities found:");
    if a.capabilities.is_empty() {
        println!("  none");
    }
    for c in &a.capabilities {
        let wants: Vec<String> = c
            .model_capabilities
            .iter()
            .map(ToString::to_string)
            .collect();
        println!(
            "  {:<14} matched {:<30} model capabilities: {}",
            c.name,
            c.matched
                .iter()
                .map(|w| format!("{w:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            wants.join(", ")
        );
    }
    println!("roles:");
    for (i, r) in a.roles.iter().enumerate() {
        let caps: Vec<String> = r.capabilities.iter().map(ToString::to_string).collect();
        println!(
            "  {}. {} (needs {}; about {} tokens an answer)",
            i + 1,
            r.role,
            caps.join(", "),
            r.tokens_per_answer
        );
        println!("     system prompt: {}", r.system_prompt);
        println!(
            "     model:         {}",
            r.model.as_ref().map_or("none", ModelId::as_str)
        );
        println!("     reason:        {}", r.reason);
    }
    match a.requested_count {
        Some(asked) if asked != a.agent_count => println!(
            "agents: {} (the instructions asked for {asked})",
            a.agent_count
        ),
        Some(_) => println!("agents: {} (as the instructions asked)", a.agent_count),
        None => println!("agents: {} (one per role)", a.agent_count),
    }
    println!(
        "token budget: {} tokens ({})",
        a.token_budget, a.token_budget_reason
    );
    println!("suggested models:");
    if a.suggested_models.is_empty() {
        println!("  none (no active model fits)");
    }
    for m in &a.suggested_models {
        println!(
            "  {} ({}, score {}): {}",
            m.model, m.name, m.score, m.reason
        );
    }
    println!("explanation: {}", a.explanation);
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn users_are_principals_or_names() {
        assert_eq!(user_principal(None), demo_user());
        assert_eq!(
            user_principal(Some("alice")),
            Principal::self_authenticating("alice")
        );
        let text = demo_user().to_text();
        assert_eq!(user_principal(Some(&text)), demo_user());
    }

    #[test]
    fn overrides_replace_only_what_was_given() {
        let agent = GenerationParams::default();
        let none = Overrides {
            max_tokens: None,
            temperature: None,
            top_p: None,
        };
        assert_eq!(none.apply(&agent), None);
        let some = Overrides {
            max_tokens: Some(16),
            temperature: Some(0.0),
            top_p: None,
        };
        assert_eq!(
            some.apply(&agent),
            Some(GenerationParams {
                temperature: 0.0,
                top_p: agent.top_p,
                max_tokens: 16,
            })
        );
    }
}
