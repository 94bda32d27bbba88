//! The model repository through its real wasm on the local IC runtime: a real NOVAQ model
//! (stories260K compressed in the test) uploaded, verified, activated and read back; resuming;
//! corrupted chunks; roles; upgrades in the middle of uploads and verification; the expiry
//! timer; space reuse; pagination; hostile input; and the cost figures (printed as
//! `BENCH model_repo.<name> <value>` lines for the benchmark suite).

use std::time::Duration;

use candid::{CandidType, Principal};
use ic_test_env::TestEnv;
use novaq::format::{Manifest, ShardEntry, sha256_hex, synthetic};
use ohms_integration_tests::{INITIAL_CYCLES, controller, encode, user, wasm};
use ohms_types::{
    BeginUpload, Capability, ChunkRequest, Error, FinalizeOutcome, HttpRequest, HttpResponse,
    InitArgs, InstallArgs, MAX_CHUNK_BYTES, ModelFilter, ModelId, ModelMatch, ModelMetadata,
    ModelRecord, ModelState, ModelSummary, Page, Paged, RepoConfig, RepoStats, Siblings, Tier,
    UploadChunk, UploadId, UploadPhase, UploadStatus,
};
use serde::de::DeserializeOwned;

type Unit = Result<(), Error>;

/// A model_repo canister with an (empty) canister registered as its agent factory.
struct Repo {
    env: TestEnv,
    id: Principal,
    factory: Principal,
}

fn canister_like(env: &mut TestEnv) -> Principal {
    env.create_canister_with_controllers(vec![controller()])
}

impl Repo {
    fn deploy() -> Self {
        let mut env = TestEnv::new();
        let id = canister_like(&mut env);
        env.add_cycles(id, INITIAL_CYCLES);
        let factory = canister_like(&mut env);
        let init = InstallArgs::Init(InitArgs {
            admins: vec![],
            siblings: Siblings {
                model_repo: Some(id),
                agent_factory: Some(factory),
                ..Default::default()
            },
        });
        env.install_canister(id, wasm("model_repo"), encode(&init), Some(controller()))
            .expect("install model_repo");
        Self { env, id, factory }
    }

    fn update<A: candid::utils::ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        self.env
            .update(self.id, sender, method, args)
            .unwrap_or_else(|err| panic!("{method}: {err}"))
    }

    fn query<A: candid::utils::ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        self.env
            .query(self.id, sender, method, args)
            .unwrap_or_else(|err| panic!("{method}: {err}"))
    }

    fn instructions(&self) -> u64 {
        self.env
            .last_call_instructions()
            .expect("the local runtime counts instructions")
    }

    fn upgrade(&mut self) {
        self.env
            .upgrade_canister(
                self.id,
                wasm("model_repo"),
                candid::encode_args(()).unwrap(),
                Some(controller()),
            )
            .expect("upgrade model_repo");
    }

    fn begin(
        &mut self,
        sender: Principal,
        manifest: &[u8],
        meta: ModelMetadata,
    ) -> Result<UploadId, Error> {
        self.update(
            sender,
            "begin_upload",
            (BeginUpload {
                manifest: manifest.to_vec(),
                metadata: meta,
            },),
        )
    }

    fn chunk(
        &mut self,
        sender: Principal,
        upload: UploadId,
        shard: u32,
        offset: u64,
        bytes: &[u8],
    ) -> Unit {
        self.update(
            sender,
            "upload_chunk",
            (UploadChunk {
                upload_id: upload,
                shard,
                offset,
                bytes: bytes.to_vec(),
            },),
        )
    }

    fn status(&mut self, sender: Principal, upload: UploadId) -> Result<UploadStatus, Error> {
        self.query(sender, "upload_status", (upload,))
    }

    fn finalize(&mut self, sender: Principal, upload: UploadId) -> Result<FinalizeOutcome, Error> {
        self.update(sender, "finalize_upload", (upload,))
    }

    fn get_chunk(
        &mut self,
        sender: Principal,
        model: &str,
        shard: u32,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        let reply: Result<serde_bytes::ByteBuf, Error> = self.query(
            sender,
            "get_chunk",
            (ChunkRequest {
                model: model_id(model),
                shard,
                offset,
                len,
            },),
        );
        reply.map(|b| b.into_vec())
    }

    fn get_model(&mut self, id: &str) -> Result<ModelRecord, Error> {
        self.query(Principal::anonymous(), "get_model", (model_id(id),))
    }

    fn stats(&mut self) -> RepoStats {
        self.query(Principal::anonymous(), "repo_stats", ())
    }

    fn metrics(&mut self) -> String {
        let request = HttpRequest {
            method: "GET".into(),
            url: "/metrics".into(),
            headers: vec![],
            body: vec![],
        };
        let response: HttpResponse = self.query(Principal::anonymous(), "http_request", (request,));
        String::from_utf8(response.body).unwrap()
    }

    fn metric(&mut self, name: &str) -> f64 {
        let body = self.metrics();
        body.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{body}"))
    }

    fn set_config(&mut self, change: impl FnOnce(&mut RepoConfig)) {
        let mut config: RepoConfig = self
            .query::<_, Result<RepoConfig, Error>>(controller(), "repo_config", ())
            .unwrap();
        change(&mut config);
        let set: Unit = self.update(controller(), "set_repo_config", (config,));
        set.unwrap();
    }

    /// Sends every shard in pieces of `piece` bytes.
    fn send_all(&mut self, sender: Principal, upload: UploadId, shards: &[Vec<u8>], piece: usize) {
        for (i, shard) in shards.iter().enumerate() {
            for (j, part) in shard.chunks(piece).enumerate() {
                self.chunk(sender, upload, i as u32, (j * piece) as u64, part)
                    .unwrap_or_else(|err| panic!("shard {i} piece {j}: {err}"));
            }
        }
    }

    /// Finalizes and lets the verification timer run until the model is verified.
    fn finalize_until_verified(&mut self, sender: Principal, upload: UploadId) -> ModelRecord {
        let outcome = self.finalize(sender, upload).expect("finalize");
        if let FinalizeOutcome::Verified(record) = outcome {
            return *record;
        }
        for _ in 0..1_000 {
            self.env.tick();
            let status = self.status(sender, upload).unwrap();
            match status.phase {
                UploadPhase::Verified => {
                    let FinalizeOutcome::Verified(record) = self.finalize(sender, upload).unwrap()
                    else {
                        panic!("verified upload not verified");
                    };
                    return *record;
                }
                UploadPhase::Receiving => panic!("verification failed: {:?}", status.last_error),
                UploadPhase::Verifying => {}
            }
        }
        panic!("verification did not finish");
    }
}

