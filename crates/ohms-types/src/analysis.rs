//! Types of the agent factory's instruction analysis (`analyze_instructions`, SPEC §3.2): what
//! was recognised in a user's instructions, the roles and agents it leads to, the token budget
//! and the models that fit — each with the reason, so the answer is explainable.

use candid::{CandidType, Deserialize};
use serde::Serialize;

use crate::{Capability, ModelId};

/// `analyze_instructions`' answer.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct InstructionAnalysis {
    /// Taxonomy capabilities recognised in the text, in taxonomy order.
    pub capabilities: Vec<FoundCapability>,
    /// One plan per agent to create (`agent_count` of them), in a fixed role order; when more
    /// agents than roles were asked for, roles repeat (`"Python Developer 2"`).
    pub roles: Vec<RolePlan>,
    /// Agents to create: the requested count if the text names one, otherwise one per role;
    /// at most the factory's per-request limit.
    pub agent_count: u32,
    /// The count the text asked for ("create 5 agents"), before the limit was applied.
    pub requested_count: Option<u32>,
    /// Estimated tokens for one answer from every agent.
    pub token_budget: u64,
    /// How `token_budget` was computed.
    pub token_budget_reason: String,
    /// Models that fit, best first (empty until models are matched against the repository).
    pub suggested_models: Vec<SuggestedModel>,
    /// The whole analysis in a few sentences for people.
    pub explanation: String,
}

/// A capability of the factory's taxonomy found in the text.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FoundCapability {
    /// The taxonomy name, e.g. `python`, `code review`.
    pub name: String,
    /// The words and phrases that matched, lowercase, in order of first appearance.
    pub matched: Vec<String>,
    /// The model capabilities this taxonomy capability asks of a model.
    pub model_capabilities: Vec<Capability>,
}

/// One agent to create: its role, prompt and the model capabilities it needs.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RolePlan {
    /// E.g. `Python Developer`, `Code Reviewer`, `Test Generator`.
    pub role: String,
    /// The agent's system prompt.
    pub system_prompt: String,
    /// Model capabilities the agent's model should have, most important first.
    pub capabilities: Vec<Capability>,
    /// Estimated tokens of one answer of this role.
    pub tokens_per_answer: u32,
    /// The model chosen for the role, once models were matched.
    pub model: Option<ModelId>,
    /// Why the role is there (the words that triggered it) and, once chosen, why its model.
    pub reason: String,
}

/// A model of the repository that fits the analysis.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SuggestedModel {
    pub model: ModelId,
    pub name: String,
    /// The analysis' model capabilities this model has.
    pub matched: Vec<Capability>,
    /// Higher is better: the number of `matched` capabilities.
    pub score: u32,
    pub reason: String,
}
