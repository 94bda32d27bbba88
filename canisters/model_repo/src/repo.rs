//! The repository's logic: uploads, verification, the model life cycle and reads. Every
//! function takes the [`Env`] captured at the entry point (caller, time), so native unit tests
//! drive it without a canister runtime.
//!
//! Who may do what (checked here, in each function):
//! - administrators: everything, also while the canister is paused (they repair);
//! - allow-listed uploaders: `begin_upload`, and on their own uploads and models
//!   `upload_chunk`, `finalize_upload`, `abort_upload`, `deprecate`, `delete_model` — refused
//!   while paused, like every state-changing user call;
//! - only administrators `activate` a model (it becomes visible to every agent);
//! - registered agent canisters (and administrators) read manifests and chunks and report usage;
//!   registered sibling canisters (the coordinator reads tokenizers) read them too;
//! - the agent factory (the sibling registered at install) registers agent canisters;
//! - everyone reads records (`get_model`, `list_models`, `find_models`).

use candid::Principal;
use ohms_ops::{Env, UserUpdate, access, audit};
use ohms_types::{
    BeginUpload, ByteRange, Capability, ChunkRequest, Error, FinalizeOutcome, MAX_CHUNK_BYTES,
    ModelFilter, ModelId, ModelMatch, ModelRecord, ModelState, ModelSummary, Page, Paged,
    RepoConfig, RepoStats, ShardStatus, Tier, UploadChunk, UploadId, UploadPhase, UploadStatus,
};

use crate::sha::Sha256State;
use crate::state::{
    Cursor, FRAME_BYTES, ModelKey, Phase, Received, RepoState, StoredModel, Upload, mutate_state,
    read_state,
};
use crate::validate;

/// Disjoint ranges one shard of an upload may hold before it must be filled in: chunks are
/// meant to be sent in order, and this bounds the bookkeeping a hostile uploader can cause.
pub const MAX_RANGES_PER_SHARD: usize = 1_024;
/// Tokens one `record_usage` call may report.
pub const MAX_USAGE_TOKENS: u64 = 1_000_000_000;
/// Results of one `find_models`.
pub const MAX_MATCHES: usize = 20;
/// Uploads one allow-listed uploader may have in progress (administrators: up to
/// `max_uploads`, the limit of all uploads together).
pub const MAX_UPLOADS_PER_UPLOADER: usize = 4;
/// Registered agent canisters at most.
pub const MAX_AGENT_CANISTERS: u64 = 1_000_000;
/// Bytes read from stable memory per hashing step.
const HASH_READ_BYTES: u64 = FRAME_BYTES;

/// Who changes repository state in this call.
enum Writer {
    Admin(Principal),
    Uploader(Principal),
}

impl Writer {
    fn principal(&self) -> Principal {
        match self {
            Self::Admin(p) | Self::Uploader(p) => *p,
        }
    }

    fn is_admin(&self) -> bool {
        matches!(self, Self::Admin(_))
    }

    /// Administrators, or the principal that created the thing.
    fn owns(&self, creator: &Principal) -> Result<(), Error> {
        match self {
            Self::Admin(_) => Ok(()),
            Self::Uploader(p) if p == creator => Ok(()),
            Self::Uploader(p) => Err(Error::not_authorized(format!(
                "{p} did not create this; only its creator or an administrator may change it"
            ))),
        }
    }
}

/// An administrator, or an allow-listed uploader (signed in, canister not paused).
fn writer(env: &impl Env) -> Result<Writer, Error> {
    if let Ok(admin) = access::admin(env) {
        return Ok(Writer::Admin(admin));
    }
    let call = UserUpdate::check(env)?;
    let caller = call.caller();
    if read_state(|s| s.uploaders.contains_key(&caller)) {
        Ok(Writer::Uploader(caller))
    } else {
        Err(Error::not_authorized(format!(
            "{caller} is neither an administrator nor an allow-listed uploader"
        )))
    }
}

/// An administrator, a registered sibling canister (the coordinator reads tokenizers) or a
/// registered agent canister.
fn reader(env: &impl Env) -> Result<Principal, Error> {
    let caller = access::user(env)?;
    if access::is_admin(env, &caller)
        || access::sibling(env).is_ok()
        || read_state(|s| s.agents.contains_key(&caller))
    {
        Ok(caller)
    } else {
        Err(Error::not_authorized(format!(
            "{caller} is not an administrator, a registered OHMS canister or a registered agent canister"
        )))
    }
}

fn valid_model_id(id: &ModelId, field: &str) -> Result<ModelId, Error> {
    ModelId::parse(id.as_str(), field)
}

fn model_not_found(id: &ModelId) -> Error {
    Error::not_found("model", id)
}

fn upload_not_found(id: UploadId) -> Error {
    Error::not_found("upload", id)
}

// ---------------------------------------------------------------------------------------------
// Allow-list, agent canisters, configuration

pub fn add_uploader(env: &impl Env, principal: Principal) -> Result<(), Error> {
    access::admin(env)?;
    if principal == Principal::anonymous() {
        return Err(Error::invalid_argument(
            "principal",
            "the anonymous principal cannot upload",
        ));
    }
    if mutate_state(|s| s.uploaders.insert(principal, ())).is_some() {
        return Err(Error::already_exists("uploader", principal));
    }
    audit::record(
        env,
        "add_uploader",
        format!("allowed {principal} to upload models"),
    );
    Ok(())
}

pub fn remove_uploader(env: &impl Env, principal: Principal) -> Result<(), Error> {
    access::admin(env)?;
    if mutate_state(|s| s.uploaders.remove(&principal)).is_none() {
        return Err(Error::not_found("uploader", principal));
    }
    audit::record(
        env,
        "remove_uploader",
        format!("{principal} may no longer upload models"),
    );
    Ok(())
}

