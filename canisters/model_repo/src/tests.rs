//! Native unit tests of the repository logic: uploads, validation, verification, the life
//! cycle, roles and the page store, driven through a fake environment (no canister runtime).

use std::cell::Cell;

use candid::Principal;
use novaq::format::synthetic::{bytes, manifest_for};
use novaq::format::{ShardEntry, sha256_hex};
use ohms_ops::Env;
use ohms_types::{
    BeginUpload, Capability, ChunkRequest, Error, FinalizeOutcome, MAX_CHUNK_BYTES, ModelFilter,
    ModelId, ModelMetadata, ModelState, Page, RepoConfig, Tier, UploadId, UploadPhase,
};

use crate::repo::{self, Step};
use crate::state::{FRAME_BYTES, read_state};

struct FakeEnv {
    caller: Cell<Principal>,
    now: Cell<u64>,
}

fn principal(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}

fn canister(index: u64) -> Principal {
    let mut bytes = index.to_be_bytes().to_vec();
    bytes.extend([0x01, 0x01]);
    Principal::from_slice(&bytes)
}

const CONTROLLER: u8 = 1;
const UPLOADER: u8 = 2;
const OTHER_UPLOADER: u8 = 3;
const USER: u8 = 4;

impl FakeEnv {
    fn new() -> Self {
        Self {
            caller: Cell::new(principal(CONTROLLER)),
            now: Cell::new(1_700_000_000_000_000_000),
        }
    }
    fn as_caller(&self, p: Principal) -> &Self {
        self.caller.set(p);
        self
    }
    fn advance_seconds(&self, s: u64) {
        self.now.set(self.now.get() + s * 1_000_000_000);
    }
}

impl Env for FakeEnv {
    fn caller(&self) -> Principal {
        self.caller.get()
    }
    fn canister_id(&self) -> Principal {
        canister(99)
    }
    fn now_nanos(&self) -> u64 {
        self.now.get()
    }
    fn is_controller(&self, p: &Principal) -> bool {
        *p == principal(CONTROLLER)
    }
    fn canister_version(&self) -> u64 {
        1
    }
    fn cycle_balance(&self) -> u128 {
        0
    }
    fn stable_memory_bytes(&self) -> u64 {
        0
    }
    fn heap_memory_bytes(&self) -> u64 {
        0
    }
}

/// Shards of a stream of `total` bytes cut at `shard_size`.
fn shards(total: usize, shard_size: usize, seed: u32) -> Vec<Vec<u8>> {
    bytes(total, seed)
        .chunks(shard_size)
        .map(<[u8]>::to_vec)
        .collect()
}

fn metadata(id: &str) -> ModelMetadata {
    ModelMetadata {
        id: ModelId::parse(id, "id").unwrap(),
        name: format!("Model {id}"),
        version: "1.0.0".into(),
        description: "a test model".into(),
        capabilities: vec![Capability::Storytelling, Capability::Chat],
        tags: vec!["tiny".into()],
        min_tier: Tier::Basic,
    }
}

fn begin(env: &FakeEnv, id: &str, shards: &[Vec<u8>], shard_size: u64) -> Result<UploadId, Error> {
    repo::begin_upload(
        env,
        BeginUpload {
            manifest: manifest_for(shards, shard_size).to_cbor(),
            metadata: metadata(id),
        },
    )
}

fn chunk(env: &FakeEnv, upload: UploadId, shard: u32, offset: u64, b: &[u8]) -> Result<(), Error> {
    repo::upload_chunk(
        env,
        repo::ChunkRef {
            upload_id: upload,
            shard,
            offset,
            bytes: b,
        },
    )
}

fn send_all(env: &FakeEnv, upload: UploadId, shards: &[Vec<u8>], piece: usize) {
    for (i, shard) in shards.iter().enumerate() {
        for (j, part) in shard.chunks(piece).enumerate() {
            chunk(env, upload, i as u32, (j * piece) as u64, part).unwrap();
        }
    }
}

fn id(s: &str) -> ModelId {
    ModelId::parse(s, "id").unwrap()
}