fn model_id(id: &str) -> ModelId {
    ModelId::parse(id, "id").unwrap()
}

fn metadata(id: &str) -> ModelMetadata {
    ModelMetadata {
        id: model_id(id),
        name: format!("Model {id}"),
        version: "1.0.0".into(),
        description: "stories".into(),
        capabilities: vec![Capability::Storytelling],
        tags: vec!["tiny".into()],
        min_tier: Tier::Basic,
    }
}

/// stories260K compressed by NOVAQ (2-bit additive mode), as manifest bytes and shards of
/// 64 KiB.
fn stories260k() -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    ohms_integration_tests::stories260k("2bit", 64 << 10)
}

fn bench(name: &str, value: f64) {
    println!("BENCH model_repo.{name} {value}");
}

#[test]
fn a_real_novaq_model_round_trips_byte_identical_and_survives_an_upgrade() {
    let Some((manifest, shards)) = stories260k() else {
        return;
    };
    let mut repo = Repo::deploy();
    let admin = controller();
    let upload = repo
        .begin(admin, &manifest, metadata("stories260k.novaq2"))
        .unwrap();
    repo.send_all(admin, upload, &shards, 50_000);
    let record = repo.finalize_until_verified(admin, upload);
    assert_eq!(record.state, ModelState::Verified);
    assert_eq!(record.root_hash, sha256_hex(&manifest));
    assert_eq!(record.shards.len(), shards.len());
    assert_eq!(record.novaq.mode, "2bit");
    assert!(!record.novaq.codebooks.is_empty());
    assert!(
        record.novaq.bits_per_weight > 2.0 && record.novaq.bits_per_weight < 8.0,
        "{}",
        record.novaq.bits_per_weight
    );
    bench(
        "stories260k_compressed_bytes",
        record.compressed_bytes as f64,
    );
    bench("stories260k_shards", record.shards.len() as f64);
    bench(
        "stories260k_bits_per_weight",
        f64::from(record.novaq.bits_per_weight),
    );
    let activated: Result<ModelRecord, Error> =
        repo.update(admin, "activate", (model_id("stories260k.novaq2"),));
    assert_eq!(activated.unwrap().state, ModelState::Active);

    // A registered agent canister reads it back chunk by chunk.
    let agent = canister_like(&mut repo.env);
    let registered: Unit = repo.update(repo.factory, "register_agent_canister", (agent,));
    registered.unwrap();
    let read_back = |repo: &mut Repo, reader: Principal| -> (Vec<u8>, Vec<Vec<u8>>) {
        let manifest: Result<serde_bytes::ByteBuf, Error> =
            repo.query(reader, "get_manifest", (model_id("stories260k.novaq2"),));
        let manifest = manifest.unwrap().into_vec();
        let parsed = Manifest::from_cbor(&manifest).unwrap();
        let shards = parsed
            .shards
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let mut shard = Vec::new();
                while (shard.len() as u64) < entry.size {
                    let len = (entry.size - shard.len() as u64).min(20_000);
                    shard.extend(
                        repo.get_chunk(
                            reader,
                            "stories260k.novaq2",
                            i as u32,
                            shard.len() as u64,
                            len,
                        )
                        .unwrap(),
                    );
                }
                shard
            })
            .collect();
        (manifest, shards)
    };
    let (got_manifest, got_shards) = read_back(&mut repo, agent);
    assert_eq!(got_manifest, manifest);
    assert_eq!(got_shards, shards, "byte-identical");
    let views: Vec<Option<&[u8]>> = got_shards.iter().map(|s| Some(s.as_slice())).collect();
    novaq::format::verify(&got_manifest, Some(&record.root_hash), &views)
        .expect("root hash and shards verify");

    // Usage from the agent; an upgrade keeps every byte and the record.
    let usage: Unit = repo.update(
        agent,
        "record_usage",
        (model_id("stories260k.novaq2"), 1_234u64),
    );
    usage.unwrap();
    repo.upgrade();
    let (after_manifest, after_shards) = read_back(&mut repo, admin);
    assert_eq!((after_manifest, after_shards), (manifest, shards));
    let after = repo.get_model("stories260k.novaq2").unwrap();
    assert_eq!(after.usage_tokens, 1_234);
    assert_eq!(after.state, ModelState::Active);
    let found: Result<Vec<ModelMatch>, Error> = repo.query(
        Principal::anonymous(),
        "find_models",
        (vec![Capability::Storytelling], Tier::Basic),
    );
    let found = found.unwrap();
    assert_eq!(found[0].model.id.as_str(), "stories260k.novaq2");
    assert!(
        found[0].reason.contains("Storytelling"),
        "{}",
        found[0].reason
    );
    let metrics = repo.metrics();
    assert!(
        metrics.contains("model_repo_models{state=\"active\"} 1 "),
        "{metrics}"
    );
}