pub fn list_uploaders(env: &impl Env, page: Page) -> Result<Paged<Principal>, Error> {
    access::admin(env)?;
    Ok(read_state(|s| {
        let total = s.uploaders.len();
        let range = page.range(total);
        let items = s
            .uploaders
            .keys()
            .skip(range.start as usize)
            .take((range.end - range.start) as usize)
            .collect();
        Paged::new(items, range, total)
    }))
}

/// Registers an agent canister, which may then read manifests and chunks and report usage.
/// The agent factory only; registering again is harmless.
pub fn register_agent_canister(env: &impl Env, canister: Principal) -> Result<(), Error> {
    access::user(env)?;
    let (_, role) = access::sibling(env)?;
    if role != "agent_factory" {
        return Err(Error::not_authorized(format!(
            "only the agent factory registers agent canisters, not the {role}"
        )));
    }
    let bytes = canister.as_slice();
    if canister == Principal::anonymous()
        || canister == Principal::management_canister()
        || canister == env.canister_id()
        || bytes.last() != Some(&0x01)
    {
        return Err(Error::invalid_argument(
            "canister",
            format!("{canister} is not an agent canister id"),
        ));
    }
    let now = env.now_nanos();
    mutate_state(|s| {
        if s.agents.contains_key(&canister) {
            return Ok(());
        }
        if s.agents.len() >= MAX_AGENT_CANISTERS {
            return Err(Error::QuotaExceeded {
                quota: "agent canisters".into(),
                limit: MAX_AGENT_CANISTERS,
            });
        }
        s.agents.insert(canister, now);
        Ok(())
    })
}

pub fn repo_config(env: &impl Env) -> Result<RepoConfig, Error> {
    access::admin(env)?;
    Ok(read_state(|s| s.config()))
}

/// Replaces the limits. Administrators only; audited.
pub fn set_repo_config(env: &impl Env, config: RepoConfig) -> Result<(), Error> {
    access::admin(env)?;
    let bad = |field: &str, reason: String| {
        Err(Error::invalid_argument(format!("config.{field}"), reason))
    };
    if config.max_manifest_bytes == 0 || config.max_manifest_bytes > MAX_CHUNK_BYTES {
        return bad(
            "max_manifest_bytes",
            format!("1 to {MAX_CHUNK_BYTES} (a manifest travels in one message)"),
        );
    }
    if config.max_shards == 0 || config.max_shards > validate::HARD_MAX_SHARDS {
        return bad("max_shards", format!("1 to {}", validate::HARD_MAX_SHARDS));
    }
    if config.max_model_bytes == 0 || config.max_model_bytes > config.max_total_bytes {
        return bad("max_model_bytes", "1 to max_total_bytes".into());
    }
    if config.max_total_bytes > 500 << 30 {
        return bad(
            "max_total_bytes",
            "at most 500 GiB (the IC's stable memory)".into(),
        );
    }
    if config.max_uploads == 0 || config.max_uploads > 1_000 {
        return bad("max_uploads", "1 to 1000".into());
    }
    if config.upload_idle_timeout_seconds < 60 || config.upload_idle_timeout_seconds > 90 * 86_400 {
        return bad("upload_idle_timeout_seconds", "60 s to 90 days".into());
    }
    if !(64 << 10..=1 << 30).contains(&config.hash_bytes_per_message) {
        return bad("hash_bytes_per_message", "64 KiB to 1 GiB".into());
    }
    let summary = format!("{config:?}");
    mutate_state(|s| s.update_stored(|st| st.config = config));
    audit::record(env, "set_repo_config", summary);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Upload

/// Starts an upload: validates the manifest and metadata, reserves the model's bytes and
/// creates its record in state `Uploading`.
pub fn begin_upload(env: &impl Env, args: BeginUpload) -> Result<UploadId, Error> {
    let writer = writer(env)?;
    let config = read_state(|s| s.config());
    let metadata = validate::metadata(args.metadata)?;
    // Cheap checks that need no decoding, before the manifest is decoded.
    read_state(|s| {
        if s.models.contains_key(&ModelKey::from(&metadata.id)) {
            return Err(Error::already_exists("model", &metadata.id));
        }
        let in_progress: Vec<Principal> = s
            .uploads
            .values()
            .map(|u| u.0)
            .filter(|u| u.phase != Phase::Verified)
            .map(|u| u.creator)
            .collect();
        if in_progress.len() as u64 >= u64::from(config.max_uploads) {
            return Err(Error::QuotaExceeded {
                quota: "uploads in progress".into(),
                limit: config.max_uploads.into(),
            });
        }
        let mine = in_progress
            .iter()
            .filter(|c| **c == writer.principal())
            .count();
        if !writer.is_admin() && mine >= MAX_UPLOADS_PER_UPLOADER {
            return Err(Error::QuotaExceeded {
                quota: "uploads in progress per uploader".into(),
                limit: MAX_UPLOADS_PER_UPLOADER as u64,
            });
        }
        Ok(())
    })?;
    let checked = validate::manifest(&args.manifest, &config)?;
    let now = env.now_nanos();
    let creator = writer.principal();
    let id = mutate_state(|s| {
        let stored = s.stored();
        let reserved = stored.bytes_reserved.saturating_add(checked.total_bytes);
        if reserved > config.max_total_bytes {
            return Err(Error::QuotaExceeded {
                quota: "max_total_bytes".into(),
                limit: config.max_total_bytes,
            });
        }
        let id = stored.next_upload_id;
        s.update_stored(|st| {
            st.next_upload_id += 1;
            st.bytes_reserved = reserved;
        });
        s.manifests.insert(id, args.manifest.clone());
        s.shard_tables
            .insert(id, ohms_ops::Cbor(checked.shards.clone()));
        s.put_model(StoredModel {
            blob: id,
            upload: Some(id),
            record: ModelRecord {
                id: metadata.id.clone(),
                name: metadata.name,
                version: metadata.version,
                description: metadata.description,
                capabilities: metadata.capabilities,
                tags: metadata.tags,
                architecture: checked.architecture,
                novaq: checked.novaq,
                original_bytes: checked.original_bytes,
                compressed_bytes: checked.total_bytes,
                manifest_bytes: args.manifest.len() as u64,
                root_hash: checked.root_hash.clone(),
                shard_size: checked.shard_size,
                shards: vec![],
                min_tier: metadata.min_tier,
                creator,
                state: ModelState::Uploading,
                created_at_nanos: now,
                updated_at_nanos: now,
                verified_at_nanos: None,
                activated_at_nanos: None,
                deprecated_at_nanos: None,
                usage_tokens: 0,
                usage_calls: 0,
            },
        });
        s.put_upload(Upload {
            id,
            model: metadata.id.clone(),
            creator,
            total_bytes: checked.total_bytes,
            shard_size: checked.shard_size,
            shard_count: checked.shards.len() as u32,
            phase: Phase::Receiving,
            cursor: None,
            verified_bytes: 0,
            last_error: None,
            started_at_nanos: now,
            last_activity_nanos: now,
        });
        Ok(id)
    })?;
    audit::record(
        env,
        "begin_upload",
        format!(
            "upload {id} of model {} ({} bytes in {} shards, root {}){}",
            metadata.id,
            checked.total_bytes,
            checked.shards.len(),
            checked.root_hash,
            if writer.is_admin() {
                ""
            } else {
                " by an uploader"
            }
        ),
    );
    Ok(UploadId(id))
}

/// The upload, if the writer may act on it.
fn owned_upload(writer: &Writer, id: UploadId) -> Result<Upload, Error> {
    let upload = read_state(|s| s.upload(id.0)).ok_or_else(|| upload_not_found(id))?;
    writer.owns(&upload.creator)?;
    Ok(upload)
}

fn shard_size(s: &RepoState, upload: &Upload, shard: u32) -> Result<u64, Error> {
    s.shard_tables
        .get(&upload.id)
        .and_then(|t| t.0.get(shard as usize).map(|e| e.size))
        .ok_or_else(|| {
            Error::invalid_argument(
                "shard",
                format!(
                    "shard {shard} does not exist; the model has {}",
                    upload.shard_count
                ),
            )
        })
}

/// `upload_chunk`'s argument, its bytes borrowed from the message (decoding them into a
/// vector of their own would copy 1.9 MiB for nothing).
#[derive(Debug, Clone, Copy)]
pub struct ChunkRef<'a> {
    pub upload_id: UploadId,
    pub shard: u32,
    pub offset: u64,
    pub bytes: &'a [u8],
}

