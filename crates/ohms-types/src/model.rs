//! Types of the model repository (`model_repo`): model records, uploads and queries.
//!
//! The same types are stored (as CBOR) and sent (as Candid); stored fields added later get
//! `#[serde(default)]`.

use std::fmt;

use candid::{CandidType, Deserialize, Principal};
use serde::Serialize;

use crate::{ModelId, UploadId};

/// The largest piece of model bytes one call carries: `upload_chunk`'s `bytes` and
/// `get_chunk`'s `len`, 1.9 MiB, so the argument or reply stays under the IC's 2 MiB limit.
pub const MAX_CHUNK_BYTES: u64 = 1_992_294;

/// Subscription tiers, lowest first (their limits and prices belong to `economics`).
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Tier {
    /// Off unless an administrator makes the free tier available in economics.
    Free,
    Basic,
    Pro,
    Enterprise,
}

/// What a model is good at — the taxonomy the agent factory matches instructions against.
/// Anything else goes into free tags.
///
/// - `Chat`: general conversation and instruction following;
/// - `Code`: writing code in general; `Python`, `JavaScript`, `Rust`: in that language;
/// - `CodeReview`: reading and criticising code; `Testing`: writing tests;
/// - `Summarize`, `Translate`, `Writing` (long-form prose), `Reasoning`, `Math`;
/// - `Storytelling`: short fiction (the TinyStories family).
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Capability {
    Chat,
    Code,
    Python,
    JavaScript,
    Rust,
    CodeReview,
    Testing,
    Summarize,
    Translate,
    Writing,
    Reasoning,
    Math,
    Storytelling,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The life of a model: `Uploading → Verified → Active → Deprecated`.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum ModelState {
    /// Bytes are being uploaded (or verified); nothing is served.
    Uploading,
    /// Every shard matched its size and sha256; waiting for an administrator to activate it.
    Verified,
    /// Served to agents and offered by `find_models`.
    Active,
    /// Still served to agents that use it, no longer offered to new ones.
    Deprecated,
}

/// What the uploader says about a model, beside the manifest.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ModelMetadata {
    /// Stable for life; one id (with its version) is uploaded once.
    pub id: ModelId,
    /// Display name, 1 to 128 characters.
    pub name: String,
    /// 1 to 32 characters (e.g. `1.0.0`).
    pub version: String,
    /// Up to 2,048 characters.
    pub description: String,
    /// At most 16, from the taxonomy.
    pub capabilities: Vec<Capability>,
    /// At most 16 free tags of 1 to 32 characters `a-z 0-9 - _ .`.
    pub tags: Vec<String>,
    /// The lowest tier whose subscribers may use the model.
    pub min_tier: Tier,
}

/// `begin_upload`'s argument: the NOVAQ manifest's exact bytes (`manifest.cbor`) and the
/// record's metadata.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
pub struct BeginUpload {
    #[serde(with = "serde_bytes")]
    pub manifest: Vec<u8>,
    pub metadata: ModelMetadata,
}

/// `upload_chunk`'s argument: `bytes` (at most [`MAX_CHUNK_BYTES`]) at `offset` into shard
/// `shard`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
pub struct UploadChunk {
    pub upload_id: UploadId,
    pub shard: u32,
    pub offset: u64,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// `get_chunk`'s argument: `len` (at most [`MAX_CHUNK_BYTES`]) bytes at `offset` into shard
/// `shard` of model `model`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug)]
pub struct ChunkRequest {
    pub model: ModelId,
    pub shard: u32,
    pub offset: u64,
    pub len: u64,
}

/// The Llama-family configuration from the manifest.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelArchitecture {
    pub family: String,
    pub hidden_size: u32,
    pub intermediate_size: u32,
    pub layers: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub vocab_size: u32,
    pub context_length: u32,
    pub rope_dim: u32,
    pub rope_theta: f32,
    pub norm_eps: f32,
    pub tied_embeddings: bool,
}

/// How NOVAQ compressed the model (from the manifest).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NovaqParams {
    /// `2bit`, `3bit`, `4bit`, `q4`, `q8` or `aq-BxD`.
    pub mode: String,
    /// Bits per weight spent on codes alone.
    pub code_bits: f32,
    /// Bits per weight all-in: every stored byte (shards) per weight.
    pub bits_per_weight: f32,
    /// Codebook sets, and their (books, dim) layouts.
    pub codebooks: Vec<CodebookLayout>,
    /// Group size of the scalar-coded tensors, when there are any.
    pub group_size: Option<u32>,
    pub parameters: u64,
    pub tensors: u32,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodebookLayout {
    pub books: u32,
    pub dim: u32,
}