#[test]
fn costs_and_space_of_a_75_mb_model_and_reuse_after_delete() {
    let mut repo = Repo::deploy();
    let admin = controller();
    let total = 75_000_000usize;
    let (manifest, shards) = synthetic::model(total, 4 << 20, 1);
    let stable_before = repo.metric("stable_memory_bytes");
    let upload = repo.begin(admin, &manifest, metadata("big")).unwrap();
    bench("begin_upload_instructions", repo.instructions() as f64);
    let piece = MAX_CHUNK_BYTES as usize;
    let mut chunk_instructions = Vec::new();
    // One stream of 1.9 MiB chunks, each inside one shard.
    for (i, shard) in shards.iter().enumerate() {
        for (j, part) in shard.chunks(piece).enumerate() {
            repo.chunk(admin, upload, i as u32, (j * piece) as u64, part)
                .unwrap();
            if part.len() == piece {
                chunk_instructions.push(repo.instructions());
            }
        }
    }
    let max_chunk = *chunk_instructions.iter().max().unwrap();
    let mean_chunk = chunk_instructions.iter().sum::<u64>() / chunk_instructions.len() as u64;
    // A retry of the same 1.9 MiB: compared, not written again.
    repo.chunk(admin, upload, 0, 0, &shards[0][..piece])
        .unwrap();
    let retry = repo.instructions();
    let outcome = repo.finalize(admin, upload).unwrap();
    let first_finalize = repo.instructions();
    assert!(
        matches!(outcome, FinalizeOutcome::Verifying { .. }),
        "75 MB take more than one message"
    );
    let record = repo.finalize_until_verified(admin, upload);
    assert_eq!(record.compressed_bytes, total as u64);
    let activated: Result<ModelRecord, Error> = repo.update(admin, "activate", (model_id("big"),));
    activated.unwrap();
    let got = repo
        .get_chunk(admin, "big", 3, 100, MAX_CHUNK_BYTES)
        .unwrap();
    let get_chunk = repo.instructions();
    assert_eq!(got, shards[3][100..100 + piece]);
    let stats = repo.stats();
    let stable_after = repo.metric("stable_memory_bytes");
    let blob_ratio = stats.bytes_used as f64 / total as f64;
    let stable_ratio = (stable_after - stable_before) / total as f64;
    bench("upload_chunk_1_9mib_instructions_max", max_chunk as f64);
    bench("upload_chunk_1_9mib_instructions_mean", mean_chunk as f64);
    bench("upload_chunk_retry_1_9mib_instructions", retry as f64);
    bench("finalize_first_message_instructions", first_finalize as f64);
    bench(
        "finalize_instructions_per_mib",
        first_finalize as f64 / 32.0,
    );
    bench("get_chunk_1_9mib_instructions", get_chunk as f64);
    bench("blob_store_bytes_per_model_byte", blob_ratio);
    bench("stable_memory_growth_per_model_byte", stable_ratio);
    assert!(
        max_chunk <= 20_000_000,
        "upload_chunk of 1.9 MiB: {max_chunk} instructions"
    );
    // The IC charges 50 instructions per reply byte (BYTE_TRANSMISSION_COST_FACTOR): 99.6 M
    // for 1.9 MiB, whatever the canister does. Its own work is the rest.
    let transmission = 50 * MAX_CHUNK_BYTES;
    bench(
        "get_chunk_1_9mib_own_instructions",
        (get_chunk - transmission) as f64,
    );
    assert!(
        get_chunk - transmission <= 20_000_000,
        "get_chunk of 1.9 MiB: {get_chunk} instructions"
    );
    assert!(blob_ratio <= 1.02, "blob store {blob_ratio}");
    assert!(stable_ratio <= 1.10, "stable memory {stable_ratio}");

    // Delete frees the space; the next upload of the same size reuses it.
    let deprecated: Result<ModelRecord, Error> =
        repo.update(admin, "deprecate", (model_id("big"),));
    deprecated.unwrap();
    let deleted: Unit = repo.update(admin, "delete_model", (model_id("big"),));
    deleted.unwrap();
    let freed = repo.stats();
    assert_eq!(freed.bytes_used, 0);
    assert_eq!(freed.bytes_free, stats.bytes_used);
    assert_eq!(
        repo.metric("model_repo_blob_bytes_free"),
        stats.bytes_used as f64
    );
    let stable_full = repo.metric("stable_memory_bytes");
    let (manifest2, shards2) = synthetic::model(total, 4 << 20, 2);
    let upload = repo.begin(admin, &manifest2, metadata("big2")).unwrap();
    repo.send_all(admin, upload, &shards2, piece);
    repo.finalize_until_verified(admin, upload);
    assert_eq!(
        repo.metric("stable_memory_bytes"),
        stable_full,
        "stable memory did not grow"
    );
    let reused = repo.stats();
    assert_eq!(
        (reused.bytes_used, reused.bytes_free),
        (stats.bytes_used, 0)
    );
    let mut got = Vec::new();
    while got.len() < shards2[17].len() {
        let len = (shards2[17].len() - got.len()).min(piece) as u64;
        got.extend(
            repo.get_chunk(admin, "big2", 17, got.len() as u64, len)
                .unwrap(),
        );
    }
    assert_eq!(got, shards2[17]);
}