impl<'a> From<&'a UploadChunk> for ChunkRef<'a> {
    fn from(chunk: &'a UploadChunk) -> Self {
        Self {
            upload_id: chunk.upload_id,
            shard: chunk.shard,
            offset: chunk.offset,
            bytes: &chunk.bytes,
        }
    }
}

/// Stores `bytes` at `offset` of shard `shard`. Sending the same bytes again is harmless;
/// different bytes over a received range are refused.
pub fn upload_chunk(env: &impl Env, chunk: ChunkRef<'_>) -> Result<(), Error> {
    let writer = writer(env)?;
    let len = chunk.bytes.len() as u64;
    if len == 0 || len > MAX_CHUNK_BYTES {
        return Err(Error::invalid_argument(
            "bytes",
            format!("1 to {MAX_CHUNK_BYTES} bytes per chunk, got {len}"),
        ));
    }
    let upload = owned_upload(&writer, chunk.upload_id)?;
    if upload.phase != Phase::Receiving {
        return Err(Error::invalid_state(format!(
            "upload {} is {}; chunks are accepted while receiving",
            upload.id,
            phase_name(upload.phase)
        )));
    }
    let now = env.now_nanos();
    mutate_state(|s| {
        let size = shard_size(s, &upload, chunk.shard)?;
        let end = chunk
            .offset
            .checked_add(len)
            .filter(|end| *end <= size)
            .ok_or_else(|| {
                Error::invalid_argument(
                    "offset",
                    format!(
                        "bytes {}..{}+{len} lie past the end of shard {} ({size} bytes)",
                        chunk.offset, chunk.offset, chunk.shard
                    ),
                )
            })?;
        let mut received = s.received(upload.id, chunk.shard);
        let stream_base = u64::from(chunk.shard) * upload.shard_size;
        // Received ranges must hold the same bytes.
        for (start, stop) in received.overlaps(chunk.offset, end) {
            let stored = s
                .pages
                .read_vec(upload.id, stream_base + start, (stop - start) as usize);
            let sent =
                &chunk.bytes[(start - chunk.offset) as usize..(stop - chunk.offset) as usize];
            if !same_bytes(&stored, sent) {
                return Err(Error::invalid_argument(
                    "bytes",
                    format!(
                        "shard {} bytes {start}..{stop} were received before with different content",
                        chunk.shard
                    ),
                ));
            }
        }
        let gaps = received.gaps(chunk.offset, end);
        let mut next = received.clone();
        next.insert(chunk.offset, end);
        if next.ranges.len() > MAX_RANGES_PER_SHARD {
            return Err(Error::invalid_argument(
                "offset",
                format!(
                    "shard {} would hold more than {MAX_RANGES_PER_SHARD} separate ranges; send chunks in order",
                    chunk.shard
                ),
            ));
        }
        let mut frames = s.frames_allocated();
        let written = gaps.iter().try_for_each(|(start, stop)| {
            let bytes =
                &chunk.bytes[(start - chunk.offset) as usize..(stop - chunk.offset) as usize];
            s.pages
                .write(upload.id, stream_base + start, bytes, &mut frames)
        });
        // Frames taken before a failure stay mapped to the upload: count them either way.
        if frames != s.frames_allocated() {
            s.update_stored(|st| st.frames_allocated = frames);
        }
        written?;
        if !gaps.is_empty() {
            received = next;
            s.received
                .insert((upload.id, chunk.shard), ohms_ops::Cbor(received));
        }
        let mut upload = upload;
        upload.last_activity_nanos = now;
        s.put_upload(upload);
        Ok(())
    })
}

