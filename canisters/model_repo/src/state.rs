//! The repository's stable state, reached only through `read_state` / `mutate_state`, and the
//! page store that holds model bytes.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::Principal;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory as StableMemory, StableBTreeMap, StableCell, Storable};
use ohms_ops::Cbor;
use ohms_types::{Error, ModelId, ModelRecord, RepoConfig, ShardInfo};
use serde::{Deserialize, Serialize};

use crate::memory::{self, Memory};
use crate::sha::Sha256State;

/// Size of a page of a model's byte stream, and of a frame of the frame memory that holds one.
/// 1 MiB: a 1.9 MiB chunk touches at most 3 pages (3 page-table look-ups), a 5 GB model has
/// 5,000 pages (its deletion fits easily in one message), and at most one partly filled page per
/// model is wasted (< 1 MiB; 1.3 % of a 75 MB model, nothing for GB models).
pub const FRAME_BYTES: u64 = 1 << 20;
const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// Limits until an administrator sets others.
pub fn default_config() -> RepoConfig {
    RepoConfig {
        max_model_bytes: 8 << 30,
        max_shards: 4_096,
        max_manifest_bytes: ohms_types::MAX_CHUNK_BYTES,
        max_total_bytes: 400 << 30,
        max_uploads: 16,
        upload_idle_timeout_seconds: 24 * 3600,
        hash_bytes_per_message: 32 << 20,
    }
}

/// The configuration cell: limits and counters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub config: RepoConfig,
    /// The next upload id (also the blob id of its bytes).
    pub next_upload_id: u64,
    /// Frames `0 .. frames_allocated` exist in the frame memory (in use or free).
    pub frames_allocated: u32,
    /// Model bytes of all uploads and models, what `max_total_bytes` limits.
    pub bytes_reserved: u64,
}

impl Default for Stored {
    fn default() -> Self {
        Self {
            config: default_config(),
            next_upload_id: 1,
            frames_allocated: 0,
            bytes_reserved: 0,
        }
    }
}

/// A model as stored: the record without shard table and usage (they live in their own maps,
/// so `record_usage` does not rewrite the record) and the id of the blob holding its bytes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StoredModel {
    pub blob: u64,
    /// The upload that is filling it, while `Uploading`.
    #[serde(default)]
    pub upload: Option<u64>,
    pub record: ModelRecord,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Receiving,
    Verifying,
    Verified,
}

/// Where verification stands: hashing shard `shard`, `offset` bytes in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub shard: u32,
    pub offset: u64,
    pub sha: Sha256State,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub id: u64,
    pub model: ModelId,
    pub creator: Principal,
    pub total_bytes: u64,
    pub shard_size: u64,
    pub shard_count: u32,
    pub phase: Phase,
    pub cursor: Option<Cursor>,
    pub verified_bytes: u64,
    pub last_error: Option<String>,
    pub started_at_nanos: u64,
    pub last_activity_nanos: u64,
}

/// What one shard of an upload has received: sorted, disjoint, non-adjacent ranges.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub ranges: Vec<(u64, u64)>,
    pub verified: bool,
}

impl Received {
    pub fn received_bytes(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// The parts of `[start, end)` already received.
    pub fn overlaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.ranges
            .iter()
            .filter(|(s, e)| *s < end && start < *e)
            .map(|(s, e)| ((*s).max(start), (*e).min(end)))
            .collect()
    }

    /// The parts of `[start, end)` not yet received.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = start;
        for (s, e) in self.overlaps(start, end) {
            if s > at {
                gaps.push((at, s));
            }
            at = e;
        }
        if at < end {
            gaps.push((at, end));
        }
        gaps
    }

    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if e < start || end < s {
                kept.push((s, e));
            } else {
                start = start.min(s);
                end = end.max(e);
            }
        }
        let at = kept.partition_point(|(s, _)| *s < start);
        kept.insert(at, (start, end));
        self.ranges = kept;
    }

    pub fn is_complete(&self, size: u64) -> bool {
        size == 0 || self.ranges == [(0, size)]
    }
}

/// Key of the models map: a model id (at most 64 bytes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelKey(pub String);

impl Storable for ModelKey {
    const BOUND: Bound = Bound::Bounded {
        max_size: ModelId::MAX_LEN as u32,
        is_fixed_size: false,
    };

    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.as_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Self(String::from_utf8(bytes.into_owned()).expect("stored model ids are UTF-8"))
    }
}

impl From<&ModelId> for ModelKey {
    fn from(id: &ModelId) -> Self {
        Self(id.as_str().to_string())
    }
}

