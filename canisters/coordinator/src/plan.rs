//! The plan of a task, as pure functions: where each role stands (develop → review → test),
//! what each round asks, the prompt an agent gets (the task, the blackboard of earlier rounds
//! trimmed to the model's context by the model's own token count), the tokens a step may use,
//! and the aggregated result.

use ohms_types::{Capability, MAX_PROMPT_BYTES, TaskInfo, TaskStep};

/// An answer shorter than this is not worth a run: the step is skipped for want of budget.
pub const MIN_ANSWER_TOKENS: u32 = 8;
/// An earlier output enters the blackboard with at most this many bytes.
pub const MAX_ENTRY_BYTES: usize = 4 * 1024;

/// Where a role stands in the plan: builders first, then reviewers, then testers.
pub fn stage_of(capabilities: &[Capability], role: &str) -> (u8, &'static str) {
    let role = role.to_lowercase();
    if capabilities.contains(&Capability::Testing) || role.contains("test") {
        (2, "test")
    } else if capabilities.contains(&Capability::CodeReview) || role.contains("review") {
        (1, "review")
    } else {
        (0, "develop")
    }
}

/// What each of `rounds` rounds asks of every agent.
pub fn round_stages(rounds: u8) -> Vec<&'static str> {
    match rounds {
        0 | 1 => vec!["draft"],
        2 => vec!["draft", "review"],
        3 => vec!["draft", "review", "final"],
        _ => vec!["draft", "review", "review", "final"],
    }
}

/// The request closing the prompt of `role` in a round of `stage`. Short: small models have
/// a context of a few hundred tokens, and every round's prompt must fit it.
pub fn ask(stage: &str, role: &str) -> String {
    match stage {
        "draft" => format!("As the {role}, do your part."),
        "final" => format!("As the {role}, give your final part using the work above."),
        _ => format!("As the {role}, improve your part using the work above."),
    }
}

/// One earlier output on the blackboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub role: String,
    pub round: u32,
    pub text: String,
}

/// The blackboard an agent reads in round `round`: every completed output of the rounds
/// before, oldest first, each cut to `MAX_ENTRY_BYTES`.
pub fn blackboard(task: &TaskInfo, round: u32) -> Vec<Entry> {
    task.rounds
        .iter()
        .take(round as usize)
        .flat_map(|r| {
            r.steps
                .iter()
                .filter(|s| s.status == ohms_types::StepStatus::Completed)
                .map(move |s| Entry {
                    role: s.role.clone(),
                    round: r.index + 1,
                    text: cut(s.output.trim(), MAX_ENTRY_BYTES).to_string(),
                })
        })
        .collect()
}

/// The prompt text: the task, the blackboard entries given, the round's request.
pub fn compose(instructions: &str, entries: &[Entry], ask: &str) -> String {
    let mut prompt = format!("Task: {}\n\n", instructions.trim());
    for entry in entries {
        prompt.push_str(&format!(
            "[{} — round {}]\n{}\n\n",
            entry.role, entry.round, entry.text
        ));
    }
    prompt.push_str(ask);
    prompt
}

/// A prompt that fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fitted {
    pub prompt: String,
    pub tokens: u32,
    pub entries: u32,
    pub trimmed: u32,
}

/// The prompt with as many of the newest entries as fit in `limit_tokens` (counted by
/// `count`, the model's tokenizer with its chat template) and in the agent's prompt size
/// limit; the oldest go first. `Err(tokens)` when even the prompt without a blackboard is
/// too long. Binary search: a handful of tokenizations whatever the blackboard's size.
pub fn fit(
    instructions: &str,
    entries: &[Entry],
    ask: &str,
    limit_tokens: u32,
    count: impl Fn(&str) -> usize,
) -> Result<Fitted, u32> {
    let attempt = |keep: usize| {
        let kept = &entries[entries.len() - keep..];
        let prompt = compose(instructions, kept, ask);
        let tokens = if prompt.len() > MAX_PROMPT_BYTES {
            u32::MAX
        } else {
            count(&prompt).min(u32::MAX as usize) as u32
        };
        (prompt, tokens)
    };
    let (prompt, tokens) = attempt(entries.len());
    if tokens <= limit_tokens {
        return Ok(Fitted {
            prompt,
            tokens,
            entries: entries.len() as u32,
            trimmed: 0,
        });
    }
    let (bare, bare_tokens) = attempt(0);
    if bare_tokens > limit_tokens {
        return Err(bare_tokens);
    }
    // The largest `keep` that fits: fits(lo) holds, fits(hi) does not.
    let (mut lo, mut hi) = (0usize, entries.len());
    let mut best = (bare, bare_tokens);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let (prompt, tokens) = attempt(mid);
        if tokens <= limit_tokens {
            lo = mid;
            best = (prompt, tokens);
        } else {
            hi = mid;
        }
    }
    Ok(Fitted {
        prompt: best.0,
        tokens: best.1,
        entries: lo as u32,
        trimmed: (entries.len() - lo) as u32,
    })
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Tokens a run's upper bound holds while it is in flight: its prompt and its answer.
pub fn held_by_step(step: &TaskStep) -> u64 {
    u64::from(step.prompt_tokens) + u64::from(step.max_tokens)
}