/// `a == b`, eight bytes at a time: a byte-wise `memcmp` costs some 15 instructions per byte in
/// wasm, this about 1.5.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails_equal = a8.remainder() == b8.remainder();
    tails_equal
        && a8.zip(b8).all(|(x, y)| {
            u64::from_ne_bytes(x.try_into().expect("8 bytes"))
                == u64::from_ne_bytes(y.try_into().expect("8 bytes"))
        })
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Receiving => "receiving chunks",
        Phase::Verifying => "being verified",
        Phase::Verified => "verified",
    }
}

/// Missing ranges per shard, so a client resumes by sending only those. The creator and
/// administrators.
pub fn upload_status(env: &impl Env, id: UploadId) -> Result<UploadStatus, Error> {
    let caller = access::user(env)?;
    let upload = read_state(|s| s.upload(id.0)).ok_or_else(|| upload_not_found(id))?;
    if caller != upload.creator && !access::is_admin(env, &caller) {
        return Err(Error::not_authorized(
            "only the upload's creator or an administrator may follow it",
        ));
    }
    Ok(read_state(|s| status_of(s, &upload)))
}

fn status_of(s: &RepoState, upload: &Upload) -> UploadStatus {
    let table = s
        .shard_tables
        .get(&upload.id)
        .map(|t| t.0)
        .unwrap_or_default();
    let mut shards = Vec::new();
    let mut shown_ranges = 0usize;
    let mut more_shards = 0u32;
    let mut received_bytes = 0u64;
    for (i, entry) in table.iter().enumerate() {
        let received = if upload.phase == Phase::Verified {
            Received {
                ranges: vec![(0, entry.size)],
                verified: true,
            }
        } else {
            s.received(upload.id, i as u32)
        };
        received_bytes += received.received_bytes();
        if received.verified && received.is_complete(entry.size) {
            continue;
        }
        let gaps = received.gaps(0, entry.size);
        if shown_ranges + gaps.len() > UploadStatus::MAX_RANGES_SHOWN {
            more_shards += 1;
            continue;
        }
        shown_ranges += gaps.len();
        shards.push(ShardStatus {
            shard: i as u32,
            size: entry.size,
            received_bytes: received.received_bytes(),
            missing: gaps
                .into_iter()
                .map(|(start, end)| ByteRange { start, end })
                .collect(),
            verified: received.verified,
        });
    }
    let timeout = s.config().upload_idle_timeout_seconds;
    UploadStatus {
        upload_id: UploadId(upload.id),
        model: upload.model.clone(),
        creator: upload.creator,
        phase: match upload.phase {
            Phase::Receiving => UploadPhase::Receiving,
            Phase::Verifying => UploadPhase::Verifying,
            Phase::Verified => UploadPhase::Verified,
        },
        total_bytes: upload.total_bytes,
        received_bytes,
        verified_bytes: upload.verified_bytes,
        shards,
        more_shards,
        last_error: upload.last_error.clone(),
        started_at_nanos: upload.started_at_nanos,
        last_activity_nanos: upload.last_activity_nanos,
        expires_at_nanos: upload
            .last_activity_nanos
            .saturating_add(timeout.saturating_mul(1_000_000_000)),
    }
}

/// Starts verifying every shard's size and sha256. Hashes up to `hash_bytes_per_message` in this
/// call; the rest continues on a timer (`Verifying`, followed with `upload_status`). A shard
/// that does not match is named in the error, and its bytes may be sent again.
pub fn finalize_upload(env: &impl Env, id: UploadId) -> Result<FinalizeOutcome, Error> {
    let writer = writer(env)?;
    let mut upload = owned_upload(&writer, id)?;
    match upload.phase {
        Phase::Verified => {
            return read_state(|s| {
                let model = s
                    .model(&upload.model)
                    .ok_or_else(|| model_not_found(&upload.model))?;
                Ok(FinalizeOutcome::Verified(Box::new(s.full_record(&model))))
            });
        }
        Phase::Verifying => {
            return Ok(FinalizeOutcome::Verifying {
                verified_bytes: upload.verified_bytes,
                total_bytes: upload.total_bytes,
            });
        }
        Phase::Receiving => {}
    }
    // Every byte must be there: a shard's size is checked by having received exactly its
    // declared bytes (chunks past its end are refused).
    let incomplete = read_state(|s| {
        let table = s
            .shard_tables
            .get(&upload.id)
            .map(|t| t.0)
            .unwrap_or_default();
        table.iter().enumerate().find_map(|(i, entry)| {
            let received = s.received(upload.id, i as u32);
            (!received.is_complete(entry.size)).then(|| (i, entry.size - received.received_bytes()))
        })
    });
    if let Some((shard, missing)) = incomplete {
        return Err(Error::invalid_state(format!(
            "shard {shard} still misses {missing} bytes; upload_status lists the missing ranges"
        )));
    }
    upload.phase = Phase::Verifying;
    upload.cursor = None;
    upload.verified_bytes = read_state(|s| verified_bytes(s, &upload));
    upload.last_error = None;
    upload.last_activity_nanos = env.now_nanos();
    mutate_state(|s| s.put_upload(upload));
    audit::record(env, "finalize_upload", format!("verifying upload {}", id.0));
    let budget = read_state(|s| s.config().hash_bytes_per_message);
    let step = verify_step(env, id.0, budget).inspect_err(|err| stop_verifying(id.0, err))?;
    match step {
        Step::Done => read_state(|s| {
            let upload = s.upload(id.0).ok_or_else(|| upload_not_found(id))?;
            let model = s
                .model(&upload.model)
                .ok_or_else(|| model_not_found(&upload.model))?;
            Ok(FinalizeOutcome::Verified(Box::new(s.full_record(&model))))
        }),
        Step::More {
            verified_bytes,
            total_bytes,
        } => Ok(FinalizeOutcome::Verifying {
            verified_bytes,
            total_bytes,
        }),
    }
}