#[test]
fn a_dropped_client_resumes_with_only_the_missing_ranges() {
    let mut repo = Repo::deploy();
    let admin = controller();
    let uploader = user("uploader");
    let added: Unit = repo.update(admin, "add_uploader", (uploader,));
    added.unwrap();
    let (manifest, shards) = synthetic::model(1_000_000, 300_000, 3);
    let upload = repo
        .begin(uploader, &manifest, metadata("resumed"))
        .unwrap();
    // The first client sends every other piece, then is gone.
    let piece = 100_000;
    for (i, shard) in shards.iter().enumerate() {
        for (j, part) in shard.chunks(piece).enumerate().filter(|(j, _)| j % 2 == 0) {
            repo.chunk(uploader, upload, i as u32, (j * piece) as u64, part)
                .unwrap();
        }
    }
    // A new client knows only the upload id.
    let status = repo.status(uploader, upload).unwrap();
    assert_eq!(status.phase, UploadPhase::Receiving);
    assert!(status.received_bytes < 1_000_000);
    let mut sent = 0u64;
    for shard in &status.shards {
        for range in &shard.missing {
            let bytes = &shards[shard.shard as usize][range.start as usize..range.end as usize];
            for (k, part) in bytes.chunks(MAX_CHUNK_BYTES as usize).enumerate() {
                let offset = range.start + (k as u64) * MAX_CHUNK_BYTES;
                repo.chunk(uploader, upload, shard.shard, offset, part)
                    .unwrap();
                sent += part.len() as u64;
            }
        }
    }
    assert_eq!(
        sent + status.received_bytes,
        1_000_000,
        "only the missing bytes were sent"
    );
    let record = repo.finalize_until_verified(uploader, upload);
    assert_eq!(record.creator, uploader);
    assert_eq!(record.state, ModelState::Verified);
}

