//! Helpers for the integration tests: the built wasm files, principals, and the whole OHMS suite
//! deployed on a [`TestEnv`] (the local IC runtime, or PocketIC when `POCKET_IC_BIN` is set).

use std::path::PathBuf;

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use ic_test_env::{CallError, TestEnv};
use icp_ledger_fixture::{Archiving, Funded, LedgerSetup};
use ohms_types::{EconomicsInitArgs, EconomicsInstallArgs, InitArgs, InstallArgs, Siblings};
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

/// The folder `scripts/build` writes to (`OHMS_WASM_DIR` overrides it).
pub fn wasm_dir() -> PathBuf {
    std::env::var_os("OHMS_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../wasm"))
}

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

/// Candid-encodes one value.
pub fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    candid::encode_one(value).expect("Candid encoding of a test value")
}