fn verified_bytes(s: &RepoState, upload: &Upload) -> u64 {
    let table = s
        .shard_tables
        .get(&upload.id)
        .map(|t| t.0)
        .unwrap_or_default();
    table
        .iter()
        .enumerate()
        .filter(|(i, _)| s.received(upload.id, *i as u32).verified)
        .map(|(_, e)| e.size)
        .sum()
}

/// What a verification step left to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Done,
    More {
        verified_bytes: u64,
        total_bytes: u64,
    },
}

/// Hashes up to `budget` bytes of a verifying upload. At the end of a shard its sha256 is
/// compared with the manifest: a match marks it verified; a mismatch forgets the shard's bytes
/// (they may be sent again), puts the upload back to receiving and is returned as the error.
/// When every shard is verified, the manifest's root hash is checked again and the model
/// becomes `Verified`.
pub fn verify_step(env: &impl Env, id: u64, budget: u64) -> Result<Step, Error> {
    let now = env.now_nanos();
    let mut hashed = 0u64;
    loop {
        let outcome = mutate_state(|s| -> Result<Option<Step>, Error> {
            let mut upload = s.upload(id).ok_or_else(|| upload_not_found(UploadId(id)))?;
            if upload.phase != Phase::Verifying {
                return Err(Error::invalid_state("the upload is not being verified"));
            }
            let table = s.shard_tables.get(&id).map(|t| t.0).unwrap_or_default();
            let mut cursor = match upload.cursor.take() {
                Some(cursor) => cursor,
                None => {
                    // The first shard not verified yet.
                    match (0..table.len() as u32).find(|i| !s.received(id, *i).verified) {
                        Some(shard) => Cursor {
                            shard,
                            offset: 0,
                            sha: Sha256State::default(),
                        },
                        None => {
                            finish_verification(s, &mut upload, now)?;
                            return Ok(Some(Step::Done));
                        }
                    }
                }
            };
            let entry = &table[cursor.shard as usize];
            if hashed >= budget {
                upload.cursor = Some(cursor);
                let more = Step::More {
                    verified_bytes: upload.verified_bytes,
                    total_bytes: upload.total_bytes,
                };
                s.put_upload(upload);
                return Ok(Some(more));
            }
            let n = (entry.size - cursor.offset)
                .min(HASH_READ_BYTES)
                .min(budget - hashed);
            let buf = s.pages.read_vec(
                id,
                u64::from(cursor.shard) * upload.shard_size + cursor.offset,
                n as usize,
            );
            cursor.sha.update(&buf);
            cursor.offset += n;
            hashed += n;
            upload.verified_bytes += n;
            if cursor.offset == entry.size {
                let found = cursor.sha.clone().finish_hex();
                let key = (id, cursor.shard);
                let mut received = s.received(id, cursor.shard);
                if found == entry.sha256 {
                    received.verified = true;
                    s.received.insert(key, ohms_ops::Cbor(received));
                    upload.cursor = None;
                } else {
                    // Resumable: the shard's bytes are forgotten (its pages stay allocated and
                    // are overwritten by the bytes sent again).
                    s.received.remove(&key);
                    let reason = format!(
                        "shard {} does not match its sha256 in the manifest (expected {}, found {found}); send the shard's bytes again and finalize",
                        cursor.shard, entry.sha256
                    );
                    upload.phase = Phase::Receiving;
                    upload.cursor = None;
                    upload.verified_bytes = 0;
                    upload.last_error = Some(reason.clone());
                    upload.last_activity_nanos = now;
                    let shard = cursor.shard;
                    s.put_upload(upload);
                    return Err(Error::invalid_argument(format!("shards[{shard}]"), reason));
                }
            } else {
                upload.cursor = Some(cursor);
            }
            s.put_upload(upload);
            Ok(None)
        })?;
        if let Some(step) = outcome {
            return Ok(step);
        }
    }
}

fn finish_verification(s: &mut RepoState, upload: &mut Upload, now: u64) -> Result<(), Error> {
    let mut model = s
        .model(&upload.model)
        .ok_or_else(|| model_not_found(&upload.model))?;
    let manifest = s.manifests.get(&upload.id).unwrap_or_default();
    let root = {
        let mut sha = Sha256State::default();
        sha.update(&manifest);
        sha.finish_hex()
    };
    if root != model.record.root_hash {
        return Err(Error::internal(format!(
            "the stored manifest of upload {} no longer hashes to its root hash",
            upload.id
        )));
    }
    model.record.state = ModelState::Verified;
    model.record.verified_at_nanos = Some(now);
    model.record.updated_at_nanos = now;
    model.upload = None;
    s.put_model(model);
    for shard in 0..upload.shard_count {
        s.received.remove(&(upload.id, shard));
    }
    upload.phase = Phase::Verified;
    upload.cursor = None;
    upload.verified_bytes = upload.total_bytes;
    upload.last_error = None;
    upload.last_activity_nanos = now;
    s.put_upload(upload.clone());
    Ok(())
}

/// A shard mismatch has put the upload back to receiving already; any other failure does so
/// here, so the timer never spins on an upload it cannot finish.
fn stop_verifying(id: u64, err: &Error) {
    mutate_state(|s| {
        if let Some(mut upload) = s.upload(id).filter(|u| u.phase == Phase::Verifying) {
            upload.phase = Phase::Receiving;
            upload.cursor = None;
            upload.last_error = Some(err.to_string());
            s.put_upload(upload);
        }
    });
}

/// Uploads being verified, for the timer that continues them.
pub fn verifying_uploads() -> Vec<u64> {
    read_state(|s| {
        s.uploads
            .iter()
            .filter(|e| e.value().0.phase == Phase::Verifying)
            .map(|e| *e.key())
            .collect()
    })
}

