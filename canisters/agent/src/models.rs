//! Models: fetched from the repository chunk by chunk (a bounded number of calls in flight,
//! each reply its own message), every shard checked against its sha256 and the manifest
//! against the repository's root hash, the bytes kept in stable memory; and the decoded
//! working set on the heap, rebuilt lazily (after an upgrade, or when another model is needed).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use novaq::format::{Manifest, sha256_hex};
use novaq::kernel::QuantizedMatrix;
use ohms_llm::{Model, Tokenizer};
use ohms_types::{
    ChunkRequest, Error, LoadedModel, MAX_CHUNK_BYTES, ModelId, ModelLoadState, ModelRecord,
    ModelState,
};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::state::{ModelEntry, chunk_key, mutate_state, read_state};

/// Chunk calls in flight at once (per canister).
const IN_FLIGHT: usize = 4;
/// Bytes asked for per `get_chunk` call.
const CHUNK_BYTES: u64 = MAX_CHUNK_BYTES;
/// Shards that fail verification this often make the load fail.
const MAX_FAILURES: u32 = 3;
/// Wait before retrying after a failed call.
const RETRY_AFTER: Duration = Duration::from_secs(5);

thread_local! {
    /// Chunks being fetched: (model, shard, offset).
    static CLAIMS: RefCell<BTreeSet<(String, u32, u64)>> = RefCell::default();
    /// Models whose manifest is being fetched.
    static MANIFESTS: RefCell<BTreeSet<String>> = RefCell::default();
    static WORKING: RefCell<Option<Working>> = const { RefCell::new(None) };
}

/// A model decoded for inference, with the generation whose tokens its KV cache holds.
pub struct Working {
    pub model: ModelId,
    pub llm: Model<QuantizedMatrix>,
    pub tokenizer: Tokenizer,
    /// The longest vocabulary entry in bytes: a prompt of `n` bytes is at least
    /// `n / max_token_bytes` tokens, which refuses an overlong prompt without tokenizing it.
    pub max_token_bytes: usize,
    /// The run in progress and its generation as the cache holds it (the stable copy loses
    /// how much of the sequence the cache holds, and would re-read it every message).
    pub live: Option<(u64, ohms_llm::generate::Generation)>,
}

/// The model's load state, if the canister holds or fetches it.
pub fn state(model: &ModelId) -> Option<ModelLoadState> {
    read_state(|s| s.model(model.as_str())).map(|e| e.info.state)
}

/// The model's load state, starting a fetch if the canister does not hold it yet, and again
/// if an earlier fetch failed (the shards verified then are kept).
pub fn ensure(model: &ModelId) -> ModelLoadState {
    if let Some(mut entry) = read_state(|s| s.model(model.as_str())) {
        if matches!(entry.info.state, ModelLoadState::Failed { .. }) {
            entry.info.state = ModelLoadState::Fetching;
            entry.failures = 0;
            mutate_state(|s| s.put_model(entry.clone()));
        }
        if entry.info.state == ModelLoadState::Fetching {
            pump(model.clone());
        }
        return entry.info.state;
    }
    mutate_state(|s| {
        let slot = s.update_config(|c| {
            c.next_model_slot += 1;
            c.next_model_slot - 1
        });
        s.put_model(ModelEntry {
            info: LoadedModel {
                model: model.clone(),
                state: ModelLoadState::Fetching,
                root_hash: String::new(),
                shards_total: 0,
                shards_verified: 0,
                bytes_total: 0,
                bytes_received: 0,
                load_instructions: 0,
            },
            slot,
            manifest: Vec::new(),
            shards: Vec::new(),
            received: Vec::new(),
            verified: Vec::new(),
            failures: 0,
        })
    });
    pump(model.clone());
    ModelLoadState::Fetching
}