#[test]
fn a_corrupted_chunk_fails_finalize_naming_the_shard_and_resending_it_finalizes() {
    let mut repo = Repo::deploy();
    let admin = controller();
    let (manifest, shards) = synthetic::model(900_000, 300_000, 4);
    let upload = repo.begin(admin, &manifest, metadata("corrupt")).unwrap();
    let mut corrupted = shards.clone();
    corrupted[2][12_345] ^= 0x40;
    repo.send_all(admin, upload, &corrupted, 100_000);
    let err = repo.finalize(admin, upload).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { field, reason } if field == "shards[2]" && reason.contains("shard 2")),
        "{err:?}"
    );
    let status = repo.status(admin, upload).unwrap();
    assert_eq!(status.phase, UploadPhase::Receiving);
    assert_eq!(status.shards.len(), 1, "only shard 2 is to be sent again");
    assert_eq!(status.shards[0].shard, 2);
    assert!(status.last_error.unwrap().contains("shard 2"));
    for (j, part) in shards[2].chunks(100_000).enumerate() {
        repo.chunk(admin, upload, 2, (j * 100_000) as u64, part)
            .unwrap();
    }
    let record = repo.finalize_until_verified(admin, upload);
    assert_eq!(record.state, ModelState::Verified);
    assert_eq!(
        repo.get_chunk(admin, "corrupt", 2, 12_345, 1).unwrap(),
        vec![shards[2][12_345]]
    );
}

/// Everything a refused caller could have changed, as the controller sees it.
#[derive(Debug, PartialEq)]
struct Snapshot {
    models: Paged<ModelSummary>,
    stats: RepoStats,
    upload: UploadStatus,
    audit_entries: u64,
    uploaders: Paged<Principal>,
}

fn snapshot(repo: &mut Repo, upload: UploadId) -> Snapshot {
    let models: Result<Paged<ModelSummary>, Error> = repo.query(
        Principal::anonymous(),
        "list_models",
        (ModelFilter::default(), Page::default()),
    );
    let uploaders: Result<Paged<Principal>, Error> =
        repo.query(controller(), "list_uploaders", (Page::default(),));
    let status: ohms_types::OpsStatus = repo.query(controller(), "ops_status", ());
    Snapshot {
        models: models.unwrap(),
        stats: repo.stats(),
        upload: repo.status(controller(), upload).unwrap(),
        audit_entries: status.audit_entries,
        uploaders: uploaders.unwrap(),
    }
}

