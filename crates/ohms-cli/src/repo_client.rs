//! A client of the model repository canister (`candid/model_repo.did`) over a small transport
//! trait, and the pure parts of an upload: which bytes are missing and how they are cut into
//! chunks.
//!
//! The transport carries Candid bytes; [`LocalTransport`] talks to a canister on an in-process
//! [`LocalIc`]. The IC HTTP interface will be another implementation of [`RepoTransport`].

use anyhow::{Context, Result, anyhow};
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use local_ic::LocalIc;
use ohms_types::{
    BeginUpload, ChunkRequest, Error, FinalizeOutcome, HttpRequest, HttpResponse, MAX_CHUNK_BYTES,
    ModelFilter, ModelId, ModelRecord, ModelSummary, Page, Paged, RepoStats, UploadChunk, UploadId,
    UploadStatus,
};
use serde::de::DeserializeOwned;

/// How calls reach the canister: updates and queries of Candid-encoded arguments, and several
/// updates in flight at once.
pub trait RepoTransport {
    /// An update call; the reply's Candid bytes, or why the call was rejected.
    fn update(&mut self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>>;
    /// A query call.
    fn query(&mut self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>>;
    /// Submits every update before awaiting any, and returns their replies in order.
    fn update_many(&mut self, calls: Vec<(&str, Vec<u8>)>) -> Vec<Result<Vec<u8>>>;
    /// Lets the network make progress without a call of ours (timers run: verification).
    fn wait(&mut self);
}

/// A canister on an in-process local network, called as `sender`.
pub struct LocalTransport<'a> {
    pub ic: &'a mut LocalIc,
    pub canister: Principal,
    pub sender: Principal,
}

impl RepoTransport for LocalTransport<'_> {
    fn update(&mut self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>> {
        self.ic
            .update_call(self.canister, self.sender, method, arg)
            .map_err(|reject| anyhow!("{method} was rejected: {reject}"))
    }

    fn query(&mut self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>> {
        self.ic
            .query_call(self.canister, self.sender, method, arg)
            .map_err(|reject| anyhow!("{method} was rejected: {reject}"))
    }

    fn update_many(&mut self, calls: Vec<(&str, Vec<u8>)>) -> Vec<Result<Vec<u8>>> {
        let submitted: Vec<(&str, Result<local_ic::MessageId, _>)> = calls
            .into_iter()
            .map(|(method, arg)| {
                let id = self.ic.submit_call(self.canister, self.sender, method, arg);
                (method, id)
            })
            .collect();
        submitted
            .into_iter()
            .map(|(method, id)| {
                id.and_then(|id| self.ic.await_call(id))
                    .map_err(|reject| anyhow!("{method} was rejected: {reject}"))
            })
            .collect()
    }

    fn wait(&mut self) {
        self.ic.tick();
    }
}

/// A canister error, with the canister and method that returned it.
#[derive(Debug)]
pub struct CanisterError {
    pub canister: &'static str,
    pub method: &'static str,
    pub error: Error,
}

impl std::fmt::Display for CanisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{} refused: {}",
            self.canister, self.method, self.error
        )
    }
}

impl std::error::Error for CanisterError {}

/// The model repository's methods, typed.
pub struct RepoClient<T> {
    pub transport: T,
}

/// Whether a call on the in-process network is a query or an update.
/// Candid calls to any canister of the in-process network, sent by one principal.
pub(crate) struct LocalCaller<'a> {
    pub ic: &'a mut LocalIc,
    pub sender: Principal,
}

impl LocalCaller<'_> {
    fn transport(&mut self, canister: Principal) -> LocalTransport<'_> {
        LocalTransport {
            ic: self.ic,
            canister,
            sender: self.sender,
        }
    }

    /// `canister.method(args)` as a query, its reply decoded.
    pub fn query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        method: &'static str,
        args: A,
    ) -> Result<R> {
        let reply = self.transport(canister).query(method, encode(args)?)?;
        decode(method, &reply)
    }

    /// `canister.method(args)` as an update, its reply decoded.
    pub fn update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        method: &'static str,
        args: A,
    ) -> Result<R> {
        let reply = self.transport(canister).update(method, encode(args)?)?;
        decode(method, &reply)
    }
}

pub(crate) fn encode<A: ArgumentEncoder>(args: A) -> Result<Vec<u8>> {
    candid::encode_args(args).context("encoding the call's arguments")
}

pub(crate) fn decode<R: CandidType + DeserializeOwned>(
    method: &'static str,
    reply: &[u8],
) -> Result<R> {
    candid::decode_one(reply).with_context(|| format!("decoding the reply of {method}"))
}

/// Turns `Result<R, Error>` replies into `anyhow` errors that name the method.
fn typed<R>(method: &'static str, reply: Result<R, Error>) -> Result<R> {
    reply.map_err(|error| {
        CanisterError {
            canister: "model_repo",
            method,
            error,
        }
        .into()
    })
}

