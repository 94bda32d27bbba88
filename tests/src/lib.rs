//! Helpers for the integration tests: the built wasm files, principals, and the whole OHMS suite
//! deployed on a [`TestEnv`] (the local IC runtime, or PocketIC when `POCKET_IC_BIN` is set).

use std::path::PathBuf;

// Where the model files are: the same rules as the model crates' tests.
#[path = "../../crates/ohms-llm/tests/common/mod.rs"]
mod common;
pub use common::{fixture, model};

pub mod platform;

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use ic_test_env::{CallError, TestEnv};
use icp_ledger_fixture::{Archiving, Funded, LedgerSetup};
use ohms_types::{
    BeginUpload, EconomicsInitArgs, EconomicsInstallArgs, Error, FinalizeOutcome, InitArgs,
    InstallArgs, MAX_CHUNK_BYTES, ModelMetadata, ModelRecord, Siblings, UploadChunk, UploadId,
};
use serde::de::DeserializeOwned;

/// The five OHMS canisters, by the names of their wasm files.
pub const CANISTERS: [&str; 5] = [
    "model_repo",
    "agent_factory",
    "agent",
    "coordinator",
    "economics",
];

/// Cycles every test canister starts with.
pub const INITIAL_CYCLES: u128 = 100_000_000_000_000;

pub use ic_test_env::wasm_dir;

/// The built wasm of a canister (`model_repo`) or test canister (`fixtures/relay`).
pub fn wasm(name: &str) -> Vec<u8> {
    let path = wasm_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {}: {err}; run scripts/build first (scripts/test does)",
            path.display()
        )
    })
}

/// A self-authenticating-style principal named after a person, stable across runs.
pub fn user(name: &str) -> Principal {
    Principal::self_authenticating(name.as_bytes())
}

/// The controller that deploys the suite; an administrator of every canister.
pub fn controller() -> Principal {
    user("controller")
}

/// The ICP ledger's fee, as the suite installs it (the mainnet ledger's).
pub const LEDGER_FEE_E8S: u64 = icp_ledger_fixture::MAINNET_FEE_E8S;

/// What each of [`FUNDED_USERS`] holds on the ledger at install: 100 ICP.
pub const FUNDED_E8S: u64 = 10_000_000_000;

/// The users the suite funds on the ICP ledger.
pub const FUNDED_USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// The owner of the ledger's minting account.
pub fn minter() -> Principal {
    user("minter")
}

/// The OHMS canisters deployed on a test network, wired to each other as siblings, with
/// DFINITY's ICP ledger beside them (economics takes payments on it).
pub struct Suite {
    pub env: TestEnv,
    pub siblings: Siblings,
    /// The ICP ledger's canister id.
    pub ledger: Principal,
    ids: Vec<(&'static str, Principal)>,
}

impl Suite {
    /// Installs the ICP ledger with [`FUNDED_USERS`] funded, creates the five canisters, then
    /// installs each with the others registered as siblings (economics with the ledger's id).
    pub fn deploy() -> Self {
        Self::deploy_with_archiving(None)
    }

    /// [`Suite::deploy`] with a ledger that moves old blocks to archive canisters.
    pub fn deploy_with_archiving(archive: Option<Archiving>) -> Self {
        let mut env = TestEnv::new();
        let ledger = env.create_canister_with_controllers(vec![controller()]);
        env.add_cycles(ledger, INITIAL_CYCLES);
        let setup = LedgerSetup {
            minting_owner: minter(),
            funded: FUNDED_USERS
                .iter()
                .map(|name| Funded::main_account(user(name), FUNDED_E8S))
                .collect(),
            fee_e8s: LEDGER_FEE_E8S,
            archive,
        };
        let ledger_wasm = icp_ledger_fixture::wasm().unwrap_or_else(|err| panic!("{err}"));
        env.install_canister(
            ledger,
            ledger_wasm,
            icp_ledger_fixture::init_arg(&setup),
            Some(controller()),
        )
        .unwrap_or_else(|err| panic!("installing the ICP ledger: {err}"));
        let ids: Vec<_> = CANISTERS
            .iter()
            .map(|name| {
                let id = env.create_canister_with_controllers(vec![controller()]);
                env.add_cycles(id, INITIAL_CYCLES);
                (*name, id)
            })
            .collect();
        let id_of = |name| ids.iter().find(|(n, _)| *n == name).map(|(_, id)| *id);
        let siblings = Siblings {
            model_repo: id_of("model_repo"),
            agent_factory: id_of("agent_factory"),
            coordinator: id_of("coordinator"),
            economics: id_of("economics"),
        };
        let init = InstallArgs::Init(InitArgs {
            admins: vec![],
            siblings: siblings.clone(),
        });
        let economics_init = EconomicsInstallArgs::Init(EconomicsInitArgs {
            admins: vec![],
            siblings: siblings.clone(),
            ledger,
            ledger_fee_e8s: LEDGER_FEE_E8S,
        });
        for (name, id) in &ids {
            let arg = if *name == "economics" {
                encode(&economics_init)
            } else {
                encode(&init)
            };
            env.install_canister(*id, wasm(name), arg, Some(controller()))
                .unwrap_or_else(|err| panic!("installing {name}: {err}"));
        }
        Self {
            env,
            siblings,
            ledger,
            ids,
        }
    }