#[test]
fn only_admins_uploaders_agents_and_the_factory_pass_and_refusals_change_nothing() {
    let mut repo = Repo::deploy();
    let admin = controller();
    let uploader = user("uploader");
    let added: Unit = repo.update(admin, "add_uploader", (uploader,));
    added.unwrap();
    let (manifest, shards) = synthetic::model(200_000, 100_000, 5);
    let active = repo.begin(uploader, &manifest, metadata("active")).unwrap();
    repo.send_all(uploader, active, &shards, 100_000);
    repo.finalize_until_verified(uploader, active);
    let activated: Result<ModelRecord, Error> =
        repo.update(admin, "activate", (model_id("active"),));
    activated.unwrap();
    let pending = repo
        .begin(uploader, &manifest, metadata("pending"))
        .unwrap();
    repo.chunk(uploader, pending, 0, 0, &shards[0][..1000])
        .unwrap();

    let before = snapshot(&mut repo, pending);
    let mallory = user("mallory");
    let other_uploader = user("other-uploader");
    let added: Unit = repo.update(admin, "add_uploader", (other_uploader,));
    added.unwrap();
    let before_other = snapshot(&mut repo, pending);
    assert_ne!(before, before_other);
    for who in [Principal::anonymous(), mallory, other_uploader] {
        let expect_refused =
            |method: &str, result: Unit| match (who == Principal::anonymous(), &result) {
                (true, Err(Error::Anonymous)) | (false, Err(Error::NotAuthorized { .. })) => {}
                _ => panic!("{who} {method}: {result:?}"),
            };
        if who != other_uploader {
            let r: Result<UploadId, Error> = repo.update(
                who,
                "begin_upload",
                (BeginUpload {
                    manifest: manifest.clone(),
                    metadata: metadata("intruder"),
                },),
            );
            expect_refused("begin_upload", r.map(|_| ()));
        }
        expect_refused(
            "upload_chunk",
            repo.chunk(who, pending, 0, 1000, &shards[0][1000..2000]),
        );
        let r: Result<FinalizeOutcome, Error> = repo.update(who, "finalize_upload", (pending,));
        expect_refused("finalize_upload", r.map(|_| ()));
        expect_refused("abort_upload", repo.update(who, "abort_upload", (pending,)));
        for method in ["activate", "deprecate"] {
            let r: Result<ModelRecord, Error> = repo.update(who, method, (model_id("active"),));
            expect_refused(method, r.map(|_| ()));
        }
        expect_refused(
            "delete_model",
            repo.update(who, "delete_model", (model_id("active"),)),
        );
        expect_refused("add_uploader", repo.update(who, "add_uploader", (who,)));
        expect_refused(
            "remove_uploader",
            repo.update(who, "remove_uploader", (uploader,)),
        );
        let config = RepoConfig {
            max_model_bytes: 1 << 40,
            max_shards: 10,
            max_manifest_bytes: 1000,
            max_total_bytes: 1 << 40,
            max_uploads: 1,
            upload_idle_timeout_seconds: 60,
            hash_bytes_per_message: 1 << 20,
        };
        expect_refused(
            "set_repo_config",
            repo.update(who, "set_repo_config", (config,)),
        );
        expect_refused(
            "register_agent_canister",
            repo.update(who, "register_agent_canister", (repo.id,)),
        );
        expect_refused(
            "record_usage",
            repo.update(who, "record_usage", (model_id("active"), 5u64)),
        );
        expect_refused(
            "get_chunk",
            repo.get_chunk(who, "active", 0, 0, 10).map(|_| ()),
        );
        let manifest_read: Result<serde_bytes::ByteBuf, Error> =
            repo.query(who, "get_manifest", (model_id("active"),));
        expect_refused("get_manifest", manifest_read.map(|_| ()));
        if who != other_uploader {
            let r = repo.status(who, pending);
            expect_refused("upload_status", r.map(|_| ()));
        }
        assert_eq!(
            snapshot(&mut repo, pending),
            before_other,
            "{who}: a refused call changed state"
        );
    }

    // Through a canister (where inspect_message never runs) the methods refuse just the same.
    let relay = canister_like(&mut repo.env);
    repo.env.add_cycles(relay, INITIAL_CYCLES);
    repo.env
        .install_canister(
            relay,
            wasm("fixtures/relay"),
            candid::encode_args(()).unwrap(),
            Some(controller()),
        )
        .expect("install the relay");
    for (method, arg) in [
        ("add_uploader", encode(&mallory)),
        ("activate", encode(&model_id("active"))),
        ("delete_model", encode(&model_id("active"))),
        ("register_agent_canister", encode(&relay)),
    ] {
        let relayed: Result<Vec<u8>, String> = repo
            .env
            .update(relay, mallory, "relay", (repo.id, method.to_string(), arg))
            .unwrap();
        let reply = relayed.expect("the call reaches the canister");
        let refused = candid::decode_one::<Unit>(&reply)
            .map(|r| r.unwrap_err())
            .or_else(|_| {
                candid::decode_one::<Result<ModelRecord, Error>>(&reply).map(|r| r.unwrap_err())
            })
            .unwrap();
        assert!(
            matches!(refused, Error::NotAuthorized { .. }),
            "{method}: {refused:?}"
        );
    }
    assert_eq!(
        snapshot(&mut repo, pending),
        before_other,
        "a relayed call changed state"
    );

    // The factory alone registers agent canisters; a registered agent reads and reports usage.
    let agent = canister_like(&mut repo.env);
    for who in [admin, uploader, repo.id, agent] {
        let r: Unit = repo.update(who, "register_agent_canister", (agent,));
        assert!(
            matches!(r, Err(Error::NotAuthorized { .. })),
            "{who}: {r:?}"
        );
    }
    let r: Unit = repo.update(
        repo.factory,
        "register_agent_canister",
        (Principal::anonymous(),),
    );
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    let r: Unit = repo.update(repo.factory, "register_agent_canister", (agent,));
    r.unwrap();
    assert_eq!(
        repo.get_chunk(agent, "active", 1, 5, 10).unwrap(),
        shards[1][5..15]
    );
    assert!(matches!(
        repo.get_chunk(agent, "pending", 0, 0, 10),
        Err(Error::InvalidState { .. })
    ));
    let r: Unit = repo.update(agent, "record_usage", (model_id("active"), 77u64));
    r.unwrap();
    assert_eq!(repo.get_model("active").unwrap().usage_tokens, 77);

    // Pause: uploaders wait, administrators work.
    let r: Unit = repo.update(admin, "pause", ("incident",));
    r.unwrap();
    assert!(matches!(
        repo.chunk(uploader, pending, 0, 1000, &shards[0][1000..2000]),
        Err(Error::Paused { .. })
    ));
    repo.chunk(admin, pending, 0, 1000, &shards[0][1000..2000])
        .unwrap();
    let r: Unit = repo.update(admin, "unpause", ());
    r.unwrap();
    // After remove_uploader the former uploader is refused.
    let r: Unit = repo.update(admin, "remove_uploader", (uploader,));
    r.unwrap();
    assert!(matches!(
        repo.chunk(uploader, pending, 0, 2000, &shards[0][2000..3000]),
        Err(Error::NotAuthorized { .. })
    ));
    let log: Result<Paged<ohms_types::AuditEntry>, Error> = repo.query(
        admin,
        "audit_log",
        (Page {
            start: 0,
            limit: 100,
        },),
    );
    let methods: Vec<String> = log.unwrap().items.into_iter().map(|e| e.method).collect();
    for m in [
        "add_uploader",
        "begin_upload",
        "finalize_upload",
        "activate",
        "remove_uploader",
    ] {
        assert!(
            methods.iter().any(|x| x == m),
            "{m} not audited: {methods:?}"
        );
    }
}