fn invalid_field(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::InvalidArgument { field, .. }) => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn a_model_is_uploaded_verified_activated_and_read_back() {
    let env = FakeEnv::new();
    let model = shards(5 * 300_000 + 1234, 300_000, 7);
    let upload = begin(&env, "tiny.q8", &model, 300_000).unwrap();
    // Sent out of order, with retries of the same bytes.
    for (i, shard) in model.iter().enumerate().rev() {
        for (j, part) in shard.chunks(70_000).enumerate().rev() {
            let offset = (j * 70_000) as u64;
            chunk(&env, upload, i as u32, offset, part).unwrap();
            chunk(&env, upload, i as u32, offset, part).unwrap();
        }
    }
    let record = match repo::finalize_upload(&env, upload).unwrap() {
        FinalizeOutcome::Verified(record) => record,
        other => panic!("{other:?}"),
    };
    assert_eq!(record.state, ModelState::Verified);
    assert_eq!(record.compressed_bytes, 5 * 300_000 + 1234);
    assert_eq!(record.shards.len(), 6);
    assert_eq!(record.creator, principal(CONTROLLER));
    assert!(record.novaq.bits_per_weight > 0.0);
    let record = repo::activate(&env, &id("tiny.q8")).unwrap();
    assert_eq!(record.state, ModelState::Active);
    for (i, shard) in model.iter().enumerate() {
        let got = repo::get_chunk(
            &env,
            ChunkRequest {
                model: id("tiny.q8"),
                shard: i as u32,
                offset: 0,
                len: shard.len() as u64,
            },
        )
        .unwrap();
        assert_eq!(&got, shard, "shard {i}");
    }
    let manifest = repo::get_manifest(&env, &id("tiny.q8")).unwrap();
    assert_eq!(sha256_hex(&manifest), record.root_hash);
    let status = repo::upload_status(&env, upload).unwrap();
    assert_eq!(status.phase, UploadPhase::Verified);
    assert!(status.shards.is_empty());
}

#[test]
fn chunks_are_checked_against_what_was_received_and_the_shard_size() {
    let env = FakeEnv::new();
    let model = shards(500_000, 300_000, 3);
    let upload = begin(&env, "m", &model, 300_000).unwrap();
    chunk(&env, upload, 0, 1000, &model[0][1000..5000]).unwrap();
    let mut different = model[0][2000..3000].to_vec();
    different[10] ^= 1;
    assert_eq!(
        invalid_field(chunk(&env, upload, 0, 2000, &different)),
        "bytes"
    );
    // Overlapping a received range with the same bytes, and extending it: fine.
    chunk(&env, upload, 0, 4000, &model[0][4000..9000]).unwrap();
    assert_eq!(
        invalid_field(chunk(&env, upload, 1, 199_999, &[0, 0])),
        "offset"
    );
    assert_eq!(invalid_field(chunk(&env, upload, 2, 0, &[0])), "shard");
    assert_eq!(
        invalid_field(chunk(&env, upload, 0, u64::MAX - 1, &[0, 0, 0])),
        "offset"
    );
    assert_eq!(invalid_field(chunk(&env, upload, 0, 0, &[])), "bytes");
    let too_big = vec![0u8; MAX_CHUNK_BYTES as usize + 1];
    assert_eq!(invalid_field(chunk(&env, upload, 0, 0, &too_big)), "bytes");
    let status = repo::upload_status(&env, upload).unwrap();
    assert_eq!(status.received_bytes, 8000);
    let missing: Vec<(u64, u64)> = status.shards[0]
        .missing
        .iter()
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(missing, vec![(0, 1000), (9000, 300_000)]);
    assert!(matches!(
        repo::finalize_upload(&env, upload),
        Err(Error::InvalidState { .. })
    ));
}