    pub fn id(&self, name: &str) -> Principal {
        self.ids
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("no canister {name}"))
    }

    /// Every canister with its name.
    pub fn canisters(&self) -> Vec<(&'static str, Principal)> {
        self.ids.clone()
    }

    /// A test canister installed with no argument, controlled by the suite's controller.
    pub fn install_fixture(&mut self, name: &str) -> Principal {
        let id = self
            .env
            .create_canister_with_controllers(vec![controller()]);
        self.env.add_cycles(id, INITIAL_CYCLES);
        self.env
            .install_canister(
                id,
                wasm(&format!("fixtures/{name}")),
                candid::encode_args(()).unwrap(),
                Some(controller()),
            )
            .unwrap_or_else(|err| panic!("installing fixture {name}: {err}"));
        id
    }

    pub fn update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        self.env
            .update(canister, sender, method, args)
            .unwrap_or_else(|err| panic!("{method}: {err}"))
    }

    pub fn query<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> R {
        self.env
            .query(canister, sender, method, args)
            .unwrap_or_else(|err| panic!("{method}: {err}"))
    }

    /// Upgrades a canister to its current wasm with the given install argument (`None`: no
    /// argument at all, as `dfx deploy` sends by default).
    pub fn upgrade(&mut self, name: &str, arg: Option<InstallArgs>) -> Result<(), CallError> {
        let arg = match arg {
            Some(arg) => encode(&arg),
            None => candid::encode_args(()).expect("empty argument list"),
        };
        self.env
            .upgrade_canister(self.id(name), wasm(name), arg, Some(controller()))
            .map_err(CallError::from)
    }
}

impl Suite {
    /// Uploads a model to the repository as `uploader` (an administrator, or an uploader the
    /// controller added), waits for its verification, and has the controller activate it.
    pub fn publish_model(
        &mut self,
        uploader: Principal,
        metadata: ModelMetadata,
        manifest: Vec<u8>,
        shards: &[Vec<u8>],
    ) -> ModelRecord {
        let repo = self.id("model_repo");
        let id = metadata.id.clone();
        let upload: Result<UploadId, Error> = self.update(
            repo,
            uploader,
            "begin_upload",
            (BeginUpload { manifest, metadata },),
        );
        let upload = upload.expect("begin_upload");
        for (shard, bytes) in shards.iter().enumerate() {
            for (piece, part) in bytes.chunks(MAX_CHUNK_BYTES as usize).enumerate() {
                let sent: Result<(), Error> = self.update(
                    repo,
                    uploader,
                    "upload_chunk",
                    (UploadChunk {
                        upload_id: upload,
                        shard: shard as u32,
                        offset: piece as u64 * MAX_CHUNK_BYTES,
                        bytes: part.to_vec(),
                    },),
                );
                sent.unwrap_or_else(|err| panic!("shard {shard} piece {piece}: {err}"));
            }
        }
        for _ in 0..1_000 {
            let outcome: Result<FinalizeOutcome, Error> =
                self.update(repo, uploader, "finalize_upload", (upload,));
            match outcome.expect("finalize_upload") {
                FinalizeOutcome::Verified(_) => {
                    let active: Result<ModelRecord, Error> =
                        self.update(repo, controller(), "activate", (id.clone(),));
                    return active.expect("activate");
                }
                FinalizeOutcome::Verifying { .. } => self.env.tick(),
            }
        }
        panic!("the verification of {id} did not finish");
    }
}

/// stories260K compressed by NOVAQ in `mode` (`2bit`, `4bit`, `q8`, …) with its architecture
/// and tokenizer, as manifest bytes and shards of `shard_size` bytes; `None` without the
/// fixture.
pub fn stories260k(mode: &str, shard_size: u64) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let path = fixture("stories260Ktok512.gguf")?;
    Some(compress_gguf(&path, "stories260K", mode, shard_size))
}

/// SmolLM2-135M-Instruct as `scripts/fetch-model` leaves it in `models/`, if it is there.
pub fn smollm2() -> Option<PathBuf> {
    model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// A GGUF model compressed by NOVAQ in `mode`, with its architecture and tokenizer, as
/// manifest bytes and shards of `shard_size` bytes.
pub fn compress_gguf(
    path: &std::path::Path,
    name: &str,
    mode: &str,
    shard_size: u64,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    use novaq::codec::{Mode, Options, compress};
    use novaq::format::write::{ModelInfo, package};
    let file = novaq::read::gguf::GgufFile::open(path).expect("the model file reads");
    let tensors = file.read_tensors().expect("its tensors decode");
    let has_output = tensors.iter().any(|t| t.name == "output.weight");
    let config = ohms_llm::Config::from_gguf(&file.metadata, has_output).expect("a Llama model");
    let tokenizer = ohms_llm::tokenizer::spec_from_gguf(&file.metadata).expect("a tokenizer");
    let options = Options::new(Mode::parse(mode, None).expect("a NOVAQ mode"));
    let compressed = compress(&tensors, &options);
    let info = ModelInfo {
        name: name.into(),
        architecture: Some(config.to_architecture()),
        tokenizer: Some(tokenizer),
    };
    let (manifest, shards) = package(&compressed, info, shard_size);
    (manifest.to_cbor(), shards)
}

/// Candid-encodes one value.
pub fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    candid::encode_one(value).expect("Candid encoding of a test value")
}