#[test]
fn upgrades_in_the_middle_of_an_upload_and_of_a_verification_then_both_complete() {
    let mut repo = Repo::deploy();
    let admin = controller();
    repo.set_config(|c| c.hash_bytes_per_message = 256 << 10);
    let (manifest, shards) = synthetic::model(3_000_000, 1 << 20, 6);
    let upload = repo.begin(admin, &manifest, metadata("upgraded")).unwrap();
    repo.send_all(admin, upload, &shards[..1], 500_000);
    repo.upgrade();
    let status = repo.status(admin, upload).unwrap();
    assert_eq!(status.received_bytes, 1 << 20);
    repo.send_all(admin, upload, &shards, 500_000);
    let outcome = repo.finalize(admin, upload).unwrap();
    assert!(
        matches!(outcome, FinalizeOutcome::Verifying { verified_bytes, .. } if verified_bytes == 256 << 10),
        "{outcome:?}"
    );
    repo.env.tick();
    let mid = repo.status(admin, upload).unwrap();
    assert_eq!(mid.phase, UploadPhase::Verifying);
    assert!(
        mid.verified_bytes > 256 << 10,
        "progress is reported: {}",
        mid.verified_bytes
    );
    repo.upgrade();
    let after_upgrade = repo.status(admin, upload).unwrap();
    assert_eq!(
        after_upgrade.verified_bytes, mid.verified_bytes,
        "the hash state survived"
    );
    let record = repo.finalize_until_verified(admin, upload);
    assert_eq!(record.state, ModelState::Verified);
    let activated: Result<ModelRecord, Error> =
        repo.update(admin, "activate", (model_id("upgraded"),));
    activated.unwrap();
    repo.upgrade();
    for (i, shard) in shards.iter().enumerate() {
        assert_eq!(
            &repo
                .get_chunk(admin, "upgraded", i as u32, 0, shard.len() as u64)
                .unwrap(),
            shard
        );
    }
    assert_eq!(
        repo.get_model("upgraded").unwrap().state,
        ModelState::Active
    );
}