pub struct RepoState {
    pub stored: StableCell<Cbor<Stored>, Memory>,
    pub models: StableBTreeMap<ModelKey, Cbor<StoredModel>, Memory>,
    pub shard_tables: StableBTreeMap<u64, Cbor<Vec<ShardInfo>>, Memory>,
    pub manifests: StableBTreeMap<u64, Vec<u8>, Memory>,
    /// (tokens, calls) per model.
    pub usage: StableBTreeMap<ModelKey, (u64, u64), Memory>,
    pub uploads: StableBTreeMap<u64, Cbor<Upload>, Memory>,
    pub received: StableBTreeMap<(u64, u32), Cbor<Received>, Memory>,
    pub pages: PageStore,
    pub uploaders: StableBTreeMap<Principal, (), Memory>,
    pub agents: StableBTreeMap<Principal, u64, Memory>,
}

impl RepoState {
    fn load() -> Self {
        Self {
            stored: StableCell::init(memory::get(memory::CONFIG_MEMORY_ID), Cbor::default()),
            models: StableBTreeMap::init(memory::get(memory::MODELS_MEMORY_ID)),
            shard_tables: StableBTreeMap::init(memory::get(memory::SHARD_TABLES_MEMORY_ID)),
            manifests: StableBTreeMap::init(memory::get(memory::MANIFESTS_MEMORY_ID)),
            usage: StableBTreeMap::init(memory::get(memory::USAGE_MEMORY_ID)),
            uploads: StableBTreeMap::init(memory::get(memory::UPLOADS_MEMORY_ID)),
            received: StableBTreeMap::init(memory::get(memory::RECEIVED_MEMORY_ID)),
            pages: PageStore {
                table: StableBTreeMap::init(memory::get(memory::PAGE_TABLE_MEMORY_ID)),
                free: StableBTreeMap::init(memory::get(memory::FREE_FRAMES_MEMORY_ID)),
                frames: memory::get(memory::FRAMES_MEMORY_ID),
            },
            uploaders: StableBTreeMap::init(memory::get(memory::UPLOADERS_MEMORY_ID)),
            agents: StableBTreeMap::init(memory::get(memory::AGENTS_MEMORY_ID)),
        }
    }

    pub fn stored(&self) -> Stored {
        self.stored.get().0.clone()
    }

    pub fn config(&self) -> RepoConfig {
        self.stored.get().0.config.clone()
    }

    pub fn update_stored<R>(&mut self, change: impl FnOnce(&mut Stored) -> R) -> R {
        let mut stored = self.stored();
        let result = change(&mut stored);
        self.stored.set(Cbor(stored));
        result
    }

    pub fn model(&self, id: &ModelId) -> Option<StoredModel> {
        self.models.get(&ModelKey::from(id)).map(|Cbor(m)| m)
    }

    pub fn put_model(&mut self, model: StoredModel) {
        self.models
            .insert(ModelKey::from(&model.record.id), Cbor(model));
    }

    /// The full record: stored fields, shard table and usage.
    pub fn full_record(&self, model: &StoredModel) -> ModelRecord {
        let mut record = model.record.clone();
        record.shards = self
            .shard_tables
            .get(&model.blob)
            .map(|Cbor(t)| t)
            .unwrap_or_default();
        let (tokens, calls) = self
            .usage
            .get(&ModelKey::from(&record.id))
            .unwrap_or_default();
        record.usage_tokens = tokens;
        record.usage_calls = calls;
        record
    }

    pub fn upload(&self, id: u64) -> Option<Upload> {
        self.uploads.get(&id).map(|Cbor(u)| u)
    }

    pub fn put_upload(&mut self, upload: Upload) {
        self.uploads.insert(upload.id, Cbor(upload));
    }

    pub fn received(&self, upload: u64, shard: u32) -> Received {
        self.received
            .get(&(upload, shard))
            .map(|Cbor(r)| r)
            .unwrap_or_default()
    }

    /// Frees a blob's pages and forgets its manifest and shard table.
    pub fn drop_blob(&mut self, blob: u64) -> u64 {
        self.manifests.remove(&blob);
        self.shard_tables.remove(&blob);
        self.pages.free_blob(blob)
    }

    pub fn frames_allocated(&self) -> u32 {
        self.stored.get().0.frames_allocated
    }
}

/// Model bytes in 1 MiB frames of a dedicated memory, mapped from (blob, page) by a page table,
/// with a free list of frames released by deletions.
pub struct PageStore<M: StableMemory = Memory> {
    pub table: StableBTreeMap<(u64, u32), u32, M>,
    pub free: StableBTreeMap<u32, (), M>,
    pub frames: M,
}

impl<M: StableMemory> PageStore<M> {
    fn frame_of(&self, blob: u64, page: u32) -> Option<u32> {
        self.table.get(&(blob, page))
    }