/// One timer message's work: a budget of hashing on the first upload being verified. Returns
/// whether work remains. A mismatch is recorded in the upload (`last_error`).
pub fn continue_verification(env: &impl Env) -> bool {
    let Some(id) = verifying_uploads().into_iter().next() else {
        return false;
    };
    let budget = read_state(|s| s.config().hash_bytes_per_message);
    match verify_step(env, id, budget) {
        Ok(Step::More { .. }) => {}
        Ok(Step::Done) => audit::record(env, "verify", format!("upload {id} verified")),
        Err(err) => {
            stop_verifying(id, &err);
            audit::record(env, "verify", format!("upload {id} failed: {err}"));
        }
    }
    !verifying_uploads().is_empty()
}

/// Stops an upload and frees its bytes. Its creator or an administrator.
pub fn abort_upload(env: &impl Env, id: UploadId) -> Result<(), Error> {
    let writer = writer(env)?;
    let upload = owned_upload(&writer, id)?;
    if upload.phase == Phase::Verified {
        return Err(Error::invalid_state(
            "the upload is complete; delete the model instead",
        ));
    }
    mutate_state(|s| remove_upload(s, &upload));
    audit::record(
        env,
        "abort_upload",
        format!("aborted upload {} of model {}", id.0, upload.model),
    );
    Ok(())
}

/// Forgets an unfinished upload: its model record, received ranges, bytes and reservation.
fn remove_upload(s: &mut RepoState, upload: &Upload) {
    s.uploads.remove(&upload.id);
    for shard in 0..upload.shard_count {
        s.received.remove(&(upload.id, shard));
    }
    if upload.phase != Phase::Verified {
        if s.model(&upload.model)
            .is_some_and(|m| m.upload == Some(upload.id))
        {
            s.models.remove(&ModelKey::from(&upload.model));
        }
        s.drop_blob(upload.id);
        s.update_stored(|st| {
            st.bytes_reserved = st.bytes_reserved.saturating_sub(upload.total_bytes)
        });
    }
}

/// Aborts uploads idle longer than the configured timeout and forgets finished ones as old.
/// Run by the expiry timer; returns the ids removed.
pub fn expire_idle_uploads(env: &impl Env) -> Vec<u64> {
    let now = env.now_nanos();
    let timeout =
        read_state(|s| s.config().upload_idle_timeout_seconds).saturating_mul(1_000_000_000);
    let idle: Vec<Upload> = read_state(|s| {
        s.uploads
            .iter()
            .map(|e| e.value().0)
            .filter(|u| u.phase != Phase::Verifying)
            .filter(|u| now.saturating_sub(u.last_activity_nanos) > timeout)
            .collect()
    });
    for upload in &idle {
        mutate_state(|s| remove_upload(s, upload));
        if upload.phase != Phase::Verified {
            audit::record(
                env,
                "expire_upload",
                format!(
                    "upload {} of model {} expired after being idle",
                    upload.id, upload.model
                ),
            );
        }
    }
    idle.iter().map(|u| u.id).collect()
}

// ---------------------------------------------------------------------------------------------
// Life cycle

fn change_state(
    env: &impl Env,
    id: &ModelId,
    method: &str,
    admin_only: bool,
    change: impl FnOnce(&mut ModelRecord, u64) -> Result<(), Error>,
) -> Result<ModelRecord, Error> {
    let writer = writer(env)?;
    if admin_only && !writer.is_admin() {
        return Err(Error::not_authorized(format!(
            "only administrators may {method} a model"
        )));
    }
    let id = valid_model_id(id, "id")?;
    let now = env.now_nanos();
    let record = mutate_state(|s| {
        let mut model = s.model(&id).ok_or_else(|| model_not_found(&id))?;
        writer.owns(&model.record.creator)?;
        let before = model.record.state;
        change(&mut model.record, now)?;
        model.record.updated_at_nanos = now;
        s.put_model(model.clone());
        Ok::<_, Error>((s.full_record(&model), before))
    })?;
    audit::record(
        env,
        method,
        format!("model {id}: {:?} → {:?}", record.1, record.0.state),
    );
    Ok(record.0)
}

/// `Verified` or `Deprecated` → `Active`. Administrators only.
pub fn activate(env: &impl Env, id: &ModelId) -> Result<ModelRecord, Error> {
    change_state(env, id, "activate", true, |record, now| {
        match record.state {
            ModelState::Verified | ModelState::Deprecated => {
                record.state = ModelState::Active;
                record.activated_at_nanos = Some(now);
                Ok(())
            }
            state => Err(Error::invalid_state(format!(
                "a model in state {state:?} cannot be activated (Verified or Deprecated only)"
            ))),
        }
    })
}

/// `Active` → `Deprecated`.
pub fn deprecate(env: &impl Env, id: &ModelId) -> Result<ModelRecord, Error> {
    change_state(env, id, "deprecate", false, |record, now| {
        match record.state {
            ModelState::Active => {
                record.state = ModelState::Deprecated;
                record.deprecated_at_nanos = Some(now);
                Ok(())
            }
            state => Err(Error::invalid_state(format!(
                "a model in state {state:?} cannot be deprecated (Active only)"
            ))),
        }
    })
}