#[test]
fn verification_spans_messages_and_a_bad_shard_is_named_and_resent() {
    let env = FakeEnv::new();
    let mut config = read_state(|s| s.config());
    for (bad, field) in [
        (
            RepoConfig {
                hash_bytes_per_message: 1,
                ..config.clone()
            },
            "config.hash_bytes_per_message",
        ),
        (
            RepoConfig {
                max_shards: 1_000_000,
                ..config.clone()
            },
            "config.max_shards",
        ),
        (
            RepoConfig {
                max_manifest_bytes: 3 << 20,
                ..config.clone()
            },
            "config.max_manifest_bytes",
        ),
        (
            RepoConfig {
                max_model_bytes: 600 << 30,
                ..config.clone()
            },
            "config.max_model_bytes",
        ),
    ] {
        assert_eq!(invalid_field(repo::set_repo_config(&env, bad)), field);
    }
    config.hash_bytes_per_message = 64 << 10;
    repo::set_repo_config(&env, config).unwrap();
    let model = shards(400_000, 150_000, 11);
    let upload = begin(&env, "m", &model, 150_000).unwrap();
    let mut corrupted = model.clone();
    corrupted[1][777] ^= 0xff;
    send_all(&env, upload, &corrupted, 50_000);
    assert!(matches!(
        repo::finalize_upload(&env, upload).unwrap(),
        FinalizeOutcome::Verifying { .. }
    ));
    assert_eq!(
        repo::upload_status(&env, upload).unwrap().phase,
        UploadPhase::Verifying
    );
    // Chunks wait while verifying.
    assert!(matches!(
        chunk(&env, upload, 0, 0, &model[0][..10]),
        Err(Error::InvalidState { .. })
    ));
    let mut steps = 1;
    let err = loop {
        match repo::verify_step(&env, upload.0, 64 << 10) {
            Ok(Step::More { .. }) => steps += 1,
            Ok(Step::Done) => panic!("a corrupted shard verified"),
            Err(err) => break err,
        }
    };
    assert!(steps >= 3, "{steps} steps");
    assert!(
        matches!(&err, Error::InvalidArgument { field, .. } if field == "shards[1]"),
        "{err:?}"
    );
    let status = repo::upload_status(&env, upload).unwrap();
    assert_eq!(status.phase, UploadPhase::Receiving);
    assert!(status.last_error.unwrap().contains("shard 1"));
    // Shard 0 stays verified; shard 1 is missing entirely and takes the right bytes.
    assert_eq!(status.shards.len(), 2);
    assert_eq!(status.shards[0].shard, 1);
    assert_eq!(status.shards[0].received_bytes, 0);
    for (j, part) in model[1].chunks(50_000).enumerate() {
        chunk(&env, upload, 1, (j * 50_000) as u64, part).unwrap();
    }
    let mut outcome = repo::finalize_upload(&env, upload).unwrap();
    while let FinalizeOutcome::Verifying { .. } = outcome {
        outcome = match repo::verify_step(&env, upload.0, 64 << 10).unwrap() {
            Step::Done => repo::finalize_upload(&env, upload).unwrap(),
            Step::More {
                verified_bytes,
                total_bytes,
            } => FinalizeOutcome::Verifying {
                verified_bytes,
                total_bytes,
            },
        };
    }
    assert!(matches!(outcome, FinalizeOutcome::Verified(r) if r.state == ModelState::Verified));
}