    /// Writes `bytes` at `offset` of the blob's stream, allocating frames as needed;
    /// `frames_allocated` is the high-water mark, raised when the free list is empty.
    pub fn write(
        &mut self,
        blob: u64,
        offset: u64,
        bytes: &[u8],
        frames_allocated: &mut u32,
    ) -> Result<(), Error> {
        let mut at = offset;
        let mut rest = bytes;
        while !rest.is_empty() {
            let page = u32::try_from(at / FRAME_BYTES)
                .map_err(|_| Error::internal("page index past u32"))?;
            let in_page = at % FRAME_BYTES;
            let n = ((FRAME_BYTES - in_page) as usize).min(rest.len());
            let frame = match self.frame_of(blob, page) {
                Some(frame) => frame,
                None => {
                    let frame = self.allocate(frames_allocated)?;
                    self.table.insert((blob, page), frame);
                    frame
                }
            };
            self.frames
                .write(u64::from(frame) * FRAME_BYTES + in_page, &rest[..n]);
            at += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// `len` bytes at `offset` of the blob's stream, read straight into a fresh buffer (no
    /// zero-filling first: that would cost as much as the read). Pages never written read as
    /// zeros.
    pub fn read_vec(&self, blob: u64, offset: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        self.read_append(blob, offset, len, &mut out);
        out
    }

    /// Appends `len` bytes at `offset` of the blob's stream to `out`, read straight into its
    /// spare capacity.
    pub fn read_append(&self, blob: u64, offset: u64, len: usize, out: &mut Vec<u8>) {
        out.reserve(len);
        let base = out.len();
        let mut at = offset;
        let mut done = 0;
        while done < len {
            let page = (at / FRAME_BYTES) as u32;
            let in_page = at % FRAME_BYTES;
            let n = ((FRAME_BYTES - in_page) as usize).min(len - done);
            // SAFETY: `base + done + n <= base + len <= capacity`; each branch initialises
            // exactly these `n` bytes before `set_len` covers them.
            unsafe {
                let dst = out.as_mut_ptr().add(base + done);
                match self.frame_of(blob, page) {
                    Some(frame) => {
                        self.frames
                            .read_unsafe(u64::from(frame) * FRAME_BYTES + in_page, dst, n)
                    }
                    None => std::ptr::write_bytes(dst, 0, n),
                }
                out.set_len(base + done + n);
            }
            at += n as u64;
            done += n;
        }
    }

    fn allocate(&mut self, frames_allocated: &mut u32) -> Result<u32, Error> {
        if let Some((frame, ())) = self.free.pop_first() {
            return Ok(frame);
        }
        let frame = *frames_allocated;
        let needed_wasm_pages = (u64::from(frame) + 1) * FRAME_BYTES / WASM_PAGE_BYTES;
        let have = self.frames.size();
        if have < needed_wasm_pages && self.frames.grow(needed_wasm_pages - have) < 0 {
            return Err(Error::QuotaExceeded {
                quota: "stable memory".into(),
                limit: have * WASM_PAGE_BYTES,
            });
        }
        *frames_allocated = frame + 1;
        Ok(frame)
    }

    /// Releases every frame of the blob to the free list; returns how many.
    pub fn free_blob(&mut self, blob: u64) -> u64 {
        let entries: Vec<((u64, u32), u32)> = self
            .table
            .range((blob, 0)..=(blob, u32::MAX))
            .map(|entry| (*entry.key(), entry.value()))
            .collect();
        for (key, frame) in &entries {
            self.table.remove(key);
            self.free.insert(*frame, ());
        }
        entries.len() as u64
    }

    pub fn free_frames(&self) -> u64 {
        self.free.len()
    }
}

thread_local! {
    static STATE: RefCell<RepoState> = RefCell::new(RepoState::load());
}

pub fn read_state<R>(f: impl FnOnce(&RepoState) -> R) -> R {
    STATE.with(|state| f(&state.borrow()))
}

pub fn mutate_state<R>(f: impl FnOnce(&mut RepoState) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_ranges_merge_and_report_gaps() {
        let mut r = Received::default();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(0, 5);
        assert_eq!(r.ranges, vec![(0, 5), (10, 20), (30, 40)]);
        assert_eq!(r.gaps(0, 50), vec![(5, 10), (20, 30), (40, 50)]);
        assert_eq!(r.overlaps(15, 35), vec![(15, 20), (30, 35)]);
        r.insert(20, 30);
        assert_eq!(r.ranges, vec![(0, 5), (10, 40)]);
        r.insert(5, 10);
        assert!(r.is_complete(40));
        assert_eq!(r.received_bytes(), 40);
    }
}