/// One shard of the model's byte stream.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// A model as `get_model` returns it (SPEC §3.1).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelRecord {
    pub id: ModelId,
    pub name: String,
    pub version: String,
    pub description: String,
    pub capabilities: Vec<Capability>,
    pub tags: Vec<String>,
    pub architecture: ModelArchitecture,
    pub novaq: NovaqParams,
    /// Bytes the source model's tensors used.
    pub original_bytes: u64,
    /// Bytes of all shards.
    pub compressed_bytes: u64,
    pub manifest_bytes: u64,
    /// Lowercase hex SHA-256 of the manifest's bytes.
    pub root_hash: String,
    pub shard_size: u64,
    pub shards: Vec<ShardInfo>,
    pub min_tier: Tier,
    pub creator: Principal,
    pub state: ModelState,
    pub created_at_nanos: u64,
    pub updated_at_nanos: u64,
    pub verified_at_nanos: Option<u64>,
    pub activated_at_nanos: Option<u64>,
    pub deprecated_at_nanos: Option<u64>,
    /// Tokens reported by agent canisters through `record_usage`.
    pub usage_tokens: u64,
    /// `record_usage` calls.
    pub usage_calls: u64,
}

/// A model in a list: the record without its shard table.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelSummary {
    pub id: ModelId,
    pub name: String,
    pub version: String,
    pub description: String,
    pub capabilities: Vec<Capability>,
    pub tags: Vec<String>,
    pub family: String,
    pub mode: String,
    pub bits_per_weight: f32,
    pub parameters: u64,
    pub compressed_bytes: u64,
    pub shard_count: u32,
    pub root_hash: String,
    pub min_tier: Tier,
    pub creator: Principal,
    pub state: ModelState,
    pub created_at_nanos: u64,
    pub updated_at_nanos: u64,
    pub usage_tokens: u64,
}

/// `list_models`' filter; every given field must match.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelFilter {
    pub state: Option<ModelState>,
    /// The model has every one of these (at most 16).
    pub capabilities: Vec<Capability>,
    /// The model has this tag.
    pub tag: Option<String>,
    /// The model is usable at this tier.
    pub max_tier: Option<Tier>,
}

/// One answer of `find_models`, with why it matched.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelMatch {
    pub model: ModelSummary,
    /// Requested capabilities the model has, and those it lacks.
    pub matched: Vec<Capability>,
    pub missing: Vec<Capability>,
    /// Higher is better; results come best first.
    pub score: u32,
    pub reason: String,
}

/// A half-open range of byte offsets `[start, end)` inside a shard.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What an upload still lacks in one shard.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    pub shard: u32,
    pub size: u64,
    pub received_bytes: u64,
    /// The ranges to send (at most [`UploadStatus::MAX_RANGES_SHOWN`] over the whole reply).
    pub missing: Vec<ByteRange>,
    pub verified: bool,
}

/// Where an upload stands.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadPhase {
    /// Accepting chunks.
    Receiving,
    /// `finalize_upload` is hashing the shards, a bounded amount per message.
    Verifying,
    /// Every shard matched: the model is `Verified`.
    Verified,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub upload_id: UploadId,
    pub model: ModelId,
    pub creator: Principal,
    pub phase: UploadPhase,
    pub total_bytes: u64,
    pub received_bytes: u64,
    /// Bytes hashed by the current (or last) verification.
    pub verified_bytes: u64,
    /// Shards with missing bytes or not yet verified; the rest are complete and verified.
    pub shards: Vec<ShardStatus>,
    /// Shards left out of `shards` to keep the reply small.
    pub more_shards: u32,
    /// Why the last verification failed (naming the shard), if it did.
    pub last_error: Option<String>,
    pub started_at_nanos: u64,
    pub last_activity_nanos: u64,
    /// When the upload expires unless it is used again.
    pub expires_at_nanos: u64,
}

impl UploadStatus {
    /// Missing ranges listed in one reply; a client sends those, then asks again.
    pub const MAX_RANGES_SHOWN: usize = 10_000;
}

/// `finalize_upload`'s answer.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum FinalizeOutcome {
    /// Done in this call: the model is `Verified`.
    Verified(Box<ModelRecord>),
    /// Hashing continues on a timer; follow it with `upload_status`.
    Verifying {
        verified_bytes: u64,
        total_bytes: u64,
    },
}

/// Limits of the repository, set by administrators (`set_repo_config`).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RepoConfig {
    /// Largest model (sum of its shards) accepted by `begin_upload`.
    pub max_model_bytes: u64,
    /// Most shards in one manifest.
    pub max_shards: u32,
    /// Largest manifest accepted by `begin_upload`.
    pub max_manifest_bytes: u64,
    /// Model bytes all models and uploads together may hold.
    pub max_total_bytes: u64,
    /// Uploads in progress at once.
    pub max_uploads: u32,
    /// An upload untouched for this long is aborted by the expiry timer.
    pub upload_idle_timeout_seconds: u64,
    /// Bytes `finalize_upload` hashes per message before continuing on a timer.
    pub hash_bytes_per_message: u64,
}

/// Figures of the blob store and the models, for `/metrics` and dashboards.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RepoStats {
    pub page_bytes: u64,
    /// Pages holding model bytes, times the page size.
    pub bytes_used: u64,
    /// Pages freed by deletions, ready for reuse, times the page size.
    pub bytes_free: u64,
    /// Model bytes of all uploads and models (what `max_total_bytes` limits).
    pub bytes_reserved: u64,
    pub models_uploading: u64,
    pub models_verified: u64,
    pub models_active: u64,
    pub models_deprecated: u64,
    pub uploads_in_progress: u64,
    pub uploaders: u64,
    pub agent_canisters: u64,
}