/// Continues every fetch in progress (after an upgrade, or a failed call).
pub fn resume_all() {
    let fetching: Vec<ModelId> = read_state(|s| {
        s.models
            .iter()
            .map(|e| e.value().0)
            .filter(|m| m.info.state == ModelLoadState::Fetching)
            .map(|m| m.info.model)
            .collect()
    });
    for model in fetching {
        pump(model);
    }
}

/// Starts as many chunk calls as the in-flight bound allows (or the manifest call first).
fn pump(model: ModelId) {
    let Some(entry) = read_state(|s| s.model(model.as_str())) else {
        return;
    };
    if entry.info.state != ModelLoadState::Fetching {
        return;
    }
    if entry.manifest.is_empty() {
        let started = MANIFESTS.with(|m| m.borrow_mut().insert(model.as_str().to_string()));
        if started {
            ic_cdk::futures::spawn(async move {
                let claim = ManifestClaim(model.as_str().to_string());
                let outcome = fetch_manifest(&model).await;
                drop(claim);
                match outcome {
                    Ok(()) => pump(model),
                    Err(err) => retry_or_fail(&model, err),
                }
            });
        }
        return;
    }
    for (shard, offset, len) in missing_chunks(&entry) {
        let key = (model.as_str().to_string(), shard, offset);
        let claimed = CLAIMS.with(|c| {
            let mut claims = c.borrow_mut();
            if claims.len() >= IN_FLIGHT || claims.contains(&key) {
                return false;
            }
            claims.insert(key.clone())
        });
        if !claimed {
            continue;
        }
        let model = model.clone();
        ic_cdk::futures::spawn(async move {
            let claim = Claim(key);
            let outcome = fetch_chunk(&model, shard, offset, len).await;
            drop(claim);
            match outcome {
                Ok(()) => pump(model),
                Err(err) => retry_or_fail(&model, err),
            }
        });
    }
}

/// A chunk being fetched; released however the fetch ends (a trap in its callback included:
/// ic-cdk drops the task's future then).
struct Claim((String, u32, u64));

impl Drop for Claim {
    fn drop(&mut self) {
        CLAIMS.with(|c| c.borrow_mut().remove(&self.0));
    }
}

/// A manifest being fetched.
struct ManifestClaim(String);

impl Drop for ManifestClaim {
    fn drop(&mut self) {
        MANIFESTS.with(|m| m.borrow_mut().remove(&self.0));
    }
}

/// Chunks not stored yet, in order: (shard, offset, length).
fn missing_chunks(entry: &ModelEntry) -> Vec<(u32, u64, u64)> {
    let mut missing = Vec::new();
    for (shard, (size, _)) in entry.shards.iter().enumerate() {
        if entry.verified[shard] {
            continue;
        }
        let mut offset = 0;
        while offset < *size {
            let len = CHUNK_BYTES.min(size - offset);
            let key = chunk_key(entry.slot, shard as u32, offset);
            if !read_state(|s| s.chunks.contains_key(&key)) {
                missing.push((shard as u32, offset, len));
                if missing.len() >= IN_FLIGHT {
                    return missing;
                }
            }
            offset += len;
        }
    }
    missing
}