/// Tokens the task's budget still has for steps not dispatched yet: the budget less what
/// finished runs used and what runs in flight may use.
pub fn budget_left(task: &TaskInfo) -> u64 {
    let mut committed = 0u64;
    for step in task.rounds.iter().flat_map(|r| &r.steps) {
        committed = committed.saturating_add(match step.status {
            ohms_types::StepStatus::Dispatching | ohms_types::StepStatus::Running { .. } => {
                held_by_step(step)
            }
            _ => step.tokens_in + step.tokens_out,
        });
    }
    task.budget_tokens.saturating_sub(committed)
}

/// Steps of the task not dispatched yet (pending in this round and every step of the rounds
/// after it).
pub fn undispatched(task: &TaskInfo) -> u64 {
    task.rounds
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| s.status == ohms_types::StepStatus::Pending)
        .count() as u64
}

/// The answer length of a step: the agent's own limit, what the context leaves after the
/// prompt, and an equal share of the budget left among the steps still to dispatch.
pub fn answer_tokens(
    agent_max: u32,
    context: u32,
    prompt_tokens: u32,
    budget_left: u64,
    steps_left: u64,
) -> Option<u32> {
    let share = budget_left / steps_left.max(1);
    let by_budget = share.saturating_sub(u64::from(prompt_tokens));
    let by_context = u64::from(context.saturating_sub(prompt_tokens).saturating_sub(1));
    let tokens = u64::from(agent_max).min(by_budget).min(by_context) as u32;
    (tokens >= MIN_ANSWER_TOKENS).then_some(tokens)
}

/// The task's result: each agent's latest completed output, in plan order.
pub fn aggregate(task: &TaskInfo) -> String {
    let mut result = String::new();
    for agent in &task.agents {
        let latest = task
            .rounds
            .iter()
            .rev()
            .flat_map(|r| r.steps.iter().map(move |s| (r.index, s)))
            .find(|(_, s)| s.agent == agent.agent && s.status == ohms_types::StepStatus::Completed);
        if let Some((round, step)) = latest {
            result.push_str(&format!(
                "## {} ({}, round {})\n{}\n\n",
                agent.role,
                agent.stage,
                round + 1,
                step.output.trim()
            ));
        }
    }
    result.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                role: format!("Role {i}"),
                round: 1,
                text: "word ".repeat(20),
            })
            .collect()
    }

    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    #[test]
    fn roles_are_ordered_develop_review_test() {
        assert_eq!(
            stage_of(&[Capability::Code, Capability::Python], "Python Developer"),
            (0, "develop")
        );
        assert_eq!(
            stage_of(&[Capability::CodeReview], "Code Reviewer"),
            (1, "review")
        );
        assert_eq!(
            stage_of(&[Capability::Testing], "Test Generator"),
            (2, "test")
        );
        assert_eq!(round_stages(2), vec!["draft", "review"]);
        assert_eq!(round_stages(9).len(), 4);
    }

    #[test]
    fn the_newest_entries_that_fit_are_kept_and_the_oldest_trimmed() {
        let all = entries(10);
        let full = words(&compose("write it", &all, "go"));
        let fitted = fit("write it", &all, "go", full as u32, words).unwrap();
        assert_eq!((fitted.entries, fitted.trimmed), (10, 0));

        // Room for four entries (each is 25 words with its header).
        let bare = words(&compose("write it", &[], "go"));
        let fitted = fit("write it", &all, "go", (bare + 4 * 25) as u32, words).unwrap();
        assert_eq!(fitted.entries, 4);
        assert_eq!(fitted.trimmed, 6);
        assert!(fitted.prompt.contains("Role 9") && !fitted.prompt.contains("Role 5"));
        assert!(fitted.tokens as usize <= bare + 4 * 25);

        assert_eq!(fit("write it", &all, "go", 2, words), Err(bare as u32));
    }

    #[test]
    fn answers_share_the_budget_and_respect_the_context() {
        // 1,000 tokens left for 4 steps: 250 each, less a 100-token prompt.
        assert_eq!(answer_tokens(512, 2048, 100, 1_000, 4), Some(150));
        // The agent's own limit.
        assert_eq!(answer_tokens(64, 2048, 100, 1_000, 4), Some(64));
        // The context: 512 - 500 - 1.
        assert_eq!(answer_tokens(512, 512, 500, 100_000, 1), Some(11));
        // Too little left.
        assert_eq!(answer_tokens(512, 2048, 100, 400, 4), None);
    }

    #[test]
    fn cut_keeps_characters_whole() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