/// Deletes a `Verified` or `Deprecated` model and frees its bytes for reuse.
pub fn delete_model(env: &impl Env, id: &ModelId) -> Result<(), Error> {
    let writer = writer(env)?;
    let id = valid_model_id(id, "id")?;
    let (model, frames) = mutate_state(|s| {
        let model = s.model(&id).ok_or_else(|| model_not_found(&id))?;
        writer.owns(&model.record.creator)?;
        match model.record.state {
            ModelState::Verified | ModelState::Deprecated => {}
            ModelState::Active => {
                return Err(Error::invalid_state(
                    "an active model is in use: deprecate it first",
                ));
            }
            ModelState::Uploading => {
                return Err(Error::invalid_state(
                    "the model is still uploading: abort its upload instead",
                ));
            }
        }
        let key = ModelKey::from(&id);
        s.models.remove(&key);
        s.usage.remove(&key);
        let frames = s.drop_blob(model.blob);
        s.update_stored(|st| {
            st.bytes_reserved = st
                .bytes_reserved
                .saturating_sub(model.record.compressed_bytes)
        });
        // The finished upload's record goes with it.
        s.uploads.remove(&model.blob);
        Ok::<_, Error>((model, frames))
    })?;
    audit::record(
        env,
        "delete_model",
        format!(
            "deleted model {id} ({} bytes, {frames} pages freed)",
            model.record.compressed_bytes
        ),
    );
    Ok(())
}