async fn fetch_manifest(model: &ModelId) -> Result<(), Error> {
    let repo = ohms_ops::calls::sibling("model_repo")?;
    let record: ModelRecord = ohms_ops::calls::call(repo, "get_model", (model,)).await?;
    if record.state != ModelState::Active {
        return Err(Error::invalid_state(format!(
            "model {model} is {:?}, not active",
            record.state
        )));
    }
    let bytes: ByteBuf = ohms_ops::calls::call(repo, "get_manifest", (model,)).await?;
    let found = sha256_hex(&bytes);
    if found != record.root_hash {
        return Err(Error::invalid_state(format!(
            "the manifest of {model} hashes to {found}, the repository's root hash is {}",
            record.root_hash
        )));
    }
    let manifest = Manifest::from_cbor(&bytes)
        .map_err(|err| Error::invalid_state(format!("manifest of {model}: {err}")))?;
    let shards: Vec<(u64, String)> = manifest
        .shards
        .iter()
        .map(|s| (s.size, s.sha256.clone()))
        .collect();
    let instructions = ic_cdk::api::performance_counter(0);
    mutate_state(|s| {
        let Some(mut entry) = s.model(model.as_str()) else {
            return;
        };
        entry.info.root_hash = record.root_hash.clone();
        entry.info.shards_total = shards.len() as u32;
        entry.info.bytes_total = shards.iter().map(|(size, _)| size).sum();
        entry.info.load_instructions += instructions;
        entry.received = vec![0; shards.len()];
        // An empty shard has nothing to fetch; its hash is still checked.
        entry.verified = shards
            .iter()
            .map(|(size, sha)| *size == 0 && *sha == sha256_hex(&[]))
            .collect();
        entry.info.shards_verified = entry.verified.iter().filter(|v| **v).count() as u32;
        entry.shards = shards;
        entry.manifest = bytes.into_vec();
        s.put_model(entry);
    });
    finish_if_complete(model);
    Ok(())
}

async fn fetch_chunk(model: &ModelId, shard: u32, offset: u64, len: u64) -> Result<(), Error> {
    let repo = ohms_ops::calls::sibling("model_repo")?;
    let request = ChunkRequest {
        model: model.clone(),
        shard,
        offset,
        len,
    };
    let bytes: ByteBuf = ohms_ops::calls::call(repo, "get_chunk", (request,)).await?;
    if bytes.len() as u64 != len {
        return Err(Error::invalid_state(format!(
            "the repository sent {} bytes of shard {shard} at {offset}, {len} were asked for",
            bytes.len()
        )));
    }
    mutate_state(|s| {
        let Some(mut entry) = s.model(model.as_str()) else {
            return;
        };
        let key = chunk_key(entry.slot, shard, offset);
        if entry.info.state != ModelLoadState::Fetching || s.chunks.contains_key(&key) {
            return;
        }
        s.chunks.insert(key, bytes.into_vec());
        entry.received[shard as usize] += len;
        entry.info.bytes_received += len;
        if entry.received[shard as usize] == entry.shards[shard as usize].0 {
            verify_shard(s, &mut entry, shard);
        }
        entry.info.load_instructions += ic_cdk::api::performance_counter(0);
        s.put_model(entry);
    });
    finish_if_complete(model);
    Ok(())
}

/// Hashes a complete shard; a mismatch drops its bytes to fetch again (or fails the load).
fn verify_shard(s: &mut crate::state::State, entry: &mut ModelEntry, shard: u32) {
    let (size, expected) = entry.shards[shard as usize].clone();
    let mut hasher = Sha256::new();
    let range = chunk_key(entry.slot, shard, 0)..=chunk_key(entry.slot, shard, u64::MAX);
    for chunk in s.chunks.range(range.clone()) {
        hasher.update(chunk.value());
    }
    if hex::encode(hasher.finalize()) == expected {
        entry.verified[shard as usize] = true;
        entry.info.shards_verified += 1;
        return;
    }
    let keys: Vec<(u64, u64)> = s.chunks.range(range).map(|c| *c.key()).collect();
    for key in keys {
        s.chunks.remove(&key);
    }
    entry.received[shard as usize] = 0;
    entry.info.bytes_received -= size;
    entry.failures += 1;
    if entry.failures >= MAX_FAILURES {
        entry.info.state = ModelLoadState::Failed {
            reason: format!(
                "shard {shard} did not match its sha256 {MAX_FAILURES} times; the repository's copy is corrupt"
            ),
        };
    }
}

/// Marks the model ready once every shard is verified, and wakes the runs waiting for it.
fn finish_if_complete(model: &ModelId) {
    let ready = mutate_state(|s| {
        let Some(mut entry) = s.model(model.as_str()) else {
            return false;
        };
        if entry.info.state != ModelLoadState::Fetching
            || entry.manifest.is_empty()
            || entry.verified.iter().any(|v| !v)
        {
            return false;
        }
        entry.info.state = ModelLoadState::Ready;
        s.put_model(entry);
        true
    });
    if ready {
        crate::runs::wake();
    }
}

