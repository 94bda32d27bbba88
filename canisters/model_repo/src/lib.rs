//! Model repository: stores NOVAQ-compressed models in stable memory and serves them to agents.
//!
//! Entry points only: decode (within `ohms_ops::decode`'s quotas; `begin_upload` and
//! `upload_chunk` carry bulk bytes), capture the caller once, call the logic in [`repo`],
//! encode. Roles are checked inside the logic. Timers: the expiry sweep (armed at install and
//! after every upgrade) and the verification worker (armed by `finalize_upload`, and after an
//! upgrade when an upload is still being verified).

mod memory;
mod metrics;
pub mod repo;
mod sha;
mod state;
#[cfg(test)]
mod store_bench;
mod validate;

use std::cell::Cell;
use std::time::Duration;

use candid::Principal;
use ohms_ops::IcEnv;
use ohms_types::{
    BeginUpload, Capability, ChunkRequest, Error, FinalizeOutcome, InstallArgs, ModelFilter,
    ModelId, ModelMatch, ModelRecord, ModelSummary, Page, Paged, RepoConfig, RepoStats, Tier,
    UploadChunk, UploadId, UploadStatus,
};

/// How often the expiry timer looks for idle uploads.
const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

#[ic_cdk::init]
fn init(args: InstallArgs) {
    ohms_ops::lifecycle::init(&IcEnv::capture(), "model_repo", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
    arm_timers();
}

#[ic_cdk::post_upgrade]
fn post_upgrade(args: Option<InstallArgs>) {
    ohms_ops::lifecycle::post_upgrade(&IcEnv::capture(), "model_repo", args)
        .unwrap_or_else(|err| ic_cdk::trap(err));
    arm_timers();
}

/// Timers do not survive an upgrade: both are armed again from stable state.
fn arm_timers() {
    schedule_expiry_sweep();
    if !repo::verifying_uploads().is_empty() {
        schedule_verification();
    }
}

/// The expiry sweep, every `EXPIRY_SWEEP_INTERVAL`: each run arms the next (a one-shot timer
/// per run, so a long pause in time — or in tests — gives one sweep, not a burst of catch-ups).
fn schedule_expiry_sweep() {
    ic_cdk_timers::set_timer(EXPIRY_SWEEP_INTERVAL, async {
        schedule_expiry_sweep();
        repo::expire_idle_uploads(&IcEnv::canister());
    });
}

thread_local! {
    /// Whether a verification timer is pending (heap only; re-derived after an upgrade).
    static UNSTABLE_VERIFICATION_SCHEDULED: Cell<bool> = const { Cell::new(false) };
}

/// Continues verification in a new message, one budget of hashing per message.
fn schedule_verification() {
    if UNSTABLE_VERIFICATION_SCHEDULED.replace(true) {
        return;
    }
    ic_cdk_timers::set_timer(Duration::ZERO, async {
        UNSTABLE_VERIFICATION_SCHEDULED.set(false);
        if repo::continue_verification(&IcEnv::canister()) {
            schedule_verification();
        }
    });
}

ohms_ops::export_ops_endpoints!(canister = "model_repo", metrics = crate::metrics::encode);

// ---------------------------------------------------------------------------------------------
// Allow-list, agent canisters, configuration

ohms_ops::endpoint! {
    /// Allows a principal to upload models. Administrators only; audited.
    update add_uploader(principal: Principal) -> Result<(), Error> {
        repo::add_uploader(&IcEnv::capture(), principal)
    }
}

ohms_ops::endpoint! {
    /// Takes the upload right from a principal. Administrators only; audited.
    update remove_uploader(principal: Principal) -> Result<(), Error> {
        repo::remove_uploader(&IcEnv::capture(), principal)
    }
}

ohms_ops::endpoint! {
    /// The upload allow-list. Administrators only.
    query list_uploaders(page: Page) -> Result<Paged<Principal>, Error> {
        repo::list_uploaders(&IcEnv::capture(), page)
    }
}

ohms_ops::endpoint! {
    /// Registers an agent canister, which may then read models and report usage. The agent
    /// factory only.
    update register_agent_canister(canister: Principal) -> Result<(), Error> {
        repo::register_agent_canister(&IcEnv::capture(), canister)
    }
}

/// The repository's limits. Administrators only.
#[ic_cdk::query]
fn repo_config() -> Result<RepoConfig, Error> {
    repo::repo_config(&IcEnv::capture())
}

ohms_ops::endpoint! {
    /// Replaces the repository's limits. Administrators only; audited.
    update set_repo_config(config: RepoConfig) -> Result<(), Error> {
        repo::set_repo_config(&IcEnv::capture(), config)
    }
}

/// Blob store and model figures.
#[ic_cdk::query]
fn repo_stats() -> RepoStats {
    repo::stats()
}

// ---------------------------------------------------------------------------------------------
// Upload

ohms_ops::endpoint! {
    /// Starts an upload from a NOVAQ manifest and the model's metadata. Administrators and
    /// allow-listed uploaders.
    bulk update begin_upload(args: BeginUpload) -> Result<UploadId, Error> {
        repo::begin_upload(&IcEnv::capture(), args)
    }
}

/// Stores up to 1.9 MiB of a shard at an offset; the same bytes again are harmless.
///
/// The hot path of an upload, so its argument is handled by hand: copied once from the message
/// into a buffer that is not zero-filled first (ic-cdk's `msg_arg_data` zero-fills, 2 M
/// instructions for 1.9 MiB), decoded within the bulk quota with the bytes borrowed rather than
/// copied again (another 2 M). Its Candid signature is registered in [`signatures`].
#[ic_cdk::update(hidden = true)]
fn upload_chunk() -> Result<(), Error> {
    let env = IcEnv::capture();
    let arg = argument_bytes();
    let chunk = decode_chunk(&arg).map_err(|reason| Error::invalid_argument("chunk", reason))?;
    repo::upload_chunk(&env, chunk)
}

/// The call's argument bytes, copied once.
fn argument_bytes() -> Vec<u8> {
    let len = ic0::msg_arg_data_size();
    let mut buf = Vec::with_capacity(len);
    ic0::msg_arg_data_copy_uninit(&mut buf.spare_capacity_mut()[..len], 0);
    // SAFETY: the System API wrote all `len` bytes.
    unsafe { buf.set_len(len) };
    buf
}

/// `UploadChunk` with its bytes borrowed from the argument.
#[derive(serde::Deserialize)]
struct BorrowedChunk<'a> {
    upload_id: UploadId,
    shard: u32,
    offset: u64,
    #[serde(borrow)]
    bytes: &'a serde_bytes::Bytes,
}