#[test]
fn hostile_manifests_are_typed_errors() {
    let env = FakeEnv::new();
    let model = shards(1000, 600, 1);
    let good = manifest_for(&model, 600);
    let try_manifest = |m: Vec<u8>| {
        repo::begin_upload(
            &env,
            BeginUpload {
                manifest: m,
                metadata: metadata("m"),
            },
        )
    };
    // Shard sizes that disagree with the shard size.
    let mut lying = good.clone();
    lying.shards[0].size = 10_000;
    assert_eq!(invalid_field(try_manifest(lying.to_cbor())), "manifest");
    // Sizes whose sum overflows.
    let mut overflow = good.clone();
    overflow.shard_size = u64::MAX / 2 + 1;
    overflow.shards[0].size = u64::MAX / 2 + 1;
    overflow.shards[1].size = u64::MAX / 2 + 1;
    assert!(matches!(
        try_manifest(overflow.to_cbor()),
        Err(Error::InvalidArgument { .. })
    ));
    // Larger than the configured maximum.
    let mut huge = good.clone();
    huge.shard_size = 4 << 30;
    huge.shards = vec![
        ShardEntry {
            size: 4 << 30,
            sha256: "0".repeat(64),
        },
        ShardEntry {
            size: 4 << 30,
            sha256: "0".repeat(64),
        },
        ShardEntry {
            size: 1,
            sha256: "0".repeat(64),
        },
    ];
    assert_eq!(
        invalid_field(try_manifest(huge.to_cbor())),
        "manifest.shards"
    );
    // Too many shards: refused from the table's header.
    let mut many = good.clone();
    many.shard_size = 1;
    many.shards = vec![
        ShardEntry {
            size: 1,
            sha256: "0".repeat(64)
        };
        5_000
    ];
    assert_eq!(
        invalid_field(try_manifest(many.to_cbor())),
        "manifest.shards"
    );
    let mut header_only = good.to_cbor();
    // Replace the shard table (the last field) by an array header claiming 10^6 entries.
    let table = {
        let mut t = Vec::new();
        ciborium::into_writer(&good.shards, &mut t).unwrap();
        t
    };
    let at = header_only.len() - table.len();
    header_only.truncate(at);
    header_only.extend([0x9a, 0x00, 0x0f, 0x42, 0x40]);
    let r = try_manifest(header_only);
    assert_eq!(invalid_field(r), "manifest.shards");
    // Wrong version, missing architecture, not CBOR, bad hex.
    let mut v3 = good.clone();
    v3.version = 3;
    assert_eq!(
        invalid_field(try_manifest(v3.to_cbor())),
        "manifest.version"
    );
    let mut headless = good.clone();
    headless.architecture = None;
    assert_eq!(
        invalid_field(try_manifest(headless.to_cbor())),
        "manifest.architecture"
    );
    assert_eq!(
        invalid_field(try_manifest(b"not cbor".to_vec())),
        "manifest"
    );
    let mut upper = good.clone();
    upper.shards[0].sha256 = upper.shards[0].sha256.to_uppercase();
    assert!(matches!(
        try_manifest(upper.to_cbor()),
        Err(Error::InvalidArgument { .. })
    ));
    // Nothing was stored.
    assert_eq!(read_state(|s| (s.models.len(), s.uploads.len())), (0, 0));
    // The good one passes, once.
    try_manifest(good.to_cbor()).unwrap();
    assert!(matches!(
        try_manifest(good.to_cbor()),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn roles_are_checked_and_refusals_change_nothing() {
    let env = FakeEnv::new();
    let model = shards(1000, 600, 1);
    for who in [Principal::anonymous(), principal(USER)] {
        env.as_caller(who);
        assert!(begin(&env, "m", &model, 600).is_err());
        assert!(repo::add_uploader(&env, principal(USER)).is_err());
    }
    env.as_caller(principal(CONTROLLER));
    repo::add_uploader(&env, principal(UPLOADER)).unwrap();
    repo::add_uploader(&env, principal(OTHER_UPLOADER)).unwrap();
    env.as_caller(principal(UPLOADER));
    let upload = begin(&env, "m", &model, 600).unwrap();
    // Another uploader cannot touch it.
    env.as_caller(principal(OTHER_UPLOADER));
    assert!(matches!(
        chunk(&env, upload, 0, 0, &model[0]),
        Err(Error::NotAuthorized { .. })
    ));
    assert!(matches!(
        repo::abort_upload(&env, upload),
        Err(Error::NotAuthorized { .. })
    ));
    assert!(matches!(
        repo::upload_status(&env, upload),
        Err(Error::NotAuthorized { .. })
    ));
    env.as_caller(principal(UPLOADER));
    // One uploader holds at most four uploads in progress.
    for n in 0..3 {
        begin(&env, &format!("extra-{n}"), &model, 600).unwrap();
    }
    assert!(matches!(
        begin(&env, "one-too-many", &model, 600),
        Err(Error::QuotaExceeded { .. })
    ));
    for n in 0..3 {
        let extra = UploadId(upload.0 + 1 + n);
        repo::abort_upload(&env, extra).unwrap();
    }
    send_all(&env, upload, &model, 600);
    repo::finalize_upload(&env, upload).unwrap();
    // Uploaders do not activate; administrators do.
    assert!(matches!(
        repo::activate(&env, &id("m")),
        Err(Error::NotAuthorized { .. })
    ));
    // Only administrators and registered agents read bytes.
    let request = ChunkRequest {
        model: id("m"),
        shard: 0,
        offset: 0,
        len: 10,
    };
    assert!(matches!(
        repo::get_chunk(&env, request.clone()),
        Err(Error::NotAuthorized { .. })
    ));
    env.as_caller(principal(CONTROLLER));
    repo::activate(&env, &id("m")).unwrap();
    assert_eq!(
        repo::get_chunk(&env, request.clone()).unwrap(),
        model[0][..10]
    );
    // Pause stops uploaders, not administrators.
    ohms_ops::pause::pause(&env, "incident".into()).unwrap();
    env.as_caller(principal(UPLOADER));
    assert!(matches!(
        begin(&env, "n", &model, 600),
        Err(Error::Paused { .. })
    ));
    assert!(matches!(
        repo::deprecate(&env, &id("m")),
        Err(Error::Paused { .. })
    ));
    env.as_caller(principal(CONTROLLER));
    repo::deprecate(&env, &id("m")).unwrap();
    // A removed uploader is refused.
    ohms_ops::pause::unpause(&env).unwrap();
    repo::remove_uploader(&env, principal(UPLOADER)).unwrap();
    env.as_caller(principal(UPLOADER));
    assert!(matches!(
        repo::delete_model(&env, &id("m")),
        Err(Error::NotAuthorized { .. })
    ));
    // Agent registration: the factory only (no sibling registered here), usage from agents only.
    assert!(matches!(
        repo::register_agent_canister(&env, canister(5)),
        Err(Error::NotAuthorized { .. })
    ));
    env.as_caller(canister(5));
    assert!(matches!(
        repo::record_usage(&env, &id("m"), 10),
        Err(Error::NotAuthorized { .. })
    ));
}

#[test]
fn delete_frees_pages_that_the_next_upload_reuses() {
    let env = FakeEnv::new();
    let model = shards(3 * FRAME_BYTES as usize + 5, 2 * FRAME_BYTES as usize, 5);
    let upload = begin(&env, "a", &model, 2 * FRAME_BYTES).unwrap();
    send_all(&env, upload, &model, MAX_CHUNK_BYTES as usize);
    repo::finalize_upload(&env, upload).unwrap();
    let frames = read_state(|s| s.frames_allocated());
    assert_eq!(frames, 4, "one partly used page per model");
    let stats = repo::stats();
    assert_eq!(stats.bytes_used, 4 * FRAME_BYTES);
    assert_eq!(stats.models_verified, 1);
    repo::delete_model(&env, &id("a")).unwrap();
    let stats = repo::stats();
    assert_eq!((stats.bytes_used, stats.bytes_free), (0, 4 * FRAME_BYTES));
    assert_eq!(stats.bytes_reserved, 0);
    let other = shards(3 * FRAME_BYTES as usize, FRAME_BYTES as usize, 6);
    let upload = begin(&env, "b", &other, FRAME_BYTES).unwrap();
    send_all(&env, upload, &other, MAX_CHUNK_BYTES as usize);
    repo::finalize_upload(&env, upload).unwrap();
    assert_eq!(
        read_state(|s| s.frames_allocated()),
        4,
        "frames were reused"
    );
    assert_eq!(repo::stats().bytes_free, FRAME_BYTES);
    repo::activate(&env, &id("b")).unwrap();
    for (i, shard) in other.iter().enumerate() {
        let got = repo::get_chunk(
            &env,
            ChunkRequest {
                model: id("b"),
                shard: i as u32,
                offset: 0,
                len: shard.len() as u64,
            },
        )
        .unwrap();
        assert_eq!(&got, shard);
    }
    // Active models are not deleted.
    assert!(matches!(
        repo::delete_model(&env, &id("b")),
        Err(Error::InvalidState { .. })
    ));
}

#[test]
fn idle_uploads_expire_and_free_their_bytes() {
    let env = FakeEnv::new();
    let model = shards(2 * FRAME_BYTES as usize, FRAME_BYTES as usize, 9);
    let upload = begin(&env, "a", &model, FRAME_BYTES).unwrap();
    chunk(&env, upload, 0, 0, &model[0]).unwrap();
    env.advance_seconds(23 * 3600);
    assert!(repo::expire_idle_uploads(&env).is_empty());
    chunk(&env, upload, 1, 0, &model[1][..10]).unwrap();
    env.advance_seconds(24 * 3600 + 1);
    assert_eq!(repo::expire_idle_uploads(&env), vec![upload.0]);
    assert!(matches!(
        repo::get_model(&id("a")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repo::upload_status(&env, upload),
        Err(Error::NotFound { .. })
    ));
    let stats = repo::stats();
    assert_eq!(
        (stats.bytes_used, stats.bytes_free, stats.bytes_reserved),
        (0, 2 * FRAME_BYTES, 0)
    );
}

#[test]
fn find_models_ranks_active_models_and_says_why() {
    let env = FakeEnv::new();
    let model = shards(100, 100, 1);
    for (name, caps, tier) in [
        (
            "coder",
            vec![Capability::Code, Capability::Python],
            Tier::Pro,
        ),
        ("chatty", vec![Capability::Chat], Tier::Basic),
        (
            "big-coder",
            vec![Capability::Code, Capability::Python, Capability::Testing],
            Tier::Enterprise,
        ),
        ("py", vec![Capability::Python], Tier::Basic),
    ] {
        let mut meta = metadata(name);
        meta.capabilities = caps;
        meta.min_tier = tier;
        let upload = repo::begin_upload(
            &env,
            BeginUpload {
                manifest: manifest_for(&model, 100).to_cbor(),
                metadata: meta,
            },
        )
        .unwrap();
        send_all(&env, upload, &model, 100);
        repo::finalize_upload(&env, upload).unwrap();
        if name != "py" {
            repo::activate(&env, &id(name)).unwrap();
        }
    }
    let found = repo::find_models(vec![Capability::Python, Capability::Code], Tier::Pro).unwrap();
    let ids: Vec<&str> = found.iter().map(|m| m.model.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["coder"],
        "inactive and too-high-tier models are left out"
    );
    assert!(
        found[0].reason.contains("2 of the 2"),
        "{}",
        found[0].reason
    );
    let found = repo::find_models(
        vec![Capability::Python, Capability::Testing],
        Tier::Enterprise,
    )
    .unwrap();
    let ids: Vec<&str> = found.iter().map(|m| m.model.id.as_str()).collect();
    assert_eq!(ids, vec!["big-coder", "coder"]);
    assert_eq!(found[1].missing, vec![Capability::Testing]);
    let page = repo::list_models(
        ModelFilter {
            state: Some(ModelState::Active),
            ..Default::default()
        },
        Page::first(2),
    )
    .unwrap();
    assert_eq!(
        (page.items.len(), page.total, page.next_start),
        (2, 3, Some(2))
    );
    assert!(repo::find_models(vec![Capability::Chat; 17], Tier::Basic).is_err());
}

#[test]
fn registered_sibling_canisters_read_manifests_and_chunks() {
    let env = FakeEnv::new();
    let coordinator = canister(6);
    let init = ohms_types::InstallArgs::Init(ohms_types::InitArgs {
        admins: vec![],
        siblings: ohms_types::Siblings {
            coordinator: Some(coordinator),
            ..ohms_types::Siblings::default()
        },
    });
    ohms_ops::lifecycle::init(&env, "model_repo", init).unwrap();
    let model = shards(1000, 600, 3);
    let upload = begin(&env, "m", &model, 600).unwrap();
    send_all(&env, upload, &model, 600);
    repo::finalize_upload(&env, upload).unwrap();
    repo::activate(&env, &id("m")).unwrap();
    let request = ChunkRequest {
        model: id("m"),
        shard: 1,
        offset: 0,
        len: 10,
    };
    env.as_caller(coordinator);
    assert_eq!(
        repo::get_chunk(&env, request.clone()).unwrap(),
        model[1][..10]
    );
    let manifest = repo::get_manifest(&env, &id("m")).unwrap();
    assert!(!manifest.is_empty());
    // Another canister, a user and the anonymous principal are refused.
    for who in [canister(7), principal(USER)] {
        env.as_caller(who);
        let refused = repo::get_manifest(&env, &id("m"));
        assert!(
            matches!(&refused, Err(Error::NotAuthorized { reason }) if reason.contains("registered OHMS canister")),
            "{refused:?}"
        );
        assert!(matches!(
            repo::get_chunk(&env, request.clone()),
            Err(Error::NotAuthorized { .. })
        ));
    }
    env.as_caller(Principal::anonymous());
    assert_eq!(repo::get_manifest(&env, &id("m")), Err(Error::Anonymous));
}