/// Adds a registered agent canister's reported tokens to the model's usage.
pub fn record_usage(env: &impl Env, id: &ModelId, tokens: u64) -> Result<(), Error> {
    let caller = access::user(env)?;
    if !read_state(|s| s.agents.contains_key(&caller)) {
        return Err(Error::not_authorized(format!(
            "{caller} is not a registered agent canister"
        )));
    }
    if tokens > MAX_USAGE_TOKENS {
        return Err(Error::invalid_argument(
            "tokens",
            format!("at most {MAX_USAGE_TOKENS} per report"),
        ));
    }
    let id = valid_model_id(id, "model")?;
    mutate_state(|s| {
        let model = s.model(&id).ok_or_else(|| model_not_found(&id))?;
        if !matches!(
            model.record.state,
            ModelState::Active | ModelState::Deprecated
        ) {
            return Err(Error::invalid_state("the model is not in service"));
        }
        let key = ModelKey::from(&id);
        let (t, c) = s.usage.get(&key).unwrap_or_default();
        s.usage
            .insert(key, (t.saturating_add(tokens), c.saturating_add(1)));
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Reading

fn summary(s: &RepoState, model: &StoredModel) -> ModelSummary {
    let r = &model.record;
    let (usage_tokens, _) = s.usage.get(&ModelKey::from(&r.id)).unwrap_or_default();
    let shard_count = s
        .shard_tables
        .get(&model.blob)
        .map_or(0, |t| t.0.len() as u32);
    ModelSummary {
        id: r.id.clone(),
        name: r.name.clone(),
        version: r.version.clone(),
        description: r.description.clone(),
        capabilities: r.capabilities.clone(),
        tags: r.tags.clone(),
        family: r.architecture.family.clone(),
        mode: r.novaq.mode.clone(),
        bits_per_weight: r.novaq.bits_per_weight,
        parameters: r.novaq.parameters,
        compressed_bytes: r.compressed_bytes,
        shard_count,
        root_hash: r.root_hash.clone(),
        min_tier: r.min_tier,
        creator: r.creator,
        state: r.state,
        created_at_nanos: r.created_at_nanos,
        updated_at_nanos: r.updated_at_nanos,
        usage_tokens,
    }
}

/// A model's record with its shard table. Public.
pub fn get_model(id: &ModelId) -> Result<ModelRecord, Error> {
    let id = valid_model_id(id, "id")?;
    read_state(|s| {
        let model = s.model(&id).ok_or_else(|| model_not_found(&id))?;
        Ok(s.full_record(&model))
    })
}

fn check_filter(filter: &ModelFilter) -> Result<(), Error> {
    if filter.capabilities.len() > validate::MAX_CAPABILITIES {
        return Err(Error::invalid_argument(
            "filter.capabilities",
            format!("at most {}", validate::MAX_CAPABILITIES),
        ));
    }
    if let Some(tag) = &filter.tag {
        validate::tag_text(tag, "filter.tag")?;
    }
    Ok(())
}

/// Models matching the filter, in id order, a page at a time (at most 100). Public.
pub fn list_models(filter: ModelFilter, page: Page) -> Result<Paged<ModelSummary>, Error> {
    check_filter(&filter)?;
    Ok(read_state(|s| {
        let matches = |m: &StoredModel| {
            let r = &m.record;
            filter.state.is_none_or(|state| r.state == state)
                && filter
                    .capabilities
                    .iter()
                    .all(|c| r.capabilities.contains(c))
                && filter.tag.as_ref().is_none_or(|t| r.tags.contains(t))
                && filter.max_tier.is_none_or(|tier| r.min_tier <= tier)
        };
        let unfiltered = filter == ModelFilter::default();
        let total = if unfiltered {
            s.models.len()
        } else {
            s.models.values().filter(|m| matches(&m.0)).count() as u64
        };
        let range = page.range(total);
        let items = s
            .models
            .values()
            .map(|m| m.0)
            .filter(|m| unfiltered || matches(m))
            .skip(range.start as usize)
            .take((range.end - range.start) as usize)
            .map(|m| summary(s, &m))
            .collect();
        Paged::new(items, range, total)
    }))
}

/// Active models usable at `max_tier` that have at least one of `capabilities` (every active
/// model when none is given), best first: most capabilities matched, then fewer missing tiers
/// of headroom (a lower minimum tier), then most used, then smallest. Each with the reason.
pub fn find_models(
    capabilities: Vec<Capability>,
    max_tier: Tier,
) -> Result<Vec<ModelMatch>, Error> {
    if capabilities.len() > validate::MAX_CAPABILITIES {
        return Err(Error::invalid_argument(
            "capabilities",
            format!("at most {}", validate::MAX_CAPABILITIES),
        ));
    }
    let mut wanted = capabilities;
    wanted.sort();
    wanted.dedup();
    let mut found: Vec<(ModelMatch, u64, u64)> = read_state(|s| {
        s.models
            .values()
            .map(|m| m.0)
            .filter(|m| m.record.state == ModelState::Active && m.record.min_tier <= max_tier)
            .filter_map(|m| {
                let r = &m.record;
                let (matched, missing): (Vec<Capability>, Vec<Capability>) =
                    wanted.iter().partition(|c| r.capabilities.contains(c));
                if !wanted.is_empty() && matched.is_empty() {
                    return None;
                }
                let summary = summary(s, &m);
                let score =
                    matched.len() as u32 * 100 + (Tier::Enterprise as u32 - r.min_tier as u32) * 10;
                let reason = if wanted.is_empty() {
                    format!(
                        "active and available from tier {:?} (no capability asked for)",
                        r.min_tier
                    )
                } else {
                    let names = |cs: &[Capability]| {
                        cs.iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let mut reason = format!(
                        "has {} of the {} capabilities asked for ({})",
                        matched.len(),
                        wanted.len(),
                        names(&matched)
                    );
                    if !missing.is_empty() {
                        reason.push_str(&format!("; lacks {}", names(&missing)));
                    }
                    reason.push_str(&format!(
                        "; available from tier {:?}; {} tokens served",
                        r.min_tier, summary.usage_tokens
                    ));
                    reason
                };
                let usage = summary.usage_tokens;
                let size = r.compressed_bytes;
                Some((
                    ModelMatch {
                        model: summary,
                        matched,
                        missing,
                        score,
                        reason,
                    },
                    usage,
                    size,
                ))
            })
            .collect()
    });
    found.sort_by(|a, b| {
        b.0.score
            .cmp(&a.0.score)
            .then(b.1.cmp(&a.1))
            .then(a.2.cmp(&b.2))
            .then(a.0.model.id.cmp(&b.0.model.id))
    });
    Ok(found
        .into_iter()
        .take(MAX_MATCHES)
        .map(|(m, _, _)| m)
        .collect())
}

/// A served model: any finished one for administrators, active or deprecated for agents.
fn served_model(env: &impl Env, id: &ModelId) -> Result<StoredModel, Error> {
    let caller = reader(env)?;
    let id = valid_model_id(id, "model")?;
    let model = read_state(|s| s.model(&id)).ok_or_else(|| model_not_found(&id))?;
    let admin = access::is_admin(env, &caller);
    let allowed = match model.record.state {
        ModelState::Active | ModelState::Deprecated => true,
        ModelState::Verified => admin,
        ModelState::Uploading => false,
    };
    if !allowed {
        return Err(Error::invalid_state(format!(
            "model {id} is {:?}: its bytes are not served",
            model.record.state
        )));
    }
    Ok(model)
}

/// The manifest's exact bytes. Administrators, sibling canisters and registered agent canisters.
pub fn get_manifest(env: &impl Env, id: &ModelId) -> Result<Vec<u8>, Error> {
    let model = served_model(env, id)?;
    read_state(|s| s.manifests.get(&model.blob))
        .ok_or_else(|| Error::internal("the model's manifest is missing"))
}

/// Where the bytes `get_chunk` asks for lie: `len` bytes at `offset` of blob `blob`'s stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    pub blob: u64,
    pub offset: u64,
    pub len: usize,
}

/// Checks a chunk request (caller, model state, shard, range) and locates its bytes.
/// Administrators, sibling canisters and registered agent canisters.
pub fn locate_chunk(env: &impl Env, request: ChunkRequest) -> Result<ChunkLocation, Error> {
    if request.len == 0 || request.len > MAX_CHUNK_BYTES {
        return Err(Error::invalid_argument(
            "len",
            format!(
                "1 to {MAX_CHUNK_BYTES} bytes per chunk, got {}",
                request.len
            ),
        ));
    }
    let model = served_model(env, &request.model)?;
    let table = read_state(|s| s.shard_tables.get(&model.blob).map(|t| t.0)).unwrap_or_default();
    let entry = table.get(request.shard as usize).ok_or_else(|| {
        Error::invalid_argument(
            "shard",
            format!(
                "shard {} does not exist; the model has {}",
                request.shard,
                table.len()
            ),
        )
    })?;
    request
        .offset
        .checked_add(request.len)
        .filter(|end| *end <= entry.size)
        .ok_or_else(|| {
            Error::invalid_argument(
                "offset",
                format!(
                    "bytes {}..+{} lie past the end of shard {} ({} bytes)",
                    request.offset, request.len, request.shard, entry.size
                ),
            )
        })?;
    Ok(ChunkLocation {
        blob: model.blob,
        offset: u64::from(request.shard) * model.record.shard_size + request.offset,
        len: request.len as usize,
    })
}

/// `len` (≤ 1.9 MiB) bytes of a shard. Administrators and registered agent canisters.
pub fn get_chunk(env: &impl Env, request: ChunkRequest) -> Result<Vec<u8>, Error> {
    let at = locate_chunk(env, request)?;
    Ok(read_state(|s| s.pages.read_vec(at.blob, at.offset, at.len)))
}

/// Appends the located bytes to `out`.
pub fn read_chunk_into(at: ChunkLocation, out: &mut Vec<u8>) {
    read_state(|s| s.pages.read_append(at.blob, at.offset, at.len, out));
}

pub fn stats() -> RepoStats {
    read_state(|s| {
        let mut counts = [0u64; 4];
        for m in s.models.values() {
            counts[m.0.record.state as usize] += 1;
        }
        let stored = s.stored();
        let free = s.pages.free_frames();
        RepoStats {
            page_bytes: FRAME_BYTES,
            bytes_used: (u64::from(stored.frames_allocated) - free) * FRAME_BYTES,
            bytes_free: free * FRAME_BYTES,
            bytes_reserved: stored.bytes_reserved,
            models_uploading: counts[0],
            models_verified: counts[1],
            models_active: counts[2],
            models_deprecated: counts[3],
            uploads_in_progress: s
                .uploads
                .values()
                .filter(|u| u.0.phase != Phase::Verified)
                .count() as u64,
            uploaders: s.uploaders.len(),
            agent_canisters: s.agents.len(),
        }
    })
}