fn retry_or_fail(model: &ModelId, err: Error) {
    // A refusal by the repository (unknown or inactive model, not registered, corrupt bytes)
    // will not change by retrying; a failed call, a paused or busy repository may.
    let permanent = !matches!(
        err,
        Error::CallFailed { .. } | Error::Paused { .. } | Error::Busy | Error::Internal { .. }
    );
    if permanent {
        mutate_state(|s| {
            if let Some(mut entry) = s.model(model.as_str()) {
                entry.info.state = ModelLoadState::Failed {
                    reason: err.to_string(),
                };
                s.put_model(entry);
            }
        });
        crate::runs::wake();
        return;
    }
    let model = model.clone();
    ic_cdk_timers::set_timer(RETRY_AFTER, async move { pump(model) });
}

/// Runs `f` on the decoded model, decoding it from stable memory first if the heap holds
/// another one (or none, after an upgrade).
pub fn with_working<R>(model: &ModelId, f: impl FnOnce(&mut Working) -> R) -> Result<R, Error> {
    WORKING.with(|w| {
        let mut working = w.borrow_mut();
        if working.as_ref().map(|w| &w.model) != Some(model) {
            *working = None;
            *working = Some(decode(model)?);
        }
        Ok(f(working.as_mut().expect("decoded above")))
    })
}

/// Runs `f` on the decoded model only if the heap holds it already (no decoding).
pub fn with_decoded<R>(model: &ModelId, f: impl FnOnce(&mut Working) -> R) -> Option<R> {
    WORKING.with(|w| {
        let mut working = w.borrow_mut();
        working.as_mut().filter(|w| &w.model == model).map(f)
    })
}

fn decode(model: &ModelId) -> Result<Working, Error> {
    let entry = read_state(|s| s.model(model.as_str()))
        .filter(|e| e.info.state == ModelLoadState::Ready)
        .ok_or_else(|| Error::invalid_state(format!("model {model} is not loaded")))?;
    let manifest = Manifest::from_cbor(&entry.manifest)
        .map_err(|err| Error::internal(format!("stored manifest of {model}: {err}")))?;
    let shards: Vec<Vec<u8>> = read_state(|s| {
        (0..entry.shards.len() as u32)
            .map(|shard| {
                let range =
                    chunk_key(entry.slot, shard, 0)..=chunk_key(entry.slot, shard, u64::MAX);
                let mut bytes = Vec::with_capacity(entry.shards[shard as usize].0 as usize);
                for chunk in s.chunks.range(range) {
                    bytes.extend_from_slice(&chunk.value());
                }
                bytes
            })
            .collect()
    });
    let spec = manifest.tokenizer.as_ref().ok_or_else(|| {
        Error::invalid_state(format!(
            "model {model} carries no tokenizer: it cannot read prompts"
        ))
    })?;
    let tokenizer = Tokenizer::from_spec(spec)
        .map_err(|err| Error::invalid_state(format!("tokenizer of {model}: {err}")))?;
    let max_token_bytes = (0..tokenizer.vocab_size() as u32)
        .map(|id| tokenizer.token_bytes(id).len())
        .max()
        .unwrap_or(1)
        .max(1);
    let llm = ohms_llm::load::load_novaq(&manifest, shards.iter().map(Vec::as_slice).collect())
        .map_err(|err| Error::invalid_state(format!("model {model}: {err}")))?;
    Ok(Working {
        model: model.clone(),
        llm,
        tokenizer,
        max_token_bytes,
        live: None,
    })
}

/// Every model the canister holds.
pub fn loaded() -> Vec<LoadedModel> {
    read_state(|s| s.models.iter().map(|e| e.value().0.info).collect())
}