#[test]
fn the_expiry_timer_frees_an_abandoned_upload_also_across_an_upgrade() {
    let mut repo = Repo::deploy();
    let admin = controller();
    repo.set_config(|c| c.upload_idle_timeout_seconds = 3600);
    let (manifest, shards) = synthetic::model(2_500_000, 1 << 20, 7);
    let upload = repo.begin(admin, &manifest, metadata("abandoned")).unwrap();
    repo.send_all(admin, upload, &shards[..2], 1 << 20);
    assert_eq!(repo.stats().bytes_used, 2 << 20);
    repo.upgrade();
    repo.env.advance_time(Duration::from_secs(1800));
    repo.env.tick();
    assert!(
        repo.status(admin, upload).is_ok(),
        "not idle long enough yet"
    );
    repo.env.advance_time(Duration::from_secs(1800 + 600));
    for _ in 0..5 {
        repo.env.tick();
    }
    assert!(matches!(
        repo.status(admin, upload),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        repo.get_model("abandoned"),
        Err(Error::NotFound { .. })
    ));
    let stats = repo.stats();
    assert_eq!(
        (stats.bytes_used, stats.bytes_free, stats.bytes_reserved),
        (0, 2 << 20, 0)
    );
    let log: Result<Paged<ohms_types::AuditEntry>, Error> =
        repo.query(admin, "audit_log", (Page::default(),));
    assert!(
        log.unwrap()
            .items
            .iter()
            .any(|e| e.method == "expire_upload")
    );
    // The sweep keeps running after the upgrade: a second abandoned upload expires too.
    let upload = repo
        .begin(admin, &manifest, metadata("abandoned-again"))
        .unwrap();
    repo.send_all(admin, upload, &shards[..1], 1 << 20);
    repo.upgrade();
    repo.env.advance_time(Duration::from_secs(3600 + 600));
    for _ in 0..5 {
        repo.env.tick();
    }
    assert!(matches!(
        repo.status(admin, upload),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(repo.stats().bytes_used, 0);
}

#[test]
fn three_hundred_models_page_under_2_mib_with_the_limit_capped() {
    let mut repo = Repo::deploy();
    let admin = controller();
    repo.set_config(|c| c.max_uploads = 1_000);
    let (manifest, _) = synthetic::model(1_000, 1_000, 8);
    for i in 0..300 {
        let mut meta = metadata(&format!("model-{i:03}"));
        meta.description = "d".repeat(2_048);
        meta.name = "n".repeat(128);
        meta.tags = (0..16)
            .map(|t| format!("{t:02}{}", "t".repeat(30)))
            .collect();
        meta.capabilities = vec![Capability::Chat, Capability::Code, Capability::Python];
        repo.begin(admin, &manifest, meta).unwrap();
    }
    let mut start = 0;
    let mut seen = 0;
    loop {
        let arg = candid::encode_args((
            ModelFilter::default(),
            Page {
                start,
                limit: u32::MAX,
            },
        ))
        .unwrap();
        let reply = repo
            .env
            .query_call(repo.id, Principal::anonymous(), "list_models", arg)
            .unwrap();
        bench("list_models_page_reply_bytes", reply.len() as f64);
        assert!(reply.len() < 2 << 20, "a page of {} bytes", reply.len());
        let page: Result<Paged<ModelSummary>, Error> = candid::decode_one(&reply).unwrap();
        let page = page.unwrap();
        assert!(page.items.len() <= Page::MAX_LIMIT as usize);
        assert_eq!(page.total, 300);
        seen += page.items.len();
        match page.next_start {
            Some(next) => start = next,
            None => break,
        }
    }
    assert_eq!(seen, 300);
    repo.upgrade();
    let page: Result<Paged<ModelSummary>, Error> = repo.query(
        Principal::anonymous(),
        "list_models",
        (
            ModelFilter {
                tag: Some("05tttttttttttttttttttttttttttttt".into()),
                ..Default::default()
            },
            Page {
                start: 250,
                limit: 7,
            },
        ),
    );
    let page = page.unwrap();
    assert_eq!((page.items.len(), page.total), (7, 300));
    assert_eq!(page.items[0].id.as_str(), "model-250");
}

#[test]
fn hostile_input_gets_cheap_typed_errors() {
    let mut repo = Repo::deploy();
    let admin = controller();
    let (manifest, shards) = synthetic::model(500_000, 200_000, 9);
    let good = Manifest::from_cbor(&manifest).unwrap();
    let check = |repo: &mut Repo, name: &str, result: Result<(), Error>, field: &str| {
        let instructions = repo.instructions();
        bench(&format!("hostile_{name}_instructions"), instructions as f64);
        match result {
            Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            instructions < 50_000_000,
            "{name}: {instructions} instructions"
        );
    };
    // A manifest that lies about sizes: shards larger than its shard size.
    let mut lying = good.clone();
    lying.shards[0].size = 5_000_000;
    let r = repo
        .begin(admin, &lying.to_cbor(), metadata("liar"))
        .map(|_| ());
    check(&mut repo, "manifest_lying_sizes", r, "manifest");
    // A shard table claiming 10^6 entries (the rest of the message filled with entries).
    let mut bytes = {
        let mut m = good.clone();
        m.shards = vec![];
        m.to_cbor()
    };
    bytes.pop(); // the empty table's header (0x80)
    bytes.extend([0x9a, 0x00, 0x0f, 0x42, 0x40]);
    let entry = {
        let mut e = Vec::new();
        ciborium::into_writer(
            &ShardEntry {
                size: 1,
                sha256: "0".repeat(64),
            },
            &mut e,
        )
        .unwrap();
        e
    };
    while bytes.len() + entry.len() < 1_900_000 {
        bytes.extend_from_slice(&entry);
    }
    let r = repo.begin(admin, &bytes, metadata("million")).map(|_| ());
    check(&mut repo, "manifest_million_shards", r, "manifest.shards");
    let upload = repo.begin(admin, &manifest, metadata("target")).unwrap();
    // 1.9 MiB + 1 byte.
    let r = repo.chunk(
        admin,
        upload,
        0,
        0,
        &vec![0u8; MAX_CHUNK_BYTES as usize + 1],
    );
    check(&mut repo, "chunk_too_big", r, "bytes");
    // Offsets near u64::MAX.
    let r = repo.chunk(admin, upload, 0, u64::MAX - 3, &shards[0][..10]);
    check(&mut repo, "offset_near_u64_max", r, "offset");
    let r = repo.chunk(admin, upload, u32::MAX, 0, &shards[0][..10]);
    check(&mut repo, "shard_out_of_range", r, "shard");
    let r = repo
        .get_chunk(admin, "target", 0, u64::MAX - 3, 10)
        .map(|_| ());
    assert!(r.is_err());
    let stats = repo.stats();
    assert_eq!(
        (stats.bytes_used, stats.models_uploading),
        (0, 1),
        "nothing was stored"
    );
    assert!(matches!(
        repo.status(admin, upload).unwrap().received_bytes,
        0
    ));
}