impl<T: RepoTransport> RepoClient<T> {
    pub fn new(transport: T) -> Self {
        Self { transport }
    }

    fn update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        method: &'static str,
        args: A,
    ) -> Result<R> {
        let reply = self.transport.update(method, encode(args)?)?;
        decode(method, &reply)
    }

    fn query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        method: &'static str,
        args: A,
    ) -> Result<R> {
        let reply = self.transport.query(method, encode(args)?)?;
        decode(method, &reply)
    }

    pub fn begin_upload(&mut self, args: BeginUpload) -> Result<UploadId> {
        let reply = self.update("begin_upload", (args,))?;
        typed("begin_upload", reply)
    }

    pub fn upload_status(&mut self, id: UploadId) -> Result<Result<UploadStatus, Error>> {
        self.query("upload_status", (id,))
    }

    /// Sends the chunks with all of them in flight at once; one result per chunk, in order.
    pub fn upload_chunks(&mut self, chunks: Vec<UploadChunk>) -> Result<Vec<Result<(), Error>>> {
        let calls = chunks
            .iter()
            .map(|c| Ok(("upload_chunk", encode((c,))?)))
            .collect::<Result<Vec<_>>>()?;
        self.transport
            .update_many(calls)
            .into_iter()
            .map(|reply| decode("upload_chunk", &reply?))
            .collect()
    }

    pub fn finalize_upload(&mut self, id: UploadId) -> Result<FinalizeOutcome> {
        let reply = self.update("finalize_upload", (id,))?;
        typed("finalize_upload", reply)
    }

    pub fn abort_upload(&mut self, id: UploadId) -> Result<()> {
        let reply = self.update("abort_upload", (id,))?;
        typed("abort_upload", reply)
    }

    pub fn activate(&mut self, id: &ModelId) -> Result<ModelRecord> {
        let reply = self.update("activate", (id,))?;
        typed("activate", reply)
    }

    pub fn deprecate(&mut self, id: &ModelId) -> Result<ModelRecord> {
        let reply = self.update("deprecate", (id,))?;
        typed("deprecate", reply)
    }

    pub fn delete_model(&mut self, id: &ModelId) -> Result<()> {
        let reply = self.update("delete_model", (id,))?;
        typed("delete_model", reply)
    }

    pub fn get_model(&mut self, id: &ModelId) -> Result<ModelRecord> {
        let reply = self.query("get_model", (id,))?;
        typed("get_model", reply)
    }

    /// Every model matching the filter, following the pages.
    pub fn list_all_models(&mut self, filter: &ModelFilter) -> Result<Vec<ModelSummary>> {
        let mut items = Vec::new();
        let mut start = 0;
        loop {
            let reply: Result<Paged<ModelSummary>, Error> = self.query(
                "list_models",
                (
                    filter,
                    Page {
                        start,
                        limit: Page::MAX_LIMIT,
                    },
                ),
            )?;
            let page = typed("list_models", reply)?;
            items.extend(page.items);
            match page.next_start {
                Some(next) if next > start => start = next,
                _ => return Ok(items),
            }
        }
    }

    pub fn get_manifest(&mut self, id: &ModelId) -> Result<Vec<u8>> {
        let reply: Result<serde_bytes::ByteBuf, Error> = self.query("get_manifest", (id,))?;
        typed("get_manifest", reply).map(serde_bytes::ByteBuf::into_vec)
    }

    pub fn get_chunk(&mut self, request: ChunkRequest) -> Result<Vec<u8>> {
        let reply: Result<serde_bytes::ByteBuf, Error> = self.query("get_chunk", (request,))?;
        typed("get_chunk", reply).map(serde_bytes::ByteBuf::into_vec)
    }

    pub fn repo_stats(&mut self) -> Result<RepoStats> {
        self.query("repo_stats", ())
    }

    /// The `/metrics` page (Prometheus text).
    pub fn metrics(&mut self) -> Result<String> {
        let request = HttpRequest {
            method: "GET".into(),
            url: "/metrics".into(),
            headers: vec![],
            body: vec![],
        };
        let response: HttpResponse = self.query("http_request", (request,))?;
        if response.status_code != 200 {
            return Err(anyhow!("/metrics answered {}", response.status_code));
        }
        String::from_utf8(response.body).context("/metrics is not UTF-8")
    }
}

/// A piece of a shard to send: `len` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub shard: u32,
    pub offset: u64,
    pub len: u64,
}