impl candid::CandidType for BorrowedChunk<'_> {
    fn _ty() -> candid::types::Type {
        UploadChunk::ty()
    }
    fn idl_serialize<S: candid::types::Serializer>(&self, _: S) -> Result<(), S::Error> {
        unreachable!("decoded only")
    }
}

fn decode_chunk(bytes: &[u8]) -> Result<repo::ChunkRef<'_>, String> {
    let config = ohms_ops::decode::config(ohms_ops::decode::BULK_DECODING_QUOTA);
    let chunk: BorrowedChunk = candid::utils::decode_one_with_config(bytes, &config)
        .map_err(|err| format!("failed to decode the call argument: {err:#}"))?;
    Ok(repo::ChunkRef {
        upload_id: chunk.upload_id,
        shard: chunk.shard,
        offset: chunk.offset,
        bytes: chunk.bytes,
    })
}

ohms_ops::endpoint! {
    /// Missing byte ranges per shard and verification progress. The creator and administrators.
    query upload_status(upload_id: UploadId) -> Result<UploadStatus, Error> {
        repo::upload_status(&IcEnv::capture(), upload_id)
    }
}

ohms_ops::endpoint! {
    /// Verifies every shard's size and sha256; continues on a timer when the model is large.
    update finalize_upload(upload_id: UploadId) -> Result<FinalizeOutcome, Error> {
        let outcome = repo::finalize_upload(&IcEnv::capture(), upload_id);
        if let Ok(FinalizeOutcome::Verifying { .. }) = outcome {
            schedule_verification();
        }
        outcome
    }
}

ohms_ops::endpoint! {
    /// Stops an upload and frees its bytes. The creator and administrators.
    update abort_upload(upload_id: UploadId) -> Result<(), Error> {
        repo::abort_upload(&IcEnv::capture(), upload_id)
    }
}

// ---------------------------------------------------------------------------------------------
// Life cycle

ohms_ops::endpoint! {
    /// Verified or Deprecated → Active. Administrators only; audited.
    update activate(id: ModelId) -> Result<ModelRecord, Error> {
        repo::activate(&IcEnv::capture(), &id)
    }
}

ohms_ops::endpoint! {
    /// Active → Deprecated. The creator and administrators; audited.
    update deprecate(id: ModelId) -> Result<ModelRecord, Error> {
        repo::deprecate(&IcEnv::capture(), &id)
    }
}

ohms_ops::endpoint! {
    /// Deletes a Verified or Deprecated model and frees its bytes. The creator and
    /// administrators; audited.
    update delete_model(id: ModelId) -> Result<(), Error> {
        repo::delete_model(&IcEnv::capture(), &id)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

ohms_ops::endpoint! {
    /// A model's record with its shard table. Public.
    query get_model(id: ModelId) -> Result<ModelRecord, Error> {
        repo::get_model(&id)
    }
}

ohms_ops::endpoint! {
    /// The manifest's exact bytes. Administrators, sibling canisters and registered agent
    /// canisters.
    query get_manifest(id: ModelId) -> Result<serde_bytes::ByteBuf, Error> {
        repo::get_manifest(&IcEnv::capture(), &id).map(serde_bytes::ByteBuf::from)
    }
}

/// Up to 1.9 MiB of a shard. Administrators, sibling canisters and registered agent canisters.
///
/// The reply is encoded by hand so the bytes go from stable memory straight into the reply
/// buffer (`ok_blob_reply`), instead of into a vector that Candid's encoder copies again.
#[ic_cdk::query(
    hidden = true,
    decode_with = "ohms_ops::decode::argument",
    manual_reply = true
)]
fn get_chunk(request: Result<ChunkRequest, String>) {
    let env = IcEnv::capture();
    let located = request
        .map_err(|reason| Error::invalid_argument("request", reason))
        .and_then(|request| repo::locate_chunk(&env, request));
    let reply = match located {
        Ok(at) => ok_blob_reply(at.len, |out| repo::read_chunk_into(at, out)),
        Err(err) => candid::encode_one(Result::<serde_bytes::ByteBuf, Error>::Err(err))
            .expect("an error encodes"),
    };
    ic_cdk::api::msg_reply(reply);
}

/// The Candid encoding of `Ok(blob)` of type `variant { Ok : blob; Err : Error }`, with the
/// blob's `len` bytes appended by `fill`: the encoding of `Ok` with an empty blob ends in the
/// blob's length (a single 0 byte), which is replaced by `len` in LEB128.
fn ok_blob_reply(len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = candid::encode_one(Result::<serde_bytes::ByteBuf, Error>::Ok(
        serde_bytes::ByteBuf::new(),
    ))
    .expect("an empty blob encodes");
    assert_eq!(
        bytes.pop(),
        Some(0),
        "the empty blob's length ends the encoding"
    );
    let mut n = len as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.reserve_exact(len);
    let before = bytes.len();
    fill(&mut bytes);
    assert_eq!(bytes.len() - before, len, "fill appends exactly len bytes");
    bytes
}

/// Decodes a multi-argument call within the ordinary decoding quota.
/// Models matching a filter, a page (at most 100) at a time. Public.
#[ic_cdk::query(hidden = true, decode_with = "ohms_ops::decode::arguments")]
fn list_models(args: Result<(ModelFilter, Page), String>) -> Result<Paged<ModelSummary>, Error> {
    let (filter, page) = args.map_err(|reason| Error::invalid_argument("args", reason))?;
    repo::list_models(filter, page)
}

/// Active models for the agent factory, best first, each with why it matched. Public.
#[ic_cdk::query(hidden = true, decode_with = "ohms_ops::decode::arguments")]
fn find_models(args: Result<(Vec<Capability>, Tier), String>) -> Result<Vec<ModelMatch>, Error> {
    let (capabilities, max_tier) =
        args.map_err(|reason| Error::invalid_argument("args", reason))?;
    repo::find_models(capabilities, max_tier)
}

/// Adds tokens to a model's usage. Registered agent canisters only.
#[ic_cdk::update(hidden = true, decode_with = "ohms_ops::decode::arguments")]
fn record_usage(args: Result<(ModelId, u64), String>) -> Result<(), Error> {
    let env = IcEnv::capture();
    let (model, tokens) = args.map_err(|reason| Error::invalid_argument("args", reason))?;
    repo::record_usage(&env, &model, tokens)
}

/// The true Candid signatures of the hand-decoded endpoints, for `export_service!`.
#[allow(dead_code)]
mod signatures {
    use super::*;

    #[candid::candid_method(query)]
    fn list_models(_: ModelFilter, _: Page) -> Result<Paged<ModelSummary>, Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(query)]
    fn find_models(_: Vec<Capability>, _: Tier) -> Result<Vec<ModelMatch>, Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(query)]
    fn get_chunk(_: ChunkRequest) -> Result<serde_bytes::ByteBuf, Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn upload_chunk(_: UploadChunk) -> Result<(), Error> {
        unreachable!("signature only")
    }

    #[candid::candid_method(update)]
    fn record_usage(_: ModelId, _: u64) -> Result<(), Error> {
        unreachable!("signature only")
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod candid_tests {
    use super::*;

    #[test]
    fn hand_encoded_chunk_replies_are_candid() {
        for len in [0usize, 1, 127, 128, 300, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let reply = ok_blob_reply(len, |out| out.extend_from_slice(&data));
            let expected = candid::encode_one(Result::<serde_bytes::ByteBuf, Error>::Ok(
                data.clone().into(),
            ))
            .unwrap();
            assert_eq!(reply, expected, "len {len}");
        }
    }

    // Expanded last, after every endpoint has registered its Candid signature.
    candid::export_service!();

    #[test]
    fn interface_is_the_committed_did() {
        ohms_ops::candid_check::assert_service_equal(
            __export_service(),
            include_str!("../../../candid/model_repo.did"),
        );
    }
}