/// The byte ranges `[start, end)` still to send, per shard, as the canister reported them,
/// checked against the local model's shard sizes (a reply naming bytes the model does not have
/// is an error, not something to send).
pub fn missing_ranges(status: &UploadStatus, shard_sizes: &[u64]) -> Result<Vec<(u32, u64, u64)>> {
    let mut ranges = Vec::new();
    for shard in &status.shards {
        let size = *shard_sizes.get(shard.shard as usize).ok_or_else(|| {
            anyhow!(
                "upload {} lists shard {}, but the model has {} shards",
                status.upload_id.0,
                shard.shard,
                shard_sizes.len()
            )
        })?;
        if shard.size != size {
            return Err(anyhow!(
                "upload {} expects shard {} of {} bytes, the local file has {size}: a different model",
                status.upload_id.0,
                shard.shard,
                shard.size
            ));
        }
        for range in &shard.missing {
            if range.start >= range.end || range.end > size {
                return Err(anyhow!(
                    "upload {} reports an impossible missing range {}..{} of shard {} ({size} bytes)",
                    status.upload_id.0,
                    range.start,
                    range.end,
                    shard.shard
                ));
            }
            ranges.push((shard.shard, range.start, range.end));
        }
    }
    Ok(ranges)
}

/// Cuts ranges into pieces of at most `chunk_bytes` (itself capped at [`MAX_CHUNK_BYTES`]), in
/// order, so a shard's bytes arrive front to back.
pub fn plan_chunks(ranges: &[(u32, u64, u64)], chunk_bytes: u64) -> Vec<Piece> {
    let step = chunk_bytes.clamp(1, MAX_CHUNK_BYTES);
    let mut pieces = Vec::new();
    for &(shard, start, end) in ranges {
        let mut offset = start;
        while offset < end {
            let len = step.min(end - offset);
            pieces.push(Piece { shard, offset, len });
            offset += len;
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use ohms_types::{ByteRange, ShardStatus, UploadPhase};

    fn status(shards: Vec<ShardStatus>) -> UploadStatus {
        UploadStatus {
            upload_id: UploadId(7),
            model: ModelId::parse("m", "id").unwrap(),
            creator: Principal::anonymous(),
            phase: UploadPhase::Receiving,
            total_bytes: 0,
            received_bytes: 0,
            verified_bytes: 0,
            shards,
            more_shards: 0,
            last_error: None,
            started_at_nanos: 0,
            last_activity_nanos: 0,
            expires_at_nanos: 0,
        }
    }

    fn shard(shard: u32, size: u64, missing: &[(u64, u64)]) -> ShardStatus {
        ShardStatus {
            shard,
            size,
            received_bytes: size - missing.iter().map(|(s, e)| e - s).sum::<u64>(),
            missing: missing
                .iter()
                .map(|&(start, end)| ByteRange { start, end })
                .collect(),
            verified: false,
        }
    }

    #[test]
    fn missing_ranges_follow_the_status_and_skip_complete_shards() {
        let s = status(vec![
            shard(0, 100, &[(10, 20), (50, 100)]),
            shard(2, 30, &[(0, 30)]),
        ]);
        let ranges = missing_ranges(&s, &[100, 40, 30]).unwrap();
        assert_eq!(ranges, vec![(0, 10, 20), (0, 50, 100), (2, 0, 30)]);
    }

    #[test]
    fn a_status_that_does_not_fit_the_local_model_is_refused() {
        let unknown_shard = status(vec![shard(3, 10, &[(0, 10)])]);
        assert!(missing_ranges(&unknown_shard, &[10]).is_err());
        let other_size = status(vec![shard(0, 10, &[(0, 10)])]);
        assert!(missing_ranges(&other_size, &[11]).is_err());
        let past_end = status(vec![shard(0, 10, &[(5, 12)])]);
        assert!(missing_ranges(&past_end, &[10]).is_err());
        let empty = status(vec![shard(0, 10, &[(5, 5)])]);
        assert!(missing_ranges(&empty, &[10]).is_err());
    }

    #[test]
    fn chunks_cover_every_range_exactly_within_the_size_limit() {
        let ranges = [(0, 0, 25), (1, 7, 8), (3, 100, 120)];
        let pieces = plan_chunks(&ranges, 10);
        let expect = |shard, offset, len| Piece { shard, offset, len };
        assert_eq!(
            pieces,
            vec![
                expect(0, 0, 10),
                expect(0, 10, 10),
                expect(0, 20, 5),
                expect(1, 7, 1),
                expect(3, 100, 10),
                expect(3, 110, 10),
            ]
        );
        let big = plan_chunks(&[(0, 0, 5 * MAX_CHUNK_BYTES + 1)], u64::MAX);
        assert_eq!(big.len(), 6);
        assert!(big.iter().all(|p| p.len <= MAX_CHUNK_BYTES));
        assert_eq!(
            big.iter().map(|p| p.len).sum::<u64>(),
            5 * MAX_CHUNK_BYTES + 1
        );
        assert!(plan_chunks(&[], 10).is_empty());
    }
}
